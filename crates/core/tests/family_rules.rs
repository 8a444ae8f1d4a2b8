//! The family-name and path rules, against the fixtures the buildspecs are
//! tested with too (tests/fixtures/family-*.json, tests/twin/codebuild): a
//! name or path the catalog accepts is one bake.yml and test.yml accept, and
//! the reverse (issue 11, defects 11 and 12).

use gild_core::catalog::{normalise_path, valid_name};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings<'a>(value: &'a Value, key: &str) -> Vec<&'a str> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` list"))
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

#[test]
fn family_names_follow_the_shared_fixture() {
    let names = fixture("family-names.json");
    for name in strings(&names, "valid") {
        assert!(valid_name(name), "refused valid name {name:?}");
    }
    for name in strings(&names, "invalid") {
        assert!(!valid_name(name), "accepted invalid name {name:?}");
    }
}

#[test]
fn family_paths_follow_the_shared_fixture() {
    let paths = fixture("family-paths.json");
    for path in strings(&paths, "valid") {
        assert!(
            normalise_path(path).is_some(),
            "refused valid path {path:?}"
        );
    }
    for path in strings(&paths, "invalid") {
        assert_eq!(normalise_path(path), None, "accepted invalid path {path:?}");
    }
    for (path, normal) in paths["normalised"].as_object().expect("normalised") {
        assert_eq!(normalise_path(path).as_deref(), normal.as_str(), "{path:?}");
    }
}
