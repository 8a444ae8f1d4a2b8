//! Starting bakes: an event (EventBridge, or a GitHub push turned into the
//! same triage) becomes one bake build per affected family, exactly once.
//! Used by the trigger and github-webhook functions.
//!
//! Bakes beyond gild's share of CodeBuild's concurrent-build quota are
//! queued in the ledger (`gild_core::queue`); the trigger starts them when a
//! build-ended event says a slot is free.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use gild_aws::{codebuild::CodeBuildBuilds, dynamodb::DynamoLedger};
use gild_core::catalog::{self, Catalog, CatalogError, CATALOG_FILE};
use gild_core::event::{self, EventError, EventKind};
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::{self, Action, DiffBase, Inputs, PlanError, Settings, Triage};
use gild_core::ports::{BakeRequest, Builds, Ledger, PortError, Repository};
use gild_core::queue;
use gild_core::retry::Backoff;
use gild_core::state::BakeState;
use gild_lambda::retry::{seed, with_backoff, with_backoff_if};
use gild_lambda::{optional, required, ConfigError, Diagnostic};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

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

enum Done {
    Started(Started),
    Queued(Queued),
    Duplicate(Duplicate),
    /// A queued bake left where it was: another invocation holds it, or no
    /// slot was free after all.
    Left,
}

impl Outcome {
    fn new(event: String, reason: String) -> Self {
        Outcome {
            event,
            reason,
            started: Vec::new(),
            queued: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    /// Files each bake's result, families in order; any failure makes the
    /// whole event fail (to be retried) after the rest were done.
    fn settle(
        mut self,
        results: Vec<(String, Result<Done, StartError>)>,
    ) -> Result<Outcome, TriggerError> {
        let mut failures = Vec::new();
        for (family, result) in results {
            match result {
                Ok(Done::Started(started)) => self.started.push(started),
                Ok(Done::Queued(queued)) => self.queued.push(queued),
                Ok(Done::Duplicate(duplicate)) => self.duplicates.push(duplicate),
                Ok(Done::Left) => {}
                Err(error) => failures.push(StartFailure { family, error }),
            }
        }
        self.started.sort_by(|a, b| a.family.cmp(&b.family));
        self.queued.sort_by(|a, b| a.family.cmp(&b.family));
        self.duplicates.sort_by(|a, b| a.family.cmp(&b.family));
        if failures.is_empty() {
            return Ok(self);
        }
        failures.sort_by(|a, b| a.family.cmp(&b.family));
        Err(TriggerError::StartFailed {
            failures,
            started: self.started.len() + self.queued.len() + self.duplicates.len(),
        })
    }
}

/// CodeBuild slots one invocation may still fill. Once CodeBuild itself says
/// the account is full, the rest queue without asking it again.
struct Slots {
    free: AtomicUsize,
    quota_full: AtomicBool,
}

impl Slots {
    fn new(free: usize) -> Self {
        Slots {
            free: AtomicUsize::new(free),
            quota_full: AtomicBool::new(false),
        }
    }

    fn take(&self) -> bool {
        !self.quota_full.load(Ordering::SeqCst)
            && self
                .free
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }

    fn give_back(&self) {
        self.free.fetch_add(1, Ordering::SeqCst);
    }

    fn full(&self) {
        self.quota_full.store(true, Ordering::SeqCst);
    }
}

/// A start that CodeBuild refused for want of a slot is queued, not retried:
/// slots free up in minutes or hours, not within a backoff.
fn retry_start(err: &PortError) -> bool {
    err.is_transient() && !matches!(err, PortError::LimitExceeded { .. })
}

/// What starting bakes needs from the environment, the same for the trigger
/// and github-webhook functions. Read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartConfig {
    pub ledger_table: String,
    pub bake_project: String,
    /// StartBuild calls in flight at once on a fan-out.
    pub concurrency: usize,
    /// How long a claim is held; longer than the function's timeout.
    pub lease_secs: i64,
    /// gild's builds at once; more bakes wait in the ledger's queue.
    pub max_parallel: usize,
}

impl StartConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let concurrency = optional("GILD_START_CONCURRENCY", 8usize)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "GILD_START_CONCURRENCY",
                value: "0".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(StartConfig {
            bake_project: required("GILD_BAKE_PROJECT")?,
            ledger_table: required("GILD_LEDGER_TABLE")?,
            concurrency,
            lease_secs: optional("GILD_LEASE_SECS", gild_core::ledger::DEFAULT_LEASE_SECS)?,
            max_parallel: optional(
                "GILD_MAX_PARALLEL_BUILDS",
                queue::DEFAULT_MAX_PARALLEL_BUILDS,
            )?,
        })
    }

    /// The handler over DynamoDB and CodeBuild, reading `repo`.
    pub fn handler<R: Repository>(
        &self,
        aws: &aws_config::SdkConfig,
        settings: Settings,
        repo: R,
    ) -> Handler<R, DynamoLedger, CodeBuildBuilds> {
        Handler::new(
            settings,
            repo,
            DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), &self.ledger_table),
            CodeBuildBuilds::new(aws_sdk_codebuild::Client::new(aws), &self.bake_project),
            self.concurrency,
            self.lease_secs,
        )
        .with_max_parallel(self.max_parallel)
    }
}

