//! Replaying a fuzz target's committed inputs on stable Rust, shared by
//! `crates/core/tests/fuzz_corpus.rs` and `crates/slack/tests/fuzz_corpus.rs`
//! (the slack one includes this file by path: the two crates share no test
//! crate, and the core does no I/O, so this cannot live in it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// In name order, so every machine replays (and fails on) the same file first.
pub fn inputs(dir: &Path) -> Vec<PathBuf> {
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

/// Runs every input of `fuzz/<dir>/<target>/`, naming the file that
/// panics; returns how many ran.
pub fn replay_dir(dir: &str, target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .join("fuzz");
    let files = inputs(&root.join(dir).join(target));
    for path in &files {
        let data =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!(
                "fuzz target `{target}` failed on {}: {message}",
                path.display()
            );
        }
    }
    files.len()
}

/// The minimums are what is committed (fewer regressions than
/// fuzz/regressions/README.md lists means one was lost); the corpus may
/// shrink under `cargo fuzz cmin`, so its minimum is looser.
pub fn replay(target: &str, run: fn(&[u8]), corpus: usize, regressions: usize) {
    let replayed = replay_dir("corpus", target, run);
    assert!(
        replayed >= corpus,
        "replayed {replayed} of fuzz/corpus/{target}, expected at least {corpus}"
    );
    let replayed = replay_dir("regressions", target, run);
    assert!(
        replayed >= regressions,
        "replayed {replayed} of fuzz/regressions/{target}, expected at least {regressions}"
    );
}
