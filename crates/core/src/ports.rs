//! Capability traits the handlers are written against, in domain types.
//!
//! `gild-aws` implements them over the AWS SDK; unit tests implement them in
//! memory to inject what no emulator produces (throttling, timeouts).

use std::future::Future;

use crate::ledger::{BakeKey, BakeRecord, Change, Claim};
use crate::plan::{DiffBase, Trigger};
use crate::state::BakeState;

/// A failed call to a service. The variant is what callers branch on; `code`
/// keeps the service's own error code for logs and operators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("{service} {operation} throttled ({code}): {message}")]
    Throttled {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    /// A quota such as CodeBuild's concurrent-build limit; clears with time.
    #[error("{service} {operation} hit a limit ({code}): {message}")]
    LimitExceeded {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("{service} {operation}: not found ({code}): {message}")]
    NotFound {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    /// A conditional write lost; the ledger's normal duplicate signal.
    #[error("{service} {operation}: condition failed: {message}")]
    ConditionFailed {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
    #[error("{service} {operation} timed out")]
    Timeout {
        service: &'static str,
        operation: &'static str,
    },
    #[error("{service} {operation}: could not reach the service: {message}")]
    Transport {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
    #[error("{service} {operation} failed ({code}): {message}")]
    Service {
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
        /// 5xx answers are worth retrying; 4xx are not.
        server_side: bool,
    },
    #[error("{service} {operation}: unexpected response: {message}")]
    InvalidResponse {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
}

impl PortError {
    /// Whether trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PortError::Throttled { .. }
            | PortError::LimitExceeded { .. }
            | PortError::Timeout { .. }
            | PortError::Transport { .. } => true,
            PortError::Service { server_side, .. } => *server_side,
            _ => false,
        }
    }
}

pub type PortResult<T> = Result<T, PortError>;

/// The images repository (CodeCommit, later GitHub).
pub trait Repository: Send + Sync {
    /// A file's text at a commit; `None` when the file does not exist there.
    fn read_file(
        &self,
        commit: &str,
        path: &str,
    ) -> impl Future<Output = PortResult<Option<String>>> + Send;
    /// Every path changed between `base` and `commit` (both sides of renames).
    fn changed_paths(
        &self,
        base: &DiffBase,
        commit: &str,
    ) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    fn branch_tip(&self, branch: &str) -> impl Future<Output = PortResult<String>> + Send;
}

/// What the bake build needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakeRequest {
    pub key: BakeKey,
    pub trigger: Trigger,
    pub commit: String,
}

pub trait Builds: Send + Sync {
    /// Starts the bake build; returns the build id.
    fn start_bake(&self, request: &BakeRequest) -> impl Future<Output = PortResult<String>> + Send;
}

pub trait Ledger: Send + Sync {
    /// Claims a bake: succeeds when no record exists, or when an earlier
    /// claim expired without a build being recorded.
    fn claim(
        &self,
        record: &BakeRecord,
        now: i64,
    ) -> impl Future<Output = PortResult<Claim>> + Send;
    /// Moves a record from `from` to `to` with `change`, only if it is still
    /// in `from`; `Ok(false)` when it was not (a duplicate or late event).
    fn advance(
        &self,
        key: &BakeKey,
        from: BakeState,
        to: BakeState,
        change: &Change,
        now: i64,
    ) -> impl Future<Output = PortResult<bool>> + Send;
    /// Gives up a claim after its build failed to start, so a retry can claim it.
    fn release(&self, key: &BakeKey) -> impl Future<Output = PortResult<()>> + Send;
    fn get(&self, key: &BakeKey) -> impl Future<Output = PortResult<Option<BakeRecord>>> + Send;
    /// Every record (for `gild status`; the ledger holds one item per bake).
    fn list(&self) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send;
}

/// The event bus `gild build` puts manual requests on.
pub trait Bus: Send + Sync {
    /// Returns the event id EventBridge assigned.
    fn put(
        &self,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> impl Future<Output = PortResult<String>> + Send;
}
