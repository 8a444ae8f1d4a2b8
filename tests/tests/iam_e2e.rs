//! The twin says no: each function runs under its own role, as
//! `infra/template.yaml` defines it, through the IAM gate. A template that
//! lacks a permission a function needs is deployed here (a copy, with one
//! grant taken out), and the function's call is refused with the service's
//! own AccessDenied, the refusal named in the gate's log, and the flow stops
//! where AWS would stop it: no build started, no image promoted.

use gild_tests::git::TestRepo;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::{Options, Pipeline};
use gild_tests::scenario::Functions;
use gild_tests::stack::template_without;
use gild_tests::standin::{register_base_image, BuildStandIn};

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline"]
"#;

async fn pipeline_on(template: &std::path::Path) -> Pipeline {
    let (repo, _) = TestRepo::images(CATALOG, &["debian12-base"], &[]).expect("images repository");
    let options = Options {
        template: template.to_path_buf(),
        ..Options::default()
    };
    Pipeline::start_with(MotoServer::start().await.expect("moto"), repo, options)
        .await
        .expect("pipeline")
}

#[tokio::test]
async fn a_trigger_role_without_put_item_cannot_claim_so_no_bake_starts() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let copy = template_without(
        "TriggerRole",
        "Action: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem]",
        "Action: [dynamodb:GetItem, dynamodb:UpdateItem]",
    );
    let pipeline = pipeline_on(copy.path()).await;
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let schedule = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    let outcome = functions
        .deliver(&schedule)
        .await
        .expect("deliver")
        .invocation
        .outcome;
    let error = outcome.expect_err("the claim is refused");
    assert!(
        error.error_message.contains("AccessDenied"),
        "{}: {}",
        error.error_type,
        error.error_message
    );
    let refused = pipeline.refused_calls().expect("decisions");
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("dynamodb:PutItem by TriggerRole")),
        "{refused:?}"
    );
    assert!(
        pipeline.codebuild.started().is_empty(),
        "a bake started without its claim"
    );
}

#[tokio::test]
async fn a_test_finished_role_without_put_parameter_promotes_nothing() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let copy = template_without(
        "TestFinishedRole",
        "Action: [ssm:GetParameter, ssm:PutParameter]",
        "Action: [ssm:GetParameter]",
    );
    let pipeline = pipeline_on(copy.path()).await;
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "base")
        .await
        .expect("base image");
    let standin = BuildStandIn::new(&pipeline, &base);
    functions
        .fire_schedule(&pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("the bake starts");
    let settled = functions
        .settle(&pipeline, &standin, 1, 7)
        .await
        .expect("settle");
    let failed: Vec<String> = settled
        .iter()
        .flat_map(|(_, deliveries)| deliveries)
        .filter_map(|d| d.invocation.outcome.as_ref().err())
        .map(|e| format!("{}: {}", e.error_type, e.error_message))
        .collect();
    assert!(
        failed.iter().any(|e| e.contains("AccessDenied")),
        "test-finished's promotion should be refused: {failed:?}"
    );
    let refused = pipeline.refused_calls().expect("decisions");
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("ssm:PutParameter by TestFinishedRole")),
        "{refused:?}"
    );
    assert!(
        pipeline
            .parameter_history("debian12-base")
            .await
            .expect("history")
            .is_empty(),
        "promoted although the role may not write the parameter"
    );
}

