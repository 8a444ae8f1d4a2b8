//! The functions as Lambda runs them under load and failure, for the fault
//! suite: each function is a [`Fleet`] of execution environments (function
//! processes on the Runtime API), made on demand up to the function's
//! concurrency, each serving one invocation at a time.
//!
//! What Lambda does and the fleet copies
//! (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html>,
//! "Invoke phase" and "Failures during the invoke phase"):
//! - an invocation that runs past the function's timeout is stopped and its
//!   environment reset: here the process is killed and a new one cold-starts
//!   for the next invocation; the invocation fails with `Sandbox.Timedout`;
//! - a runtime that exits mid-invocation fails it with `Runtime.ExitError`;
//!   the fleet can make that happen itself, SIGKILLing a chosen share of
//!   invocations at a random point ([`FleetConfig::kill_one_in`]): the crash
//!   mid-step that the ledger's leases have to heal.
//!
//! Copies of one event delivered at once land on different environments, so
//! two or three processes run the same step against the same records.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

use super::config::Rng;
use crate::routing::Router;
use crate::runtime_api::{FunctionError, Invocation, LambdaProcess};
use crate::{new_uuid, HarnessError};

/// How one function's environments behave.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Environments at most: invocations beyond wait for one to be free.
    pub concurrency: usize,
    /// The function's timeout (`Lambda-Runtime-Deadline-Ms`); an invocation
    /// still running then is stopped and its environment discarded.
    pub deadline: Duration,
    /// One invocation in this many is SIGKILLed (0: none), after a delay
    /// drawn from `0..kill_within`; one that ended sooner is left alone.
    pub kill_one_in: u64,
    pub kill_within: Duration,
    /// Seeds which invocations are killed, and when.
    pub seed: u64,
}

impl FleetConfig {
    /// One environment, no crashes: the deadline alone.
    pub fn single(deadline: Duration) -> Self {
        FleetConfig {
            concurrency: 1,
            deadline,
            kill_one_in: 0,
            kill_within: Duration::ZERO,
            seed: 0,
        }
    }
}

/// What a fleet went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    pub invocations: usize,
    /// Environments started (the first included).
    pub cold_starts: usize,
    /// Invocations stopped at the deadline.
    pub timeouts: usize,
    /// Invocations whose process the fleet SIGKILLed.
    pub kills: usize,
    /// Processes that died on their own mid-invocation.
    pub crashes: usize,
    /// Most invocations running at once.
    pub peak_concurrent: usize,
}

impl FleetCounts {
    pub fn merge(&mut self, other: &FleetCounts) {
        self.invocations += other.invocations;
        self.cold_starts += other.cold_starts;
        self.timeouts += other.timeouts;
        self.kills += other.kills;
        self.crashes += other.crashes;
        self.peak_concurrent = self.peak_concurrent.max(other.peak_concurrent);
    }
}

#[derive(Default)]
struct State {
    idle: Vec<LambdaProcess>,
    running: usize,
    counts: FleetCounts,
    /// Output of discarded environments, so the evidence keeps it.
    retired_logs: Vec<String>,
}

/// One function's environments.
pub struct Fleet {
    function: &'static str,
    binary: PathBuf,
    name: String,
    env: Vec<(String, String)>,
    config: FleetConfig,
    slots: Semaphore,
    state: Mutex<State>,
    rng: Mutex<Rng>,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counts and idle processes stay valid even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fleet {
    pub fn new(
        function: &'static str,
        binary: PathBuf,
        name: String,
        env: Vec<(String, String)>,
        config: FleetConfig,
    ) -> Fleet {
        Fleet {
            function,
            binary,
            name,
            env,
            slots: Semaphore::new(config.concurrency.max(1)),
            rng: Mutex::new(Rng::new(
                config.seed ^ gild_core::retry::fnv1a(function.as_bytes()),
            )),
            config,
            state: Mutex::new(State::default()),
        }
    }

    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Invokes the function in a free environment (a new one if none is
    /// idle). A timeout or a crash is the invocation's failure, as Lambda
    /// reports it, not the harness's.
    pub async fn invoke(&self, event: &Value) -> Result<Invocation, HarnessError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HarnessError::InvalidInput {
                message: "fleet closed".into(),
            })?;
        let idle = {
            let mut state = relock(&self.state);
            state.running += 1;
            state.counts.invocations += 1;
            state.counts.peak_concurrent = state.counts.peak_concurrent.max(state.running);
            state.idle.pop()
        };
        let result = self.invoke_in(idle, event).await;
        relock(&self.state).running -= 1;
        result
    }

