//! The whole pipeline offline: trigger, bake-finished and test-finished as
//! real processes behind the Runtime API, moto for AWS, the build stand-in
//! for what CodeBuild runs. Every completion is delivered twice in shuffled
//! order; the end state is counted exactly.

use std::collections::BTreeMap;

use gild_tests::events;
use gild_tests::git::TestRepo;
use gild_tests::pipeline::Pipeline;
use gild_tests::scenario::{Delivery, Functions};
use gild_tests::standin::{register_base_image, BuildStandIn, Completed};
use serde_json::Value;

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline"]

[families.al2023-base]
path = "images/al2023-base"
os = "linux"
roles = ["baseline"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
"#;

fn repo() -> (TestRepo, String) {
    TestRepo::images(
        CATALOG,
        &["debian12-base", "al2023-base", "win2022-core"],
        &[],
    )
    .expect("images repository")
}

/// Every delivery of every completion was handled without error.
fn assert_handled(settled: &[(Completed, Vec<Delivery>)]) {
    for (completed, deliveries) in settled {
        for d in deliveries {
            assert!(
                d.invocation.outcome.is_ok(),
                "{} {} {}: {:?}",
                d.function,
                completed.family,
                completed.status,
                d.invocation.outcome
            );
        }
    }
}

fn builds_of(pipeline: &Pipeline, project: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for build in pipeline.codebuild.started() {
        if build.project_name == project {
            *counts
                .entry(
                    build
                        .env_value("GILD_FAMILY")
                        .unwrap_or_default()
                        .to_owned(),
                )
                .or_insert(0) += 1;
        }
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn schedule_success_bake_failure_and_test_failure_end_exactly_as_expected() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "debian-13-amd64-base")
        .await
        .expect("base image");
    let standin = BuildStandIn::new(&pipeline, &base)
        .fail_bake("al2023-base")
        .fail_test("win2022-core");

    let schedule = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    for _ in 0..2 {
        let delivery = functions.deliver(&schedule).await.expect("deliver");
        assert!(
            delivery.invocation.outcome.is_ok(),
            "{:?}",
            delivery.invocation.outcome
        );
    }
    let settled = functions
        .settle(&pipeline, &standin, 2, 7)
        .await
        .expect("settle");
    assert_handled(&settled);

    // Builds: one bake per family; tests only for the two that baked.
    assert_eq!(
        builds_of(&pipeline, pipeline.bake_project()),
        counts(&[
            ("al2023-base", 1),
            ("debian12-base", 1),
            ("win2022-core", 1)
        ])
    );
    assert_eq!(
        builds_of(&pipeline, pipeline.test_project()),
        counts(&[("debian12-base", 1), ("win2022-core", 1)])
    );
    for build in pipeline.codebuild.started() {
        assert_eq!(build.source_version.as_deref(), Some(first.as_str()));
    }

    // Parameters: only the tested image is promoted, once.
    let debian_image = settled
        .iter()
        .find(|(c, _)| c.family == "debian12-base" && c.project == pipeline.bake_project())
        .and_then(|(c, _)| c.image.clone())
        .expect("debian baked");
    assert_eq!(
        pipeline
            .parameter_history("debian12-base")
            .await
            .expect("ssm"),
        vec![debian_image.clone()]
    );
    assert!(pipeline
        .parameter_history("win2022-core")
        .await
        .expect("ssm")
        .is_empty());
    assert!(pipeline
        .parameter_history("al2023-base")
        .await
        .expect("ssm")
        .is_empty());

    // Images: the promoted one remains with its provenance; the failed ones
    // are gone with their snapshots.
    let images = pipeline.gild_images().await.expect("images");
    assert_eq!(
        images.keys().cloned().collect::<Vec<_>>(),
        vec![debian_image.clone()]
    );
    let tags = &images[&debian_image];
    for (key, value) in [
        ("gild:state", "promoted"),
        ("gild:family", "debian12-base"),
        ("gild:trigger", "schedule"),
        ("gild:source-commit", first.as_str()),
        ("gild:base-ami", base.as_str()),
        ("gild:managed", "true"),
    ] {
        assert_eq!(
            tags.get(key).map(String::as_str),
            Some(value),
            "{key}: {tags:?}"
        );
    }
    for key in ["gild:build-id", "gild:build-log", "gild:created-at"] {
        assert!(
            tags.get(key).is_some_and(|v| !v.is_empty()),
            "{key}: {tags:?}"
        );
    }
    let snapshots = pipeline.gild_snapshots().await.expect("snapshots");
    assert_eq!(
        snapshots.len(),
        1,
        "only the promoted image's snapshot is left: {snapshots:?}"
    );
    let snapshot_tags = snapshots.values().next().expect("one");
    assert_eq!(
        snapshot_tags.get("gild:family").map(String::as_str),
        Some("debian12-base")
    );
    assert_eq!(
        snapshot_tags.get("gild:trigger").map(String::as_str),
        Some("schedule")
    );

    // Announcements: exactly one per bake, with the right outcome.
    let received = pipeline.announcements().await.expect("sqs");
    let mut subjects: Vec<String> = received.iter().map(|r| r.subject.clone()).collect();
    subjects.sort();
    let win_image = settled
        .iter()
        .find(|(c, _)| c.family == "win2022-core" && c.project == pipeline.bake_project())
        .and_then(|(c, _)| c.image.clone())
        .expect("win baked");
    assert_eq!(
        subjects,
        vec![
            "gild: al2023-base FAILED at bake".to_owned(),
            format!("gild: debian12-base {debian_image} ready"),
            format!("gild: win2022-core {win_image} FAILED at test"),
        ]
    );
    for r in &received {
        assert_eq!(r.body["schema"], "gild.announcement/1");
        assert_eq!(
            r.attributes.get("family"),
            r.body["family"].as_str().map(str::to_owned).as_ref()
        );
        assert_eq!(
            r.attributes.get("outcome"),
            r.body["outcome"].as_str().map(str::to_owned).as_ref()
        );
    }

    // The ledger tells the same story.
    let ledger = pipeline.ledger().await.expect("ledger");
    let states: Vec<(String, String, String)> = ledger
        .iter()
        .map(|r| {
            (
                r["family"].clone(),
                r["state"].clone(),
                r.get("failed_stage").cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("al2023-base".into(), "failed".into(), "bake".into()),
            ("debian12-base".into(), "promoted".into(), String::new()),
            ("win2022-core".into(), "failed".into(), "test".into()),
        ]
    );

    // Late duplicates of every completion change nothing.
    for (completed, _) in &settled {
        let late = functions.deliver(&completed.event).await.expect("deliver");
        let report = late.invocation.outcome.expect("noop succeeds");
        assert_eq!(report["reached"], Value::Array(vec![]), "{report}");
    }
    assert!(pipeline.announcements().await.expect("sqs").is_empty());
    assert_eq!(
        pipeline
            .parameter_history("debian12-base")
            .await
            .expect("ssm")
            .len(),
        1
    );
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn push_promotes_a_second_version_and_ignores_a_test_result_that_comes_first() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "al2023-base-image")
        .await
        .expect("base");
    let standin = BuildStandIn::new(&pipeline, &base);

    // A manual bake of debian12-base, all the way.
    functions
        .deliver(&events::manual("req-1", Some("debian12-base")).expect("event"))
        .await
        .expect("deliver");
    functions
        .settle(&pipeline, &standin, 1, 1)
        .await
        .expect("settle");
    let v1 = pipeline
        .parameter_history("debian12-base")
        .await
        .expect("ssm");
    assert_eq!(v1.len(), 1);

    // A push touching only debian12-base.
    pipeline
        .repo
        .write(
            "images/debian12-base/debian12-base.pkr.hcl",
            "# packer v2\n",
        )
        .expect("write");
    let second = pipeline
        .repo
        .commit("debian: new hardening")
        .expect("commit");
    let push = pipeline
        .push_event("main", Some(&first), &second)
        .expect("event");
    let trigger = functions.deliver(&push).await.expect("deliver");
    let outcome = trigger.invocation.outcome.expect("push planned");
    assert_eq!(
        outcome["started"].as_array().map(Vec::len),
        Some(1),
        "{outcome}"
    );

    // A test result arrives before the bake's: it is not the bake's test build.
    let mut early = events::sample("codebuild-test-succeeded.json").expect("sample");
    let vars = early["detail"]["additional-information"]["environment"]["environment-variables"]
        .as_array_mut()
        .expect("vars");
    for var in vars.iter_mut() {
        match var["name"].as_str() {
            Some("GILD_FAMILY") => var["value"] = "debian12-base".into(),
            Some("GILD_DEDUPE_KEY") => var["value"] = format!("push:{second}").into(),
            _ => {}
        }
    }
    let early_report = functions.deliver(&early).await.expect("deliver");
    let early_report = early_report.invocation.outcome.expect("noop");
    assert_eq!(early_report["reached"], Value::Array(vec![]));
    assert!(
        early_report["noop"]
            .as_str()
            .is_some_and(|r| r.contains("not the bake's test build")),
        "{early_report}"
    );

    functions
        .settle(&pipeline, &standin, 3, 2)
        .await
        .expect("settle");
    let history = pipeline
        .parameter_history("debian12-base")
        .await
        .expect("ssm");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0], v1[0]);
    assert_ne!(history[1], history[0]);
    let received = pipeline.announcements().await.expect("sqs");
    assert_eq!(
        received.len(),
        2,
        "{:?}",
        received.iter().map(|r| &r.subject).collect::<Vec<_>>()
    );
    assert_eq!(received[1].body["trigger"], "push");
    assert_eq!(received[1].body["commit"], second.as_str());
    assert_eq!(received[1].body["parameter_version"], 2);
    // Both images stay: the previous one is the rollback target.
    assert_eq!(pipeline.gild_images().await.expect("images").len(), 2);
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

