//! The completion driver shared by `bake-finished`, `test-finished` and the
//! reconciler: turns a finished build into the work gild-core says the
//! bake's state calls for, one locked step at a time.
//!
//! Each step runs under the ledger's lock on the bake's current state and
//! ends with the one [`Transition`] the table allows for the step's outcome,
//! so a duplicate delivery finds either the lock (and fails, to be retried)
//! or a state that calls for nothing. A step that fails releases the lock;
//! Lambda's retry resumes at the same step.

use gild_core::completion::{self, Finished};
use gild_core::event::{self, EventKind};
use gild_core::ledger::{BakeKey, BakeRecord};
use gild_core::ports::{
    Artifacts, BuildInfo, Images, Ledger, Notifier, Parameters, PortError, Reviews, Tests,
};
use gild_core::retry::Backoff;
use gild_core::state::{BakeState, Transition};
use gild_core::steps;
use gild_lambda::retry::{seed, with_backoff};
use serde_json::Value;
use tracing::{info, warn};

use crate::steps::Context;
use crate::{port, Accept, FlowError, FlowSettings, Ports, Report};

pub struct Completions<L, I, B, T, P, N, V, A> {
    pub(crate) ports: Ports<L, I, B, T, P, N, V, A>,
    pub(crate) settings: FlowSettings,
    pub(crate) backoff: Backoff,
}

pub use gild_core::steps::Origin;

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
    pub fn new(ports: Ports<L, I, B, T, P, N, V, A>, settings: FlowSettings) -> Self {
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

    pub fn ports(&self) -> &Ports<L, I, B, T, P, N, V, A> {
        &self.ports
    }

    pub fn into_ports(self) -> Ports<L, I, B, T, P, N, V, A> {
        self.ports
    }

    pub fn settings(&self) -> &FlowSettings {
        &self.settings
    }

    /// Handles a CodeBuild build state change event.
    pub async fn handle(&self, event: Value, now: i64) -> Result<Report, FlowError> {
        let event = event::parse(event)?;
        let report = Report {
            event: event.envelope.detail_type.clone(),
            family: None,
            build_id: None,
            reached: Vec::new(),
            noop: None,
        };
        let EventKind::BuildStateChange(change) = &event.kind else {
            return Ok(noop(report, "not a CodeBuild build state change".into()));
        };
        let report = Report {
            build_id: Some(change.build_id.clone()),
            ..report
        };
        let finished = match completion::classify(change, &self.settings.projects) {
            Ok(finished) => finished,
            Err(reason) => return Ok(noop(report, reason)),
        };
        let wanted = match self.settings.accept {
            Accept::Bake => finished.completion.is_bake(),
            Accept::Test => !finished.completion.is_bake(),
        };
        if !wanted {
            return Ok(noop(
                Report {
                    family: finished.family.clone(),
                    ..report
                },
                "a build of the other project: not this function's".into(),
            ));
        }
        let region = event.envelope.region.as_deref().unwrap_or("us-east-1");
        self.drive(
            report,
            &finished,
            Origin::Event,
            region,
            &event.envelope.time,
            now,
        )
        .await
    }

    /// Does the work `finished` calls for from the bake's state, step after
    /// step, until the table says nothing more applies.
    pub async fn drive(
        &self,
        mut report: Report,
        finished: &Finished,
        origin: Origin,
        region: &str,
        at: &str,
        now: i64,
    ) -> Result<Report, FlowError> {
        report.family = finished.family.clone();
        let Some(key) = finished.key.clone() else {
            return Ok(noop(
                report,
                format!(
                    "build {} carries no GILD_FAMILY/GILD_DEDUPE_KEY: not started by gild",
                    finished.build_id
                ),
            ));
        };
        let owner = gild_lambda::invocation_token();
        loop {
            let Some(record) = self.read(&key, "read ledger").await? else {
                return Ok(noop(
                    report,
                    format!("no ledger record for {} {}", key.family, key.dedupe_key),
                ));
            };
            if let Err(reason) = steps::same_build(&record, finished, origin) {
                return Ok(noop(report, reason));
            }
            let Some((work, _)) =
                completion::work(record.lane(), record.state, finished.completion)
            else {
                if record.state == BakeState::Superseded && finished.completion.is_bake() {
                    // Its bake ended after a newer head superseded it (the
                    // stop came too late): what it made is removed all the
                    // same, and the state stays where the table left it.
                    self.remove_late_images(&record, finished).await?;
                }
                if report.reached.is_empty() {
                    let reason = format!(
                        "bake is {}: {:?} does not apply (duplicate or out-of-order event)",
                        record.state, finished.completion
                    );
                    return Ok(noop(report, reason));
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
                finished,
                record: &record,
                region,
                now,
                at: at.to_owned(),
            };
            let performed = self
                .perform(work, &context)
                .await
                .and_then(|(step, change)| {
                    Ok((
                        Transition::require(record.lane(), record.state, step)?,
                        change,
                    ))
                });
            let (transition, change) = match performed {
                Ok(done) => done,
                Err(err) => {
                    if let Err(release) = self.ports.ledger.release(&key, record.state).await {
                        warn!(error = %release, "could not release the lock; it expires on its own");
                    }
                    return Err(err);
                }
            };
            let advanced = with_backoff(&self.backoff, seed(&key.family), || {
                self.ports.ledger.advance(&key, transition, &change, now)
            })
            .await
            .map_err(|error| port("advance ledger", &key, error))?;
            let to = transition.to();
            if !advanced {
                // Either our write landed but its answer was lost (the SDK's
                // retry then fails the condition), or someone moved the bake
                // on. The ledger says which; the loop carries on from there.
                let now_state = self.read(&key, "read ledger").await?.map(|r| r.state);
                warn!(family = %key.family, %transition, found = ?now_state, "advance reported no change");
                if now_state == Some(to) {
                    report.reached.push(to);
                }
                continue;
            }
            info!(family = %key.family, dedupe_key = %key.dedupe_key, from = %transition.from(), to = %to, "advanced");
            report.reached.push(to);
        }
    }

    pub(crate) async fn read(
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

    pub(crate) async fn retrying<R, F, Fut>(&self, key: &BakeKey, call: F) -> Result<R, PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<R, PortError>>,
    {
        with_backoff(&self.backoff, seed(&key.family), call).await
    }
}

fn noop(mut report: Report, reason: String) -> Report {
    info!(reason = %reason, "nothing to do");
    report.noop = Some(reason);
    report
}
