//! Issue 12: the state table is the law, and nothing stays stuck.
//!
//! Random sequences of completion events (delivered late, twice, out of
//! order, or never) and reconciler runs at random times drive a few bakes
//! whose builds end as the case says, through the real completion driver
//! and reconciler, over the fakes and over the DynamoDB adapter (moto).
//! Every state change the ledger shows is a row of `state::TRANSITIONS`,
//! and once the builds have ended, a few reconciler runs past the deadlines
//! leave every bake terminal: promoted exactly when its bake and its tests
//! passed, announced exactly once, with no test started for a failed bake.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gild_core::completion::{self, tags, Projects};
use gild_core::event::{BuildStateChange, BuildStatus};
use gild_core::fakes::{
    MemoryArtifacts, MemoryImages, MemoryLedger, MemoryParameters, RecordingNotifier,
    RecordingReviews, RecordingTests, ScriptedBuilds,
};
use gild_core::ledger::{BakeKey, BakeRecord, Change, Claim};
use gild_core::plan::Trigger;
use gild_core::ports::{Ledger, PortResult};
use gild_core::reconcile::Deadlines;
use gild_core::retry::Backoff;
use gild_core::state::{BakeState, Lane, Step, Transition, TRANSITIONS};
use gild_flow::completion::Origin;
use gild_flow::reconcile::Reconciler;
use gild_flow::trigger::Launcher;
use gild_flow::{Accept, Completions, FlowSettings, Ports, Report};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const DEADLINES: Deadlines = Deadlines {
    bake_build: 3_600,
    test_build: 1_800,
    lease: 60,
    margin: 900,
};
/// Past every deadline, whatever the bake's state.
const LATER: i64 = 10_000;
const AMI_PREFIX: &str = "ami-0000000000000000";

/// The ledger as the driver sees it, recording every state change it
/// actually made (read back after each write, so an adapter that wrote
/// something else than the transition would show).
struct Observed<L> {
    inner: L,
    changes: Mutex<Vec<(BakeKey, BakeState, BakeState)>>,
}

impl<L: Ledger> Ledger for Observed<L> {
    async fn claim(&self, record: &BakeRecord, now: i64) -> PortResult<Claim> {
        self.inner.claim(record, now).await
    }
    async fn lock(
        &self,
        key: &BakeKey,
        state: BakeState,
        now: i64,
        lease_secs: i64,
        owner: &str,
    ) -> PortResult<bool> {
        self.inner.lock(key, state, now, lease_secs, owner).await
    }
    async fn advance(
        &self,
        key: &BakeKey,
        transition: Transition,
        change: &Change,
        now: i64,
    ) -> PortResult<bool> {
        let before = self.inner.get(key).await?.map(|r| r.state);
        let moved = self.inner.advance(key, transition, change, now).await?;
        let after = self.inner.get(key).await?.map(|r| r.state);
        if let (Some(before), Some(after)) = (before, after) {
            if before != after {
                if let Ok(mut changes) = self.changes.lock() {
                    changes.push((key.clone(), before, after));
                }
            }
        }
        Ok(moved)
    }
    async fn release(&self, key: &BakeKey, state: BakeState) -> PortResult<()> {
        self.inner.release(key, state).await
    }
    async fn get(&self, key: &BakeKey) -> PortResult<Option<BakeRecord>> {
        self.inner.get(key).await
    }
    async fn active(&self) -> PortResult<Vec<BakeRecord>> {
        self.inner.active().await
    }
    async fn list(&self) -> PortResult<Vec<BakeRecord>> {
        self.inner.list().await
    }
    async fn pull_request(&self, pull_request: &str) -> PortResult<Vec<BakeRecord>> {
        self.inner.pull_request(pull_request).await
    }
}

type World<L> = Reconciler<
    Arc<Observed<L>>,
    MemoryImages,
    RecordingTests,
    RecordingTests,
    MemoryParameters,
    RecordingNotifier,
    RecordingReviews,
    MemoryArtifacts,
    Arc<Observed<L>>,
    ScriptedBuilds,
>;

