//! The work of each step of a bake after its build: what
//! `gild_core::completion::Work` names, done through the ports.

use gild_core::announce::Outcome;
use gild_core::completion::{
    parameter_name, provenance_tags, state_tag, tags, Finished, Provenance, Work, ENV_AMI_ID,
};
use gild_core::ledger::{BakeKey, BakeRecord, Change};
use gild_core::ports::{
    Artifacts, BuildInfo, Images, Ledger, Notifier, Parameters, PortError, Reviews, TestRequest,
    Tests,
};
use gild_core::state::{BakeState, Lane, Stage, Step};
use gild_core::steps;
use gild_core::vocabulary::BuildId;
use tracing::info;

use crate::candidate::advanced;
use crate::removal::remove_image;
use crate::{port, Completions, FlowError};

/// Everything a step needs to know about the completion and the bake.
pub(crate) struct Context<'a> {
    pub finished: &'a Finished,
    pub record: &'a BakeRecord,
    pub region: &'a str,
    pub now: i64,
    pub at: String,
}

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
    /// Does one piece of work; returns the step it amounts to and what to
    /// record. The driver turns the step into the table's transition.
    pub(crate) async fn perform(
        &self,
        work: Work,
        cx: &Context<'_>,
    ) -> Result<(Step, Change), FlowError> {
        let key = &cx.record.key;
        let retry = |what: &'static str| move |error| port(what, key, error);
        match work {
            Work::TagBaked => self.tag_baked(cx).await,
            Work::StartTest => {
                let image = cx.record.image.clone().unwrap_or_default();
                let request = TestRequest {
                    key: key.clone(),
                    image: image.clone(),
                    commit: cx.record.commit.clone(),
                };
                let test_build = match self
                    .retrying(key, || self.ports.tests.start_test(&request))
                    .await
                {
                    Ok(build) => build,
                    // Refused for good (the project is gone, the role may not
                    // start it, the request is invalid): no retry will test
                    // this image, so the bake fails at test now, the image is
                    // removed and announced, and its build slot is freed,
                    // instead of waiting in `baked` until the event dies in
                    // the dead-letter queue (`Baked --Failed(Test)--> Failed`).
                    Err(error) if refused_for_good(&error) => {
                        let reason = format!("the test build could not be started: {error}");
                        return self.fail(cx, Stage::Test, reason).await;
                    }
                    Err(error) => return Err(retry("start test build")(error)),
                };
                self.tag_state(cx, &image, BakeState::Testing).await?;
                let change = Change {
                    test_build_id: Some(test_build),
                    ..Change::default()
                };
                if cx.record.lane() == Lane::Candidate {
                    let after = advanced(cx.record, BakeState::Testing, &change);
                    self.report(cx, &after).await?;
                }
                Ok((Step::TestStarted, change))
            }
            Work::Validate => {
                let image = cx.record.image.clone().unwrap_or_default();
                // The promoted image a test-only run tested is production's:
                // its tags are not the candidate's to change.
                if steps::owns_images(cx.record) {
                    self.tag_state(cx, &image, BakeState::Validated).await?;
                }
                Ok((
                    Step::TestPassed,
                    Change {
                        suites: cx.finished.suites.clone(),
                        ..Change::default()
                    },
                ))
            }
            Work::Report => self.report_passed(cx).await,
            Work::Promote => {
                let image = cx.record.image.clone().unwrap_or_default();
                let parameter = parameter_name(&self.settings.parameter_prefix, &key.family);
                // An image deregistered since its test (by hand, by another
                // tool) must not be published: consumers would launch from
                // nothing. That is final for this bake, so it fails at
                // promote (`Validated --Failed(Promote)--> Failed`) and the
                // parameter keeps the previous image. Any error of SSM's own,
                // even access denied, is retried: the image is good, and a
                // fixed policy or the reconciler publishes it later.
                let exists = self
                    .retrying(key, || self.ports.images.describe(&image))
                    .await
                    .map_err(retry("describe image"))?
                    .is_some_and(|found| found.state != "deregistered");
                if !exists {
                    let reason = format!("image {image} no longer exists; {parameter} still names the previous image");
                    return self.fail(cx, Stage::Promote, reason).await;
                }
                // Never roll the family back: a bake validated after a newer
                // one was promoted (a lost event finished late) ends
                // superseded, its image kept, the parameter untouched.
                let current = self
                    .retrying(key, || self.ports.parameters.current(&parameter))
                    .await
                    .map_err(retry("read the parameter"))?;
                if let Some(current) = current.filter(|c| c != &image) {
                    let promoted = self
                        .retrying(key, || self.ports.images.describe(&current))
                        .await
                        .map_err(retry("describe the promoted image"))?;
                    if promoted.is_some_and(|p| steps::newer_promoted(&p, cx.record)) {
                        self.tag_state(cx, &image, BakeState::Superseded).await?;
                        // Children waiting for this bake bake from the
                        // newer image instead.
                        self.release_children(cx, &current).await?;
                        info!(family = %key.family, image, current, "a newer image is promoted already; not rolling back");
                        return Ok((
                            Step::Superseded,
                            Change {
                                reason: Some(format!(
                                    "{parameter} names {current}, from a newer bake: {image} is not promoted over it"
                                )),
                                ..Change::default()
                            },
                        ));
                    }
                }
                let version = self
                    .retrying(key, || self.ports.parameters.promote(&parameter, &image))
                    .await
                    .map_err(retry("promote"))?;
                self.tag_state(cx, &image, BakeState::Promoted).await?;
                let children = self.release_children(cx, &image).await?;
                self.announce(
                    cx,
                    Outcome::Promoted {
                        parameter: parameter.clone(),
                        version,
                    },
                    children,
                )
                .await?;
                Ok((Step::Promoted, Change::default()))
            }
            Work::Cleanup(stage) => {
                let reason = steps::failure_reason(stage, cx.finished);
                self.fail(cx, stage, reason).await
            }
        }
    }

    async fn tag_baked(&self, cx: &Context<'_>) -> Result<(Step, Change), FlowError> {
        let key = &cx.record.key;
        let build = BuildId::short(&cx.finished.build_id);
        let image_id = match &cx.finished.image {
            Some(image) => Some(image.clone()),
            // The event lacks exported variables: ask CodeBuild.
            None => self
                .retrying(key, || self.ports.build_info.exported_variables(build))
                .await
                .map_err(|error| port("read exported variables", key, error))?
                .get(ENV_AMI_ID)
                .filter(|v| !v.is_empty())
                .cloned(),
        };
        let Some(image_id) = image_id else {
            return self
                .fail(
                    cx,
                    Stage::Bake,
                    format!("bake build {build} succeeded but exported no {ENV_AMI_ID}"),
                )
                .await;
        };
        let image = self
            .retrying(key, || self.ports.images.describe(&image_id))
            .await
            .map_err(|error| port("describe image", key, error))?;
        let Some(image) = image else {
            return self
                .fail(
                    cx,
                    Stage::Bake,
                    format!("image {image_id} exported by build {build} does not exist"),
                )
                .await;
        };
        if !steps::made_by(&image, build) {
            // Never tag, test or delete an image this build did not make.
            return self
                .fail(cx, Stage::Bake, format!("image {image_id} is not tagged {}=true and {}={build}: not this bake's image, left untouched", tags::MANAGED, tags::BUILD_ID))
                .await;
        }
        let trigger = cx.record.trigger.as_str();
        let base_image = cx
            .finished
            .base_image
            .clone()
            .or_else(|| image.tags.get(tags::BASE_AMI).cloned());
        let candidate_tag = cx.record.pull_request.as_ref().map(|pr| pr.candidate_tag());
        // A child baked from what its promotion released, or (baked alone)
        // from what bake.yml read as the parent's promoted image.
        let parent_image = cx
            .record
            .parent_image
            .clone()
            .or_else(|| base_image.clone());
        let parent = cx.record.parent.as_deref().zip(parent_image.as_deref());
        let provenance = provenance_tags(&Provenance {
            family: &key.family,
            trigger,
            commit: cx
                .record
                .commit
                .as_deref()
                .or(cx.finished.commit.as_deref()),
            build_id: build,
            build_log: cx.finished.log_link.as_deref(),
            base_image: base_image.as_deref(),
            created_at: &cx.at,
            requested_at: &cx.record.requested_at.to_string(),
            candidate: candidate_tag.as_deref(),
            parent,
        });
        let mut resources = vec![image.id.clone()];
        resources.extend(image.snapshots.iter().cloned());
        self.retrying(key, || self.ports.images.tag(&resources, &provenance))
            .await
            .map_err(|error| port("tag image", key, error))?;
        let packages = self.compare_packages(cx, &image.id).await?;
        Ok((
            Step::BakeSucceeded,
            Change {
                image: Some(image.id),
                parent_image: parent.map(|(_, image)| image.to_owned()),
                packages: Some(packages),
                ..Change::default()
            },
        ))
    }

    async fn tag_state(
        &self,
        cx: &Context<'_>,
        image: &str,
        state: BakeState,
    ) -> Result<(), FlowError> {
        let key = &cx.record.key;
        let resources = [image.to_owned()];
        let tag = state_tag(state);
        self.retrying(key, || self.ports.images.tag(&resources, &tag))
            .await
            .map_err(|error| port("tag image state", key, error))
    }

    /// Removes what the failed stage left, announces it, and leads to `failed`.
    async fn fail(
        &self,
        cx: &Context<'_>,
        stage: Stage,
        reason: String,
    ) -> Result<(Step, Change), FlowError> {
        let key = &cx.record.key;
        let build = steps::bake_build(cx.record, cx.finished);
        let change = Change {
            failed_stage: Some(stage),
            reason: Some(reason.clone()),
            suites: cx.finished.suites.clone(),
            ..Change::default()
        };
        if !steps::owns_images(cx.record) {
            // A test-only run: nothing of its own to remove.
            let after = advanced(cx.record, BakeState::Failed, &change);
            self.report(cx, &after).await?;
            return Ok((Step::Failed(stage), change));
        }
        let leftovers = if steps::looks_for_leftovers(stage) {
            self.retrying(key, || {
                self.ports.images.find_by_tag(tags::BUILD_ID, &build)
            })
            .await
            .map_err(|error| port("find images of the build", key, error))?
        } else {
            Vec::new()
        };
        let candidates = steps::cleanup_candidates(cx.record, cx.finished, &leftovers);
        for image_id in candidates {
            self.remove(key, &image_id, &build).await?;
        }
        self.remove_orphan_snapshots(key, &build).await?;
        match cx.record.lane() {
            Lane::Production => {
                self.announce(
                    cx,
                    Outcome::Failed {
                        stage,
                        reason: reason.clone(),
                    },
                    Vec::new(),
                )
                .await?;
                self.fail_waiting_children(cx, stage, &reason).await?;
            }
            // A candidate's failure belongs to its pull request, never to
            // the production topic.
            Lane::Candidate => {
                let after = advanced(cx.record, BakeState::Failed, &change);
                self.report(cx, &after).await?;
            }
        }
        Ok((Step::Failed(stage), change))
    }

    /// Deregisters a gild image of this build and deletes its snapshots;
    /// anything else is left alone.
    pub(crate) async fn remove(
        &self,
        key: &BakeKey,
        image_id: &str,
        build: &str,
    ) -> Result<(), FlowError> {
        remove_image(&self.ports.images, &self.backoff, key, image_id, build)
            .await
            .map_err(|(what, error)| port(what, key, error))
    }

    /// Deletes the snapshots of `build` an earlier try of this step left: it
    /// deregistered their image and died before deleting them, so only
    /// their tag finds them now (`steps::orphan_snapshots` says which).
    async fn remove_orphan_snapshots(&self, key: &BakeKey, build: &str) -> Result<(), FlowError> {
        let images = self
            .retrying(key, || self.ports.images.find_by_tag(tags::BUILD_ID, build))
            .await
            .map_err(|error| port("find images of the build", key, error))?;
        let snapshots = if images.is_empty() {
            self.retrying(key, || {
                self.ports.images.snapshots_by_tag(tags::BUILD_ID, build)
            })
            .await
            .map_err(|error| port("find snapshots of the build", key, error))?
        } else {
            Vec::new()
        };
        for snapshot in steps::orphan_snapshots(&images, &snapshots) {
            self.retrying(key, || self.ports.images.delete_snapshot(&snapshot))
                .await
                .map_err(|error| port("delete snapshot", key, error))?;
            info!(snapshot, build, "removed a snapshot its image left behind");
        }
        Ok(())
    }

    async fn announce(
        &self,
        cx: &Context<'_>,
        outcome: Outcome,
        children: Vec<String>,
    ) -> Result<(), FlowError> {
        let key = &cx.record.key;
        let mut announcement = steps::announcement(
            cx.record,
            cx.finished,
            outcome,
            &self.settings.parameter_prefix,
            cx.region,
            &cx.at,
        );
        announcement.children = children;
        if let Some(packages) = announcement.packages.as_mut() {
            self.attach_diff(cx, packages).await;
        }
        let publication = announcement.publication();
        self.retrying(key, || self.ports.notifier.publish(&publication))
            .await
            .map_err(|error| port("announce", key, error))?;
        info!(family = %key.family, subject = %publication.subject, now = cx.now, "announced");
        Ok(())
    }
}

/// A refusal no retry changes: a 4xx from the service or a missing
/// resource. Not an answer that may hide a started build (an unreadable
/// response, a timeout): those are retried with the same idempotency token.
fn refused_for_good(error: &PortError) -> bool {
    matches!(
        error,
        PortError::NotFound { .. }
            | PortError::Service {
                server_side: false,
                ..
            }
    )
}
