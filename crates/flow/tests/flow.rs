//! The completion driver against in-memory ports: every path, duplicates,
//! out-of-order events and injected faults, counting every side effect.

mod common;

use common::*;
use gild_core::ports::Images as _;

/// A bake flow and a test flow over the same fakes: the test flow is the
/// same value with `Accept::Test`, so we run both kinds through one driver
/// built for each by swapping settings.
#[tokio::test]
async fn success_tags_tests_promotes_and_announces_once() {
    let bake = world();
    seed_baking(&bake).await;
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Testing]);
    let image = bake.ports().images.get(AMI).expect("image");
    assert_eq!(
        image.tags.get(tags::STATE).map(String::as_str),
        Some("testing")
    );
    assert_eq!(
        image.tags.get(tags::FAMILY).map(String::as_str),
        Some(FAMILY)
    );
    assert_eq!(
        image.tags.get(tags::TRIGGER).map(String::as_str),
        Some("schedule")
    );
    assert_eq!(
        image.tags.get(tags::BASE_AMI).map(String::as_str),
        Some("ami-base")
    );
    assert_eq!(*bake.ports().images.tag_calls.lock().expect("lock"), 2);
    let started = bake.ports().tests.started.lock().expect("lock").clone();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].image, AMI);

    // Duplicate bake completions: nothing more.
    for _ in 0..2 {
        let again = bake.handle(bake_event("SUCCEEDED"), 11).await.expect("dup");
        assert!(again.reached.is_empty());
        assert!(again.noop.is_some());
    }
    assert_eq!(bake.ports().tests.started.lock().expect("lock").len(), 1);

    let test = into_test(bake);
    let event = test_event("SUCCEEDED", &test_build(&test));
    let report = test.handle(event.clone(), 20).await.expect("test");
    assert_eq!(
        report.reached,
        vec![BakeState::Validated, BakeState::Promoted]
    );
    let again = test.handle(event, 21).await.expect("dup test");
    assert!(again.reached.is_empty());
    let history = test
        .ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(
        history,
        BTreeMap::from([("/gild/al2023-base/ami".to_owned(), vec![AMI.to_owned()])])
    );
    assert_eq!(subjects(&test), vec![format!("gild: {FAMILY} {AMI} ready")]);
    let image = test.ports().images.get(AMI).expect("image kept");
    assert_eq!(
        image.tags.get(tags::STATE).map(String::as_str),
        Some("promoted")
    );
    assert_eq!(state(&test).await.state, BakeState::Promoted);
}

#[tokio::test]
async fn bake_failure_cleans_up_what_the_build_left_and_announces() {
    let bake = world();
    seed_baking(&bake).await;
    // An unrelated image gild did not make must survive.
    bake.ports()
        .images
        .add("ami-00000000000000099", &[("Name", "someone else's")]);
    let report = bake
        .handle(bake_event("FAILED"), 10)
        .await
        .expect("failure handled");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert_eq!(
        bake.ports()
            .images
            .deregistered
            .lock()
            .expect("lock")
            .clone(),
        vec![AMI.to_owned()]
    );
    assert_eq!(
        bake.ports()
            .images
            .deleted_snapshots
            .lock()
            .expect("lock")
            .len(),
        1
    );
    assert!(bake.ports().images.get("ami-00000000000000099").is_some());
    assert_eq!(
        subjects(&bake),
        vec![format!("gild: {FAMILY} FAILED at bake")]
    );
    let record = state(&bake).await;
    assert_eq!(record.failed_stage, Some(Stage::Bake));
    assert_eq!(record.reason.as_deref(), Some("bake build FAILED"));
    // Redelivered: no second announcement.
    assert!(bake
        .handle(bake_event("FAILED"), 11)
        .await
        .expect("dup")
        .reached
        .is_empty());
    assert_eq!(subjects(&bake).len(), 1);
    assert!(bake.ports().tests.started.lock().expect("lock").is_empty());
}

