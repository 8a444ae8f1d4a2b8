//! `make bench`: gild's claims as numbers, each beside its goal.
//!
//! - cold: the trigger (schedule event) and bake-finished (bake succeeded)
//!   release binaries against their Python/boto3 peers (bench/python, run by
//!   `awslambdaric`), each started fresh through the same Runtime API
//!   harness, same event, same emulator: init (spawn → first `/next`), first
//!   invocation, peak RSS (`VmHWM`). Both must make the same AWS calls.
//! - size: each function's zipped bootstrap, from `make sam-build`.
//! - patch: one schedule event over a catalog of N families against a
//!   CodeBuild that answers slowly, throttles, and has a build quota; then
//!   the queue drains as builds end.
//! - hops: a full success flow, time and AWS calls per hop.
//!
//! Everything runs on this machine against moto; figures are medians.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use gild_tests::codebuild::{Limits, StartedBuild};
use gild_tests::faults::{FaultConfig, FaultyRoutes};
use gild_tests::git::TestRepo;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::{Options, Pipeline};
use gild_tests::runtime_api::LambdaProcess;
use gild_tests::standin::{register_base_image, BuildStandIn, Builds};
use gild_tests::{workspace_root, HarnessError};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "gild's benchmarks: cold start, memory, package size, patch day, per-hop cost")]
struct Args {
    /// Cold starts per function and runtime (medians are reported).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Families in the patch-day catalog.
    #[arg(long, default_value_t = 500)]
    families: usize,
    /// Full success flows timed for the per-hop figures.
    #[arg(long, default_value_t = 10)]
    flows: usize,
    /// Where `cargo lambda build --release` left <function>/bootstrap.
    #[arg(long, default_value = "target/lambda")]
    bootstraps: PathBuf,
    /// The Python of the peer's virtualenv (boto3 + awslambdaric).
    #[arg(long, default_value = ".venv/bench/bin/python")]
    python: PathBuf,
    /// Zipped sizes written by `make sam-build`.
    #[arg(long, default_value = "target/sam-sizes.txt")]
    sizes: PathBuf,
    #[arg(long, default_value = "bench/results.json")]
    out: PathBuf,
    /// Parts to run.
    #[arg(long, value_delimiter = ',', default_value = "cold,size,patch,hops")]
    parts: Vec<String>,
}

/// One line of the results table.
struct Row {
    part: &'static str,
    metric: String,
    value: String,
    baseline: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    fn new(part: &'static str, metric: impl Into<String>, value: impl Into<String>) -> Self {
        Row {
            part,
            metric: metric.into(),
            value: value.into(),
            baseline: String::new(),
            ratio: String::new(),
            goal: String::new(),
            met: None,
        }
    }

    fn baseline(mut self, baseline: impl Into<String>, ratio: f64) -> Self {
        self.baseline = baseline.into();
        self.ratio = format!("{ratio:.3}");
        self
    }

    fn goal(mut self, goal: impl Into<String>, met: bool) -> Self {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }
}

