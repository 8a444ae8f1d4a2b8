//! `make bench`: gild's claims as numbers, each beside its goal
//! (`gild-bench` is the command; the parts live here).
//!
//! - cold: the trigger (schedule event) and bake-finished (bake succeeded)
//!   release binaries against their Python/boto3 peers (bench/python, run by
//!   `awslambdaric`), each started fresh through the same Runtime API
//!   harness, same event, same emulator: init (spawn → first `/next`), first
//!   invocation, init plus first invocation, peak RSS (`VmHWM`). Both must
//!   make the same AWS calls.
//! - size: each function's zipped bootstrap, from `make sam-build`.
//! - patch: one schedule event over a catalog of N families against a
//!   CodeBuild that answers slowly, throttles, and has a build quota; then
//!   the queue drains as builds end, most bakes promoted, some failing at
//!   bake or at test. A gate checks each family's fate: a violation fails
//!   the run.
//! - hops: a full success flow, time and AWS calls per hop.
//!
//! Everything runs on this machine against moto; figures are medians.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};

use crate::codebuild::Limits;
use crate::faults::FaultyRoutes;
use crate::git::TestRepo;
use crate::moto::MotoServer;
use crate::pipeline::{Options, Pipeline};
use crate::runtime_api::LambdaProcess;
use crate::HarnessError;

mod cold;
mod gate;
mod hops;
mod patch;

