//! The completion steps of a pull request's candidate that differ from a
//! production bake's: it reports to its pull request where a production
//! bake promotes and announces, and it never touches a parameter or the
//! production topic (the state table has no row that would let it).

use gild_core::completion::{build_console_link, tags};
use gild_core::ledger::{BakeRecord, Change};
use gild_core::ports::{
    Artifacts, BuildInfo, Images, Ledger, Notifier, Parameters, PortError, Reviews, Tests,
};
use gild_core::reconcile::timestamp;
use gild_core::review;
use gild_core::state::{BakeState, Step};
use gild_core::steps;
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
    /// A candidate passed its tests: its image is removed (or kept for
    /// `candidate_ttl_hours`, tagged with when it goes), and the result is
    /// reported. `Validated --Reported--> Reported`.
    pub(crate) async fn report_passed(
        &self,
        cx: &Context<'_>,
    ) -> Result<(Step, Change), FlowError> {
        let key = &cx.record.key;
        if let (true, Some(image)) = (steps::owns_images(cx.record), cx.record.image.as_deref()) {
            let build = steps::bake_build(cx.record, cx.finished);
            if self.settings.candidate_ttl_hours > 0 {
                let until = timestamp(cx.now + self.settings.candidate_ttl_hours * 3600);
                let tag = vec![
                    (
                        tags::STATE.to_owned(),
                        BakeState::Reported.as_str().to_owned(),
                    ),
                    (tags::EXPIRES_AT.to_owned(), until),
                ];
                let resources = [image.to_owned()];
                self.retrying(key, || self.ports.images.tag(&resources, &tag))
                    .await
                    .map_err(|error| port("tag candidate", key, error))?;
            } else {
                self.remove(key, image, &build).await?;
            }
        }
        let after = advanced(cx.record, BakeState::Reported, &Change::default());
        self.report(cx, &after).await?;
        Ok((Step::Reported, Change::default()))
    }

    /// Posts `after` (the candidate as the step leaves it) to its pull
    /// request: this family's status, the comment rebuilt from every
    /// candidate of the head, and on CodeCommit the approval once every
    /// candidate is done. Reviewers' hosts are not gild's: a refusal that
    /// no retry changes (the pull request is gone, the token may not
    /// comment) is logged and the bake goes on, the ledger keeping the
    /// result; the pull request having moved on is what superseding
    /// handles. Throttling and outages are retried like any step.
    pub(crate) async fn report(
        &self,
        cx: &Context<'_>,
        after: &BakeRecord,
    ) -> Result<(), FlowError> {
        let key = &cx.record.key;
        let Some(pr) = after.pull_request.as_ref() else {
            warn!(family = %key.family, dedupe_key = %key.dedupe_key, "candidate without its pull request: nothing to report to");
            return Ok(());
        };
        let id = pr.id();
        let mut records: Vec<BakeRecord> = self
            .retrying(key, || self.ports.ledger.pull_request(&id))
            .await
            .map_err(|error| port("read the pull request's candidates", key, error))?
            .into_iter()
            .filter(|r| r.key.dedupe_key == key.dedupe_key && &r.key != key)
            .collect();
        records.push(after.clone());
        let region = cx.region;
        let link = |record: &BakeRecord| {
            record
                .test_build_id
                .as_deref()
                .map(|build| build_console_link(region, build, true))
                .or_else(|| {
                    record
                        .build_id
                        .as_deref()
                        .map(|build| build_console_link(region, build, false))
                })
        };
        let status = review::status(after, link(after));
        let comment = review::comment(pr, &records, &link);
        let statuses = [status];
        let posted = async {
            self.retrying(key, || self.ports.reviews.set_statuses(pr, &statuses))
                .await?;
            self.retrying(key, || self.ports.reviews.upsert_comment(pr, &comment))
                .await?;
            // A host without approvals (GitHub: required statuses do that)
            // ignores it.
            if let Some(approve) = review::approval(&records) {
                self.retrying(key, || self.ports.reviews.approve(pr, approve))
                    .await?;
            }
            Ok::<(), PortError>(())
        };
        match posted.await {
            Ok(()) => {
                info!(family = %key.family, pull_request = %pr, state = %after.state, "reported");
                Ok(())
            }
            Err(error) if error.is_transient() => {
                Err(port("report to the pull request", key, error))
            }
            // The pull request moved on (CodeCommit's revision is no longer
            // current): the newer head's candidates report there.
            Err(PortError::Service { code, .. }) if code == "RevisionNotCurrentException" => {
                info!(family = %key.family, pull_request = %pr, "the pull request moved on; a newer head reports");
                Ok(())
            }
            Err(error) => {
                warn!(family = %key.family, pull_request = %pr, %error, "the pull request refused the report; the ledger keeps the result");
                Ok(())
            }
        }
    }

    /// Removes what a superseded candidate's bake made after all.
    pub(crate) async fn remove_late_images(
        &self,
        record: &BakeRecord,
        finished: &gild_core::completion::Finished,
    ) -> Result<(), FlowError> {
        if !steps::owns_images(record) {
            return Ok(());
        }
        let key = &record.key;
        let build = steps::bake_build(record, finished);
        let found = self
            .retrying(key, || {
                self.ports.images.find_by_tag(tags::BUILD_ID, &build)
            })
            .await
            .map_err(|error| port("find images of the build", key, error))?;
        let leftovers = steps::cleanup_candidates(record, finished, &found);
        for image in leftovers {
            self.remove(key, &image, &build).await?;
        }
        Ok(())
    }
}

/// The record as the step about to be taken leaves it, for the report
/// that is written before the ledger's advance.
pub(crate) fn advanced(record: &BakeRecord, to: BakeState, change: &Change) -> BakeRecord {
    let mut after = record.clone();
    after.state = to;
    after.apply(change);
    after
}