/// One bake of the case: whether its bake and its test builds pass.
#[derive(Debug, Clone, Copy)]
struct Bake {
    bake_passes: bool,
    test_passes: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// The bake build's completion event arrives, `copies` times.
    BakeEvent { bake: usize, copies: usize },
    /// The test build's completion event arrives (if it was started).
    TestEvent { bake: usize, copies: usize },
    /// The reconciler runs, `secs` after the previous op.
    Reconcile { secs: i64 },
    /// Time passes.
    Wait { secs: i64 },
}

fn ops(bakes: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        (0..bakes, 1..3usize).prop_map(|(bake, copies)| Op::BakeEvent { bake, copies }),
        (0..bakes, 1..3usize).prop_map(|(bake, copies)| Op::TestEvent { bake, copies }),
        (0..8_000i64).prop_map(|secs| Op::Reconcile { secs }),
        (0..3_000i64).prop_map(|secs| Op::Wait { secs }),
    ];
    proptest::collection::vec(op, 0..14)
}

fn case() -> impl Strategy<Value = (Vec<Bake>, Vec<Op>)> {
    proptest::collection::vec(
        (any::<bool>(), any::<bool>()).prop_map(|(bake_passes, test_passes)| Bake {
            bake_passes,
            test_passes,
        }),
        1..4,
    )
    .prop_flat_map(|bakes| {
        let n = bakes.len();
        (Just(bakes), ops(n))
    })
}

fn family(i: usize) -> String {
    format!("family-{i}")
}

fn bake_build(i: usize, run: u64) -> String {
    format!("gild-bake:{run}-{i}")
}

fn ended(
    project: &str,
    build: &str,
    key: &BakeKey,
    passed: bool,
    ami: Option<&str>,
) -> BuildStateChange {
    let status = if passed { "SUCCEEDED" } else { "FAILED" };
    BuildStateChange {
        project_name: project.into(),
        build_id: format!("arn:aws:codebuild:us-east-1:111122223333:build/{build}"),
        status: BuildStatus::parse(status),
        status_text: status.into(),
        env: BTreeMap::from([
            ("GILD_FAMILY".into(), key.family.clone()),
            ("GILD_DEDUPE_KEY".into(), key.dedupe_key.clone()),
        ]),
        exported: ami
            .filter(|_| passed && project == "gild-bake")
            .map(|ami| BTreeMap::from([("GILD_AMI_ID".into(), ami.to_owned())]))
            .unwrap_or_default(),
        source_version: Some("9f2c1e7".into()),
        log_link: None,
    }
}

fn fast() -> Backoff {
    Backoff {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(1),
        attempts: 2,
    }
}

struct Case<L> {
    world: World<L>,
    observed: Arc<Observed<L>>,
    keys: Vec<BakeKey>,
    amis: Vec<String>,
    bakes: Vec<Bake>,
    run: u64,
}

