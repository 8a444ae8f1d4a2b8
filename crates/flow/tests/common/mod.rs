//! Fakes and sample events shared by the completion and reconciler tests.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeMap;
pub use std::sync::Arc;
pub use std::time::Duration;

pub use gild_core::completion::{tags, Projects};
pub use gild_core::fakes::{
    MemoryArtifacts, MemoryImages, MemoryLedger, MemoryParameters, RecordingNotifier,
    RecordingReviews, RecordingTests,
};
pub use gild_core::ledger::{BakeKey, BakeRecord, Change};
pub use gild_core::plan::Trigger;
pub use gild_core::ports::{Ledger, PortError};
pub use gild_core::retry::Backoff;
pub use gild_core::state::{BakeState, Lane, Stage, Step, Transition};
pub use gild_flow::{Accept, Completions, FlowSettings, Ports};
pub use serde_json::Value;

pub type Flow = Completions<
    Arc<MemoryLedger>,
    MemoryImages,
    RecordingTests,
    RecordingTests,
    MemoryParameters,
    RecordingNotifier,
    RecordingReviews,
    MemoryArtifacts,
>;

pub const BAKE_BUILD: &str = "gild-bake:3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7";
pub const AMI: &str = "ami-0123456789abcdef0";
pub const FAMILY: &str = "al2023-base";
pub const DEDUPE: &str = "schedule:2026-11";

pub fn key() -> BakeKey {
    BakeKey::new(FAMILY, DEDUPE)
}

/// Both functions share one set of ports, as both share AWS in production.
pub type AllPorts = Ports<
    Arc<MemoryLedger>,
    MemoryImages,
    RecordingTests,
    RecordingTests,
    MemoryParameters,
    RecordingNotifier,
    RecordingReviews,
    MemoryArtifacts,
>;

pub fn empty_ports() -> AllPorts {
    Ports {
        ledger: Arc::new(MemoryLedger::default()),
        images: MemoryImages::default(),
        build_info: RecordingTests::default(),
        tests: RecordingTests::default(),
        parameters: MemoryParameters::default(),
        notifier: RecordingNotifier::default(),
        reviews: RecordingReviews::default(),
        artifacts: MemoryArtifacts::default(),
    }
}

pub fn flow_with(ports: AllPorts, accept: Accept) -> Flow {
    let settings = FlowSettings {
        accept,
        projects: Projects::default(),
        parameter_prefix: "/gild".into(),
        lease_secs: 60,
        candidate_ttl_hours: 0,
    };
    Completions::new(ports, settings).with_backoff(fast())
}

pub fn fast() -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
        attempts: 3,
    }
}

/// The bake-finished side over fresh fakes.
pub fn world() -> Flow {
    flow_with(empty_ports(), Accept::Bake)
}

/// The test-finished side, over the same fakes ("the same AWS") as `bake`.
pub fn into_test(bake: Flow) -> Flow {
    flow_with(bake.into_ports(), Accept::Test)
}

pub fn sample(name: &str) -> Value {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json")
}

pub fn set_env(event: &mut Value, name: &str, value: &str) {
    let vars = event["detail"]["additional-information"]["environment"]["environment-variables"]
        .as_array_mut()
        .expect("env vars");
    vars.retain(|v| v["name"] != name);
    vars.push(serde_json::json!({"name": name, "type": "PLAINTEXT", "value": value}));
}

pub fn bake_event(status: &str) -> Value {
    let mut event = sample("codebuild-bake-succeeded.json");
    event["detail"]["build-status"] = status.into();
    set_env(&mut event, "GILD_DEDUPE_KEY", DEDUPE);
    if status != "SUCCEEDED" {
        if let Some(info) = event["detail"]["additional-information"].as_object_mut() {
            info.remove("exported-environment-variables");
        }
    }
    event
}

pub fn test_event(status: &str, test_build: &str) -> Value {
    let mut event = sample("codebuild-test-succeeded.json");
    event["detail"]["build-status"] = status.into();
    event["detail"]["build-id"] =
        format!("arn:aws:codebuild:us-east-1:111122223333:build/{test_build}").into();
    event
}

pub async fn seed_baking(f: &Flow) {
    let record = BakeRecord::requested(
        key(),
        Trigger::Schedule,
        Some("9f2c1e7".into()),
        0,
        60,
        "trigger-invocation",
    );
    f.ports().ledger.claim(&record, 0).await.expect("claim");
    let started = Change {
        build_id: Some(BAKE_BUILD.into()),
        ..Change::default()
    };
    assert!(f
        .ports()
        .ledger
        .advance(
            &key(),
            Transition::of(Lane::Production, BakeState::Requested, Step::BakeStarted)
                .expect("a row"),
            &started,
            1
        )
        .await
        .expect("advance"));
    f.ports().images.add(
        AMI,
        &[
            (tags::MANAGED, "true"),
            (tags::BUILD_ID, BAKE_BUILD),
            (tags::BASE_AMI, "ami-base"),
        ],
    );
}

/// A bake whose build succeeded and whose test build runs, as test-finished
/// finds it.
pub async fn in_testing() -> Flow {
    let bake = world();
    seed_baking(&bake).await;
    bake.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    into_test(bake)
}

pub async fn state(f: &Flow) -> BakeRecord {
    f.ports()
        .ledger
        .get(&key())
        .await
        .expect("get")
        .expect("record")
}

/// Whether every snapshot is gone.
pub fn no_snapshots(f: &Flow) -> bool {
    f.ports().images.snapshots.lock().expect("lock").is_empty()
}

pub fn subjects(f: &Flow) -> Vec<String> {
    f.ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .iter()
        .map(|p| p.subject.clone())
        .collect()
}

pub fn test_build(f: &Flow) -> String {
    format!(
        "gild-test:run-{}",
        f.ports().tests.started.lock().expect("lock").len()
    )
}
