//! What a finished CodeBuild build means for its bake, and the work each
//! state of the bake calls for.
//!
//! A completion handler reads the bake's state from the ledger and asks
//! [`work`] what to do; it does that one piece of work under the ledger's
//! lock, advances the state, and asks again, until [`work`] says nothing
//! applies. A duplicate or out-of-order event therefore finds nothing to do,
//! and a retried one resumes where the failed attempt stopped.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{BuildStateChange, BuildStatus};
use crate::state::{self, BakeState, Lane, Stage, Step};
use crate::vocabulary::{defaults, env, BakeKey, BuildId, Trigger};

/// Environment variable names shared with the buildspecs
/// (`vocabulary::env`, under the names the callers know).
pub use crate::vocabulary::env::{
    AMI_ID as ENV_AMI_ID, BASE_AMI as ENV_BASE_AMI, DEDUPE_KEY as ENV_DEDUPE_KEY,
    FAMILY as ENV_FAMILY,
};

/// Tag keys gild puts on AMIs and snapshots.
pub mod tags {
    pub const MANAGED: &str = "gild:managed";
    pub const FAMILY: &str = "gild:family";
    pub const TRIGGER: &str = "gild:trigger";
    pub const SOURCE_COMMIT: &str = "gild:source-commit";
    pub const BUILD_ID: &str = "gild:build-id";
    pub const BUILD_LOG: &str = "gild:build-log";
    pub const BASE_AMI: &str = "gild:base-ami";
    pub const STATE: &str = "gild:state";
    pub const CREATED_AT: &str = "gild:created-at";
    /// `pr-<number>` on a pull request's candidate images and snapshots:
    /// what removes them, and what retention and rollback never count.
    pub const CANDIDATE: &str = "gild:candidate";
    /// When its bake was asked for (epoch seconds): which of two images of a
    /// family is the newer, whatever order their tests end in.
    pub const REQUESTED_AT: &str = "gild:requested-at";
    /// When a kept candidate image is removed (`candidate_ttl_hours`).
    pub const EXPIRES_AT: &str = "gild:expires-at";
    /// A layered family's image: the parent family and the parent's image
    /// it was baked from.
    pub const PARENT_FAMILY: &str = "gild:parent-family";
    pub const PARENT_AMI: &str = "gild:parent-ami";
}

/// The test build's suites, exported by test.yml (see `review::Suite`).
pub const ENV_TEST_SUITES: &str = "GILD_TEST_SUITES";

/// The two CodeBuild projects, told apart by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projects {
    pub bake: String,
    pub test: String,
}

