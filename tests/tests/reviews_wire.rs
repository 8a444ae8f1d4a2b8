//! The review adapters over the wire: `GitHubReviews` against the GitHub
//! stand-in, `CodeCommitReviews` (through `HostReviews`) against the
//! CodeCommit stand-in, both over real git repositories, and
//! `BuildControl` against moto's CodeBuild behind the recording proxy.
//! What each wrote is read back from what the stand-in recorded.
//!
//! - GitHub: statuses posted on the head with their fields (a description
//!   cut to GitHub's 140 characters; an unknown head refused with GitHub's
//!   422 kept); gild's comment created once then edited in place, someone
//!   else's comment quoting the marker left alone; two creators racing
//!   converge to one comment, and duplicates a race left are folded into
//!   the oldest; files paged past 100 with both sides of renames and
//!   without what only the destination changed; a listing at GitHub's
//!   3000-file cap is an error.
//! - CodeCommit: the comment posted on (destination, head) with a request
//!   token and then updated in place; a post retried after a lost answer
//!   makes no second comment, and a post with another body edits the
//!   existing one; APPROVE and REVOKE on the revision (asked of
//!   GetPullRequest when the event had none); a stale revision comes back
//!   with the `RevisionNotCurrentException` code; changed paths from the
//!   merge base, paged.
//! - CodeBuild: StopBuild stops a running bake and test build; a build
//!   that has ended, or was stopped before, is not an error; an unknown
//!   build is `NotFound`.

use gild_aws::codebuild::{CodeBuildBuilds, TestBuilds};
use gild_aws::codecommit_reviews::CodeCommitReviews;
use gild_aws::reviews::HostReviews;
use gild_core::event::BuildStatus;
use gild_core::ledger::BakeKey;
use gild_core::plan::Trigger;
use gild_core::ports::{
    BakeRequest, BuildControl, BuildInfo, Builds, PortError, PortResult, Reviews, SecretStage,
    Secrets, TestRequest, Tests,
};
use gild_core::pull_request::{Host, PullRequest};
use gild_core::review::{Status, StatusState, COMMENT_MARKER};
use gild_github::GitHubReviews;
use gild_tests::codebuild::CodeBuildProxy;
use gild_tests::codecommit::{CodeCommitStub, StubPullRequest};
use gild_tests::git::TestRepo;
use gild_tests::github::{GitHubStub, TOKEN_USER};
use gild_tests::pipeline::{create_stack, BAKE_PROJECT, TEST_PROJECT};
use serde_json::{json, Value};

const GITHUB_REPOSITORY: &str = "acme/platform-images";
const CODECOMMIT_REPOSITORY: &str = "platform-images";
const TOKEN: &str = "test-token-for-the-review-stub";
const NUMBER: u64 = 42;

/// The token as the secrets port hands it out.
struct Token;

impl Secrets for Token {
    async fn get(&self, _name: &str, stage: SecretStage) -> PortResult<Option<String>> {
        Ok((stage == SecretStage::Current).then(|| TOKEN.to_owned()))
    }
}

fn github_reviews(stub: &GitHubStub) -> GitHubReviews<Token> {
    GitHubReviews::new(stub.api_url(), Token, "gild/github-token").expect("adapter")
}

fn pull_request(host: Host, repository: &str, head: &str, destination: &str) -> PullRequest {
    PullRequest {
        host,
        repository: repository.into(),
        number: NUMBER,
        head: head.into(),
        destination: destination.into(),
        merge_base: None,
        revision: None,
        url: None,
    }
}

fn report(text: &str) -> String {
    format!("{COMMENT_MARKER}\n### gild\n{text}\n")
}

/// An images repository whose `feature` branch changes `changed` of
/// `files` template files and renames one, while `main` moves on with a
/// change of its own. Returns the repository, the destination tip (main)
/// and the head (feature).
fn diverged(files: usize, changed: usize) -> (TestRepo, String, String) {
    let repo = TestRepo::new().expect("repo");
    for i in 0..files {
        repo.write(&format!("images/fam-{i:04}/template.pkr.hcl"), "# v1\n")
            .expect("write");
    }
    repo.write("images/old-name/template.pkr.hcl", "# to be renamed\n")
        .expect("write");
    repo.write("README.md", "# images\n").expect("write");
    repo.commit("base").expect("commit");
    repo.create_branch("feature").expect("branch");
    repo.checkout("feature").expect("checkout");
    for i in 0..changed {
        repo.write(&format!("images/fam-{i:04}/template.pkr.hcl"), "# v2\n")
            .expect("write");
    }
    // The same content under another name: git (and GitHub) see a rename.
    repo.remove("images/old-name/template.pkr.hcl")
        .expect("remove");
    repo.write("images/new-name/template.pkr.hcl", "# to be renamed\n")
        .expect("write");
    let head = repo.commit("feature").expect("commit");
    repo.checkout("main").expect("checkout");
    repo.write("README.md", "# images, on main only\n")
        .expect("write");
    let destination = repo.commit("main moves on").expect("commit");
    (repo, destination, head)
}