    async fn invoke_in(
        &self,
        idle: Option<LambdaProcess>,
        event: &Value,
    ) -> Result<Invocation, HarnessError> {
        let process = match idle {
            Some(process) => process,
            None => {
                relock(&self.state).counts.cold_starts += 1;
                LambdaProcess::spawn(&self.binary, &self.name, &self.env)
                    .await?
                    .with_timeout(self.config.deadline)
            }
        };
        let kill_after = self.kill_delay();
        let mut killed = false;
        let result = {
            let invocation = process.invoke(event);
            tokio::pin!(invocation);
            match kill_after {
                Some(delay) => tokio::select! {
                    result = &mut invocation => result,
                    _ = tokio::time::sleep(delay) => {
                        process.kill();
                        killed = true;
                        invocation.await
                    }
                },
                None => invocation.await,
            }
        };
        let failed = |error_type: &str, error_message: String, duration: Duration| Invocation {
            request_id: new_uuid(),
            outcome: Err(FunctionError {
                error_type: error_type.to_owned(),
                error_message,
            }),
            duration,
        };
        match result {
            Ok(invocation) if !killed => {
                relock(&self.state).idle.push(process);
                Ok(invocation)
            }
            // Killed as it answered: the answer stands, the process is gone.
            Ok(invocation) => {
                self.retire(process, |c| c.kills += 1);
                Ok(invocation)
            }
            Err(HarnessError::InvokeTimeout { timeout, .. }) => {
                self.retire(process, |c| c.timeouts += 1);
                Ok(failed(
                    "Sandbox.Timedout",
                    format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                    timeout,
                ))
            }
            Err(HarnessError::FunctionDied { .. }) => {
                self.retire(process, |c| {
                    if killed {
                        c.kills += 1;
                    } else {
                        c.crashes += 1;
                    }
                });
                let how = if killed { "signal: killed" } else { "exited" };
                Ok(failed(
                    "Runtime.ExitError",
                    format!("Runtime exited with error: {how}"),
                    kill_after.unwrap_or_default(),
                ))
            }
            Err(other) => Err(other),
        }
    }

    /// Whether this invocation is killed, and after how long.
    fn kill_delay(&self) -> Option<Duration> {
        if self.config.kill_one_in == 0 {
            return None;
        }
        let mut rng = relock(&self.rng);
        if !rng.next_u64().is_multiple_of(self.config.kill_one_in) {
            return None;
        }
        let within = self.config.kill_within.as_millis().max(1) as u64;
        Some(Duration::from_millis(rng.next_u64() % within))
    }

    fn retire(&self, process: LambdaProcess, count: impl FnOnce(&mut FleetCounts)) {
        let logs = process.logs();
        drop(process);
        let mut state = relock(&self.state);
        count(&mut state.counts);
        state.retired_logs.push(logs);
    }

    pub fn counts(&self) -> FleetCounts {
        relock(&self.state).counts
    }

    /// Every environment's output, the discarded ones' first.
    pub fn logs(&self) -> String {
        let state = relock(&self.state);
        let mut all = state.retired_logs.clone();
        all.extend(state.idle.iter().map(LambdaProcess::logs));
        all.join("")
    }
}

/// The pipeline's functions as fleets, and EventBridge between them.
pub struct Fleets {
    pub trigger: Fleet,
    pub bake_finished: Fleet,
    pub test_finished: Fleet,
    pub reconcile: Fleet,
    /// EventBridge, by the deployed stack's rules.
    pub router: Arc<Router>,
}

impl Fleets {
    pub fn get(&self, function: &str) -> &Fleet {
        match function {
            "bake-finished" => &self.bake_finished,
            "test-finished" => &self.test_finished,
            "reconcile" => &self.reconcile,
            _ => &self.trigger,
        }
    }

    pub fn all(&self) -> [&Fleet; 4] {
        [
            &self.trigger,
            &self.bake_finished,
            &self.test_finished,
            &self.reconcile,
        ]
    }

    /// The functions the deployed stack's rules send `event` to.
    pub async fn targets(&self, event: &Value) -> Result<Vec<&'static str>, HarnessError> {
        self.router.targets(event).await
    }

    /// Every fleet's counts together.
    pub fn counts(&self) -> FleetCounts {
        let mut all = FleetCounts::default();
        for fleet in self.all() {
            all.merge(&fleet.counts());
        }
        all
    }

    /// Each function's output, for the evidence.
    pub fn logs(&self) -> Vec<(&'static str, String)> {
        self.all()
            .iter()
            .map(|fleet| (fleet.function(), fleet.logs()))
            .collect()
    }
}
