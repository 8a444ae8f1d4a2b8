//! The reconciler against in-memory ports: bakes whose events were lost for
//! good are finished through the same driver and table as the handlers, a
//! late original event changes nothing, and freed slots go to the queue.

mod common;

use common::*;
use gild_core::event::{BuildStateChange, BuildStatus};
use gild_core::fakes::ScriptedBuilds;
use gild_core::reconcile::Deadlines;
use gild_flow::reconcile::Reconciler;
use gild_flow::trigger::Launcher;

type Rec = Reconciler<
    Arc<MemoryLedger>,
    MemoryImages,
    RecordingTests,
    RecordingTests,
    MemoryParameters,
    RecordingNotifier,
    RecordingReviews,
    MemoryArtifacts,
    Arc<MemoryLedger>,
    ScriptedBuilds,
>;

const DEADLINES: Deadlines = Deadlines {
    bake_build: 3600,
    test_build: 1800,
    lease: 60,
    margin: 900,
};

/// Past the baking stage's deadline for a bake started at 1.
const BAKE_OVERDUE: i64 = 1 + 3600 + 900 + 1;

fn reconciler(flow: Flow) -> Rec {
    let ledger = flow.ports().ledger.clone();
    let launcher = Launcher::new(ledger, ScriptedBuilds::default(), 2, 60).with_backoff(fast());
    Reconciler::new(flow, launcher, DEADLINES, "us-east-1")
}

fn ended(
    project: &str,
    build_id: &str,
    status: &str,
    exported: &[(&str, &str)],
) -> BuildStateChange {
    BuildStateChange {
        project_name: project.into(),
        build_id: format!("arn:aws:codebuild:us-east-1:111122223333:build/{build_id}"),
        status: BuildStatus::parse(status),
        status_text: status.into(),
        env: BTreeMap::from([
            ("GILD_FAMILY".into(), FAMILY.into()),
            ("GILD_DEDUPE_KEY".into(), DEDUPE.into()),
        ]),
        exported: exported
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        source_version: Some("9f2c1e7".into()),
        log_link: None,
    }
}

fn codebuild_says(r: &Rec, build_id: &str, build: BuildStateChange) {
    r.completions()
        .ports()
        .build_info
        .builds
        .lock()
        .expect("lock")
        .insert(build_id.to_owned(), build);
}

fn announced(r: &Rec) -> Vec<String> {
    r.completions()
        .ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .iter()
        .map(|p| p.subject.clone())
        .collect()
}

async fn record(r: &Rec) -> BakeRecord {
    r.completions()
        .ports()
        .ledger
        .get(&key())
        .await
        .expect("get")
        .expect("record")
}

