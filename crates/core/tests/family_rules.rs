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

#[test]
fn layered_families_follow_the_shared_fixture() {
    use gild_core::catalog::{parse, MAX_DEPTH, RESERVED_VARIABLES};
    let graphs = fixture("family-graphs.json");
    assert_eq!(strings(&graphs, "reserved"), RESERVED_VARIABLES);
    assert_eq!(graphs["max_depth"].as_u64(), Some(MAX_DEPTH as u64));
    for case in graphs["valid"].as_array().expect("valid") {
        let name = case["name"].as_str().expect("name");
        let catalog = parse("gild.toml", case["catalog"].as_str().expect("catalog"))
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        for (family, template) in case["templates"].as_object().expect("templates") {
            assert_eq!(
                Some(catalog.families[family].template.as_str()),
                template.as_str(),
                "{name}: {family}"
            );
        }
        for (family, f) in &catalog.families {
            let expected = case["parents"][family].as_str();
            assert_eq!(f.parent.as_deref(), expected, "{name}: {family}");
            let variables: serde_json::Map<String, Value> = f
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            assert_eq!(
                Value::Object(variables),
                case["variables"][family],
                "{name}: {family}"
            );
        }
    }
    for case in graphs["invalid"].as_array().expect("invalid") {
        let name = case["name"].as_str().expect("name");
        let text = case["catalog"].as_str().expect("catalog");
        let err = parse("gild.toml", text).expect_err(name);
        let shown = err.to_string();
        for part in strings(case, "errors") {
            assert!(shown.contains(part), "{name}: `{shown}` lacks `{part}`");
        }
        // The line named is the family's: its `parent`, `template` or
        // variable line, inside its table.
        assert!(err.line > 1, "{name}: {shown}");
    }
}
