//! Pull requests through the trigger and the completion steps, over one
//! world of fakes: candidates start, report on their pull request, are
//! superseded by a newer head and removed when it closes, and never touch a
//! parameter or the production topic (the property test at the end).

mod common;

use common::*;
use gild_core::catalog::CATALOG_FILE;
use gild_core::fakes::{MemoryRepository, ScriptedBuilds};
use gild_core::review::StatusState;
use gild_flow::trigger::{Handler, ReviewPorts};
use proptest::prelude::*;

const CATALOG: &str = r#"
[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"

[families.debian13-base]
path = "images/debian13-base"
os = "linux"

[consumers.payments-api]
families = ["win2022-iis"]
tests = "consumers/payments-api"
owner = "team-payments"
"#;

const REPO: &str = "acme-platform/images";
const HEAD: &str = "8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e";
const NEW_HEAD: &str = "9d2f6b8a4c0e1f3a5b7c9d1e3f5a7b9c1d3e5f70";
const PROMOTED: &str = "ami-0aaaaaaaaaaaaaaaa";

type Trigger = Handler<
    MemoryRepository,
    Arc<MemoryLedger>,
    Arc<ScriptedBuilds>,
    ReviewPorts<
        Arc<RecordingReviews>,
        Arc<RecordingTests>,
        Arc<MemoryParameters>,
        Arc<MemoryImages>,
        Arc<ScriptedBuilds>,
    >,
>;

type Steps = Completions<
    Arc<MemoryLedger>,
    Arc<MemoryImages>,
    Arc<RecordingTests>,
    Arc<RecordingTests>,
    Arc<MemoryParameters>,
    Arc<RecordingNotifier>,
    Arc<RecordingReviews>,
    Arc<MemoryArtifacts>,
>;

/// One world: the trigger and both completion functions over the same fakes.
struct World {
    trigger: Trigger,
    bake: Steps,
    test: Steps,
    fakes: Fakes,
}

/// The one AWS every function of the world shares.
struct Fakes {
    ledger: Arc<MemoryLedger>,
    builds: Arc<ScriptedBuilds>,
    reviews: Arc<RecordingReviews>,
    tests: Arc<RecordingTests>,
    parameters: Arc<MemoryParameters>,
    images: Arc<MemoryImages>,
    notifier: Arc<RecordingNotifier>,
    artifacts: Arc<MemoryArtifacts>,
}

impl Fakes {
    /// The completion steps over these fakes, taking `accept`'s builds and
    /// keeping passed candidates' images `ttl_hours`.
    fn steps(&self, accept: Accept, ttl_hours: i64) -> Steps {
        let ports = Ports {
            ledger: self.ledger.clone(),
            images: self.images.clone(),
            build_info: self.tests.clone(),
            tests: self.tests.clone(),
            parameters: self.parameters.clone(),
            notifier: self.notifier.clone(),
            reviews: self.reviews.clone(),
            artifacts: self.artifacts.clone(),
        };
        let settings = FlowSettings {
            accept,
            projects: Projects::default(),
            parameter_prefix: "/gild".into(),
            lease_secs: 60,
            candidate_ttl_hours: ttl_hours,
        };
        Completions::new(ports, settings).with_backoff(fast())
    }
}

impl std::ops::Deref for World {
    type Target = Fakes;
    fn deref(&self) -> &Fakes {
        &self.fakes
    }
}

fn world(changed: &[&str]) -> World {
    world_keeping(changed, 0)
}

/// A world whose passed candidates' images are kept `ttl_hours`.
fn world_keeping(changed: &[&str], ttl_hours: i64) -> World {
    let mut repo = MemoryRepository::default();
    for commit in [HEAD, NEW_HEAD] {
        repo.files
            .insert((commit.into(), CATALOG_FILE.into()), CATALOG.into());
    }
    let ledger = Arc::new(MemoryLedger::default());
    let builds = Arc::new(ScriptedBuilds::default());
    let reviews = Arc::new(RecordingReviews::default());
    *reviews.changed.lock().expect("lock") = changed.iter().map(|p| p.to_string()).collect();
    let tests = Arc::new(RecordingTests::default());
    let parameters = Arc::new(MemoryParameters::default());
    parameters
        .history
        .lock()
        .expect("lock")
        .insert("/gild/win2022-iis/ami".into(), vec![PROMOTED.into()]);
    let images = Arc::new(MemoryImages::default());
    let notifier = Arc::new(RecordingNotifier::default());
    let settings = gild_core::plan::Settings {
        repository: Some(REPO.into()),
        ..gild_core::plan::Settings::default()
    };
    let trigger = Handler::new(settings, repo, ledger.clone(), builds.clone(), 2, 60)
        .with_backoff(fast())
        .with_pull_requests(ReviewPorts {
            reviews: reviews.clone(),
            tests: tests.clone(),
            parameters: parameters.clone(),
            images: images.clone(),
            control: builds.clone(),
            parameter_prefix: "/gild".into(),
        });
    let fakes = Fakes {
        ledger,
        builds,
        reviews,
        tests,
        parameters,
        images,
        notifier,
        artifacts: Arc::default(),
    };
    World {
        trigger,
        bake: fakes.steps(Accept::Bake, ttl_hours),
        test: fakes.steps(Accept::Test, ttl_hours),
        fakes,
    }
}

fn opened(head: &str, action: &str) -> gild_core::pull_request::PullRequestTriage {
    let mut body: Value = sample("github-pull-request.body.json");
    body["action"] = action.into();
    body["pull_request"]["head"]["sha"] = head.into();
    let payload: gild_core::github::pull_request::PullRequestPayload =
        serde_json::from_value(body).expect("payload");
    let settings = gild_core::plan::Settings::default();
    match gild_core::github::pull_request::triage_pull_request(
        &payload,
        &settings,
        &settings.review,
        REPO,
    ) {
        gild_core::plan::Triage::PullRequest(t) => t,
        other => panic!("{other:?}"),
    }
}

async fn deliver(w: &World, head: &str, action: &str, now: i64) -> gild_flow::trigger::Outcome {
    w.trigger
        .start(
            "GitHub pull_request",
            gild_core::plan::Triage::PullRequest(opened(head, action)),
            None,
            now,
        )
        .await
        .expect("the trigger handles it")
}

fn candidate_key(family: &str, head: &str) -> BakeKey {
    BakeKey::new(family, format!("pr:{REPO}#17:{head}"))
}

/// The bake build of a candidate ends with its image.
async fn bake_succeeds(w: &World, family: &str, head: &str, image: &str) {
    let record = w
        .ledger
        .get(&candidate_key(family, head))
        .await
        .expect("get")
        .expect("record");
    let build = record.build_id.expect("a bake build");
    w.images.add(
        image,
        &[(tags::MANAGED, "true"), (tags::BUILD_ID, build.as_str())],
    );
    let mut event = bake_event("SUCCEEDED");
    event["detail"]["build-id"] = format!("arn:aws:codebuild:us-east-1:1:build/{build}").into();
    set_env(&mut event, "GILD_FAMILY", family);
    set_env(
        &mut event,
        "GILD_DEDUPE_KEY",
        &candidate_key(family, head).dedupe_key,
    );
    set_env(&mut event, "GILD_TRIGGER", "pull_request");
    event["detail"]["additional-information"]["exported-environment-variables"] =
        serde_json::json!([{"name": "GILD_AMI_ID", "value": image}]);
    w.bake.handle(event, 10).await.expect("bake-finished");
}

async fn test_ends(w: &World, family: &str, head: &str, status: &str, suites: &str) {
    let record = w
        .ledger
        .get(&candidate_key(family, head))
        .await
        .expect("get")
        .expect("record");
    let build = record.test_build_id.expect("a test build");
    let mut event = test_event(status, &build);
    set_env(&mut event, "GILD_FAMILY", family);
    set_env(
        &mut event,
        "GILD_DEDUPE_KEY",
        &candidate_key(family, head).dedupe_key,
    );
    set_env(
        &mut event,
        "GILD_AMI_ID",
        record.image.as_deref().unwrap_or(""),
    );
    event["detail"]["additional-information"]["exported-environment-variables"] =
        serde_json::json!([{"name": "GILD_TEST_SUITES", "value": suites}]);
    w.test.handle(event, 20).await.expect("test-finished");
}

const CONSUMER_FAILS: &str = r#"[{"suite":"family","name":"win2022-iis","tests":9,"failures":0,"seconds":40},{"suite":"consumer","name":"payments-api","owner":"team-payments","tests":5,"failures":1,"seconds":21,"failed":["dotnet framework 4.7.2 or later"]}]"#;
const ALL_PASS: &str = r#"[{"suite":"family","name":"win2022-iis","tests":9,"failures":0,"seconds":40},{"suite":"consumer","name":"payments-api","owner":"team-payments","tests":5,"failures":0,"seconds":21}]"#;

fn nothing_production_happened(w: &World) {
    let history = w.parameters.history.lock().expect("lock");
    assert_eq!(
        history.get("/gild/win2022-iis/ami"),
        Some(&vec![PROMOTED.to_owned()]),
        "a candidate changed the family's parameter"
    );
    assert!(history.get("/gild/debian13-base/ami").is_none());
    assert!(
        w.notifier.published.lock().expect("lock").is_empty(),
        "a candidate published on the production topic"
    );
}

#[tokio::test]
async fn a_consumer_failure_is_reported_on_the_pull_request_with_its_owner() {
    let w = world(&["images/win2022-iis/win2022-iis.pkr.hcl"]);
    let outcome = deliver(&w, HEAD, "opened", 1).await;
    assert_eq!(outcome.started.len(), 1, "{outcome:?}");
    let pending = w
        .reviews
        .status(HEAD, "gild/win2022-iis")
        .expect("a status");
    assert_eq!(pending.state, StatusState::Pending);
    bake_succeeds(&w, "win2022-iis", HEAD, "ami-0bbbbbbbbbbbbbbbb").await;
    let image = w.images.get("ami-0bbbbbbbbbbbbbbbb").expect("tagged");
    assert_eq!(
        image.tags.get(tags::CANDIDATE).map(String::as_str),
        Some("pr-17")
    );
    test_ends(&w, "win2022-iis", HEAD, "FAILED", CONSUMER_FAILS).await;
    let failed = w
        .reviews
        .status(HEAD, "gild/win2022-iis")
        .expect("a status");
    assert_eq!(failed.state, StatusState::Failure);
    assert!(
        failed.description.contains("payments-api (team-payments)"),
        "{failed:?}"
    );
    let comment = w.reviews.comment(&format!("{REPO}#17")).expect("a comment");
    assert!(
        comment.contains("payments-api (team-payments)"),
        "{comment}"
    );
    assert!(
        w.images.get("ami-0bbbbbbbbbbbbbbbb").is_none(),
        "the failed candidate's image stays"
    );
    nothing_production_happened(&w);
}

#[tokio::test]
async fn a_new_head_supersedes_the_older_one_and_passes_without_promoting() {
    let w = world(&["images/win2022-iis/win2022-iis.pkr.hcl"]);
    deliver(&w, HEAD, "opened", 1).await;
    bake_succeeds(&w, "win2022-iis", HEAD, "ami-0bbbbbbbbbbbbbbbb").await;
    let old_test = w
        .ledger
        .get(&candidate_key("win2022-iis", HEAD))
        .await
        .expect("get")
        .and_then(|r| r.test_build_id)
        .expect("testing");
    let outcome = deliver(&w, NEW_HEAD, "synchronize", 30).await;
    assert_eq!(outcome.superseded.len(), 1, "{outcome:?}");
    assert_eq!(*w.builds.stopped.lock().expect("lock"), vec![old_test]);
    assert!(
        w.images.get("ami-0bbbbbbbbbbbbbbbb").is_none(),
        "the older head's image stays"
    );
    let old = w.reviews.status(HEAD, "gild/win2022-iis").expect("status");
    assert_eq!(old.state, StatusState::Error);
    assert!(old.description.contains("superseded by 9d2f6b8"), "{old:?}");
    // The older head's test ends after all: nothing happens.
    test_ends(&w, "win2022-iis", HEAD, "SUCCEEDED", ALL_PASS).await;
    assert_eq!(
        w.ledger
            .get(&candidate_key("win2022-iis", HEAD))
            .await
            .expect("get")
            .map(|r| r.state),
        Some(BakeState::Superseded)
    );
    bake_succeeds(&w, "win2022-iis", NEW_HEAD, "ami-0cccccccccccccccc").await;
    test_ends(&w, "win2022-iis", NEW_HEAD, "SUCCEEDED", ALL_PASS).await;
    let passed = w
        .reviews
        .status(NEW_HEAD, "gild/win2022-iis")
        .expect("status");
    assert_eq!(passed.state, StatusState::Success, "{passed:?}");
    assert_eq!(
        w.ledger
            .get(&candidate_key("win2022-iis", NEW_HEAD))
            .await
            .expect("get")
            .map(|r| r.state),
        Some(BakeState::Reported)
    );
    assert!(
        w.images.get("ami-0cccccccccccccccc").is_none(),
        "reported candidates are removed"
    );
    let comments = w.reviews.comments.lock().expect("lock");
    assert_eq!(comments.len(), 1, "one comment per pull request");
    drop(comments);
    nothing_production_happened(&w);
}

#[tokio::test]
async fn a_bake_that_ends_after_its_head_was_superseded_leaves_no_image() {
    let w = world(&["images/win2022-iis/win2022-iis.pkr.hcl"]);
    deliver(&w, HEAD, "opened", 1).await;
    deliver(&w, NEW_HEAD, "synchronize", 2).await;
    assert_eq!(w.builds.stopped.lock().expect("lock").len(), 1);
    // The stop came too late: the older head's bake registered its image.
    bake_succeeds(&w, "win2022-iis", HEAD, "ami-0dddddddddddddddd").await;
    assert!(
        w.images.get("ami-0dddddddddddddddd").is_none(),
        "a superseded candidate's late image stays"
    );
    assert_eq!(
        w.ledger
            .get(&candidate_key("win2022-iis", HEAD))
            .await
            .expect("get")
            .map(|r| r.state),
        Some(BakeState::Superseded)
    );
    assert!(
        w.tests.started.lock().expect("lock").is_empty(),
        "no test for it"
    );
}

#[tokio::test]
async fn a_consumer_only_change_tests_the_promoted_image_without_baking() {
    let w = world(&["consumers/payments-api/run.ps1"]);
    let outcome = deliver(&w, HEAD, "opened", 1).await;
    assert!(
        w.builds.started.lock().expect("lock").is_empty(),
        "nothing baked"
    );
    assert_eq!(outcome.started.len(), 1, "{outcome:?}");
    let request = w.tests.started.lock().expect("lock")[0].clone();
    assert_eq!(request.image, PROMOTED);
    assert_eq!(request.commit.as_deref(), Some(HEAD));
    let record = w
        .ledger
        .get(&candidate_key("win2022-iis", HEAD))
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.state, BakeState::Validating);
    test_ends(&w, "win2022-iis", HEAD, "FAILED", CONSUMER_FAILS).await;
    assert_eq!(
        w.reviews.status(HEAD, "gild/win2022-iis").map(|s| s.state),
        Some(StatusState::Failure)
    );
    assert!(
        w.images.deregistered.lock().expect("lock").is_empty(),
        "the promoted image is production's"
    );
    nothing_production_happened(&w);
}