impl Default for Projects {
    fn default() -> Self {
        Projects {
            bake: defaults::BAKE_PROJECT.into(),
            test: defaults::TEST_PROJECT.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    BakeSucceeded,
    BakeFailed,
    TestPassed,
    TestFailed,
    /// No event says this: the reconciler found the bake claimed with no
    /// build recorded, long after the claim's lease ran out. `classify`
    /// never returns it, so no event can fail a bake this way.
    NeverStarted,
}

impl Completion {
    /// The state a bake is in when this completion is expected.
    pub fn expected_state(self) -> BakeState {
        match self {
            Completion::BakeSucceeded | Completion::BakeFailed => BakeState::Baking,
            Completion::TestPassed | Completion::TestFailed => BakeState::Testing,
            Completion::NeverStarted => BakeState::Requested,
        }
    }

    /// Whether the bake build (not the test build) is the one it is about.
    pub fn is_bake(self) -> bool {
        matches!(
            self,
            Completion::BakeSucceeded | Completion::BakeFailed | Completion::NeverStarted
        )
    }
}

/// A completed build of one of gild's projects, with what it tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub completion: Completion,
    pub build_id: String,
    pub status: String,
    pub family: Option<String>,
    /// What set the bake off, from the build's environment (the ledger's
    /// record is what the handlers trust; this is for plans).
    pub trigger: Option<Trigger>,
    /// `None` for builds not started by gild (no dedupe key in their env).
    pub key: Option<BakeKey>,
    /// The AMI: exported by the bake, or given to the test build.
    pub image: Option<String>,
    pub base_image: Option<String>,
    pub commit: Option<String>,
    pub log_link: Option<String>,
    /// The test build's suites (`GILD_TEST_SUITES`), raw.
    pub suites: Option<String>,
    /// Why the reconciler, not an event, reports this completion; `None`
    /// for an event. It goes into the failure's reason and announcement.
    pub found: Option<String>,
}

/// Reads a build state change; `Err(reason)` when gild has nothing to do with it.
pub fn classify(change: &BuildStateChange, projects: &Projects) -> Result<Finished, String> {
    let is_bake = change.project_name == projects.bake;
    if !is_bake && change.project_name != projects.test {
        return Err(format!(
            "project `{}` is neither the bake project `{}` nor the test project `{}`",
            change.project_name, projects.bake, projects.test
        ));
    }
    let completion = match (is_bake, change.status) {
        (true, BuildStatus::Succeeded) => Completion::BakeSucceeded,
        (false, BuildStatus::Succeeded) => Completion::TestPassed,
        (true, status) if status.is_failure() => Completion::BakeFailed,
        (false, status) if status.is_failure() => Completion::TestFailed,
        _ => {
            return Err(format!(
                "build {} is {}: only completed builds matter",
                change.build_id, change.status_text
            ))
        }
    };
    let var = |vars: &BTreeMap<String, String>, name: &str| {
        vars.get(name).filter(|v| !v.trim().is_empty()).cloned()
    };
    let family = var(&change.env, ENV_FAMILY).or_else(|| var(&change.exported, ENV_FAMILY));
    let key = match (&family, var(&change.env, ENV_DEDUPE_KEY)) {
        (Some(family), Some(dedupe)) => Some(BakeKey::new(family.clone(), dedupe)),
        _ => None,
    };
    let image = if is_bake {
        var(&change.exported, ENV_AMI_ID)
    } else {
        var(&change.env, ENV_AMI_ID)
    };
    Ok(Finished {
        completion,
        build_id: change.build_id.clone(),
        status: change.status_text.clone(),
        family,
        trigger: var(&change.env, env::TRIGGER).and_then(|t| Trigger::parse(&t)),
        key,
        image,
        base_image: var(&change.exported, ENV_BASE_AMI),
        commit: var(&change.env, env::SOURCE_COMMIT).or_else(|| change.source_version.clone()),
        log_link: change.log_link.clone(),
        suites: (!is_bake)
            .then(|| var(&change.exported, ENV_TEST_SUITES))
            .flatten(),
        found: None,
    })
}

/// One piece of work a completion calls for in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Verify the AMI exists; tag it and its snapshots with provenance.
    TagBaked,
    /// Start the test build for the AMI.
    StartTest,
    /// Record that the tests passed.
    Validate,
    /// Point the family's parameter at the AMI and announce it.
    Promote,
    /// A candidate passed: report it on its pull request, remove its image
    /// unless it is kept for people to launch.
    Report,
    /// Remove what the failed stage left and announce the failure.
    Cleanup(Stage),
}

/// The work `completion` calls for when a bake of `lane` is in `state`,
/// and the step that records it; `None` when the completion does not apply.
pub fn work(lane: Lane, state: BakeState, completion: Completion) -> Option<(Work, Step)> {
    let found = match (state, completion) {
        (BakeState::Baking, Completion::BakeSucceeded) => (Work::TagBaked, Step::BakeSucceeded),
        (BakeState::Baked, Completion::BakeSucceeded) => (Work::StartTest, Step::TestStarted),
        (BakeState::Baking, Completion::BakeFailed)
        | (BakeState::Requested | BakeState::Baking, Completion::NeverStarted) => {
            (Work::Cleanup(Stage::Bake), Step::Failed(Stage::Bake))
        }
        (BakeState::Testing | BakeState::Validating, Completion::TestPassed) => {
            (Work::Validate, Step::TestPassed)
        }
        (BakeState::Validated, Completion::TestPassed) => match lane {
            Lane::Production => (Work::Promote, Step::Promoted),
            Lane::Candidate => (Work::Report, Step::Reported),
        },
        (BakeState::Testing | BakeState::Validating, Completion::TestFailed) => {
            (Work::Cleanup(Stage::Test), Step::Failed(Stage::Test))
        }
        _ => return None,
    };
    // The table above only names steps the state model allows in the lane.
    state::next(lane, state, found.1).map(|_| found)
}

