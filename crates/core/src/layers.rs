//! Layered families in a run: which bakes of a plan wait for a parent, and
//! the descendants a bake hands on to its children.
//!
//! A family whose ancestor is baked in the same run must not bake from the
//! ancestor's old image: it waits for its parent's new image. The families
//! between a planned family and a planned ancestor (not changed themselves)
//! are rebuilt too, waiting in turn, so the chain stays one image deep.
//!
//! A bake record carries its family's descendants when it was planned,
//! encoded as paths (`child`, `child/grandchild`; family names hold no
//! `/`), so the completion that promotes it can queue its children, and
//! hand each child its own subtree, without reading the catalog.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Catalog;

/// The families of a run: each planned family, plus the families between
/// it and a planned ancestor, with the parent each waits for (`None`: it
/// bakes now).
pub fn layer(catalog: &Catalog, planned: &BTreeSet<String>) -> BTreeMap<String, Option<String>> {
    let mut run: BTreeSet<String> = planned
        .iter()
        .filter(|f| catalog.get(f).is_some())
        .cloned()
        .collect();
    for family in planned {
        let chain = catalog.ancestors(family);
        // The farthest planned ancestor: everything below it is rebuilt.
        if let Some(top) = chain.iter().rposition(|a| planned.contains(&a.name)) {
            run.extend(chain[..top].iter().map(|a| a.name.clone()));
        }
    }
    run.iter()
        .map(|family| {
            let parent = catalog
                .get(family)
                .and_then(|f| f.parent.clone())
                .filter(|p| run.contains(p));
            (family.clone(), parent)
        })
        .collect()
}

/// `family`'s descendants as paths below it, sorted.
pub fn descendants(catalog: &Catalog, family: &str) -> Vec<String> {
    let mut found = Vec::new();
    // Depth-first with the path so far; the catalog refused cycles and
    // chains deeper than `catalog::MAX_DEPTH`, and the bound keeps a
    // hand-built catalog finite.
    let mut stack: Vec<(String, String)> = catalog
        .children_of(family)
        .map(|c| (c.name.clone(), c.name.clone()))
        .collect();
    while let Some((name, path)) = stack.pop() {
        if found.len() > catalog.families.len() * crate::catalog::MAX_DEPTH {
            break;
        }
        for child in catalog.children_of(&name) {
            stack.push((child.name.clone(), format!("{path}/{}", child.name)));
        }
        found.push(path);
    }
    found.sort();
    found
}

/// The direct children among encoded descendants.
pub fn direct_children(descendants: &[String]) -> Vec<&str> {
    descendants
        .iter()
        .filter(|d| !d.contains('/'))
        .map(String::as_str)
        .collect()
}