/// A try that deregistered the image and died before deleting its snapshot
/// (found by `faults_e2e::crashes_mid_step_end_the_same`): the retry finds
/// no image to read the snapshot from, and finds the snapshot by its
/// build's tag instead.
#[tokio::test]
async fn a_snapshot_whose_image_an_earlier_try_removed_is_deleted_on_retry() {
    let test = in_testing().await;
    test.ports()
        .images
        .deregister(AMI)
        .await
        .expect("deregister");
    assert_eq!(test.ports().images.snapshots.lock().expect("lock").len(), 1);
    let report = test
        .handle(test_event("FAILED", &test_build(&test)), 20)
        .await
        .expect("test failure");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert!(no_snapshots(&test), "the snapshot outlived its image");
}

#[tokio::test]
async fn test_failure_removes_the_image_and_never_promotes() {
    let test = in_testing().await;
    let event = test_event("FAILED", &test_build(&test));
    let report = test.handle(event.clone(), 20).await.expect("test failure");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert!(test
        .ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .is_empty());
    assert!(test.ports().images.get(AMI).is_none());
    assert!(no_snapshots(&test));
    assert_eq!(
        subjects(&test),
        vec![format!("gild: {FAMILY} {AMI} FAILED at test")]
    );
    assert!(test
        .handle(event, 21)
        .await
        .expect("dup")
        .reached
        .is_empty());
    assert_eq!(subjects(&test).len(), 1);
    // A late "passed" for the same build changes nothing either.
    let passed = test_event("SUCCEEDED", &test_build(&test));
    assert!(test
        .handle(passed, 22)
        .await
        .expect("late")
        .reached
        .is_empty());
    assert!(test
        .ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .is_empty());
}

#[tokio::test]
async fn out_of_order_test_result_before_bake_result_is_a_noop() {
    let test = flow_with(empty_ports(), Accept::Test);
    seed_baking(&test).await;
    let report = test
        .handle(test_event("SUCCEEDED", "gild-test:run-1"), 10)
        .await
        .expect("noop");
    assert!(report.reached.is_empty());
    assert!(
        report
            .noop
            .as_deref()
            .is_some_and(|r| r.contains("not the bake's test build")),
        "{report:?}"
    );
    assert_eq!(state(&test).await.state, BakeState::Baking);
    assert!(subjects(&test).is_empty());
}

#[tokio::test]
async fn missing_or_foreign_images_fail_the_bake_without_touching_them() {
    // No GILD_AMI_ID in the event, and CodeBuild has none either.
    let bake = world();
    seed_baking(&bake).await;
    bake.ports()
        .build_info
        .exported
        .lock()
        .expect("lock")
        .insert(BAKE_BUILD.into(), BTreeMap::new());
    let mut event = sample("codebuild-bake-succeeded-no-export.json");
    event["detail"]["build-status"] = "SUCCEEDED".into();
    let report = bake.handle(event, 10).await.expect("handled");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert!(state(&bake)
        .await
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("exported no GILD_AMI_ID")));

    // The fallback finds the AMI through BatchGetBuilds.
    let bake = world();
    seed_baking(&bake).await;
    bake.ports()
        .build_info
        .exported
        .lock()
        .expect("lock")
        .insert(
            BAKE_BUILD.into(),
            BTreeMap::from([("GILD_AMI_ID".to_owned(), AMI.to_owned())]),
        );
    let event = sample("codebuild-bake-succeeded-no-export.json");
    let report = bake.handle(event, 10).await.expect("handled");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Testing]);

    // An image without gild's creation tags is not ours: fail, leave it.
    let bake = world();
    seed_baking(&bake).await;
    bake.ports().images.images.lock().expect("lock").clear();
    bake.ports().images.add(AMI, &[("Name", "base image")]);
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("handled");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert!(bake.ports().images.get(AMI).is_some());
    assert!(bake
        .ports()
        .images
        .deregistered
        .lock()
        .expect("lock")
        .is_empty());
    assert_eq!(
        subjects(&bake),
        vec![format!("gild: {FAMILY} {AMI} FAILED at bake")]
    );

    // gild-managed, but not tagged with this build's id (another gild's, or
    // made by hand): not known to be this bake's, so left alone too.
    let bake = world();
    seed_baking(&bake).await;
    bake.ports().images.images.lock().expect("lock").clear();
    bake.ports().images.add(AMI, &[(tags::MANAGED, "true")]);
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("handled");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    let image = bake.ports().images.get(AMI).expect("still there");
    assert_eq!(image.tags.len(), 1, "{:?}", image.tags);

    // An AMI that does not exist at all.
    let bake = world();
    seed_baking(&bake).await;
    bake.ports().images.images.lock().expect("lock").clear();
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("handled");
    assert_eq!(report.reached, vec![BakeState::Failed]);
    assert!(state(&bake)
        .await
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("does not exist")));
}

