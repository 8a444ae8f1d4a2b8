//! Pull requests end to end, against the emulator: the real github-webhook
//! binary (a Function URL event signed in the test) and the real
//! completion binaries, GitHub's API answered by the stub (statuses and
//! comments recorded), the stack as deployed, every call judged by the IAM
//! gate. A change to the dotnet role breaks the IIS site's consumer test;
//! the fix supersedes the run it overtakes; the fix passes; merging it
//! bakes and promotes each family once. No candidate touches a parameter
//! or the production topic.

use gild_tests::custom_resource::{self, ResponseBucket};
use gild_tests::events;
use gild_tests::git::TestRepo;
use gild_tests::github::GitHubStub;
use gild_tests::pipeline::Pipeline;
use gild_tests::runtime_api::LambdaProcess;
use gild_tests::scenario::Functions;
use gild_tests::standin::{register_base_image, BuildStandIn};
use gild_tests::webhook;
use serde_json::{json, Value};

const REPOSITORY: &str = "acme/platform-images";
const TOKEN: &str = "test-token-for-the-local-stub";
const WEBHOOK_SECRET: &str = "gild-sample-secret";
const NUMBER: u64 = 17;
const CHECK: &str = "dotnet framework 4.7.2 or later";

const CATALOG: &str = r#"
[families.win2022-core-dotnet]
path = "images/win2022-core-dotnet"
os = "windows"
roles = ["dotnet"]