/// The bake build succeeded and its event was lost, then the test build
/// passed and its event was lost too: each run of the reconciler past the
/// stage's deadline resumes the bake from the build's real status, and the
/// image is tested and promoted once. The original events arriving late
/// afterwards find nothing to do.
#[tokio::test]
async fn lost_success_events_are_resumed_to_promotion_and_late_events_change_nothing() {
    let flow = world();
    seed_baking(&flow).await;
    let r = reconciler(flow);
    codebuild_says(
        &r,
        BAKE_BUILD,
        ended(
            "gild-bake",
            BAKE_BUILD,
            "SUCCEEDED",
            &[("GILD_AMI_ID", AMI)],
        ),
    );
    // Before the deadline the event may still come: nothing is touched.
    let early = r.run(600).await.expect("early run");
    assert!(early.bakes.is_empty(), "{early:?}");
    assert_eq!(record(&r).await.state, BakeState::Baking);

    let sweep = r.run(BAKE_OVERDUE).await.expect("run");
    assert_eq!(sweep.bakes.len(), 1, "{sweep:?}");
    let reached = &sweep.bakes[0].report.as_ref().expect("driven").reached;
    assert_eq!(reached, &vec![BakeState::Baked, BakeState::Testing]);
    let test_build = {
        let started = r.completions().ports().tests.started.lock().expect("lock");
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].image, AMI);
        format!("gild-test:run-{}", started.len())
    };
    assert_eq!(
        record(&r).await.test_build_id.as_deref(),
        Some(test_build.as_str())
    );

    codebuild_says(
        &r,
        &test_build,
        ended("gild-test", &test_build, "SUCCEEDED", &[]),
    );
    let later = BAKE_OVERDUE + 1800 + 900 + 1;
    let sweep = r.run(later).await.expect("second run");
    let reached = &sweep.bakes[0].report.as_ref().expect("driven").reached;
    assert_eq!(reached, &vec![BakeState::Validated, BakeState::Promoted]);
    assert_eq!(announced(&r), vec![format!("gild: {FAMILY} {AMI} ready")]);

    // The original events, late.
    let completions = r.into_completions();
    let bake_report = completions
        .handle(bake_event("SUCCEEDED"), later + 5)
        .await
        .expect("late bake event");
    assert!(bake_report.reached.is_empty());
    let test = into_test(completions);
    let test_report = test
        .handle(test_event("SUCCEEDED", &test_build), later + 6)
        .await
        .expect("late test event");
    assert!(test_report.reached.is_empty());
    assert_eq!(subjects(&test).len(), 1);
    assert_eq!(test.ports().tests.started.lock().expect("lock").len(), 1);
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
}

/// test-finished validated the bake and died before promoting it (found by
/// `faults_e2e::crashes_mid_step_end_the_same`): the reconciler promotes it
/// and, having asked CodeBuild about the test build, announces it with the
/// test log the event would have given.
#[tokio::test]
async fn a_validated_bake_is_promoted_with_its_test_log() {
    const LOG: &str = "https://console.aws.amazon.com/cloudwatch/home#logEvent:test-log";
    let flow = world();
    seed_baking(&flow).await;
    flow.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    let test_build = test_build(&flow);
    assert!(flow
        .ports()
        .ledger
        .advance(
            &key(),
            Transition::of(Lane::Production, BakeState::Testing, Step::TestPassed).expect("a row"),
            &Change::default(),
            20,
        )
        .await
        .expect("advance"));
    let r = reconciler(flow);
    let mut passed = ended("gild-test", &test_build, "SUCCEEDED", &[]);
    passed.log_link = Some(LOG.into());
    codebuild_says(&r, &test_build, passed);
    let sweep = r.run(20 + 60 + 900 + 1).await.expect("run");
    let reached = &sweep.bakes[0].report.as_ref().expect("driven").reached;
    assert_eq!(reached, &vec![BakeState::Promoted]);
    let published = r
        .completions()
        .ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(published.len(), 1);
    assert!(
        published[0].message.contains(LOG),
        "the announcement has no test log: {}",
        published[0].message
    );
}

/// The bake build failed and its event was lost: the reconciler removes what
/// the build left, announces the failure saying how it was found, and a late
/// original event changes nothing.
#[tokio::test]
async fn a_lost_failure_event_is_cleaned_up_and_announced_once() {
    let flow = world();
    seed_baking(&flow).await;
    let r = reconciler(flow);
    codebuild_says(
        &r,
        BAKE_BUILD,
        ended("gild-bake", BAKE_BUILD, "FAILED", &[]),
    );
    let sweep = r.run(BAKE_OVERDUE).await.expect("run");
    let reached = &sweep.bakes[0].report.as_ref().expect("driven").reached;
    assert_eq!(reached, &vec![BakeState::Failed]);
    let failed = record(&r).await;
    assert_eq!(failed.failed_stage, Some(Stage::Bake));
    let reason = failed.reason.unwrap_or_default();
    assert!(reason.contains("found by the reconciler"), "{reason}");
    assert!(r.completions().ports().images.get(AMI).is_none());
    assert_eq!(
        announced(&r),
        vec![format!("gild: {FAMILY} FAILED at bake")]
    );

    let again = r.run(BAKE_OVERDUE + 10_000).await.expect("rerun");
    assert!(again.bakes.is_empty(), "a failed bake is not open");
    let completions = r.into_completions();
    let late = completions
        .handle(bake_event("FAILED"), BAKE_OVERDUE + 10_001)
        .await
        .expect("late");
    assert!(late.reached.is_empty());
    assert_eq!(subjects(&completions).len(), 1);
}

