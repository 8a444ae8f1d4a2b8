//! Per hop of a full success flow, warm: time and AWS calls.

use serde_json::{json, Value};

use super::{bench_error, images_repo, median, ms, spawn_routed, start, Args, Report, Row};
use crate::codebuild::Limits;
use crate::faults::{FaultConfig, FaultyRoutes};
use crate::runtime_api::LambdaProcess;
use crate::standin::{register_base_image, BuildStandIn, Builds};
use crate::HarnessError;

pub(super) async fn hops(args: &Args, report: &mut Report) -> Result<(), HarnessError> {
    let pipeline = start(images_repo(1)?, Limits::default()).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    let spawn = |function| spawn_routed(args, &pipeline, &routes, function, &[]);
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
        report.rows.push(
            Row::new("hops", *name, format!("{t:.1} ms, {n:.0} AWS calls"))
                .goal("≤ 100 ms", t <= 100.0),
        );
        json_hops
            .push(json!({"hop": name, "median_ms": t, "aws_calls": n, "samples_ms": times[i]}));
    }
    report.results["hops"] = json!({"flows": args.flows, "hops": json_hops});
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