fn expected_paths(changed: usize) -> Vec<String> {
    let mut paths: Vec<String> = (0..changed)
        .map(|i| format!("images/fam-{i:04}/template.pkr.hcl"))
        .chain([
            "images/old-name/template.pkr.hcl".to_owned(),
            "images/new-name/template.pkr.hcl".to_owned(),
        ])
        .collect();
    paths.sort();
    paths
}

// ------------------------------------------------------------------ GitHub

async fn github_world() -> (TestRepo, String, String, GitHubStub) {
    let (repo, destination, head) = diverged(3, 2);
    let stub = GitHubStub::start(repo.path().to_path_buf(), GITHUB_REPOSITORY, TOKEN)
        .await
        .expect("stub");
    stub.open_pull_request(NUMBER, &destination, &head);
    (repo, destination, head, stub)
}

#[tokio::test]
async fn github_statuses_are_posted_on_the_head_with_their_fields() {
    let (_repo, destination, head, stub) = github_world().await;
    let reviews = HostReviews::GitHub(github_reviews(&stub));
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);
    let long = "debian12-base's own tests failed: ".to_owned() + &"x".repeat(200);
    let statuses = [
        Status {
            context: "gild/debian12-base".into(),
            state: StatusState::Failure,
            description: long,
            target_url: Some("https://console.aws.amazon.com/codebuild/report/1".into()),
        },
        Status {
            context: "gild/al2023-base".into(),
            state: StatusState::Pending,
            description: "baking the candidate image".into(),
            target_url: None,
        },
    ];
    reviews
        .set_statuses(&pr, &statuses)
        .await
        .expect("statuses");

    let posted = stub.statuses(&head);
    assert_eq!(posted.len(), 2, "{posted:#?}");
    let fields = |s: &Value| {
        (
            s["context"].clone(),
            s["state"].clone(),
            s["target_url"].clone(),
        )
    };
    assert_eq!(
        fields(&posted[0]),
        (
            json!("gild/debian12-base"),
            json!("failure"),
            json!("https://console.aws.amazon.com/codebuild/report/1")
        )
    );
    let description = posted[0]["description"].as_str().expect("description");
    assert_eq!(description.chars().count(), 140, "{description}");
    assert!(description.starts_with("debian12-base's own tests failed: xxx"));
    assert!(description.ends_with('…'));
    assert_eq!(
        fields(&posted[1]),
        (json!("gild/al2023-base"), json!("pending"), Value::Null)
    );
    assert_eq!(posted[1]["description"], "baking the candidate image");
    assert!(stub.statuses(&destination).is_empty());

    // A head GitHub does not know: its 422 is kept, and is not retried.
    let unknown = pull_request(
        Host::GitHub,
        GITHUB_REPOSITORY,
        &"0".repeat(40),
        &destination,
    );
    let err = reviews
        .set_statuses(&unknown, &statuses[1..])
        .await
        .expect_err("unknown head");
    assert!(
        matches!(&err, PortError::Service { code, message, server_side: false, .. }
            if code == "422" && message.contains("No commit found")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

/// gild's comments on the pull request, as GitHub lists them.
fn gilds(stub: &GitHubStub) -> Vec<Value> {
    stub.comments(NUMBER)
        .into_iter()
        .filter(|c| c["user"]["login"] == TOKEN_USER)
        .collect()
}

#[tokio::test]
async fn github_comment_is_created_once_then_edited_in_place() {
    let (_repo, destination, head, stub) = github_world().await;
    let reviews = github_reviews(&stub);
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);
    // A reviewer quoting gild's comment, marker and all: not gild's.
    let quoted = stub.add_comment(NUMBER, "octocat", &report("> quoted"));

    reviews
        .upsert_comment(&pr, &report("pending"))
        .await
        .expect("create");
    let first = gilds(&stub);
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0]["body"], report("pending"));

    reviews
        .upsert_comment(&pr, &report("failure: payments-api (team-payments)"))
        .await
        .expect("edit");
    let second = gilds(&stub);
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0]["id"], first[0]["id"], "edited, not replaced");
    assert_eq!(
        second[0]["body"],
        report("failure: payments-api (team-payments)")
    );
    let all = stub.comments(NUMBER);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], quoted);
    assert_eq!(all[0]["body"], report("> quoted"), "left alone");
}

