//! The reconciler: on a schedule, finds the bakes no event moved past their
//! stage's deadline and drives each one to its end through the same
//! completion driver and the same table the event handlers use, then
//! starts queued bakes into the slots that are free.
//!
//! What a bake's missing event would have said comes from the ledger record
//! and from CodeBuild (`BatchGetBuilds`): `gild_core::reconcile` decides, this
//! module asks and acts. A late original event afterwards finds the bake in
//! a state that calls for nothing.

use gild_core::completion::{tags, Finished};
use gild_core::ledger::{BakeKey, BakeRecord, Change};
use gild_core::ports::{
    Artifacts, BuildInfo, Builds, Images, Ledger, Notifier, Parameters, Reviews, Tests,
};
use gild_core::reconcile::{self, Deadlines, Look, Verdict};
use gild_core::state::BakeState;
use gild_core::steps;
use gild_lambda::retry::{seed, with_backoff};
use gild_lambda::Diagnostic;
use serde::Serialize;
use tracing::{info, warn};

use crate::completion::Origin;
use crate::trigger::{Launcher, Started, TriggerError};
use crate::{port, Completions, FlowError, Report};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the ledger's open bakes: {0}")]
    Ledger(gild_core::ports::PortError),
    /// Some bakes could not be finished this run; the rest were. The next
    /// run (or this one's retry) tries them again.
    #[error("{} of {} overdue bakes could not be finished this run: {}", failures.len(), looked, failures.join("; "))]
    Incomplete {
        failures: Vec<String>,
        looked: usize,
    },
    #[error("starting queued bakes: {0}")]
    Queue(#[from] TriggerError),
}

impl ReconcileError {
    /// Stable names for Lambda's `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            ReconcileError::Ledger(_) => "LedgerUnavailable",
            ReconcileError::Incomplete { .. } => "ReconcileIncomplete",
            ReconcileError::Queue(_) => "QueueDrainFailed",
        }
    }
}

impl From<ReconcileError> for Diagnostic {
    fn from(err: ReconcileError) -> Self {
        gild_lambda::diagnostic(err.name(), &err)
    }
}

