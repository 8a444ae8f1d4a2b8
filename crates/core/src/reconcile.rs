//! What the reconciler does with a bake nobody has moved for too long.
//!
//! Events can be lost for good: a rule's retries and dead-letter queue run
//! out, a function is down for a day. The reconciler runs on a schedule,
//! reads the bakes that are not terminal, and for each one past its stage's
//! deadline decides from the ledger record and what CodeBuild says of the
//! build what the missing event would have said. It then drives the bake
//! through the same completion work and the same table the event handlers
//! use ([`crate::completion::work`]), so a late original event afterwards
//! finds a state that calls for nothing.
//!
//! The deadline of a stage that waits on a build is the build project's
//! timeout plus a margin: before that, a missing event may still come. A
//! stage that waits on no build (`requested`, `baked`, `validated`) should
//! last one invocation; its deadline is the lease plus the margin.

use serde::Serialize;

use crate::completion::{self, Completion, Finished, Projects};
use crate::event::BuildStateChange;
use crate::ledger::BakeRecord;
use crate::state::BakeState;

/// How long each stage may go without a change before the reconciler looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The bake project's timeout, seconds.
    pub bake_build: i64,
    /// The test project's timeout, seconds.
    pub test_build: i64,
    /// The longest lease a handler holds, seconds.
    pub lease: i64,
    /// Added to every deadline: event delivery, the rule's retries, the
    /// handler's own retries.
    pub margin: i64,
}

impl Deadlines {
    /// Default margin, minutes: the reconciler's default interval (the
    /// stack's `ReconcileIntervalMinutes`).
    pub const DEFAULT_MARGIN_MINUTES: i64 = 15;
    /// The stack's defaults for the projects' build timeouts and their
    /// queued timeout (`BakeTimeoutMinutes`, `TestTimeoutMinutes`,
    /// `BuildQueuedTimeoutMinutes`), minutes.
    pub const DEFAULT_BAKE_TIMEOUT_MINUTES: i64 = 480;
    pub const DEFAULT_TEST_TIMEOUT_MINUTES: i64 = 120;
    pub const DEFAULT_QUEUED_TIMEOUT_MINUTES: i64 = 480;
    /// The longest lease a handler holds by default (the trigger's:
    /// its 300 s timeout plus 30), seconds.
    pub const DEFAULT_LONGEST_LEASE_SECS: i64 = 330;

    /// From the projects' timeouts: a build may wait in CodeBuild's queue,
    /// then run, before it must have ended.
    pub fn from_timeouts(
        bake_minutes: i64,
        test_minutes: i64,
        queued_minutes: i64,
        lease_secs: i64,
        margin_minutes: i64,
    ) -> Self {
        Deadlines {
            bake_build: (queued_minutes + bake_minutes) * 60,
            test_build: (queued_minutes + test_minutes) * 60,
            lease: lease_secs,
            margin: margin_minutes * 60,
        }
    }

    /// Seconds after the bake's last change at which `state` is overdue;
    /// `None` for states the reconciler leaves alone (terminal, queued:
    /// a queued bake waits for a slot, and the reconciler's queue drain is
    /// what starts it).
    pub fn of(&self, state: BakeState) -> Option<i64> {
        let waited = match state {
            BakeState::Requested | BakeState::Baked | BakeState::Validated => self.lease,
            BakeState::Baking => self.bake_build,
            BakeState::Testing | BakeState::Validating => self.test_build,
            // A waiting child is resolved by its parent's outcome, however
            // long the parent takes (`waiting`).
            BakeState::Queued
            | BakeState::Waiting
            | BakeState::Promoted
            | BakeState::Failed
            | BakeState::Reported
            | BakeState::Superseded => return None,
        };
        Some(waited + self.margin)
    }
}

/// What to ask about an overdue bake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// Ask CodeBuild how this build ended (`BatchGetBuilds`).
    Build(String),
    /// Nothing to ask: the record says what is missing.
    Decided(Verdict),
}

/// What the reconciler does with an overdue bake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Drive the bake as this completion would have; the same work table
    /// decides what that means from the bake's state.
    Resume {
        completion: Completion,
        build_id: String,
        why: String,
    },
    /// Leave it for now.
    Wait { why: String },
}

/// The overdue bakes of `records` at `now`, oldest change first. A bake
/// whose lock is live is being worked on and is not overdue.
pub fn overdue<'a>(
    records: &'a [BakeRecord],
    now: i64,
    deadlines: &Deadlines,
) -> Vec<&'a BakeRecord> {
    let mut found: Vec<&BakeRecord> = records
        .iter()
        .filter(|r| r.lease_until < now)
        .filter(|r| {
            deadlines
                .of(r.state)
                .is_some_and(|after| now - r.updated_at > after)
        })
        .collect();
    found.sort_by_key(|r| (r.updated_at, r.key.clone()));
    found
}

