//! In-memory ports for unit tests, with scripted faults that no emulator
//! produces on demand (throttling, limits, timeouts). The ledger keeps the
//! same conditional semantics as the DynamoDB adapter, so handler tests
//! exercise the real exactly-once logic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use crate::ledger::{BakeKey, BakeRecord, Change, Claim};
use crate::plan::DiffBase;
use crate::ports::{BakeRequest, Builds, Ledger, PortError, PortResult, Repository};
use crate::state::BakeState;

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
                if !(existing.state == BakeState::Requested
                    && existing.lease_until < now
                    && existing.build_id.is_none()) =>
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
    ) -> PortResult<bool> {
        let mut records = lock(&self.records);
        let Some(record) = records
            .get_mut(key)
            .filter(|r| r.state == state && !r.is_locked(now))
        else {
            return Ok(false);
        };
        record.lease_until = now + lease_secs;
        Ok(true)
    }

    async fn advance(
        &self,
        key: &BakeKey,
        from: BakeState,
        to: BakeState,
        change: &Change,
        now: i64,
    ) -> PortResult<bool> {
        let mut records = lock(&self.records);
        let Some(record) = records.get_mut(key).filter(|r| r.state == from) else {
            return Ok(false);
        };
        record.state = to;
        record.updated_at = now;
        record.lease_until = 0;
        let fields = [
            (&mut record.build_id, &change.build_id),
            (&mut record.image, &change.image),
            (&mut record.test_build_id, &change.test_build_id),
            (&mut record.reason, &change.reason),
        ];
        for (field, value) in fields {
            if value.is_some() {
                field.clone_from(value);
            }
        }
        if change.failed_stage.is_some() {
            record.failed_stage = change.failed_stage;
        }
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

    async fn list(&self) -> PortResult<Vec<BakeRecord>> {
        Ok(self.snapshot())
    }
}

/// A CodeBuild stand-in: scripted faults per family, then success.
#[derive(Default)]
pub struct ScriptedBuilds {
    pub faults: Mutex<BTreeMap<String, VecDeque<PortError>>>,
    pub started: Mutex<Vec<BakeRequest>>,
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