/// All the work a completion causes from the state it expects, in order.
pub fn work_chain(lane: Lane, completion: Completion) -> Vec<Work> {
    let mut state = completion.expected_state();
    let mut chain = Vec::new();
    while let Some((work, step)) = work(lane, state, completion) {
        chain.push(work);
        match state::next(lane, state, step) {
            Some(next) => state = next,
            None => break,
        }
    }
    chain
}

/// What the AMI and its snapshots are tagged with when baked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance<'a> {
    pub family: &'a str,
    pub trigger: &'a str,
    pub commit: Option<&'a str>,
    pub build_id: &'a str,
    pub build_log: Option<&'a str>,
    pub base_image: Option<&'a str>,
    pub created_at: &'a str,
    /// When the bake was asked for, epoch seconds.
    pub requested_at: &'a str,
    /// `pr-<number>` for a pull request's candidate.
    pub candidate: Option<&'a str>,
    /// A layered family's parent and the parent image it was baked from.
    pub parent: Option<(&'a str, &'a str)>,
}

pub fn provenance_tags(p: &Provenance<'_>) -> Vec<(String, String)> {
    let pairs = [
        (tags::MANAGED, "true"),
        (tags::FAMILY, p.family),
        (tags::TRIGGER, p.trigger),
        (tags::SOURCE_COMMIT, p.commit.unwrap_or("unknown")),
        (tags::BUILD_ID, p.build_id),
        (tags::BUILD_LOG, p.build_log.unwrap_or("unknown")),
        (tags::BASE_AMI, p.base_image.unwrap_or("unknown")),
        (tags::STATE, BakeState::Baked.as_str()),
        (tags::CREATED_AT, p.created_at),
        (tags::REQUESTED_AT, p.requested_at),
    ];
    let parent = p
        .parent
        .map(|(family, image)| [(tags::PARENT_FAMILY, family), (tags::PARENT_AMI, image)]);
    pairs
        .into_iter()
        .chain(p.candidate.map(|c| (tags::CANDIDATE, c)))
        .chain(parent.into_iter().flatten())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The tag that follows the bake's state on the AMI.
pub fn state_tag(state: BakeState) -> Vec<(String, String)> {
    vec![(tags::STATE.to_owned(), state.as_str().to_owned())]
}

/// The SSM parameter a family's current image is published in.
pub fn parameter_name(prefix: &str, family: &str) -> String {
    format!("{}/{family}/ami", prefix.trim_end_matches('/'))
}

/// Console link to a CodeBuild build (`project:uuid` or its ARN), and to
/// its test reports.
pub fn build_console_link(region: &str, build_id: &str, reports: bool) -> String {
    let id = BuildId::new(build_id);
    let project = id.project();
    let encoded = id.as_str().replace(':', "%3A");
    let page = if reports { "reports" } else { "log" };
    format!("https://{region}.console.aws.amazon.com/codesuite/codebuild/projects/{project}/build/{encoded}/{page}?region={region}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BuildStatus;

    fn change(project: &str, status: BuildStatus, text: &str) -> BuildStateChange {
        BuildStateChange {
            project_name: project.into(),
            build_id: format!("arn:aws:codebuild:us-east-1:1:build/{project}:u-1"),
            status,
            status_text: text.into(),
            env: BTreeMap::from([
                (ENV_FAMILY.into(), "debian".into()),
                (ENV_DEDUPE_KEY.into(), "push:abc".into()),
                (ENV_AMI_ID.into(), "ami-test".into()),
            ]),
            exported: BTreeMap::from([(ENV_AMI_ID.into(), "ami-baked".into())]),
            source_version: Some("abc".into()),
            log_link: None,
        }
    }

    #[test]
    fn classify_tells_projects_and_outcomes_apart() {
        let p = Projects::default();
        let f = classify(
            &change("gild-bake", BuildStatus::Succeeded, "SUCCEEDED"),
            &p,
        )
        .expect("bake");
        assert_eq!(f.completion, Completion::BakeSucceeded);
        assert_eq!(f.image.as_deref(), Some("ami-baked"));
        assert_eq!(f.key, Some(BakeKey::new("debian", "push:abc")));
        let f =
            classify(&change("gild-test", BuildStatus::TimedOut, "TIMED_OUT"), &p).expect("test");
        assert_eq!(f.completion, Completion::TestFailed);
        assert_eq!(f.image.as_deref(), Some("ami-test"));
        for status in [
            BuildStatus::Failed,
            BuildStatus::Fault,
            BuildStatus::Stopped,
        ] {
            let f = classify(&change("gild-bake", status, "X"), &p).expect("bake");
            assert_eq!(f.completion, Completion::BakeFailed);
        }
        assert!(classify(
            &change("gild-bake", BuildStatus::InProgress, "IN_PROGRESS"),
            &p
        )
        .expect_err("in progress")
        .contains("IN_PROGRESS"));
        assert!(classify(&change("other", BuildStatus::Succeeded, "SUCCEEDED"), &p).is_err());
    }

    #[test]
    fn work_chains_per_completion() {
        assert_eq!(
            work_chain(Lane::Production, Completion::BakeSucceeded),
            vec![Work::TagBaked, Work::StartTest]
        );
        assert_eq!(
            work_chain(Lane::Production, Completion::BakeFailed),
            vec![Work::Cleanup(Stage::Bake)]
        );
        assert_eq!(
            work_chain(Lane::Production, Completion::TestPassed),
            vec![Work::Validate, Work::Promote]
        );
        assert_eq!(
            work_chain(Lane::Production, Completion::TestFailed),
            vec![Work::Cleanup(Stage::Test)]
        );
        assert_eq!(
            work_chain(Lane::Production, Completion::NeverStarted),
            vec![Work::Cleanup(Stage::Bake)]
        );
    }

    #[test]
    fn a_candidate_is_reported_where_a_production_bake_is_promoted() {
        assert_eq!(
            work_chain(Lane::Candidate, Completion::TestPassed),
            vec![Work::Validate, Work::Report]
        );
        assert_eq!(
            work(
                Lane::Candidate,
                BakeState::Validating,
                Completion::TestPassed
            ),
            Some((Work::Validate, Step::TestPassed))
        );
        assert_eq!(
            work(
                Lane::Candidate,
                BakeState::Validating,
                Completion::TestFailed
            ),
            Some((Work::Cleanup(Stage::Test), Step::Failed(Stage::Test)))
        );
        // A production bake never validates without a test build of its own.
        assert_eq!(
            work(
                Lane::Production,
                BakeState::Validating,
                Completion::TestPassed
            ),
            None
        );
        for state in BakeState::ALL {
            for completion in [
                Completion::BakeSucceeded,
                Completion::BakeFailed,
                Completion::TestPassed,
                Completion::TestFailed,
                Completion::NeverStarted,
            ] {
                let found = work(Lane::Candidate, state, completion);
                assert!(
                    !matches!(found, Some((Work::Promote, _))),
                    "{state} {completion:?}"
                );
            }
        }
    }

    #[test]
    fn late_and_early_completions_find_no_work() {
        // A bake completion for a bake already promoted or failed.
        for state in [BakeState::Promoted, BakeState::Failed, BakeState::Testing] {
            assert_eq!(
                work(Lane::Production, state, Completion::BakeSucceeded),
                None,
                "{state}"
            );
            assert_eq!(
                work(Lane::Production, state, Completion::BakeFailed),
                None,
                "{state}"
            );
        }
        // A test result before the bake result.
        assert_eq!(
            work(Lane::Production, BakeState::Baking, Completion::TestPassed),
            None
        );
        assert_eq!(
            work(Lane::Production, BakeState::Baked, Completion::TestFailed),
            None
        );
        assert_eq!(
            work(
                Lane::Production,
                BakeState::Requested,
                Completion::TestPassed
            ),
            None
        );
    }

    #[test]
    fn links_and_names() {
        assert_eq!(parameter_name("/gild/", "debian"), "/gild/debian/ami");
        let link = build_console_link(
            "eu-west-1",
            "arn:aws:codebuild:eu-west-1:1:build/gild-test:abc-1",
            true,
        );
        assert_eq!(link, "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/projects/gild-test/build/gild-test%3Aabc-1/reports?region=eu-west-1");
    }
}
