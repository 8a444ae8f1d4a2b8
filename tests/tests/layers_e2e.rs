//! Layered families end to end: the real trigger, completion functions and
//! reconciler behind the Runtime API and the IAM gate, routed by the
//! stack's rules. A schedule bakes the parent and the child waits; the
//! parent's promotion (delivered three times) queues the child once, and it
//! bakes from the parent's new image; a parent that fails its test fails
//! the waiting child and keeps the child's promoted image; a push to the
//! child alone bakes it from its parent's promoted image.

use std::collections::BTreeMap;

use gild_tests::git::TestRepo;
use gild_tests::pipeline::Pipeline;
use gild_tests::scenario::Functions;
use gild_tests::standin::{register_base_image, BuildStandIn};
use serde_json::Value;

const PARENT: &str = "win2022-core-dotnet";
const CHILD: &str = "win2022-iis";
const CATALOG: &str = r#"
[families.win2022-core-dotnet]
path = "images/win2022-core-dotnet"
os = "windows"

[families.win2022-iis]
path = "images/win2022-iis"
parent = "win2022-core-dotnet"
os = "windows"
"#;

async fn world() -> Option<(Pipeline, Functions, String)> {
    if gild_tests::moto::skip_requested() {
        return None;
    }
    let (repo, _) = TestRepo::images(CATALOG, &[PARENT, CHILD], &[]).expect("images repository");
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "windows-2022-base")
        .await
        .expect("base image");
    Some((pipeline, functions, base))
}

/// Bake builds started, by family, with each one's environment.
fn bakes(pipeline: &Pipeline) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut found: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for build in pipeline.codebuild.started() {
        if build.project_name != pipeline.bake_project() {
            continue;
        }
        let family = build
            .env_value("GILD_FAMILY")
            .unwrap_or_default()
            .to_owned();
        found
            .entry(family)
            .or_default()
            .push(build.env.iter().cloned().collect());
    }
    found
}

/// Runs every pending build, each completion delivered three times, then
/// lets the reconciler's tick start what was queued, until nothing is left.
async fn run_all(pipeline: &Pipeline, functions: &Functions, standin: &BuildStandIn, time: &str) {
    for round in 0..4 {
        functions
            .settle(pipeline, standin, 3, 7 + round)
            .await
            .expect("settle");
        functions
            .deliver_ok(&pipeline.reconcile_event(time).expect("tick"))
            .await
            .expect("reconcile");
    }
}