/// A build CodeBuild does not know will never report: the stage failed.
/// A build still running is left alone, however late.
#[tokio::test]
async fn unknown_builds_fail_the_stage_and_running_builds_are_left_alone() {
    let flow = world();
    seed_baking(&flow).await;
    let r = reconciler(flow);
    codebuild_says(
        &r,
        BAKE_BUILD,
        ended("gild-bake", BAKE_BUILD, "IN_PROGRESS", &[]),
    );
    let sweep = r.run(BAKE_OVERDUE).await.expect("run");
    assert_eq!(sweep.bakes.len(), 1);
    assert!(sweep.bakes[0].report.is_none(), "{sweep:?}");
    assert_eq!(record(&r).await.state, BakeState::Baking);

    r.completions()
        .ports()
        .build_info
        .builds
        .lock()
        .expect("lock")
        .clear();
    r.run(BAKE_OVERDUE + 1).await.expect("run");
    let failed = record(&r).await;
    assert_eq!(failed.state, BakeState::Failed);
    assert!(failed
        .reason
        .is_some_and(|r| r.contains("CodeBuild knows no build")));
}

/// A claim whose build was never recorded (the trigger died in between and
/// its retries ran out) ends failed and announced, not `requested` forever.
#[tokio::test]
async fn a_claim_that_never_started_ends_failed() {
    let flow = world();
    let claim = BakeRecord::requested(key(), Trigger::Schedule, Some("9f2c1e7".into()), 0, 60, "t");
    flow.ports().ledger.claim(&claim, 0).await.expect("claim");
    let r = reconciler(flow);
    let sweep = r.run(60 + 900).await.expect("run");
    assert!(sweep.bakes.is_empty(), "not yet overdue: {sweep:?}");
    r.run(60 + 900 + 2).await.expect("run");
    let failed = record(&r).await;
    assert_eq!(failed.state, BakeState::Failed);
    assert_eq!(failed.failed_stage, Some(Stage::Bake));
    assert!(failed
        .reason
        .is_some_and(|r| r.contains("no build was ever recorded")));
    assert_eq!(announced(&r).len(), 1);
    assert!(r.launcher().builds().started_families().is_empty());
}

/// A bake whose lock is live is someone's work in progress, however old its
/// last change.
#[tokio::test]
async fn a_locked_bake_is_not_touched() {
    let flow = world();
    seed_baking(&flow).await;
    let held = flow
        .ports()
        .ledger
        .lock(&key(), BakeState::Baking, BAKE_OVERDUE, 600, "other")
        .await
        .expect("lock");
    assert!(held);
    let r = reconciler(flow);
    codebuild_says(
        &r,
        BAKE_BUILD,
        ended("gild-bake", BAKE_BUILD, "FAILED", &[]),
    );
    let sweep = r.run(BAKE_OVERDUE + 1).await.expect("run");
    assert!(sweep.bakes.is_empty());
    assert_eq!(record(&r).await.state, BakeState::Baking);
}