/// `child`'s own descendants, from its parent's.
pub fn subtree(descendants: &[String], child: &str) -> Vec<String> {
    let prefix = format!("{child}/");
    descendants
        .iter()
        .filter_map(|d| d.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

/// The dedupe key of a bake started by its parent's promotion: one per
/// parent image, so a promotion handled twice queues each child once.
pub fn parent_dedupe_key(parent_image: &str) -> String {
    format!("parent:{parent_image}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    const TREE: &str = r#"
[families.base]
path = "images/base"
os = "windows"
[families.dotnet]
path = "images/dotnet"
os = "windows"
parent = "base"
[families.iis]
path = "images/iis"
os = "windows"
parent = "dotnet"
[families.sql]
path = "images/sql"
os = "windows"
parent = "base"
[families.deb]
path = "images/deb"
os = "linux"
"#;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_child_planned_with_its_parent_waits_and_a_root_bakes_now() {
        let catalog = catalog::parse("g", TREE).expect("catalog");
        let run = layer(&catalog, &names(&["base", "dotnet", "deb"]));
        assert_eq!(run["base"], None);
        assert_eq!(run["deb"], None);
        assert_eq!(run["dotnet"].as_deref(), Some("base"));
        assert_eq!(run.len(), 3, "{run:?}");
    }

    #[test]
    fn the_families_between_a_planned_grandchild_and_its_planned_ancestor_are_rebuilt_waiting() {
        let catalog = catalog::parse("g", TREE).expect("catalog");
        let run = layer(&catalog, &names(&["base", "iis"]));
        assert_eq!(run.keys().collect::<Vec<_>>(), ["base", "dotnet", "iis"]);
        assert_eq!(run["dotnet"].as_deref(), Some("base"));
        assert_eq!(run["iis"].as_deref(), Some("dotnet"));
        // A child planned alone bakes now, from its parent's promoted image.
        let alone = layer(&catalog, &names(&["iis"]));
        assert_eq!(alone, BTreeMap::from([("iis".to_owned(), None)]));
    }

    #[test]
    fn descendants_are_paths_each_child_gets_its_subtree() {
        let catalog = catalog::parse("g", TREE).expect("catalog");
        let below = descendants(&catalog, "base");
        assert_eq!(below, ["dotnet", "dotnet/iis", "sql"]);
        assert_eq!(direct_children(&below), ["dotnet", "sql"]);
        assert_eq!(subtree(&below, "dotnet"), ["iis"]);
        assert!(subtree(&below, "sql").is_empty());
        assert!(descendants(&catalog, "deb").is_empty());
        assert_eq!(parent_dedupe_key("ami-1"), "parent:ami-1");
    }
}

/// One family in `gild status`'s tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<'a> {
    pub family: &'a str,
    /// 0 for a family with no parent.
    pub depth: usize,
    /// The family's latest bake.
    pub latest: &'a crate::ledger::BakeRecord,
    /// Its parent's image it is behind: the parent was promoted again since
    /// the family's promoted image was baked, and the rebuild is not
    /// promoted yet.
    pub outdated: Option<String>,
}

/// The families the ledger knows, as a tree (each child under its parent,
/// names in order), from the bakes alone: a bake records its parent and
/// the parent image it was baked from.
pub fn tree(records: &[crate::ledger::BakeRecord]) -> Vec<Node<'_>> {
    use crate::state::BakeState;
    let newest = |a: &&crate::ledger::BakeRecord, b: &&crate::ledger::BakeRecord| {
        (a.requested_at, &a.key.dedupe_key).cmp(&(b.requested_at, &b.key.dedupe_key))
    };
    let mut latest: BTreeMap<&str, &crate::ledger::BakeRecord> = BTreeMap::new();
    let mut promoted: BTreeMap<&str, &crate::ledger::BakeRecord> = BTreeMap::new();
    for record in records {
        let family = record.key.family.as_str();
        if latest
            .get(family)
            .is_none_or(|l| newest(&record, l).is_gt())
        {
            latest.insert(family, record);
        }
        if record.state == BakeState::Promoted
            && promoted
                .get(family)
                .is_none_or(|p| newest(&record, p).is_gt())
        {
            promoted.insert(family, record);
        }
    }
    // A family's parent: what its latest bake says, else any bake that says.
    let parent_of = |family: &str| -> Option<&str> {
        latest
            .get(family)
            .and_then(|r| r.parent.as_deref())
            .or_else(|| {
                records
                    .iter()
                    .filter(|r| r.key.family == family)
                    .find_map(|r| r.parent.as_deref())
            })
            .filter(|p| latest.contains_key(p) && *p != family)
    };
    let outdated = |family: &str| -> Option<String> {
        let parent = parent_of(family)?;
        let now = promoted.get(parent)?.image.clone()?;
        let baked_from = promoted.get(family)?.parent_image.as_deref()?;
        (baked_from != now).then_some(now)
    };
    let mut nodes = Vec::new();
    let mut placed = BTreeSet::new();
    let mut stack: Vec<(&str, usize)> = latest
        .keys()
        .filter(|f| parent_of(f).is_none())
        .rev()
        .map(|f| (*f, 0))
        .collect();
    // Families whose parent chain loops (a hand-edited ledger) are shown
    // as roots after the rest rather than lost.
    let mut orphans: Vec<&str> = Vec::new();
    loop {
        while let Some((family, depth)) = stack.pop() {
            if !placed.insert(family) {
                continue;
            }
            nodes.push(Node {
                family,
                depth,
                latest: latest[family],
                outdated: outdated(family),
            });
            let children: Vec<&str> = latest
                .keys()
                .filter(|c| parent_of(c) == Some(family))
                .copied()
                .collect();
            stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
        }
        if orphans.is_empty() {
            orphans = latest
                .keys()
                .filter(|f| !placed.contains(*f))
                .copied()
                .collect();
            orphans.reverse();
            if orphans.is_empty() {
                break;
            }
        }
        match orphans.pop() {
            Some(next) => stack.push((next, 0)),
            None => break,
        }
    }
    nodes
}

#[cfg(test)]
mod tree_tests {
    use super::*;
    use crate::ledger::{BakeKey, BakeRecord};
    use crate::state::BakeState;
    use crate::vocabulary::Trigger;

    fn bake(family: &str, key: &str, at: i64, state: BakeState) -> BakeRecord {
        let mut r = BakeRecord::requested(
            BakeKey::new(family, key),
            Trigger::Schedule,
            None,
            at,
            60,
            "t",
        );
        r.state = state;
        r
    }

    #[test]
    fn children_sit_under_their_parent_and_an_older_parent_image_is_outdated() {
        let mut parent_old = bake("dotnet", "schedule:2026-10", 10, BakeState::Promoted);
        parent_old.image = Some("ami-p1".into());
        let mut parent_new = bake("dotnet", "push:abc", 30, BakeState::Promoted);
        parent_new.image = Some("ami-p2".into());
        let mut child = bake("iis", "parent:ami-p1", 20, BakeState::Promoted);
        child.parent = Some("dotnet".into());
        child.parent_image = Some("ami-p1".into());
        child.image = Some("ami-c1".into());
        let deb = bake("deb", "schedule:2026-10", 10, BakeState::Promoted);
        let records = vec![parent_old, child.clone(), parent_new, deb];
        let nodes = tree(&records);
        let shown: Vec<(&str, usize)> = nodes.iter().map(|n| (n.family, n.depth)).collect();
        assert_eq!(shown, [("deb", 0), ("dotnet", 0), ("iis", 1)]);
        assert_eq!(nodes[2].outdated.as_deref(), Some("ami-p2"));
        assert_eq!(nodes[1].outdated, None);
        // Rebuilt from the new image: current again.
        let mut rebuilt = child;
        rebuilt.key = BakeKey::new("iis", "parent:ami-p2");
        rebuilt.requested_at = 40;
        rebuilt.parent_image = Some("ami-p2".into());
        let mut with_rebuild = records.clone();
        with_rebuild.push(rebuilt);
        assert!(tree(&with_rebuild).iter().all(|n| n.outdated.is_none()));
    }
}
