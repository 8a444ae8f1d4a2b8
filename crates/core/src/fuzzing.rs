//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus
//! replay test that `make test` runs on stable: each takes raw bytes from
//! the outside world and must never panic. Assertions here are properties
//! that hold for every input. Behind the `fuzzing` feature; the Slack
//! target's entry point is `gild_slack::fuzzing`.

use crate::bom::{self, Bom};
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
                for folder in [&family.path, &family.template] {
                    assert!(!folder.starts_with('/') && !folder.split('/').any(|p| p == ".."));
                }
                // The graph the parse accepted: known parents of the same
                // OS, no cycle, no chain deeper than the limit.
                let ancestors = parsed.ancestors(name);
                assert!(ancestors.len() < catalog::MAX_DEPTH);
                assert!(ancestors
                    .iter()
                    .all(|a| a.os == family.os && a.name != *name));
                let below = crate::layers::descendants(&parsed, name);
                assert!(!below.iter().any(|d| d.split('/').any(|f| f == name)));
                for key in family.variables.keys() {
                    assert!(!catalog::RESERVED_VARIABLES.contains(&key.as_str()));
                }
            }
            // A run of every family waits only for parents in the run.
            let all = parsed.families.keys().cloned().collect();
            for (family, waits_for) in crate::layers::layer(&parsed, &all) {
                if let Some(parent) = waits_for {
                    assert_eq!(parsed.families[&family].parent.as_ref(), Some(&parent));
                }
            }
        }
        Err(err) => assert!(err.line >= 1 && err.line <= text.lines().count() + 1),
    }
}

const BOM_LINUX: &str = r#"{"schema": "gild.bom/1", "family": "debian13-base", "os": "linux", "collected_at": "2026-12-06T21:00:00Z", "packages": [{"kind": "dpkg", "name": "openssl", "version": "3.0.15-1~deb12u1", "arch": "amd64"}, {"kind": "dpkg", "name": "curl", "version": "7.88.1-10", "arch": "amd64"}]}"#;
const BOM_WINDOWS: &str = r#"{"schema": "gild.bom/1", "family": "win2022-iis", "os": "windows", "collected_at": "2026-12-06T21:00:00Z", "packages": [{"kind": "hotfix", "name": "KB5044281"}, {"kind": "program", "name": "7-Zip", "version": "24.08"}]}"#;

/// A bill of materials as a bake writes it: parse. One that parses writes
/// back to itself; its diff with itself is empty; its diff from a fixed BOM
/// of its OS applies back to its own list, mirrors the reverse diff, and
/// the summary counts what the diff holds.
pub fn bom(data: &[u8]) {
    let Ok(parsed) = Bom::parse(data) else {
        return;
    };
    match parsed.to_json() {
        Ok(json) => assert_eq!(Bom::parse(json.as_bytes()).as_ref(), Ok(&parsed)),
        Err(err) => panic!("a parsed BOM does not serialise: {err}"),
    }
    assert!(bom::diff(&parsed, &parsed).is_empty());
    let reference = match parsed.os() {
        catalog::Os::Linux => BOM_LINUX,
        catalog::Os::Windows => BOM_WINDOWS,
    };
    let Ok(reference) = Bom::parse(reference.as_bytes()) else {
        panic!("the fuzz target's reference BOM does not parse");
    };
    let forward = bom::diff(&reference, &parsed);
    assert_eq!(
        bom::apply(&reference, &forward).as_deref(),
        Ok(parsed.packages())
    );
    let back = bom::diff(&parsed, &reference);
    assert_eq!(forward.added, back.removed);
    assert_eq!(forward.upgraded.len(), back.downgraded.len());
    let summary = bom::summarize(&forward, 5);
    assert!(summary.named.len() <= 5);
    assert_eq!(
        (summary.upgraded, summary.added, summary.removed),
        (
            forward.upgraded.len(),
            forward.added.len(),
            forward.removed.len()
        )
    );
    // One line per change, or the one saying there is none.
    let rows = forward.changes() + forward.respelled.len();
    assert_eq!(bom::lines(&forward).len(), rows.max(1));
    let json_len = serde_json::to_vec(&forward).map(|v| v.len()).ok();
    assert_eq!(json_len, Some(bom::json_len(&forward)));
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
