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
use gild_tests::standin::{register_base_image, BuildStandIn};
use gild_tests::workspace_root;

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline"]
"#;

/// A copy of the template with the first `grant` in `role`'s definition
/// replaced by `without`; panics when the role no longer holds `grant`, so
/// the test cannot pass vacuously.
fn template_without(role: &str, grant: &str, without: &str) -> tempfile::NamedTempFile {
    let path = workspace_root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).expect("template");
    let start = text
        .find(&format!("\n  {role}:\n"))
        .unwrap_or_else(|| panic!("infra/template.yaml has no {role}"));
    // The role's definition ends where the next resource begins: the next
    // line indented by exactly two spaces.
    let body = start + role.len() + 5;
    let end = text[body..]
        .split_inclusive('\n')
        .scan(body, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .find(|(_, line)| line.starts_with("  ") && !line[2..].starts_with([' ', '#', '\n']))
        .map_or(text.len(), |(at, _)| at);
    let at = text[start..end]
        .find(grant)
        .unwrap_or_else(|| panic!("{role} in infra/template.yaml no longer grants `{grant}`"));
    let text = format!(
        "{}{without}{}",
        &text[..start + at],
        &text[start + at + grant.len()..]
    );
    let copy = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile_in(workspace_root().join("infra"))
        .expect("copy");
    std::fs::write(copy.path(), text).expect("write copy");
    copy
}

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
        .deliver(&schedule)
        .await
        .expect("deliver")
        .invocation
        .outcome
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
