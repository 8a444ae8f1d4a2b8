//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus
//! replay test that `make test` runs on stable: each takes raw bytes from
//! the outside world and must never panic. Assertions here are properties
//! that hold for every input. Behind the `fuzzing` feature; the Slack
//! target's entry point is `gild_slack::fuzzing`.

use crate::catalog;
use crate::completion::{self, Projects};
use crate::event;
use crate::github::{self, PushPayload};
use crate::plan::{self, Inputs, Settings, Triage};
use crate::queue;

const CATALOG: &str = "[families.debian13-base]\npath = \"images/debian13-base\"\nos = \"linux\"\nroles = [\"baseline\"]\n\n[families.win2022-iis]\npath = \"images/win2022-iis\"\nos = \"windows\"\nroles = [\"iis\"]\n";
const SECRET: &[u8] = b"gild-fuzz-secret";

/// An EventBridge event as a Lambda receives it: parse, triage, plan, and
/// what a build's end means for the bake queue.
pub fn eventbridge(data: &[u8]) {
    let Ok(event) = event::parse_bytes(data) else {
        return;
    };
    let settings = Settings::default();
    let triage = plan::triage(&event, &settings);
    if let event::EventKind::BuildStateChange(change) = &event.kind {
        if let Ok(finished) = completion::classify(change, &Projects::default()) {
            // Every completion names the state it expects and a chain of work from it.
            for lane in [
                crate::state::Lane::Production,
                crate::state::Lane::Candidate,
            ] {
                let _ = completion::work_chain(lane, finished.completion);
            }
        }
        // A build's end frees the slot of the build the event names, no other.
        if let Some(ended) = queue::freed_slot(change, &Projects::default().bake) {
            assert!(
                change.build_id.ends_with(ended),
                "{ended} not from {}",
                change.build_id
            );
        }
    }
    let Ok(catalog) = catalog::parse("gild.toml", CATALOG) else {
        return;
    };
    let inputs = Inputs {
        catalog,
        previous_catalog: None,
        changed: vec!["images/debian13-base/x".into(), "gild.toml".into()],
        commit: Some("0123456789abcdef".into()),
    };
    candidates_are_never_promoted(&triage);
    if let Ok(plan) = plan::plan(&event, &triage, &inputs) {
        if matches!(triage, Triage::Ignore(_)) {
            assert!(plan.actions.is_empty(), "an ignored event planned actions");
        }
    }
}

/// `gild.toml` text: parse; errors point inside the text.
pub fn catalog(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match catalog::parse("gild.toml", text) {
        Ok(parsed) => {
            for (name, family) in &parsed.families {
                assert_eq!(name, &family.name);
                assert!(
                    !family.path.starts_with('/') && !family.path.split('/').any(|p| p == "..")
                );
            }
        }
        Err(err) => assert!(err.line >= 1 && err.line <= text.lines().count() + 1),
    }
}

/// A webhook delivery: the first line is the `X-Hub-Signature-256` header,
/// the rest the body. The signature check never panics; a body signed with
/// the secret always verifies and a tampered one never does; any body that
/// parses as a push triages without panicking.
pub fn webhook(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = std::str::from_utf8(&data[..split]).ok();
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = github::verify_signature(&[SECRET], body, header);

    let signature = sign(body);
    assert_eq!(
        github::verify_signature(&[SECRET], body, Some(&signature)),
        Ok(())
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(first) => *first ^= 0x01,
        None => tampered.push(b'x'),
    }
    assert!(github::verify_signature(&[SECRET], &tampered, Some(&signature)).is_err());
    assert!(github::verify_signature(&[b""], body, Some(&signature)).is_err());

    if let Ok(push) = serde_json::from_slice::<PushPayload>(body) {
        let (triage, changed) = github::triage_push(
            &push,
            &Settings::default(),
            &push.repository.full_name.clone(),
        );
        if changed.is_some() {
            assert!(matches!(triage, Triage::Push { .. }));
        }
    }
    if let Ok(pr) = serde_json::from_slice::<github::pull_request::PullRequestPayload>(body) {
        let settings = Settings::default();
        let triage = github::pull_request::triage_pull_request(
            &pr,
            &settings,
            &settings.review,
            &pr.repository.full_name.clone(),
        );
        candidates_are_never_promoted(&triage);
    }
}

/// Whatever a pull request's plan holds, nothing in it promotes.
fn candidates_are_never_promoted(triage: &Triage) {
    let Ok(catalog) = catalog::parse("gild.toml", CATALOG) else {
        return;
    };
    let inputs = Inputs {
        catalog,
        previous_catalog: None,
        changed: vec!["images/debian13-base/x".into(), "gild.toml".into()],
        commit: None,
    };
    if let Ok(plan) = plan::plan_triaged("fuzz", triage, &inputs) {
        if matches!(triage, Triage::PullRequest(_)) {
            for action in &plan.actions {
                assert!(
                    !matches!(action, plan::Action::StartBake { promote: true, .. }),
                    "a pull request planned a production bake: {action:?}"
                );
            }
        }
    }
}

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
