//! The life of one bake, as data.
//!
//! `requested → baking → baked → testing → validated → promoted`, or `failed`
//! at a stage. A bake that finds CodeBuild's concurrency quota full waits as
//! `requested → queued → baking` (see `queue`). The ledger item holds the
//! current state and the AMI carries it as the `gild:state` tag.
//!
//! A layered family's bake whose parent is being baked in the same run
//! waits (`requested → waiting`, holding no CodeBuild slot) and starts from
//! the parent's new image once that is promoted (`waiting → baking`, or
//! `queued`), or ends `failed` at stage `parent` when the parent fails.
//!
//! A pull request's candidate ([`Lane::Candidate`]) takes the same rows up
//! to `validated`, and then `reported`: the table has no row that promotes
//! a candidate, and none that reports a production bake. A candidate that
//! only tests consumers against the promoted image goes `requested →
//! validating → validated`; a newer head or a closed pull request ends any
//! open candidate as `superseded`.
//!
//! [`TRANSITIONS`] is the law: a state changes only through a
//! [`Transition`], and a `Transition` can only be made from a row of the
//! table ([`Transition::of`]). The ledger's `advance` takes one, so an
//! adapter cannot write a change the table does not allow. A step that does
//! not apply to the current state (a duplicate or out-of-order event) has
//! no transition, and the handler does nothing but log.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BakeState {
    Requested,
    /// Claimed, waiting for a free CodeBuild slot.
    Queued,
    Baking,
    Baked,
    Testing,
    Validated,
    Promoted,
    Failed,
    /// A candidate's test-only run: the consumers' tests on the family's
    /// promoted image, no bake.
    Validating,
    /// A candidate's results went to the pull request. Terminal.
    Reported,
    /// A newer head of the pull request, or its closing, ended the
    /// candidate. Terminal.
    Superseded,
    /// A layered family's bake, waiting for its parent's bake of the same
    /// run to be promoted. Holds no CodeBuild slot.
    Waiting,
}

impl BakeState {
    pub const ALL: [BakeState; 12] = [
        BakeState::Requested,
        BakeState::Queued,
        BakeState::Baking,
        BakeState::Baked,
        BakeState::Testing,
        BakeState::Validated,
        BakeState::Promoted,
        BakeState::Failed,
        BakeState::Validating,
        BakeState::Reported,
        BakeState::Superseded,
        BakeState::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BakeState::Requested => "requested",
            BakeState::Queued => "queued",
            BakeState::Baking => "baking",
            BakeState::Baked => "baked",
            BakeState::Testing => "testing",
            BakeState::Validated => "validated",
            BakeState::Promoted => "promoted",
            BakeState::Failed => "failed",
            BakeState::Validating => "validating",
            BakeState::Reported => "reported",
            BakeState::Superseded => "superseded",
            BakeState::Waiting => "waiting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// No step leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BakeState::Promoted | BakeState::Failed | BakeState::Reported | BakeState::Superseded
        )
    }
}

impl fmt::Display for BakeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which road a bake takes through the state table. A production bake
/// ends promoted; a candidate (a pull request's head) ends reported and
/// never touches a parameter or the production topic. The lane follows
/// from the trigger alone (`ledger::lane_of`), so nothing can make a
/// candidate a production bake after it was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Production,
    Candidate,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Production => "production",
            Lane::Candidate => "candidate",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a failed bake stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Bake,
    Test,
    Promote,
    /// The parent's bake failed, so the child never started: its promoted
    /// image stays.
    Parent,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Bake => "bake",
            Stage::Test => "test",
            Stage::Promote => "promote",
            Stage::Parent => "parent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Bake, Stage::Test, Stage::Promote, Stage::Parent]
            .into_iter()
            .find(|stage| stage.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a bake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No CodeBuild slot was free; the bake waits in the queue.
    Queued,
    /// The trigger started the bake build.
    BakeStarted,
    /// The bake build succeeded and its AMI was tagged.
    BakeSucceeded,
    /// The test build was started for the AMI.
    TestStarted,
    TestPassed,
    /// The family's SSM parameter now points at the AMI.
    Promoted,
    Failed(Stage),
    /// A candidate's test-only build was started against the promoted image.
    ValidationStarted,
    /// A candidate's results were posted to its pull request.
    Reported,
    /// A newer head or the closing of the pull request ended the candidate.
    Superseded,
    /// The parent's bake of the same run is not promoted yet.
    WaitForParent,
}

