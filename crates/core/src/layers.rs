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
