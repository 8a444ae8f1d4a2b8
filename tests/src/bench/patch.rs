//! Patch day: one schedule event over a catalog of N families against a
//! CodeBuild under load, then the queue drained as builds end, and a gate
//! that checks every family's fate, not only the counts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use super::gate::{check_after_drain, check_after_trigger, fates, AfterDrain, Fate};
use super::{
    bench_error, images_repo, median, ms, percentile, spawn_routed, start, Args, Report, Row,
};
use crate::codebuild::{Limits, StartedBuild};
use crate::faults::{FaultConfig, FaultyRoutes};
use crate::pipeline::Pipeline;
use crate::runtime_api::LambdaProcess;
use crate::standin::{register_base_image, BuildStandIn, Builds, Completed};
use crate::HarnessError;

/// CodeBuild as patch day meets it.
const LATENCY: Duration = Duration::from_millis(50);
const RATE_PER_SEC: f64 = 20.0;
const ACCOUNT_QUOTA: usize = 100;
/// Builds of other teams already running when the schedule fires.
const OTHERS_RUNNING: usize = 30;
/// gild's own limit, set above what the account has left so that
/// CodeBuild's AccountLimitExceededException is met too.
const GILD_LIMIT: usize = 90;
/// Deliveries of one event to one function before it counts as lost:
/// Lambda's asynchronous invocation tries an event three times.
const ATTEMPTS: usize = 3;

/// What the drain timed: one event handed to one function.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Hop {
    BakeEndedFinisher,
    BakeEndedTrigger,
    TestEndedFinisher,
    TestEndedTrigger,
}

impl Hop {
    fn name(self) -> &'static str {
        match self {
            Hop::BakeEndedFinisher => "bake ended → bake-finished",
            Hop::BakeEndedTrigger => "bake ended → trigger (queue)",
            Hop::TestEndedFinisher => "test ended → test-finished",
            Hop::TestEndedTrigger => "test ended → trigger (queue)",
        }
    }
}

#[derive(Default)]
struct Timings {
    ms: Vec<f64>,
    calls: Vec<f64>,
}