/// Issue 12: a test build that can never start (here: bake-finished's role
/// may not start it, so StartBuild answers AccessDenied, a refusal no retry
/// changes) ends the bake `failed` at test, with its untested image and
/// snapshots removed and the failure announced, and its CodeBuild slot is
/// free for the next queued bake, which the reconciler's next tick starts.
/// Before, the bake stayed `baked` for good,
/// holding its slot, and the event was retried into the dead-letter queue
/// (this test then saw one bake: the second never left the queue).
#[tokio::test]
async fn a_test_build_that_can_never_start_fails_the_bake_at_test_and_frees_its_slot() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let copy = template_without(
        "BakeFinishedRole",
        "              - Sid: StartTests
                Effect: Allow
                Action: codebuild:StartBuild
                Resource: !GetAtt TestProject.Arn
",
        "",
    );
    let catalog = "[families.debian12-base]\npath = \"images/debian12-base\"\nos = \"linux\"\n\n\
                   [families.al2023-base]\npath = \"images/al2023-base\"\nos = \"linux\"\n";
    let (repo, _) = TestRepo::images(catalog, &["debian12-base", "al2023-base"], &[])
        .expect("images repository");
    let options = Options {
        template: copy.path().to_path_buf(),
        ..Options::default()
    };
    let pipeline = Pipeline::start_with(MotoServer::start().await.expect("moto"), repo, options)
        .await
        .expect("pipeline");
    // Room for one gild build at a time: the second bake waits for a slot.
    let limit = [("GILD_MAX_PARALLEL_BUILDS".to_owned(), "1".to_owned())];
    let functions = Functions {
        trigger: pipeline
            .spawn_with("trigger", &limit)
            .await
            .expect("trigger"),
        bake_finished: pipeline.spawn("bake-finished").await.expect("spawn"),
        test_finished: pipeline.spawn("test-finished").await.expect("spawn"),
        reconcile: pipeline.spawn("reconcile").await.expect("spawn"),
        router: std::sync::Arc::clone(&pipeline.router),
    };
    let base = register_base_image(&pipeline.aws, "base")
        .await
        .expect("base image");
    let standin = BuildStandIn::new(&pipeline, &base);
    functions
        .fire_schedule(&pipeline, "2026-11-11T03:00:00Z")
        .await
        .expect("one bake starts, one waits");
    let mut settled = functions
        .settle(&pipeline, &standin, 2, 11)
        .await
        .expect("settle");
    // The first bake's slot is free once it failed, though no build ended:
    // the reconciler's next tick starts the queued bake into it.
    let tick = pipeline
        .reconcile_event("2026-11-11T03:15:00Z")
        .expect("tick");
    let drained = functions.deliver_ok(&tick).await.expect("reconcile");
    assert_eq!(
        drained["started"].as_array().map(Vec::len),
        Some(1),
        "the freed slot starts the queued bake: {drained}"
    );
    settled.extend(
        functions
            .settle(&pipeline, &standin, 2, 12)
            .await
            .expect("settle"),
    );

    // Both bakes ran, one after the other, and neither was ever tested.
    let bakes: Vec<(&str, &str)> = settled
        .iter()
        .map(|(c, _)| (c.family.as_str(), c.status))
        .collect();
    let outcomes: Vec<String> = settled
        .iter()
        .flat_map(|(_, deliveries)| deliveries)
        .map(|d| format!("{}: {:?}", d.function, d.invocation.outcome))
        .collect();
    assert_eq!(bakes.len(), 2, "{bakes:?}\n{}", outcomes.join("\n"));
    assert!(
        bakes.iter().all(|(_, status)| *status == "SUCCEEDED"),
        "{bakes:?}"
    );
    let states: Vec<(String, String)> = pipeline
        .ledger()
        .await
        .expect("ledger")
        .into_iter()
        .map(|row| {
            (
                row.get("state").cloned().unwrap_or_default(),
                row.get("failed_stage").cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("failed".into(), "test".into()),
            ("failed".into(), "test".into())
        ],
        "both bakes end failed at test"
    );
    assert!(
        pipeline.gild_images().await.expect("images").is_empty(),
        "the untested images are removed"
    );
    assert!(
        pipeline
            .gild_snapshots()
            .await
            .expect("snapshots")
            .is_empty(),
        "and their snapshots"
    );
    let subjects: Vec<String> = pipeline
        .announcements()
        .await
        .expect("announcements")
        .into_iter()
        .map(|r| r.subject)
        .collect();
    assert_eq!(
        subjects.len(),
        2,
        "one failure announced per bake: {subjects:?}"
    );
    let refused = pipeline.refused_calls().expect("decisions");
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("codebuild:StartBuild by BakeFinishedRole")),
        "{refused:?}"
    );
}
