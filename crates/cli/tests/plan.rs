//! `gild plan` as users run it: the real binary on real-shaped events.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn event(name: &str) -> String {
    root().join("tests/events").join(name).display().to_string()
}

fn catalog() -> String {
    root()
        .join("tests/fixtures/catalog.toml")
        .display()
        .to_string()
}

/// Runs `gild plan`; Ok(json) on success, Err(stderr) on failure.
fn plan(args: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_gild"))
        .arg("plan")
        .args(args)
        .output()
        .expect("gild runs");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("plan prints JSON"))
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one-line error: {stderr}"
        );
        Err(stderr)
    }
}

fn families(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["family"].as_str().expect("family").to_owned())
        .collect()
}

#[test]
fn schedule_plans_every_family_for_the_month() {
    let p = plan(&["--event", &event("schedule.json"), "--catalog", &catalog()]).expect("plan");
    assert_eq!(p["event"], "Scheduled Event");
    assert_eq!(
        families(&p),
        ["al2023-base", "debian12-base", "win2022-core"]
    );
    for action in p["actions"].as_array().expect("actions") {
        assert_eq!(action["action"], "start_bake");
        assert_eq!(action["trigger"], "schedule");
        assert_eq!(action["dedupe_key"], "schedule:2026-11");
    }
}

#[test]
fn push_plans_only_affected_families() {
    let push = event("codecommit-push.json");
    let cat = catalog();
    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &cat,
        "--changed",
        "images/al2023-base/al2023.pkr.hcl",
        "--changed",
        "docs/index.md",
    ])
    .expect("plan");
    assert_eq!(families(&p), ["al2023-base"]);
    assert_eq!(p["actions"][0]["trigger"], "push");
    assert_eq!(
        p["actions"][0]["dedupe_key"],
        "push:a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1"
    );

    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &cat,
        "--changed",
        "ansible/roles/cw-agent/tasks/main.yml",
    ])
    .expect("plan");
    assert_eq!(families(&p), ["debian12-base", "win2022-core"]);

    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &cat,
        "--changed",
        "buildspecs/bake.yml",
    ])
    .expect("plan");
    assert_eq!(families(&p).len(), 3);

    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &cat,
        "--changed",
        "functions/trigger/src/main.rs",
        "--changed",
        "README.md",
    ])
    .expect("plan");
    assert!(families(&p).is_empty());
    assert!(p["reason"]
        .as_str()
        .expect("reason")
        .contains("touches no family"));
}

