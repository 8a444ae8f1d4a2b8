//! Capability traits the handlers are written against, in domain types.
//!
//! `gild-aws` implements them over the AWS SDK; unit tests implement them in
//! memory to inject what no emulator produces (throttling, timeouts).

use std::collections::BTreeMap;
use std::future::Future;

use crate::event::BuildStateChange;
use crate::ledger::{BakeKey, BakeRecord, Change, Claim};
use crate::pull_request::PullRequest;
use crate::review::Status;
use crate::state::{BakeState, Transition};
use crate::vocabulary::{DiffBase, Trigger};

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
    /// A layered family's parent, and the parent's image to bake from
    /// when a promotion released the bake (else bake.yml reads the
    /// parent's promoted image when the build starts).
    pub parent: Option<String>,
    pub source_image: Option<String>,
}

pub trait Builds: Send + Sync {
    /// Starts the bake build; returns the build id.
    fn start_bake(&self, request: &BakeRequest) -> impl Future<Output = PortResult<String>> + Send;
}

/// Stopping builds a pull request no longer needs (a newer head, closed).
pub trait BuildControl: Send + Sync {
    /// Stops a build; one that already ended is not an error.
    fn stop(&self, build_id: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// Where a pull request's reviewers see gild's results: commit statuses
/// and one comment on GitHub; one comment and an approval on CodeCommit.
/// Each call is idempotent, so a retried step writes the same thing again.
pub trait Reviews: Send + Sync {
    /// Sets statuses on the pull request's head (a host without commit
    /// statuses ignores them).
    fn set_statuses(
        &self,
        pull_request: &PullRequest,
        statuses: &[Status],
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Writes gild's one comment on the pull request: edits it when it
    /// exists (found by `review::COMMENT_MARKER`), else creates it.
    fn upsert_comment(
        &self,
        pull_request: &PullRequest,
        body: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Approves the pull request's revision, or revokes gild's approval (a
    /// host without approvals ignores it).
    fn approve(
        &self,
        pull_request: &PullRequest,
        approve: bool,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The paths the pull request changes against its destination
    /// (both sides of renames).
    fn changed_paths(
        &self,
        pull_request: &PullRequest,
    ) -> impl Future<Output = PortResult<Vec<String>>> + Send;
}

/// An approval-rule template as CodeCommit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    pub content: String,
    pub description: Option<String>,
}

/// CodeCommit's approval-rule templates, for the stack's custom resource.
pub trait ApprovalRuleTemplates: Send + Sync {
    /// The template named `name`; `None` when there is none.
    fn get(&self, name: &str) -> impl Future<Output = PortResult<Option<TemplateInfo>>> + Send;
    /// Creates it; `ConditionFailed` when the name is taken.
    fn create(
        &self,
        name: &str,
        content: &str,
        description: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn update_content(
        &self,
        name: &str,
        content: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Associating twice is not an error.
    fn associate(
        &self,
        name: &str,
        repository: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// `NotFound` when the template or the repository is gone.
    fn disassociate(
        &self,
        name: &str,
        repository: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The repositories the template is associated with, every page.
    fn repositories(&self, name: &str) -> impl Future<Output = PortResult<Vec<String>>> + Send;
    /// Deleting a template that is gone is not an error.
    fn delete(&self, name: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// What the test build needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRequest {
    pub key: BakeKey,
    pub image: String,
    pub commit: Option<String>,
}

pub trait Tests: Send + Sync {
    /// Starts the test build for an image; returns the build id.
    fn start_test(&self, request: &TestRequest) -> impl Future<Output = PortResult<String>> + Send;
}

pub trait BuildInfo: Send + Sync {
    /// The variables a finished build exported (`BatchGetBuilds`), for when
    /// the completion event did not carry them.
    fn exported_variables(
        &self,
        build_id: &str,
    ) -> impl Future<Output = PortResult<BTreeMap<String, String>>> + Send;
    /// A build as `BatchGetBuilds` tells it, in the completion event's
    /// shape; `None` when CodeBuild knows no such build.
    fn build(
        &self,
        build_id: &str,
    ) -> impl Future<Output = PortResult<Option<BuildStateChange>>> + Send;
}

/// An AMI as gild sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInfo {
    pub id: String,
    pub name: Option<String>,
    pub state: String,
    /// EBS snapshots behind the image's block devices.
    pub snapshots: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// An EBS snapshot: found by its tags once the image that listed it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: String,
    pub tags: BTreeMap<String, String>,
}

pub trait Images: Send + Sync {
    /// `None` when the image does not exist (or no longer does).
    fn describe(
        &self,
        image_id: &str,
    ) -> impl Future<Output = PortResult<Option<ImageInfo>>> + Send;
    /// Images of this account carrying the tag `key=value`.
    fn find_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = PortResult<Vec<ImageInfo>>> + Send;
    /// Sets tags on images and snapshots; existing keys are overwritten.
    fn tag(
        &self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Deregisters an image; an image already gone is not an error.
    fn deregister(&self, image_id: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Deletes a snapshot; one already gone is not an error.
    fn delete_snapshot(&self, snapshot_id: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Snapshots of this account carrying the tag `key=value`.
    fn snapshots_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = PortResult<Vec<SnapshotInfo>>> + Send;
}

pub trait Parameters: Send + Sync {
    /// Points the parameter at the image (`aws:ec2:image`, history kept by
    /// SSM); returns the new version.
    fn promote(&self, name: &str, image_id: &str) -> impl Future<Output = PortResult<i64>> + Send;
    fn current(&self, name: &str) -> impl Future<Output = PortResult<Option<String>>> + Send;
}

/// A message ready to publish: see `announce` for how it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub subject: String,
    /// The `MessageStructure=json` body: `default`, `email`, `sqs`, `lambda`.
    pub message: String,
    /// String message attributes, for subscription filter policies.
    pub attributes: Vec<(String, String)>,
}

/// The artifact bucket: the bake's bills of materials and gild's diffs,
/// by key (`bom::bom_key`, `bom::diff_key`).
pub trait Artifacts: Send + Sync {
    /// The object's bytes; `None` when nothing is stored under `key`. An
    /// object larger than `bom::MAX_BYTES` is an `InvalidResponse`, never
    /// read whole.
    fn get(&self, key: &str) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send;
    /// Stores `body` as JSON under `key`, replacing what was there.
    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = PortResult<()>> + Send;
    /// A pre-signed link that reads the object for at most `secs`.
    fn link(&self, key: &str, secs: u64) -> impl Future<Output = PortResult<String>> + Send;
    /// The object's `s3://` URI, for people with access to the bucket.
    fn uri(&self, key: &str) -> String;
}

pub trait Notifier: Send + Sync {
    /// Returns the message id.
    fn publish(&self, publication: &Publication)
        -> impl Future<Output = PortResult<String>> + Send;
}

pub trait Ledger: Send + Sync {
    /// Claims a bake: succeeds when no record exists, when an earlier claim
    /// expired without a build being recorded, or when the claim is already
    /// this owner's (a retried write).
    fn claim(
        &self,
        record: &BakeRecord,
        now: i64,
    ) -> impl Future<Output = PortResult<Claim>> + Send;
    /// Takes the lock on a record in `state` for `lease_secs`, so only one
    /// invocation does the work of the next step; `Ok(false)` when the record
    /// is in another state or someone else holds the lock.
    fn lock(
        &self,
        key: &BakeKey,
        state: BakeState,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> impl Future<Output = PortResult<bool>> + Send;
    /// Moves a record along `transition` (a row of the state table) with
    /// `change` and frees its lock, only if it is still in the transition's
    /// `from` state; `Ok(false)` when it was not.
    fn advance(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> impl Future<Output = PortResult<bool>> + Send;
    /// Frees the lock of a record still in `state` after its work failed, so
    /// a retry can take it at once.
    fn release(
        &self,
        key: &BakeKey,
        state: BakeState,
    ) -> impl Future<Output = PortResult<()>> + Send;
    fn get(&self, key: &BakeKey) -> impl Future<Output = PortResult<Option<BakeRecord>>> + Send;
    /// The records not yet in a terminal state: what holds CodeBuild slots
    /// and what waits for one (see `queue`). May lag a write by a moment.
    fn active(&self) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send;
    /// Every record (for `gild status`; the ledger holds one item per bake).
    fn list(&self) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send;
    /// The candidates of every head of one pull request, by its
    /// `<repository>#<number>` (`PullRequest::key_prefix` without `pr:`).
    fn pull_request(
        &self,
        pull_request: &str,
    ) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send;
}

/// What the completion steps act through: one set per function, built once
/// at cold start (`gild_aws::completion_ports`) or from the fakes.
pub struct CompletionPorts<L, I, B, T, P, N, V, A> {
    pub ledger: L,
    pub images: I,
    pub build_info: B,
    pub tests: T,
    pub parameters: P,
    pub notifier: N,
    /// Where candidates report (pull requests); production bakes never use it.
    pub reviews: V,
    /// The bills of materials and the package diffs.
    pub artifacts: A,
}

/// One ledger shared by two services of one function (the reconciler's
/// completion driver and its queue).
impl<T: Ledger> Ledger for std::sync::Arc<T> {
    fn claim(
        &self,
        record: &BakeRecord,
        now: i64,
    ) -> impl Future<Output = PortResult<Claim>> + Send {
        (**self).claim(record, now)
    }
    fn lock(
        &self,
        key: &BakeKey,
        state: BakeState,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> impl Future<Output = PortResult<bool>> + Send {
        (**self).lock(key, state, now, lease_secs, owner)
    }
    fn advance(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> impl Future<Output = PortResult<bool>> + Send {
        (**self).advance(key, transition, change, now)
    }
    fn release(
        &self,
        key: &BakeKey,
        state: BakeState,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).release(key, state)
    }
    fn get(&self, key: &BakeKey) -> impl Future<Output = PortResult<Option<BakeRecord>>> + Send {
        (**self).get(key)
    }
    fn active(&self) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send {
        (**self).active()
    }
    fn list(&self) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send {
        (**self).list()
    }
    fn pull_request(
        &self,
        pull_request: &str,
    ) -> impl Future<Output = PortResult<Vec<BakeRecord>>> + Send {
        (**self).pull_request(pull_request)
    }
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

/// Which version of a rotating secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretStage {
    Current,
    /// The version before the last rotation, accepted while senders catch up.
    Previous,
}

pub trait Secrets: Send + Sync {
    /// The secret's text at `stage`; `None` when it has no such version.
    fn get(
        &self,
        name: &str,
        stage: SecretStage,
    ) -> impl Future<Output = PortResult<Option<String>>> + Send;
}

/// One fake or adapter shared by the trigger and the completion steps of
/// one world (the tests' "same AWS"), as `Arc<T>` is for the ledger.
impl<T: Reviews> Reviews for std::sync::Arc<T> {
    fn set_statuses(
        &self,
        pull_request: &PullRequest,
        statuses: &[Status],
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).set_statuses(pull_request, statuses)
    }
    fn upsert_comment(
        &self,
        pull_request: &PullRequest,
        body: &str,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).upsert_comment(pull_request, body)
    }
    fn approve(
        &self,
        pull_request: &PullRequest,
        approve: bool,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).approve(pull_request, approve)
    }
    fn changed_paths(
        &self,
        pull_request: &PullRequest,
    ) -> impl Future<Output = PortResult<Vec<String>>> + Send {
        (**self).changed_paths(pull_request)
    }
}

impl<T: Images> Images for std::sync::Arc<T> {
    fn describe(
        &self,
        image_id: &str,
    ) -> impl Future<Output = PortResult<Option<ImageInfo>>> + Send {
        (**self).describe(image_id)
    }
    fn find_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = PortResult<Vec<ImageInfo>>> + Send {
        (**self).find_by_tag(key, value)
    }
    fn tag(
        &self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).tag(resources, tags)
    }
    fn deregister(&self, image_id: &str) -> impl Future<Output = PortResult<()>> + Send {
        (**self).deregister(image_id)
    }
    fn delete_snapshot(&self, snapshot_id: &str) -> impl Future<Output = PortResult<()>> + Send {
        (**self).delete_snapshot(snapshot_id)
    }
    fn snapshots_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = PortResult<Vec<SnapshotInfo>>> + Send {
        (**self).snapshots_by_tag(key, value)
    }
}

impl<T: Parameters> Parameters for std::sync::Arc<T> {
    fn promote(&self, name: &str, image_id: &str) -> impl Future<Output = PortResult<i64>> + Send {
        (**self).promote(name, image_id)
    }
    fn current(&self, name: &str) -> impl Future<Output = PortResult<Option<String>>> + Send {
        (**self).current(name)
    }
}

impl<T: Tests> Tests for std::sync::Arc<T> {
    fn start_test(&self, request: &TestRequest) -> impl Future<Output = PortResult<String>> + Send {
        (**self).start_test(request)
    }
}

impl<T: BuildInfo> BuildInfo for std::sync::Arc<T> {
    fn exported_variables(
        &self,
        build_id: &str,
    ) -> impl Future<Output = PortResult<BTreeMap<String, String>>> + Send {
        (**self).exported_variables(build_id)
    }
    fn build(
        &self,
        build_id: &str,
    ) -> impl Future<Output = PortResult<Option<BuildStateChange>>> + Send {
        (**self).build(build_id)
    }
}

impl<T: Artifacts> Artifacts for std::sync::Arc<T> {
    fn get(&self, key: &str) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send {
        (**self).get(key)
    }
    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = PortResult<()>> + Send {
        (**self).put(key, body)
    }
    fn link(&self, key: &str, secs: u64) -> impl Future<Output = PortResult<String>> + Send {
        (**self).link(key, secs)
    }
    fn uri(&self, key: &str) -> String {
        (**self).uri(key)
    }
}

impl<T: Notifier> Notifier for std::sync::Arc<T> {
    fn publish(
        &self,
        publication: &Publication,
    ) -> impl Future<Output = PortResult<String>> + Send {
        (**self).publish(publication)
    }
}

impl<T: BuildControl> BuildControl for std::sync::Arc<T> {
    fn stop(&self, build_id: &str) -> impl Future<Output = PortResult<()>> + Send {
        (**self).stop(build_id)
    }
}

impl<T: Builds> Builds for std::sync::Arc<T> {
    fn start_bake(&self, request: &BakeRequest) -> impl Future<Output = PortResult<String>> + Send {
        (**self).start_bake(request)
    }
}
