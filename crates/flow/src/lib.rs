//! gild's application services: each takes an input (an event, a
//! schedule tick), asks `gild-core` what it means, and does the work through
//! the capability traits in `gild_core::ports`.
//!
//! - [`completion`]: the driver shared by `bake-finished`, `test-finished`
//!   and the reconciler, one locked step at a time.
//! - `steps`: the work of each step (tag, start the test, promote, clean up,
//!   announce).
//! - `candidate`: what a pull request's candidate does instead of promoting
//!   and announcing: report to its pull request.
//! - `children`: a layered family's children, queued by their parent's
//!   promotion or failed with it.
//! - `packages`: what a bake's packages changed against the promoted
//!   image, compared when the bake finishes and announced with its diff.
//! - [`reconcile`]: finds bakes nobody moved past their deadline and drives
//!   them through the same steps.
//! - [`trigger`]: turns a schedule, push or request into bakes, and starts
//!   queued ones as slots free.
//! - [`config`]: what the completion functions read from the environment.
//! - [`approval_rule`]: the stack's CodeCommit approval-rule template (a
//!   CloudFormation custom resource), created, updated and removed.
//!
//! No `aws-sdk-*` here: the functions' `main.rs` build the clients and
//! hand them in through `gild-aws`'s adapters.

pub mod approval_rule;
mod candidate;
mod children;
pub mod completion;
pub mod config;
mod packages;
pub mod reconcile;
mod removal;
mod steps;
pub mod trigger;

pub use completion::Completions;

use gild_core::completion::Projects;
use gild_core::event::EventError;
use gild_core::ledger::BakeKey;
use gild_core::ports::PortError;
use gild_core::state::{BakeState, IllegalStep};
use gild_lambda::Diagnostic;
use serde::Serialize;
/// Which completions a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Bake,
    Test,
}

#[derive(Debug, Clone)]
pub struct FlowSettings {
    pub accept: Accept,
    pub projects: Projects,
    /// SSM prefix of the family parameters, `/gild` by default.
    pub parameter_prefix: String,
    pub lease_secs: i64,
    /// How long a passed candidate's image is kept for people to launch;
    /// 0 removes it once reported.
    pub candidate_ttl_hours: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    BadEvent(#[from] EventError),
    /// Another invocation is working on this bake right now.
    #[error("bake {family} {dedupe_key} is being handled by another invocation; retry later")]
    Busy { family: String, dedupe_key: String },
    #[error("{work} for {family}: {error}")]
    Port {
        work: &'static str,
        family: String,
        error: Box<PortError>,
    },
    /// A step led nowhere the state table allows: a bug, never input.
    #[error(transparent)]
    Illegal(#[from] IllegalStep),
}

impl FlowError {
    /// Stable names for Lambda's `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            FlowError::BadEvent(_) => "BadEvent",
            FlowError::Busy { .. } => "Busy",
            FlowError::Port { .. } => "StepFailed",
            FlowError::Illegal(_) => "IllegalTransition",
        }
    }
}

impl From<FlowError> for Diagnostic {
    fn from(err: FlowError) -> Self {
        gild_lambda::diagnostic(err.name(), &err)
    }
}

/// What one invocation did; the function's response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// States the bake reached, in order.
    pub reached: Vec<BakeState>,
    /// Why nothing (more) was done, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noop: Option<String>,
}

/// The completion steps' ports (defined in the core, where the traits are).
pub use gild_core::ports::CompletionPorts as Ports;

pub(crate) fn port(work: &'static str, key: &BakeKey, error: PortError) -> FlowError {
    FlowError::Port {
        work,
        family: key.family.clone(),
        error: Box::new(error),
    }
}
