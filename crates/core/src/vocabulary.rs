//! The words every other module speaks, defined once and depending on
//! nothing else in the crate: which bake ([`BakeKey`]), what set it off
//! ([`Trigger`]), what a push is compared with ([`DiffBase`]), a CodeBuild
//! build's id ([`BuildId`]), and the `GILD_*` names of the build
//! environment ([`env`]), the contract between the functions, the
//! buildspecs' checks and the tests.
//!
//! This module imports no other module of the crate, so no decision module
//! can reach another through it: it is the leaf that keeps the module graph
//! free of cycles (`crates/core/tests/module_graph.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `GILD_*` variables of the bake and test builds. The functions set
/// the first four when they start a build; the bake buildspec exports
/// [`env::AMI_ID`] and [`env::BASE_AMI`]; the test build gets the AMI in
/// [`env::AMI_ID`].
pub mod env {
    pub const FAMILY: &str = "GILD_FAMILY";
    pub const DEDUPE_KEY: &str = "GILD_DEDUPE_KEY";
    pub const TRIGGER: &str = "GILD_TRIGGER";
    pub const SOURCE_COMMIT: &str = "GILD_SOURCE_COMMIT";
    pub const AMI_ID: &str = "GILD_AMI_ID";
    pub const BASE_AMI: &str = "GILD_BASE_AMI";
    /// A layered family's bake: the parent's image to bake from (bake.yml
    /// reads the parent's promoted image itself when it is not given).
    pub const SOURCE_AMI: &str = "GILD_SOURCE_AMI";
    pub const PARENT_FAMILY: &str = "GILD_PARENT_FAMILY";

    /// Every name above, for checks that the buildspecs and the adapters
    /// agree on them.
    pub const ALL: [&str; 8] = [
        FAMILY,
        DEDUPE_KEY,
        TRIGGER,
        SOURCE_COMMIT,
        AMI_ID,
        BASE_AMI,
        SOURCE_AMI,
        PARENT_FAMILY,
    ];
}

/// Deployment defaults, defined once: the stack's parameter defaults, which
/// the functions, `gild` and the planner fall back to when not told.
pub mod defaults {
    pub const TRACKED_BRANCH: &str = "main";
    pub const BAKE_PROJECT: &str = "gild-bake";
    pub const TEST_PROJECT: &str = "gild-test";
    /// Each family's promoted AMI is at `<prefix>/<family>/ami`.
    pub const PARAMETER_PREFIX: &str = "/gild";
}

/// What set a bake off. Part of the dedupe key, the build's environment and
/// the AMI's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Push,
    Manual,
    /// A pull request's head: a candidate, tested and reported, never
    /// promoted (`state::Lane`).
    PullRequest,
    /// The family's parent was promoted: rebuilt from the parent's new
    /// image (dedupe key `parent:<parent image>`).
    Parent,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Push => "push",
            Trigger::Manual => "manual",
            Trigger::PullRequest => "pull_request",
            Trigger::Parent => "parent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "schedule" => Some(Trigger::Schedule),
            "push" => Some(Trigger::Push),
            "manual" => Some(Trigger::Manual),
            "pull_request" => Some(Trigger::PullRequest),
            "parent" => Some(Trigger::Parent),
            _ => None,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a push's changes are computed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffBase {
    Commit(String),
    /// The tracked branch was just created, so there is no earlier tip of it
    /// to compare with: every file counts as added.
    EmptyTree,
}

/// One bake: a family and the dedupe key that makes it happen once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BakeKey {
    pub family: String,
    /// `push:<commit>`, `schedule:<YYYY-MM>`, `manual:<event id>` or
    /// `pr:<repository>#<number>:<head sha>`.
    pub dedupe_key: String,
}

impl BakeKey {
    pub fn new(family: impl Into<String>, dedupe_key: impl Into<String>) -> Self {
        BakeKey {
            family: family.into(),
            dedupe_key: dedupe_key.into(),
        }
    }

    /// A stable token for CodeBuild's `idempotencyToken`, so a StartBuild
    /// retried after a timeout does not start a second build.
    pub fn idempotency_token(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}\n{}", self.family, self.dedupe_key));
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// A CodeBuild build, as `project:uuid`. Events name builds by ARN and
/// StartBuild answers with the short id; both read into the same value, so
/// comparing two builds never depends on which form each side had.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BuildId(String);

impl BuildId {
    /// From `project:uuid` or `arn:aws:codebuild:…:build/project:uuid`.
    pub fn new(id_or_arn: &str) -> Self {
        BuildId(BuildId::short(id_or_arn).to_owned())
    }

    /// The `project:uuid` part of an id or ARN, without allocating.
    pub fn short(id_or_arn: &str) -> &str {
        id_or_arn.rsplit('/').next().unwrap_or(id_or_arn)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The project the build belongs to.
    pub fn project(&self) -> &str {
        self.0.split(':').next().unwrap_or(&self.0)
    }

    /// Whether `other` (an id or an ARN) names this build.
    pub fn is(&self, other: &str) -> bool {
        BuildId::short(other) == self.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_from_arns_and_ids_are_the_same_build() {
        let arn = "arn:aws:codebuild:us-east-1:111122223333:build/gild-bake:3e4f";
        let id = BuildId::new(arn);
        assert_eq!(id, BuildId::new("gild-bake:3e4f"));
        assert_eq!(id.project(), "gild-bake");
        assert!(id.is("gild-bake:3e4f") && id.is(arn));
        assert!(!id.is("gild-test:3e4f"));
    }

    #[test]
    fn triggers_round_trip() {
        for t in [
            Trigger::Schedule,
            Trigger::Push,
            Trigger::Manual,
            Trigger::PullRequest,
        ] {
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        assert_eq!(Trigger::parse("cron"), None);
    }
}
