//! The completion driver shared by `bake-finished` and `test-finished`:
//! turns a CodeBuild completion into the work gild-core says the bake's
//! state calls for, one locked step at a time.
//!
//! Each step runs under the ledger's lock on the bake's current state and
//! ends by advancing that state, so a duplicate delivery finds either the
//! lock (and fails, to be retried) or a state that calls for nothing. A step
//! that fails releases the lock; Lambda's retry resumes at the same step.

pub mod lambda;
pub mod trigger;

use gild_core::announce::{Announcement, Outcome};
use gild_core::completion::{
    self, build_console_link, parameter_name, provenance_tags, state_tag, tags, Finished, Projects,
    Provenance, Work, ENV_AMI_ID,
};
use gild_core::event::{self, EventError, EventKind};
use gild_core::ledger::{BakeKey, BakeRecord, Change};
use gild_core::ports::{
    BuildInfo, ImageInfo, Images, Ledger, Notifier, Parameters, PortError, TestRequest, Tests,
};
use gild_core::retry::Backoff;
use gild_core::state::{BakeState, Stage};
use gild_lambda::retry::{seed, with_backoff};
use gild_lambda::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Which completions a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Bake,
    Test,
}

#[derive(Debug, Clone)]
pub struct FlowSettings {
    pub accept: Accept,
    pub projects: Projects,
    /// SSM prefix of the family parameters, `/gild` by default.
    pub parameter_prefix: String,
    pub lease_secs: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    BadEvent(#[from] EventError),
    /// Another invocation is working on this bake right now.
    #[error("bake {family} {dedupe_key} is being handled by another invocation; retry later")]
    Busy { family: String, dedupe_key: String },
    #[error("{work} for {family}: {error}")]
    Port {
        work: &'static str,
        family: String,
        error: Box<PortError>,
    },
}

impl FlowError {
    /// Stable names for Lambda's `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            FlowError::BadEvent(_) => "BadEvent",
            FlowError::Busy { .. } => "Busy",
            FlowError::Port { .. } => "StepFailed",
        }
    }
}

impl From<FlowError> for Diagnostic {
    fn from(err: FlowError) -> Self {
        gild_lambda::diagnostic(err.name(), &err)
    }
}

/// What one invocation did; the function's response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// States the bake reached, in order.
    pub reached: Vec<BakeState>,
    /// Why nothing (more) was done, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noop: Option<String>,
}

pub struct Ports<L, I, B, T, P, N> {
    pub ledger: L,
    pub images: I,
    pub build_info: B,
    pub tests: T,
    pub parameters: P,
    pub notifier: N,
}

pub struct Completions<L, I, B, T, P, N> {
    ports: Ports<L, I, B, T, P, N>,
    settings: FlowSettings,
    backoff: Backoff,
}

/// Everything a step needs to know about the event and the bake.
struct Context<'a> {
    finished: &'a Finished,
    record: &'a BakeRecord,
    region: &'a str,
    now: i64,
    at: String,
}

