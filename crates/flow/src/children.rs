//! A layered family's children, moved by their parent's completion: a
//! promotion queues each child to bake from the new image; a failure ends
//! the children waiting for it. Both run inside the parent's locked step,
//! before its state moves, so a retried step does them again and finds
//! them done (every write is a claim or a conditional advance).
//!
//! Queued children start as CodeBuild slots free: when a build-ended event
//! reaches the trigger, and on the reconciler's every run.

use gild_core::announce::{Announcement, Outcome};
use gild_core::completion::parameter_name;
use gild_core::layers;
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::ports::{
    Artifacts, BuildInfo, Images, Ledger, Notifier, Parameters, Reviews, Tests,
};
use gild_core::state::{BakeState, Stage, Step, Transition};
use gild_core::vocabulary::Trigger;
use tracing::{info, warn};

use crate::steps::Context;
use crate::{port, Completions, FlowError};

impl<L, I, B, T, P, N, V, A> Completions<L, I, B, T, P, N, V, A>
where
    L: Ledger,
    I: Images,
    B: BuildInfo,
    T: Tests,
    P: Parameters,
    N: Notifier,
    V: Reviews,
    A: Artifacts,
{
    /// Queues each child of the promoted bake to bake from `image`: the one
    /// waiting in the same run, or a new bake `parent:<image>`. Returns the
    /// children queued (or found queued by an earlier try).
    pub(crate) async fn release_children(
        &self,
        cx: &Context<'_>,
        image: &str,
    ) -> Result<Vec<String>, FlowError> {
        let parent = cx.record;
        let mut released = Vec::new();
        for child in layers::direct_children(&parent.children) {
            let waiting = BakeKey::new(child, parent.key.dedupe_key.clone());
            let same_run = self.read(&waiting, "read a child's bake").await?;
            let change = Change {
                parent_image: Some(image.to_owned()),
                ..Change::default()
            };
            match same_run.filter(|r| r.parent.as_deref() == Some(&parent.key.family)) {
                Some(record) => {
                    if record.state == BakeState::Waiting {
                        self.queue_child(&waiting, BakeState::Waiting, &change, cx.now)
                            .await?;
                    }
                }
                None => {
                    let key = BakeKey::new(child, layers::parent_dedupe_key(image));
                    let mut record = BakeRecord::requested(
                        key.clone(),
                        Trigger::Parent,
                        parent.commit.clone(),
                        cx.now,
                        self.settings.lease_secs,
                        &gild_lambda::invocation_token(),
                    );
                    record.parent = Some(parent.key.family.clone());
                    record.parent_image = Some(image.to_owned());
                    record.children = layers::subtree(&parent.children, child);
                    let claim = self
                        .retrying(&key, || self.ports.ledger.claim(&record, cx.now))
                        .await
                        .map_err(|error| port("claim a child's bake", &key, error))?;
                    match claim {
                        Claim::Claimed => {
                            self.queue_child(&key, BakeState::Requested, &change, cx.now)
                                .await?
                        }
                        // An earlier try of this step claimed it and died
                        // before queueing it: only this step makes such a
                        // claim, under the parent's lock, so it finishes it.
                        Claim::Taken(found)
                            if found.state == BakeState::Requested && found.build_id.is_none() =>
                        {
                            self.queue_child(&key, BakeState::Requested, &change, cx.now)
                                .await?
                        }
                        Claim::Taken(_) => {}
                    }
                }
            }
            info!(parent = %parent.key.family, child, image, "child queued to bake from its parent's new image");
            released.push(child.to_owned());
        }
        Ok(released)
    }

    pub(crate) async fn queue_child(
        &self,
        key: &BakeKey,
        from: BakeState,
        change: &Change,
        now: i64,
    ) -> Result<(), FlowError> {
        let queue = Transition::require(gild_core::state::Lane::Production, from, Step::Queued)?;
        let queued = self
            .retrying(key, || self.ports.ledger.advance(key, queue, change, now))
            .await
            .map_err(|error| port("queue a child's bake", key, error))?;
        if !queued {
            warn!(family = %key.family, dedupe_key = %key.dedupe_key, "the child's bake moved on before it was queued");
        }
        Ok(())
    }

    /// Ends the children waiting for this failed bake, and theirs: each
    /// `failed` at stage `parent`, announced once (the announcement comes
    /// before the conditional advance, as for every failure, under the
    /// child's own lock).
    pub(crate) async fn fail_waiting_children(
        &self,
        cx: &Context<'_>,
        stage: Stage,
        reason: &str,
    ) -> Result<(), FlowError> {
        let mut parents = vec![(
            cx.record.clone(),
            format!("{} failed at {stage}: {reason}", cx.record.key.family),
        )];
        while let Some((parent, why)) = parents.pop() {
            for child in layers::direct_children(&parent.children) {
                let key = BakeKey::new(child, parent.key.dedupe_key.clone());
                let Some(record) = self.read(&key, "read a child's bake").await? else {
                    continue;
                };
                if record.state != BakeState::Waiting
                    || record.parent.as_deref() != Some(&parent.key.family)
                {
                    continue;
                }
                let child_reason = format!("parent {why}; {child}'s promoted image stays");
                // `false`: another try of this step holds it, and ends it.
                if self
                    .fail_waiting(&record, &child_reason, cx.region, &cx.at, cx.now)
                    .await?
                {
                    info!(family = child, parent = %parent.key.family, "waiting child failed with its parent");
                    parents.push((record, format!("{child} failed because its parent did")));
                }
            }
        }
        Ok(())
    }

    /// Ends one waiting bake at stage `parent` under its own lock,
    /// announcing it first; `false` when another invocation holds it.
    pub(crate) async fn fail_waiting(
        &self,
        record: &BakeRecord,
        reason: &str,
        region: &str,
        at: &str,
        now: i64,
    ) -> Result<bool, FlowError> {
        let key = &record.key;
        let owner = gild_lambda::invocation_token();
        let locked = self
            .retrying(key, || {
                self.ports.ledger.lock(
                    key,
                    BakeState::Waiting,
                    now,
                    self.settings.lease_secs,
                    &owner,
                )
            })
            .await
            .map_err(|error| port("lock a child's bake", key, error))?;
        if !locked {
            return Ok(false);
        }
        self.announce_record(record, region, at, reason).await?;
        let fail = Transition::require(
            record.lane(),
            BakeState::Waiting,
            Step::Failed(Stage::Parent),
        )?;
        let change = Change {
            failed_stage: Some(Stage::Parent),
            reason: Some(reason.to_owned()),
            ..Change::default()
        };
        self.retrying(key, || self.ports.ledger.advance(key, fail, &change, now))
            .await
            .map_err(|error| port("fail a child's bake", key, error))?;
        Ok(true)
    }

    async fn announce_record(
        &self,
        record: &BakeRecord,
        region: &str,
        at: &str,
        reason: &str,
    ) -> Result<(), FlowError> {
        let announcement = Announcement {
            family: record.key.family.clone(),
            image: None,
            region: region.to_owned(),
            trigger: record.trigger,
            dedupe_key: record.key.dedupe_key.clone(),
            commit: record.commit.clone(),
            outcome: Outcome::Failed {
                stage: Stage::Parent,
                reason: reason.to_owned(),
            },
            tested: None,
            parameter: parameter_name(&self.settings.parameter_prefix, &record.key.family),
            bake_log: None,
            test_log: None,
            test_report: None,
            at: at.to_owned(),
            children: Vec::new(),
            // Nothing was baked.
            packages: None,
        };
        let publication = announcement.publication();
        self.retrying(&record.key, || self.ports.notifier.publish(&publication))
            .await
            .map(|_| ())
            .map_err(|error| port("announce", &record.key, error))
    }
}
