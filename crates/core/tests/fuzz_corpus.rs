//! Replays the fuzz corpora and every past finding on stable Rust, so
//! `make test` keeps them passing without libFuzzer: `fuzz/corpus/<target>/`
//! (inputs the campaigns found interesting) and `fuzz/regressions/<target>/`
//! (inputs that once failed, kept after the fix). The `slack` target's are
//! replayed by `crates/slack/tests/fuzz_corpus.rs`.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("corpus file readable");
            run(&data);
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn eventbridge_corpus() {
    assert!(replay("eventbridge", gild_core::fuzzing::eventbridge) >= 10);
}

#[test]
fn catalog_corpus() {
    assert!(replay("catalog", gild_core::fuzzing::catalog) >= 2);
}

#[test]
fn webhook_corpus() {
    assert!(replay("webhook", gild_core::fuzzing::webhook) >= 2);
}
