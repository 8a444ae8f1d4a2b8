//! What starting bakes produced, and how it failed: the trigger's and
//! github-webhook's responses and stable error names.

use gild_core::catalog::{CatalogError, CATALOG_FILE};
use gild_core::event::EventError;
use gild_core::plan::PlanError;
use gild_core::ports::PortError;
use gild_core::state::{BakeState, IllegalStep};
use gild_lambda::Diagnostic;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    BadEvent(#[from] EventError),
    #[error("catalog rejected, no build started: {0}")]
    Catalog(#[from] CatalogError),
    #[error("{CATALOG_FILE} not found at commit {commit}, no build started")]
    CatalogMissing { commit: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("reading the images repository: {0}")]
    Repository(PortError),
    #[error("reading the bake queue: {0}")]
    Ledger(PortError),
    /// Reporting to, or reading, the pull request failed; or cleaning up
    /// what an older head left.
    #[error("pull request: {0}")]
    Review(PortError),
    /// An older head's candidate is mid-step; the event is retried once
    /// the step is done.
    #[error(
        "candidate {family} {dedupe_key} is mid-step and cannot be superseded yet; retry later"
    )]
    Superseding { family: String, dedupe_key: String },
    #[error("{} of {} bakes did not start, the event will be retried ({}); bakes already started will not start again", failures.len(), failures.len() + started, failures.iter().map(|f| format!("{}: {}", f.family, f.error)).collect::<Vec<_>>().join("; "))]
    StartFailed {
        failures: Vec<StartFailure>,
        started: usize,
    },
}

#[derive(Debug)]
pub struct StartFailure {
    pub family: String,
    pub error: StartError,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Port(#[from] PortError),
    /// Another invocation claimed this bake and has not recorded a build
    /// yet. Failing (rather than calling it a duplicate) makes Lambda retry
    /// later, so a claim whose holder crashed is taken over, never lost.
    #[error("another invocation is starting it (claim held until {lease_until})")]
    InFlight { lease_until: i64 },
    #[error(transparent)]
    Illegal(#[from] IllegalStep),
}

impl TriggerError {
    /// Stable names for Lambda's `errorType`, alarms and DLQ triage.
    pub fn name(&self) -> &'static str {
        match self {
            TriggerError::BadEvent(_) => "BadEvent",
            TriggerError::Catalog(_) => "CatalogInvalid",
            TriggerError::CatalogMissing { .. } => "CatalogMissing",
            TriggerError::Plan(_) => "PlanRefused",
            TriggerError::Repository(_) => "RepositoryUnavailable",
            TriggerError::Ledger(_) => "LedgerUnavailable",
            TriggerError::StartFailed { .. } => "StartFailed",
            TriggerError::Review(_) => "PullRequestUnavailable",
            TriggerError::Superseding { .. } => "SupersedeBusy",
        }
    }
}

impl From<TriggerError> for Diagnostic {
    fn from(err: TriggerError) -> Self {
        gild_lambda::diagnostic(err.name(), &err)
    }
}

/// What one invocation did; the Lambda's response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub event: String,
    pub reason: String,
    pub started: Vec<Started>,
    /// Bakes waiting in the ledger for a free CodeBuild slot.
    pub queued: Vec<Queued>,
    /// Bakes an earlier delivery already claimed.
    pub duplicates: Vec<Duplicate>,
    /// Layered families waiting for their parent's new image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
    /// A pull request's candidates ended by a newer head or its closing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Superseded>,
}

/// A candidate ended by a newer head or by its pull request closing.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Superseded {
    pub family: String,
    pub dedupe_key: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Waiting {
    pub family: String,
    pub dedupe_key: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Queued {
    pub family: String,
    pub dedupe_key: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Started {
    pub family: String,
    pub dedupe_key: String,
    pub build_id: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Duplicate {
    pub family: String,
    pub dedupe_key: String,
    pub state: BakeState,
    pub build_id: Option<String>,
}

pub(crate) enum Done {
    Started(Started),
    Queued(Queued),
    Waiting(Waiting),
    Duplicate(Duplicate),
    /// A queued bake left where it was: another invocation holds it, or no
    /// slot was free after all.
    Left,
}

impl Outcome {
    pub(crate) fn new(event: String, reason: String) -> Self {
        Outcome {
            event,
            reason,
            started: Vec::new(),
            queued: Vec::new(),
            duplicates: Vec::new(),
            waiting: Vec::new(),
            superseded: Vec::new(),
        }
    }

    /// Files each bake's result, families in order; any failure makes the
    /// whole event fail (to be retried) after the rest were done.
    pub(crate) fn settle(
        mut self,
        results: Vec<(String, Result<Done, StartError>)>,
    ) -> Result<Outcome, TriggerError> {
        let mut failures = Vec::new();
        for (family, result) in results {
            match result {
                Ok(Done::Started(started)) => self.started.push(started),
                Ok(Done::Queued(queued)) => self.queued.push(queued),
                Ok(Done::Waiting(waiting)) => self.waiting.push(waiting),
                Ok(Done::Duplicate(duplicate)) => self.duplicates.push(duplicate),
                Ok(Done::Left) => {}
                Err(error) => failures.push(StartFailure { family, error }),
            }
        }
        self.started.sort_by(|a, b| a.family.cmp(&b.family));
        self.queued.sort_by(|a, b| a.family.cmp(&b.family));
        self.waiting.sort_by(|a, b| a.family.cmp(&b.family));
        self.duplicates.sort_by(|a, b| a.family.cmp(&b.family));
        if failures.is_empty() {
            return Ok(self);
        }
        failures.sort_by(|a, b| a.family.cmp(&b.family));
        Err(TriggerError::StartFailed {
            failures,
            started: self.started.len()
                + self.queued.len()
                + self.waiting.len()
                + self.duplicates.len(),
        })
    }
}