/// `project:uuid` from either that or the build's ARN.
fn build_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl<L, I, B, T, P, N> Completions<L, I, B, T, P, N>
where
    L: Ledger,
    I: Images,
    B: BuildInfo,
    T: Tests,
    P: Parameters,
    N: Notifier,
{
    pub fn new(ports: Ports<L, I, B, T, P, N>, settings: FlowSettings) -> Self {
        Completions {
            ports,
            settings,
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn ports(&self) -> &Ports<L, I, B, T, P, N> {
        &self.ports
    }

    pub fn into_ports(self) -> Ports<L, I, B, T, P, N> {
        self.ports
    }

    pub async fn handle(&self, event: Value, now: i64) -> Result<Report, FlowError> {
        let event = event::parse(event)?;
        let mut report = Report {
            event: event.envelope.detail_type.clone(),
            family: None,
            build_id: None,
            reached: Vec::new(),
            noop: None,
        };
        let noop = |mut report: Report, reason: String| {
            info!(reason = %reason, "nothing to do");
            report.noop = Some(reason);
            Ok(report)
        };
        let EventKind::BuildStateChange(change) = &event.kind else {
            return noop(report, "not a CodeBuild build state change".into());
        };
        report.build_id = Some(change.build_id.clone());
        let finished = match completion::classify(change, &self.settings.projects) {
            Ok(finished) => finished,
            Err(reason) => return noop(report, reason),
        };
        report.family = finished.family.clone();
        let wanted = match self.settings.accept {
            Accept::Bake => finished.completion.is_bake(),
            Accept::Test => !finished.completion.is_bake(),
        };
        if !wanted {
            return noop(
                report,
                "a build of the other project: not this function's".into(),
            );
        }
        let Some(key) = finished.key.clone() else {
            return noop(
                report,
                format!(
                    "build {} carries no GILD_FAMILY/GILD_DEDUPE_KEY: not started by gild",
                    finished.build_id
                ),
            );
        };
        let region = event.envelope.region.as_deref().unwrap_or("us-east-1");
        let at = event.envelope.time.clone();
        let owner = gild_lambda::invocation_token();
        loop {
            let record = self.read(&key, "read ledger").await?;
            let Some(record) = record else {
                return noop(
                    report,
                    format!("no ledger record for {} {}", key.family, key.dedupe_key),
                );
            };
            let known = if finished.completion.is_bake() {
                record.build_id.as_deref()
            } else {
                record.test_build_id.as_deref()
            };
            if known.map(build_id) != Some(build_id(&finished.build_id)) {
                return noop(
                    report,
                    format!(
                        "build {} is not the bake's {} build ({})",
                        finished.build_id,
                        if finished.completion.is_bake() {
                            "bake"
                        } else {
                            "test"
                        },
                        known.unwrap_or("none yet")
                    ),
                );
            }
            let Some((work, _)) = completion::work(record.state, finished.completion) else {
                if report.reached.is_empty() {
                    return noop(
                        report,
                        format!(
                            "bake is {}: {:?} does not apply (duplicate or out-of-order event)",
                            record.state, finished.completion
                        ),
                    );
                }
                return Ok(report);
            };
            let locked = with_backoff(&self.backoff, seed(&key.family), || {
                self.ports
                    .ledger
                    .lock(&key, record.state, now, self.settings.lease_secs, &owner)
            })
            .await
            .map_err(|error| port("lock ledger", &key, error))?;
            if !locked {
                let again = self.read(&key, "read ledger").await?;
                if again.is_some_and(|r| r.state == record.state) {
                    return Err(FlowError::Busy {
                        family: key.family.clone(),
                        dedupe_key: key.dedupe_key.clone(),
                    });
                }
                continue;
            }
            let context = Context {
                finished: &finished,
                record: &record,
                region,
                now,
                at: at.clone(),
            };
            let (to, change) = match self.perform(work, &context).await {
                Ok(done) => done,
                Err(err) => {
                    if let Err(release) = self.ports.ledger.release(&key, record.state).await {
                        warn!(error = %release, "could not release the lock; it expires on its own");
                    }
                    return Err(err);
                }
            };
            let advanced = with_backoff(&self.backoff, seed(&key.family), || {
                self.ports
                    .ledger
                    .advance(&key, record.state, to, &change, now)
            })
            .await
            .map_err(|error| port("advance ledger", &key, error))?;
            if !advanced {
                // Either our write landed but its answer was lost (the SDK's
                // retry then fails the condition), or someone moved the bake
                // on. The ledger says which; the loop carries on from there.
                let now_state = self.read(&key, "read ledger").await?.map(|r| r.state);
                warn!(family = %key.family, from = %record.state, to = %to, found = ?now_state, "advance reported no change");
                if now_state == Some(to) {
                    report.reached.push(to);
                }
                continue;
            }
            info!(family = %key.family, dedupe_key = %key.dedupe_key, from = %record.state, to = %to, "advanced");
            report.reached.push(to);
        }
    }

    async fn read(
        &self,
        key: &BakeKey,
        what: &'static str,
    ) -> Result<Option<BakeRecord>, FlowError> {
        with_backoff(&self.backoff, seed(&key.family), || {
            self.ports.ledger.get(key)
        })
        .await
        .map_err(|error| port(what, key, error))
    }

    /// Does one piece of work; returns the state it leads to and what to record.
    async fn perform(
        &self,
        work: Work,
        cx: &Context<'_>,
    ) -> Result<(BakeState, Change), FlowError> {
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
                Ok((
                    BakeState::Testing,
                    Change {
                        test_build_id: Some(test_build),
                        ..Change::default()
                    },
                ))
            }
            Work::Validate => {
                let image = cx.record.image.clone().unwrap_or_default();
                self.tag_state(cx, &image, BakeState::Validated).await?;
                Ok((BakeState::Validated, Change::default()))
            }
            Work::Promote => {
                let image = cx.record.image.clone().unwrap_or_default();
                let parameter = parameter_name(&self.settings.parameter_prefix, &key.family);
                let version = self
                    .retrying(key, || self.ports.parameters.promote(&parameter, &image))
                    .await
                    .map_err(retry("promote"))?;
                self.tag_state(cx, &image, BakeState::Promoted).await?;
                self.announce(
                    cx,
                    Outcome::Promoted {
                        parameter: parameter.clone(),
                        version,
                    },
                )
                .await?;
                Ok((BakeState::Promoted, Change::default()))
            }
            Work::Cleanup(stage) => {
                let reason = format!("{stage} build {}", cx.finished.status);
                self.fail(cx, stage, reason).await
            }
        }
    }

    async fn tag_baked(&self, cx: &Context<'_>) -> Result<(BakeState, Change), FlowError> {
        let key = &cx.record.key;
        let build = build_id(&cx.finished.build_id);
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
        if !made_by(&image, build) {
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
        });
        let mut resources = vec![image.id.clone()];
        resources.extend(image.snapshots.iter().cloned());
        self.retrying(key, || self.ports.images.tag(&resources, &provenance))
            .await
            .map_err(|error| port("tag image", key, error))?;
        Ok((
            BakeState::Baked,
            Change {
                image: Some(image.id),
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
    ) -> Result<(BakeState, Change), FlowError> {
        let key = &cx.record.key;
        let build = build_id(
            cx.record
                .build_id
                .as_deref()
                .unwrap_or(&cx.finished.build_id),
        )
        .to_owned();
        let mut candidates: Vec<String> = [cx.record.image.clone(), cx.finished.image.clone()]
            .into_iter()
            .flatten()
            .collect();
        if stage == Stage::Bake {
            // A failed bake may have registered an image before failing.
            let left = self
                .retrying(key, || {
                    self.ports.images.find_by_tag(tags::BUILD_ID, &build)
                })
                .await
                .map_err(|error| port("find images of the build", key, error))?;
            candidates.extend(left.into_iter().map(|i| i.id));
        }
        candidates.sort();
        candidates.dedup();
        for image_id in candidates {
            self.remove(key, &image_id, &build).await?;
        }
        self.announce(
            cx,
            Outcome::Failed {
                stage,
                reason: reason.clone(),
            },
        )
        .await?;
        Ok((
            BakeState::Failed,
            Change {
                failed_stage: Some(stage),
                reason: Some(reason),
                ..Change::default()
            },
        ))
    }

    /// Deregisters a gild image of this build and deletes its snapshots;
    /// anything else is left alone.
    async fn remove(&self, key: &BakeKey, image_id: &str, build: &str) -> Result<(), FlowError> {
        let image = self
            .retrying(key, || self.ports.images.describe(image_id))
            .await
            .map_err(|error| port("describe image", key, error))?;
        let Some(image) = image else {
            return Ok(());
        };
        if !made_by(&image, build) {
            warn!(
                image = image_id,
                build, "not removing an image this build did not make"
            );
            return Ok(());
        }
        self.retrying(key, || self.ports.images.deregister(image_id))
            .await
            .map_err(|error| port("deregister image", key, error))?;
        for snapshot in &image.snapshots {
            self.retrying(key, || self.ports.images.delete_snapshot(snapshot))
                .await
                .map_err(|error| port("delete snapshot", key, error))?;
        }
        info!(
            image = image_id,
            snapshots = image.snapshots.len(),
            "removed"
        );
        Ok(())
    }

    async fn announce(&self, cx: &Context<'_>, outcome: Outcome) -> Result<(), FlowError> {
        let key = &cx.record.key;
        let test_build = cx.record.test_build_id.as_deref();
        let is_test = !cx.finished.completion.is_bake();
        let announcement = Announcement {
            family: key.family.clone(),
            image: cx
                .record
                .image
                .clone()
                .or_else(|| cx.finished.image.clone()),
            region: cx.region.to_owned(),
            trigger: cx.record.trigger,
            dedupe_key: key.dedupe_key.clone(),
            commit: cx.record.commit.clone(),
            outcome,
            tested: test_build.map(|b| {
                format!(
                    "the family's tests on a fresh instance (test build {})",
                    build_id(b)
                )
            }),
            parameter: parameter_name(&self.settings.parameter_prefix, &key.family),
            bake_log: if is_test {
                cx.record
                    .build_id
                    .as_deref()
                    .map(|b| build_console_link(cx.region, b, false))
            } else {
                cx.finished
                    .log_link
                    .clone()
                    .or_else(|| Some(build_console_link(cx.region, &cx.finished.build_id, false)))
            },
            test_log: if is_test {
                cx.finished.log_link.clone()
            } else {
                None
            },
            test_report: test_build.map(|b| build_console_link(cx.region, b, true)),
            at: cx.at.clone(),
        };
        let publication = announcement.publication();
        self.retrying(key, || self.ports.notifier.publish(&publication))
            .await
            .map_err(|error| port("announce", key, error))?;
        info!(family = %key.family, subject = %publication.subject, now = cx.now, "announced");
        Ok(())
    }

    async fn retrying<R, F, Fut>(&self, key: &BakeKey, call: F) -> Result<R, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, PortError>>,
    {
        with_backoff(&self.backoff, seed(&key.family), call).await
    }
}

fn port(work: &'static str, key: &BakeKey, error: PortError) -> FlowError {
    FlowError::Port {
        work,
        family: key.family.clone(),
        error: Box::new(error),
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

/// Whether gild made this image in this build: Packer tags it so at creation.
/// An image without the build's id is not known to be this build's, so it
/// is left alone (ARCHITECTURE.md, invariants).
fn made_by(image: &ImageInfo, build: &str) -> bool {
    image.tags.get(tags::MANAGED).map(String::as_str) == Some("true")
        && image
            .tags
            .get(tags::BUILD_ID)
            .is_some_and(|tagged| build_id(tagged) == build)
}
