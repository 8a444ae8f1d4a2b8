//! The life of one bake, as data.
//!
//! `requested → baking → baked → testing → validated → promoted`, or `failed`
//! at a stage. A bake that finds CodeBuild's concurrency quota full waits as
//! `requested → queued → baking` (see `queue`). The ledger item holds the
//! current state and the AMI carries it as the `gild:state` tag.
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
}

impl BakeState {
    pub const ALL: [BakeState; 8] = [
        BakeState::Requested,
        BakeState::Queued,
        BakeState::Baking,
        BakeState::Baked,
        BakeState::Testing,
        BakeState::Validated,
        BakeState::Promoted,
        BakeState::Failed,
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
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// No step leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self, BakeState::Promoted | BakeState::Failed)
    }
}

impl fmt::Display for BakeState {
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
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Bake => "bake",
            Stage::Test => "test",
            Stage::Promote => "promote",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Bake, Stage::Test, Stage::Promote]
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
}

/// Every allowed transition. Anything not listed is a no-op.
pub const TRANSITIONS: &[(BakeState, Step, BakeState)] = &[
    (BakeState::Requested, Step::BakeStarted, BakeState::Baking),
    (BakeState::Requested, Step::Queued, BakeState::Queued),
    // The claim was taken but no build was ever recorded (the trigger died
    // between claiming and starting, and its event is gone): the
    // reconciler ends it, so the bake is announced and can be asked again.
    (
        BakeState::Requested,
        Step::Failed(Stage::Bake),
        BakeState::Failed,
    ),
    (BakeState::Queued, Step::BakeStarted, BakeState::Baking),
    (BakeState::Baking, Step::BakeSucceeded, BakeState::Baked),
    (
        BakeState::Baking,
        Step::Failed(Stage::Bake),
        BakeState::Failed,
    ),
    (BakeState::Baked, Step::TestStarted, BakeState::Testing),
    // Starting the test build can fail for good (project gone): the image
    // was never tested, so it must not linger.
    (
        BakeState::Baked,
        Step::Failed(Stage::Test),
        BakeState::Failed,
    ),
    (BakeState::Testing, Step::TestPassed, BakeState::Validated),
    (
        BakeState::Testing,
        Step::Failed(Stage::Test),
        BakeState::Failed,
    ),
    (BakeState::Validated, Step::Promoted, BakeState::Promoted),
    // The parameter refused the image for good (access denied, a policy):
    // a tested image nobody can pick up is removed and the failure announced.
    (
        BakeState::Validated,
        Step::Failed(Stage::Promote),
        BakeState::Failed,
    ),
];

/// One row of [`TRANSITIONS`]. The fields are private: the only way to get
/// one is [`Transition::of`], so every state change written anywhere is a
/// row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: BakeState,
    step: Step,
    to: BakeState,
}

impl Transition {
    /// The row for `step` from `from`, or `None` when the step does not apply.
    pub fn of(from: BakeState, step: Step) -> Option<Transition> {
        TRANSITIONS
            .iter()
            .find(|(f, s, _)| *f == from && *s == step)
            .map(|&(from, step, to)| Transition { from, step, to })
    }

    /// The row for `step` from `from`, or the error that names the refusal.
    pub fn require(from: BakeState, step: Step) -> Result<Transition, IllegalStep> {
        Transition::of(from, step).ok_or(IllegalStep { from, step })
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
        write!(f, "{} --{:?}--> {}", self.from, self.step, self.to)
    }
}

/// A step the table has no row for from the bake's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the state table has no step {step:?} from {from}")]
pub struct IllegalStep {
    pub from: BakeState,
    pub step: Step,
}

/// The state after `step`, or `None` when the step does not apply.
pub fn next(state: BakeState, step: Step) -> Option<BakeState> {
    Transition::of(state, step).map(Transition::to)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            state = next(state, step).expect("allowed on the happy path");
        }
        assert_eq!(state, BakeState::Promoted);
    }

    #[test]
    fn a_queued_bake_starts_later_and_only_once() {
        let queued = next(BakeState::Requested, Step::Queued).expect("queue");
        assert_eq!(queued, BakeState::Queued);
        assert_eq!(next(queued, Step::Queued), None);
        assert_eq!(next(queued, Step::BakeStarted), Some(BakeState::Baking));
        assert_eq!(next(BakeState::Baking, Step::Queued), None);
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
        ];
        for state in BakeState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for step in steps {
                assert_eq!(next(state, step), None, "{state} accepted {step:?}");
            }
        }
    }

    #[test]
    fn out_of_order_steps_are_refused() {
        assert_eq!(next(BakeState::Baking, Step::TestPassed), None);
        assert_eq!(next(BakeState::Requested, Step::BakeSucceeded), None);
        assert_eq!(next(BakeState::Baked, Step::Promoted), None);
        assert_eq!(next(BakeState::Testing, Step::Failed(Stage::Bake)), None);
    }

    #[test]
    fn names_round_trip() {
        for state in BakeState::ALL {
            assert_eq!(BakeState::parse(state.as_str()), Some(state));
        }
        assert_eq!(BakeState::parse("nope"), None);
    }
}
