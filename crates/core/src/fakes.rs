//! In-memory ports for unit tests, with scripted faults that no emulator
//! produces on demand (throttling, limits, timeouts). The ledger keeps the
//! same conditional semantics as the DynamoDB adapter, so handler tests
//! exercise the real exactly-once logic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use crate::event::BuildStateChange;
use crate::ledger::{BakeKey, BakeRecord, Change, Claim};
use crate::ports::{
    BakeRequest, BuildControl, BuildInfo, Builds, ImageInfo, Images, Ledger, Notifier, Parameters,
    PortError, PortResult, Publication, Repository, Reviews, SnapshotInfo, TestRequest, Tests,
};
use crate::pull_request::{PullRequest, DEDUPE_PREFIX};
use crate::review::Status;
use crate::state::{BakeState, Transition};
use crate::vocabulary::DiffBase;

mod artifacts;
mod templates;

pub use artifacts::MemoryArtifacts;
pub use templates::{MemoryTemplates, StoredTemplate};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide the state from the assertions.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct MemoryLedger {
    pub records: Mutex<BTreeMap<BakeKey, BakeRecord>>,
    /// Errors returned by the next calls to `claim`, in order.
    pub claim_faults: Mutex<VecDeque<PortError>>,
}

impl MemoryLedger {
    pub fn snapshot(&self) -> Vec<BakeRecord> {
        lock(&self.records).values().cloned().collect()
    }
}

impl Ledger for MemoryLedger {
    async fn claim(&self, record: &BakeRecord, now: i64) -> PortResult<Claim> {
        if let Some(fault) = lock(&self.claim_faults).pop_front() {
            return Err(fault);
        }
        let mut records = lock(&self.records);
        match records.get(&record.key) {
            Some(existing)
                if !((existing.state == BakeState::Requested
                    && existing.lease_until < now
                    && existing.build_id.is_none())
                    || (existing.owner.is_some() && existing.owner == record.owner)) =>
            {
                Ok(Claim::Taken(Box::new(existing.clone())))
            }
            _ => {
                records.insert(record.key.clone(), record.clone());
                Ok(Claim::Claimed)
            }
        }
    }

