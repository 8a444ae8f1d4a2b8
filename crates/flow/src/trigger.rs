//! Starting bakes: an event (EventBridge, or a GitHub push turned into the
//! same triage) becomes one bake build per affected family, exactly once.
//! Used by the trigger and github-webhook functions.

use futures::stream::{self, StreamExt};
use gild_core::catalog::{self, Catalog, CatalogError, CATALOG_FILE};
use gild_core::event::{self, EventError};
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::{self, Action, DiffBase, Inputs, PlanError, Settings, Triage};
use gild_core::ports::{BakeRequest, Builds, Ledger, PortError, Repository};
use gild_core::retry::Backoff;
use gild_core::state::BakeState;
use gild_lambda::retry::{seed, with_backoff};
use gild_lambda::Diagnostic;
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
    /// Bakes an earlier delivery already claimed.
    pub duplicates: Vec<Duplicate>,
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
    Duplicate(Duplicate),
}

pub struct Handler<R, L, B> {
    settings: Settings,
    repo: R,
    ledger: L,
    builds: B,
    concurrency: usize,
    lease_secs: i64,
    backoff: Backoff,
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
        }
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
        let mut triage = plan::triage(&event, &self.settings);
        if let Triage::Completion(_) = triage {
            triage = Triage::Ignore(
                "build completions are handled by bake-finished and test-finished".into(),
            );
        }
        self.start(&event.envelope.detail_type, triage, None, now)
            .await
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
        let mut outcome = Outcome {
            event: plan.event,
            reason: plan.reason,
            started: Vec::new(),
            duplicates: Vec::new(),
        };
        if plan.actions.is_empty() {
            info!(event = %outcome.event, reason = %outcome.reason, "nothing to bake");
            return Ok(outcome);
        }
        info!(event = %outcome.event, reason = %outcome.reason, bakes = plan.actions.len(), "planned");
        let owner = gild_lambda::invocation_token();
        let owner = owner.as_str();
        let results: Vec<(String, Result<Done, StartError>)> = stream::iter(plan.actions)
            .map(|action| async move {
                let family = action.family().to_owned();
                (family, self.start_once(action, now, owner).await)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut failures = Vec::new();
        for (family, result) in results {
            match result {
                Ok(Done::Started(started)) => outcome.started.push(started),
                Ok(Done::Duplicate(duplicate)) => outcome.duplicates.push(duplicate),
                Err(error) => failures.push(StartFailure { family, error }),
            }
        }
        outcome.started.sort_by(|a, b| a.family.cmp(&b.family));
        outcome.duplicates.sort_by(|a, b| a.family.cmp(&b.family));
        if failures.is_empty() {
            Ok(outcome)
        } else {
            failures.sort_by(|a, b| a.family.cmp(&b.family));
            Err(TriggerError::StartFailed {
                failures,
                started: outcome.started.len() + outcome.duplicates.len(),
            })
        }
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

    /// Claim, start, record. The claim comes first so that a concurrent or
    /// later delivery of the same event finds it and starts nothing.
    async fn start_once(&self, action: Action, now: i64, owner: &str) -> Result<Done, StartError> {
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
        let jitter = seed(&key.family);
        let record = BakeRecord::requested(
            key.clone(),
            trigger,
            Some(commit.clone()),
            now,
            self.lease_secs,
            owner,
        );
        let claim = with_backoff(&self.backoff, jitter, || self.ledger.claim(&record, now)).await?;
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
        let build_id = match with_backoff(&self.backoff, jitter, || {
            self.builds.start_bake(&request)
        })
        .await
        {
            Ok(build_id) => build_id,
            Err(err) => {
                // Let the retried event claim it again.
                if let Err(release) = self.ledger.release(&key, BakeState::Requested).await {
                    warn!(family = %key.family, error = %release, "could not release claim; it expires on its own");
                }
                return Err(err.into());
            }
        };
        let change = Change {
            build_id: Some(build_id.clone()),
            ..Change::default()
        };
        // If this write fails the build still runs; the live claim keeps
        // redeliveries from starting it again, and the error makes it visible.
        let recorded = with_backoff(&self.backoff, jitter, || {
            self.ledger
                .advance(&key, BakeState::Requested, BakeState::Baking, &change, now)
        })
        .await?;
        if !recorded {
            warn!(family = %key.family, build_id, "ledger moved on before the build was recorded");
        }
        info!(family = %key.family, dedupe_key = %key.dedupe_key, build_id, trigger = %trigger, "bake started");
        Ok(Done::Started(Started {
            family: key.family,
            dedupe_key: key.dedupe_key,
            build_id,
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
    async fn throttling_and_limits_are_retried() {
        let h = handler(&[]);
        h.builds().fail("a", [throttled(), throttled()]);
        h.builds().fail("b", [account_limit()]);
        let outcome = h
            .handle(schedule("2026-11-11T03:00:00Z"), 1)
            .await
            .expect("retried");
        assert_eq!(outcome.started.len(), 3);
        assert_eq!(h.builds().calls(), 6);
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
