//! The github-webhook function as AWS runs it: a Function URL event with a
//! GitHub push signed in the test, the secrets in moto's Secrets Manager,
//! GitHub's API answered by a local stub over a real git repository, and
//! bakes counted at the emulator's CodeBuild.

use gild_tests::events;
use gild_tests::git::TestRepo;
use gild_tests::github::GitHubStub;
use gild_tests::pipeline::Pipeline;
use gild_tests::runtime_api::LambdaProcess;
use gild_tests::webhook;
use serde_json::{json, Value};

const REPOSITORY: &str = "acme/platform-images";
const TOKEN: &str = "test-token-for-the-local-stub";
/// The value the operator gives the webhook secret (and pastes into GitHub).
const WEBHOOK_SECRET: &str = "gild-sample-secret";

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
"#;

fn function_url_event(body: &str, event: &str, delivery: &str, signature: Option<String>) -> Value {
    webhook::function_url_event(body, event, delivery, signature).expect("headers sample")
}

/// A push payload in GitHub's shape for `before..after`, listing `paths` as modified.
fn push_body(before: &str, after: &str, paths: &[&str], commits: usize) -> String {
    let mut body = events::sample("github-push.body.json").expect("body sample");
    body["before"] = before.into();
    body["after"] = after.into();
    body["compare"] = format!(
        "https://github.com/{REPOSITORY}/compare/{}...{}",
        &before[..12],
        &after[..12]
    )
    .into();
    let commit = json!({"id": after, "tree_id": after, "distinct": true, "message": "change",
                        "timestamp": "2026-11-25T10:00:00Z", "url": format!("https://github.com/{REPOSITORY}/commit/{after}"),
                        "author": {"name": "carol", "email": "carol@example.com"},
                        "committer": {"name": "carol", "email": "carol@example.com"},
                        "added": [], "modified": paths, "removed": []});
    body["commits"] = Value::Array(vec![commit.clone(); commits]);
    body["head_commit"] = commit;
    body.to_string()
}

struct World {
    pipeline: Pipeline,
    github: GitHubStub,
    commits: Vec<String>,
    /// The stack's webhook secret (its ARN, as the function is given it).
    webhook_secret: String,
}

async fn world() -> World {
    let repo = TestRepo::new().expect("repo");
    repo.write("gild.toml", CATALOG).expect("write");
    repo.write("images/debian12-base/debian.pkr.hcl", "#\n")
        .expect("write");
    repo.write("images/win2022-core/win.pkr.hcl", "#\n")
        .expect("write");
    let c1 = repo.commit("initial").expect("commit");
    repo.write("images/debian12-base/debian.pkr.hcl", "# v2\n")
        .expect("write");
    let c2 = repo.commit("debian only").expect("commit");
    repo.write("images/win2022-core/win.pkr.hcl", "# v2\n")
        .expect("write");
    let c3 = repo.commit("windows only").expect("commit");
    // The stack for a GitHub-hosted images repository (docs/deploy.md).
    let options = webhook::github_options(REPOSITORY);
    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    let pipeline = Pipeline::start_with(moto, repo, options)
        .await
        .expect("pipeline");
    let github = GitHubStub::start(pipeline.repo.path().to_path_buf(), REPOSITORY, TOKEN)
        .await
        .expect("github stub");
    // What the operator does after the deploy: the stack made both secrets
    // (a generated webhook secret, a token holding a space); set the values.
    let webhook_secret = webhook::set_secrets(&pipeline, WEBHOOK_SECRET, TOKEN)
        .await
        .expect("secrets");
    World {
        pipeline,
        github,
        commits: vec![c1, c2, c3],
        webhook_secret,
    }
}