impl<L: Ledger> Case<L> {
    /// Every bake claimed and baking; its bake build has ended (as `bakes`
    /// says), its event not delivered yet.
    async fn start(ledger: L, bakes: Vec<Bake>, run: u64) -> Case<L> {
        let observed = Arc::new(Observed {
            inner: ledger,
            changes: Mutex::new(Vec::new()),
        });
        let ports = Ports {
            ledger: Arc::clone(&observed),
            images: MemoryImages::default(),
            build_info: RecordingTests::default(),
            tests: RecordingTests::default(),
            parameters: MemoryParameters::default(),
            notifier: RecordingNotifier::default(),
            reviews: RecordingReviews::default(),
            artifacts: MemoryArtifacts::default(),
        };
        let mut keys = Vec::new();
        let mut amis = Vec::new();
        for (i, bake) in bakes.iter().enumerate() {
            let key = BakeKey::new(family(i), format!("schedule:run-{run}"));
            let record = BakeRecord::requested(
                key.clone(),
                Trigger::Schedule,
                Some("9f2c1e7".into()),
                0,
                60,
                "t",
            );
            observed.claim(&record, 0).await.expect("claim");
            let build = bake_build(i, run);
            let started = Change {
                build_id: Some(build.clone()),
                ..Change::default()
            };
            let to_baking =
                Transition::of(Lane::Production, BakeState::Requested, Step::BakeStarted)
                    .expect("row");
            assert!(observed
                .advance(&key, to_baking, &started, 1)
                .await
                .expect("advance"));
            let ami = format!("{AMI_PREFIX}{i}");
            ports.images.add(
                &ami,
                &[(tags::MANAGED, "true"), (tags::BUILD_ID, build.as_str())],
            );
            let change = ended("gild-bake", &build, &key, bake.bake_passes, Some(&ami));
            ports
                .build_info
                .builds
                .lock()
                .expect("lock")
                .insert(build, change);
            keys.push(key);
            amis.push(ami);
        }
        let settings = FlowSettings {
            accept: Accept::Bake,
            projects: Projects::default(),
            parameter_prefix: "/gild".into(),
            lease_secs: 60,
            candidate_ttl_hours: 0,
        };
        let completions = Completions::new(ports, settings).with_backoff(fast());
        let launcher = Launcher::new(Arc::clone(&observed), ScriptedBuilds::default(), 2, 60)
            .with_backoff(fast());
        Case {
            world: Reconciler::new(completions, launcher, DEADLINES, "us-east-1"),
            observed,
            keys,
            amis,
            bakes,
            run,
        }
    }

    fn ports(
        &self,
    ) -> &gild_core::ports::CompletionPorts<
        Arc<Observed<L>>,
        MemoryImages,
        RecordingTests,
        RecordingTests,
        MemoryParameters,
        RecordingNotifier,
        RecordingReviews,
        MemoryArtifacts,
    > {
        self.world.completions().ports()
    }

    /// Test builds end as soon as they start, as the case says; CodeBuild
    /// (the fake `build_info`) knows them from then on.
    fn end_started_tests(&self) {
        let started = self.ports().tests.started.lock().expect("lock").clone();
        let mut builds = self.ports().build_info.builds.lock().expect("lock");
        for (n, request) in started.iter().enumerate() {
            let id = format!("gild-test:run-{}", n + 1);
            let i = self
                .keys
                .iter()
                .position(|k| *k == request.key)
                .expect("a case bake");
            builds.entry(id.clone()).or_insert_with(|| {
                ended(
                    "gild-test",
                    &id,
                    &request.key,
                    self.bakes[i].test_passes,
                    None,
                )
            });
        }
    }

