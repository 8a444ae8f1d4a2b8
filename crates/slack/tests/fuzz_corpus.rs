//! Replays the `slack` fuzz target's corpus and regression inputs on stable
//! Rust, so `make test` keeps them passing without libFuzzer:
//! `fuzz/corpus/slack/` (inputs the campaigns found interesting) and
//! `fuzz/regressions/slack/` (inputs for defects the project fixed, each
//! described in `fuzz/regressions/README.md`). The core's targets are
//! replayed by `crates/core/tests/fuzz_corpus.rs`, with the same helpers.
//!
//! A missing or empty directory fails: a renamed or lost corpus would
//! otherwise pass here having replayed nothing.

#[path = "../../core/tests/support/replay.rs"]
mod replay;

#[test]
fn slack_corpus() {
    // As many regressions as fuzz/regressions/README.md lists.
    replay::replay("slack", gild_slack::fuzzing::slack, 3, 2);
}
