use super::*;
use crate::catalog;
use crate::event;
use serde_json::json;

const CATALOG: &str = r#"
[families.debian12-base]
path = "images/debian12-base"
os = "linux"
roles = ["baseline", "cw-agent"]

[families.win2022-core]
path = "images/win2022-core"
os = "windows"
roles = ["cw-agent"]

[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"
"#;

fn cat(text: &str) -> Catalog {
    catalog::parse("gild.toml", text).expect("valid catalog")
}

fn push(event_name: &str, ref_type: &str, name: &str) -> Event {
    event::parse(json!({
        "version": "0", "id": "ev-1", "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit", "account": "1", "time": "2026-11-12T14:05:09Z",
        "region": "us-east-1", "resources": [],
        "detail": {"event": event_name, "referenceType": ref_type, "referenceName": name,
                   "repositoryName": "platform-images", "commitId": "c0ffee1234567",
                   "oldCommitId": "0ld"}
    }))
    .expect("valid event")
}

#[test]
fn unreferenced_merge_commit_is_ignored_with_a_reason() {
    // The documented shape (CodeCommit User Guide, "Monitoring CodeCommit
    // events": unreferencedMergeCommitCreated): no referenceType/Name.
    let event = event::parse(json!({
        "version": "0", "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": "CodeCommit Repository State Change", "source": "aws.codecommit",
        "account": "123456789012", "time": "2026-11-12T14:05:09Z", "region": "us-east-1",
        "resources": ["arn:aws:codecommit:us-east-1:123456789012:platform-images"],
        "detail": {"callerUserArn": "arn:aws:iam::123456789012:user/Mary_Major",
                   "commitId": "0123456789abcdef0123456789abcdef01234567",
                   "event": "unreferencedMergeCommitCreated",
                   "repositoryId": "12345678-1234-5678-abcd-12345678abcd",
                   "repositoryName": "platform-images"}
    }))
    .expect("a documented CodeCommit event parses");
    let settings = Settings {
        repository: Some("platform-images".into()),
        ..Settings::default()
    };
    match triage(&event, &settings) {
        Triage::Ignore(reason) => {
            assert!(
                reason.contains("unreferencedMergeCommitCreated"),
                "{reason}"
            )
        }
        other => panic!("not ignored: {other:?}"),
    }
}

fn changed(paths: &[&str]) -> BTreeMap<String, String> {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    affected_families(&cat(CATALOG), Some(&cat(CATALOG)), &paths)
}

#[test]
fn family_folder_role_and_shared_paths() {
    assert_eq!(
        changed(&["images/debian12-base/debian.pkr.hcl"])
            .keys()
            .collect::<Vec<_>>(),
        vec!["debian12-base"]
    );
    assert_eq!(
        changed(&["ansible/roles/cw-agent/tasks/main.yml"])
            .keys()
            .collect::<Vec<_>>(),
        vec!["debian12-base", "win2022-core"]
    );
    assert_eq!(changed(&["buildspecs/bake.yml"]).len(), 3);
    assert_eq!(changed(&["ansible/ansible.cfg"]).len(), 3);
    assert!(changed(&["README.md", "functions/trigger/src/main.rs"]).is_empty());
    assert!(changed(&["ansible/roles/unused/tasks/main.yml"]).is_empty());
    assert!(changed(&["images/debian12-base-old/x"]).is_empty());
}

#[test]
fn catalog_change_builds_only_changed_entries() {
    let after = cat(&CATALOG.replace(
        "path = \"images/win2022-iis\"\nos = \"windows\"",
        "path = \"images/win2022-iis\"\nos = \"windows\"\nroles = [\"iis\"]",
    ));
    let got = affected_families(&after, Some(&cat(CATALOG)), &["gild.toml".into()]);
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["win2022-iis"]);
    // Unknown previous version: every family counts as changed.
    assert_eq!(
        affected_families(&after, None, &["gild.toml".into()]).len(),
        3
    );
    // A family removed from the catalog builds nothing.
    let fewer = cat(CATALOG.split("[families.win2022-iis]").next().unwrap_or(""));
    assert!(affected_families(&fewer, Some(&cat(CATALOG)), &["gild.toml".into()]).is_empty());
}

const LAYERED: &str = r#"
[families.debian13-base]
path = "images/debian13-base"
os = "linux"