    /// Delivers the completion event of `build`, if it has ended, as the
    /// functions would take it.
    async fn deliver(&self, build: Option<String>, now: i64) -> Result<(), String> {
        let Some(build) = build else { return Ok(()) };
        let change = self
            .ports()
            .build_info
            .builds
            .lock()
            .expect("lock")
            .get(&build)
            .cloned();
        let Some(change) = change else { return Ok(()) };
        let finished = completion::classify(&change, &Projects::default())?;
        let report = Report {
            event: "CodeBuild Build State Change".into(),
            family: None,
            build_id: None,
            reached: Vec::new(),
            noop: None,
        };
        match self
            .world
            .completions()
            .drive(
                report,
                &finished,
                Origin::Event,
                "us-east-1",
                "2026-11-11T04:00:00Z",
                now,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Another delivery holds the lock: Lambda retries it later.
            Err(err) if err.name() == "Busy" => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    }

    async fn test_build_of(&self, i: usize) -> Option<String> {
        let record = self.ports().ledger.get(&self.keys[i]).await.ok()??;
        record.test_build_id
    }

    async fn play(&self, ops: &[Op]) -> Result<i64, String> {
        let mut now = 10;
        for op in ops {
            self.end_started_tests();
            match *op {
                Op::BakeEvent { bake, copies } => {
                    for _ in 0..copies {
                        self.deliver(Some(bake_build(bake, self.run)), now).await?;
                    }
                }
                Op::TestEvent { bake, copies } => {
                    for _ in 0..copies {
                        let build = self.test_build_of(bake).await;
                        self.deliver(build, now).await?;
                    }
                }
                Op::Reconcile { secs } => {
                    now += secs;
                    self.world.run(now).await.map_err(|e| e.to_string())?;
                }
                Op::Wait { secs } => now += secs,
            }
            now += 1;
        }
        // The builds have all ended: the reconciler finishes what is left.
        for _ in 0..4 {
            self.end_started_tests();
            now += LATER;
            self.world.run(now).await.map_err(|e| e.to_string())?;
        }
        Ok(now)
    }

    async fn check(&self) -> Result<(), TestCaseError> {
        for (key, from, to) in self.observed.changes.lock().expect("lock").iter() {
            prop_assert!(
                TRANSITIONS.iter().any(|(f, _, t, _)| f == from && t == to),
                "{} went {from} -> {to}: not a row of the table",
                key.family
            );
        }
        let published = self
            .ports()
            .notifier
            .published
            .lock()
            .expect("lock")
            .clone();
        let history = self
            .ports()
            .parameters
            .history
            .lock()
            .expect("lock")
            .clone();
        let tested: Vec<BakeKey> = self
            .ports()
            .tests
            .started
            .lock()
            .expect("lock")
            .iter()
            .map(|t| t.key.clone())
            .collect();
        for (i, key) in self.keys.iter().enumerate() {
            let record = self
                .ports()
                .ledger
                .get(key)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .ok_or_else(|| TestCaseError::fail("record gone"))?;
            prop_assert!(
                record.state.is_terminal(),
                "{} left {}",
                key.family,
                record.state
            );
            let bake = self.bakes[i];
            let should_promote = bake.bake_passes && bake.test_passes;
            prop_assert_eq!(
                record.state == BakeState::Promoted,
                should_promote,
                "{:?}: {:?}",
                bake,
                record
            );
            let announced = published
                .iter()
                .filter(|p| p.subject.starts_with(&format!("gild: {} ", key.family)))
                .count();
            prop_assert_eq!(announced, 1, "{} announced {} times", key.family, announced);
            let promoted = history
                .get(&format!("/gild/{}/ami", key.family))
                .map_or(0, Vec::len);
            prop_assert_eq!(promoted, usize::from(should_promote));
            let tests = tested.iter().filter(|k| *k == key).count();
            prop_assert_eq!(
                tests,
                usize::from(bake.bake_passes),
                "{} test builds",
                tests
            );
            prop_assert_eq!(
                self.ports().images.get(&self.amis[i]).is_some(),
                should_promote,
                "only a promoted image is kept"
            );
        }
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn over_the_fakes_every_change_is_a_row_and_every_bake_ends() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config::with_cases(256));
    let result = runner.run(&case(), |(bakes, ops)| {
        rt.block_on(async {
            let case = Case::start(MemoryLedger::default(), bakes, 0).await;
            case.play(&ops).await.map_err(TestCaseError::fail)?;
            case.check().await
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn over_dynamodb_every_change_is_a_row_and_every_bake_ends() {
    if gild_tests::moto::skip_requested() {
        return;
    }
    let rt = runtime();
    let (moto, config) = rt.block_on(async {
        let moto = gild_tests::moto::MotoServer::start().await.expect("moto");
        let config = gild_tests::aws::sdk_config(&moto.endpoint());
        gild_tests::pipeline::create_stack(&config)
            .await
            .expect("stack");
        (moto, config)
    });
    let run = std::sync::atomic::AtomicU64::new(0);
    let mut runner = TestRunner::new(Config::with_cases(24));
    let result = runner.run(&case(), |(bakes, ops)| {
        // Each case's bakes have a dedupe key of their own; earlier cases
        // leave only terminal bakes (or fail the test).
        let run = run.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        rt.block_on(async {
            let ledger = gild_aws::dynamodb::DynamoLedger::new(
                aws_sdk_dynamodb::Client::new(&config),
                gild_tests::pipeline::LEDGER_TABLE,
            );
            let case = Case::start(ledger, bakes, run).await;
            case.play(&ops).await.map_err(TestCaseError::fail)?;
            case.check().await
        })
    });
    drop(moto);
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