    async fn lock(
        &self,
        key: &BakeKey,
        state: BakeState,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> PortResult<bool> {
        let mut records = lock(&self.records);
        let Some(record) = records
            .get_mut(key)
            .filter(|r| r.state == state && !r.is_locked_against(owner, now))
        else {
            return Ok(false);
        };
        record.lease_until = now + lease_secs;
        record.owner = Some(owner.to_owned());
        Ok(true)
    }

    async fn advance(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> PortResult<bool> {
        let mut records = lock(&self.records);
        // The lane is part of the condition, as in the DynamoDB adapter.
        let Some(record) = records
            .get_mut(key)
            .filter(|r| r.state == transition.from() && r.lane() == transition.lane())
        else {
            return Ok(false);
        };
        record.state = transition.to();
        record.updated_at = now;
        record.lease_until = 0;
        record.apply(change);
        Ok(true)
    }

    async fn release(&self, key: &BakeKey, state: BakeState) -> PortResult<()> {
        if let Some(record) = lock(&self.records)
            .get_mut(key)
            .filter(|r| r.state == state)
        {
            record.lease_until = 0;
        }
        Ok(())
    }

    async fn get(&self, key: &BakeKey) -> PortResult<Option<BakeRecord>> {
        Ok(lock(&self.records).get(key).cloned())
    }

    async fn active(&self) -> PortResult<Vec<BakeRecord>> {
        Ok(lock(&self.records)
            .values()
            .filter(|r| !r.state.is_terminal())
            .cloned()
            .collect())
    }

    async fn list(&self) -> PortResult<Vec<BakeRecord>> {
        Ok(self.snapshot())
    }

    async fn pull_request(&self, pull_request: &str) -> PortResult<Vec<BakeRecord>> {
        let prefix = format!("{DEDUPE_PREFIX}{pull_request}:");
        Ok(lock(&self.records)
            .values()
            .filter(|r| r.key.dedupe_key.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

/// What reviewers would see: every status set and comment written, by
/// pull request, and the approvals given or revoked.
#[derive(Default)]
pub struct RecordingReviews {
    pub statuses: Mutex<Vec<(String, Status)>>,
    /// The comment per pull request (`id()`), as last written, and how
    /// many times it was written.
    pub comments: Mutex<BTreeMap<String, (String, usize)>>,
    pub approvals: Mutex<Vec<(String, bool)>>,
    /// What `changed_paths` answers.
    pub changed: Mutex<Vec<String>>,
    pub faults: Mutex<VecDeque<PortError>>,
}

impl RecordingReviews {
    /// The last status of `context` on `head`.
    pub fn status(&self, head: &str, context: &str) -> Option<Status> {
        lock(&self.statuses)
            .iter()
            .rev()
            .find(|(h, s)| h == head && s.context == context)
            .map(|(_, s)| s.clone())
    }

    pub fn comment(&self, pull_request: &str) -> Option<String> {
        lock(&self.comments)
            .get(pull_request)
            .map(|(c, _)| c.clone())
    }

    fn fault(&self) -> PortResult<()> {
        match lock(&self.faults).pop_front() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }
}

impl Reviews for RecordingReviews {
    async fn set_statuses(
        &self,
        pull_request: &PullRequest,
        statuses: &[Status],
    ) -> PortResult<()> {
        self.fault()?;
        let mut recorded = lock(&self.statuses);
        for status in statuses {
            recorded.push((pull_request.head.clone(), status.clone()));
        }
        Ok(())
    }

    async fn upsert_comment(&self, pull_request: &PullRequest, body: &str) -> PortResult<()> {
        self.fault()?;
        let mut comments = lock(&self.comments);
        let entry = comments.entry(pull_request.id()).or_default();
        entry.0 = body.to_owned();
        entry.1 += 1;
        Ok(())
    }

    async fn approve(&self, pull_request: &PullRequest, approve: bool) -> PortResult<()> {
        self.fault()?;
        lock(&self.approvals).push((pull_request.id(), approve));
        Ok(())
    }

    async fn changed_paths(&self, _pull_request: &PullRequest) -> PortResult<Vec<String>> {
        self.fault()?;
        Ok(lock(&self.changed).clone())
    }
}

/// A CodeBuild stand-in: scripted faults per family, then success.
#[derive(Default)]
pub struct ScriptedBuilds {
    pub faults: Mutex<BTreeMap<String, VecDeque<PortError>>>,
    pub started: Mutex<Vec<BakeRequest>>,
    /// Builds stopped, in order.
    pub stopped: Mutex<Vec<String>>,
    /// Every call, failed or not.
    pub calls: Mutex<usize>,
}

impl ScriptedBuilds {
    pub fn fail(&self, family: &str, faults: impl IntoIterator<Item = PortError>) {
        lock(&self.faults)
            .entry(family.to_owned())
            .or_default()
            .extend(faults);
    }

    pub fn started_families(&self) -> Vec<String> {
        let mut families: Vec<String> = lock(&self.started)
            .iter()
            .map(|r| r.key.family.clone())
            .collect();
        families.sort();
        families
    }

    pub fn calls(&self) -> usize {
        *lock(&self.calls)
    }
}

impl BuildControl for ScriptedBuilds {
    async fn stop(&self, build_id: &str) -> PortResult<()> {
        lock(&self.stopped).push(build_id.to_owned());
        Ok(())
    }
}

impl Builds for ScriptedBuilds {
    async fn start_bake(&self, request: &BakeRequest) -> PortResult<String> {
        *lock(&self.calls) += 1;
        if let Some(fault) = lock(&self.faults)
            .get_mut(&request.key.family)
            .and_then(VecDeque::pop_front)
        {
            return Err(fault);
        }
        let mut started = lock(&self.started);
        started.push(request.clone());
        Ok(format!("gild-bake:build-{}", started.len()))
    }
}

/// A repository with one commit's files and a fixed diff.
#[derive(Default)]
pub struct MemoryRepository {
    /// (commit, path) → text.
    pub files: BTreeMap<(String, String), String>,
    pub changed: Vec<String>,
    pub tip: String,
}

impl Repository for MemoryRepository {
    async fn read_file(&self, commit: &str, path: &str) -> PortResult<Option<String>> {
        Ok(self
            .files
            .get(&(commit.to_owned(), path.to_owned()))
            .cloned())
    }

    async fn changed_paths(&self, _base: &DiffBase, _commit: &str) -> PortResult<Vec<String>> {
        Ok(self.changed.clone())
    }

    async fn branch_tip(&self, _branch: &str) -> PortResult<String> {
        Ok(self.tip.clone())
    }
}

/// A throttling error as CodeBuild returns it.
pub fn throttled() -> PortError {
    PortError::Throttled {
        service: "CodeBuild",
        operation: "StartBuild",
        code: "ThrottlingException".into(),
        message: "Rate exceeded".into(),
    }
}

/// CodeBuild's concurrent-build quota.
pub fn account_limit() -> PortError {
    PortError::LimitExceeded {
        service: "CodeBuild",
        operation: "StartBuild",
        code: "AccountLimitExceededException".into(),
        message: "Cannot have more than 20 builds in queue for the account".into(),
    }
}

pub fn timeout() -> PortError {
    PortError::Timeout {
        service: "CodeBuild",
        operation: "StartBuild",
    }
}

pub fn denied() -> PortError {
    PortError::Service {
        service: "CodeBuild",
        operation: "StartBuild",
        code: "AccessDeniedException".into(),
        message: "not authorized".into(),
        server_side: false,
    }
}

/// EC2 images and snapshots in memory, counting every mutation.
#[derive(Default)]
pub struct MemoryImages {
    pub images: Mutex<BTreeMap<String, ImageInfo>>,
    /// Snapshots and their tags (Packer tags them like their image).
    pub snapshots: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    pub tag_calls: Mutex<usize>,
    pub deregistered: Mutex<Vec<String>>,
    pub deleted_snapshots: Mutex<Vec<String>>,
    /// Errors returned by the next calls to `tag`, in order.
    pub tag_faults: Mutex<VecDeque<PortError>>,
}

impl MemoryImages {
    /// Adds an image as Packer leaves it: tagged at creation, one snapshot.
    pub fn add(&self, id: &str, tags: &[(&str, &str)]) {
        let snapshot = format!("snap-{}", id.trim_start_matches("ami-"));
        let tags: BTreeMap<String, String> = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        lock(&self.snapshots).insert(snapshot.clone(), tags.clone());
        lock(&self.images).insert(
            id.to_owned(),
            ImageInfo {
                id: id.to_owned(),
                name: Some(id.to_owned()),
                state: "available".into(),
                snapshots: vec![snapshot],
                tags,
            },
        );
    }

    pub fn get(&self, id: &str) -> Option<ImageInfo> {
        lock(&self.images).get(id).cloned()
    }
}

impl Images for MemoryImages {
    async fn describe(&self, image_id: &str) -> PortResult<Option<ImageInfo>> {
        Ok(self.get(image_id))
    }

    async fn find_by_tag(&self, key: &str, value: &str) -> PortResult<Vec<ImageInfo>> {
        Ok(lock(&self.images)
            .values()
            .filter(|i| i.tags.get(key).map(String::as_str) == Some(value))
            .cloned()
            .collect())
    }

    async fn tag(&self, resources: &[String], tags: &[(String, String)]) -> PortResult<()> {
        if let Some(fault) = lock(&self.tag_faults).pop_front() {
            return Err(fault);
        }
        *lock(&self.tag_calls) += 1;
        let mut images = lock(&self.images);
        let mut snapshots = lock(&self.snapshots);
        for id in resources {
            if let Some(image) = images.get_mut(id) {
                image.tags.extend(tags.iter().cloned());
            }
            if let Some(snapshot) = snapshots.get_mut(id) {
                snapshot.extend(tags.iter().cloned());
            }
        }
        Ok(())
    }

    async fn deregister(&self, image_id: &str) -> PortResult<()> {
        if lock(&self.images).remove(image_id).is_some() {
            lock(&self.deregistered).push(image_id.to_owned());
        }
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> PortResult<()> {
        if lock(&self.snapshots).remove(snapshot_id).is_some() {
            lock(&self.deleted_snapshots).push(snapshot_id.to_owned());
        }
        Ok(())
    }

    async fn snapshots_by_tag(&self, key: &str, value: &str) -> PortResult<Vec<SnapshotInfo>> {
        Ok(lock(&self.snapshots)
            .iter()
            .filter(|(_, tags)| tags.get(key).map(String::as_str) == Some(value))
            .map(|(id, tags)| SnapshotInfo {
                id: id.clone(),
                tags: tags.clone(),
            })
            .collect())
    }
}

/// Test builds and build info: records starts, serves exported variables.
#[derive(Default)]
pub struct RecordingTests {
    pub started: Mutex<Vec<TestRequest>>,
    pub exported: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    pub start_faults: Mutex<VecDeque<PortError>>,
    /// What `build` answers, by build id (as `BatchGetBuilds` would).
    pub builds: Mutex<BTreeMap<String, BuildStateChange>>,
}

impl Tests for RecordingTests {
    async fn start_test(&self, request: &TestRequest) -> PortResult<String> {
        if let Some(fault) = lock(&self.start_faults).pop_front() {
            return Err(fault);
        }
        let mut started = lock(&self.started);
        started.push(request.clone());
        Ok(format!("gild-test:run-{}", started.len()))
    }
}

impl BuildInfo for RecordingTests {
    async fn exported_variables(&self, build_id: &str) -> PortResult<BTreeMap<String, String>> {
        lock(&self.exported)
            .get(build_id)
            .cloned()
            .ok_or_else(|| PortError::NotFound {
                service: "CodeBuild",
                operation: "BatchGetBuilds",
                code: "BuildNotFound".into(),
                message: build_id.to_owned(),
            })
    }

    async fn build(&self, build_id: &str) -> PortResult<Option<BuildStateChange>> {
        Ok(lock(&self.builds).get(build_id).cloned())
    }
}

/// SSM parameters with their history.
#[derive(Default)]
pub struct MemoryParameters {
    pub history: Mutex<BTreeMap<String, Vec<String>>>,
    pub faults: Mutex<VecDeque<PortError>>,
}

impl Parameters for MemoryParameters {
    async fn promote(&self, name: &str, image_id: &str) -> PortResult<i64> {
        if let Some(fault) = lock(&self.faults).pop_front() {
            return Err(fault);
        }
        let mut history = lock(&self.history);
        let versions = history.entry(name.to_owned()).or_default();
        versions.push(image_id.to_owned());
        Ok(versions.len() as i64)
    }

    async fn current(&self, name: &str) -> PortResult<Option<String>> {
        Ok(lock(&self.history)
            .get(name)
            .and_then(|v| v.last().cloned()))
    }
}

#[derive(Default)]
pub struct RecordingNotifier {
    pub published: Mutex<Vec<Publication>>,
}

impl Notifier for RecordingNotifier {
    async fn publish(&self, publication: &Publication) -> PortResult<String> {
        let mut published = lock(&self.published);
        published.push(publication.clone());
        Ok(format!("msg-{}", published.len()))
    }
}
