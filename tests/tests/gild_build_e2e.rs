//! `gild build`, the real CLI binary, end to end on the stack as deployed
//! into moto: what it puts on the default bus is delivered by the stack's
//! own `gild build` rule (to an SQS witness in place of the trigger, which
//! moto cannot invoke), routed by the stack's patterns (the harness's
//! router) to the trigger process, which starts exactly the bakes asked
//! for; what it refuses puts nothing on the bus.

mod support;

use std::process::Output;

use gild_core::plan::Trigger;
use gild_tests::aws::lambda_env;
use gild_tests::pipeline::Pipeline;
use gild_tests::scenario::Functions;
use serde_json::{json, Value};
use support::{
    assert_build_requested, deployed, manual_witness, unplug_functions, Witness, FAMILIES,
};

/// Who runs `gild`: an operator with keys moto takes, or one signing with
/// `role`'s keys through the IAM gate.
enum Caller<'a> {
    Operator,
    Role(&'a str),
}

/// Runs the real `gild` binary in the images repository (so it checks the
/// family against the repository's `gild.toml`), as `alice`, with only the
/// standard AWS settings in its environment.
async fn gild(pipeline: &Pipeline, caller: Caller<'_>, args: &[&str]) -> Output {
    let mut env = lambda_env(&pipeline.moto.endpoint());
    if let Caller::Role(role) = caller {
        let gate = pipeline.gate.as_ref().expect("the IAM gate");
        let keys = gate.keys(role).expect("the role's keys");
        for (name, value) in &mut env {
            match name.as_str() {
                "AWS_ENDPOINT_URL" => *value = gate.endpoint(),
                "AWS_ACCESS_KEY_ID" => value.clone_from(&keys.access_key_id),
                "AWS_SECRET_ACCESS_KEY" => value.clone_from(&keys.secret_access_key),
                _ => {}
            }
        }
    }
    let nowhere = pipeline.repo.path().join(".no-aws-config");
    tokio::process::Command::new(gild_tests::bin_path("gild").expect("gild"))
        .args(args)
        .current_dir(pipeline.repo.path())
        .env_clear()
        .envs(env)
        .env("USER", "alice")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .output()
        .await
        .expect("running gild")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The event id `gild build` printed.
fn event_id(output: &Output) -> String {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "gild failed: {stdout}{}",
        text(&output.stderr)
    );
    stdout
        .split("(event ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no event id in: {stdout}"))
        .to_owned()
}

/// The bake builds started so far: (family, dedupe key), sorted.
fn bakes(pipeline: &Pipeline) -> Vec<(String, String)> {
    let mut bakes: Vec<_> = pipeline
        .codebuild
        .started()
        .iter()
        .map(|build| {
            assert_eq!(build.project_name, pipeline.bake_project());
            assert_eq!(
                build.env_value("GILD_TRIGGER"),
                Some(Trigger::Manual.as_str())
            );
            let env = |name| build.env_value(name).unwrap_or_default().to_owned();
            (env("GILD_FAMILY"), env("GILD_DEDUPE_KEY"))
        })
        .collect();
    bakes.sort();
    bakes
}

#[tokio::test]
async fn gild_build_starts_exactly_the_requested_bakes_through_the_deployed_rule() {
    let Some(pipeline) = deployed(true).await else {
        return;
    };
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let manual = manual_witness(&pipeline).await;
    let mut expected = Vec::new();
    for (args, detail, families) in [
        (
            &["build", "debian12-base"][..],
            json!({"family": "debian12-base", "requested_by": "alice"}),
            &["debian12-base"][..],
        ),
        (
            &["build", "--all"][..],
            json!({"all": true, "requested_by": "alice"}),
            &FAMILIES[..],
        ),
    ] {
        let id = event_id(&gild(&pipeline, Caller::Operator, args).await);
        let delivered = manual.drain().await;
        assert_eq!(delivered.len(), 1, "{args:?}: {delivered:?}");
        let event = &delivered[0];
        assert_build_requested(event, &id, &detail, &format!("{args:?}"));
        assert_eq!(
            functions.targets(event).await.expect("routing"),
            ["trigger"],
            "{args:?}"
        );
        let outcome = functions.deliver_ok(event).await.expect("the trigger");
        assert_eq!(
            outcome["started"].as_array().map(Vec::len),
            Some(families.len()),
            "{args:?}: {outcome}"
        );
        expected.extend(
            families
                .iter()
                .map(|family| ((*family).to_owned(), format!("manual:{id}"))),
        );
        expected.sort();
        assert_eq!(bakes(&pipeline), expected, "{args:?}");
    }
    let in_moto = pipeline
        .builds(pipeline.bake_project())
        .await
        .expect("builds");
    assert_eq!(in_moto.len(), expected.len());
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn gild_build_refused_puts_no_event() {
    let Some(pipeline) = deployed(true).await else {
        return;
    };
    unplug_functions(&pipeline.aws).await;
    let everything = Witness::everything(&pipeline.aws, "default", "everything").await;
    let refused = |output: &Output, code: i32| {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
        stderr
    };

    // A family the repository's catalog does not declare.
    let output = gild(&pipeline, Caller::Operator, &["build", "centos6"]).await;
    let stderr = refused(&output, 1);
    assert_eq!(
        stderr,
        "gild: error: unknown family `centos6`; known families: al2023-base, debian12-base, win2022-core\n"
    );
    // Neither a family nor `--all` (clap's usage error).
    let output = gild(&pipeline, Caller::Operator, &["build"]).await;
    let stderr = refused(&output, 2);
    assert!(
        stderr.starts_with("error: the following required arguments were not provided"),
        "{stderr}"
    );
    assert_eq!(everything.drain().await, Vec::<Value>::new());

    // A caller whose role has no `events:PutEvents` (the trigger's: it
    // reads these events, it never puts them).
    let role = pipeline.deployed("trigger").expect("trigger").role.clone();
    let output = gild(&pipeline, Caller::Role(&role), &["build", "debian12-base"]).await;
    let stderr = refused(&output, 1);
    assert!(
        stderr.starts_with("gild: error: EventBridge PutEvents failed (AccessDenied"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let refusals = pipeline.refused_calls().expect("the gate's log");
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].starts_with("events:PutEvents by "),
        "{refusals:?}"
    );
    assert_eq!(everything.drain().await, Vec::<Value>::new());

    // The same request from the operator is put: the witness would have
    // seen the ones above.
    let output = gild(&pipeline, Caller::Operator, &["build", "debian12-base"]).await;
    let id = event_id(&output);
    let seen = everything.drain().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["id"], json!(id));
}