#[derive(Parser)]
#[command(about = "gild's benchmarks: cold start, memory, package size, patch day, per-hop cost")]
pub struct Args {
    /// Cold starts per function and runtime (medians are reported).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Families in the patch-day catalog.
    #[arg(long, default_value_t = 500)]
    pub families: usize,
    /// Full success flows timed for the per-hop figures.
    #[arg(long, default_value_t = 10)]
    pub flows: usize,
    /// Where `cargo lambda build --release` left <function>/bootstrap.
    #[arg(long, default_value = "target/lambda")]
    pub bootstraps: PathBuf,
    /// The Python of the peer's virtualenv (boto3 + awslambdaric).
    #[arg(long, default_value = ".venv/bench/bin/python")]
    pub python: PathBuf,
    /// Zipped sizes written by `make sam-build`.
    #[arg(long, default_value = "target/sam-sizes.txt")]
    pub sizes: PathBuf,
    #[arg(long, default_value = "bench/results.json")]
    pub out: PathBuf,
    /// Parts to run.
    #[arg(long, value_delimiter = ',', default_value = "cold,size,patch,hops")]
    pub parts: Vec<String>,
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

/// What the parts found: the rows of the main table, tables of their own
/// (printed first), the JSON written to `--out`, and the gate's violations.
struct Report {
    rows: Vec<Row>,
    tables: Vec<(&'static str, Table)>,
    results: Value,
    /// Goals missed by figures of the parts' own tables (the main table's
    /// are read from its rows).
    missed: Vec<String>,
    /// A broken claim, not a slow figure: any of these fails the run.
    violations: Vec<String>,
}

/// How a run ended when it measured everything it was asked to.
pub enum Verdict {
    /// Every gate check held.
    Passed,
    /// The figures were written, but these checks failed.
    Violated(Vec<String>),
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

/// The nearest-rank `p`th percentile (0 < p ≤ 100).
fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

/// The name of the `i`th family of a bench catalog.
fn family_name(i: usize) -> String {
    format!("fam-{i:03}")
}

/// A catalog of `n` Linux families.
fn catalog(n: usize) -> String {
    (0..n)
        .map(|i| {
            let name = family_name(i);
            format!("[families.{name}]\npath = \"images/{name}\"\nos = \"linux\"\n")
        })
        .collect()
}

fn images_repo(families: usize) -> Result<TestRepo, HarnessError> {
    Ok(TestRepo::images(&catalog(families), &[], &[])?.0)
}

/// A pipeline on the deployed stack, without the IAM gate: the bench
/// measures gild and its peer, not the gate's Python in between.
async fn start(repo: TestRepo, limits: Limits) -> Result<Pipeline, HarnessError> {
    let options = Options {
        limits,
        gate: false,
        ..Options::default()
    };
    Pipeline::start_with(MotoServer::start().await?, repo, options).await
}

/// A function's release bootstrap, as `make sam-build` left it.
async fn spawn_release(
    args: &Args,
    function: &str,
    env: &[(String, String)],
) -> Result<LambdaProcess, HarnessError> {
    let binary = args.bootstraps.join(function).join("bootstrap");
    LambdaProcess::spawn(&binary, &format!("gild-{function}"), env).await
}

/// The release bootstrap of `function` behind `routes`, with `extra`
/// appended to (and so overriding) its environment.
async fn spawn_routed(
    args: &Args,
    pipeline: &Pipeline,
    routes: &FaultyRoutes,
    function: &str,
    extra: &[(&str, String)],
) -> Result<LambdaProcess, HarnessError> {
    let mut env = routes.function_env(pipeline, function)?;
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    spawn_release(args, function, &env).await
}

// ------------------------------------------------------------------ size

fn size(args: &Args, report: &mut Report) -> Result<(), HarnessError> {
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
        report.rows.push(
            Row::new(
                "size",
                format!("{function} zipped bootstrap (MB)"),
                format!("{mb:.2}"),
            )
            .goal("≤ 5 MB", mb <= 5.0),
        );
        report.results["size"][*function] = json!({"zipped_kb": kb});
    }
    Ok(())
}

// ------------------------------------------------------------------ run

fn print(report: &Report) {
    for (title, table) in &report.tables {
        println!("{title}\n{table}");
    }
    let mut main = table(&["part", "metric", "gild", "baseline", "ratio", "goal", "met"]);
    for row in &report.rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        main.add_row([
            row.part,
            &row.metric,
            &row.value,
            &row.baseline,
            &row.ratio,
            &row.goal,
            met,
        ]);
    }
    println!("{main}");
}

/// Runs the parts `args` names, prints the tables and writes `args.out`,
/// violations included, so a failed gate leaves its evidence behind.
pub async fn run(args: Args) -> Result<Verdict, HarnessError> {
    let clock = Instant::now();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut report = Report {
        rows: Vec::new(),
        tables: Vec::new(),
        results: json!({"machine": {"cores": cores}}),
        missed: Vec::new(),
        violations: Vec::new(),
    };
    for part in &args.parts {
        let clock = Instant::now();
        eprintln!("bench: {part} …");
        match part.as_str() {
            "cold" => cold::cold(&args, &mut report).await?,
            "size" => size(&args, &mut report)?,
            "patch" => patch::patch_day(&args, &mut report).await?,
            "hops" => hops::hops(&args, &mut report).await?,
            other => {
                return Err(bench_error(format!(
                    "unknown part `{other}` (cold, size, patch, hops)"
                )))
            }
        }
        let secs = clock.elapsed().as_secs_f64();
        eprintln!("bench: {part} done in {secs:.0} s");
        report.results["part_seconds"][part.as_str()] = json!(secs);
    }
    print(&report);
    let results = &mut report.results;
    results["parts"] = json!(args.parts);
    results["wall_seconds"] = json!(clock.elapsed().as_secs_f64());
    results["goals_missed"] = report
        .rows
        .iter()
        .filter(|r| r.met == Some(false))
        .map(|r| format!("{}: {}", r.part, r.metric))
        .chain(report.missed.iter().cloned())
        .collect::<Vec<_>>()
        .into();
    results["gate_violations"] = json!(report.violations);
    let text = serde_json::to_string_pretty(results).map_err(|source| HarnessError::Json {
        context: "writing the results".into(),
        source,
    })?;
    std::fs::write(&args.out, text + "\n").map_err(|source| HarnessError::Io {
        context: format!("writing {}", args.out.display()),
        source,
    })?;
    println!("results written to {}", args.out.display());
    Ok(if report.violations.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Violated(report.violations)
    })
}