/// CodeBuild room for one gild build at a time: the schedule starts one
/// bake and queues two; each build's end (delivered twice, to its function
/// and to the trigger, as the stack's rules do) lets the next one start.
#[tokio::test]
async fn queued_bakes_start_one_at_a_time_as_builds_end() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, _) = repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let limit = [("GILD_MAX_PARALLEL_BUILDS".to_owned(), "1".to_owned())];
    let spawn = |function: &'static str| {
        let (pipeline, limit) = (&pipeline, &limit);
        async move { pipeline.spawn_with(function, limit).await.expect("spawn") }
    };
    let functions = Functions {
        trigger: spawn("trigger").await,
        bake_finished: spawn("bake-finished").await,
        test_finished: spawn("test-finished").await,
        reconcile: spawn("reconcile").await,
        router: std::sync::Arc::clone(&pipeline.router),
    };
    let base = register_base_image(&pipeline.aws, "base")
        .await
        .expect("base image");
    let standin = BuildStandIn::new(&pipeline, &base);
    let outcome = functions
        .deliver(
            &pipeline
                .schedule_event("2026-11-11T03:00:00Z")
                .expect("event"),
        )
        .await
        .expect("deliver")
        .invocation
        .outcome
        .expect("schedule handled");
    assert_eq!(outcome["started"].as_array().map(Vec::len), Some(1));
    assert_eq!(outcome["queued"].as_array().map(Vec::len), Some(2));
    let states: Vec<String> = pipeline
        .ledger()
        .await
        .expect("ledger")
        .iter()
        .filter_map(|r| r.get("state").cloned())
        .collect();
    assert_eq!(states.iter().filter(|s| *s == "queued").count(), 2);

    let settled = functions
        .settle(&pipeline, &standin, 2, 3)
        .await
        .expect("settle");
    assert_handled(&settled);
    let all_once = counts(&[
        ("al2023-base", 1),
        ("debian12-base", 1),
        ("win2022-core", 1),
    ]);
    assert_eq!(builds_of(&pipeline, pipeline.bake_project()), all_once);
    assert_eq!(builds_of(&pipeline, pipeline.test_project()), all_once);
    // Never two of gild's builds at once: each started after the one before ended.
    let started = pipeline.codebuild.started();
    for pair in started.windows(2) {
        let first = pair[0].env_value("GILD_FAMILY");
        let second = pair[1].env_value("GILD_FAMILY");
        if pair[0].project_name == pipeline.bake_project() {
            assert_eq!(
                pair[1].project_name,
                pipeline.test_project(),
                "{first:?} then {second:?}"
            );
            assert_eq!(first, second);
        }
    }
    let ledger = pipeline.ledger().await.expect("ledger");
    assert!(
        ledger
            .iter()
            .all(|r| r.get("state").map(String::as_str) == Some("promoted")),
        "{ledger:?}"
    );
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

/// Lambda's Invoke takes any bytes. A payload that is not JSON gets the
/// stable `gild.event.NotJson` from every function, not the runtime's
/// `&lambda_runtime::deserializer::DeserializeError` (issue 11, defect 16),
/// and the process goes on to handle the next event.
#[tokio::test]
async fn a_payload_that_is_not_json_has_a_stable_error_type() {
    let (repo, _) = repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    for function in ["trigger", "bake-finished", "test-finished"] {
        let process = pipeline.spawn(function).await.expect("spawn");
        for body in [&b"not json"[..], b"{\"truncated\": ", b"\xff\xfe"] {
            let invocation = process
                .invoke_raw(bytes::Bytes::copy_from_slice(body))
                .await
                .expect("answered");
            let error = invocation.outcome.expect_err("refused");
            assert_eq!(
                error.error_type, "gild.event.NotJson",
                "{function}: {error}"
            );
            assert!(error.error_message.contains("not JSON"), "{error}");
        }
        let still_serving = process
            .invoke(&serde_json::json!({"source": "nobody", "detail-type": "x"}))
            .await
            .expect("answered");
        if let Err(error) = still_serving.outcome {
            assert!(error.error_type.starts_with("gild."), "{function}: {error}");
        }
    }
}