#[tokio::test]
async fn github_racing_creators_converge_to_one_comment() {
    let (_repo, destination, head, stub) = github_world().await;
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);
    let (a, b) = (github_reviews(&stub), github_reviews(&stub));
    // Both list before either creates: both create.
    stub.race_comment_listings(2);
    let (from_a, from_b) = (report("from a"), report("from b"));
    let (ra, rb) = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::join!(
            a.upsert_comment(&pr, &from_a),
            b.upsert_comment(&pr, &from_b)
        )
    })
    .await
    .expect("the racing writers finish");
    ra.expect("a");
    rb.expect("b");
    let left = gilds(&stub);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert!(
        left[0]["body"] == report("from a") || left[0]["body"] == report("from b"),
        "{left:#?}"
    );

    // Duplicates a race left behind are folded into the oldest.
    let (_repo, destination, head, stub) = github_world().await;
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);
    let oldest = stub.add_comment(NUMBER, TOKEN_USER, &report("one"));
    stub.add_comment(NUMBER, TOKEN_USER, &report("two"));
    stub.add_comment(NUMBER, TOKEN_USER, &report("three"));
    github_reviews(&stub)
        .upsert_comment(&pr, &report("latest"))
        .await
        .expect("upsert");
    let left = gilds(&stub);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["id"], oldest);
    assert_eq!(left[0]["body"], report("latest"));
}