fn bench_error(message: impl Into<String>) -> HarnessError {
    HarnessError::InvalidInput {
        message: message.into(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A catalog of `n` Linux families.
fn catalog(n: usize) -> String {
    (0..n)
        .map(|i| format!("[families.fam-{i:03}]\npath = \"images/fam-{i:03}\"\nos = \"linux\"\n"))
        .collect()
}

fn images_repo(families: usize) -> Result<TestRepo, HarnessError> {
    Ok(TestRepo::images(&catalog(families), &[], &[])?.0)
}

/// A function's release bootstrap, as `make sam-build` left it.
/// A pipeline on the deployed stack, without the IAM gate: the bench
/// measures gild and its peer, not the gate's Python in between.
async fn start(repo: gild_tests::git::TestRepo, limits: Limits) -> Result<Pipeline, HarnessError> {
    let options = Options {
        limits,
        gate: false,
        ..Options::default()
    };
    Pipeline::start_with(MotoServer::start().await?, repo, options).await
}

async fn spawn_release(
    args: &Args,
    function: &str,
    env: &[(String, String)],
) -> Result<LambdaProcess, HarnessError> {
    let binary = args.bootstraps.join(function).join("bootstrap");
    LambdaProcess::spawn(&binary, &format!("gild-{function}"), env).await
}

// ------------------------------------------------------------------ cold

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

struct Cold<'a> {
    args: &'a Args,
    pipeline: Pipeline,
    routes: FaultyRoutes,
}

impl Cold<'_> {
    /// Back to an empty stack, so every cold start does the same work.
    /// The ledger emptied: what a cold start's work depends on.
    async fn fresh(&self) -> Result<(), HarnessError> {
        self.pipeline.clear_ledger().await
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
            .invoke(&self.pipeline.schedule_event("2026-11-11T03:00:00Z")?)
            .await?
            .outcome
            .map_err(|e| bench_error(format!("setup trigger: {}", e.error_message)))?;
        let base = register_base_image(&self.pipeline.aws, "base").await?;
        let standin = BuildStandIn::new(&self.pipeline, base);
        let started = self.pipeline.codebuild.started();
        let latest: Vec<StartedBuild> = started.into_iter().rev().take(1).collect();
        let completed = standin.run_pending(&latest).await?;
        completed
            .into_iter()
            .next()
            .map(|c| c.event)
            .ok_or_else(|| bench_error("the stand-in finished no bake"))
    }
}

async fn cold(args: &Args, rows: &mut Vec<Row>, results: &mut Value) -> Result<(), HarnessError> {
    let families = 3;
    let pipeline = start(images_repo(families)?, Limits::default()).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    let schedule = pipeline.schedule_event("2026-11-11T03:00:00Z")?;
    let cold = Cold {
        args,
        pipeline,
        routes,
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
    for function in ["trigger", "bake-finished"] {
        let mut samples: BTreeMap<Runtime, Vec<Sample>> = BTreeMap::new();
        // A discarded first round warms the page cache (and Python's
        // bytecode cache) for both, then the runtimes alternate.
        for round in 0..=args.runs {
            for runtime in [Runtime::Rust, Runtime::Python] {
                cold.fresh().await?;
                let sample = if function == "trigger" {
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
        let figures = [
            (
                "init (ms)",
                (|s: &Sample| s.init_ms) as fn(&Sample) -> f64,
                Some(0.1),
            ),
            ("first invocation (ms)", |s: &Sample| s.first_ms, None),
            (
                "peak RSS (MiB)",
                |s: &Sample| s.rss_kib / 1024.0,
                Some(1.0 / 3.0),
            ),
        ];
        let mut json_figures = serde_json::Map::new();
        for (name, get, goal) in figures {
            let (rust, python) = (med(Runtime::Rust, get), med(Runtime::Python, get));
            let ratio = rust / python;
            let mut row = Row::new("cold", format!("{function} {name}"), format!("{rust:.1}"))
                .baseline(format!("{python:.1} (python)"), ratio);
            if let Some(goal) = goal {
                let label = if goal < 0.2 {
                    "≤ 1/10 of python"
                } else {
                    "≤ 1/3 of python"
                };
                row = row.goal(label, ratio <= goal);
            }
            rows.push(row);
            json_figures.insert(
                name.to_owned(),
                json!({"rust": rust, "python": python, "ratio": ratio, "goal_ratio": goal}),
            );
        }
        let total: u64 = calls(Runtime::Rust).values().sum();
        rows.push(Row::new(
            "cold",
            format!("{function} AWS calls (both runtimes)"),
            format!("{total} {:?}", calls(Runtime::Rust)),
        ));
        results["cold"][function] = json!({
            "runs": args.runs,
            "medians": json_figures,
            "aws_calls": calls(Runtime::Rust),
            "samples": {
                "rust_init_ms": samples[&Runtime::Rust].iter().map(|s| s.init_ms).collect::<Vec<_>>(),
                "python_init_ms": samples[&Runtime::Python].iter().map(|s| s.init_ms).collect::<Vec<_>>(),
            },
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ size

fn size(args: &Args, rows: &mut Vec<Row>, results: &mut Value) -> Result<(), HarnessError> {
    let text = std::fs::read_to_string(&args.sizes).map_err(|source| HarnessError::Io {
        context: format!("reading {} (run `make sam-build`)", args.sizes.display()),
        source,
    })?;
    // "Trigger  bootstrap  18288 KB  zipped  6657 KB  needs GLIBC_2.30"
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let zipped = words
            .iter()
            .position(|w| *w == "zipped")
            .and_then(|i| words.get(i + 1))
            .and_then(|kb| kb.parse::<f64>().ok());
        let (Some(function), Some(kb)) = (words.first(), zipped) else {
            continue;
        };
        let mb = kb / 1024.0;
        rows.push(
            Row::new(
                "size",
                format!("{function} zipped bootstrap (MB)"),
                format!("{mb:.2}"),
            )
            .goal("≤ 5 MB", mb <= 5.0),
        );
        results["size"][*function] = json!({"zipped_kb": kb});
    }
    Ok(())
}

// ------------------------------------------------------------------ patch day

/// CodeBuild as patch day meets it.
const LATENCY: Duration = Duration::from_millis(50);
const RATE_PER_SEC: f64 = 20.0;
const ACCOUNT_QUOTA: usize = 100;
/// Builds of other teams already running when the schedule fires.
const OTHERS_RUNNING: usize = 30;
/// gild's own limit, set above what the account has left so that
/// CodeBuild's AccountLimitExceededException is met too.
const GILD_LIMIT: usize = 90;

async fn patch_day(
    args: &Args,
    rows: &mut Vec<Row>,
    results: &mut Value,
) -> Result<(), HarnessError> {
    let limits = Limits {
        latency: LATENCY,
        rate_per_sec: Some(RATE_PER_SEC),
        max_running: Some(ACCOUNT_QUOTA),
    };
    let pipeline = start(images_repo(args.families)?, limits).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    // Other teams' builds hold part of the account's quota.
    let codebuild = aws_sdk_codebuild::Client::new(&gild_tests::aws::sdk_config(
        &pipeline.codebuild.endpoint(),
    ));
    for _ in 0..OTHERS_RUNNING {
        loop {
            match codebuild
                .start_build()
                .project_name(pipeline.test_project())
                .send()
                .await
            {
                Ok(_) => break,
                // The throttle applies to the harness as well.
                Err(_) => tokio::time::sleep(Duration::from_millis(60)).await,
            }
        }
    }
    let others: Vec<String> = pipeline
        .codebuild
        .started()
        .into_iter()
        .map(|b| b.build_id)
        .collect();
    let before = pipeline.codebuild.limit_counts();
    let spawn = |function: &'static str| {
        let env = routes.function_env(&pipeline, function).map(|mut env| {
            env.push(("GILD_MAX_PARALLEL_BUILDS".into(), GILD_LIMIT.to_string()));
            env.push(("GILD_LEASE_SECS".into(), "330".into()));
            env
        });
        async move { spawn_release(args, function, &env?).await }
    };
    let trigger = spawn("trigger")
        .await?
        .with_timeout(Duration::from_secs(300));
    let bake_finished = spawn("bake-finished").await?;

    let calls_before = routes.injected().calls;
    let clock = Instant::now();
    let invocation = trigger
        .invoke(&pipeline.schedule_event("2026-11-11T03:00:00Z")?)
        .await?;
    let elapsed = clock.elapsed();
    let outcome = invocation.outcome.map_err(|e| {
        bench_error(format!(
            "patch day failed: {}: {}",
            e.error_type, e.error_message
        ))
    })?;
    let count = |key: &str| outcome[key].as_array().map(Vec::len).unwrap_or(0);
    let (started, queued) = (count("started"), count("queued"));
    let calls = routes.injected().calls;
    let delta = |service: &str| {
        calls.get(service).copied().unwrap_or(0) - calls_before.get(service).copied().unwrap_or(0)
    };
    let after = pipeline.codebuild.limit_counts();
    let throttled = after.throttled - before.throttled;
    let over_quota = after.over_quota - before.over_quota;

    let ledger = pipeline.ledger().await?;
    let in_state = |state: &str| {
        ledger
            .iter()
            .filter(|r| r.get("state").map(String::as_str) == Some(state))
            .count()
    };
    let durable = in_state("baking") + in_state("queued");
    let dropped = args.families.saturating_sub(durable);
    let doubled = doubles(&pipeline.codebuild.started(), pipeline.bake_project());

    rows.push(
        Row::new(
            "patch",
            format!("{} families: all started or queued (s)", args.families),
            format!("{:.2}", elapsed.as_secs_f64()),
        )
        .goal("< 60 s", elapsed < Duration::from_secs(60)),
    );
    rows.push(Row::new(
        "patch",
        "started / queued",
        format!("{started} / {queued}"),
    ));
    rows.push(Row::new("patch", "families dropped", dropped.to_string()).goal("0", dropped == 0));
    rows.push(
        Row::new("patch", "builds started twice", doubled.to_string()).goal("0", doubled == 0),
    );
    let services: BTreeMap<String, u64> = calls
        .keys()
        .map(|s| (s.clone(), delta(s)))
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.push(Row::new(
        "patch",
        "API calls (incl. retries)",
        format!("{} {services:?}", services.values().sum::<u64>()),
    ));
    rows.push(Row::new(
        "patch",
        "throttles met / quota refusals",
        format!("{throttled} / {over_quota}"),
    ));
    rows.push(Row::new(
        "patch",
        "CodeBuild: latency, rate, quota, others running, gild limit",
        format!(
            "{} ms, {RATE_PER_SEC}/s, {ACCOUNT_QUOTA}, {OTHERS_RUNNING}, {GILD_LIMIT}",
            LATENCY.as_millis()
        ),
    ));

    // The queue drains as builds end: each bake fails (the cheapest end for
    // the stand-in), bake-finished records it, the build-ended event reaches
    // the trigger, which starts the next queued bake.
    let standin = BuildStandIn::new(&pipeline, "ami-unused");
    let clock = Instant::now();
    let mut ended = BTreeSet::new();
    ended.extend(others.iter().cloned());
    let mut events_delivered = 0usize;
    let mut failures = 0usize;
    loop {
        let running: Vec<StartedBuild> = pipeline
            .codebuild
            .started()
            .into_iter()
            .filter(|b| b.project_name == pipeline.bake_project() && !ended.contains(&b.build_id))
            .collect();
        if running.is_empty() {
            break;
        }
        for build in running {
            ended.insert(build.build_id.clone());
            pipeline.codebuild.finish(&build.build_id);
            let family = build
                .env_value("GILD_FAMILY")
                .unwrap_or_default()
                .to_owned();
            let event = standin.event(&build, "FAILED", &[("GILD_FAMILY", family)])?;
            for process in [&bake_finished, &trigger] {
                events_delivered += 1;
                if process.invoke(&event).await?.outcome.is_err() {
                    // EventBridge and Lambda would retry: so does the bench.
                    failures += 1;
                    process.invoke(&event).await?.outcome.map_err(|e| {
                        bench_error(format!("{}: {}", e.error_type, e.error_message))
                    })?;
                }
            }
        }
    }
    let drain = clock.elapsed();
    let ledger = pipeline.ledger().await?;
    let left = ledger
        .iter()
        .filter(|r| r.get("state").map(String::as_str) == Some("queued"))
        .count();
    let doubled_after = doubles(&pipeline.codebuild.started(), pipeline.bake_project());
    let peak = pipeline.codebuild.limit_counts().peak_running;
    rows.push(
        Row::new(
            "patch",
            "queue drained as builds ended (s)",
            format!("{:.1}", drain.as_secs_f64()),
        )
        .goal("every bake started once", left == 0 && doubled_after == 0),
    );
    rows.push(Row::new(
        "patch",
        "drain: events delivered, retried, peak builds running",
        format!("{events_delivered}, {failures}, {peak} (quota {ACCOUNT_QUOTA})"),
    ));
    results["patch"] = json!({
        "families": args.families,
        "seconds_to_all_started_or_queued": elapsed.as_secs_f64(),
        "started": started, "queued": queued, "dropped": dropped, "started_twice": doubled,
        "api_calls": services, "throttled": throttled, "quota_refusals": over_quota,
        "codebuild": {"latency_ms": LATENCY.as_millis() as u64, "rate_per_sec": RATE_PER_SEC,
                      "quota": ACCOUNT_QUOTA, "others_running": OTHERS_RUNNING, "gild_limit": GILD_LIMIT},
        "drain": {"seconds": drain.as_secs_f64(), "events": events_delivered, "retried": failures,
                  "left_queued": left, "started_twice": doubled_after, "peak_running": peak},
    });
    Ok(())
}

/// Bakes started more than once (same family and dedupe key).
fn doubles(started: &[StartedBuild], bake_project: &str) -> usize {
    let mut seen = BTreeSet::new();
    started
        .iter()
        .filter(|b| b.project_name == bake_project)
        .filter(|b| {
            let key = (
                b.env_value("GILD_FAMILY").map(str::to_owned),
                b.env_value("GILD_DEDUPE_KEY").map(str::to_owned),
            );
            !seen.insert(key)
        })
        .count()
}

// ------------------------------------------------------------------ hops

async fn hops(args: &Args, rows: &mut Vec<Row>, results: &mut Value) -> Result<(), HarnessError> {
    let pipeline = start(images_repo(1)?, Limits::default()).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    let spawn = |function: &'static str| {
        let env = routes.function_env(&pipeline, function);
        async move { spawn_release(args, function, &env?).await }
    };
    let trigger = spawn("trigger").await?;
    let bake_finished = spawn("bake-finished").await?;
    let test_finished = spawn("test-finished").await?;
    let base = register_base_image(&pipeline.aws, "base").await?;
    let standin = BuildStandIn::new(&pipeline, base);

    let names = [
        "schedule → bake started (trigger)",
        "bake succeeded → tagged, test started (bake-finished)",
        "bake succeeded → queue checked (trigger)",
        "test passed → promoted, announced (test-finished)",
        "test passed → queue checked (trigger)",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut calls: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
    // Flow 0 warms the processes; hops are measured warm (cold starts are
    // the cold part's business).
    for flow in 0..=args.flows {
        let event = pipeline.schedule_event(&format!(
            "{}-{:02}-15T03:00:00Z",
            2027 + flow / 12,
            flow % 12 + 1
        ))?;
        let mut record = |(i, t, n): (usize, f64, u64)| {
            if flow > 0 {
                times[i].push(t);
                calls[i].push(n);
            }
        };
        record(measure_hop(&routes, 0, &trigger, event).await?);
        let baked = standin.run_pending(&pipeline.codebuild.started()).await?;
        let bake_event = baked
            .first()
            .map(|c| c.event.clone())
            .ok_or_else(|| bench_error("no bake ran"))?;
        record(measure_hop(&routes, 1, &bake_finished, bake_event.clone()).await?);
        record(measure_hop(&routes, 2, &trigger, bake_event).await?);
        let tested = standin.run_pending(&pipeline.codebuild.started()).await?;
        let test_event = tested
            .first()
            .map(|c| c.event.clone())
            .ok_or_else(|| bench_error("no test ran"))?;
        record(measure_hop(&routes, 3, &test_finished, test_event.clone()).await?);
        record(measure_hop(&routes, 4, &trigger, test_event).await?);
    }
    let mut json_hops = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let t = median(times[i].clone());
        let n = median(calls[i].iter().map(|&n| n as f64).collect());
        rows.push(
            Row::new("hops", *name, format!("{t:.1} ms, {n:.0} AWS calls"))
                .goal("≤ 100 ms", t <= 100.0),
        );
        json_hops
            .push(json!({"hop": name, "median_ms": t, "aws_calls": n, "samples_ms": times[i]}));
    }
    results["hops"] = json!({"flows": args.flows, "hops": json_hops});
    Ok(())
}

/// One hop: the event in, the function's answer out, the AWS calls between.
async fn measure_hop(
    routes: &FaultyRoutes,
    i: usize,
    process: &LambdaProcess,
    event: Value,
) -> Result<(usize, f64, u64), HarnessError> {
    let before = routes.injected().total_calls();
    let invocation = process.invoke(&event).await?;
    let made = routes.injected().total_calls() - before;
    invocation.outcome.map_err(|e| {
        bench_error(format!(
            "hop {i} failed: {}: {}",
            e.error_type, e.error_message
        ))
    })?;
    Ok((i, ms(invocation.duration), made))
}

// ------------------------------------------------------------------ main

fn print(rows: &[Row]) {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["part", "metric", "gild", "baseline", "ratio", "goal", "met"]);
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        table.add_row([
            row.part,
            &row.metric,
            &row.value,
            &row.baseline,
            &row.ratio,
            &row.goal,
            met,
        ]);
    }
    println!("{table}");
}

async fn run(args: Args) -> Result<(), HarnessError> {
    let mut rows = Vec::new();
    let mut results = json!({"machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}});
    for part in &args.parts {
        let clock = Instant::now();
        eprintln!("bench: {part} …");
        match part.as_str() {
            "cold" => cold(&args, &mut rows, &mut results).await?,
            "size" => size(&args, &mut rows, &mut results)?,
            "patch" => patch_day(&args, &mut rows, &mut results).await?,
            "hops" => hops(&args, &mut rows, &mut results).await?,
            other => {
                return Err(bench_error(format!(
                    "unknown part `{other}` (cold, size, patch, hops)"
                )))
            }
        }
        eprintln!(
            "bench: {part} done in {:.0} s",
            clock.elapsed().as_secs_f64()
        );
    }
    print(&rows);
    results["goals_missed"] = rows
        .iter()
        .filter(|r| r.met == Some(false))
        .map(|r| format!("{}: {}", r.part, r.metric))
        .collect::<Vec<_>>()
        .into();
    let text = serde_json::to_string_pretty(&results).map_err(|source| HarnessError::Json {
        context: "writing the results".into(),
        source,
    })?;
    std::fs::write(&args.out, text + "\n").map_err(|source| HarnessError::Io {
        context: format!("writing {}", args.out.display()),
        source,
    })?;
    println!("results written to {}", args.out.display());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gild bench failed: {err}");
            ExitCode::FAILURE
        }
    }
}
