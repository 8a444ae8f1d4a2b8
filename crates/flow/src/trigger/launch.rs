//! Taking a CodeBuild slot and starting a bake's build in it, from a fresh
//! claim or from the queue. Shared by the trigger (new bakes, and the queue
//! when a build ends) and the reconciler (the queue, on its schedule).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::stream::{self, StreamExt};
use gild_core::ledger::lane_of;
use gild_core::ledger::{BakeKey, BakeRecord, Change};
use gild_core::ports::{BakeRequest, Builds, Ledger, PortError};
use gild_core::queue;
use gild_core::retry::Backoff;
use gild_core::state::{BakeState, Step, Transition};
use gild_lambda::retry::{seed, with_backoff, with_backoff_if};
use tracing::{info, warn};

use super::outcome::{Done, Outcome, StartError, Started, TriggerError};

/// CodeBuild slots one invocation may still fill. Once CodeBuild itself says
/// the account is full, the rest queue without asking it again.
pub(crate) struct Slots {
    free: AtomicUsize,
    quota_full: AtomicBool,
}

impl Slots {
    pub(crate) fn new(free: usize) -> Self {
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

/// The ledger and CodeBuild, and how gild uses CodeBuild's slots.
pub struct Launcher<L, B> {
    pub(crate) ledger: L,
    pub(crate) builds: B,
    /// StartBuild calls in flight at once on a fan-out.
    pub(crate) concurrency: usize,
    /// How long a claim or queue lock is held.
    pub(crate) lease_secs: i64,
    pub(crate) backoff: Backoff,
    /// gild's builds at once; more bakes wait in the ledger's queue.
    pub(crate) max_parallel: usize,
}

impl<L: Ledger, B: Builds> Launcher<L, B> {
    pub fn new(ledger: L, builds: B, concurrency: usize, lease_secs: i64) -> Self {
        Launcher {
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

    /// Starts queued bakes, oldest first, into the slots free now. `ended`
    /// is the build whose end is being reported, counted as gone already
    /// (none when the reconciler drains on its schedule).
    pub async fn drain(
        &self,
        event: String,
        ended: Option<&str>,
        now: i64,
    ) -> Result<Outcome, TriggerError> {
        let active = self.active().await?;
        let free = queue::free_slots(&active, self.max_parallel, now, ended);
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
    pub(crate) async fn fan_out<I, F, Fut>(
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

    pub(crate) async fn active(&self) -> Result<Vec<BakeRecord>, TriggerError> {
        with_backoff(&self.backoff, seed("queue"), || self.ledger.active())
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
            parent: record.parent.clone(),
            source_image: record.parent_image.clone(),
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
    pub(crate) async fn launch(
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
                self.record_start(request, from, &build_id, now).await?;
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
        request: &BakeRequest,
        from: BakeState,
        build_id: &str,
        now: i64,
    ) -> Result<(), StartError> {
        let change = Change {
            build_id: Some(build_id.to_owned()),
            ..Change::default()
        };
        let key = &request.key;
        let started = Transition::require(lane_of(request.trigger), from, Step::BakeStarted)?;
        let recorded = with_backoff(&self.backoff, seed(&key.family), || {
            self.ledger.advance(key, started, &change, now)
        })
        .await?;
        if !recorded {
            warn!(family = %key.family, build_id, "ledger moved on before the build was recorded");
        }
        Ok(())
    }
}