pub struct Handler<R, L, B> {
    settings: Settings,
    repo: R,
    ledger: L,
    builds: B,
    concurrency: usize,
    lease_secs: i64,
    backoff: Backoff,
    max_parallel: usize,
}

impl<R: Repository, L: Ledger, B: Builds> Handler<R, L, B> {
    pub fn new(
        settings: Settings,
        repo: R,
        ledger: L,
        builds: B,
        concurrency: usize,
        lease_secs: i64,
    ) -> Self {
        Handler {
            settings,
            repo,
            ledger,
            builds,
            concurrency: concurrency.max(1),
            lease_secs,
            backoff: Backoff::default(),
            max_parallel: queue::DEFAULT_MAX_PARALLEL_BUILDS,
        }
    }

    /// How many of gild's builds may run at once; more bakes are queued.
    pub fn with_max_parallel(mut self, max_parallel: usize) -> Self {
        self.max_parallel = max_parallel;
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub fn builds(&self) -> &B {
        &self.builds
    }

    /// Handles an EventBridge event.
    pub async fn handle(&self, event: Value, now: i64) -> Result<Outcome, TriggerError> {
        let event = event::parse(event)?;
        // A build ended somewhere in the account: a slot may be free. What
        // the build means for its bake is bake-finished's and test-finished's.
        if let EventKind::BuildStateChange(change) = &event.kind {
            let what = format!("{} {}", event.envelope.detail_type, change.build_id);
            return match queue::freed_slot(change, &self.settings.projects.bake) {
                Some(ended) => self.drain(what, ended, now).await,
                None => Ok(Outcome::new(
                    what,
                    format!(
                        "build {} {}: no build slot freed, the queue is not read",
                        change.project_name, change.status_text
                    ),
                )),
            };
        }
        let triage = plan::triage(&event, &self.settings);
        self.start(&event.envelope.detail_type, triage, None, now)
            .await
    }

    /// Starts queued bakes, oldest first, into the slots free now. `ended`
    /// is the build whose end is being reported, counted as gone already.
    pub async fn drain(
        &self,
        event: String,
        ended: &str,
        now: i64,
    ) -> Result<Outcome, TriggerError> {
        let active = self.active().await?;
        let free = queue::free_slots(&active, self.max_parallel, now, Some(ended));
        let picked = queue::next_to_start(&active, free, now);
        let waiting = active
            .iter()
            .filter(|r| r.state == BakeState::Queued)
            .count();
        let owner = gild_lambda::invocation_token();
        let owner = owner.as_str();
        let slots = &Slots::new(picked.len());
        let records = picked
            .iter()
            .filter_map(|key| active.iter().find(|r| &r.key == key));
        let results = self
            .fan_out(records, |record| async move {
                let family = record.key.family.clone();
                (family, self.start_queued(record, now, owner, slots).await)
            })
            .await;
        let outcome = Outcome::new(event, String::new()).settle(results)?;
        let outcome = Outcome {
            reason: format!(
                "{free} of {} build slots free: {} queued bakes started, {} still waiting",
                self.max_parallel,
                outcome.started.len(),
                waiting - outcome.started.len()
            ),
            ..outcome
        };
        info!(event = %outcome.event, reason = %outcome.reason, "queue drained");
        Ok(outcome)
    }

    /// Runs `start` on every item, `concurrency` at a time.
    async fn fan_out<I, F, Fut>(
        &self,
        items: I,
        start: F,
    ) -> Vec<(String, Result<Done, StartError>)>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> Fut,
        Fut: std::future::Future<Output = (String, Result<Done, StartError>)>,
    {
        stream::iter(items)
            .map(start)
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    async fn active(&self) -> Result<Vec<BakeRecord>, TriggerError> {
        self.retrying("queue", || self.ledger.active())
            .await
            .map_err(TriggerError::Ledger)
    }

    /// Starts one queued bake under its lock.
    async fn start_queued(
        &self,
        record: &BakeRecord,
        now: i64,
        owner: &str,
        slots: &Slots,
    ) -> Result<Done, StartError> {
        let key = &record.key;
        let locked = with_backoff(&self.backoff, seed(&key.family), || {
            self.ledger
                .lock(key, BakeState::Queued, now, self.lease_secs, owner)
        })
        .await?;
        if !locked {
            return Ok(Done::Left);
        }
        let commit = record
            .commit
            .clone()
            .ok_or_else(|| PortError::InvalidResponse {
                service: "ledger",
                operation: "queue",
                message: format!("queued bake of {} has no commit", key.family),
            })?;
        let request = BakeRequest {
            key: key.clone(),
            trigger: record.trigger,
            commit,
        };
        let Some(build_id) = self.launch(&request, BakeState::Queued, slots, now).await? else {
            // Back in the queue for the next build-ended event.
            self.release(key, BakeState::Queued).await;
            return Ok(Done::Left);
        };
        info!(family = %key.family, dedupe_key = %key.dedupe_key, build_id, "queued bake started");
        Ok(Done::Started(Started {
            family: key.family.clone(),
            dedupe_key: key.dedupe_key.clone(),
            build_id,
        }))
    }

    /// Takes a slot, starts the bake's build and records it on the bake,
    /// which is in `from` under this invocation's claim or lock. `None`
    /// when no slot is free; on an error the claim or lock is released so
    /// the retried event takes the bake again.
    async fn launch(
        &self,
        request: &BakeRequest,
        from: BakeState,
        slots: &Slots,
        now: i64,
    ) -> Result<Option<String>, StartError> {
        let started = if slots.take() {
            self.start_build(request, slots).await
        } else {
            Ok(None)
        };
        match started {
            Ok(Some(build_id)) => {
                self.record_start(&request.key, from, &build_id, now)
                    .await?;
                Ok(Some(build_id))
            }
            Ok(None) => Ok(None),
            Err(err) => {
                self.release(&request.key, from).await;
                Err(err)
            }
        }
    }

    /// Frees a claim or lock now rather than at the end of its lease.
    async fn release(&self, key: &BakeKey, state: BakeState) {
        if let Err(error) = self.ledger.release(key, state).await {
            warn!(family = %key.family, %error, "could not release the bake; its lease expires on its own");
        }
    }

    /// StartBuild, retried on throttling and timeouts; `None` when the
    /// account's concurrent-build quota is full.
    async fn start_build(
        &self,
        request: &BakeRequest,
        slots: &Slots,
    ) -> Result<Option<String>, StartError> {
        let started = with_backoff_if(
            &self.backoff,
            seed(&request.key.family),
            retry_start,
            || self.builds.start_bake(request),
        )
        .await;
        match started {
            Ok(build_id) => Ok(Some(build_id)),
            Err(PortError::LimitExceeded { code, .. }) => {
                warn!(family = %request.key.family, code, "CodeBuild has no free slot; queueing");
                slots.full();
                Ok(None)
            }
            Err(err) => {
                slots.give_back();
                Err(err.into())
            }
        }
    }

    /// Records the build on the bake. If this write fails the build still
    /// runs; the live lock keeps redeliveries from starting it again, and
    /// the error makes it visible.
    async fn record_start(
        &self,
        key: &BakeKey,
        from: BakeState,
        build_id: &str,
        now: i64,
    ) -> Result<(), StartError> {
        let change = Change {
            build_id: Some(build_id.to_owned()),
            ..Change::default()
        };
        let recorded = with_backoff(&self.backoff, seed(&key.family), || {
            self.ledger
                .advance(key, from, BakeState::Baking, &change, now)
        })
        .await?;
        if !recorded {
            warn!(family = %key.family, build_id, "ledger moved on before the build was recorded");
        }
        Ok(())
    }

    /// Plans and starts the bakes of a triaged event. `changed` gives the
    /// push's changed paths when the caller already knows them all (a GitHub
    /// push payload that was not truncated), saving the diff call.
    pub async fn start(
        &self,
        detail_type: &str,
        triage: Triage,
        changed: Option<Vec<String>>,
        now: i64,
    ) -> Result<Outcome, TriggerError> {
        let inputs = self.read_inputs(&triage, changed).await?;
        let plan = plan::plan_triaged(detail_type, &triage, &inputs)?;
        let outcome = Outcome::new(plan.event, plan.reason);
        if plan.actions.is_empty() {
            info!(event = %outcome.event, reason = %outcome.reason, "nothing to bake");
            return Ok(outcome);
        }
        info!(event = %outcome.event, reason = %outcome.reason, bakes = plan.actions.len(), "planned");
        let active = self.active().await?;
        let slots = &Slots::new(queue::free_slots(&active, self.max_parallel, now, None));
        let owner = gild_lambda::invocation_token();
        let owner = owner.as_str();
        let results = self
            .fan_out(plan.actions, |action| async move {
                let family = action.family().to_owned();
                (family, self.start_once(action, now, owner, slots).await)
            })
            .await;
        outcome.settle(results)
    }

    async fn read_inputs(
        &self,
        triage: &Triage,
        changed: Option<Vec<String>>,
    ) -> Result<Inputs, TriggerError> {
        match triage {
            Triage::Ignore(_) | Triage::Completion(_) => Ok(Inputs::default()),
            Triage::Push { commit, base, .. } => {
                let catalog = self.catalog_at(commit).await?;
                let changed = match changed {
                    Some(changed) => changed,
                    None => self
                        .retrying(commit, || self.repo.changed_paths(base, commit))
                        .await
                        .map_err(TriggerError::Repository)?,
                };
                let previous_catalog = match base {
                    DiffBase::Commit(before) if changed.iter().any(|p| p == CATALOG_FILE) => {
                        self.previous_catalog(before).await?
                    }
                    _ => None,
                };
                Ok(Inputs {
                    catalog,
                    previous_catalog,
                    changed,
                    commit: Some(commit.clone()),
                })
            }
            Triage::Schedule { .. } | Triage::Manual { .. } => {
                let branch = &self.settings.tracked_branch;
                let tip = self
                    .retrying(branch, || self.repo.branch_tip(branch))
                    .await
                    .map_err(TriggerError::Repository)?;
                Ok(Inputs {
                    catalog: self.catalog_at(&tip).await?,
                    commit: Some(tip),
                    ..Inputs::default()
                })
            }
        }
    }

    async fn catalog_at(&self, commit: &str) -> Result<Catalog, TriggerError> {
        let text = self
            .retrying(commit, || self.repo.read_file(commit, CATALOG_FILE))
            .await
            .map_err(TriggerError::Repository)?
            .ok_or_else(|| TriggerError::CatalogMissing {
                commit: commit.to_owned(),
            })?;
        Ok(catalog::parse(CATALOG_FILE, &text)?)
    }

    /// The catalog before a push. When it is missing or invalid, every family
    /// counts as changed by the push's edit of the catalog.
    async fn previous_catalog(&self, commit: &str) -> Result<Option<Catalog>, TriggerError> {
        let text = self
            .retrying(commit, || self.repo.read_file(commit, CATALOG_FILE))
            .await
            .map_err(TriggerError::Repository)?;
        Ok(text.and_then(|text| match catalog::parse(CATALOG_FILE, &text) {
            Ok(catalog) => Some(catalog),
            Err(err) => {
                warn!(%err, commit, "previous catalog unreadable; every family counts as changed");
                None
            }
        }))
    }

    async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, PortError>>,
    {
        with_backoff(&self.backoff, seed(what), call).await
    }

    /// Claim, start (or queue), record. The claim comes first so that a
    /// concurrent or later delivery of the same event finds it and starts
    /// nothing.
    async fn start_once(
        &self,
        action: Action,
        now: i64,
        owner: &str,
        slots: &Slots,
    ) -> Result<Done, StartError> {
        let Action::StartBake {
            family,
            trigger,
            dedupe_key,
            commit,
        } = action
        else {
            // The trigger's plans hold nothing else; refuse rather than guess.
            return Err(StartError::Port(PortError::InvalidResponse {
                service: "planner",
                operation: "plan",
                message: format!("unexpected action for {}", action.family()),
            }));
        };
        let commit = commit.ok_or_else(|| PortError::InvalidResponse {
            service: "planner",
            operation: "plan",
            message: format!("no commit to bake for {family}"),
        })?;
        let key = BakeKey::new(family, dedupe_key);
        let record = BakeRecord::requested(
            key.clone(),
            trigger,
            Some(commit.clone()),
            now,
            self.lease_secs,
            owner,
        );
        let claim = with_backoff(&self.backoff, seed(&key.family), || {
            self.ledger.claim(&record, now)
        })
        .await?;
        if let Claim::Taken(existing) = claim {
            if existing.state == BakeState::Requested && existing.build_id.is_none() {
                return Err(StartError::InFlight {
                    lease_until: existing.lease_until,
                });
            }
            info!(family = %key.family, dedupe_key = %key.dedupe_key, state = %existing.state,
                  build_id = existing.build_id.as_deref().unwrap_or(""), "already claimed, not starting again");
            return Ok(Done::Duplicate(Duplicate {
                family: key.family,
                dedupe_key: key.dedupe_key,
                state: existing.state,
                build_id: existing.build_id,
            }));
        }
        let request = BakeRequest {
            key: key.clone(),
            trigger,
            commit,
        };
        let Some(build_id) = self
            .launch(&request, BakeState::Requested, slots, now)
            .await?
        else {
            return self.enqueue(key, now).await;
        };
        info!(family = %key.family, dedupe_key = %key.dedupe_key, build_id, trigger = %trigger, "bake started");
        Ok(Done::Started(Started {
            family: key.family,
            dedupe_key: key.dedupe_key,
            build_id,
        }))
    }

    /// Puts a claimed bake in the queue. The write is what makes it durable:
    /// until it lands, the live claim makes redeliveries retry (InFlight).
    async fn enqueue(&self, key: BakeKey, now: i64) -> Result<Done, StartError> {
        let nothing = Change::default();
        let queued = with_backoff(&self.backoff, seed(&key.family), || {
            self.ledger
                .advance(&key, BakeState::Requested, BakeState::Queued, &nothing, now)
        })
        .await?;
        if !queued {
            warn!(family = %key.family, "claim moved on before the bake was queued");
        }
        info!(family = %key.family, dedupe_key = %key.dedupe_key, "no CodeBuild slot free; bake queued");
        Ok(Done::Queued(Queued {
            family: key.family,
            dedupe_key: key.dedupe_key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::fakes::{
        account_limit, denied, throttled, timeout, MemoryLedger, MemoryRepository, ScriptedBuilds,
    };
    use serde_json::json;
    use std::time::Duration;

    const CATALOG: &str = r#"
[families.a]
path = "images/a"
os = "linux"
roles = ["base"]
[families.b]
path = "images/b"
os = "linux"
roles = ["base"]
[families.c]
path = "images/c"
os = "windows"
"#;

    fn handler(changed: &[&str]) -> Handler<MemoryRepository, MemoryLedger, ScriptedBuilds> {
        let mut repo = MemoryRepository {
            tip: "tip1".into(),
            changed: changed.iter().map(|p| (*p).to_owned()).collect(),
            ..MemoryRepository::default()
        };
        for commit in ["tip1", "new1", "old1"] {
            repo.files
                .insert((commit.into(), CATALOG_FILE.into()), CATALOG.into());
        }
        Handler::new(
            Settings {
                repository: Some("imgs".into()),
                ..Settings::default()
            },
            repo,
            MemoryLedger::default(),
            ScriptedBuilds::default(),
            2,
            60,
        )
        .with_backoff(Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            attempts: 4,
        })
    }

    fn push() -> Value {
        json!({"version": "0", "id": "p1", "detail-type": "CodeCommit Repository State Change",
               "source": "aws.codecommit", "time": "2026-11-12T14:05:09Z", "region": "us-east-1",
               "detail": {"event": "referenceUpdated", "referenceType": "branch", "referenceName": "main",
                          "repositoryName": "imgs", "commitId": "new1", "oldCommitId": "old1"}})
    }

    fn schedule(time: &str) -> Value {
        json!({"version": "0", "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events",
               "time": time, "detail": {}})
    }

    #[tokio::test]
    async fn push_starts_affected_families_once_across_redeliveries() {
        let h = handler(&["ansible/roles/base/tasks/main.yml"]);
        let first = h.handle(push(), 1000).await.expect("first delivery");
        assert_eq!(first.started.len(), 2);
        for _ in 0..2 {
            let again = h.handle(push(), 1001).await.expect("redelivery");
            assert!(again.started.is_empty());
            assert_eq!(again.duplicates.len(), 2);
            assert!(again
                .duplicates
                .iter()
                .all(|d| d.state == BakeState::Baking));
        }
        assert_eq!(h.builds().started_families(), vec!["a", "b"]);
        let request = &h.builds().started.lock().expect("lock")[0];
        assert_eq!(request.commit, "new1");
    }

    #[tokio::test]
    async fn schedule_twice_in_a_month_bakes_once_next_month_again() {
        let h = handler(&[]);
        h.handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("first");
        let again = h
            .handle(schedule("2026-11-11T03:05:00Z"), 2)
            .await
            .expect("second");
        assert!(again.started.is_empty());
        assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
        h.handle(schedule("2026-12-09T03:00:00Z"), 3)
            .await
            .expect("december");
        assert_eq!(h.builds().started_families().len(), 6);
    }

    #[tokio::test]
    async fn throttling_is_retried_and_a_full_account_queues() {
        let h = handler(&[]).with_backoff(Backoff {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            attempts: 4,
        });
        h.builds().fail("a", [throttled(), throttled()]);
        h.builds().fail("b", [account_limit()]);
        let outcome = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("retried or queued");
        assert_eq!(outcome.started.len(), 1, "{outcome:?}");
        assert_eq!(outcome.started[0].family, "a");
        // Two lanes: c waits for b's, which ends on the limit, so c queues
        // without a StartBuild of its own.
        let queued: Vec<&str> = outcome.queued.iter().map(|q| q.family.as_str()).collect();
        assert_eq!(queued, vec!["b", "c"]);
        assert_eq!(h.builds().started_families(), vec!["a"]);
        assert_eq!(h.builds().calls(), 4);
    }

    #[tokio::test]
    async fn partial_failure_is_reported_and_retry_starts_only_the_rest() {
        let h = handler(&[]);
        h.builds().fail("b", [denied()]);
        h.builds()
            .fail("c", [timeout(), timeout(), timeout(), timeout()]);
        let err = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect_err("b and c fail");
        let TriggerError::StartFailed { failures, started } = &err else {
            panic!("wrong error {err}")
        };
        assert_eq!(*started, 1);
        assert_eq!(
            failures
                .iter()
                .map(|f| f.family.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        assert_eq!(err.name(), "StartFailed");
        // Lambda retries the event: only b and c start now.
        let retry = h
            .handle(schedule("2026-11-11T03:00:00Z"), 2)
            .await
            .expect("retry");
        assert_eq!(
            retry
                .started
                .iter()
                .map(|s| s.family.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        assert_eq!(retry.duplicates.len(), 1);
        assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
    }

    #[tokio::test]
    async fn expired_claim_without_build_is_taken_over() {
        let h = handler(&[]);
        let key = BakeKey::new("a", "schedule:2026-11");
        let stale = BakeRecord::requested(
            key,
            gild_core::plan::Trigger::Schedule,
            None,
            0,
            60,
            "crashed-invocation",
        );
        h.ledger()
            .claim(&stale, 0)
            .await
            .expect("seed a crashed claim");
        // Within the lease the crashed claim still blocks, as an error so
        // that Lambda retries …
        let err = h
            .handle(schedule("2026-11-11T03:00:00Z"), 10)
            .await
            .expect_err("in flight");
        assert!(err.to_string().contains("another invocation"), "{err}");
        assert_eq!(h.builds().started_families(), vec!["b", "c"]);
        // … and the retry, after the lease, takes over.
        let taken = h
            .handle(schedule("2026-11-11T03:00:00Z"), 100)
            .await
            .expect("ok");
        assert_eq!(taken.started.len(), 1);
        assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
    }

    fn ended(project: &str, build_id: &str, status: &str) -> Value {
        json!({"version": "0", "id": format!("e-{build_id}"), "detail-type": "CodeBuild Build State Change",
               "source": "aws.codebuild", "time": "2026-11-11T05:00:00Z", "region": "us-east-1",
               "detail": {"build-status": status, "project-name": project,
                          "build-id": format!("arn:aws:codebuild:us-east-1:123456789012:build/{build_id}")}})
    }

    fn states(
        h: &Handler<MemoryRepository, MemoryLedger, ScriptedBuilds>,
    ) -> Vec<(String, BakeState)> {
        h.ledger()
            .snapshot()
            .into_iter()
            .map(|r| (r.key.family, r.state))
            .collect()
    }

    #[tokio::test]
    async fn bakes_beyond_the_limit_queue_and_start_as_builds_end() {
        let h = handler(&[]).with_max_parallel(2);
        let outcome = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("schedule");
        assert_eq!(outcome.started.len(), 2);
        assert_eq!(outcome.queued.len(), 1);
        let waiting = outcome.queued[0].family.clone();
        // The queue is durable and a redelivery neither starts nor re-queues it.
        let again = h
            .handle(schedule("2026-11-11T03:00:00Z"), 2)
            .await
            .expect("redelivery");
        assert!(again.started.is_empty() && again.queued.is_empty());
        assert_eq!(again.duplicates.len(), 3);
        assert_eq!(h.builds().calls(), 2);
        // A bake that succeeded hands its slot to its test: nothing starts.
        let first = outcome.started[0].build_id.clone();
        let drained = h
            .handle(ended("gild-bake", &first, "SUCCEEDED"), 3)
            .await
            .expect("bake succeeded");
        assert!(drained.started.is_empty(), "{drained:?}");
        // A failed bake frees its slot even before bake-finished records it.
        let drained = h
            .handle(ended("gild-bake", &first, "FAILED"), 4)
            .await
            .expect("bake failed");
        assert_eq!(drained.started.len(), 1);
        assert_eq!(drained.started[0].family, waiting);
        // The same event again (at-least-once delivery) starts nothing more.
        let twice = h
            .handle(ended("gild-bake", &first, "FAILED"), 5)
            .await
            .expect("redelivered end");
        assert!(twice.started.is_empty());
        assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
        assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Baking));
    }

    #[tokio::test]
    async fn a_full_account_queues_without_asking_codebuild_again() {
        let h = handler(&[]).with_max_parallel(10);
        h.builds().fail("a", [account_limit()]);
        h.builds().fail("b", [account_limit()]);
        h.builds().fail("c", [account_limit()]);
        let outcome = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("queued, not failed");
        assert!(outcome.started.is_empty());
        assert_eq!(outcome.queued.len(), 3);
        // Two fan-out lanes may each meet the limit once; never all three.
        assert!(h.builds().calls() <= 2, "{}", h.builds().calls());
        assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Queued));
        h.builds()
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // Some other team's build ends: the account has room again.
        let drained = h
            .handle(ended("other-team", "other-team:1", "SUCCEEDED"), 2)
            .await
            .expect("drain");
        assert_eq!(drained.started.len(), 3);
        assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Baking));
    }

    #[tokio::test]
    async fn a_failed_start_from_the_queue_goes_back_to_the_queue() {
        let h = handler(&[]).with_max_parallel(0);
        let outcome = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("all queued");
        assert_eq!(outcome.queued.len(), 3);
        let mut h = h.with_max_parallel(3);
        h.backoff.attempts = 1;
        h.builds().fail("a", [denied()]);
        let err = h
            .handle(ended("other-team", "other-team:1", "FAILED"), 2)
            .await
            .expect_err("a fails for good");
        assert!(matches!(err, TriggerError::StartFailed { .. }), "{err}");
        let retry = h
            .handle(ended("other-team", "other-team:1", "FAILED"), 3)
            .await
            .expect("retried delivery");
        assert_eq!(retry.started.len(), 1);
        assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
    }

    #[tokio::test]
    async fn ignored_and_bad_inputs() {
        let h = handler(&["docs/README.md"]);
        let outcome = h.handle(push(), 1).await.expect("push touching nothing");
        assert!(outcome.started.is_empty());
        assert!(
            outcome.reason.contains("touches no family"),
            "{}",
            outcome.reason
        );
        let err = h
            .handle(json!({"hello": 1}), 1)
            .await
            .expect_err("not an event");
        assert_eq!(err.name(), "BadEvent");
        let manual = json!({"version": "0", "id": "m1", "detail-type": "Build Requested", "source": "gild",
                            "time": "2026-11-12T14:05:09Z", "detail": {"family": "zzz"}});
        let err = h.handle(manual, 1).await.expect_err("unknown family");
        assert!(err.to_string().contains("known families: a, b, c"), "{err}");
        assert_eq!(h.builds().calls(), 0);
    }

    #[tokio::test]
    async fn invalid_catalog_starts_nothing() {
        let mut h = handler(&["images/a/x"]);
        h.repo.files.insert(
            ("new1".into(), CATALOG_FILE.into()),
            "[families.a]\npath = \"images/a\"\nos = \"linux\"\nowner = \"x\"\n".into(),
        );
        let err = h.handle(push(), 1).await.expect_err("bad catalog");
        assert_eq!(err.name(), "CatalogInvalid");
        assert!(err.to_string().contains("gild.toml:4:"), "{err}");
        assert_eq!(h.builds().calls(), 0);
    }
}