#[tokio::test]
async fn faults_are_retried_or_resumed_without_repeating_effects() {
    let bake = world();
    seed_baking(&bake).await;
    // Throttled once: retried inside the invocation.
    bake.ports()
        .images
        .tag_faults
        .lock()
        .expect("lock")
        .push_back(PortError::Throttled {
            service: "EC2",
            operation: "CreateTags",
            code: "RequestLimitExceeded".into(),
            message: "slow down".into(),
        });
    bake.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    let test = into_test(bake);
    // SSM refuses for good once: the step fails, the lock is released …
    test.ports()
        .parameters
        .faults
        .lock()
        .expect("lock")
        .push_back(PortError::Service {
            service: "SSM",
            operation: "PutParameter",
            code: "AccessDeniedException".into(),
            message: "no".into(),
            server_side: false,
        });
    let event = test_event("SUCCEEDED", &test_build(&test));
    let err = test
        .handle(event.clone(), 20)
        .await
        .expect_err("promote fails");
    assert_eq!(err.name(), "StepFailed");
    assert_eq!(state(&test).await.state, BakeState::Validated);
    assert!(subjects(&test).is_empty());
    // … and Lambda's retry resumes at the promotion, once.
    let report = test.handle(event, 21).await.expect("retry");
    assert_eq!(report.reached, vec![BakeState::Promoted]);
    assert_eq!(
        test.ports()
            .parameters
            .history
            .lock()
            .expect("lock")
            .get("/gild/al2023-base/ami")
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(subjects(&test).len(), 1);
}

#[tokio::test]
async fn a_held_lock_makes_the_duplicate_retry_later() {
    let bake = world();
    seed_baking(&bake).await;
    assert!(bake
        .ports()
        .ledger
        .lock(&key(), BakeState::Baking, 10, 60, "another-invocation")
        .await
        .expect("lock"));
    let err = bake
        .handle(bake_event("SUCCEEDED"), 11)
        .await
        .expect_err("busy");
    assert_eq!(err.name(), "Busy");
    assert_eq!(*bake.ports().images.tag_calls.lock().expect("lock"), 0);
    // After the lease, the retry does the work.
    let report = bake
        .handle(bake_event("SUCCEEDED"), 100)
        .await
        .expect("retry");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Testing]);
}

#[tokio::test]
async fn foreign_events_are_ignored() {
    let bake = world();
    for (event, why) in [
        (sample("schedule.json"), "not a CodeBuild"),
        (sample("codebuild-bake-in-progress.json"), "IN_PROGRESS"),
        (
            sample("codebuild-bake-succeeded.json"),
            "not started by gild",
        ),
        (sample("codebuild-test-succeeded.json"), "other project"),
    ] {
        let report = bake.handle(event, 1).await.expect("ignored");
        assert!(
            report.noop.as_deref().is_some_and(|r| r.contains(why)),
            "{why}: {report:?}"
        );
    }
    let err = bake
        .handle(serde_json::json!({"nope": true}), 1)
        .await
        .expect_err("bad");
    assert_eq!(err.name(), "BadEvent");
}

/// A baking bake whose first test-build start answers `error`.
async fn refusing_the_test_start(error: PortError) -> Flow {
    let bake = world();
    seed_baking(&bake).await;
    bake.ports()
        .tests
        .start_faults
        .lock()
        .expect("lock")
        .push_back(error);
    bake
}

