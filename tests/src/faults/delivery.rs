//! Events delivered as AWS delivers them: at least once, copies at once,
//! failed invocations delivered again after Lambda's retry delays.

use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::config::Rng;
use super::fleet::Fleets;
use crate::pipeline::Pipeline;
use crate::standin::{Builds, Completed};
use crate::HarnessError;

/// How events reach the functions, as AWS delivers them: each event
/// `copies` times (at least once), all in an order shuffled by `seed`; an
/// invocation that fails is delivered again after the next of
/// `retry_delays` (Lambda's async retries, then EventBridge's redelivery),
/// up to `max_attempts` per copy.
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub seed: u64,
    pub copies: (usize, usize),
    pub max_attempts: u32,
    pub retry_delays: Vec<Duration>,
}

impl Redelivery {
    pub fn new(seed: u64) -> Self {
        Redelivery {
            seed,
            copies: (1, 3),
            max_attempts: 10,
            retry_delays: vec![Duration::from_millis(500)],
        }
    }

    pub fn copies(mut self, low: usize, high: usize) -> Self {
        self.copies = (low.max(1), high.max(low.max(1)));
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn retry_delays(mut self, delays: &[Duration]) -> Self {
        self.retry_delays = delays.to_vec();
        self
    }

    fn delay(&self, failed_attempt: u32) -> Duration {
        let index = (failed_attempt as usize).saturating_sub(1);
        self.retry_delays
            .get(index)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or_default()
    }
}

/// One failed invocation.
#[derive(Debug, Clone)]
pub struct FailedInvocation {
    pub function: &'static str,
    /// The event's `id` (and, for completions, its build).
    pub event: String,
    pub attempt: u32,
    pub error_type: String,
    pub error_message: String,
}

impl fmt::Display for FailedInvocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt {} of {}: {}: {}",
            self.function, self.attempt, self.event, self.error_type, self.error_message
        )
    }
}

/// What delivering events took.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLog {
    pub invocations: usize,
    /// Time the functions spent on them (Lambda's billed `Duration`).
    pub busy: Duration,
    /// Every invocation that returned an error (and was delivered again,
    /// unless it is also in `gave_up`).
    pub failures: Vec<FailedInvocation>,
    /// Copies still failing after `max_attempts`: AWS would drop them
    /// (or park them in a dead-letter queue).
    pub gave_up: Vec<FailedInvocation>,
    /// Copies that succeeded only after failing: (function, event, the
    /// attempt that succeeded).
    pub recovered: Vec<(&'static str, String, u32)>,
    /// Every build completion the stand-in reported, in order.
    pub completed: Vec<Completed>,
    /// Events delivered to two or three environments at once.
    pub raced: usize,
}

fn event_label(event: &Value) -> String {
    let id = event["id"].as_str().unwrap_or("?");
    match event["detail"]["build-id"].as_str() {
        Some(build) => format!("{id} ({})", build.rsplit('/').next().unwrap_or(build)),
        None => id.to_owned(),
    }
}

/// One copy of one event for one target, and its attempt.
struct Pending {
    event: usize,
    target: &'static str,
    attempt: u32,
    ready_at: Instant,
}

impl Fleets {
    /// Delivers `events` as `policy` says until every copy succeeded or ran
    /// out of attempts: copies of an event go out together, so each is
    /// handled by its own environment at the same time (a race of two or
    /// three processes over one step); a failed invocation goes out again
    /// after the policy's delay, in a shuffled place.
    pub async fn deliver_redelivering(
        &self,
        events: &[Value],
        policy: &Redelivery,
        rng: &mut Rng,
        log: &mut DeliveryLog,
    ) -> Result<(), HarnessError> {
        let now = Instant::now();
        let mut queue: Vec<Pending> = Vec::new();
        // Each rule target gets its own copies, as EventBridge delivers them.
        for (index, event) in events.iter().enumerate() {
            for target in self.targets(event).await? {
                let copies = rng.between(policy.copies.0, policy.copies.1);
                if copies > 1 {
                    log.raced += 1;
                }
                for _ in 0..copies {
                    queue.push(Pending {
                        event: index,
                        target,
                        attempt: 1,
                        ready_at: now,
                    });
                }
            }
        }
        rng.shuffle(&mut queue);
        let mut running = FuturesUnordered::new();
        loop {
            let now = Instant::now();
            let (ready, later): (Vec<Pending>, Vec<Pending>) =
                queue.into_iter().partition(|p| p.ready_at <= now);
            queue = later;
            for pending in ready {
                let event = &events[pending.event];
                let fleet = self.get(pending.target);
                running.push(async move { (pending, fleet.invoke(event).await) });
            }
            if running.is_empty() && queue.is_empty() {
                return Ok(());
            }
            let next = queue.iter().map(|p| p.ready_at).min();
            let done = tokio::select! {
                Some(done) = running.next() => done,
                _ = sleep_until(next), if next.is_some() => continue,
            };
            let (pending, invocation) = done;
            let invocation = invocation?;
            let event = &events[pending.event];
            log.invocations += 1;
            log.busy += invocation.duration;
            match invocation.outcome {
                Ok(_) if pending.attempt > 1 => {
                    log.recovered
                        .push((pending.target, event_label(event), pending.attempt));
                }
                Ok(_) => {}
                Err(error) => {
                    let failed = FailedInvocation {
                        function: pending.target,
                        event: event_label(event),
                        attempt: pending.attempt,
                        error_type: error.error_type,
                        error_message: error.error_message,
                    };
                    log.failures.push(failed.clone());
                    if pending.attempt >= policy.max_attempts {
                        log.gave_up.push(failed);
                    } else {
                        let at = rng.between(0, queue.len());
                        queue.insert(
                            at,
                            Pending {
                                attempt: pending.attempt + 1,
                                ready_at: Instant::now() + policy.delay(pending.attempt),
                                ..pending
                            },
                        );
                    }
                }
            }
        }
    }

    /// Runs the stand-in's pending builds and delivers their completions
    /// with [`Fleets::deliver_redelivering`] until no build is pending.
    pub async fn settle_redelivering(
        &self,
        pipeline: &Pipeline,
        standin: &impl Builds,
        policy: &Redelivery,
        rng: &mut Rng,
        log: &mut DeliveryLog,
    ) -> Result<(), HarnessError> {
        loop {
            let completed = pipeline.run_builds(standin).await?;
            if completed.is_empty() {
                return Ok(());
            }
            let events: Vec<Value> = completed.iter().map(|c| c.event.clone()).collect();
            log.completed.extend(completed);
            self.deliver_redelivering(&events, policy, rng, log).await?;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}