/// November's schedule, run to the end: both families promoted once.
async fn november(pipeline: &Pipeline, functions: &Functions, standin: &BuildStandIn) {
    functions
        .fire_schedule(pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("november");
    run_all(pipeline, functions, standin, "2026-11-11T04:00:00Z").await;
}

async fn promoted(pipeline: &Pipeline, family: &str) -> Vec<String> {
    pipeline.parameter_history(family).await.expect("history")
}

#[tokio::test]
async fn a_schedule_bakes_the_parent_and_the_child_from_its_new_image_once() {
    let Some((pipeline, functions, base)) = world().await else {
        return;
    };
    let standin = BuildStandIn::new(&pipeline, &base);
    let fired = functions
        .fire_schedule(&pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("schedule");
    let started: Vec<&str> = fired["started"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["family"].as_str())
        .collect();
    assert_eq!(started, [PARENT], "{fired}");
    assert_eq!(fired["waiting"][0]["family"], CHILD, "{fired}");

    run_all(&pipeline, &functions, &standin, "2026-11-11T04:00:00Z").await;

    let parent_images = promoted(&pipeline, PARENT).await;
    assert_eq!(parent_images.len(), 1, "{parent_images:?}");
    let child_images = promoted(&pipeline, CHILD).await;
    assert_eq!(child_images.len(), 1, "{child_images:?}");
    let bakes = bakes(&pipeline);
    assert_eq!(bakes[PARENT].len(), 1);
    assert_eq!(
        bakes[CHILD].len(),
        1,
        "one child bake however often the promotion came"
    );
    let child_env = &bakes[CHILD][0];
    assert_eq!(child_env.get("GILD_SOURCE_AMI"), Some(&parent_images[0]));
    assert_eq!(
        child_env.get("GILD_PARENT_FAMILY").map(String::as_str),
        Some(PARENT)
    );
    let images = pipeline.gild_images().await.expect("images");
    let tags = &images[&child_images[0]];
    assert_eq!(tags.get("gild:parent-ami"), Some(&parent_images[0]));
    assert_eq!(
        tags.get("gild:parent-family").map(String::as_str),
        Some(PARENT)
    );
    let announced = pipeline.announcements().await.expect("announcements");
    let parent_note: Vec<&Value> = announced
        .iter()
        .filter(|a| a.body["family"] == PARENT)
        .map(|a| &a.body)
        .collect();
    assert_eq!(parent_note.len(), 1);
    assert_eq!(parent_note[0]["children"], serde_json::json!([CHILD]));
    assert_eq!(announced.len(), 2, "one announcement per promotion");
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn a_parent_that_fails_its_test_fails_the_waiting_child_and_keeps_its_image() {
    let Some((pipeline, functions, base)) = world().await else {
        return;
    };
    let standin = BuildStandIn::new(&pipeline, &base);
    november(&pipeline, &functions, &standin).await;
    let child_before = promoted(&pipeline, CHILD).await;
    assert_eq!(child_before.len(), 1);
    pipeline.announcements().await.expect("drain");

    let failing = BuildStandIn::new(&pipeline, &base).fail_test(PARENT);
    functions
        .fire_schedule(&pipeline, "2026-12-09T03:00:00Z")
        .await
        .expect("december");
    run_all(&pipeline, &functions, &failing, "2026-12-09T04:00:00Z").await;

    assert_eq!(
        promoted(&pipeline, CHILD).await,
        child_before,
        "the child keeps its image"
    );
    assert_eq!(
        bakes(&pipeline)[CHILD].len(),
        1,
        "no child bake from a failed parent"
    );
    let announced = pipeline.announcements().await.expect("announcements");
    let child_failures: Vec<&Value> = announced
        .iter()
        .filter(|a| a.body["family"] == CHILD)
        .map(|a| &a.body)
        .collect();
    assert_eq!(child_failures.len(), 1, "announced once: {announced:?}");
    assert_eq!(child_failures[0]["stage"], "parent");
    assert!(child_failures[0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains(PARENT)));
    let ledger = pipeline.ledger().await.expect("ledger");
    let child = ledger
        .iter()
        .find(|r| {
            r.get("family").map(String::as_str) == Some(CHILD)
                && r.get("dedupe_key").is_some_and(|k| k.contains("2026-12"))
        })
        .expect("the child's december bake");
    assert_eq!(child.get("state").map(String::as_str), Some("failed"));
    assert_eq!(
        child.get("failed_stage").map(String::as_str),
        Some("parent")
    );
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn a_push_to_the_child_alone_bakes_it_from_its_parents_promoted_image() {
    let Some((pipeline, functions, base)) = world().await else {
        return;
    };
    let standin = BuildStandIn::new(&pipeline, &base);
    november(&pipeline, &functions, &standin).await;
    let parent_image = promoted(&pipeline, PARENT)
        .await
        .pop()
        .expect("parent image");

    let old = pipeline.repo.branch_tip("main").expect("main");
    pipeline
        .repo
        .write(&format!("images/{CHILD}/{CHILD}.pkr.hcl"), "# packer, v2\n")
        .expect("write");
    let new = pipeline.repo.commit("iis: v2").expect("commit");
    let pushed = functions
        .deliver_ok(&pipeline.push_event("main", Some(&old), &new).expect("push"))
        .await
        .expect("trigger");
    assert_eq!(pushed["started"][0]["family"], CHILD, "{pushed}");
    run_all(&pipeline, &functions, &standin, "2026-11-12T04:00:00Z").await;

    let bakes = bakes(&pipeline);
    assert_eq!(bakes[PARENT].len(), 1, "the parent is not rebuilt");
    let pushed_bake = bakes[CHILD].last().expect("the push's bake");
    assert_eq!(
        pushed_bake.get("GILD_PARENT_FAMILY").map(String::as_str),
        Some(PARENT)
    );
    let child_image = promoted(&pipeline, CHILD).await.pop().expect("child image");
    let images = pipeline.gild_images().await.expect("images");
    assert_eq!(
        images[&child_image].get("gild:parent-ami"),
        Some(&parent_image)
    );
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn a_push_to_the_parent_alone_rebuilds_the_child_once_from_its_new_image() {
    let Some((pipeline, functions, base)) = world().await else {
        return;
    };
    let standin = BuildStandIn::new(&pipeline, &base);
    november(&pipeline, &functions, &standin).await;

    let old = pipeline.repo.branch_tip("main").expect("main");
    pipeline
        .repo
        .write(
            &format!("images/{PARENT}/{PARENT}.pkr.hcl"),
            "# packer, v2\n",
        )
        .expect("write");
    let new = pipeline.repo.commit("dotnet: v2").expect("commit");
    let pushed = functions
        .deliver_ok(&pipeline.push_event("main", Some(&old), &new).expect("push"))
        .await
        .expect("trigger");
    assert_eq!(pushed["started"][0]["family"], PARENT, "{pushed}");
    assert!(
        pushed["waiting"].is_null(),
        "the child is not in the push's run: {pushed}"
    );
    run_all(&pipeline, &functions, &standin, "2026-11-12T04:00:00Z").await;

    let parent_image = promoted(&pipeline, PARENT)
        .await
        .pop()
        .expect("parent image");
    let bakes = bakes(&pipeline);
    assert_eq!(
        bakes[CHILD].len(),
        2,
        "november's, and one from the new parent image"
    );
    let rebuilt = bakes[CHILD].last().expect("rebuild");
    assert_eq!(
        rebuilt.get("GILD_TRIGGER").map(String::as_str),
        Some("parent")
    );
    assert_eq!(
        rebuilt.get("GILD_DEDUPE_KEY"),
        Some(&format!("parent:{parent_image}"))
    );
    assert_eq!(rebuilt.get("GILD_SOURCE_AMI"), Some(&parent_image));
    assert_eq!(promoted(&pipeline, CHILD).await.len(), 2);
    pipeline.assert_every_call_allowed();
}
