//! The core's shape, checked: which module uses which (`crate::<module>`
//! paths in each file, unit tests excluded), so that a cycle among the
//! decision modules, or a vocabulary module that starts to depend on one,
//! fails here rather than in review. Also: no `aws-sdk-*` anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

/// Each module's file, without its `#[cfg(test)] mod tests`.
fn modules() -> BTreeMap<String, String> {
    std::fs::read_dir(src())
        .expect("src")
        .filter_map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "rs" && name != "lib").then(|| {
                let text = std::fs::read_to_string(&path).expect("read");
                let code = match text.find("#[cfg(test)]\nmod tests") {
                    Some(at) => text[..at].to_owned(),
                    None => text,
                };
                (name, code)
            })
        })
        .collect()
}

/// `crate::a`, `crate::{a::X, b}` → {a, b}, limited to known modules.
fn uses(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            group
                .split(',')
                .map(|item| item.trim().split("::").next().unwrap_or_default())
                .collect()
        } else {
            vec![rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()]
        };
        found.extend(
            names
                .into_iter()
                .filter(|n| known.contains(*n))
                .map(str::to_owned),
        );
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(name, code)| {
            let mut deps = uses(code, &known);
            deps.remove(name);
            (name.clone(), deps)
        })
        .collect()
}

#[test]
fn no_module_of_the_core_reaches_itself() {
    let graph = graph();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(module) = stack.pop() {
            assert_ne!(module, start, "a cycle through `{start}`: {graph:#?}");
            if seen.insert(module.clone()) {
                stack.extend(graph.get(module).into_iter().flatten());
            }
        }
    }
}

#[test]
fn the_vocabulary_and_the_state_table_are_leaves() {
    let graph = graph();
    for leaf in ["vocabulary", "state"] {
        assert_eq!(
            graph.get(leaf),
            Some(&BTreeSet::new()),
            "`{leaf}` must import no other module of the crate"
        );
    }
}

#[test]
fn the_parser_sees_what_is_there() {
    // Guards the test itself: the planner does use the completion module.
    assert!(graph()["plan"].contains("completion"));
}

#[test]
fn the_core_never_imports_the_aws_sdk() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("toml");
    assert!(
        !manifest.contains("aws-sdk"),
        "gild-core depends on an aws-sdk crate"
    );
    for (module, code) in modules() {
        assert!(
            !code.contains("aws_sdk_"),
            "{module}.rs names an aws_sdk crate"
        );
    }
}