/// A test build that can never start fails its bake at test and frees its
/// slot; the reconciler's run starts the queued bake into it without any
/// build having ended.
#[tokio::test]
async fn a_slot_freed_without_a_build_ending_goes_to_the_queue() {
    let flow = world();
    seed_baking(&flow).await;
    flow.ports()
        .tests
        .start_faults
        .lock()
        .expect("lock")
        .push_back(PortError::NotFound {
            service: "codebuild",
            operation: "StartBuild",
            code: "ResourceNotFoundException".into(),
            message: "Project cannot be found: gild-test".into(),
        });
    let waiting = BakeKey::new("debian13-base", DEDUPE);
    let queued = BakeRecord::requested(
        waiting.clone(),
        Trigger::Schedule,
        Some("9f2c1e7".into()),
        2,
        60,
        "t",
    );
    flow.ports().ledger.claim(&queued, 2).await.expect("claim");
    assert!(flow
        .ports()
        .ledger
        .advance(
            &waiting,
            Transition::of(Lane::Production, BakeState::Requested, Step::Queued).expect("row"),
            &Change::default(),
            2
        )
        .await
        .expect("queue"));
    let report = flow
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Failed]);
    // One slot of gild's: the failed bake held it, the queued one gets it.
    let ledger = flow.ports().ledger.clone();
    let launcher = Launcher::new(ledger, ScriptedBuilds::default(), 2, 60)
        .with_backoff(fast())
        .with_max_parallel(1);
    let r = Reconciler::new(flow, launcher, DEADLINES, "us-east-1");
    let sweep = r.run(20).await.expect("run");
    assert_eq!(sweep.started.len(), 1, "{sweep:?}");
    assert_eq!(
        r.launcher().builds().started_families(),
        vec!["debian13-base"]
    );
    let started = r
        .completions()
        .ports()
        .ledger
        .get(&waiting)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(started.state, BakeState::Baking);
}

/// A child waiting in a run whose parent bake never came (a lost trigger
/// event) ends at stage parent once the claim deadline passes, announced
/// once; a child whose parent bake was promoted without moving it (an
/// older gild, a hand-edited ledger) is queued from the parent's image.
#[tokio::test]
async fn a_child_left_waiting_is_failed_or_released_by_the_reconciler() {
    let r = reconciler(world());
    let ledger = &r.completions().ports().ledger;
    let wait =
        Transition::of(Lane::Production, BakeState::Requested, Step::WaitForParent).expect("a row");
    for (family, dedupe) in [("orphan", "schedule:2026-11"), ("iis", "push:abc")] {
        let mut child = BakeRecord::requested(
            BakeKey::new(family, dedupe),
            Trigger::Schedule,
            Some("9f2c1e7".into()),
            0,
            60,
            "trigger",
        );
        child.parent = Some("dotnet".into());
        ledger.claim(&child, 0).await.expect("claim");
        assert!(ledger
            .advance(&child.key, wait, &Change::default(), 1)
            .await
            .expect("wait"));
    }
    let mut parent = BakeRecord::requested(
        BakeKey::new("dotnet", "push:abc"),
        Trigger::Push,
        Some("9f2c1e7".into()),
        0,
        60,
        "trigger",
    );
    parent.state = BakeState::Promoted;
    parent.image = Some("ami-parent".into());
    ledger
        .records
        .lock()
        .expect("lock")
        .insert(parent.key.clone(), parent);

    // Before the claim's deadline the orphan still waits.
    r.run(30).await.expect("early run");
    let orphan = BakeKey::new("orphan", "schedule:2026-11");
    assert_eq!(
        ledger.get(&orphan).await.expect("get").map(|c| c.state),
        Some(BakeState::Waiting)
    );
    let released = ledger
        .get(&BakeKey::new("iis", "push:abc"))
        .await
        .expect("get")
        .expect("iis");
    assert!(
        matches!(released.state, BakeState::Queued | BakeState::Baking),
        "{:?}",
        released.state
    );
    assert_eq!(released.parent_image.as_deref(), Some("ami-parent"));

    for at in [2_000, 2_001] {
        r.run(at).await.expect("late run");
    }
    let failed = ledger.get(&orphan).await.expect("get").expect("orphan");
    assert_eq!(
        (failed.state, failed.failed_stage),
        (BakeState::Failed, Some(Stage::Parent))
    );
    let subjects = announced(&r);
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].contains("orphan"), "{subjects:?}");
}
