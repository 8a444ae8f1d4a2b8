//! Replays the `slack` fuzz target's corpus and every past finding on
//! stable Rust, so `make test` keeps them passing without libFuzzer:
//! `fuzz/corpus/slack/` (inputs the campaigns found interesting) and
//! `fuzz/regressions/slack/` (inputs that once failed, kept after the fix).
//! The core's targets are replayed by `crates/core/tests/fuzz_corpus.rs`.

use std::path::PathBuf;

#[test]
fn slack_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("slack")) else {
            continue;
        };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("corpus file readable");
            gild_slack::fuzzing::slack(&data);
            replayed += 1;
        }
    }
    assert!(replayed >= 3, "replayed {replayed} inputs");
}