#[tokio::test]
async fn github_files_are_paged_past_100_with_both_sides_of_renames() {
    let (repo, destination, head) = diverged(150, 120);
    let stub = GitHubStub::start(repo.path().to_path_buf(), GITHUB_REPOSITORY, TOKEN)
        .await
        .expect("stub");
    stub.open_pull_request(NUMBER, &destination, &head);
    let reviews = github_reviews(&stub);
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);

    let paths = reviews.changed_paths(&pr).await.expect("files");
    // 121 entries (120 changed, one renamed): two pages of 100. README.md
    // changed on main only, which is not the pull request's change.
    assert_eq!(paths, expected_paths(120));
    assert_eq!(stub.calls("files"), 2);

    let unknown = PullRequest {
        number: NUMBER + 1,
        ..pr.clone()
    };
    let err = reviews.changed_paths(&unknown).await.expect_err("unknown");
    assert!(matches!(err, PortError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn github_files_at_the_3000_file_cap_are_an_error() {
    let (repo, destination, head) = diverged(3000, 3000);
    let stub = GitHubStub::start(repo.path().to_path_buf(), GITHUB_REPOSITORY, TOKEN)
        .await
        .expect("stub");
    stub.open_pull_request(NUMBER, &destination, &head);
    let pr = pull_request(Host::GitHub, GITHUB_REPOSITORY, &head, &destination);
    let err = github_reviews(&stub)
        .changed_paths(&pr)
        .await
        .expect_err("the listing may be cut");
    assert!(
        matches!(&err, PortError::Service { code, server_side: false, .. } if code == "TooManyFiles"),
        "{err:?}"
    );
    assert_eq!(stub.calls("files"), 30, "every page read before judging");
}

// -------------------------------------------------------------- CodeCommit

const REVISION: &str = "1c5e2b8d0f7a4e6c9b3d5f7a1e3c5b7d9f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e";

struct CodeCommitWorld {
    _repo: TestRepo,
    stub: CodeCommitStub,
    reviews: HostReviews<GitHubReviews<Token>>,
    pr: PullRequest,
}

async fn codecommit_world(files: usize, changed: usize) -> CodeCommitWorld {
    let (repo, destination, head) = diverged(files, changed);
    let stub = CodeCommitStub::start(repo.path().to_path_buf(), CODECOMMIT_REPOSITORY)
        .await
        .expect("stub");
    stub.open_pull_request(StubPullRequest {
        id: NUMBER.to_string(),
        source_reference: "refs/heads/feature".into(),
        destination_reference: "refs/heads/main".into(),
        source_commit: head.clone(),
        destination_commit: destination.clone(),
        revision_id: REVISION.into(),
    });
    let client = aws_sdk_codecommit::Client::new(&gild_tests::aws::sdk_config(&stub.endpoint()));
    CodeCommitWorld {
        _repo: repo,
        stub,
        reviews: HostReviews::CodeCommit(CodeCommitReviews::new(client)),
        pr: pull_request(Host::CodeCommit, CODECOMMIT_REPOSITORY, &head, &destination),
    }
}

#[tokio::test]
async fn codecommit_comment_is_posted_on_the_head_then_updated_in_place() {
    let world = codecommit_world(3, 2).await;
    let (pr, stub) = (&world.pr, &world.stub);
    // Someone else's comment quoting the marker: CodeCommit will not let
    // gild edit it, so gild posts its own.
    let other = "arn:aws:iam::123456789012:user/reviewer";
    stub.add_comment_by("42", &pr.destination, &pr.head, other, &report("> quoted"));

    world
        .reviews
        .upsert_comment(pr, &report("pending"))
        .await
        .expect("post");
    let comments = stub.comments("42");
    assert_eq!(comments.len(), 2, "{comments:#?}");
    let ours = &comments[1];
    assert_eq!(ours["content"], report("pending"));
    assert_eq!(ours["beforeCommitId"], pr.destination.as_str());
    assert_eq!(ours["afterCommitId"], pr.head.as_str());
    assert!(ours["clientRequestToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));

    world
        .reviews
        .upsert_comment(pr, &report("success"))
        .await
        .expect("update");
    let comments = stub.comments("42");
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert_eq!(
        comments[1]["commentId"], ours["commentId"],
        "updated, not reposted"
    );
    assert_eq!(comments[1]["content"], report("success"));
    assert_eq!(comments[0]["content"], report("> quoted"), "left alone");
    assert_eq!(stub.calls("PostCommentForPullRequest"), 1);
}

#[tokio::test]
async fn codecommit_post_retried_after_a_lost_answer_makes_no_second_comment() {
    let world = codecommit_world(3, 2).await;
    let (pr, stub) = (&world.pr, &world.stub);
    world
        .reviews
        .upsert_comment(pr, &report("pending"))
        .await
        .expect("post");
    // The retry's listing does not show the first post yet: it posts
    // again, with the same token and body, and gets the first comment.
    stub.hide_comments(1);
    world
        .reviews
        .upsert_comment(pr, &report("pending"))
        .await
        .expect("retried post");
    assert_eq!(stub.comments("42").len(), 1);
    // The same, with a newer body: the token's mismatch says the comment
    // exists, and it is edited.
    stub.hide_comments(1);
    world
        .reviews
        .upsert_comment(pr, &report("failure"))
        .await
        .expect("post after a mismatch");
    let comments = stub.comments("42");
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert_eq!(comments[0]["content"], report("failure"));
    assert_eq!(stub.calls("PostCommentForPullRequest"), 3);
    assert_eq!(stub.calls("UpdateComment"), 1);
}

#[tokio::test]
async fn codecommit_approval_is_given_and_revoked_on_the_revision() {
    let world = codecommit_world(3, 2).await;
    let (pr, stub) = (&world.pr, &world.stub);
    let with_revision = PullRequest {
        revision: Some(REVISION.into()),
        ..pr.clone()
    };
    world
        .reviews
        .approve(&with_revision, true)
        .await
        .expect("approve");
    assert_eq!(stub.calls("GetPullRequest"), 0, "the event's revision");
    // Without the event's revision, GetPullRequest tells it.
    world.reviews.approve(pr, false).await.expect("revoke");
    assert_eq!(stub.calls("GetPullRequest"), 1);
    assert_eq!(
        stub.approvals("42"),
        [
            (REVISION.to_owned(), "APPROVE".to_owned()),
            (REVISION.to_owned(), "REVOKE".to_owned())
        ]
    );
    // Statuses are GitHub's: nothing is sent.
    world
        .reviews
        .set_statuses(
            pr,
            &[Status {
                context: "gild/x".into(),
                state: StatusState::Success,
                description: "ok".into(),
                target_url: None,
            }],
        )
        .await
        .expect("no-op");
}

#[tokio::test]
async fn codecommit_stale_revision_is_revision_not_current() {
    let world = codecommit_world(3, 2).await;
    let (pr, stub) = (&world.pr, &world.stub);
    // A push to the source branch: a new tip and a new revision.
    let newer = "2d6f3c9e1a8b5f7d0c4e6a8b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f";
    stub.open_pull_request(StubPullRequest {
        id: "42".into(),
        source_reference: "refs/heads/feature".into(),
        destination_reference: "refs/heads/main".into(),
        source_commit: pr.head.clone(),
        destination_commit: pr.destination.clone(),
        revision_id: newer.into(),
    });
    let stale = PullRequest {
        revision: Some(REVISION.into()),
        ..pr.clone()
    };
    let err = world
        .reviews
        .approve(&stale, true)
        .await
        .expect_err("stale revision");
    assert!(
        matches!(&err, PortError::Service { service: "CodeCommit", operation: "UpdatePullRequestApprovalState", code, server_side: false, .. }
            if code == "RevisionNotCurrentException"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert!(stub.approvals("42").is_empty());
}

#[tokio::test]
async fn codecommit_changed_paths_run_from_the_merge_base_over_pages() {
    let world = codecommit_world(150, 120).await;
    let mut paths = world.reviews.changed_paths(&world.pr).await.expect("paths");
    paths.sort();
    assert_eq!(paths, expected_paths(120), "README.md changed on main only");
    assert_eq!(world.stub.calls("GetPullRequest"), 1);
    assert_eq!(world.stub.calls("GetDifferences"), 2, "two pages of 100");
}

// --------------------------------------------------------------- CodeBuild

#[tokio::test]
async fn stop_build_stops_running_builds_and_an_ended_one_is_ok() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
    create_stack(&gild_tests::aws::sdk_config(&moto.endpoint()))
        .await
        .expect("stack");
    let proxy = CodeBuildProxy::start(&moto.endpoint())
        .await
        .expect("proxy");
    let client = aws_sdk_codebuild::Client::new(&gild_tests::aws::sdk_config(&proxy.endpoint()));
    let bakes = CodeBuildBuilds::new(client.clone(), BAKE_PROJECT);
    let tests = TestBuilds::new(client, TEST_PROJECT);
    let key = |n: usize| BakeKey::new("debian12-base", format!("pr:acme/images#{n}:0123abcd"));
    let bake = |n: usize| BakeRequest {
        key: key(n),
        trigger: Trigger::PullRequest,
        commit: "0123abcd".into(),
        parent: None,
        source_image: None,
    };

    // A running bake is stopped, and CodeBuild tells it STOPPED from then on.
    let running = bakes.start_bake(&bake(1)).await.expect("start");
    bakes.stop(&running).await.expect("stop");
    assert_eq!(proxy.stopped(), std::slice::from_ref(&running));
    let told = bakes.build(&running).await.expect("read").expect("known");
    assert_eq!(told.status, BuildStatus::Stopped);
    // Stopped twice (a retried step): CodeBuild refuses, and it is Ok.
    bakes.stop(&running).await.expect("stopped again");
    assert_eq!(proxy.calls("StopBuild"), 2);

    // A bake that ended before its stop: Ok, and nothing is stopped.
    let ended = bakes.start_bake(&bake(2)).await.expect("start");
    proxy.ended(
        &json!({"detail": {"build-id": ended, "build-status": "SUCCEEDED",
        "additional-information": {}}}),
    );
    bakes.stop(&ended).await.expect("an ended build");
    assert_eq!(proxy.stopped(), std::slice::from_ref(&running));

    // The test project's builds the same way.
    let test = tests
        .start_test(&TestRequest {
            key: key(3),
            image: "ami-0123456789abcdef0".into(),
            commit: None,
        })
        .await
        .expect("start test");
    tests.stop(&test).await.expect("stop test");
    assert_eq!(proxy.stopped(), [running, test]);

    let unknown = "gild-bake:00000000-0000-0000-0000-000000000000";
    let err = bakes.stop(unknown).await.expect_err("unknown build");
    assert!(
        matches!(
            &err,
            PortError::NotFound {
                operation: "StopBuild",
                ..
            }
        ),
        "{err:?}"
    );
}