[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"
roles = ["dotnet", "iis"]

[consumers.payments-api]
families = ["win2022-iis"]
tests = "consumers/payments-api"
owner = "team-payments"
"#;

/// A delivery signed with the stack's webhook secret, as the Function URL
/// hands it over.
fn delivery(body: &str, event: &str, id: &str) -> Value {
    let signature = webhook::sign(WEBHOOK_SECRET, body.as_bytes());
    webhook::function_url_event(body, event, id, Some(signature)).expect("headers sample")
}

/// The images repository: main at the returned commit, the catalog, both
/// families' folders, the dotnet role and payments-api's tests.
fn repository() -> (TestRepo, String) {
    let repo = TestRepo::new().expect("repo");
    repo.write("gild.toml", CATALOG).expect("write");
    for path in [
        "images/win2022-core-dotnet/core.pkr.hcl",
        "images/win2022-iis/iis.pkr.hcl",
        "ansible/roles/dotnet/tasks/main.yml",
        "consumers/payments-api/run.ps1",
    ] {
        repo.write(path, "# v1\n").expect("write");
    }
    let first = repo.commit("initial").expect("commit");
    (repo, first)
}

fn pull_request_body(action: &str, base: &str, head: &str, merged: bool) -> String {
    let mut body = events::sample("github-pull-request.body.json").expect("sample");
    body["action"] = action.into();
    body["number"] = NUMBER.into();
    body["repository"]["full_name"] = REPOSITORY.into();
    let pr = &mut body["pull_request"];
    pr["number"] = NUMBER.into();
    pr["head"]["sha"] = head.into();
    pr["head"]["repo"]["full_name"] = REPOSITORY.into();
    pr["base"]["sha"] = base.into();
    pr["base"]["ref"] = "main".into();
    pr["base"]["repo"]["full_name"] = REPOSITORY.into();
    pr["merged"] = merged.into();
    body.to_string()
}

fn push_body(before: &str, after: &str, paths: &[&str]) -> String {
    let mut body = events::sample("github-push.body.json").expect("sample");
    body["before"] = before.into();
    body["after"] = after.into();
    body["repository"]["full_name"] = REPOSITORY.into();
    let commit = json!({"id": after, "tree_id": after, "distinct": true, "message": "merge",
        "timestamp": "2026-11-25T10:00:00Z", "url": format!("https://github.com/{REPOSITORY}/commit/{after}"),
        "author": {"name": "carol", "email": "carol@example.com"},
        "committer": {"name": "carol", "email": "carol@example.com"},
        "added": [], "modified": paths, "removed": []});
    body["commits"] = json!([commit.clone()]);
    body["head_commit"] = commit;
    body.to_string()
}

async fn call(hook: &LambdaProcess, event: &Value) -> Value {
    let response = hook
        .invoke(event)
        .await
        .expect("invocation")
        .outcome
        .unwrap_or_else(|e| panic!("webhook error {e}\n{}", hook.logs()));
    // 202: accepted, nothing to start (a closed pull request's clean-up).
    let status = response["statusCode"].as_u64().unwrap_or_default();
    assert!(matches!(status, 200 | 202), "{response}\n{}", hook.logs());
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

/// The last status `context` got on `sha`.
fn status(github: &GitHubStub, sha: &str, context: &str) -> Value {
    github
        .statuses(sha)
        .into_iter()
        .rfind(|s| s["context"] == context)
        .unwrap_or_else(|| panic!("no {context} status on {sha}"))
}

#[tokio::test]
async fn a_pull_request_fails_a_consumer_is_fixed_passes_and_merges_into_one_promotion_per_family()
{
    if gild_tests::moto::skip_requested() {
        return;
    }
    // The images repository: main at c1; the pull request's branch.
    let (repo, c1) = repository();
    repo.create_branch("dotnet-481").expect("branch");
    repo.write("ansible/roles/dotnet/tasks/main.yml", "# 4.8.1 only\n")
        .expect("write");
    let broken = repo.commit("dotnet: 4.8.1 only").expect("commit");
    repo.write("ansible/roles/dotnet/tasks/main.yml", "# 4.8.1 and 4.7.2\n")
        .expect("write");
    let fix = repo.commit("dotnet: keep 4.7.2").expect("commit");
    repo.write(
        "ansible/roles/dotnet/tasks/main.yml",
        "# 4.8.1 and 4.7.2, tidy\n",
    )
    .expect("write");
    let tidy = repo.commit("dotnet: tidy").expect("commit");

    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    let pipeline = Pipeline::start_with(moto, repo, webhook::github_options(REPOSITORY))
        .await
        .expect("pipeline");
    let github = GitHubStub::start(pipeline.repo.path().to_path_buf(), REPOSITORY, TOKEN)
        .await
        .expect("github stub");
    webhook::set_secrets(&pipeline, WEBHOOK_SECRET, TOKEN)
        .await
        .expect("secrets");
    let extra = vec![("GILD_GITHUB_API_URL".to_owned(), github.api_url())];
    let hook = pipeline
        .spawn_with("github-webhook", &extra)
        .await
        .expect("webhook");
    let functions = Functions::spawn_with(&pipeline, &extra)
        .await
        .expect("functions");
    let base = register_base_image(&pipeline.aws, "windows-2022-base")
        .await
        .expect("base image");
    let standin =
        BuildStandIn::new(&pipeline, &base).fail_check(Some(&broken), "payments-api", CHECK);
    let candidates_of = |sha: &str| {
        pipeline
            .codebuild
            .started()
            .into_iter()
            .filter(|b| {
                b.env_value("GILD_DEDUPE_KEY") == Some(&format!("pr:{REPOSITORY}#{NUMBER}:{sha}"))
            })
            .count()
    };

    // 1. Opened at `broken`: a candidate of each family the role reaches.
    github.open_pull_request(NUMBER, &c1, &broken);
    let opened = call(
        &hook,
        &delivery(
            &pull_request_body("opened", &c1, &broken, false),
            "pull_request",
            "d1",
        ),
    )
    .await;
    assert_eq!(
        opened["started"].as_array().map(Vec::len),
        Some(2),
        "{opened}"
    );
    assert_eq!(
        status(&github, &broken, "gild/win2022-iis")["state"],
        "pending"
    );
    functions
        .settle(&pipeline, &standin, 1, 1)
        .await
        .expect("settle");
    let iis = status(&github, &broken, "gild/win2022-iis");
    assert_eq!(iis["state"], "failure", "{iis}");
    let description = iis["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("payments-api (team-payments)") && description.contains(CHECK),
        "{iis}"
    );
    assert_eq!(
        status(&github, &broken, "gild/win2022-core-dotnet")["state"],
        "success"
    );
    let comments = github.comments(NUMBER);
    assert_eq!(
        comments.len(),
        1,
        "one comment, edited in place: {comments:?}"
    );
    let body = comments[0]["body"].as_str().unwrap_or_default();
    assert!(body.contains("payments-api (team-payments)"), "{body}");

    // 2. The fix: its bakes finish and its tests start; then a tidy-up
    // overtakes it, stopping those tests and removing the fix's images.
    github.open_pull_request(NUMBER, &c1, &fix);
    call(
        &hook,
        &delivery(
            &pull_request_body("synchronize", &c1, &fix, false),
            "pull_request",
            "d2",
        ),
    )
    .await;
    for done in pipeline.run_builds(&standin).await.expect("bakes") {
        for target in functions.targets(&done.event).await.expect("targets") {
            functions
                .deliver_to(target, &done.event)
                .await
                .expect("deliver");
        }
    }
    let fix_images = fix_images(&pipeline, &fix).await;
    assert_eq!(fix_images.len(), 2, "both of the fix's candidates baked");
    github.open_pull_request(NUMBER, &c1, &tidy);
    let tidied = call(
        &hook,
        &delivery(
            &pull_request_body("synchronize", &c1, &tidy, false),
            "pull_request",
            "d3",
        ),
    )
    .await;
    assert_eq!(
        tidied["superseded"].as_array().map(Vec::len),
        Some(2),
        "{tidied}"
    );
    assert_eq!(
        pipeline.codebuild.stopped().len(),
        2,
        "the fix's two test builds stopped"
    );
    assert!(
        fix_images_left(&pipeline, &fix_images).await.is_empty(),
        "the fix's images removed"
    );
    let superseded = status(&github, &fix, "gild/win2022-iis");
    assert_eq!(superseded["state"], "error");
    assert!(
        superseded["description"]
            .as_str()
            .unwrap_or_default()
            .contains("superseded by"),
        "{superseded}"
    );

    // 3. The tidy head passes, for both families, on one comment.
    functions
        .settle(&pipeline, &standin, 2, 7)
        .await
        .expect("settle");
    for family in ["win2022-iis", "win2022-core-dotnet"] {
        let passed = status(&github, &tidy, &format!("gild/{family}"));
        assert_eq!(passed["state"], "success", "{family}: {passed}");
    }
    assert_eq!(github.comments(NUMBER).len(), 1);
    assert_eq!(
        candidates_of(&tidy),
        4,
        "two bakes and two tests for the tidy head"
    );
    // Nothing of the candidates reached production.
    for family in ["win2022-iis", "win2022-core-dotnet"] {
        assert!(
            pipeline
                .parameter_history(family)
                .await
                .expect("history")
                .is_empty(),
            "{family}"
        );
    }
    assert!(
        pipeline
            .announcements()
            .await
            .expect("announcements")
            .is_empty(),
        "a candidate was announced"
    );

    // 4. Merged: main moves to the tidy head; one production bake per family.
    pipeline.repo.checkout("main").expect("checkout");
    pipeline
        .repo
        .git(&["merge", "--ff-only", "dotnet-481"])
        .expect("merge");
    call(
        &hook,
        &delivery(
            &pull_request_body("closed", &c1, &tidy, true),
            "pull_request",
            "d4",
        ),
    )
    .await;
    call(
        &hook,
        &delivery(
            &push_body(&c1, &tidy, &["ansible/roles/dotnet/tasks/main.yml"]),
            "push",
            "d5",
        ),
    )
    .await;
    functions
        .settle(&pipeline, &standin, 1, 3)
        .await
        .expect("settle");
    let production: Vec<_> = pipeline
        .codebuild
        .started()
        .into_iter()
        .filter(|b| b.project_name == pipeline.bake_project())
        .filter(|b| b.env_value("GILD_TRIGGER") == Some("push"))
        .collect();
    assert_eq!(production.len(), 2, "one production bake per family");
    for family in ["win2022-iis", "win2022-core-dotnet"] {
        assert_eq!(
            pipeline
                .parameter_history(family)
                .await
                .expect("history")
                .len(),
            1,
            "{family} promoted once"
        );
    }
    assert_eq!(
        pipeline.announcements().await.expect("announcements").len(),
        2
    );
    pipeline.assert_every_call_allowed();
}

/// A pull request from a fork would run its code with the bake role's
/// permissions: it builds nothing and its head says why, until a
/// maintainer adds the `gild:validate` label.
#[tokio::test]
async fn a_forks_pull_request_builds_nothing_until_a_maintainer_labels_it() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, c1) = repository();
    repo.create_branch("from-a-fork").expect("branch");
    repo.write("images/win2022-iis/iis.pkr.hcl", "# curl | sh\n")
        .expect("write");
    let head = repo.commit("iis: a stranger's change").expect("commit");
    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    let pipeline = Pipeline::start_with(moto, repo, webhook::github_options(REPOSITORY))
        .await
        .expect("pipeline");
    let github = GitHubStub::start(pipeline.repo.path().to_path_buf(), REPOSITORY, TOKEN)
        .await
        .expect("github stub");
    webhook::set_secrets(&pipeline, WEBHOOK_SECRET, TOKEN)
        .await
        .expect("secrets");
    github.open_pull_request(NUMBER, &c1, &head);
    let extra = vec![("GILD_GITHUB_API_URL".to_owned(), github.api_url())];
    let hook = pipeline
        .spawn_with("github-webhook", &extra)
        .await
        .expect("webhook");
    let fork_body = |action: &str, labelled: bool| {
        let mut body: Value =
            serde_json::from_str(&pull_request_body(action, &c1, &head, false)).expect("json");
        body["pull_request"]["head"]["repo"]["full_name"] = "mallory/platform-images".into();
        body["pull_request"]["head"]["repo"]["fork"] = true.into();
        if labelled {
            body["label"] = json!({"name": "gild:validate"});
            body["pull_request"]["labels"] = json!([{"name": "gild:validate"}]);
        }
        body.to_string()
    };

    let refused = call(
        &hook,
        &delivery(&fork_body("opened", false), "pull_request", "f1"),
    )
    .await;
    assert!(
        refused["started"].as_array().is_some_and(Vec::is_empty),
        "{refused}"
    );
    assert!(pipeline.codebuild.started().is_empty(), "a fork's code ran");
    let why = status(&github, &head, "gild");
    assert_eq!(why["state"], "error");
    let description = why["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("fork") && description.contains("gild:validate"),
        "{why}"
    );

    let labelled = call(
        &hook,
        &delivery(&fork_body("labeled", true), "pull_request", "f2"),
    )
    .await;
    assert_eq!(
        labelled["started"].as_array().map(Vec::len),
        Some(1),
        "{labelled}"
    );
    assert_eq!(
        status(&github, &head, "gild/win2022-iis")["state"],
        "pending"
    );
    pipeline.assert_every_call_allowed();
}