/// What one run did; the function's response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Sweep {
    /// Open bakes read from the ledger.
    pub open: usize,
    pub bakes: Vec<Reconciled>,
    /// Queued bakes started into free slots.
    pub started: Vec<Started>,
    pub queue: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Reconciled {
    pub family: String,
    pub dedupe_key: String,
    pub state: gild_core::state::BakeState,
    #[serde(flatten)]
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

pub struct Reconciler<L, I, B, T, P, N, V, A, QL, QB> {
    completions: Completions<L, I, B, T, P, N, V, A>,
    launcher: Launcher<QL, QB>,
    deadlines: Deadlines,
    region: String,
}

impl<L, I, B, T, P, N, V, A, QL, QB> Reconciler<L, I, B, T, P, N, V, A, QL, QB>
where
    L: Ledger,
    I: Images,
    B: BuildInfo,
    T: Tests,
    P: Parameters,
    N: Notifier,
    V: Reviews,
    A: Artifacts,
    QL: Ledger,
    QB: Builds,
{
    pub fn new(
        completions: Completions<L, I, B, T, P, N, V, A>,
        launcher: Launcher<QL, QB>,
        deadlines: Deadlines,
        region: impl Into<String>,
    ) -> Self {
        Reconciler {
            completions,
            launcher,
            deadlines,
            region: region.into(),
        }
    }

    pub fn completions(&self) -> &Completions<L, I, B, T, P, N, V, A> {
        &self.completions
    }

    pub fn launcher(&self) -> &Launcher<QL, QB> {
        &self.launcher
    }

    /// The completion driver back, with its ports (tests deliver late
    /// events through it).
    pub fn into_completions(self) -> Completions<L, I, B, T, P, N, V, A> {
        self.completions
    }

    /// One run: every overdue bake, then the queue.
    pub async fn run(&self, now: i64) -> Result<Sweep, ReconcileError> {
        let ledger = &self.completions.ports.ledger;
        let open = with_backoff(&self.completions.backoff, seed("reconcile"), || {
            ledger.active()
        })
        .await
        .map_err(ReconcileError::Ledger)?;
        let overdue = reconcile::overdue(&open, now, &self.deadlines);
        info!(open = open.len(), overdue = overdue.len(), "reconciling");
        let mut bakes = Vec::new();
        let mut failures = Vec::new();
        for record in &overdue {
            match self.settle(record, now).await {
                Ok(done) => bakes.push(done),
                Err(error) => {
                    warn!(family = %record.key.family, dedupe_key = %record.key.dedupe_key, %error, "could not reconcile");
                    failures.push(format!(
                        "{} {}: {error}",
                        record.key.family, record.key.dedupe_key
                    ));
                }
            }
        }
        // Children still waiting for a parent whose bake ended (or never
        // came): released or failed, so none waits forever.
        for child in open.iter().filter(|r| r.state == BakeState::Waiting) {
            if let Err(error) = self.resolve_waiting(child, now).await {
                warn!(family = %child.key.family, %error, "could not resolve a waiting bake");
                failures.push(format!(
                    "{} {}: {error}",
                    child.key.family, child.key.dedupe_key
                ));
            }
        }
        // Slots freed by bakes ended above (or by a test build that could
        // never start) go to the queue now, not at the next build's end.
        let drained = self.launcher.drain("reconcile".into(), None, now).await?;
        // Pull-request images kept for people to launch, past their time.
        if let Err(error) = self.remove_expired_candidates(now).await {
            failures.push(format!("expired candidate images: {error}"));
        }
        if !failures.is_empty() {
            return Err(ReconcileError::Incomplete {
                failures,
                looked: overdue.len(),
            });
        }
        Ok(Sweep {
            open: open.len(),
            bakes,
            started: drained.started,
            queue: drained.reason,
        })
    }

    /// The backstop for a bake waiting on a parent bake that ended without
    /// moving it, or never came (`gild_core::reconcile::waiting`).
    async fn resolve_waiting(&self, child: &BakeRecord, now: i64) -> Result<(), FlowError> {
        let completions = &self.completions;
        let parent = match &child.parent {
            Some(parent) => {
                let key = BakeKey::new(parent.clone(), child.key.dedupe_key.clone());
                completions.read(&key, "read the parent's bake").await?
            }
            None => None,
        };
        match reconcile::waiting(child, parent.as_ref(), now, &self.deadlines) {
            reconcile::Waiting::Wait { .. } => {}
            reconcile::Waiting::Release { image } => {
                let change = Change {
                    parent_image: Some(image.clone()),
                    ..Change::default()
                };
                completions
                    .queue_child(&child.key, BakeState::Waiting, &change, now)
                    .await?;
                info!(family = %child.key.family, image, "a waiting child released by the reconciler");
            }
            reconcile::Waiting::Fail { reason } => {
                let at = reconcile::timestamp(now);
                completions
                    .fail_waiting(child, &reason, &self.region, &at, now)
                    .await?;
                info!(family = %child.key.family, reason, "a waiting child failed by the reconciler");
            }
        }
        Ok(())
    }

    /// Removes the candidate images whose `gild:expires-at` has passed.
    async fn remove_expired_candidates(&self, now: i64) -> Result<(), FlowError> {
        let completions = &self.completions;
        let key = BakeKey::new("candidates", "expired");
        let images = completions
            .retrying(&key, || {
                completions.ports.images.find_by_tag(tags::MANAGED, "true")
            })
            .await
            .map_err(|error| port("find gild's images", &key, error))?;
        for (image, build) in steps::expired_candidates(&images, now) {
            completions.remove(&key, &image, &build).await?;
            info!(image, "a kept pull-request image expired");
        }
        Ok(())
    }

    /// Decides and does what one overdue bake's missing event would have.
    async fn settle(&self, record: &BakeRecord, now: i64) -> Result<Reconciled, FlowError> {
        let key = &record.key;
        let (verdict, build) = match reconcile::look(record) {
            Look::Decided(verdict) => (verdict, None),
            Look::Build(build_id) => {
                let build = self
                    .completions
                    .retrying(key, || self.completions.ports.build_info.build(&build_id))
                    .await
                    .map_err(|error| port("read the build", key, error))?;
                let verdict = reconcile::judge(
                    record,
                    &build_id,
                    build.as_ref(),
                    &self.completions.settings.projects,
                );
                (verdict, build)
            }
        };
        let mut done = Reconciled {
            family: key.family.clone(),
            dedupe_key: key.dedupe_key.clone(),
            state: record.state,
            verdict: verdict.clone(),
            report: None,
        };
        let Verdict::Resume {
            completion,
            build_id,
            why,
        } = verdict
        else {
            info!(family = %key.family, verdict = ?done.verdict, "left as it is");
            return Ok(done);
        };
        info!(family = %key.family, dedupe_key = %key.dedupe_key, state = %record.state, ?completion, why, "resuming");
        let finished: Finished =
            reconcile::finished(record, completion, &build_id, build.as_ref(), &why);
        let report = Report {
            event: "reconcile".into(),
            family: None,
            build_id: Some(build_id),
            reached: Vec::new(),
            noop: None,
        };
        let at = reconcile::timestamp(now);
        let report = self
            .completions
            .drive(
                report,
                &finished,
                Origin::Reconciler,
                &self.region,
                &at,
                now,
            )
            .await?;
        done.report = Some(report);
        Ok(done)
    }
}
