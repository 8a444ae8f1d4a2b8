//! Layered families: each `parent` names a family whose promoted image the
//! child bakes from. The graph is checked once, at parse: an unknown
//! parent, a cycle, a child of another OS, or a chain deeper than
//! [`MAX_DEPTH`] is a catalog error at the `parent` line, so no bake ever
//! waits on a parent that cannot come.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Family, Os};

/// The longest chain, the family and its ancestors: each level is a bake
/// that waits for the one before, so a deep chain turns a patch day into a
/// long queue.
pub const MAX_DEPTH: usize = 5;

/// A family's `parent` as written, with where it was written.
pub(super) struct ParentRef {
    pub name: String,
    pub span: Range<usize>,
}

/// The first problem, in family-name order, with the span to report it at.
pub(super) fn check(
    families: &BTreeMap<String, Family>,
    parents: &BTreeMap<String, ParentRef>,
) -> Result<(), (Range<usize>, String)> {
    for (child, parent) in parents {
        let Some(found) = families.get(&parent.name) else {
            return Err((
                parent.span.clone(),
                format!(
                    "family `{child}`: parent `{}` is not a family declared under [families]",
                    parent.name
                ),
            ));
        };
        let os = families.get(child).map_or(Os::Linux, |f| f.os);
        if found.os != os {
            return Err((
                parent.span.clone(),
                format!(
                    "family `{child}`: a child bakes from its parent's image, but its os {os} differs: parent `{}` is {}",
                    parent.name, found.os
                ),
            ));
        }
    }
    for (name, parent) in parents {
        let mut chain = vec![name.as_str()];
        let mut at = name.as_str();
        while let Some(next) = parents.get(at) {
            let next = next.name.as_str();
            if chain.contains(&next) {
                chain.push(next);
                return Err((
                    parent.span.clone(),
                    format!(
                        "family `{name}`: its parents form a cycle: {}",
                        chain.join(" -> ")
                    ),
                ));
            }
            chain.push(next);
            at = next;
        }
        if chain.len() > MAX_DEPTH {
            return Err((
                parent.span.clone(),
                format!(
                    "family `{name}`: its parent chain {} is deeper than {MAX_DEPTH} families",
                    chain.join(" -> ")
                ),
            ));
        }
    }
    Ok(())
}