/// Which bakes a row of the table applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    Both,
    Only(Lane),
}

impl Lanes {
    pub fn admits(self, lane: Lane) -> bool {
        match self {
            Lanes::Both => true,
            Lanes::Only(only) => only == lane,
        }
    }
}

use Lanes::{Both, Only};
const PRODUCTION: Lanes = Only(Lane::Production);
const CANDIDATE: Lanes = Only(Lane::Candidate);

/// Every allowed transition, and the lanes it is allowed in. Anything not
/// listed is a no-op.
pub const TRANSITIONS: &[(BakeState, Step, BakeState, Lanes)] = &[
    (
        BakeState::Requested,
        Step::BakeStarted,
        BakeState::Baking,
        Both,
    ),
    (BakeState::Requested, Step::Queued, BakeState::Queued, Both),
    // The claim was taken but no build was ever recorded (the trigger died
    // between claiming and starting, and its event is gone): the
    // reconciler ends it, so the bake is announced and can be asked again.
    (
        BakeState::Requested,
        Step::Failed(Stage::Bake),
        BakeState::Failed,
        Both,
    ),
    (
        BakeState::Queued,
        Step::BakeStarted,
        BakeState::Baking,
        Both,
    ),
    (
        BakeState::Baking,
        Step::BakeSucceeded,
        BakeState::Baked,
        Both,
    ),
    (
        BakeState::Baking,
        Step::Failed(Stage::Bake),
        BakeState::Failed,
        Both,
    ),
    (
        BakeState::Baked,
        Step::TestStarted,
        BakeState::Testing,
        Both,
    ),
    // Starting the test build can fail for good (project gone): the image
    // was never tested, so it must not linger.
    (
        BakeState::Baked,
        Step::Failed(Stage::Test),
        BakeState::Failed,
        Both,
    ),
    (
        BakeState::Testing,
        Step::TestPassed,
        BakeState::Validated,
        Both,
    ),
    (
        BakeState::Testing,
        Step::Failed(Stage::Test),
        BakeState::Failed,
        Both,
    ),
    (
        BakeState::Validated,
        Step::Promoted,
        BakeState::Promoted,
        PRODUCTION,
    ),
    // The parameter refused the image for good (access denied, a policy):
    // a tested image nobody can pick up is removed and the failure announced.
    (
        BakeState::Validated,
        Step::Failed(Stage::Promote),
        BakeState::Failed,
        PRODUCTION,
    ),
    // A pull request that changes only consumers' tests: the tests run on
    // the family's promoted image, nothing is baked.
    (
        BakeState::Requested,
        Step::ValidationStarted,
        BakeState::Validating,
        CANDIDATE,
    ),
    // No promoted image to test on, or its test build refused for good.
    (
        BakeState::Requested,
        Step::Failed(Stage::Test),
        BakeState::Failed,
        CANDIDATE,
    ),
    (
        BakeState::Validating,
        Step::TestPassed,
        BakeState::Validated,
        CANDIDATE,
    ),
    (
        BakeState::Validating,
        Step::Failed(Stage::Test),
        BakeState::Failed,
        CANDIDATE,
    ),
    (
        BakeState::Validated,
        Step::Reported,
        BakeState::Reported,
        CANDIDATE,
    ),
    // A newer head makes every open candidate of the older one moot; its
    // builds are stopped and its images removed before this row is taken.
    (
        BakeState::Requested,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    (
        BakeState::Queued,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    (
        BakeState::Baking,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    (
        BakeState::Baked,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    (
        BakeState::Testing,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    (
        BakeState::Validating,
        Step::Superseded,
        BakeState::Superseded,
        CANDIDATE,
    ),
    // A layered family's bake in a run that also bakes its parent: it
    // must not bake from the parent's old image, so it waits, holding no
    // slot, and starts once the parent's new image is promoted.
    (
        BakeState::Requested,
        Step::WaitForParent,
        BakeState::Waiting,
        PRODUCTION,
    ),
    (
        BakeState::Waiting,
        Step::BakeStarted,
        BakeState::Baking,
        PRODUCTION,
    ),
    (
        BakeState::Waiting,
        Step::Queued,
        BakeState::Queued,
        PRODUCTION,
    ),
    // The parent failed (or was superseded): nothing to bake from, and the
    // family's promoted image stays.
    (
        BakeState::Waiting,
        Step::Failed(Stage::Parent),
        BakeState::Failed,
        PRODUCTION,
    ),
    // A production bake validated after a newer bake of its family was
    // promoted (its event was lost and the reconciler finished it, its test
    // was slow): promoting it would roll the family back, so it ends here.
    (
        BakeState::Validated,
        Step::Superseded,
        BakeState::Superseded,
        Both,
    ),
];

/// One row of [`TRANSITIONS`]. The fields are private: the only way to get
/// one is [`Transition::of`], so every state change written anywhere is a
/// row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    lane: Lane,
    from: BakeState,
    step: Step,
    to: BakeState,
}

impl Transition {
    /// The row for `step` from `from` in `lane`, or `None` when the step
    /// does not apply.
    pub fn of(lane: Lane, from: BakeState, step: Step) -> Option<Transition> {
        TRANSITIONS
            .iter()
            .find(|(f, s, _, lanes)| *f == from && *s == step && lanes.admits(lane))
            .map(|&(from, step, to, _)| Transition {
                lane,
                from,
                step,
                to,
            })
    }

    /// The row for `step` from `from` in `lane`, or the error that names
    /// the refusal.
    pub fn require(lane: Lane, from: BakeState, step: Step) -> Result<Transition, IllegalStep> {
        Transition::of(lane, from, step).ok_or(IllegalStep { lane, from, step })
    }

    /// The lane the row was taken in: the ledger writes it only to a
    /// record of that lane.
    pub fn lane(self) -> Lane {
        self.lane
    }

    pub fn from(self) -> BakeState {
        self.from
    }

    pub fn step(self) -> Step {
        self.step
    }

    pub fn to(self) -> BakeState {
        self.to
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} --{:?}--> {} ({})",
            self.from, self.step, self.to, self.lane
        )
    }
}

/// A step the table has no row for from the bake's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the state table has no step {step:?} from {from} for a {lane} bake")]
pub struct IllegalStep {
    pub lane: Lane,
    pub from: BakeState,
    pub step: Step,
}

/// The state after `step` in `lane`, or `None` when the step does not apply.
pub fn next(lane: Lane, state: BakeState, step: Step) -> Option<BakeState> {
    Transition::of(lane, state, step).map(Transition::to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Lane = Lane::Production;
    const C: Lane = Lane::Candidate;

    #[test]
    fn a_candidate_is_reported_and_never_promoted() {
        let mut state = BakeState::Requested;
        for step in [
            Step::BakeStarted,
            Step::BakeSucceeded,
            Step::TestStarted,
            Step::TestPassed,
        ] {
            state = next(C, state, step).expect("candidates share the road to validated");
        }
        assert_eq!(next(C, state, Step::Promoted), None);
        assert_eq!(next(C, state, Step::Failed(Stage::Promote)), None);
        assert_eq!(next(C, state, Step::Reported), Some(BakeState::Reported));
        assert_eq!(next(P, state, Step::Reported), None);
        for state in BakeState::ALL {
            assert_eq!(next(C, state, Step::Promoted), None, "{state}");
            if state != BakeState::Validated {
                assert_eq!(Transition::of(P, state, Step::Superseded), None, "{state}");
            }
            assert_eq!(Transition::of(P, state, Step::ValidationStarted), None);
        }
    }

    #[test]
    fn every_open_candidate_can_be_superseded_and_no_closed_one() {
        // `waiting` is production-only: no candidate row reaches it.
        assert!(!TRANSITIONS
            .iter()
            .any(|(_, _, to, lanes)| *to == BakeState::Waiting && lanes.admits(C)));
        for state in BakeState::ALL {
            if state == BakeState::Waiting {
                continue;
            }
            assert_eq!(
                next(C, state, Step::Superseded).is_some(),
                !state.is_terminal(),
                "{state}"
            );
        }
    }

    #[test]
    fn a_waiting_child_starts_or_fails_with_its_parent_and_holds_no_slot_meanwhile() {
        let waiting = next(P, BakeState::Requested, Step::WaitForParent);
        assert_eq!(waiting, Some(BakeState::Waiting));
        assert_eq!(next(C, BakeState::Requested, Step::WaitForParent), None);
        let waiting = BakeState::Waiting;
        assert_eq!(next(P, waiting, Step::BakeStarted), Some(BakeState::Baking));
        assert_eq!(next(P, waiting, Step::Queued), Some(BakeState::Queued));
        assert_eq!(
            next(P, waiting, Step::Failed(Stage::Parent)),
            Some(BakeState::Failed)
        );
        // Only a parent fails a waiting bake; only a waiting bake fails so.
        for stage in [Stage::Bake, Stage::Test, Stage::Promote] {
            assert_eq!(next(P, waiting, Step::Failed(stage)), None, "{stage}");
        }
        for state in BakeState::ALL {
            if state != waiting {
                assert_eq!(next(P, state, Step::Failed(Stage::Parent)), None, "{state}");
            }
        }
        assert!(!waiting.is_terminal());
    }

    #[test]
    fn a_test_only_run_goes_through_validating() {
        let validating = next(C, BakeState::Requested, Step::ValidationStarted);
        assert_eq!(validating, Some(BakeState::Validating));
        assert_eq!(
            next(C, BakeState::Validating, Step::TestPassed),
            Some(BakeState::Validated)
        );
        assert_eq!(
            next(C, BakeState::Validating, Step::Failed(Stage::Test)),
            Some(BakeState::Failed)
        );
    }

    #[test]
    fn happy_path_walks_every_state_once() {
        let steps = [
            Step::BakeStarted,
            Step::BakeSucceeded,
            Step::TestStarted,
            Step::TestPassed,
            Step::Promoted,
        ];
        let mut state = BakeState::Requested;
        for step in steps {
            state = next(P, state, step).expect("allowed on the happy path");
        }
        assert_eq!(state, BakeState::Promoted);
    }

    #[test]
    fn a_queued_bake_starts_later_and_only_once() {
        let queued = next(P, BakeState::Requested, Step::Queued).expect("queue");
        assert_eq!(queued, BakeState::Queued);
        assert_eq!(next(P, queued, Step::Queued), None);
        assert_eq!(next(P, queued, Step::BakeStarted), Some(BakeState::Baking));
        assert_eq!(next(P, BakeState::Baking, Step::Queued), None);
    }

    #[test]
    fn terminal_states_accept_nothing() {
        let steps = [
            Step::Queued,
            Step::BakeStarted,
            Step::BakeSucceeded,
            Step::TestStarted,
            Step::TestPassed,
            Step::Promoted,
            Step::Failed(Stage::Bake),
            Step::Failed(Stage::Test),
            Step::Failed(Stage::Promote),
            Step::ValidationStarted,
            Step::Reported,
            Step::Superseded,
        ];
        for state in BakeState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for step in steps {
                for lane in [P, C] {
                    assert_eq!(next(lane, state, step), None, "{state} accepted {step:?}");
                }
            }
        }
    }

    #[test]
    fn out_of_order_steps_are_refused() {
        assert_eq!(next(P, BakeState::Baking, Step::TestPassed), None);
        assert_eq!(next(P, BakeState::Requested, Step::BakeSucceeded), None);
        assert_eq!(next(P, BakeState::Baked, Step::Promoted), None);
        assert_eq!(next(P, BakeState::Testing, Step::Failed(Stage::Bake)), None);
    }

    #[test]
    fn names_round_trip() {
        for state in BakeState::ALL {
            assert_eq!(BakeState::parse(state.as_str()), Some(state));
        }
        assert_eq!(BakeState::parse("nope"), None);
    }
}
