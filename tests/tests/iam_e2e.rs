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
    let schedule = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    functions
        .deliver_ok(&schedule)
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
