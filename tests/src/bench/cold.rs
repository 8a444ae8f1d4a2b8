//! Cold starts: each release bootstrap against its Python/boto3 peer.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{bench_error, images_repo, median, ms, spawn_release, start, table, Args, Report, Row};
use crate::codebuild::{Limits, StartedBuild};
use crate::faults::{FaultConfig, FaultyRoutes};
use crate::pipeline::Pipeline;
use crate::runtime_api::LambdaProcess;
use crate::standin::{register_base_image, BuildStandIn, Builds};
use crate::{workspace_root, HarnessError};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Runtime {
    Rust,
    Python,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Runtime::Rust => "rust",
            Runtime::Python => "python",
        }
    }
}

struct Sample {
    init_ms: f64,
    first_ms: f64,
    rss_kib: f64,
    /// AWS calls per service during the invocation.
    calls: BTreeMap<String, u64>,
}

/// What a cold start costs, each figure a median over the runs. Init plus
/// first invocation is summed per run, then the median taken, so it is what
/// one cold start cost, not a sum of two medians from different runs.
type Figure = (&'static str, fn(&Sample) -> f64);

const FIGURES: [Figure; 3] = [
    ("init (ms)", |s| s.init_ms),
    ("first invocation (ms)", |s| s.first_ms),
    ("init + first invocation (ms)", |s| s.init_ms + s.first_ms),
];

/// Init's goal: the figure gild set itself before the first run. The other
/// two have none, and the table shows none rather than borrow init's.
const INIT_GOAL: f64 = 0.1;
const RSS_GOAL: f64 = 1.0 / 3.0;

struct Cold<'a> {
    args: &'a Args,
    pipeline: Pipeline,
    routes: FaultyRoutes,
    /// Months used so far: see [`Cold::schedule`].
    months: Cell<usize>,
}