/// The bench's patch day: see the module's head.
pub(super) async fn patch_day(args: &Args, report: &mut Report) -> Result<(), HarnessError> {
    let limits = Limits {
        latency: LATENCY,
        rate_per_sec: Some(RATE_PER_SEC),
        max_running: Some(ACCOUNT_QUOTA),
    };
    let fates = fates(args.families);
    let pipeline = start(images_repo(args.families)?, limits).await?;
    let routes = FaultyRoutes::start(&pipeline, &FaultConfig::none()).await?;
    // Other teams' builds hold part of the account's quota.
    let codebuild =
        aws_sdk_codebuild::Client::new(&crate::aws::sdk_config(&pipeline.codebuild.endpoint()));
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
    let others: BTreeSet<String> = pipeline
        .codebuild
        .started()
        .into_iter()
        .map(|b| b.build_id)
        .collect();
    let before = pipeline.codebuild.limit_counts();
    let extra = [
        ("GILD_MAX_PARALLEL_BUILDS", GILD_LIMIT.to_string()),
        ("GILD_LEASE_SECS", "330".to_owned()),
    ];
    let spawn = |function| spawn_routed(args, &pipeline, &routes, function, &extra);
    let trigger = spawn("trigger")
        .await?
        .with_timeout(Duration::from_secs(300));
    let bake_finished = spawn("bake-finished").await?;
    let test_finished = spawn("test-finished").await?;

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

    // The gate, first half: each family's claim, not a count of claims.
    let (trigger_violations, running, waiting) = check_after_trigger(
        &fates,
        &pipeline.codebuild.started(),
        pipeline.bake_project(),
        &pipeline.ledger().await?,
    );
    let rows = &mut report.rows;
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
        "started / queued (trigger's answer)",
        format!("{started} / {queued}"),
    ));
    rows.push(
        Row::new(
            "patch",
            "gate: each family one bake started (baking) or queued",
            format!(
                "{} of {} ({running} started, {waiting} queued)",
                running + waiting,
                args.families
            ),
        )
        .goal("all, no violation", trigger_violations.is_empty()),
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

    // The queue drains as builds end, on every path: a bake that succeeds
    // hands its slot to its test build (bake-finished starts it), a test
    // that passes is promoted, a bake or test that fails is cleaned up;
    // each end reaches its finisher, then the trigger, which starts the
    // next queued bake in the freed slot.
    let base = register_base_image(&pipeline.aws, "base").await?;
    let standin =
        fates.iter().fold(
            BuildStandIn::new(&pipeline, base),
            |s, (family, fate)| match fate {
                Fate::Promoted => s,
                Fate::FailsAtBake => s.fail_bake(family),
                Fate::FailsAtTest => s.fail_test(family),
            },
        );
    let finishers = Finishers {
        routes: &routes,
        trigger: &trigger,
        bake_finished: &bake_finished,
        test_finished: &test_finished,
    };
    let mut drain = Drain::default();
    let clock = Instant::now();
    let mut ended: BTreeSet<String> = others.clone();
    // More builds than each family's bake and test means something started
    // again and again: stop rather than loop, and let the gate say who.
    let ceiling = 2 * args.families + 10;
    loop {
        let running: Vec<StartedBuild> = pipeline
            .codebuild
            .started()
            .into_iter()
            .filter(|b| !ended.contains(&b.build_id))
            .collect();
        if running.is_empty() {
            break;
        }
        if ended.len() - others.len() > ceiling {
            drain.lost.push(format!(
                "the drain ran {} builds for {} families and did not end",
                ended.len() - others.len(),
                args.families
            ));
            break;
        }
        for build in running {
            ended.insert(build.build_id.clone());
            let done = standin
                .run_pending(std::slice::from_ref(&build))
                .await?
                .pop()
                .ok_or_else(|| bench_error(format!("the stand-in skipped {}", build.build_id)))?;
            // BatchGetBuilds tells the end from now on; the slot is free.
            pipeline.codebuild.ended(&done.event);
            pipeline.codebuild.finish(&build.build_id);
            let fate = fates.get(&done.family).copied().unwrap_or(Fate::Promoted);
            finishers
                .deliver(&pipeline, &done, fate, &mut drain)
                .await?;
        }
    }
    let drain_time = clock.elapsed();
    let peak = pipeline.codebuild.limit_counts().peak_running;

    // The gate, second half: each family's end, as the world holds it.
    let started_builds = pipeline.codebuild.started();
    let ledger = pipeline.ledger().await?;
    let mut parameters = BTreeMap::new();
    for family in fates.keys() {
        parameters.insert(family.clone(), pipeline.parameter_history(family).await?);
    }
    let mut announced: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for message in pipeline.announcements().await? {
        let text = |key: &str| message.body[key].as_str().unwrap_or("").to_owned();
        announced
            .entry(text("family"))
            .or_default()
            .push((text("outcome"), text("stage")));
    }
    let mut drain_violations = check_after_drain(
        &fates,
        &AfterDrain {
            started: &started_builds,
            bake_project: pipeline.bake_project(),
            test_project: pipeline.test_project(),
            ledger: &ledger,
            baked: &drain.baked,
            parameters: &parameters,
            announced: &announced,
        },
    );
    drain_violations.extend(drain.lost.iter().cloned());
    if peak > ACCOUNT_QUOTA {
        drain_violations.push(format!(
            "{peak} builds ran at once, over the quota of {ACCOUNT_QUOTA}"
        ));
    }

    let rows = &mut report.rows;
    let per_fate: BTreeMap<Fate, usize> = fates.values().fold(BTreeMap::new(), |mut m, f| {
        *m.entry(*f).or_insert(0) += 1;
        m
    });
    let promoted_once = fates
        .iter()
        .filter(|(family, fate)| {
            **fate == Fate::Promoted && parameters.get(*family).is_some_and(|v| v.len() == 1)
        })
        .count();
    rows.push(Row::new(
        "patch",
        "queue drained as builds ended (s)",
        format!("{:.1}", drain_time.as_secs_f64()),
    ));
    rows.push(
        Row::new(
            "patch",
            "gate: each family ended as its fate says, nothing left non-terminal",
            format!(
                "{} promoted ({promoted_once} SSM parameters set once), {} failed at bake, {} at test",
                per_fate.get(&Fate::Promoted).unwrap_or(&0),
                per_fate.get(&Fate::FailsAtBake).unwrap_or(&0),
                per_fate.get(&Fate::FailsAtTest).unwrap_or(&0),
            ),
        )
        .goal("all, no violation", drain_violations.is_empty()),
    );
    rows.push(Row::new(
        "patch",
        "drain: events delivered, retried, peak builds running",
        format!(
            "{}, {}, {peak} (quota {ACCOUNT_QUOTA})",
            drain.delivered, drain.retried
        ),
    ));
    let mut paths = Vec::new();
    // Keyed by (fate, hop): one path's hops together, in the flow's order.
    for ((fate, hop), timings) in &drain.timings {
        let (p50, p95) = (
            median(timings.ms.clone()),
            percentile(timings.ms.clone(), 95.0),
        );
        let calls = median(timings.calls.clone());
        rows.push(Row::new(
            "patch",
            format!("drain, {} path: {}", fate.name(), hop.name()),
            format!("{p50:.1} ms (p95 {p95:.1}), {calls:.0} AWS calls"),
        ));
        paths.push(json!({
            "path": fate.name(), "hop": hop.name(), "events": timings.ms.len(),
            "median_ms": p50, "p95_ms": p95, "median_aws_calls": calls,
        }));
    }
    let violations: Vec<String> = trigger_violations
        .iter()
        .map(|v| format!("patch, after the trigger: {v}"))
        .chain(
            drain_violations
                .iter()
                .map(|v| format!("patch, after the drain: {v}")),
        )
        .collect();
    report.results["patch"] = json!({
        "families": args.families,
        "seconds_to_all_started_or_queued": elapsed.as_secs_f64(),
        "started": started, "queued": queued,
        "api_calls": services, "throttled": throttled, "quota_refusals": over_quota,
        "codebuild": {"latency_ms": LATENCY.as_millis() as u64, "rate_per_sec": RATE_PER_SEC,
                      "quota": ACCOUNT_QUOTA, "others_running": OTHERS_RUNNING, "gild_limit": GILD_LIMIT},
        "gate_after_trigger": {"started_baking": running, "queued": waiting,
                               "violations": trigger_violations},
        "drain": {
            "seconds": drain_time.as_secs_f64(), "events": drain.delivered,
            "retried": drain.retried, "peak_running": peak,
            "fates": per_fate.iter().map(|(f, n)| (f.name(), *n)).collect::<BTreeMap<_, _>>(),
            "fate_rule": "family i: i % 10 == 3 fails at bake, i % 10 == 7 fails at test, else promoted",
            "promoted_parameters_set_once": promoted_once,
            "paths": paths,
            "violations": drain_violations,
        },
    });
    report.violations.extend(violations);
    Ok(())
}

