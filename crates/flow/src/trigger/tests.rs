use super::*;
use gild_core::catalog::CATALOG_FILE;
use gild_core::fakes::{
    account_limit, denied, throttled, timeout, MemoryLedger, MemoryRepository, ScriptedBuilds,
};
use serde_json::json;
use std::time::Duration;

const CATALOG: &str = r#"
[families.a]
path = "images/a"
os = "linux"
roles = ["base"]
[families.b]
path = "images/b"
os = "linux"
roles = ["base"]
[families.c]
path = "images/c"
os = "windows"
"#;

fn handler(changed: &[&str]) -> Handler<MemoryRepository, MemoryLedger, ScriptedBuilds> {
    let mut repo = MemoryRepository {
        tip: "tip1".into(),
        changed: changed.iter().map(|p| (*p).to_owned()).collect(),
        ..MemoryRepository::default()
    };
    for commit in ["tip1", "new1", "old1"] {
        repo.files
            .insert((commit.into(), CATALOG_FILE.into()), CATALOG.into());
    }
    Handler::new(
        Settings {
            repository: Some("imgs".into()),
            ..Settings::default()
        },
        repo,
        MemoryLedger::default(),
        ScriptedBuilds::default(),
        2,
        60,
    )
    .with_backoff(Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        attempts: 4,
    })
}

fn push() -> Value {
    json!({"version": "0", "id": "p1", "detail-type": "CodeCommit Repository State Change",
               "source": "aws.codecommit", "time": "2026-11-12T14:05:09Z", "region": "us-east-1",
               "detail": {"event": "referenceUpdated", "referenceType": "branch", "referenceName": "main",
                          "repositoryName": "imgs", "commitId": "new1", "oldCommitId": "old1"}})
}

fn schedule(time: &str) -> Value {
    json!({"version": "0", "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events",
               "time": time, "detail": {}})
}

#[tokio::test]
async fn push_starts_affected_families_once_across_redeliveries() {
    let h = handler(&["ansible/roles/base/tasks/main.yml"]);
    let first = h.handle(push(), 1000).await.expect("first delivery");
    assert_eq!(first.started.len(), 2);
    for _ in 0..2 {
        let again = h.handle(push(), 1001).await.expect("redelivery");
        assert!(again.started.is_empty());
        assert_eq!(again.duplicates.len(), 2);
        assert!(again
            .duplicates
            .iter()
            .all(|d| d.state == BakeState::Baking));
    }
    assert_eq!(h.builds().started_families(), vec!["a", "b"]);
    let request = &h.builds().started.lock().expect("lock")[0];
    assert_eq!(request.commit, "new1");
}

#[tokio::test]
async fn schedule_twice_in_a_month_bakes_once_next_month_again() {
    let h = handler(&[]);
    h.handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect("first");
    let again = h
        .handle(schedule("2026-11-11T03:05:00Z"), 2)
        .await
        .expect("second");
    assert!(again.started.is_empty());
    assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
    h.handle(schedule("2026-12-09T03:00:00Z"), 3)
        .await
        .expect("december");
    assert_eq!(h.builds().started_families().len(), 6);
}

#[tokio::test]
async fn throttling_is_retried_and_a_full_account_queues() {
    let h = handler(&[]).with_backoff(Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(4),
        attempts: 4,
    });
    h.builds().fail("a", [throttled(), throttled()]);
    h.builds().fail("b", [account_limit()]);
    let outcome = h
        .handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect("retried or queued");
    assert_eq!(outcome.started.len(), 1, "{outcome:?}");
    assert_eq!(outcome.started[0].family, "a");
    // Two lanes: c waits for b's, which ends on the limit, so c queues
    // without a StartBuild of its own.
    let queued: Vec<&str> = outcome.queued.iter().map(|q| q.family.as_str()).collect();
    assert_eq!(queued, vec!["b", "c"]);
    assert_eq!(h.builds().started_families(), vec!["a"]);
    assert_eq!(h.builds().calls(), 4);
}