#[tokio::test]
async fn a_pull_request_too_large_to_list_is_refused_not_guessed() {
    let w = world(&["images/win2022-iis/x"]);
    w.reviews
        .faults
        .lock()
        .expect("lock")
        .push_back(PortError::Service {
            service: "GitHub",
            operation: "list pull request files",
            code: "TooManyFiles".into(),
            message: "3000 files or more".into(),
            server_side: false,
        });
    let outcome = deliver(&w, HEAD, "opened", 1).await;
    assert!(outcome.started.is_empty(), "{outcome:?}");
    assert!(w.builds.started.lock().expect("lock").is_empty());
    let status = w
        .reviews
        .status(HEAD, "gild")
        .expect("a status on the head");
    assert_eq!(status.state, StatusState::Error);
    assert!(status.description.contains("too many files"), "{status:?}");
}

#[tokio::test]
async fn a_kept_candidate_image_goes_when_its_time_runs_out() {
    let w = world_keeping(&["images/win2022-iis/x"], 24);
    deliver(&w, HEAD, "opened", 1).await;
    bake_succeeds(&w, "win2022-iis", HEAD, "ami-0eeeeeeeeeeeeeeee").await;
    test_ends(&w, "win2022-iis", HEAD, "SUCCEEDED", ALL_PASS).await;
    let kept = w
        .images
        .get("ami-0eeeeeeeeeeeeeeee")
        .expect("kept for people to launch");
    assert_eq!(
        kept.tags.get(tags::EXPIRES_AT).map(String::as_str),
        Some("1970-01-02T00:00:20Z")
    );
    let reconciler = |now| {
        let launcher = gild_flow::trigger::Launcher::new(w.ledger.clone(), w.builds.clone(), 2, 60);
        let deadlines = gild_core::reconcile::Deadlines::from_timeouts(60, 60, 60, 60, 15);
        (
            gild_flow::reconcile::Reconciler::new(
                w.steps(Accept::Bake, 24),
                launcher,
                deadlines,
                "us-east-1",
            ),
            now,
        )
    };
    let (early, now) = reconciler(3600);
    early.run(now).await.expect("a tick");
    assert!(
        w.images.get("ami-0eeeeeeeeeeeeeeee").is_some(),
        "removed before its time"
    );
    let (late, now) = reconciler(24 * 3600 + 21);
    late.run(now).await.expect("a tick");
    assert!(
        w.images.get("ami-0eeeeeeeeeeeeeeee").is_none(),
        "kept past its time"
    );
    nothing_production_happened(&w);
}

