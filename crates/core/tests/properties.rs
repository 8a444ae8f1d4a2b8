//! No input makes the parsers or the planner panic: arbitrary bytes, and the
//! real sample events and catalog mutated field by field.

use gild_core::catalog;
use gild_core::event;
use gild_core::plan::{self, Inputs, Settings};
use proptest::prelude::*;
use serde_json::Value;

const EVENTS: &[&str] = &[
    include_str!("../../../tests/events/schedule.json"),
    include_str!("../../../tests/events/codecommit-push.json"),
    include_str!("../../../tests/events/codecommit-tag.json"),
    include_str!("../../../tests/events/codecommit-branch-deleted.json"),
    include_str!("../../../tests/events/manual-build.json"),
    include_str!("../../../tests/events/manual-build-all.json"),
    include_str!("../../../tests/events/codebuild-bake-succeeded.json"),
    include_str!("../../../tests/events/codebuild-bake-failed.json"),
];

const CATALOG: &str = include_str!("../../../tests/fixtures/catalog.toml");

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::Array(vec![])),
        Just(serde_json::json!({})),
        Just(Value::String("refs/heads/main".into())),
        Just(Value::String("branch".into())),
    ]
}

/// Replaces or removes the value at a pseudo-random path.
fn mutate(value: &mut Value, choices: &[usize], leaf: &Value, remove: bool) {
    let Some((choice, rest)) = choices.split_first() else {
        *value = leaf.clone();
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(choice % map.len())
                .cloned()
                .unwrap_or_default();
            if rest.is_empty() && remove {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, leaf, remove);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = choice % items.len();
            mutate(&mut items[i], rest, leaf, remove);
        }
        other => *other = leaf.clone(),
    }
}

fn plan_anything(value: Value) {
    let catalog = catalog::parse("fixture.toml", CATALOG).expect("fixture is valid");
    if let Ok(event) = event::parse(value) {
        let triage = plan::triage(&event, &Settings::default());
        let inputs = Inputs {
            catalog,
            previous_catalog: None,
            changed: vec!["gild.toml".into(), "images/debian12-base/x".into()],
            commit: Some("c".into()),
        };
        if let Ok(plan) = plan::plan(&event, &triage, &inputs) {
            let mut seen = std::collections::BTreeSet::new();
            for action in &plan.actions {
                // Completion plans name one family several times; bakes must not.
                if !matches!(action, plan::Action::StartBake { .. }) {
                    continue;
                }
                let family = action.family();
                assert!(seen.insert(family.to_owned()), "family planned twice");
                assert!(
                    inputs.catalog.get(family).is_some(),
                    "planned unknown family"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = event::parse_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = catalog::parse("fuzz.toml", text);
        }
    }

    #[test]
    fn mutated_events_never_panic(
        which in 0..EVENTS.len(),
        mutations in proptest::collection::vec(
            (proptest::collection::vec(any::<usize>(), 1..5), json_leaf(), any::<bool>()), 1..6),
    ) {
        let mut value: Value = serde_json::from_str(EVENTS[which]).expect("sample is JSON");
        for (path, leaf, remove) in &mutations {
            mutate(&mut value, path, leaf, *remove);
        }
        plan_anything(value);
    }

    #[test]
    fn mutated_catalogs_never_panic_and_stay_valid(
        edits in proptest::collection::vec((any::<usize>(), any::<bool>(), "[ -~\n\"\\[\\]=]{0,8}"), 1..8),
    ) {
        let mut text = CATALOG.to_owned();
        for (at, delete, insert) in &edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            if *delete && at < text.len() {
                let mut end = (at + insert.len().max(1)).min(text.len());
                while !text.is_char_boundary(end) { end += 1; }
                text.replace_range(at..end, "");
            } else {
                text.insert_str(at, insert);
            }
        }
        match catalog::parse("gild.toml", &text) {
            Ok(parsed) => {
                for (name, family) in &parsed.families {
                    prop_assert_eq!(name, &family.name);
                    prop_assert!(!family.path.ends_with('/') && !family.path.starts_with('/'));
                    prop_assert!(!family.path.split('/').any(|p| p == ".."));
                }
            }
            Err(err) => {
                prop_assert!(err.line >= 1 && err.line <= text.lines().count().max(1) + 1, "{}", err);
                prop_assert!(err.to_string().starts_with("gild.toml:"));
            }
        }
    }

    #[test]
    fn affected_families_are_catalog_families(paths in proptest::collection::vec(
        prop_oneof![
            "images/[a-z0-9-]{1,14}(/[a-z.]{1,6}){0,2}",
            "ansible/roles/[a-z-]{1,10}/tasks/main.yml",
            "(buildspecs|docs|functions)/[a-z]{1,5}",
            Just("gild.toml".to_owned()),
        ], 0..6)) {
        let catalog = catalog::parse("fixture.toml", CATALOG).expect("fixture is valid");
        let affected = plan::affected_families(&catalog, Some(&catalog), &paths);
        for family in affected.keys() {
            prop_assert!(catalog.get(family).is_some());
        }
        // A family's own folder always rebuilds it.
        for family in catalog.families.values() {
            let own = [format!("{}/file", family.path)];
            prop_assert!(plan::affected_families(&catalog, Some(&catalog), &own).contains_key(&family.name));
        }
    }
}
