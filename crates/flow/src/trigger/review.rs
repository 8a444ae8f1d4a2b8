//! Pull requests on the starting side: a new head supersedes the older
//! heads' candidates (their builds stopped, their images removed, their
//! statuses marked), then one candidate per affected family is started
//! like any bake (claim, slot or queue), and a test-only run for each
//! family whose consumers' tests alone changed. A closed pull request has
//! everything it made removed; a fork's is refused with a status saying why.
//!
//! The ports beyond the trigger's own (reviews, tests, parameters, images,
//! build control) come in [`ReviewPorts`]; a handler without them answers
//! pull-request events with a clear refusal ([`NoPullRequests`]).

use std::future::Future;

use gild_core::completion::{parameter_name, tags};
use gild_core::ledger::{lane_of, BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::{self, Action, Inputs, Triage, Trigger};
use gild_core::ports::{
    BuildControl, Builds, Images, Ledger, Parameters, PortError, Repository, Reviews, TestRequest,
    Tests,
};
use gild_core::pull_request::{PullRequest, PullRequestTriage};
use gild_core::review;
use gild_core::state::{BakeState, Stage, Step, Transition};
use gild_core::steps;
use gild_lambda::retry::{seed, with_backoff};
use tracing::{info, warn};

use super::outcome::{Done, Duplicate, Outcome, StartError, Started, Superseded, TriggerError};
use super::Handler;
use crate::removal::remove_image;

/// What a handler does with pull-request events.
pub trait PullRequestSide: Sized + Send + Sync {
    fn handle<R: Repository, L: Ledger, B: Builds>(
        handler: &Handler<R, L, B, Self>,
        detail_type: &str,
        triage: &PullRequestTriage,
        now: i64,
    ) -> impl Future<Output = Result<Outcome, TriggerError>> + Send;
}

/// A handler built without the pull-request ports (the bench, tests of the
/// push path): pull-request events are answered, never half-handled.
pub struct NoPullRequests;

impl PullRequestSide for NoPullRequests {
    async fn handle<R: Repository, L: Ledger, B: Builds>(
        _handler: &Handler<R, L, B, Self>,
        detail_type: &str,
        triage: &PullRequestTriage,
        _now: i64,
    ) -> Result<Outcome, TriggerError> {
        Ok(Outcome::new(
            detail_type.to_owned(),
            format!(
                "pull request {} ignored: this function is not set up to validate pull requests",
                triage.pull_request()
            ),
        ))
    }
}

/// The ports candidates need at start: where to report, the test project
/// (test-only runs), the family parameters (the promoted image they test
/// on), the images and the builds a superseded head leaves.
pub struct ReviewPorts<V, T, P, I, S> {
    pub reviews: V,
    pub tests: T,
    pub parameters: P,
    pub images: I,
    pub control: S,
    /// SSM prefix of the family parameters.
    pub parameter_prefix: String,
}

impl<V, T, P, I, S> PullRequestSide for ReviewPorts<V, T, P, I, S>
where
    V: Reviews,
    T: Tests,
    P: Parameters,
    I: Images,
    S: BuildControl,
{
    async fn handle<R: Repository, L: Ledger, B: Builds>(
        handler: &Handler<R, L, B, Self>,
        detail_type: &str,
        triage: &PullRequestTriage,
        now: i64,
    ) -> Result<Outcome, TriggerError> {
        let pr = triage.pull_request();
        let ports = &handler.pull_requests;
        match triage {
            PullRequestTriage::Refuse { reason, .. } => {
                let status = [review::refusal(reason)];
                handler
                    .retrying(&pr.head, || ports.reviews.set_statuses(pr, &status))
                    .await
                    .map_err(TriggerError::Review)?;
                info!(pull_request = %pr, reason, "refused");
                Ok(Outcome::new(
                    detail_type.to_owned(),
                    format!("pull request {pr} is not validated: {reason}"),
                ))
            }
            PullRequestTriage::Close(_) => {
                let reason = format!("pull request #{} was closed", pr.number);
                let superseded = handler.supersede(pr, None, &reason, now).await?;
                let removed = handler.remove_kept_images(pr).await?;
                let mut outcome = Outcome::new(
                    detail_type.to_owned(),
                    format!(
                        "pull request {pr} closed: {} open candidate(s) stopped, {removed} kept image(s) removed",
                        superseded.len()
                    ),
                );
                outcome.superseded = superseded;
                Ok(outcome)
            }
            PullRequestTriage::Validate(_) => handler.validate(detail_type, triage, now).await,
        }
    }
}

impl<R, L, B, V, T, P, I, S> Handler<R, L, B, ReviewPorts<V, T, P, I, S>>
where
    R: Repository,
    L: Ledger,
    B: Builds,
    V: Reviews,
    T: Tests,
    P: Parameters,
    I: Images,
    S: BuildControl,
{
    async fn validate(
        &self,
        detail_type: &str,
        triage: &PullRequestTriage,
        now: i64,
    ) -> Result<Outcome, TriggerError> {
        let pr = triage.pull_request();
        let ports = &self.pull_requests;
        let short = pr.short_head().to_owned();
        let superseded = self
            .supersede(pr, Some(&pr.head), &format!("superseded by {short}"), now)
            .await?;
        let changed = match self
            .retrying(&pr.head, || ports.reviews.changed_paths(pr))
            .await
        {
            Ok(changed) => changed,
            // More files than the host lists: which families the change
            // affects cannot be told, so nothing is guessed.
            Err(PortError::Service { code, message, .. }) if code == "TooManyFiles" => {
                let reason = format!(
                    "it changes too many files to tell which images it affects ({message})"
                );
                let status = [review::refusal(&reason)];
                self.retrying(&pr.head, || ports.reviews.set_statuses(pr, &status))
                    .await
                    .map_err(TriggerError::Review)?;
                let mut outcome = Outcome::new(
                    detail_type.to_owned(),
                    format!("pull request {pr} is not validated: {reason}"),
                );
                outcome.superseded = superseded;
                return Ok(outcome);
            }
            Err(error) => return Err(TriggerError::Review(error)),
        };
        let inputs = self.pull_request_inputs(pr, changed).await?;
        let plan = plan::plan_triaged(detail_type, &Triage::PullRequest(triage.clone()), &inputs)?;
        let mut outcome = Outcome::new(plan.event, plan.reason);
        outcome.superseded = superseded;
        let owner = gild_lambda::invocation_token();
        let owner = owner.as_str();
        let mut results = Vec::new();
        let mut bakes = Vec::new();
        for action in plan.actions {
            match action {
                Action::StartBake { .. } => bakes.push(action),
                Action::StartValidation { family, .. } => {
                    let done = self.start_validation(pr, &family, now, owner).await;
                    results.push((family, done));
                }
                // Superseding was done first; nothing else is planned here.
                _ => {}
            }
        }
        if !bakes.is_empty() {
            let active = self.launcher.active().await?;
            let slots = &super::Slots::new(gild_core::queue::free_slots(
                &active,
                self.launcher.max_parallel,
                now,
                None,
            ));
            let started = self
                .launcher
                .fan_out(bakes, |action| async move {
                    let family = action.family().to_owned();
                    (
                        family,
                        self.start_once(action, Some(pr), now, owner, slots).await,
                    )
                })
                .await;
            results.extend(started);
        }
        let outcome = outcome.settle(results)?;
        self.report_started(pr).await?;
        Ok(outcome)
    }

    /// The catalog at the head, the one at the destination when the change
    /// touches `gild.toml`, and the changed paths.
    async fn pull_request_inputs(
        &self,
        pr: &PullRequest,
        changed: Vec<String>,
    ) -> Result<Inputs, TriggerError> {
        let catalog = self.catalog_at(&pr.head).await?;
        let touches_catalog = changed
            .iter()
            .any(|p| p.trim_start_matches('/') == gild_core::catalog::CATALOG_FILE);
        let previous_catalog = if touches_catalog {
            let base = pr.merge_base.as_deref().unwrap_or(&pr.destination);
            self.previous_catalog(base).await?
        } else {
            None
        };
        Ok(Inputs {
            catalog,
            previous_catalog,
            changed,
            commit: Some(pr.head.clone()),
        })
    }

    /// A test-only run: the family's consumers' tests on its promoted image.
    async fn start_validation(
        &self,
        pr: &PullRequest,
        family: &str,
        now: i64,
        owner: &str,
    ) -> Result<Done, StartError> {
        let ports = &self.pull_requests;
        let key = BakeKey::new(family, pr.dedupe_key());
        let mut record = BakeRecord::requested(
            key.clone(),
            Trigger::PullRequest,
            Some(pr.head.clone()),
            now,
            self.launcher.lease_secs,
            owner,
        );
        record.pull_request = Some(pr.clone());
        let claim = with_backoff(&self.launcher.backoff, seed(family), || {
            self.launcher.ledger.claim(&record, now)
        })
        .await?;
        if let Claim::Taken(existing) = claim {
            return Ok(Done::Duplicate(Duplicate {
                family: key.family,
                dedupe_key: key.dedupe_key,
                state: existing.state,
                build_id: existing.test_build_id,
            }));
        }
        let lane = lane_of(Trigger::PullRequest);
        let parameter = parameter_name(&ports.parameter_prefix, family);
        let promoted = with_backoff(&self.launcher.backoff, seed(family), || {
            ports.parameters.current(&parameter)
        })
        .await?;
        let Some(image) = promoted else {
            let reason =
                format!("{parameter} names no promoted image of {family} to test its consumers on");
            let failed =
                Transition::require(lane, BakeState::Requested, Step::Failed(Stage::Test))?;
            let change = Change {
                failed_stage: Some(Stage::Test),
                reason: Some(reason.clone()),
                ..Change::default()
            };
            self.advance_candidate(&key, failed, &change, now).await?;
            warn!(family, %reason, "no validation");
            return Ok(Done::Left);
        };
        let request = TestRequest {
            key: key.clone(),
            image: image.clone(),
            commit: Some(pr.head.clone()),
        };
        let test_build = with_backoff(&self.launcher.backoff, seed(family), || {
            ports.tests.start_test(&request)
        })
        .await?;
        let started = Transition::require(lane, BakeState::Requested, Step::ValidationStarted)?;
        let change = Change {
            image: Some(image),
            test_build_id: Some(test_build.clone()),
            ..Change::default()
        };
        self.advance_candidate(&key, started, &change, now).await?;
        info!(family, test_build, pull_request = %pr, "consumers' tests started on the promoted image");
        Ok(Done::Started(Started {
            family: key.family,
            dedupe_key: key.dedupe_key,
            build_id: test_build,
        }))
    }

    async fn advance_candidate(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> Result<(), StartError> {
        let moved = with_backoff(&self.launcher.backoff, seed(&key.family), || {
            self.launcher.ledger.advance(key, transition, change, now)
        })
        .await?;
        if !moved {
            warn!(family = %key.family, %transition, "the candidate moved on before this step was recorded");
        }
        Ok(())
    }

    /// Ends every open candidate of the pull request except `keep`'s
    /// (every one when `keep` is `None`): stops its builds, removes its
    /// images, marks it superseded and says so on its head.
    pub(super) async fn supersede(
        &self,
        pr: &PullRequest,
        keep: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<Superseded>, TriggerError> {
        let ports = &self.pull_requests;
        let id = pr.id();
        let records = with_backoff(&self.launcher.backoff, seed(&id), || {
            self.launcher.ledger.pull_request(&id)
        })
        .await
        .map_err(TriggerError::Ledger)?;
        let owner = gild_lambda::invocation_token();
        let mut ended = Vec::new();
        for record in records {
            let head = gild_core::pull_request::split_dedupe_key(&record.key.dedupe_key)
                .map(|(_, head)| head.to_owned());
            if record.state.is_terminal() || (keep.is_some() && head.as_deref() == keep) {
                continue;
            }
            let key = &record.key;
            let locked = with_backoff(&self.launcher.backoff, seed(&key.family), || {
                self.launcher
                    .ledger
                    .lock(key, record.state, now, self.launcher.lease_secs, &owner)
            })
            .await
            .map_err(TriggerError::Ledger)?;
            if !locked {
                // Its step is running: the event fails and is delivered
                // again, when the step is done.
                return Err(TriggerError::Superseding {
                    family: key.family.clone(),
                    dedupe_key: key.dedupe_key.clone(),
                });
            }
            let running = match record.state {
                BakeState::Baking => record.build_id.clone(),
                BakeState::Testing | BakeState::Validating => record.test_build_id.clone(),
                _ => None,
            };
            if let Some(build) = running {
                self.retrying(&key.family, || ports.control.stop(&build))
                    .await
                    .map_err(TriggerError::Review)?;
            }
            if let (true, Some(build)) = (steps::owns_images(&record), record.build_id.as_deref()) {
                let build = gild_core::vocabulary::BuildId::new(build);
                let found = self
                    .retrying(&key.family, || {
                        ports.images.find_by_tag(tags::BUILD_ID, build.as_str())
                    })
                    .await
                    .map_err(TriggerError::Review)?;
                for image in found
                    .iter()
                    .map(|i| i.id.clone())
                    .chain(record.image.clone())
                {
                    remove_image(
                        &ports.images,
                        &self.launcher.backoff,
                        key,
                        &image,
                        build.as_str(),
                    )
                    .await
                    .map_err(|(_, e)| TriggerError::Review(e))?;
                }
            }
            let transition = Transition::require(record.lane(), record.state, Step::Superseded)
                .map_err(|e| TriggerError::StartFailed {
                    failures: vec![super::StartFailure {
                        family: key.family.clone(),
                        error: e.into(),
                    }],
                    started: 0,
                })?;
            let change = Change {
                reason: Some(reason.to_owned()),
                ..Change::default()
            };
            with_backoff(&self.launcher.backoff, seed(&key.family), || {
                self.launcher.ledger.advance(key, transition, &change, now)
            })
            .await
            .map_err(TriggerError::Ledger)?;
            let mut after = record.clone();
            after.state = BakeState::Superseded;
            after.reason = Some(reason.to_owned());
            if let Some(old) = record.pull_request.as_ref() {
                let status = [review::status(&after, None)];
                if let Err(error) = self
                    .retrying(&key.family, || ports.reviews.set_statuses(old, &status))
                    .await
                {
                    warn!(family = %key.family, %error, "could not mark the older head's status superseded");
                }
            }
            info!(family = %key.family, dedupe_key = %key.dedupe_key, reason, "candidate superseded");
            ended.push(Superseded {
                family: key.family.clone(),
                dedupe_key: key.dedupe_key.clone(),
            });
        }
        Ok(ended)
    }

    /// Images kept for people to launch (`candidate_ttl_hours`), when the
    /// pull request closes; only gild's, only this pull request's.
    async fn remove_kept_images(&self, pr: &PullRequest) -> Result<usize, TriggerError> {
        let ports = &self.pull_requests;
        let tag = pr.candidate_tag();
        let found = self
            .retrying(&tag, || ports.images.find_by_tag(tags::CANDIDATE, &tag))
            .await
            .map_err(TriggerError::Review)?;
        let mut removed = 0;
        for image in found {
            let Some(build) = image.tags.get(tags::BUILD_ID).cloned() else {
                continue;
            };
            let key = BakeKey::new(
                image.tags.get(tags::FAMILY).cloned().unwrap_or_default(),
                pr.dedupe_key(),
            );
            remove_image(
                &ports.images,
                &self.launcher.backoff,
                &key,
                &image.id,
                &build,
            )
            .await
            .map_err(|(_, e)| TriggerError::Review(e))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Statuses and the comment for the head's candidates as started.
    async fn report_started(&self, pr: &PullRequest) -> Result<(), TriggerError> {
        let ports = &self.pull_requests;
        let id = pr.id();
        let key = pr.dedupe_key();
        let records: Vec<BakeRecord> = with_backoff(&self.launcher.backoff, seed(&id), || {
            self.launcher.ledger.pull_request(&id)
        })
        .await
        .map_err(TriggerError::Ledger)?
        .into_iter()
        .filter(|r| r.key.dedupe_key == key)
        .collect();
        let statuses: Vec<review::Status> =
            records.iter().map(|r| review::status(r, None)).collect();
        let comment = review::comment(pr, &records, &|_| None);
        let posted: Result<(), PortError> = async {
            if !statuses.is_empty() {
                self.retrying(&pr.head, || ports.reviews.set_statuses(pr, &statuses))
                    .await?;
            }
            self.retrying(&pr.head, || ports.reviews.upsert_comment(pr, &comment))
                .await
        }
        .await;
        posted.map_err(TriggerError::Review)
    }
}