#[tokio::test]
async fn closing_stops_and_removes_every_open_candidate() {
    let w = world(&["ansible/site.yml"]);
    deliver(&w, HEAD, "opened", 1).await;
    assert_eq!(w.builds.started.lock().expect("lock").len(), 2);
    let outcome = deliver(&w, HEAD, "closed", 5).await;
    assert_eq!(outcome.superseded.len(), 2, "{outcome:?}");
    assert_eq!(w.builds.stopped.lock().expect("lock").len(), 2);
    for family in ["debian13-base", "win2022-iis"] {
        let record = w
            .ledger
            .get(&candidate_key(family, HEAD))
            .await
            .expect("get")
            .expect("record");
        assert_eq!(record.state, BakeState::Superseded);
    }
    nothing_production_happened(&w);
}

#[derive(Debug, Clone)]
enum Move {
    BakeSucceeds,
    BakeFails,
    TestPasses,
    TestFails,
    NewHead,
    Close,
}

fn moves() -> impl Strategy<Value = Vec<Move>> {
    prop::collection::vec(
        prop_oneof![
            Just(Move::BakeSucceeds),
            Just(Move::BakeFails),
            Just(Move::TestPasses),
            Just(Move::TestFails),
            Just(Move::NewHead),
            Just(Move::Close),
        ],
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever order, duplicates and supersessions a pull request's
    /// events come in, no candidate changes a parameter or publishes on
    /// the production topic.
    #[test]
    fn no_candidate_ever_promotes_or_announces(moves in moves()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let w = world(&["images/win2022-iis/x", "images/debian13-base/x"]);
            let heads = [HEAD, NEW_HEAD];
            let mut head = 0;
            deliver(&w, heads[head], "opened", 1).await;
            for (i, m) in moves.iter().enumerate() {
                let now = 2 + i as i64;
                let h = heads[head];
                for family in ["win2022-iis", "debian13-base"] {
                    let Some(record) = w.ledger.get(&candidate_key(family, h)).await.expect("get") else { continue };
                    match m {
                        Move::BakeSucceeds if record.build_id.is_some() => {
                            bake_succeeds(&w, family, h, &format!("ami-0{:016x}", i)).await
                        }
                        Move::BakeFails if record.build_id.is_some() => {
                            let mut event = bake_event("FAILED");
                            let build = record.build_id.clone().unwrap_or_default();
                            event["detail"]["build-id"] = format!("arn:aws:codebuild:us-east-1:1:build/{build}").into();
                            set_env(&mut event, "GILD_FAMILY", family);
                            set_env(&mut event, "GILD_DEDUPE_KEY", &record.key.dedupe_key);
                            let _ = w.bake.handle(event, now).await;
                        }
                        Move::TestPasses if record.test_build_id.is_some() => test_ends(&w, family, h, "SUCCEEDED", ALL_PASS).await,
                        Move::TestFails if record.test_build_id.is_some() => test_ends(&w, family, h, "FAILED", CONSUMER_FAILS).await,
                        _ => {}
                    }
                }
                match m {
                    Move::NewHead => {
                        head = 1 - head;
                        let _ = w.trigger.start("GitHub pull_request", gild_core::plan::Triage::PullRequest(opened(heads[head], "synchronize")), None, now).await;
                    }
                    Move::Close => {
                        let _ = w.trigger.start("GitHub pull_request", gild_core::plan::Triage::PullRequest(opened(heads[head], "closed")), None, now).await;
                    }
                    _ => {}
                }
            }
            nothing_production_happened(&w);
            for record in w.ledger.snapshot() {
                prop_assert_ne!(record.state, BakeState::Promoted);
            }
            Ok(())
        })?;
    }
}