[families.win2022-core-dotnet]
path = "images/win2022-core-dotnet"
template = "images/windows-server"
os = "windows"
roles = ["dotnet"]
[families.win2022-core-dotnet.variables]
features = "NET-Framework-45-Core"

[families.win2022-iis]
path = "images/win2022-iis"
template = "images/windows-server"
parent = "win2022-core-dotnet"
os = "windows"
roles = ["iis"]
[families.win2022-iis.variables]
features = "Web-Server"
"#;

#[test]
fn a_shared_template_rebuilds_every_family_using_it_and_says_so() {
    let layered = cat(LAYERED);
    let got = affected_families(
        &layered,
        Some(&layered),
        &["images/windows-server/windows-server.pkr.hcl".into()],
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["win2022-core-dotnet", "win2022-iis"]
    );
    assert!(got["win2022-iis"].contains("the shared template images/windows-server"));
    // A family's own folder is that family's only, and says so.
    let own = affected_families(
        &layered,
        Some(&layered),
        &["images/win2022-iis/tests/iis.ps1".into()],
    );
    assert_eq!(own.keys().collect::<Vec<_>>(), vec!["win2022-iis"]);
    assert!(
        own["win2022-iis"].contains("the family's folder"),
        "{own:?}"
    );
}

#[test]
fn a_change_to_one_familys_variables_plans_only_that_family() {
    let before = cat(LAYERED);
    let after = cat(&LAYERED.replace(
        "features = \"Web-Server\"",
        "features = \"Web-Server,Web-Asp-Net45\"",
    ));
    let got = affected_families(&after, Some(&before), &["gild.toml".into()]);
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["win2022-iis"]);
    assert!(got["win2022-iis"].contains("entry changed"), "{got:?}");
}

#[test]
fn push_triage_ignores_tags_other_branches_deletions_and_repos() {
    let settings = Settings {
        repository: Some("platform-images".into()),
        ..Settings::default()
    };
    for (event, why) in [
        (push("referenceCreated", "tag", "v1.0"), "tag `v1.0`"),
        (
            push("referenceUpdated", "branch", "feature/x"),
            "not the tracked",
        ),
        (push("referenceDeleted", "branch", "main"), "deleted"),
    ] {
        let Triage::Ignore(reason) = triage(&event, &settings) else {
            panic!("{why} should be ignored")
        };
        assert!(reason.contains(why), "{reason}");
    }
    let other_repo = Settings {
        repository: Some("elsewhere".into()),
        ..settings.clone()
    };
    assert!(matches!(
        triage(&push("referenceUpdated", "branch", "main"), &other_repo),
        Triage::Ignore(_)
    ));
    assert_eq!(
        triage(&push("referenceUpdated", "branch", "main"), &settings),
        Triage::Push {
            branch: "main".into(),
            commit: "c0ffee1234567".into(),
            base: DiffBase::Commit("0ld".into())
        }
    );
    assert!(matches!(
        triage(&push("referenceCreated", "branch", "main"), &settings),
        Triage::Push {
            base: DiffBase::EmptyTree,
            ..
        }
    ));
}

#[test]
fn push_plan_dedupes_on_commit() {
    let event = push("referenceUpdated", "branch", "main");
    let t = triage(&event, &Settings::default());
    let inputs = Inputs {
        catalog: cat(CATALOG),
        previous_catalog: Some(cat(CATALOG)),
        changed: vec!["images/win2022-iis/iis.pkr.hcl".into()],
        commit: None,
    };
    let plan = plan(&event, &t, &inputs).expect("plan");
    assert_eq!(
        plan.actions,
        vec![Action::StartBake {
            family: "win2022-iis".into(),
            trigger: Trigger::Push,
            dedupe_key: "push:c0ffee1234567".into(),
            commit: Some("c0ffee1234567".into()),
            promote: true,
            parent: None,
            children: Vec::new(),
        }]
    );
    assert!(plan.reason.contains("1 of 3"), "{}", plan.reason);
}

#[test]
fn schedule_builds_every_family_once_per_month() {
    let event = event::parse(json!({
        "version": "0", "id": "s1", "detail-type": "Scheduled Event", "source": "aws.events",
        "time": "2026-11-11T03:00:00Z", "detail": {}
    }))
    .expect("valid");
    let t = triage(&event, &Settings::default());
    assert_eq!(
        t,
        Triage::Schedule {
            month: "2026-11".into()
        }
    );
    let inputs = Inputs {
        catalog: cat(CATALOG),
        ..Inputs::default()
    };
    let plan = plan(&event, &t, &inputs).expect("plan");
    assert_eq!(plan.actions.len(), 3);
    assert!(plan.actions.iter().all(|a| matches!(a,
            Action::StartBake { trigger: Trigger::Schedule, dedupe_key, .. } if dedupe_key == "schedule:2026-11")));
}