#[test]
fn catalog_edit_builds_changed_entries_or_all_without_previous() {
    let dir = std::env::temp_dir().join(format!("gild-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let before = std::fs::read_to_string(catalog()).expect("fixture");
    let after = before.replace(
        "roles = [\"baseline\"]",
        "roles = [\"baseline\", \"cw-agent\"]",
    );
    assert_ne!(before, after);
    let after_path = dir.join("after.toml");
    std::fs::write(&after_path, after).expect("write");
    let push = event("codecommit-push.json");
    let after_s = after_path.display().to_string();
    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &after_s,
        "--previous-catalog",
        &catalog(),
        "--changed",
        "gild.toml",
    ])
    .expect("plan");
    assert_eq!(families(&p), ["al2023-base"]);
    let p = plan(&[
        "--event",
        &push,
        "--catalog",
        &after_s,
        "--changed",
        "gild.toml",
    ])
    .expect("plan");
    assert_eq!(families(&p).len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ignored_events_have_no_actions_and_a_reason() {
    for (file, why) in [
        ("codecommit-tag.json", "tag"),
        ("codecommit-branch-deleted.json", "deleted"),
        ("codecommit-other-branch.json", "not the tracked branch"),
    ] {
        let p = plan(&["--event", &event(file), "--catalog", &catalog()]).expect(file);
        assert_eq!(p["actions"], Value::Array(vec![]), "{file}");
        assert!(
            p["reason"].as_str().expect("reason").contains(why),
            "{file}: {}",
            p["reason"]
        );
    }
}

#[test]
fn new_tracked_branch_counts_every_file_as_changed() {
    let p = plan(&[
        "--event",
        &event("codecommit-branch-created.json"),
        "--catalog",
        &catalog(),
        "--changed",
        "images/debian12-base/x",
    ])
    .expect("plan");
    assert_eq!(families(&p), ["debian12-base"]);
}

#[test]
fn manual_requests() {
    let p = plan(&[
        "--event",
        &event("manual-build.json"),
        "--catalog",
        &catalog(),
    ]);
    // The sample asks for debian12-base, which the fixture catalog has.
    let p = p.expect("plan");
    assert_eq!(families(&p), ["debian12-base"]);
    assert_eq!(p["actions"][0]["trigger"], "manual");
    assert_eq!(
        p["actions"][0]["dedupe_key"],
        "manual:5f0c9b1e-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
    );
    let p = plan(&[
        "--event",
        &event("manual-build-all.json"),
        "--catalog",
        &catalog(),
    ])
    .expect("plan");
    assert_eq!(families(&p).len(), 3);
    let err = plan(&[
        "--event",
        &event("manual-build-unknown.json"),
        "--catalog",
        &catalog(),
    ])
    .expect_err("unknown");
    assert!(
        err.contains(
            "unknown family `centos6`; known families: al2023-base, debian12-base, win2022-core"
        ),
        "{err}"
    );
}

#[test]
fn malformed_and_unreadable_inputs_fail_with_one_line() {
    let err = plan(&[
        "--event",
        &event("codecommit-malformed.json"),
        "--catalog",
        &catalog(),
    ])
    .expect_err("malformed");
    assert!(err.contains("referenceType"), "{err}");
    let err = plan(&["--event", "/nonexistent/event.json"]).expect_err("missing file");
    assert!(err.contains("cannot read /nonexistent/event.json"), "{err}");
    let err = plan(&["--event", &event("github-push.body.json")]).expect_err("not EventBridge");
    assert!(err.contains("not an EventBridge event"), "{err}");
    let err = plan(&[
        "--event",
        &event("schedule.json"),
        "--catalog",
        &event("schedule.json"),
    ])
    .expect_err("bad catalog");
    assert!(err.contains("schedule.json:1:"), "{err}");
}

#[test]
fn completion_events_explain_their_actions() {
    let names = |p: &Value| -> Vec<String> {
        p["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| a["action"].as_str().expect("action").to_owned())
            .collect()
    };
    let p = plan(&["--event", &event("codebuild-bake-succeeded.json")]).expect("plan");
    assert_eq!(names(&p), ["tag_image", "start_test"]);
    assert_eq!(p["actions"][0]["family"], "al2023-base");
    assert_eq!(p["actions"][0]["image"], "ami-0123456789abcdef0");
    let p = plan(&["--event", &event("codebuild-bake-failed.json")]).expect("plan");
    assert_eq!(names(&p), ["cleanup", "announce_failure"]);
    let p = plan(&["--event", &event("codebuild-test-succeeded.json")]).expect("plan");
    assert_eq!(names(&p), ["promote", "announce_success"]);
    assert_eq!(p["actions"][0]["image"], "ami-0123456789abcdef0");
    let p = plan(&["--event", &event("codebuild-test-failed.json")]).expect("plan");
    assert_eq!(names(&p), ["cleanup", "announce_failure"]);
    let p = plan(&["--event", &event("codebuild-bake-in-progress.json")]).expect("plan");
    assert!(names(&p).is_empty());
    assert!(p["reason"]
        .as_str()
        .expect("reason")
        .contains("IN_PROGRESS"));
    // Projects are told apart by name.
    let p = plan(&[
        "--event",
        &event("codebuild-bake-succeeded.json"),
        "--bake-project",
        "other",
    ])
    .expect("plan");
    assert!(names(&p).is_empty(), "{p}");
    let p = plan(&[
        "--event",
        &event("codebuild-test-succeeded.json"),
        "--bake-project",
        "gild-test",
        "--test-project",
        "x",
    ])
    .expect("plan");
    assert_eq!(names(&p), ["tag_image", "start_test"]);
}

/// `gild plan --ledger`: what the reconciler would do with a ledger
/// snapshot, JSON in and actions out, with no AWS call.
#[test]
fn a_ledger_snapshot_shows_what_the_reconciler_would_do() {
    let record = |family: &str, state: &str, build: Option<&str>, test: Option<&str>| {
        serde_json::json!({
            "key": {"family": family, "dedupe_key": "schedule:2026-11"},
            "trigger": "schedule", "commit": "9f2c1e7", "state": state,
            "build_id": build, "image": build.map(|_| "ami-0abc"), "test_build_id": test,
            "failed_stage": null, "reason": null,
            "requested_at": 0, "updated_at": 0, "lease_until": 0, "owner": null
        })
    };
    let snapshot = serde_json::json!({
        "bakes": [
            record("a-baked-lost", "baking", Some("gild-bake:1"), None),
            record("b-test-failed-lost", "testing", Some("gild-bake:2"), Some("gild-test:2")),
            record("c-never-started", "requested", None, None),
            record("d-still-running", "baking", Some("gild-bake:4"), None),
            record("e-waiting", "queued", None, None),
            record("f-done", "promoted", Some("gild-bake:6"), Some("gild-test:6")),
        ],
        "builds": {
            "gild-bake:1": {"status": "SUCCEEDED", "exported": {"GILD_AMI_ID": "ami-0abc"}},
            "gild-test:2": {"status": "FAILED"},
            "gild-bake:4": {"status": "IN_PROGRESS"}
        }
    });
    let path = std::env::temp_dir().join(format!("gild-ledger-{}.json", std::process::id()));
    std::fs::write(&path, snapshot.to_string()).expect("write");
    // A day after every bake's last change: all past their deadlines.
    let p = plan(&["--ledger", &path.display().to_string(), "--now", "86400"]).expect("plan");
    let _ = std::fs::remove_file(&path);
    assert_eq!(p["event"], "reconcile");
    let bakes = p["bakes"].as_array().expect("bakes");
    let by_family = |family: &str| {
        bakes
            .iter()
            .find(|b| b["family"] == family)
            .unwrap_or_else(|| panic!("{family} in {p}"))
    };
    let resumed = by_family("a-baked-lost");
    assert_eq!(resumed["verdict"], "resume");
    assert_eq!(resumed["completion"], "bake_succeeded");
    assert_eq!(resumed["reaches"], serde_json::json!(["baked", "testing"]));
    let actions: Vec<&str> = resumed["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, ["tag_image", "start_test"]);
    let failed = by_family("b-test-failed-lost");
    assert_eq!(failed["reaches"], serde_json::json!(["failed"]));
    assert_eq!(by_family("c-never-started")["completion"], "never_started");
    assert_eq!(by_family("d-still-running")["verdict"], "wait");
    assert!(
        bakes
            .iter()
            .all(|b| b["family"] != "e-waiting" && b["family"] != "f-done"),
        "queued and terminal bakes are not the reconciler's: {p}"
    );
    // Before the deadlines nothing is overdue.
    std::fs::write(&path, snapshot.to_string()).expect("write");
    let early = plan(&["--ledger", &path.display().to_string(), "--now", "60"]).expect("plan");
    let _ = std::fs::remove_file(&path);
    assert_eq!(early["bakes"], serde_json::json!([]));
}

/// The images repository's own catalog (families and their consumers).
fn gild_toml() -> String {
    root().join("gild.toml").display().to_string()
}

fn actions(plan: &Value) -> Vec<Value> {
    plan["actions"].as_array().expect("actions").clone()
}

#[test]
fn github_pull_requests_plan_candidates_never_promoted() {
    let p = plan(&[
        "--event",
        &event("github-pull-request.body.json"),
        "--github-event",
        "pull_request",
        "--catalog",
        &catalog(),
        "--changed",
        "images/win2022-core/win2022-core.pkr.hcl",
    ])
    .expect("plan");
    assert_eq!(p["event"], "GitHub pull_request");
    let acts = actions(&p);
    assert_eq!(acts[0]["action"], "supersede", "{p}");
    assert_eq!(acts[1]["action"], "start_bake");
    assert_eq!(acts[1]["family"], "win2022-core");
    assert_eq!(acts[1]["trigger"], "pull_request");
    assert_eq!(acts[1]["promote"], false);
    assert_eq!(
        acts[1]["dedupe_key"],
        "pr:acme-platform/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e"
    );
    for (file, action, why) in [
        (
            "github-pull-request-fork.body.json",
            Some("refuse"),
            "gild:validate",
        ),
        ("github-pull-request-draft.body.json", None, "draft"),
        (
            "github-pull-request-closed.body.json",
            Some("remove_candidates"),
            "closed",
        ),
        (
            "github-pull-request-merged.body.json",
            Some("remove_candidates"),
            "closed",
        ),
    ] {
        let p = plan(&[
            "--event",
            &event(file),
            "--github-event",
            "pull_request",
            "--catalog",
            &catalog(),
            "--changed",
            "images/win2022-core/x",
        ])
        .expect("plan");
        let acts = actions(&p);
        match action {
            Some(action) => assert_eq!(acts[0]["action"], action, "{file}: {p}"),
            None => assert!(acts.is_empty(), "{file}: {p}"),
        }
        assert!(
            p["reason"].as_str().expect("reason").contains(why),
            "{file}: {p}"
        );
    }
}

#[test]
fn a_consumer_only_change_plans_a_test_only_run() {
    let p = plan(&[
        "--event",
        &event("codecommit-pull-request-opened.json"),
        "--catalog",
        &gild_toml(),
        "--changed",
        "consumers/payments-api/run.ps1",
    ])
    .expect("plan");
    let acts = actions(&p);
    assert!(acts.iter().all(|a| a["action"] != "start_bake"), "{p}");
    let validation = acts
        .iter()
        .find(|a| a["action"] == "start_validation")
        .expect("a test-only run");
    assert_eq!(validation["family"], "win2022-iis");
    assert_eq!(validation["consumers"], serde_json::json!(["payments-api"]));
    assert_eq!(validation["promote"], false);
    assert_eq!(
        validation["dedupe_key"],
        "pr:platform-images#7:5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d"
    );
}
