//! Pull-request payloads in the shapes GitHub and AWS document
//! (tests/events/*pull-request*) plan right: new heads, force pushes,
//! forks with and without the label, drafts, closed and merged ones, and
//! CodeCommit's event under both `detail-type` spellings.

use gild_core::catalog;
use gild_core::event;
use gild_core::github::pull_request::{triage_pull_request, PullRequestPayload};
use gild_core::plan::{self, Action, Inputs, Settings, Triage};
use gild_core::pull_request::PullRequestTriage;
use gild_core::vocabulary::Trigger;

const CATALOG: &str = r#"
[families.debian13-base]
path = "images/debian13-base"
os = "linux"
roles = ["baseline"]

[families.win2022-core-dotnet]
path = "images/win2022-core-dotnet"
os = "windows"
roles = ["dotnet"]

[families.win2022-iis]
path = "images/win2022-iis"
os = "windows"
roles = ["dotnet", "iis"]

[consumers.payments-api]
families = ["win2022-iis"]
tests = "consumers/payments-api"
owner = "team-payments"

[consumers.orders-service]
families = ["win2022-core-dotnet"]
tests = "consumers/orders-service"
owner = "team-orders"
"#;

fn events(name: &str) -> Vec<u8> {
    let path = format!("{}/../../tests/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn settings(repository: &str) -> Settings {
    Settings {
        repository: Some(repository.into()),
        ..Settings::default()
    }
}

fn inputs(changed: &[&str]) -> Inputs {
    let catalog = catalog::parse("gild.toml", CATALOG).expect("catalog");
    Inputs {
        previous_catalog: Some(catalog.clone()),
        catalog,
        changed: changed.iter().map(|p| p.to_string()).collect(),
        commit: None,
    }
}

fn github(name: &str, changed: &[&str]) -> plan::Plan {
    let payload: PullRequestPayload =
        serde_json::from_slice(&events(name)).expect("a pull_request payload");
    let s = settings("acme-platform/images");
    let triage = triage_pull_request(&payload, &s, &s.review, "acme-platform/images");
    plan::plan_triaged("GitHub pull_request", &triage, &inputs(changed)).expect("plans")
}

fn codecommit(name: &str, changed: &[&str]) -> (Triage, plan::Plan) {
    let event = event::parse_bytes(&events(name)).expect("an EventBridge event");
    let triage = plan::triage(&event, &settings("platform-images"));
    let plan = plan::plan(&event, &triage, &inputs(changed)).expect("plans");
    (triage, plan)
}

fn bakes(plan: &plan::Plan) -> Vec<(String, String, bool)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::StartBake {
                family,
                trigger,
                dedupe_key,
                promote,
                ..
            } => {
                assert_eq!(*trigger, Trigger::PullRequest);
                Some((family.clone(), dedupe_key.clone(), *promote))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_opened_pull_request_bakes_candidates_of_what_it_touches() {
    let plan = github(
        "github-pull-request.body.json",
        &["ansible/roles/dotnet/tasks/main.yml"],
    );
    assert_eq!(
        bakes(&plan),
        vec![
            (
                "win2022-core-dotnet".into(),
                "pr:acme-platform/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e".into(),
                false
            ),
            (
                "win2022-iis".into(),
                "pr:acme-platform/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e".into(),
                false
            ),
        ]
    );
    assert!(
        matches!(&plan.actions[0], Action::Supersede { keep, .. } if keep.starts_with("8c1e5a7"))
    );
    let json = serde_json::to_value(&plan.actions[1]).expect("serialises");
    assert_eq!(json["action"], "start_bake");
    assert_eq!(json["trigger"], "pull_request");
    assert_eq!(json["promote"], false);
}

#[test]
fn new_heads_and_force_pushes_supersede_the_older_head() {
    for (name, head) in [
        ("github-pull-request-synchronize.body.json", "9d2f6b8"),
        ("github-pull-request-force-pushed.body.json", "aa11bb2"),
    ] {
        let plan = github(name, &["images/win2022-iis/win2022-iis.pkr.hcl"]);
        assert!(
            matches!(&plan.actions[0], Action::Supersede { pull_request, keep } if pull_request == "acme-platform/images#17" && keep.starts_with(head)),
            "{name}: {plan:?}"
        );
        let baked = bakes(&plan);
        assert_eq!(baked.len(), 1, "{name}");
        assert!(baked[0]
            .1
            .ends_with(&format!(":{}", &baked[0].1[baked[0].1.len() - 40..])));
        assert!(baked[0].1.contains(head), "{name}: {baked:?}");
    }
}

#[test]
fn a_consumer_only_change_validates_without_baking() {
    let plan = github(
        "github-pull-request.body.json",
        &["consumers/payments-api/run.ps1"],
    );
    assert!(bakes(&plan).is_empty(), "{plan:?}");
    let validations: Vec<_> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::StartValidation {
                family, consumers, ..
            } => Some((family.as_str(), consumers.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        validations,
        vec![("win2022-iis", vec!["payments-api".to_owned()])]
    );
    let json = serde_json::to_value(plan.actions.last().expect("one")).expect("serialises");
    assert_eq!(json["action"], "start_validation");
    // A family baked anyway runs its consumers in its own test build.
    let both = github(
        "github-pull-request.body.json",
        &[
            "consumers/payments-api/run.ps1",
            "images/win2022-iis/x.pkr.hcl",
        ],
    );
    assert_eq!(bakes(&both).len(), 1);
    assert!(!both
        .actions
        .iter()
        .any(|a| matches!(a, Action::StartValidation { .. })));
}

#[test]
fn forks_are_refused_unless_labelled_and_drafts_skipped() {
    let refused = github(
        "github-pull-request-fork.body.json",
        &["images/win2022-iis/x"],
    );
    assert!(
        matches!(refused.actions.as_slice(), [Action::Refuse { reason, .. }] if reason.contains("mallory/images") && reason.contains("gild:validate")),
        "{refused:?}"
    );
    let labelled = github(
        "github-pull-request-fork-labeled.body.json",
        &["images/win2022-iis/x"],
    );
    assert_eq!(bakes(&labelled).len(), 1, "{labelled:?}");
    let draft = github(
        "github-pull-request-draft.body.json",
        &["images/win2022-iis/x"],
    );
    assert!(draft.actions.is_empty());
    assert!(draft.reason.contains("draft"), "{}", draft.reason);
}

#[test]
fn closed_and_merged_pull_requests_remove_their_candidates() {
    for name in [
        "github-pull-request-closed.body.json",
        "github-pull-request-merged.body.json",
    ] {
        let plan = github(name, &[]);
        assert!(
            matches!(plan.actions.as_slice(), [Action::RemoveCandidates { pull_request }] if pull_request == "acme-platform/images#17"),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn codecommit_pull_request_events_plan_like_github_ones() {
    for name in [
        "codecommit-pull-request-opened.json",
        "codecommit-pull-request-detail-type-variant.json",
        "codecommit-pull-request-reopened.json",
    ] {
        let (triage, plan) = codecommit(name, &["images/win2022-iis/x"]);
        let Triage::PullRequest(PullRequestTriage::Validate(pr)) = &triage else {
            panic!("{name}: {triage:?}");
        };
        assert_eq!(pr.number, 7);
        assert_eq!(pr.repository, "platform-images");
        assert!(pr.revision.is_some(), "{name}: approvals name the revision");
        assert_eq!(
            bakes(&plan),
            vec![(
                "win2022-iis".into(),
                "pr:platform-images#7:5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d".into(),
                false
            )],
            "{name}"
        );
    }
    let (_, updated) = codecommit(
        "codecommit-pull-request-source-updated.json",
        &["images/win2022-iis/x"],
    );
    assert!(bakes(&updated)[0]
        .1
        .ends_with("6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e"));
    for name in [
        "codecommit-pull-request-closed.json",
        "codecommit-pull-request-merged.json",
    ] {
        let (_, plan) = codecommit(name, &[]);
        assert!(
            matches!(plan.actions.as_slice(), [Action::RemoveCandidates { .. }]),
            "{name}: {plan:?}"
        );
    }
}

#[test]
fn codecommit_quirks_and_bad_values_are_read_or_refused_clearly() {
    let mut value: serde_json::Value =
        serde_json::from_slice(&events("codecommit-pull-request-opened.json")).expect("json");
    value["detail"]["isMerged"] = "Maybe".into();
    let err = event::parse(value.clone()).expect_err("isMerged must be True or False");
    assert!(err.to_string().contains("isMerged"), "{err}");
    value["detail"]["isMerged"] = "False".into();
    value["detail"]["sourceCommit"] = "$(reboot)".into();
    let event = event::parse(value.clone()).expect("parses");
    let triage = plan::triage(&event, &settings("platform-images"));
    assert!(
        matches!(&triage, Triage::Ignore(r) if r.contains("sourceCommit")),
        "{triage:?}"
    );
    value["detail"]["destinationReference"] = "refs/heads/release".into();
    let event = event::parse(value).expect("parses");
    let triage = plan::triage(&event, &settings("platform-images"));
    assert!(
        matches!(&triage, Triage::Ignore(r) if r.contains("tracked branch")),
        "{triage:?}"
    );
}