#[test]
fn manual_unknown_family_lists_known_ones() {
    let event = event::parse(json!({
        "version": "0", "id": "m1", "detail-type": "Build Requested", "source": "gild",
        "time": "2026-11-11T03:00:00Z", "detail": {"family": "nope", "requested_by": "carol"}
    }))
    .expect("valid");
    let t = triage(&event, &Settings::default());
    let inputs = Inputs {
        catalog: cat(CATALOG),
        ..Inputs::default()
    };
    let err = plan(&event, &t, &inputs).expect_err("unknown family");
    assert_eq!(
        err.to_string(),
        "unknown family `nope`; known families: debian12-base, win2022-core, win2022-iis"
    );
}

fn layered_inputs() -> Inputs {
    Inputs {
        catalog: cat(LAYERED),
        previous_catalog: Some(cat(LAYERED)),
        changed: Vec::new(),
        commit: Some("c0ffee".into()),
    }
}

#[test]
fn a_schedule_bakes_the_parent_and_the_child_waits_for_it() {
    let event = event::parse(json!({
        "version": "0", "id": "s-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-11T03:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    }))
    .expect("event");
    let t = triage(&event, &Settings::default());
    let plan = plan(&event, &t, &layered_inputs()).expect("plan");
    let shown = serde_json::to_value(&plan.actions).expect("json");
    let iis = shown
        .as_array()
        .and_then(|a| a.iter().find(|a| a["family"] == "win2022-iis"))
        .expect("iis");
    assert_eq!(iis["action"], "wait_for_parent", "{shown}");
    assert_eq!(iis["parent"], "win2022-core-dotnet");
    let dotnet = shown
        .as_array()
        .and_then(|a| a.iter().find(|a| a["family"] == "win2022-core-dotnet"))
        .expect("dotnet");
    assert_eq!(dotnet["action"], "start_bake");
    assert_eq!(dotnet["children"], json!(["win2022-iis"]));
}

#[test]
fn a_push_to_the_child_alone_bakes_it_from_its_parents_promoted_image() {
    let inputs = Inputs {
        changed: vec!["images/win2022-iis/tests/iis.ps1".into()],
        ..layered_inputs()
    };
    let t = Triage::Push {
        branch: "main".into(),
        commit: "c0ffee".into(),
        base: DiffBase::EmptyTree,
    };
    let plan = plan_triaged("push", &t, &inputs).expect("plan");
    assert_eq!(
        plan.actions,
        vec![Action::StartBake {
            family: "win2022-iis".into(),
            trigger: Trigger::Push,
            dedupe_key: "push:c0ffee".into(),
            commit: Some("c0ffee".into()),
            promote: true,
            parent: Some("win2022-core-dotnet".into()),
            children: Vec::new(),
        }]
    );
}

#[test]
fn a_parents_passed_test_lists_a_parent_triggered_bake_per_child() {
    let finished = Finished {
        completion: Completion::TestPassed,
        build_id: "arn:aws:codebuild:us-east-1:1:build/gild-test:u-1".into(),
        status: "SUCCEEDED".into(),
        family: Some("win2022-core-dotnet".into()),
        trigger: Some(Trigger::Schedule),
        key: None,
        image: Some("ami-0abc".into()),
        base_image: None,
        commit: Some("c0ffee".into()),
        log_link: None,
        suites: None,
        found: None,
    };
    let plan = plan_triaged(
        "CodeBuild Build State Change",
        &Triage::Completion(finished),
        &layered_inputs(),
    )
    .expect("plan");
    let shown = serde_json::to_value(&plan.actions).expect("json");
    let child = shown
        .as_array()
        .and_then(|a| a.iter().find(|a| a["family"] == "win2022-iis"))
        .expect("a child bake");
    assert_eq!(child["action"], "start_bake");
    assert_eq!(child["trigger"], "parent");
    assert_eq!(child["dedupe_key"], "parent:ami-0abc");
    assert_eq!(child["parent"], "win2022-core-dotnet");
}
