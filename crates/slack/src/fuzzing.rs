//! The entry point the `slack` fuzz target (`fuzz/`) and the corpus replay
//! (`tests/fuzz_corpus.rs`) share: it takes raw bytes and must never panic.

use crate::{block_kit_problems, render_body, RepositoryLink};

/// The announcement JSON slack-notify reads from SNS: parse and render;
/// whatever parses renders to a payload within Block Kit's limits.
pub fn slack(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    for link in [
        RepositoryLink::CodeCommit {
            repository: "platform-images".into(),
        },
        RepositoryLink::GitHub {
            owner: "acme".into(),
            name: "platform-images".into(),
        },
    ] {
        if let Ok(message) = render_body(body, &link) {
            let problems = block_kit_problems(&message.to_json());
            assert!(problems.is_empty(), "invalid Block Kit: {problems:?}");
        }
    }
}
