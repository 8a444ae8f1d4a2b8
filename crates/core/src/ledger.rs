//! The ledger's records: one per family and dedupe key.
//!
//! The ledger is what makes at-least-once delivery harmless. A bake is
//! claimed with a conditional write *before* its build starts, so a second
//! delivery of the same event finds the claim and starts nothing.

use serde::{Deserialize, Serialize};

use crate::bom::PackageChanges;
use crate::pull_request::PullRequest;
use crate::state::{BakeState, Lane, Stage};
use crate::vocabulary::Trigger;

/// The lane a trigger's bakes take: a pull request's are candidates.
pub fn lane_of(trigger: Trigger) -> Lane {
    match trigger {
        Trigger::PullRequest => Lane::Candidate,
        Trigger::Schedule | Trigger::Push | Trigger::Manual | Trigger::Parent => Lane::Production,
    }
}

/// How long a claim or a step lock is held by default; the stack sets it per
/// function. A step lock outlives its function's timeout, so a live step is
/// never overtaken (announcing is not idempotent); a trigger claim ends
/// before Lambda's first retry of a crashed invocation (a minute later), so
/// the retry takes over, which the StartBuild token makes harmless for a
/// live one (ARCHITECTURE.md, invariants).
pub const DEFAULT_LEASE_SECS: i64 = 90;

pub use crate::vocabulary::BakeKey;

/// A ledger item as stored (and as `gild status --json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BakeRecord {
    pub key: BakeKey,
    pub trigger: Trigger,
    pub commit: Option<String>,
    pub state: BakeState,
    pub build_id: Option<String>,
    pub image: Option<String>,
    pub test_build_id: Option<String>,
    pub failed_stage: Option<Stage>,
    pub reason: Option<String>,
    /// Epoch seconds.
    pub requested_at: i64,
    pub updated_at: i64,
    /// Epoch seconds until which the claim or step lock is held.
    pub lease_until: i64,
    /// The invocation holding the claim or lock. A write whose answer was
    /// lost is retried by the SDK; the retry finds its own owner token and
    /// succeeds instead of mistaking its own claim for someone else's.
    pub owner: Option<String>,
    /// The pull request a candidate validates (`None` for production bakes).
    pub pull_request: Option<PullRequest>,
    /// The test build's suites as it exported them (`GILD_TEST_SUITES`),
    /// for the pull-request report; `None` until the test ended.
    pub suites: Option<String>,
    /// A layered family's parent: the family whose image this bake starts
    /// from (and, while `waiting`, whose bake of the same dedupe key it
    /// waits for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The parent's image this bake started from, once it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_image: Option<String>,
    /// The family's children when the bake was planned: rebuilt from this
    /// bake's image once it is promoted, or failed with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// What the bake's packages changed against the family's promoted
    /// image, decided when the bake finished (`bom::compare`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackageChanges>,
}

impl BakeRecord {
    /// Writes `change`'s fields that are set onto the record, as the
    /// ledger's `advance` does.
    pub fn apply(&mut self, change: &Change) {
        let fields = [
            (&mut self.build_id, &change.build_id),
            (&mut self.image, &change.image),
            (&mut self.test_build_id, &change.test_build_id),
            (&mut self.reason, &change.reason),
            (&mut self.suites, &change.suites),
            (&mut self.parent_image, &change.parent_image),
        ];
        for (field, value) in fields {
            if value.is_some() {
                field.clone_from(value);
            }
        }
        if change.failed_stage.is_some() {
            self.failed_stage = change.failed_stage;
        }
        if change.packages.is_some() {
            self.packages.clone_from(&change.packages);
        }
    }

    /// Production or candidate: from the trigger, fixed at the claim.
    pub fn lane(&self) -> Lane {
        lane_of(self.trigger)
    }

    /// Another invocation than `owner` holds this record's lock right now.
    pub fn is_locked_against(&self, owner: &str, now: i64) -> bool {
        self.lease_until >= now && self.owner.as_deref() != Some(owner)
    }
}

impl BakeRecord {
    pub fn requested(
        key: BakeKey,
        trigger: Trigger,
        commit: Option<String>,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> Self {
        BakeRecord {
            key,
            trigger,
            commit,
            state: BakeState::Requested,
            build_id: None,
            image: None,
            test_build_id: None,
            failed_stage: None,
            reason: None,
            requested_at: now,
            updated_at: now,
            lease_until: now + lease_secs,
            owner: Some(owner.to_owned()),
            pull_request: None,
            suites: None,
            parent: None,
            parent_image: None,
            children: Vec::new(),
            packages: None,
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the bake and must start it.
    Claimed,
    /// Someone already has it: a build was started, or a live claim exists.
    Taken(Box<BakeRecord>),
}

/// Fields written together with a state change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub build_id: Option<String>,
    pub image: Option<String>,
    pub test_build_id: Option<String>,
    pub failed_stage: Option<Stage>,
    pub reason: Option<String>,
    pub suites: Option<String>,
    /// The parent's image a waiting child started from.
    pub parent_image: Option<String>,
    /// The bake's packages against the promoted image's.
    pub packages: Option<PackageChanges>,
}