/// The functions that handle a build's end, behind the counting proxies.
struct Finishers<'a> {
    routes: &'a FaultyRoutes,
    trigger: &'a LambdaProcess,
    bake_finished: &'a LambdaProcess,
    test_finished: &'a LambdaProcess,
}

/// What the drain saw.
#[derive(Default)]
struct Drain {
    delivered: usize,
    retried: usize,
    timings: BTreeMap<(Fate, Hop), Timings>,
    /// The image each family's bake made.
    baked: BTreeMap<String, String>,
    /// Events a function failed on every attempt.
    lost: Vec<String>,
}

impl Finishers<'_> {
    /// Hands a build's end to its finisher, then to the trigger, as the
    /// stack's rules do, timing each delivery by the family's path.
    async fn deliver(
        &self,
        pipeline: &Pipeline,
        done: &Completed,
        fate: Fate,
        drain: &mut Drain,
    ) -> Result<(), HarnessError> {
        let bake = done.project == pipeline.bake_project();
        if bake {
            if let Some(image) = &done.image {
                drain.baked.insert(done.family.clone(), image.clone());
            }
        }
        let hops = if bake {
            [
                (Hop::BakeEndedFinisher, self.bake_finished),
                (Hop::BakeEndedTrigger, self.trigger),
            ]
        } else {
            [
                (Hop::TestEndedFinisher, self.test_finished),
                (Hop::TestEndedTrigger, self.trigger),
            ]
        };
        for (hop, process) in hops {
            let mut attempt = 0;
            loop {
                attempt += 1;
                drain.delivered += 1;
                let before = self.routes.injected().total_calls();
                let invocation = process.invoke(&done.event).await?;
                let made = self.routes.injected().total_calls() - before;
                match invocation.outcome {
                    Ok(_) => {
                        // The first attempt's figures only: a retry is
                        // counted, not averaged into the path's time.
                        if attempt == 1 {
                            let timings = drain.timings.entry((fate, hop)).or_default();
                            timings.ms.push(ms(invocation.duration));
                            timings.calls.push(made as f64);
                        }
                        break;
                    }
                    // Lambda would try the event again: so does the bench.
                    Err(_) if attempt < ATTEMPTS => drain.retried += 1,
                    Err(e) => {
                        drain.lost.push(format!(
                            "{}: {} failed {ATTEMPTS} times: {}: {}",
                            done.family,
                            hop.name(),
                            e.error_type,
                            e.error_message
                        ));
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