#[tokio::test]
async fn partial_failure_is_reported_and_retry_starts_only_the_rest() {
    let h = handler(&[]);
    h.builds().fail("b", [denied()]);
    h.builds()
        .fail("c", [timeout(), timeout(), timeout(), timeout()]);
    let err = h
        .handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect_err("b and c fail");
    let TriggerError::StartFailed { failures, started } = &err else {
        panic!("wrong error {err}")
    };
    assert_eq!(*started, 1);
    assert_eq!(
        failures
            .iter()
            .map(|f| f.family.as_str())
            .collect::<Vec<_>>(),
        vec!["b", "c"]
    );
    assert_eq!(err.name(), "StartFailed");
    // Lambda retries the event: only b and c start now.
    let retry = h
        .handle(schedule("2026-11-11T03:00:00Z"), 2)
        .await
        .expect("retry");
    assert_eq!(
        retry
            .started
            .iter()
            .map(|s| s.family.as_str())
            .collect::<Vec<_>>(),
        vec!["b", "c"]
    );
    assert_eq!(retry.duplicates.len(), 1);
    assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
}

#[tokio::test]
async fn expired_claim_without_build_is_taken_over() {
    let h = handler(&[]);
    let key = BakeKey::new("a", "schedule:2026-11");
    let stale = BakeRecord::requested(
        key,
        gild_core::plan::Trigger::Schedule,
        None,
        0,
        60,
        "crashed-invocation",
    );
    h.ledger()
        .claim(&stale, 0)
        .await
        .expect("seed a crashed claim");
    // Within the lease the crashed claim still blocks, as an error so
    // that Lambda retries …
    let err = h
        .handle(schedule("2026-11-11T03:00:00Z"), 10)
        .await
        .expect_err("in flight");
    assert!(err.to_string().contains("another invocation"), "{err}");
    assert_eq!(h.builds().started_families(), vec!["b", "c"]);
    // … and the retry, after the lease, takes over.
    let taken = h
        .handle(schedule("2026-11-11T03:00:00Z"), 100)
        .await
        .expect("ok");
    assert_eq!(taken.started.len(), 1);
    assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
}

fn ended(project: &str, build_id: &str, status: &str) -> Value {
    json!({"version": "0", "id": format!("e-{build_id}"), "detail-type": "CodeBuild Build State Change",
               "source": "aws.codebuild", "time": "2026-11-11T05:00:00Z", "region": "us-east-1",
               "detail": {"build-status": status, "project-name": project,
                          "build-id": format!("arn:aws:codebuild:us-east-1:123456789012:build/{build_id}")}})
}

fn states(h: &Handler<MemoryRepository, MemoryLedger, ScriptedBuilds>) -> Vec<(String, BakeState)> {
    h.ledger()
        .snapshot()
        .into_iter()
        .map(|r| (r.key.family, r.state))
        .collect()
}

#[tokio::test]
async fn bakes_beyond_the_limit_queue_and_start_as_builds_end() {
    let h = handler(&[]).with_max_parallel(2);
    let outcome = h
        .handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect("schedule");
    assert_eq!(outcome.started.len(), 2);
    assert_eq!(outcome.queued.len(), 1);
    let waiting = outcome.queued[0].family.clone();
    // The queue is durable and a redelivery neither starts nor re-queues it.
    let again = h
        .handle(schedule("2026-11-11T03:00:00Z"), 2)
        .await
        .expect("redelivery");
    assert!(again.started.is_empty() && again.queued.is_empty());
    assert_eq!(again.duplicates.len(), 3);
    assert_eq!(h.builds().calls(), 2);
    // A bake that succeeded hands its slot to its test: nothing starts.
    let first = outcome.started[0].build_id.clone();
    let drained = h
        .handle(ended("gild-bake", &first, "SUCCEEDED"), 3)
        .await
        .expect("bake succeeded");
    assert!(drained.started.is_empty(), "{drained:?}");
    // A failed bake frees its slot even before bake-finished records it.
    let drained = h
        .handle(ended("gild-bake", &first, "FAILED"), 4)
        .await
        .expect("bake failed");
    assert_eq!(drained.started.len(), 1);
    assert_eq!(drained.started[0].family, waiting);
    // The same event again (at-least-once delivery) starts nothing more.
    let twice = h
        .handle(ended("gild-bake", &first, "FAILED"), 5)
        .await
        .expect("redelivered end");
    assert!(twice.started.is_empty());
    assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
    assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Baking));
}

