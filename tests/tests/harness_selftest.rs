//! Self-tests of the harness itself: if these fail, no end-to-end result
//! built on the harness can be trusted.
//!
//! Tests that need moto run unless `GILD_SKIP_MOTO=1`; a missing moto is a
//! failure, not a skip. For local development point `GILD_MOTO_SERVER` at a
//! moto_server executable (e.g. `GILD_MOTO_SERVER=$(which moto_server)`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, EnvironmentVariableType,
    ProjectArtifacts, ProjectEnvironment, ProjectSource, SourceType,
};
use bytes::Bytes;
use gild_tests::aws::{lambda_env, sdk_config};
use gild_tests::codebuild::CodeBuildProxy;
use gild_tests::codecommit::CodeCommitStub;
use gild_tests::git::TestRepo;
use gild_tests::moto::{self, MotoServer};
use gild_tests::runtime_api::{FunctionError, LambdaProcess};
use gild_tests::{bin_path, workspace_root, HarnessError};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const ECHO: &str = env!("CARGO_BIN_EXE_echo-lambda");

fn skip_without_moto(test: &str) -> bool {
    if moto::skip_requested() {
        eprintln!("skipping {test}: GILD_SKIP_MOTO=1");
        return true;
    }
    false
}

/// `GILD_KEEP_LOGS=1` keeps harness logs on purpose; only check cleanup
/// when it is off.
fn logs_cleaned_up(path: &Path) -> bool {
    std::env::var("GILD_KEEP_LOGS").is_ok_and(|v| v == "1") || !path.exists()
}

fn process_exists(pid: u32) -> bool {
    // Reaped processes disappear from /proc; a zombie would still be listed.
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn start_moto() -> MotoServer {
    match MotoServer::start().await {
        Ok(moto) => moto,
        Err(e) => panic!("{e}"),
    }
}

/// Raw HTTP for the checks the SDK cannot express (malformed input,
/// Runtime API as seen by a function).
async fn raw_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, http::HeaderMap, Bytes) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("valid request");
    let response = client.request(request).await.expect("request succeeds");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body readable")
        .to_bytes();
    (status, headers, body)
}

// ---------------------------------------------------------------- basics

#[test]
fn workspace_root_and_bin_path() {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root manifest");
    assert!(
        manifest.contains("[workspace]"),
        "{} is not the workspace root",
        root.display()
    );

    let found = bin_path("echo-lambda").expect("echo-lambda is built for integration tests");
    assert_eq!(
        found.canonicalize().expect("found path exists"),
        Path::new(ECHO).canonicalize().expect("cargo's path exists")
    );

    let missing = bin_path("no-such-binary-gild").expect_err("must not exist");
    assert!(matches!(missing, HarnessError::BinaryNotBuilt { .. }));
    assert!(missing.to_string().starts_with(
        "binary `no-such-binary-gild` not built: run `cargo build --workspace --bins`"
    ));
}

#[test]
fn lambda_env_uses_standard_aws_settings() {
    let env = lambda_env("http://127.0.0.1:1");
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key} missing from lambda_env"))
    };
    assert_eq!(get("AWS_ENDPOINT_URL"), "http://127.0.0.1:1");
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(get("AWS_DEFAULT_REGION"), "us-east-1");
    assert_eq!(get("AWS_ACCESS_KEY_ID"), "testing");
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), "testing");
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), "true");
}

#[test]
fn missing_moto_message_says_what_to_do() {
    let e = HarnessError::MotoNotFound {
        path: PathBuf::from("/nowhere/moto_server"),
    };
    assert_eq!(
        e.to_string(),
        "moto_server not found at /nowhere/moto_server: run `make tools` (installs the pinned moto into .venv)"
    );
}

// ---------------------------------------------------------------- moto

