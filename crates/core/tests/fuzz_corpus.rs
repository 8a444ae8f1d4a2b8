//! Replays the fuzz corpora and the regression inputs on stable Rust, so
//! `make test` keeps them passing without libFuzzer: `fuzz/corpus/<target>/`
//! (inputs the campaigns found interesting) and `fuzz/regressions/<target>/`
//! (inputs for defects the project fixed, each described in
//! `fuzz/regressions/README.md`). The `slack` target's are replayed by
//! `crates/slack/tests/fuzz_corpus.rs`.
//!
//! A missing or empty directory fails: a renamed or lost corpus would
//! otherwise pass here having replayed nothing.

mod support;

use support::replay::replay;

#[test]
fn eventbridge_corpus() {
    replay("eventbridge", gild_core::fuzzing::eventbridge, 10, 3);
}

#[test]
fn catalog_corpus() {
    replay("catalog", gild_core::fuzzing::catalog, 16, 3);
}

#[test]
fn webhook_corpus() {
    replay("webhook", gild_core::fuzzing::webhook, 2, 3);
}

/// The bill of materials' target has no fixed defect to keep yet, so no
/// `fuzz/regressions/bom/`: its corpus alone.
#[test]
fn bom_corpus() {
    let replayed = support::replay::replay_dir("corpus", "bom", gild_core::fuzzing::bom);
    assert!(
        replayed >= 4,
        "replayed {replayed} of fuzz/corpus/bom, expected at least 4"
    );
}
