//! The trigger Lambda as AWS runs it: the release-shaped binary behind the
//! Runtime API, talking over HTTP to moto (DynamoDB, CodeBuild), the
//! CodeCommit stub over a real git repository, and the recording CodeBuild
//! proxy. Counts what really started.

use std::collections::BTreeMap;

use gild_tests::events;
use gild_tests::git::TestRepo;
use gild_tests::pipeline::Pipeline;
use gild_tests::runtime_api::LambdaProcess;
use serde_json::Value;

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline", "cw-agent"]

[families.al2023-base]
path = "images/al2023-base"
os = "linux"
roles = ["baseline"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
roles = ["cw-agent"]
"#;

/// A repository with the catalog and one file per family; returns it and the first commit.
fn images_repo() -> (TestRepo, String) {
    TestRepo::images(
        CATALOG,
        &["debian12-base", "al2023-base", "win2022-core"],
        &[
            ("ansible/roles/cw-agent/tasks/main.yml", "---\n"),
            ("README.md", "# images\n"),
        ],
    )
    .expect("images repository")
}

async fn invoke_ok(function: &LambdaProcess, event: &Value) -> Value {
    let invocation = function.invoke(event).await.expect("invocation");
    match invocation.outcome {
        Ok(value) => value,
        Err(err) => panic!("function failed: {err}\n{}", function.logs()),
    }
}

/// Families of the builds that really started, with how many times each.
fn started_families(pipeline: &Pipeline) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for build in pipeline.codebuild.started() {
        let family = build
            .env_value("GILD_FAMILY")
            .expect("GILD_FAMILY set")
            .to_owned();
        *counts.entry(family).or_insert(0) += 1;
    }
    counts
}