#[tokio::test]
async fn moto_serves_sdk_calls_resets_and_dies_on_drop() {
    if skip_without_moto("moto_serves_sdk_calls_resets_and_dies_on_drop") {
        return;
    }
    let moto = start_moto().await;
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config(&moto.endpoint()));

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    ddb.create_table()
        .table_name("selftest")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .send()
        .await
        .expect("CreateTable through sdk_config");
    let tables = ddb.list_tables().send().await.expect("ListTables");
    assert_eq!(tables.table_names(), ["selftest"]);

    moto.reset().await.expect("reset");
    let tables = ddb
        .list_tables()
        .send()
        .await
        .expect("ListTables after reset");
    assert!(
        tables.table_names().is_empty(),
        "reset left {:?}",
        tables.table_names()
    );

    let pid = moto.pid();
    let log = moto.log_path().to_path_buf();
    assert!(process_exists(pid));
    drop(moto);
    assert!(
        !process_exists(pid),
        "moto_server (pid {pid}) survived drop"
    );
    assert!(
        logs_cleaned_up(&log),
        "log of a passing run should be cleaned up"
    );
}

// ---------------------------------------------------------------- codecommit

struct Fixture {
    repo: TestRepo,
    c1: String,
    c2: String,
    c3: String,
}

fn three_commit_repo() -> Fixture {
    let repo = TestRepo::new().expect("test repo");
    repo.write("a.txt", "one\n").expect("write");
    repo.write("b.txt", "bee\n").expect("write");
    let c1 = repo.commit("first").expect("commit 1");
    repo.write("a.txt", "two\n").expect("write");
    repo.write("dir/c.txt", [0u8, 159, 146, 150])
        .expect("write binary");
    let c2 = repo.commit("second").expect("commit 2");
    repo.create_branch("release").expect("branch");
    repo.remove("b.txt").expect("remove");
    repo.write("d.sh", "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(
        repo.path().join("d.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let c3 = repo.commit("third").expect("commit 3");
    Fixture { repo, c1, c2, c3 }
}

fn codecommit_client(stub: &CodeCommitStub) -> aws_sdk_codecommit::Client {
    aws_sdk_codecommit::Client::new(&sdk_config(&stub.endpoint()))
}

#[tokio::test]
async fn test_repo_records_real_commits() {
    let f = three_commit_repo();
    assert_eq!(f.repo.branch_tip("main").expect("tip"), f.c3);
    assert_eq!(f.repo.branch_tip("release").expect("tip"), f.c2);
    assert_ne!(f.c1, f.c2);
    assert_eq!(f.c1.len(), 40);
    let dir = f.repo.path().to_path_buf();
    drop(f);
    assert!(
        !dir.exists(),
        "temporary repository must be removed on drop"
    );
}

#[tokio::test]
async fn codecommit_get_file_returns_git_content() {
    let f = three_commit_repo();
    let stub = CodeCommitStub::start(f.repo.path().to_path_buf(), "gild-config")
        .await
        .expect("stub");
    let cc = codecommit_client(&stub);

    let file = cc
        .get_file()
        .repository_name("gild-config")
        .commit_specifier(&f.c1)
        .file_path("a.txt")
        .send()
        .await
        .expect("GetFile at c1");
    assert_eq!(file.file_content().as_ref(), b"one\n");
    assert_eq!(file.commit_id(), f.c1);
    assert_eq!(file.file_path(), "a.txt");
    assert_eq!(file.file_size(), 4);
    assert_eq!(
        file.file_mode(),
        &aws_sdk_codecommit::types::FileModeTypeEnum::Normal
    );
    let blob = f
        .repo
        .git(&["rev-parse", &format!("{}:a.txt", f.c1)])
        .expect("blob id");
    assert_eq!(file.blob_id(), blob.trim());

    // Branch names resolve to their tip; binary content survives base64.
    let file = cc
        .get_file()
        .repository_name("gild-config")
        .commit_specifier("main")
        .file_path("/dir/c.txt")
        .send()
        .await
        .expect("GetFile on main");
    assert_eq!(file.commit_id(), f.c3);
    assert_eq!(file.file_content().as_ref(), [0u8, 159, 146, 150]);

    let exe = cc
        .get_file()
        .repository_name("gild-config")
        .commit_specifier(&f.c3)
        .file_path("d.sh")
        .send()
        .await
        .expect("GetFile d.sh");
    assert_eq!(
        exe.file_mode(),
        &aws_sdk_codecommit::types::FileModeTypeEnum::Executable
    );

    let missing = cc
        .get_file()
        .repository_name("gild-config")
        .commit_specifier(&f.c3)
        .file_path("b.txt")
        .send()
        .await
        .expect_err("b.txt was deleted in c3")
        .into_service_error();
    assert!(missing.is_file_does_not_exist_exception(), "{missing:?}");

    let wrong_repo = cc
        .get_file()
        .repository_name("other")
        .commit_specifier(&f.c3)
        .file_path("a.txt")
        .send()
        .await
        .expect_err("unknown repository")
        .into_service_error();
    assert!(
        wrong_repo.is_repository_does_not_exist_exception(),
        "{wrong_repo:?}"
    );

    let bad_commit = cc
        .get_file()
        .repository_name("gild-config")
        .commit_specifier("0123456789012345678901234567890123456789")
        .file_path("a.txt")
        .send()
        .await
        .expect_err("unknown commit")
        .into_service_error();
    assert!(
        bad_commit.is_commit_does_not_exist_exception(),
        "{bad_commit:?}"
    );

    // 3 successful + 3 failed calls, all counted.
    assert_eq!(stub.calls("GetFile"), 6);
}

#[tokio::test]
async fn codecommit_get_differences_paginates() {
    let f = three_commit_repo();
    let stub = CodeCommitStub::start(f.repo.path().to_path_buf(), "gild-config")
        .await
        .expect("stub");
    let cc = codecommit_client(&stub);

    let mut pages = cc
        .get_differences()
        .repository_name("gild-config")
        .before_commit_specifier(&f.c1)
        .after_commit_specifier(&f.c3)
        .max_results(1)
        .into_paginator()
        .send();
    let mut changes = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("GetDifferences page");
        page_count += 1;
        assert!(page.differences().len() <= 1, "page larger than MaxResults");
        for d in page.differences() {
            let path = d
                .after_blob()
                .or(d.before_blob())
                .map(|b| b.path().unwrap_or_default().to_string())
                .unwrap_or_default();
            let kind = d
                .change_type()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default();
            changes.push((path, kind));
        }
    }
    let expected: Vec<(String, String)> = [
        ("a.txt", "M"),
        ("b.txt", "D"),
        ("d.sh", "A"),
        ("dir/c.txt", "A"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .collect();
    assert_eq!(changes, expected);
    assert_eq!(page_count, 4);
    assert_eq!(stub.calls("GetDifferences"), 4);

    // Without a "before" commit every file of "after" is an addition, and
    // the default page size returns them in one call.
    let all = cc
        .get_differences()
        .repository_name("gild-config")
        .after_commit_specifier(&f.c1)
        .send()
        .await
        .expect("GetDifferences from empty tree");
    assert!(all.next_token().is_none());
    let added: Vec<_> = all
        .differences()
        .iter()
        .map(|d| {
            assert!(d.before_blob().is_none());
            let after = d.after_blob().expect("afterBlob");
            (
                after.path().unwrap_or_default().to_string(),
                after.mode().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        added,
        [
            ("a.txt".to_string(), "100644".to_string()),
            ("b.txt".to_string(), "100644".to_string())
        ]
    );

    let modified = cc
        .get_differences()
        .repository_name("gild-config")
        .before_commit_specifier(&f.c1)
        .after_commit_specifier(&f.c2)
        .after_path("a.txt")
        .send()
        .await
        .expect("GetDifferences with a path");
    let [only] = modified.differences() else {
        panic!("expected one difference, got {:?}", modified.differences());
    };
    let before = only.before_blob().expect("beforeBlob");
    let after = only.after_blob().expect("afterBlob");
    assert_ne!(before.blob_id(), after.blob_id());

    let bad_token = cc
        .get_differences()
        .repository_name("gild-config")
        .after_commit_specifier(&f.c3)
        .next_token("garbage")
        .send()
        .await
        .expect_err("invalid token")
        .into_service_error();
    assert!(
        bad_token.is_invalid_continuation_token_exception(),
        "{bad_token:?}"
    );
}

#[tokio::test]
async fn codecommit_get_branch_and_malformed_input() {
    let f = three_commit_repo();
    let stub = CodeCommitStub::start(f.repo.path().to_path_buf(), "gild-config")
        .await
        .expect("stub");
    let cc = codecommit_client(&stub);

    let branch = cc
        .get_branch()
        .repository_name("gild-config")
        .branch_name("release")
        .send()
        .await
        .expect("GetBranch");
    let info = branch.branch().expect("branch info");
    assert_eq!(info.branch_name(), Some("release"));
    assert_eq!(info.commit_id(), Some(f.c2.as_str()));

    let main = cc
        .get_branch()
        .repository_name("gild-config")
        .branch_name("main")
        .send()
        .await
        .expect("GetBranch main");
    assert_eq!(
        main.branch().and_then(|b| b.commit_id()),
        Some(f.c3.as_str())
    );

    let missing = cc
        .get_branch()
        .repository_name("gild-config")
        .branch_name("nope")
        .send()
        .await
        .expect_err("no such branch")
        .into_service_error();
    assert!(missing.is_branch_does_not_exist_exception(), "{missing:?}");

    let url = stub.endpoint();
    let target = |op: &str| format!("CodeCommit_20150413.{op}");
    for (op, body) in [
        ("GetFile", &b"not json"[..]),
        ("GetFile", br#"{"repositoryName": 5}"#),
        ("GetDifferences", br#"[1,2,3]"#),
        ("GetBranch", b""),
        (
            "GetFile",
            br#"{"repositoryName":"gild-config","filePath":"../../etc/passwd"}"#,
        ),
        (
            "GetDifferences",
            br#"{"repositoryName":"gild-config","afterCommitSpecifier":"--output=/tmp/x"}"#,
        ),
        (
            "GetDifferences",
            br#"{"repositoryName":"gild-config","afterCommitSpecifier":"main","MaxResults":0}"#,
        ),
        ("DeleteRepository", b"{}"),
    ] {
        let (status, headers, body) = raw_request(
            "POST",
            &url,
            &[
                ("x-amz-target", &target(op)),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            body,
        )
        .await;
        assert_eq!(status, 400, "{op}: {}", String::from_utf8_lossy(&body));
        let error: Value = serde_json::from_slice(&body).expect("JSON error body");
        let code = error["__type"].as_str().expect("__type");
        assert_eq!(
            headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some(code)
        );
        assert!(error["message"].is_string());
    }
    // The stub still works after all that.
    cc.get_branch()
        .repository_name("gild-config")
        .branch_name("main")
        .send()
        .await
        .expect("GetBranch after malformed input");
}

// ---------------------------------------------------------------- codebuild

/// A bake's StartBuild with idempotency token `tok-1` and two overrides.
fn start_tok_1(
    client: &aws_sdk_codebuild::Client,
) -> aws_sdk_codebuild::operation::start_build::builders::StartBuildFluentBuilder {
    client
        .start_build()
        .project_name("gild-bake")
        .source_version("0123abc")
        .idempotency_token("tok-1")
        .environment_variables_override(
            EnvironmentVariable::builder()
                .name("GILD_IMAGE")
                .value("base-al2023")
                .r#type(EnvironmentVariableType::Plaintext)
                .build()
                .expect("env var"),
        )
        .environment_variables_override(
            EnvironmentVariable::builder()
                .name("GILD_COMMIT")
                .value("0123abc")
                .build()
                .expect("env var"),
        )
}

/// The `gild-bake` project, created through `client`.
async fn create_bake_project(client: &aws_sdk_codebuild::Client) {
    client
        .create_project()
        .name("gild-bake")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::NoSource)
                // moto (5.2.x) insists on a location even for NO_SOURCE.
                .location("none")
                .buildspec("version: 0.2")
                .build()
                .expect("source"),
        )
        .artifacts(
            ProjectArtifacts::builder()
                .r#type(ArtifactsType::NoArtifacts)
                .build()
                .expect("artifacts"),
        )
        .environment(
            ProjectEnvironment::builder()
                .r#type(EnvironmentType::LinuxContainer)
                .image("aws/codebuild/amazonlinux-x86_64-standard:5.0")
                .compute_type(ComputeType::BuildGeneral1Small)
                .build()
                .expect("environment"),
        )
        .service_role("arn:aws:iam::123456789012:role/gild-codebuild")
        .send()
        .await
        .expect("CreateProject");
}

#[tokio::test]
async fn codebuild_proxy_records_overrides_and_moto_keeps_the_build() {
    if skip_without_moto("codebuild_proxy_records_overrides_and_moto_keeps_the_build") {
        return;
    }
    let moto = start_moto().await;
    let proxy = CodeBuildProxy::start(&moto.endpoint())
        .await
        .expect("proxy");
    let via_proxy = aws_sdk_codebuild::Client::new(&sdk_config(&proxy.endpoint()));
    let direct = aws_sdk_codebuild::Client::new(&sdk_config(&moto.endpoint()));

    create_bake_project(&via_proxy).await;

    let started = start_tok_1(&via_proxy)
        .send()
        .await
        .expect("StartBuild through the proxy");
    let build = started.build_value().expect("build in response");

    let recorded = proxy.started();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let r = &recorded[0];
    assert_eq!(r.project_name, "gild-bake");
    assert_eq!(r.source_version.as_deref(), Some("0123abc"));
    assert_eq!(r.idempotency_token.as_deref(), Some("tok-1"));
    assert_eq!(
        r.env,
        [
            ("GILD_IMAGE".to_string(), "base-al2023".to_string()),
            ("GILD_COMMIT".to_string(), "0123abc".to_string())
        ]
    );
    assert_eq!(Some(r.build_id.as_str()), build.id());
    assert_eq!(Some(r.arn.as_str()), build.arn());
    assert_eq!(proxy.calls("StartBuild"), 1);
    assert_eq!(proxy.calls("CreateProject"), 1);

    // moto, asked directly, knows the build the proxy forwarded.
    let ids = direct
        .list_builds_for_project()
        .project_name("gild-bake")
        .send()
        .await
        .expect("ListBuildsForProject");
    assert_eq!(ids.ids(), std::slice::from_ref(&r.build_id));

    // Failed StartBuilds are forwarded unchanged and not recorded.
    let err = via_proxy
        .start_build()
        .project_name("no-such-project")
        .send()
        .await
        .expect_err("unknown project")
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_eq!(proxy.started().len(), 1);

    // The same token and request within CodeBuild's 5 minutes: the first
    // build again, and moto never sees the repeat.
    let again = start_tok_1(&via_proxy)
        .send()
        .await
        .expect("a repeated StartBuild");
    assert_eq!(again.build_value().and_then(|b| b.id()), build.id());
    assert_eq!((proxy.started().len(), proxy.token_repeats()), (1, 1));
    // The same token with another parameter: CodeBuild's parameter mismatch.
    let err = via_proxy
        .start_build()
        .project_name("gild-bake")
        .source_version("4567def")
        .idempotency_token("tok-1")
        .send()
        .await
        .expect_err("same token, other parameters")
        .into_service_error();
    assert!(err.is_invalid_input_exception(), "{err:?}");
    let ids = direct
        .list_builds_for_project()
        .project_name("gild-bake")
        .send()
        .await
        .expect("ListBuildsForProject");
    assert_eq!(ids.ids().len(), 1, "{ids:?}");
}

/// A caller that hangs up mid-`StartBuild` (a function killed while it
/// waits) still gets its build, token and all, as from CodeBuild: its retry
/// with the same token is answered with that build, not a second one.
#[tokio::test]
async fn codebuild_proxy_finishes_a_start_whose_caller_hung_up() {
    if skip_without_moto("codebuild_proxy_finishes_a_start_whose_caller_hung_up") {
        return;
    }
    let moto = start_moto().await;
    let direct = aws_sdk_codebuild::Client::new(&sdk_config(&moto.endpoint()));
    create_bake_project(&direct).await;
    let proxy = CodeBuildProxy::start_limited(
        &moto.endpoint(),
        gild_tests::codebuild::Limits {
            latency: Duration::from_millis(400),
            ..Default::default()
        },
    )
    .await
    .expect("proxy");
    let via_proxy = aws_sdk_codebuild::Client::new(&sdk_config(&proxy.endpoint()));

    let hung_up =
        tokio::time::timeout(Duration::from_millis(100), start_tok_1(&via_proxy).send()).await;
    assert!(hung_up.is_err(), "the caller gave up before the answer");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let retried = start_tok_1(&via_proxy).send().await.expect("the retry");

    assert_eq!((proxy.started().len(), proxy.token_repeats()), (1, 1));
    let ids = direct
        .list_builds_for_project()
        .project_name("gild-bake")
        .send()
        .await
        .expect("ListBuildsForProject");
    assert_eq!(ids.ids().len(), 1, "{ids:?}");
    assert_eq!(
        retried.build_value().and_then(|b| b.id()),
        ids.ids().first().map(String::as_str)
    );
}

// ---------------------------------------------------------------- runtime API

#[tokio::test]
async fn echo_lambda_round_trips_and_reports_errors() {
    let lambda = LambdaProcess::spawn(Path::new(ECHO), "echo", &[])
        .await
        .expect("spawn echo-lambda");
    let pid = lambda.pid();
    let log = lambda.log_path().to_path_buf();

    let event = json!({"hello": "world", "n": [1, 2, 3], "nested": {"ok": true}});
    let first = lambda.invoke(&event).await.expect("invoke");
    assert_eq!(first.outcome, Ok(event.clone()), "logs:\n{}", lambda.logs());
    assert_eq!(first.request_id.len(), 36);

    let failed = lambda
        .invoke(&json!({"fail": true}))
        .await
        .expect("invoke that fails");
    let Err(FunctionError {
        error_type,
        error_message,
    }) = &failed.outcome
    else {
        panic!("expected a FunctionError, got {:?}", failed.outcome);
    };
    assert_eq!(error_type, "EchoFailure");
    assert!(
        error_message.contains(&failed.request_id),
        "the function saw a different request id: {error_message}"
    );

    // The function keeps serving after an error, and ids are unique.
    let again = lambda.invoke(&json!(42)).await.expect("invoke after error");
    assert_eq!(again.outcome, Ok(json!(42)));
    assert_ne!(again.request_id, first.request_id);
    assert!(again.duration < Duration::from_secs(5));

    let init = lambda.init_duration().expect("init duration recorded");
    assert!(
        init > Duration::ZERO && init < Duration::from_secs(30),
        "{init:?}"
    );
    let rss = lambda.peak_rss_kib().expect("peak RSS readable");
    assert!(rss > 100, "implausible VmHWM {rss} KiB");
    assert!(
        lambda.logs().contains("echo-lambda: init"),
        "{}",
        lambda.logs()
    );

    assert!(process_exists(pid));
    drop(lambda);
    assert!(!process_exists(pid), "function process {pid} survived drop");
    assert!(
        logs_cleaned_up(&log),
        "log of a passing run should be cleaned up"
    );
}

#[tokio::test]
async fn dying_function_fails_invoke_promptly() {
    let lambda = LambdaProcess::spawn(Path::new(ECHO), "echo-exit", &[])
        .await
        .expect("spawn");
    let started = Instant::now();
    let err = lambda
        .invoke(&json!({"exit": true}))
        .await
        .expect_err("process exits mid-invocation");
    assert!(started.elapsed() < Duration::from_secs(10));
    let HarnessError::FunctionDied { logs } = &err else {
        panic!("expected FunctionDied, got {err}");
    };
    assert!(logs.contains("exiting on request"), "{logs}");
    assert!(logs.contains("function process exited"), "{logs}");

    // Later invocations fail at once too.
    let started = Instant::now();
    let again = lambda.invoke(&json!({})).await.expect_err("still dead");
    assert!(
        matches!(again, HarnessError::FunctionDied { .. }),
        "{again}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn function_failing_init_is_reported() {
    // lambda_runtime refuses to start with a malformed memory size: a
    // stand-in for any function that crashes before its first poll.
    let env = vec![(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(),
        "lots".to_string(),
    )];
    let lambda = LambdaProcess::spawn(Path::new(ECHO), "echo-bad-init", &env)
        .await
        .expect("spawn");
    let err = lambda
        .invoke(&json!({}))
        .await
        .expect_err("never initialized");
    assert!(matches!(err, HarnessError::FunctionDied { .. }), "{err}");
    assert!(lambda.init_duration().is_none());
}

#[tokio::test]
async fn slow_function_times_out() {
    let lambda = LambdaProcess::spawn(Path::new(ECHO), "echo-slow", &[])
        .await
        .expect("spawn")
        .with_timeout(Duration::from_millis(300));
    let err = lambda
        .invoke(&json!({"sleep_ms": 3000}))
        .await
        .expect_err("too slow");
    assert!(matches!(err, HarnessError::InvokeTimeout { .. }), "{err}");
}

/// Checks the wire protocol as a function sees it, with the test playing the
/// function: headers of `/next`, and 202 `{"status":"OK"}` for posts.
#[tokio::test]
async fn runtime_api_speaks_the_documented_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("bootstrap");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 600\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let lambda = LambdaProcess::spawn(&script, "manual", &[])
        .await
        .expect("spawn")
        .with_timeout(Duration::from_secs(20));
    let base = format!("http://{}/2018-06-01/runtime", lambda.runtime_api_address());

    let driver = async {
        let (status, headers, body) =
            raw_request("GET", &format!("{base}/invocation/next"), &[], b"").await;
        assert_eq!(status, 200);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("missing {name}"))
                .to_string()
        };
        let request_id = header("lambda-runtime-aws-request-id");
        assert_eq!(
            header("lambda-runtime-invoked-function-arn"),
            "arn:aws:lambda:us-east-1:123456789012:function:manual"
        );
        assert!(header("lambda-runtime-trace-id").starts_with("Root=1-"));
        let deadline: u128 = header("lambda-runtime-deadline-ms")
            .parse()
            .expect("epoch ms");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        assert!(
            deadline > now && deadline <= now + 20_000,
            "deadline {deadline}, now {now}"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("event"),
            json!({"k": 1})
        );

        let (status, _, body) = raw_request(
            "POST",
            &format!("{base}/invocation/{request_id}/error"),
            &[("lambda-runtime-function-error-type", "Runtime.Custom")],
            br#"{"errorType":"Custom","errorMessage":"by hand"}"#,
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("ack"),
            json!({"status": "OK"})
        );

        // A second answer for the same id is rejected, as by AWS.
        let (status, _, _) = raw_request(
            "POST",
            &format!("{base}/invocation/{request_id}/response"),
            &[],
            b"{}",
        )
        .await;
        assert_eq!(status, 400);
    };
    let event = json!({"k": 1});
    let (invocation, ()) = tokio::join!(lambda.invoke(&event), driver);
    let invocation = invocation.expect("invocation answered by hand");
    assert_eq!(
        invocation.outcome,
        Err(FunctionError {
            error_type: "Custom".to_string(),
            error_message: "by hand".to_string()
        })
    );

    // init/error makes pending and later invocations fail instead of hang.
    let (status, _, _) = raw_request(
        "POST",
        &format!("{base}/init/error"),
        &[("lambda-runtime-function-error-type", "Runtime.InitError")],
        br#"{"errorType":"InitError","errorMessage":"config missing"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let err = lambda.invoke(&json!({})).await.expect_err("init failed");
    let HarnessError::FunctionDied { logs } = err else {
        panic!("expected FunctionDied, got {err}");
    };
    assert!(logs.contains("InitError: config missing"), "{logs}");
}