/// The images the fix's candidates baked (gild:candidate tagged).
async fn fix_images(pipeline: &Pipeline, head: &str) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&pipeline.aws);
    let out = ec2
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:gild:source-commit")
                .values(head)
                .build(),
        )
        .send()
        .await
        .expect("DescribeImages");
    out.images()
        .iter()
        .filter(|i| i.tags().iter().any(|t| t.key() == Some("gild:candidate")))
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect()
}

async fn fix_images_left(pipeline: &Pipeline, ids: &[String]) -> Vec<String> {
    let ec2 = aws_sdk_ec2::Client::new(&pipeline.aws);
    let out = ec2
        .describe_images()
        .set_image_ids(Some(ids.to_vec()))
        .send()
        .await;
    match out {
        Ok(out) => out
            .images()
            .iter()
            .filter(|i| i.state().map(|s| s.as_str()) != Some("deregistered"))
            .filter_map(|i| i.image_id().map(str::to_owned))
            .collect(),
        // moto refuses unknown ids: every one of them is gone.
        Err(_) => Vec::new(),
    }
}

/// The same flow on a CodeCommit-hosted stack: CodeCommit's pull-request
/// events routed by the stack's own `PullRequestRule` to the real trigger,
/// the changed files from `GetPullRequest` and `GetDifferences`, results as
/// one comment per head and gild's approval of the revision, through the
/// CodeCommit stub and the IAM gate (pull-request calls judged on the
/// stack's one repository).
#[tokio::test]
async fn a_codecommit_pull_request_is_revoked_then_approved_and_merges_into_one_promotion_per_family(
) {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, c1) = repository();
    repo.create_branch("iis-only").expect("branch");
    repo.write("images/win2022-iis/iis.pkr.hcl", "# v2\n")
        .expect("write");
    let broken = repo.commit("iis: v2").expect("commit");
    repo.write("images/win2022-iis/iis.pkr.hcl", "# v2, fixed\n")
        .expect("write");
    let fix = repo.commit("iis: fixed").expect("commit");
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "windows-2022-base")
        .await
        .expect("base image");
    let standin =
        BuildStandIn::new(&pipeline, &base).fail_check(Some(&broken), "payments-api", CHECK);
    let open = |head: &str, revision: &str| {
        pipeline
            .codecommit
            .open_pull_request(gild_tests::codecommit::StubPullRequest {
                id: "7".into(),
                source_reference: "refs/heads/iis-only".into(),
                destination_reference: "refs/heads/main".into(),
                source_commit: head.into(),
                destination_commit: c1.clone(),
                revision_id: revision.into(),
            })
    };
    let event = |kind: &str, head: &str, revision: &str| {
        events::pull_request(pipeline.repository(), kind, 7, head, &c1, revision).expect("event")
    };

    // The stack's approval-rule template, made as CloudFormation makes it
    // (through the approval-template function) before the pull request.
    let bucket = ResponseBucket::start().await.expect("bucket");
    let create =
        custom_resource::Request::of(&pipeline, "Create", "ApprovalRuleTemplate").expect("request");
    let made = custom_resource::play(&pipeline, &bucket, &create)
        .await
        .expect("template");
    assert_eq!(made.answers[0]["Status"], "SUCCESS", "{:?}", made.answers);
    let console = aws_sdk_codecommit::Client::new(&gild_tests::aws::sdk_config(
        &pipeline.codecommit.endpoint(),
    ));
    let approved = |revision: &'static str| {
        let console = console.clone();
        async move {
            console
                .evaluate_pull_request_approval_rules()
                .pull_request_id("7")
                .revision_id(revision)
                .send()
                .await
                .expect("evaluate")
                .evaluation
                .expect("evaluation")
        }
    };

    open(&broken, "rev-1");
    let opened = functions
        .deliver_ok(&event("pullRequestCreated", &broken, "rev-1"))
        .await
        .expect("trigger");
    assert_eq!(
        opened["started"].as_array().map(Vec::len),
        Some(1),
        "{opened}"
    );
    functions
        .settle(&pipeline, &standin, 1, 5)
        .await
        .expect("settle");
    let comments = pipeline.codecommit.comments("7");
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("payments-api (team-payments)"),
        "{comments:?}"
    );
    assert_eq!(
        pipeline.codecommit.approvals("7").last(),
        Some(&("rev-1".to_owned(), "REVOKE".to_owned()))
    );
    // The failing revision cannot merge: gild's approval is required.
    let evaluation = approved("rev-1").await;
    assert!(!evaluation.approved(), "{evaluation:?}");
    assert_eq!(evaluation.approval_rules_not_satisfied().len(), 1);

    open(&fix, "rev-2");
    functions
        .deliver_ok(&event("pullRequestSourceBranchUpdated", &fix, "rev-2"))
        .await
        .expect("trigger");
    functions
        .settle(&pipeline, &standin, 2, 9)
        .await
        .expect("settle");
    assert_eq!(
        pipeline.codecommit.approvals("7").last(),
        Some(&("rev-2".to_owned(), "APPROVE".to_owned()))
    );
    // gild's approval, made as the ReviewerRole, satisfies the rule.
    let evaluation = approved("rev-2").await;
    assert!(evaluation.approved(), "{evaluation:?}");
    let on_fix: Vec<_> = pipeline
        .codecommit
        .comments("7")
        .into_iter()
        .filter(|c| c["afterCommitId"] == fix.as_str())
        .collect();
    assert_eq!(
        on_fix.len(),
        1,
        "one comment on the fixed head, edited in place"
    );
    assert!(pipeline
        .parameter_history("win2022-iis")
        .await
        .expect("history")
        .is_empty());
    assert!(pipeline
        .announcements()
        .await
        .expect("announcements")
        .is_empty());

    // Merged: a fast-forward of main, CodeCommit's push event and its
    // merge event.
    pipeline.repo.checkout("main").expect("checkout");
    pipeline
        .repo
        .git(&["merge", "--ff-only", "iis-only"])
        .expect("merge");
    functions
        .deliver_ok(&event("pullRequestMergeStatusUpdated", &fix, "rev-2"))
        .await
        .expect("trigger");
    functions
        .deliver_ok(&pipeline.push_event("main", Some(&c1), &fix).expect("push"))
        .await
        .expect("trigger");
    functions
        .settle(&pipeline, &standin, 1, 4)
        .await
        .expect("settle");
    assert_eq!(
        pipeline
            .parameter_history("win2022-iis")
            .await
            .expect("history")
            .len(),
        1
    );
    assert!(pipeline
        .parameter_history("win2022-core-dotnet")
        .await
        .expect("history")
        .is_empty());
    assert_eq!(
        pipeline.announcements().await.expect("announcements").len(),
        1
    );
    pipeline.assert_every_call_allowed();
}
