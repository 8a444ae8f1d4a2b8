//! Issue 12: nothing stays stuck. A bake whose completion event is lost for
//! good is finished by the reconciler, the deployed `reconcile` function on
//! the stack's own schedule rule, under its own role through the IAM gate:
//! CodeBuild (the proxy, answering `BatchGetBuilds` for the builds it saw
//! start) says how the build really ended, and the bake goes on from there
//! through the same steps the event handlers take. The original event,
//! delivered late afterwards, changes nothing.

use gild_tests::git::TestRepo;
use gild_tests::moto::MotoServer;
use gild_tests::pipeline::Pipeline;
use gild_tests::scenario::Functions;
use gild_tests::standin::{register_base_image, BuildStandIn, Completed};

const FAMILY: &str = "debian12-base";
const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline"]
"#;
/// Past the baking stage's deadline as the stack deploys it: CodeBuild's
/// queued timeout (480 min) and the bake timeout (480 min), plus the
/// reconciler's margin (15 min).
const PAST_THE_BAKE_DEADLINE: i64 = 17 * 3600;
const NOW: &str = "2026-11-11T04:00:00Z";

struct World {
    pipeline: Pipeline,
    functions: Functions,
    standin: BuildStandIn,
}

async fn world(failing: bool) -> World {
    let (repo, _) = TestRepo::images(CATALOG, &[FAMILY], &[]).expect("images repository");
    let pipeline = Pipeline::start_with(
        MotoServer::start().await.expect("moto"),
        repo,
        Default::default(),
    )
    .await
    .expect("pipeline");
    let functions = Functions::spawn(&pipeline).await.expect("functions");
    let base = register_base_image(&pipeline.aws, "base")
        .await
        .expect("base image");
    let mut standin = BuildStandIn::new(&pipeline, &base);
    if failing {
        standin = standin.fail_bake(FAMILY);
    }
    World {
        pipeline,
        functions,
        standin,
    }
}

impl World {
    /// The schedule starts the bake, which runs; its event is lost for good.
    async fn bake_whose_event_is_lost(&self) -> Completed {
        self.functions
            .fire_schedule(&self.pipeline, "2026-11-11T03:00:00Z")
            .await
            .expect("the bake starts");
        let mut ran = self
            .pipeline
            .run_builds(&self.standin)
            .await
            .expect("the bake build runs");
        assert_eq!(ran.len(), 1);
        ran.remove(0)
    }

    async fn reconcile(&self) -> serde_json::Value {
        let event = self.pipeline.reconcile_event(NOW).expect("event");
        assert_eq!(
            self.functions.targets(&event).await.expect("routing"),
            vec!["reconcile"],
            "the stack's reconcile rule sends its ticks to the reconciler"
        );
        self.functions.deliver_ok(&event).await.expect("reconcile")
    }

    async fn state(&self) -> (String, String) {
        let rows = self.pipeline.ledger().await.expect("ledger");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = &rows[0];
        (
            row.get("state").cloned().unwrap_or_default(),
            row.get("failed_stage").cloned().unwrap_or_default(),
        )
    }

    async fn subjects(&self) -> Vec<String> {
        self.pipeline
            .announcements()
            .await
            .expect("announcements")
            .into_iter()
            .map(|a| a.subject)
            .collect()
    }

    fn test_builds(&self) -> usize {
        let project = self.pipeline.test_project();
        self.pipeline
            .codebuild
            .started()
            .iter()
            .filter(|b| b.project_name == project)
            .count()
    }

    /// The original event, late: every function its rules reach gets it.
    async fn deliver_late(&self, lost: &Completed) {
        for target in self.functions.targets(&lost.event).await.expect("routing") {
            let late = self
                .functions
                .deliver_to(target, &lost.event)
                .await
                .expect("deliver");
            assert!(
                late.invocation.outcome.is_ok(),
                "{target} on the late event: {:?}",
                late.invocation.outcome
            );
        }
    }
}

#[tokio::test]
async fn a_succeeded_bake_whose_event_is_lost_is_resumed_tested_and_promoted() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let w = world(false).await;
    let lost = w.bake_whose_event_is_lost().await;

    // Before the stage's deadline the event may still come: left alone.
    let early = w.reconcile().await;
    assert_eq!(early["bakes"].as_array().map(Vec::len), Some(0), "{early}");
    assert_eq!(w.state().await.0, "baking");

    w.pipeline
        .age_bakes(PAST_THE_BAKE_DEADLINE)
        .await
        .expect("time passes");
    let sweep = w.reconcile().await;
    let reached = &sweep["bakes"][0]["report"]["reached"];
    assert_eq!(reached, &serde_json::json!(["baked", "testing"]), "{sweep}");
    assert_eq!(w.test_builds(), 1);

    // The test build runs and reports as usual.
    w.functions
        .settle(&w.pipeline, &w.standin, 1, 5)
        .await
        .expect("settle");
    assert_eq!(w.state().await.0, "promoted");
    assert_eq!(
        w.pipeline
            .parameter_history(FAMILY)
            .await
            .expect("history")
            .len(),
        1
    );

    w.deliver_late(&lost).await;
    assert_eq!(w.state().await.0, "promoted");
    assert_eq!(w.test_builds(), 1, "the late event started no second test");
    let subjects = w.subjects().await;
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].ends_with("ready"), "{subjects:?}");
    w.pipeline.assert_every_call_allowed();
}

#[tokio::test]
async fn a_failed_bake_whose_event_is_lost_is_cleaned_up_and_announced_once() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let w = world(true).await;
    let lost = w.bake_whose_event_is_lost().await;
    assert!(
        !w.pipeline.gild_images().await.expect("images").is_empty(),
        "the failed bake left an image"
    );
    w.pipeline
        .age_bakes(PAST_THE_BAKE_DEADLINE)
        .await
        .expect("time passes");
    let sweep = w.reconcile().await;
    assert_eq!(
        sweep["bakes"][0]["report"]["reached"],
        serde_json::json!(["failed"]),
        "{sweep}"
    );
    assert_eq!(w.state().await, ("failed".into(), "bake".into()));
    assert!(
        w.pipeline.gild_images().await.expect("images").is_empty(),
        "what the failed bake left is removed"
    );
    assert_eq!(w.test_builds(), 0);
    let announcements = w.pipeline.announcements().await.expect("announcements");
    assert_eq!(announcements.len(), 1, "{announcements:?}");
    assert!(announcements[0].subject.contains("FAILED at bake"));

    w.deliver_late(&lost).await;
    assert_eq!(w.state().await, ("failed".into(), "bake".into()));
    let again = w.subjects().await;
    assert!(again.is_empty(), "announced once, not again: {again:?}");
    w.pipeline.assert_every_call_allowed();
}