impl Cold<'_> {
    /// Back to an empty stack, so every cold start does the same work.
    /// The ledger emptied: what a cold start's work depends on.
    async fn fresh(&self) -> Result<(), HarnessError> {
        self.pipeline.clear_ledger().await
    }

    /// The schedule firing on a patch day no cold start has used yet. The
    /// bake's idempotency token comes from its month, and CodeBuild (the
    /// proxy too) answers a repeated token from memory for 5 minutes
    /// without starting a build: a reused month would time a cheaper start
    /// than a fresh stack's. The 15th is past every month's Patch Tuesday.
    fn schedule(&self) -> Result<Value, HarnessError> {
        let n = self.months.get();
        self.months.set(n + 1);
        self.pipeline
            .schedule_event(&format!("{}-{:02}-15T03:00:00Z", 2027 + n / 12, n % 12 + 1))
    }

    fn env(&self, function: &str) -> Result<Vec<(String, String)>, HarnessError> {
        let mut env = self.routes.function_env(&self.pipeline, function)?;
        // Every family starts: the queue is measured by the patch day.
        env.push(("GILD_MAX_PARALLEL_BUILDS".into(), "1000".into()));
        Ok(env)
    }

    async fn spawn(&self, function: &str, runtime: Runtime) -> Result<LambdaProcess, HarnessError> {
        let name = format!("gild-{function}");
        match runtime {
            Runtime::Rust => spawn_release(self.args, function, &self.env(function)?).await,
            Runtime::Python => {
                let root = workspace_root().join("bench/python");
                let module = format!("gild_peer.{}.handler", function.replace('-', "_"));
                let mut env = self.env(function)?;
                env.push(("PYTHONPATH".into(), root.display().to_string()));
                env.push(("LAMBDA_TASK_ROOT".into(), root.display().to_string()));
                env.push(("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3.11".into()));
                LambdaProcess::spawn_with_args(
                    &self.args.python,
                    &["-m", "awslambdaric", &module],
                    &name,
                    &env,
                )
                .await
            }
        }
    }

    /// One cold start of `function` on `event`; `check` vets the answer.
    async fn once(
        &self,
        function: &str,
        runtime: Runtime,
        event: &Value,
        check: &dyn Fn(&Value) -> Result<(), String>,
    ) -> Result<Sample, HarnessError> {
        let process = self
            .spawn(function, runtime)
            .await?
            .with_timeout(Duration::from_secs(60));
        let before = self.routes.injected().calls;
        let invocation = process.invoke(event).await?;
        // Lambda's init phase ends at the first `/next`; the harness only
        // answers it once an event is queued, so init is read afterwards.
        let init = process
            .init_duration()
            .ok_or_else(|| bench_error(format!("{function} never polled /next")))?;
        let rss = process.peak_rss_kib().unwrap_or_default();
        let after = self.routes.injected().calls;
        let value = invocation.outcome.map_err(|e| {
            bench_error(format!(
                "{} {function} failed: {}: {}\n{}",
                runtime.name(),
                e.error_type,
                e.error_message,
                process.logs()
            ))
        })?;
        check(&value).map_err(|problem| {
            bench_error(format!(
                "{} {function} answered wrongly: {problem}: {value}",
                runtime.name()
            ))
        })?;
        let calls = after
            .iter()
            .map(|(service, n)| {
                (
                    service.clone(),
                    n - before.get(service).copied().unwrap_or(0),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Ok(Sample {
            init_ms: ms(init),
            first_ms: ms(invocation.duration),
            rss_kib: rss as f64,
            calls,
        })
    }

    /// A bake started by the real trigger and finished by the stand-in:
    /// the event bake-finished gets.
    async fn bake_succeeded(&self) -> Result<Value, HarnessError> {
        let trigger = self.spawn("trigger", Runtime::Rust).await?;
        trigger
            .invoke(&self.schedule()?)
            .await?
            .outcome
            .map_err(|e| bench_error(format!("setup trigger: {}", e.error_message)))?;
        let base = register_base_image(&self.pipeline.aws, "base").await?;
        let standin = BuildStandIn::new(&self.pipeline, base);
        let bake_project = self.pipeline.bake_project();
        let latest: Vec<StartedBuild> = self
            .pipeline
            .codebuild
            .started()
            .into_iter()
            .rev()
            .filter(|b| b.project_name == bake_project)
            .take(1)
            .collect();
        let completed = standin.run_pending(&latest).await?;
        completed
            .into_iter()
            .next()
            .map(|c| c.event)
            .ok_or_else(|| bench_error("the stand-in finished no bake"))
    }
}

pub(super) async fn cold(args: &Args, report: &mut Report) -> Result<(), HarnessError> {
    let families = 3;
    let pipeline = start(images_repo(families)?, Limits::default()).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    let cold = Cold {
        args,
        pipeline,
        routes,
        months: Cell::new(0),
    };
    let started_all = move |v: &Value| match v["started"].as_array().map(Vec::len) {
        Some(n) if n == families => Ok(()),
        other => Err(format!("started {other:?} of {families}")),
    };
    let test_started = |v: &Value| {
        let text = v.to_string();
        if text.contains("testing") {
            Ok(())
        } else {
            Err("the bake did not reach testing".to_owned())
        }
    };
    // One table, the three cold-start figures side by side, so init is
    // never read without what the first invocation adds to it.
    let mut side_by_side = table(&[
        "function",
        "init gild",
        "init python",
        "ratio",
        "first inv. gild",
        "first inv. python",
        "ratio",
        "init + first gild",
        "init + first python",
        "ratio",
        "init ≤ 1/10 (goal)",
    ]);
    for function in ["trigger", "bake-finished"] {
        let mut samples: BTreeMap<Runtime, Vec<Sample>> = BTreeMap::new();
        // A discarded first round warms the page cache (and Python's
        // bytecode cache) for both, then the runtimes alternate.
        for round in 0..=args.runs {
            for runtime in [Runtime::Rust, Runtime::Python] {
                cold.fresh().await?;
                let sample = if function == "trigger" {
                    let schedule = cold.schedule()?;
                    cold.once(function, runtime, &schedule, &started_all)
                        .await?
                } else {
                    let event = cold.bake_succeeded().await?;
                    cold.once(function, runtime, &event, &test_started).await?
                };
                if round > 0 {
                    samples.entry(runtime).or_default().push(sample);
                }
            }
        }
        let calls = |r: Runtime| {
            samples[&r]
                .first()
                .map(|s| s.calls.clone())
                .unwrap_or_default()
        };
        for runtime in [Runtime::Rust, Runtime::Python] {
            if let Some(odd) = samples[&runtime].iter().find(|s| s.calls != calls(runtime)) {
                return Err(bench_error(format!(
                    "{} {function}: AWS calls differ between runs: {:?} vs {:?}",
                    runtime.name(),
                    odd.calls,
                    calls(runtime)
                )));
            }
        }
        if calls(Runtime::Rust) != calls(Runtime::Python) {
            return Err(bench_error(format!(
                "{function}: the Python peer is not equivalent: rust made {:?}, python {:?}",
                calls(Runtime::Rust),
                calls(Runtime::Python)
            )));
        }
        let med = |r: Runtime, f: fn(&Sample) -> f64| median(samples[&r].iter().map(f).collect());
        let mut json_figures = serde_json::Map::new();
        let mut cells = vec![function.to_owned()];
        let mut init_met = "";
        for (name, get) in FIGURES {
            let (rust, python) = (med(Runtime::Rust, get), med(Runtime::Python, get));
            let ratio = rust / python;
            cells.extend([
                format!("{rust:.1} ms"),
                format!("{python:.1} ms"),
                format!("{ratio:.3}"),
            ]);
            let goal = (name == "init (ms)").then_some(INIT_GOAL);
            if let Some(goal) = goal {
                let met = ratio <= goal;
                init_met = if met { "yes" } else { "NO" };
                if !met {
                    report.missed.push(format!("cold: {function} {name}"));
                }
            }
            json_figures.insert(
                name.to_owned(),
                json!({"rust": rust, "python": python, "ratio": ratio, "goal_ratio": goal}),
            );
        }
        cells.push(init_met.to_owned());
        side_by_side.add_row(cells);
        let rss = |s: &Sample| s.rss_kib / 1024.0;
        let (rust, python) = (med(Runtime::Rust, rss), med(Runtime::Python, rss));
        let ratio = rust / python;
        report.rows.push(
            Row::new(
                "cold",
                format!("{function} peak RSS (MiB)"),
                format!("{rust:.1}"),
            )
            .baseline(format!("{python:.1} (python)"), ratio)
            .goal("≤ 1/3 of python", ratio <= RSS_GOAL),
        );
        json_figures.insert(
            "peak RSS (MiB)".to_owned(),
            json!({"rust": rust, "python": python, "ratio": ratio, "goal_ratio": RSS_GOAL}),
        );
        let total: u64 = calls(Runtime::Rust).values().sum();
        report.rows.push(Row::new(
            "cold",
            format!("{function} AWS calls (both runtimes)"),
            format!("{total} {:?}", calls(Runtime::Rust)),
        ));
        let series = |r: Runtime, f: fn(&Sample) -> f64| samples[&r].iter().map(f).collect();
        let samples_json: Vec<Vec<f64>> = vec![
            series(Runtime::Rust, |s| s.init_ms),
            series(Runtime::Python, |s| s.init_ms),
            series(Runtime::Rust, |s| s.first_ms),
            series(Runtime::Python, |s| s.first_ms),
        ];
        report.results["cold"][function] = json!({
            "runs": args.runs,
            "medians": json_figures,
            "aws_calls": calls(Runtime::Rust),
            "samples": {
                "rust_init_ms": samples_json[0],
                "python_init_ms": samples_json[1],
                "rust_first_invocation_ms": samples_json[2],
                "python_first_invocation_ms": samples_json[3],
            },
        });
    }
    report.tables.push((
        "cold start, medians of each runtime's runs (init + first: summed per run)",
        side_by_side,
    ));
    Ok(())
}