async fn ledger_states(pipeline: &Pipeline) -> Vec<(String, String, String)> {
    let client = aws_sdk_dynamodb::Client::new(&pipeline.aws);
    let items = client
        .scan()
        .table_name(pipeline.ledger_table())
        .send()
        .await
        .expect("scan ledger");
    let mut rows: Vec<_> = items
        .items()
        .iter()
        .map(|item| {
            let s = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (s("family"), s("dedupe_key"), s("state"))
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn push_delivered_three_times_starts_one_build_per_affected_family() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = images_repo();
    repo.write("images/al2023-base/al2023-base.pkr.hcl", "# packer v2\n")
        .expect("write");
    repo.write(
        "ansible/roles/cw-agent/tasks/main.yml",
        "---\n- name: agent\n",
    )
    .expect("write");
    repo.write("README.md", "# images, documented\n")
        .expect("write");
    let second = repo
        .commit("touch al2023 and the cw-agent role")
        .expect("commit");
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let trigger = pipeline.spawn("trigger").await.expect("trigger binary");

    let push = pipeline
        .push_event("main", Some(&first), &second)
        .expect("event");
    let first_outcome = invoke_ok(&trigger, &push).await;
    for _ in 0..2 {
        let again = invoke_ok(&trigger, &push).await;
        assert_eq!(again["started"], Value::Array(vec![]), "{again}");
        assert_eq!(again["duplicates"].as_array().map(Vec::len), Some(3));
    }

    // al2023-base by its folder; debian12-base and win2022-core by the role.
    let expected: BTreeMap<String, usize> = [
        ("al2023-base", 1),
        ("debian12-base", 1),
        ("win2022-core", 1),
    ]
    .into_iter()
    .map(|(f, n)| (f.to_owned(), n))
    .collect();
    assert_eq!(started_families(&pipeline), expected, "{first_outcome}");
    assert_eq!(
        pipeline
            .builds(pipeline.bake_project())
            .await
            .expect("builds")
            .len(),
        3
    );
    for build in pipeline.codebuild.started() {
        assert_eq!(build.project_name, pipeline.bake_project());
        assert_eq!(build.source_version.as_deref(), Some(second.as_str()));
        assert_eq!(build.env_value("GILD_TRIGGER"), Some("push"));
        assert_eq!(build.env_value("GILD_SOURCE_COMMIT"), Some(second.as_str()));
        assert!(build.idempotency_token.is_some());
    }
    let states = ledger_states(&pipeline).await;
    assert_eq!(states.len(), 3);
    assert!(
        states
            .iter()
            .all(|(_, key, state)| key == &format!("push:{second}") && state == "baking"),
        "{states:?}"
    );
    // GetDifferences went through the SDK paginator and the catalog was read once per delivery.
    assert!(pipeline.codecommit.calls("GetDifferences") >= 3);
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn concurrent_deliveries_to_separate_instances_start_each_bake_once() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, _first) = images_repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    // Three warm Lambda instances take the same event at the same moment.
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(pipeline.spawn("trigger").await.expect("trigger binary"));
    }
    let schedule = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    let outcomes = futures::future::join_all(instances.iter().map(|instance| async {
        instance
            .invoke(&schedule)
            .await
            .expect("invocation")
            .outcome
    }))
    .await;
    // Losing the race to a live claim is an error, so Lambda retries it.
    for err in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(err.error_type, "gild.StartFailed", "{err}");
        assert!(err.error_message.contains("another invocation"), "{err}");
    }
    assert_eq!(pipeline.codebuild.started().len(), 3, "{outcomes:?}");
    // Lambda's retries of the losers find every bake started.
    for instance in &instances {
        let retry = invoke_ok(instance, &schedule).await;
        assert_eq!(
            retry["duplicates"].as_array().map(Vec::len),
            Some(3),
            "{retry}"
        );
    }
    assert_eq!(started_families(&pipeline).values().sum::<usize>(), 3);
    assert!(started_families(&pipeline).values().all(|n| *n == 1));
    assert_eq!(
        pipeline
            .builds(pipeline.bake_project())
            .await
            .expect("builds")
            .len(),
        3
    );
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn schedule_twice_manual_and_ignored_events() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = images_repo();
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let trigger = pipeline.spawn("trigger").await.expect("trigger binary");

    // The monthly rule fires twice in November: one bake per family.
    let november = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("event");
    invoke_ok(&trigger, &november).await;
    let again = pipeline
        .schedule_event("2026-11-11T03:00:02Z")
        .expect("event");
    let outcome = invoke_ok(&trigger, &again).await;
    assert_eq!(outcome["duplicates"].as_array().map(Vec::len), Some(3));
    assert_eq!(started_families(&pipeline).values().sum::<usize>(), 3);
    for build in pipeline.codebuild.started() {
        assert_eq!(
            build.source_version.as_deref(),
            Some(first.as_str()),
            "schedule bakes the tip"
        );
        assert_eq!(build.env_value("GILD_TRIGGER"), Some("schedule"));
    }

    // A manual request, delivered twice, bakes once.
    let manual = events::manual("req-1", Some("win2022-core")).expect("event");
    invoke_ok(&trigger, &manual).await;
    invoke_ok(&trigger, &manual).await;
    assert_eq!(started_families(&pipeline).get("win2022-core"), Some(&2));

    // Ignored: tag, deleted branch, other branch, a docs-only push.
    for name in [
        "codecommit-tag.json",
        "codecommit-branch-deleted.json",
        "codecommit-other-branch.json",
    ] {
        let mut event = events::sample(name).expect("sample");
        event["detail"]["repositoryName"] = pipeline.repository().into();
        let outcome = invoke_ok(&trigger, &event).await;
        assert_eq!(
            outcome["started"],
            Value::Array(vec![]),
            "{name}: {outcome}"
        );
        assert!(outcome["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    pipeline
        .repo
        .write("README.md", "# docs only\n")
        .expect("write");
    let docs = pipeline.repo.commit("docs").expect("commit");
    let outcome = invoke_ok(
        &trigger,
        &pipeline
            .push_event("main", Some(&first), &docs)
            .expect("event"),
    )
    .await;
    assert!(
        outcome["reason"]
            .as_str()
            .is_some_and(|r| r.contains("touches no family")),
        "{outcome}"
    );
    assert_eq!(pipeline.codebuild.started().len(), 4);

    // Malformed and unknown input: a clear, typed error, nothing started.
    let mut malformed = events::sample("codecommit-malformed.json").expect("sample");
    malformed["detail"]["repositoryName"] = pipeline.repository().into();
    let invocation = trigger.invoke(&malformed).await.expect("invocation");
    let err = invocation.outcome.expect_err("malformed event fails");
    assert_eq!(err.error_type, "gild.BadEvent");
    assert!(
        err.error_message.contains("referenceType"),
        "{}",
        err.error_message
    );
    let unknown = events::manual("req-2", Some("centos6")).expect("event");
    let err = trigger
        .invoke(&unknown)
        .await
        .expect("invocation")
        .outcome
        .expect_err("unknown family");
    assert_eq!(err.error_type, "gild.PlanRefused");
    assert!(err
        .error_message
        .contains("known families: al2023-base, debian12-base, win2022-core"));
    assert_eq!(pipeline.codebuild.started().len(), 4);
    assert_eq!(
        pipeline
            .builds(pipeline.bake_project())
            .await
            .expect("builds")
            .len(),
        4
    );
    // Every call each function made was allowed by its own role.
    pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn broken_catalog_starts_nothing_and_names_the_line() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = images_repo();
    repo.write(
        "gild.toml",
        format!("{CATALOG}\n[families.extra]\npath = \"images/extra\"\nos = \"linux\"\nparents = \"al2023-base\"\n"),
    )
    .expect("write");
    repo.write("images/extra/x.pkr.hcl", "#\n").expect("write");
    let second = repo
        .commit("add a family with a typo'd key")
        .expect("commit");
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let trigger = pipeline.spawn("trigger").await.expect("trigger binary");
    let event = pipeline
        .push_event("main", Some(&first), &second)
        .expect("event");
    let err = trigger
        .invoke(&event)
        .await
        .expect("invocation")
        .outcome
        .expect_err("bad catalog");
    assert_eq!(err.error_type, "gild.CatalogInvalid");
    assert!(
        err.error_message.contains("gild.toml:"),
        "{}",
        err.error_message
    );
    assert!(
        err.error_message.contains("parents"),
        "{}",
        err.error_message
    );
    assert!(pipeline.codebuild.started().is_empty());
}

#[tokio::test]
async fn missing_config_fails_at_init_naming_the_variable() {
    let binary = gild_tests::bin_path("trigger").expect("trigger built");
    let env: Vec<(String, String)> = gild_tests::aws::lambda_env("http://127.0.0.1:9");
    let trigger = LambdaProcess::spawn(&binary, "gild-trigger", &env)
        .await
        .expect("spawn");
    let result = trigger.invoke(&serde_json::json!({})).await;
    let Err(gild_tests::HarnessError::FunctionDied { logs }) = result else {
        panic!("expected the function to die at init, got {result:?}");
    };
    assert!(logs.contains("GILD_BAKE_PROJECT"), "{logs}");
}