/// The first question about an overdue bake.
pub fn look(record: &BakeRecord) -> Look {
    let resume = |completion, build: &Option<String>, why: &str| {
        Look::Decided(Verdict::Resume {
            completion,
            build_id: build.clone().unwrap_or_default(),
            why: why.to_owned(),
        })
    };
    match record.state {
        // The trigger claimed the bake and never recorded a build: it died
        // in between and its event is gone.
        BakeState::Requested => resume(
            Completion::NeverStarted,
            &None,
            "claimed, but no build was ever recorded for it",
        ),
        BakeState::Baking => match &record.build_id {
            Some(build) => Look::Build(build.clone()),
            None => resume(
                Completion::NeverStarted,
                &None,
                "baking, but no build is recorded for it",
            ),
        },
        // The bake build succeeded and was tagged; starting the test build
        // did not finish. The bake build's success is what resumes it.
        BakeState::Baked => resume(
            Completion::BakeSucceeded,
            &record.build_id,
            "baked, but its test build was never started",
        ),
        BakeState::Testing | BakeState::Validating => match &record.test_build_id {
            Some(build) => Look::Build(build.clone()),
            None => Look::Decided(Verdict::Wait {
                why: format!("{}, but no test build is recorded", record.state),
            }),
        },
        // The test passed; only the promotion is left. CodeBuild is still
        // asked about the test build, for the links its announcement gives
        // (an answer decided from the record alone had no test log).
        BakeState::Validated => match &record.test_build_id {
            Some(build) => Look::Build(build.clone()),
            None => resume(
                Completion::TestPassed,
                &None,
                "validated, but never promoted",
            ),
        },
        BakeState::Queued
        | BakeState::Waiting
        | BakeState::Promoted
        | BakeState::Failed
        | BakeState::Reported
        | BakeState::Superseded => Look::Decided(Verdict::Wait {
            why: format!("{} bakes are not the reconciler's", record.state),
        }),
    }
}

/// What CodeBuild's answer about the bake's build means. `build` is `None`
/// when CodeBuild knows no such build.
pub fn judge(
    record: &BakeRecord,
    build_id: &str,
    build: Option<&BuildStateChange>,
    projects: &Projects,
) -> Verdict {
    let testing = matches!(record.state, BakeState::Testing | BakeState::Validating);
    if record.state == BakeState::Validated {
        // The record already says the test passed; CodeBuild's answer only
        // adds what it knows of the build (its log), never a verdict.
        return Verdict::Resume {
            completion: Completion::TestPassed,
            build_id: build_id.to_owned(),
            why: "validated, but never promoted (or, for a candidate, reported)".into(),
        };
    }
    let Some(build) = build else {
        // CodeBuild keeps builds for a year: a build it does not know
        // will never report; the stage failed.
        return Verdict::Resume {
            completion: if testing {
                Completion::TestFailed
            } else {
                Completion::BakeFailed
            },
            build_id: build_id.to_owned(),
            why: format!("CodeBuild knows no build {build_id}"),
        };
    };
    match completion::classify(build, projects) {
        Ok(finished) if finished.completion.is_bake() != testing => Verdict::Resume {
            completion: finished.completion,
            build_id: build_id.to_owned(),
            why: format!(
                "build {build_id} ended {} and its event never arrived",
                build.status_text
            ),
        },
        Ok(finished) => Verdict::Wait {
            why: format!(
                "build {build_id} is a {:?} build, not what a {} bake waits for",
                finished.completion, record.state
            ),
        },
        Err(reason) => Verdict::Wait { why: reason },
    }
}

/// The completion a verdict stands for, as the driver takes it: built from
/// the ledger record (and CodeBuild's answer, when there was one), never
/// from an event.
pub fn finished(
    record: &BakeRecord,
    completion: Completion,
    build_id: &str,
    build: Option<&BuildStateChange>,
    why: &str,
) -> Finished {
    let exported = |name: &str| {
        build
            .and_then(|b| b.exported.get(name))
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    Finished {
        completion,
        build_id: build_id.to_owned(),
        status: build.map_or_else(|| "NOT_REPORTED".into(), |b| b.status_text.clone()),
        family: Some(record.key.family.clone()),
        trigger: Some(record.trigger),
        key: Some(record.key.clone()),
        image: record
            .image
            .clone()
            .or_else(|| exported(completion::ENV_AMI_ID)),
        base_image: exported(completion::ENV_BASE_AMI),
        commit: record.commit.clone(),
        log_link: build.and_then(|b| b.log_link.clone()),
        suites: exported(completion::ENV_TEST_SUITES),
        found: Some(format!("found by the reconciler: {why}")),
    }
}

/// `now` as the RFC 3339 time an event would carry, for tags and messages.
pub fn timestamp(now: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| now.to_string())
}

/// What the reconciler does with a bake still waiting for its parent. The
/// parent's own steps release or fail its children before its state moves,
/// so this is the backstop for a parent bake that never came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Waiting {
    Wait {
        why: String,
    },
    /// Queue it to bake from the parent's promoted image.
    Release {
        image: String,
    },
    /// End it at stage `parent`.
    Fail {
        reason: String,
    },
}

/// `parent` is the parent's bake of the child's run (same dedupe key).
pub fn waiting(
    child: &BakeRecord,
    parent: Option<&BakeRecord>,
    now: i64,
    deadlines: &Deadlines,
) -> Waiting {
    let parent_family = child.parent.as_deref().unwrap_or("its parent");
    match parent {
        None if now - child.updated_at > deadlines.lease + deadlines.margin => Waiting::Fail {
            reason: format!(
                "{parent_family}'s bake {} was never claimed, so there is no new image to bake from",
                child.key.dedupe_key
            ),
        },
        None => Waiting::Wait {
            why: format!("{parent_family}'s bake is not claimed yet"),
        },
        Some(p) => match (p.state, &p.image) {
            (BakeState::Promoted, Some(image)) => Waiting::Release {
                image: image.clone(),
            },
            (BakeState::Failed | BakeState::Superseded | BakeState::Promoted, _) => {
                Waiting::Fail {
                    reason: format!(
                        "{parent_family}'s bake ended {}{}",
                        p.state,
                        p.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                }
            }
            (state, _) => Waiting::Wait {
                why: format!("{parent_family}'s bake is {state}"),
            },
        },
    }
}