/// A test build refused for good (the project is gone) ends the bake failed
/// at test at once: the untested image and its snapshots are removed and the
/// failure announced, through the table's `Baked --Failed(Test)--> Failed`
/// row. A later delivery of the same bake event changes nothing.
#[tokio::test]
async fn a_test_build_that_can_never_start_fails_the_bake_at_test() {
    let bake = refusing_the_test_start(PortError::NotFound {
        service: "codebuild",
        operation: "StartBuild",
        code: "ResourceNotFoundException".into(),
        message: "Project cannot be found: gild-test".into(),
    })
    .await;
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Failed]);
    let record = state(&bake).await;
    assert_eq!(record.state, BakeState::Failed);
    assert_eq!(record.failed_stage, Some(Stage::Test));
    assert!(bake.ports().images.get(AMI).is_none());
    assert!(no_snapshots(&bake));
    assert_eq!(
        subjects(&bake),
        vec![format!("gild: {FAMILY} {AMI} FAILED at test")]
    );
    assert!(bake.ports().tests.started.lock().expect("lock").is_empty());
    assert!(bake
        .handle(bake_event("SUCCEEDED"), 11)
        .await
        .expect("duplicate")
        .reached
        .is_empty());
    assert_eq!(subjects(&bake).len(), 1);
}

/// A refusal that may clear (throttling) is retried, not taken as final.
#[tokio::test]
async fn a_throttled_test_start_is_retried_not_failed() {
    let bake = refusing_the_test_start(PortError::Throttled {
        service: "codebuild",
        operation: "StartBuild",
        code: "ThrottlingException".into(),
        message: "Rate exceeded".into(),
    })
    .await;
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Testing]);
}

/// An image deregistered between its test and its promotion is never
/// published: the bake fails at promote through the table's
/// `Validated --Failed(Promote)--> Failed` row, the parameter keeps what it
/// had, and the failure is announced once.
#[tokio::test]
async fn an_image_gone_before_promotion_fails_the_bake_at_promote() {
    let test = in_testing().await;
    test.ports().images.images.lock().expect("lock").remove(AMI);
    let event = test_event("SUCCEEDED", &test_build(&test));
    let report = test.handle(event.clone(), 20).await.expect("test");
    assert_eq!(
        report.reached,
        vec![BakeState::Validated, BakeState::Failed]
    );
    let record = state(&test).await;
    assert_eq!(record.failed_stage, Some(Stage::Promote));
    assert!(record
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("no longer exists")));
    assert!(test
        .ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .is_empty());
    assert_eq!(
        subjects(&test),
        vec![format!("gild: {FAMILY} {AMI} FAILED at promote")]
    );
    assert!(test
        .handle(event, 21)
        .await
        .expect("dup")
        .reached
        .is_empty());
    assert_eq!(subjects(&test).len(), 1);
}

/// A bake validated after a newer bake of its family was promoted (its
/// test event lost and finished late, or its test slow) must not roll the
/// family back: it ends superseded, the parameter still names the newer
/// image, and nothing is announced as promoted.
#[tokio::test]
async fn a_late_older_bake_never_rolls_the_family_back() {
    let test = in_testing().await;
    let parameter = format!("/gild/{FAMILY}/ami");
    test.ports().images.add(
        "ami-0newer0000000000",
        &[
            (tags::MANAGED, "true"),
            (tags::FAMILY, FAMILY),
            (tags::REQUESTED_AT, "5"),
        ],
    );
    test.ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .insert(parameter.clone(), vec!["ami-0newer0000000000".into()]);
    let event = test_event("SUCCEEDED", &test_build(&test));
    let report = test.handle(event, 20).await.expect("test");
    assert_eq!(
        report.reached,
        vec![BakeState::Validated, BakeState::Superseded]
    );
    let history = test
        .ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(history[&parameter], vec!["ami-0newer0000000000".to_owned()]);
    assert!(test
        .ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .is_empty());
    let image = test.ports().images.get(AMI).expect("kept");
    assert_eq!(
        image.tags.get(tags::STATE).map(String::as_str),
        Some("superseded")
    );
}
