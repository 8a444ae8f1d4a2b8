//! Starting bakes: an event (EventBridge, or a GitHub push turned into the
//! same triage) becomes one bake build per affected family, exactly once.
//! Used by the trigger and github-webhook functions.
//!
//! Bakes beyond gild's share of CodeBuild's concurrent-build quota are
//! queued in the ledger (`gild_core::queue`); the trigger starts them when a
//! build-ended event says a slot is free, and the reconciler on its schedule.
//!
//! - `inputs`: what is read from the repository to plan an event;
//! - [`launch`]: slots, StartBuild, and the queue;
//! - `outcome`: what an invocation did, and its errors;
//! - `config`: the environment.

mod config;
mod inputs;
pub mod launch;
mod outcome;
pub mod review;

use gild_core::event::{self, EventKind};
use gild_core::ledger::{lane_of, BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::{self, Action, Settings, Triage, Trigger};
use gild_core::ports::{BakeRequest, Builds, Ledger, PortError, Repository};
use gild_core::pull_request::PullRequest;
use gild_core::queue;
use gild_core::retry::Backoff;
use gild_core::state::{BakeState, Step, Transition};
use gild_lambda::retry::{seed, with_backoff};
use serde_json::Value;
use tracing::{info, warn};

pub use config::{ReviewConfig, StartConfig};
pub use launch::Launcher;
use launch::Slots;
use outcome::Done;
pub use outcome::{
    Duplicate, Outcome, Queued, StartError, StartFailure, Started, Superseded, TriggerError,
    Waiting,
};
pub use review::{NoPullRequests, PullRequestSide, ReviewPorts};

pub struct Handler<R, L, B, X = NoPullRequests> {
    settings: Settings,
    repo: R,
    launcher: Launcher<L, B>,
    /// What pull-request events are handled with ([`ReviewPorts`]).
    pull_requests: X,
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
            launcher: Launcher::new(ledger, builds, concurrency, lease_secs),
            pull_requests: NoPullRequests,
        }
    }

    /// Handles pull requests with these ports.
    pub fn with_pull_requests<X: PullRequestSide>(self, pull_requests: X) -> Handler<R, L, B, X> {
        Handler {
            settings: self.settings,
            repo: self.repo,
            launcher: self.launcher,
            pull_requests,
        }
    }
}

impl<R: Repository, L: Ledger, B: Builds, X: PullRequestSide> Handler<R, L, B, X> {
    /// How many of gild's builds may run at once; more bakes are queued.
    pub fn with_max_parallel(mut self, max_parallel: usize) -> Self {
        self.launcher = self.launcher.with_max_parallel(max_parallel);
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.launcher = self.launcher.with_backoff(backoff);
        self
    }

    pub fn ledger(&self) -> &L {
        self.launcher.ledger()
    }

    pub fn builds(&self) -> &B {
        self.launcher.builds()
    }

