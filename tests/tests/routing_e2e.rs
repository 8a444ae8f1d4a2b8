//! Which functions each event reaches, decided by the deployed stack's own
//! EventBridge rules (`gild_tests::routing`), not by the harness: the same
//! router every end-to-end test and `make demo` deliver through.

use gild_tests::events::sample;
use gild_tests::git::TestRepo;
use gild_tests::pipeline::Pipeline;
use serde_json::Value;

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
"#;

fn with_project(mut event: Value, project: &str) -> Value {
    event["detail"]["project-name"] = project.into();
    event
}

#[tokio::test]
async fn events_reach_exactly_the_functions_the_deployed_rules_target() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let (repo, first) = TestRepo::images(CATALOG, &["debian12-base"], &[]).expect("repository");
    let pipeline = Pipeline::start(repo).await.expect("pipeline");
    let router = &pipeline.router;
    let bake = pipeline.bake_project().to_owned();
    let test = pipeline.test_project().to_owned();
    let mut other_repository = pipeline
        .push_event("main", Some(&first), &first)
        .expect("push");
    other_repository["resources"] =
        serde_json::json!(["arn:aws:codecommit:us-east-1:123456789012:someone-elses-repo"]);
    let mut other_account_schedule = pipeline
        .schedule_event("2026-11-11T03:00:00Z")
        .expect("schedule");
    other_account_schedule["resources"] =
        serde_json::json!(["arn:aws:events:us-east-1:123456789012:rule/another-rule"]);
    let pull_request = |event: &str, repository: &str| {
        gild_tests::events::pull_request(repository, event, 7, &first, &first, "rev-1")
            .expect("pull request")
    };
    let repository = pipeline.repository().to_owned();
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "a pull request opened",
            pull_request("pullRequestCreated", &repository),
            vec!["trigger"],
        ),
        (
            "a pull request merged",
            pull_request("pullRequestMergeStatusUpdated", &repository),
            vec!["trigger"],
        ),
        (
            "a pull request of another repository",
            pull_request("pullRequestCreated", "someone-elses-repo"),
            vec![],
        ),
        (
            "a comment on a pull request",
            pull_request("commentOnPullRequestCreated", &repository),
            vec![],
        ),
        (
            "push to the tracked branch",
            pipeline
                .push_event("main", Some(&first), &first)
                .expect("push"),
            vec!["trigger"],
        ),
        (
            "push to another branch",
            pipeline
                .push_event("feature/cis", Some(&first), &first)
                .expect("push"),
            vec![],
        ),
        ("push to another repository", other_repository, vec![]),
        (
            "the schedule rule's own event",
            pipeline
                .schedule_event("2026-11-11T03:00:00Z")
                .expect("schedule"),
            vec!["trigger"],
        ),
        (
            "another rule's scheduled event",
            other_account_schedule,
            vec![],
        ),
        (
            "gild build",
            sample("manual-build.json").expect("sample"),
            vec!["trigger"],
        ),
        (
            "a bake ended",
            with_project(sample("codebuild-bake-failed.json").expect("sample"), &bake),
            vec!["bake-finished", "trigger"],
        ),
        (
            "a test ended",
            with_project(
                sample("codebuild-test-succeeded.json").expect("sample"),
                &test,
            ),
            vec!["test-finished", "trigger"],
        ),
        (
            "another project's build ended (a slot is free)",
            with_project(
                sample("codebuild-bake-failed.json").expect("sample"),
                "someone-elses-project",
            ),
            vec!["trigger"],
        ),
        (
            "a bake still running",
            with_project(
                sample("codebuild-bake-in-progress.json").expect("sample"),
                &bake,
            ),
            vec![],
        ),
    ];
    for (what, event, expected) in cases {
        let targets = router.targets(&event).await.expect("routing");
        assert_eq!(targets, expected, "{what}");
    }
}
