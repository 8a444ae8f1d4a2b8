//! Replays the `slack` fuzz target's corpus and regression inputs on stable
//! Rust, so `make test` keeps them passing without libFuzzer:
//! `fuzz/corpus/slack/` (inputs the campaigns found interesting) and
//! `fuzz/regressions/slack/` (inputs for defects the project fixed, each
//! described in `fuzz/regressions/README.md`). The core's targets are
//! replayed by `crates/core/tests/fuzz_corpus.rs`, with the same helpers.
//!
//! A missing or empty directory fails: a renamed or lost corpus would
//! otherwise pass here having replayed nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// In name order, so every machine replays (and fails on) the same file first.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fuzz input directory {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "fuzz input directory {} is empty",
        dir.display()
    );
    files
}

/// Runs every input of `fuzz/<dir>/slack/`, naming the file that panics;
/// returns how many ran.
fn replay_dir(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .join("fuzz");
    let files = inputs(&root.join(dir).join("slack"));
    for path in &files {
        let data =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| gild_slack::fuzzing::slack(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!(
                "fuzz target `slack` failed on {}: {message}",
                path.display()
            );
        }
    }
    files.len()
}

#[test]
fn slack_corpus() {
    let replayed = replay_dir("corpus");
    assert!(
        replayed >= 3,
        "replayed {replayed} of fuzz/corpus/slack, expected at least 3"
    );
    // As many as fuzz/regressions/README.md lists: fewer means one was lost.
    let replayed = replay_dir("regressions");
    assert!(
        replayed >= 2,
        "replayed {replayed} of fuzz/regressions/slack, expected at least 2"
    );
}