    /// Handles an EventBridge event.
    pub async fn handle(&self, event: Value, now: i64) -> Result<Outcome, TriggerError> {
        let event = event::parse(event)?;
        // A build ended somewhere in the account: a slot may be free. What
        // the build means for its bake is bake-finished's and test-finished's.
        if let EventKind::BuildStateChange(change) = &event.kind {
            let what = format!("{} {}", event.envelope.detail_type, change.build_id);
            return match queue::freed_slot(change, &self.settings.projects.bake) {
                Some(ended) => self.launcher.drain(what, Some(ended), now).await,
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
        if let Triage::PullRequest(pull_request) = &triage {
            return X::handle(self, detail_type, pull_request, now).await;
        }
        let inputs = self.read_inputs(&triage, changed).await?;
        let plan = plan::plan_triaged(detail_type, &triage, &inputs)?;
        let outcome = Outcome::new(plan.event, plan.reason);
        if plan.actions.is_empty() {
            info!(event = %outcome.event, reason = %outcome.reason, "nothing to bake");
            return Ok(outcome);
        }
        info!(event = %outcome.event, reason = %outcome.reason, bakes = plan.actions.len(), "planned");
        let active = self.launcher.active().await?;
        let slots = &Slots::new(queue::free_slots(
            &active,
            self.launcher.max_parallel,
            now,
            None,
        ));
        let owner = gild_lambda::invocation_token();
        let owner = owner.as_str();
        let results = self
            .launcher
            .fan_out(plan.actions, |action| async move {
                let family = action.family().to_owned();
                (
                    family,
                    self.start_once(action, None, now, owner, slots).await,
                )
            })
            .await;
        outcome.settle(results)
    }

    /// Claim, start (or queue), record. The claim comes first so that a
    /// concurrent or later delivery of the same event finds it and starts
    /// nothing.
    async fn start_once(
        &self,
        action: Action,
        pull_request: Option<&PullRequest>,
        now: i64,
        owner: &str,
        slots: &Slots,
    ) -> Result<Done, StartError> {
        let (family, trigger, dedupe_key, commit, parent, children, waits) = match action {
            Action::StartBake {
                family,
                trigger,
                dedupe_key,
                commit,
                parent,
                children,
                ..
            } => (family, trigger, dedupe_key, commit, parent, children, false),
            Action::WaitForParent {
                family,
                parent,
                trigger,
                dedupe_key,
                commit,
                children,
            } => (
                family,
                trigger,
                dedupe_key,
                commit,
                Some(parent),
                children,
                true,
            ),
            action => {
                // The trigger's plans hold nothing else; refuse rather than guess.
                return Err(StartError::Port(PortError::InvalidResponse {
                    service: "planner",
                    operation: "plan",
                    message: format!("unexpected action for {}", action.family()),
                }));
            }
        };
        let commit = commit.ok_or_else(|| PortError::InvalidResponse {
            service: "planner",
            operation: "plan",
            message: format!("no commit to bake for {family}"),
        })?;
        let key = BakeKey::new(family, dedupe_key);
        let mut record = BakeRecord::requested(
            key.clone(),
            trigger,
            Some(commit.clone()),
            now,
            self.launcher.lease_secs,
            owner,
        );
        record.pull_request = pull_request.cloned();
        record.parent.clone_from(&parent);
        record.children = children;
        let claim = with_backoff(&self.launcher.backoff, seed(&key.family), || {
            self.launcher.ledger.claim(&record, now)
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
        if waits {
            return self.wait_for_parent(key, trigger, now).await;
        }
        let request = BakeRequest {
            key: key.clone(),
            trigger,
            commit,
            parent,
            source_image: None,
        };
        let Some(build_id) = self
            .launcher
            .launch(&request, BakeState::Requested, slots, now)
            .await?
        else {
            return self.enqueue(key, trigger, now).await;
        };
        info!(family = %key.family, dedupe_key = %key.dedupe_key, build_id, trigger = %trigger, "bake started");
        Ok(Done::Started(Started {
            family: key.family,
            dedupe_key: key.dedupe_key,
            build_id,
        }))
    }

    /// A claimed child whose parent bakes in the same run: it waits,
    /// holding no slot, until the parent's completion releases it.
    async fn wait_for_parent(
        &self,
        key: BakeKey,
        trigger: Trigger,
        now: i64,
    ) -> Result<Done, StartError> {
        let nothing = Change::default();
        let wait =
            Transition::require(lane_of(trigger), BakeState::Requested, Step::WaitForParent)?;
        let waiting = with_backoff(&self.launcher.backoff, seed(&key.family), || {
            self.launcher.ledger.advance(&key, wait, &nothing, now)
        })
        .await?;
        if !waiting {
            warn!(family = %key.family, "claim moved on before the bake could wait");
        }
        info!(family = %key.family, dedupe_key = %key.dedupe_key, "waiting for its parent's new image");
        Ok(Done::Waiting(outcome::Waiting {
            family: key.family,
            dedupe_key: key.dedupe_key,
        }))
    }

    /// Puts a claimed bake in the queue. The write is what makes it durable:
    /// until it lands, the live claim makes redeliveries retry (InFlight).
    async fn enqueue(&self, key: BakeKey, trigger: Trigger, now: i64) -> Result<Done, StartError> {
        let nothing = Change::default();
        let queue = Transition::require(lane_of(trigger), BakeState::Requested, Step::Queued)?;
        let queued = with_backoff(&self.launcher.backoff, seed(&key.family), || {
            self.launcher.ledger.advance(&key, queue, &nothing, now)
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
mod tests;