#[tokio::test]
async fn a_full_account_queues_without_asking_codebuild_again() {
    let h = handler(&[]).with_max_parallel(10);
    h.builds().fail("a", [account_limit()]);
    h.builds().fail("b", [account_limit()]);
    h.builds().fail("c", [account_limit()]);
    let outcome = h
        .handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect("queued, not failed");
    assert!(outcome.started.is_empty());
    assert_eq!(outcome.queued.len(), 3);
    // Two fan-out lanes may each meet the limit once; never all three.
    assert!(h.builds().calls() <= 2, "{}", h.builds().calls());
    assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Queued));
    h.builds()
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    // Some other team's build ends: the account has room again.
    let drained = h
        .handle(ended("other-team", "other-team:1", "SUCCEEDED"), 2)
        .await
        .expect("drain");
    assert_eq!(drained.started.len(), 3);
    assert!(states(&h).iter().all(|(_, s)| *s == BakeState::Baking));
}

#[tokio::test]
async fn a_failed_start_from_the_queue_goes_back_to_the_queue() {
    let h = handler(&[]).with_max_parallel(0);
    let outcome = h
        .handle(schedule("2026-11-11T03:00:00Z"), 1)
        .await
        .expect("all queued");
    assert_eq!(outcome.queued.len(), 3);
    let mut h = h.with_max_parallel(3);
    h.launcher.backoff.attempts = 1;
    h.builds().fail("a", [denied()]);
    let err = h
        .handle(ended("other-team", "other-team:1", "FAILED"), 2)
        .await
        .expect_err("a fails for good");
    assert!(matches!(err, TriggerError::StartFailed { .. }), "{err}");
    let retry = h
        .handle(ended("other-team", "other-team:1", "FAILED"), 3)
        .await
        .expect("retried delivery");
    assert_eq!(retry.started.len(), 1);
    assert_eq!(h.builds().started_families(), vec!["a", "b", "c"]);
}

#[tokio::test]
async fn ignored_and_bad_inputs() {
    let h = handler(&["docs/README.md"]);
    let outcome = h.handle(push(), 1).await.expect("push touching nothing");
    assert!(outcome.started.is_empty());
    assert!(
        outcome.reason.contains("touches no family"),
        "{}",
        outcome.reason
    );
    let err = h
        .handle(json!({"hello": 1}), 1)
        .await
        .expect_err("not an event");
    assert_eq!(err.name(), "BadEvent");
    let manual = json!({"version": "0", "id": "m1", "detail-type": "Build Requested", "source": "gild",
                            "time": "2026-11-12T14:05:09Z", "detail": {"family": "zzz"}});
    let err = h.handle(manual, 1).await.expect_err("unknown family");
    assert!(err.to_string().contains("known families: a, b, c"), "{err}");
    assert_eq!(h.builds().calls(), 0);
}

#[tokio::test]
async fn invalid_catalog_starts_nothing() {
    let mut h = handler(&["images/a/x"]);
    h.repo.files.insert(
        ("new1".into(), CATALOG_FILE.into()),
        "[families.a]\npath = \"images/a\"\nos = \"linux\"\nowner = \"x\"\n".into(),
    );
    let err = h.handle(push(), 1).await.expect_err("bad catalog");
    assert_eq!(err.name(), "CatalogInvalid");
    assert!(err.to_string().contains("gild.toml:4:"), "{err}");
    assert_eq!(h.builds().calls(), 0);
}