/// The webhook function as the stack configures it, with GitHub's API at
/// the stub.
async fn spawn(world: &World) -> LambdaProcess {
    let extra = [
        ("GILD_GITHUB_API_URL", world.github.api_url()),
        ("GILD_MAX_BODY_BYTES", "65536".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    world
        .pipeline
        .spawn_with("github-webhook", &extra)
        .await
        .expect("spawn")
}

async fn call(function: &LambdaProcess, event: &Value) -> (u64, Value) {
    let response = function
        .invoke(event)
        .await
        .expect("invocation")
        .outcome
        .unwrap_or_else(|e| panic!("function error {e}\n{}", function.logs()));
    let status = response["statusCode"].as_u64().expect("status");
    let body =
        serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (status, body)
}

fn bakes(world: &World) -> Vec<String> {
    let mut families: Vec<String> = world
        .pipeline
        .codebuild
        .started()
        .iter()
        .filter(|b| b.project_name == world.pipeline.bake_project())
        .filter_map(|b| b.env_value("GILD_FAMILY").map(str::to_owned))
        .collect();
    families.sort();
    families
}

#[tokio::test]
async fn signed_push_bakes_exactly_the_touched_family_once_and_forgeries_are_refused() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let world = world().await;
    let hook = spawn(&world).await;
    let [c1, c2, c3] = [&world.commits[0], &world.commits[1], &world.commits[2]];
    let body = push_body(c1, c2, &["images/debian12-base/debian.pkr.hcl"], 1);
    let signed = function_url_event(
        &body,
        "push",
        "delivery-1",
        Some(webhook::sign(WEBHOOK_SECRET, body.as_bytes())),
    );

    let (status, outcome) = call(&hook, &signed).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(bakes(&world), ["debian12-base"]);
    let started = &world.pipeline.codebuild.started()[0];
    assert_eq!(started.source_version.as_deref(), Some(c2.as_str()));
    assert_eq!(
        started.env_value("GILD_DEDUPE_KEY"),
        Some(format!("push:{c2}").as_str())
    );
    // The payload listed the paths, so no compare call; the catalog came from the API.
    assert_eq!(world.github.calls("compare"), 0);
    assert_eq!(world.github.calls("contents"), 1);

    // Redelivery of the same delivery, and the same push under a new delivery id.
    let (status, outcome) = call(&hook, &signed).await;
    assert_eq!(
        (status, outcome["duplicates"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let again = function_url_event(
        &body,
        "push",
        "delivery-2",
        Some(webhook::sign(WEBHOOK_SECRET, body.as_bytes())),
    );
    assert_eq!(call(&hook, &again).await.0, 200);
    assert_eq!(
        bakes(&world),
        ["debian12-base"],
        "replays start nothing new"
    );

    // Forged, truncated, unsigned, malformed, oversized, wrong type: refused.
    let mut refused = 0;
    let cases = [
        (
            function_url_event(
                &body,
                "push",
                "f1",
                Some(webhook::sign("not-the-secret", body.as_bytes())),
            ),
            401,
        ),
        (
            function_url_event(
                &body[..body.len() - 10],
                "push",
                "f2",
                Some(webhook::sign(WEBHOOK_SECRET, body.as_bytes())),
            ),
            401,
        ),
        (function_url_event(&body, "push", "f3", None), 401),
        (
            function_url_event(&body, "push", "f4", Some("sha256=not-hex".into())),
            401,
        ),
        (
            function_url_event(
                &"x".repeat(70_000),
                "push",
                "f5",
                Some(webhook::sign(WEBHOOK_SECRET, &[])),
            ),
            413,
        ),
    ];
    for (event, want) in cases {
        let (status, body) = call(&hook, &event).await;
        assert_eq!(status, want, "{body}");
        refused += 1;
    }
    let mut form = function_url_event(
        &body,
        "push",
        "f6",
        Some(webhook::sign(WEBHOOK_SECRET, body.as_bytes())),
    );
    form["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    assert_eq!(call(&hook, &form).await.0, 415);
    refused += 1;
    assert_eq!(refused, 6);
    assert_eq!(bakes(&world), ["debian12-base"]);

    // Ping, other events, tag pushes: answered, nothing started.
    let ping = function_url_event(
        "{\"zen\":\"Keep it logically awesome.\"}",
        "ping",
        "p1",
        Some(webhook::sign(
            WEBHOOK_SECRET,
            b"{\"zen\":\"Keep it logically awesome.\"}",
        )),
    );
    assert_eq!(call(&hook, &ping).await.0, 200);
    let mut tag: Value = serde_json::from_str(&body).expect("json");
    tag["ref"] = "refs/tags/v2026.11".into();
    let tag = tag.to_string();
    let (status, answer) = call(
        &hook,
        &function_url_event(
            &tag,
            "push",
            "t1",
            Some(webhook::sign(WEBHOOK_SECRET, tag.as_bytes())),
        ),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let issues = function_url_event(
        "{}",
        "issues",
        "i1",
        Some(webhook::sign(WEBHOOK_SECRET, b"{}")),
    );
    assert_eq!(call(&hook, &issues).await.0, 202);

    // A push whose commit list is truncated: the compare API supplies the paths.
    let long = push_body(c2, c3, &["README.md"], 20);
    let (status, outcome) = call(
        &hook,
        &function_url_event(
            &long,
            "push",
            "l1",
            Some(webhook::sign(WEBHOOK_SECRET, long.as_bytes())),
        ),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(world.github.calls("compare"), 1);
    assert_eq!(
        bakes(&world),
        ["debian12-base", "win2022-core"],
        "the listed README is not what changed"
    );

    // The ledger holds one claim per family and commit.
    let items = aws_sdk_dynamodb::Client::new(&world.pipeline.aws)
        .scan()
        .table_name(world.pipeline.ledger_table())
        .send()
        .await
        .expect("scan");
    assert_eq!(items.count(), 2);
    // Every call each function made was allowed by its own role.
    world.pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn rotated_secret_accepts_current_and_previous() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let world = world().await;
    aws_sdk_secretsmanager::Client::new(&world.pipeline.aws)
        .put_secret_value()
        .secret_id(&world.webhook_secret)
        .secret_string("rotated-secret")
        .send()
        .await
        .expect("rotate");
    let hook = spawn(&world).await;
    let body = "{\"zen\":\"Design for failure.\"}";
    for (secret, want) in [
        ("rotated-secret", 200),
        (WEBHOOK_SECRET, 200),
        ("older-secret", 401),
    ] {
        let event = function_url_event(
            body,
            "ping",
            secret,
            Some(webhook::sign(secret, body.as_bytes())),
        );
        assert_eq!(call(&hook, &event).await.0, want, "{secret}");
    }
}

#[tokio::test]
async fn schedule_reads_the_catalog_through_github_when_the_images_live_there() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let world = world().await;
    // The stack's own trigger configuration for a GitHub-hosted repository
    // (GILD_REPOSITORY_HOST=github, the repository, the token's secret).
    let extra = [("GILD_GITHUB_API_URL".to_owned(), world.github.api_url())];
    let trigger = world
        .pipeline
        .spawn_with("trigger", &extra)
        .await
        .expect("spawn");
    let schedule = world
        .pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    let outcome = trigger.invoke(&schedule).await.expect("invocation").outcome;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", trigger.logs()));
    assert_eq!(
        outcome["started"].as_array().map(Vec::len),
        Some(2),
        "{outcome}"
    );
    assert_eq!(bakes(&world), ["debian12-base", "win2022-core"]);
    let tip = &world.commits[2];
    assert!(world
        .pipeline
        .codebuild
        .started()
        .iter()
        .all(|b| b.source_version.as_deref() == Some(tip.as_str())));
    assert_eq!(world.github.calls("branches"), 1);
    assert_eq!(
        world.pipeline.codecommit.calls("GetFile"),
        0,
        "no CodeCommit at all"
    );
    // Every call each function made was allowed by its own role.
    world.pipeline.assert_every_call_allowed();
}

/// The same signed delivery reaching three webhook environments at once
/// (GitHub's redelivery racing the original, or Function URL retries) while
/// a fifth of their AWS calls fail: one bake, of the touched family. A
/// delivery that failed is delivered again, as an operator's redelivery
/// from GitHub's settings would (GitHub itself does not retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_racing_in_three_webhooks_under_faults_bakes_once() {
    use gild_tests::faults::{FaultConfig, FaultyRoutes};
    if gild_tests::moto::skip_requested() {
        return;
    }
    let world = world().await;
    let routes = FaultyRoutes::start(&world.pipeline, &FaultConfig::new(17).rate(0.2))
        .await
        .expect("fault proxies");
    let mut env = routes
        .function_env(&world.pipeline, "github-webhook")
        .expect("env");
    env.extend(
        [
            ("GILD_GITHUB_API_URL", world.github.api_url()),
            ("GILD_MAX_BODY_BYTES", "65536".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let binary = gild_tests::bin_path("github-webhook").expect("binary");
    let name = &world
        .pipeline
        .deployed("github-webhook")
        .expect("deployed")
        .function_name;
    let hooks =
        futures::future::join_all((0..3).map(|_| LambdaProcess::spawn(&binary, name, &env)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("spawn");
    let (c1, c2) = (&world.commits[0], &world.commits[1]);
    let body = push_body(c1, c2, &["images/debian12-base/debian.pkr.hcl"], 1);
    let signed = function_url_event(
        &body,
        "push",
        "delivery-race",
        Some(webhook::sign(WEBHOOK_SECRET, body.as_bytes())),
    );
    let accepted = |invocation: &gild_tests::runtime_api::Invocation| {
        invocation
            .outcome
            .as_ref()
            .is_ok_and(|r| r["statusCode"].as_u64() == Some(200))
    };
    let mut any_accepted = false;
    for round in 0..5 {
        let answers =
            futures::future::join_all(hooks.iter().map(|hook| hook.invoke(&signed))).await;
        let answers: Vec<_> = answers
            .into_iter()
            .map(|a| a.expect("invocation"))
            .collect();
        any_accepted |= answers.iter().any(accepted);
        if answers.iter().all(accepted) {
            break;
        }
        assert!(round < 4, "still failing after 5 redeliveries");
    }
    assert!(any_accepted);
    assert!(
        routes.injected().total() > 0,
        "no fault was injected: {}",
        routes.injected().summary()
    );
    assert_eq!(
        bakes(&world),
        ["debian12-base"],
        "{}",
        routes.injected().summary()
    );
}
