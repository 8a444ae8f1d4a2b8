//! The rendered payloads: the expected fixtures, what is shown for values
//! this version does not know, which buttons appear, and that no input,
//! however absurd, breaks Block Kit's limits.

use super::*;
use crate::block_kit_problems;
use crate::testdata::{bake_failed, codecommit, fixture, github, promoted, rendered, test_failed};
use gild_core::announce::{Announcement, Outcome};
use gild_core::state::Stage;
use proptest::prelude::*;

fn assert_payload(actual: &Value, expected: &str) {
    let expected = fixture(expected);
    assert!(
        *actual == expected,
        "rendered payload differs from the fixture; rendered:\n{}",
        serde_json::to_string_pretty(actual).unwrap_or_default()
    );
    assert_eq!(block_kit_problems(actual), Vec::<String>::new());
}

#[test]
fn success_matches_expected_payload() {
    assert_payload(
        &rendered(&promoted(), &codecommit()),
        include_str!("../../../../tests/fixtures/slack/expected-promoted.json"),
    );
}

#[test]
fn test_failure_matches_expected_payload() {
    assert_payload(
        &rendered(&test_failed(), &github()),
        include_str!("../../../../tests/fixtures/slack/expected-test-failed.json"),
    );
}

#[test]
fn bake_failure_matches_expected_payload() {
    assert_payload(
        &rendered(&bake_failed(), &codecommit()),
        include_str!("../../../../tests/fixtures/slack/expected-bake-failed.json"),
    );
}

#[test]
fn unknown_triggers_and_stages_are_shown_not_refused() {
    let mut body = test_failed().json();
    body["trigger"] = json!("webhook");
    body["stage"] = json!("sign");
    let payload = render_body(&body.to_string(), &codecommit())
        .expect("renders")
        .to_json();
    assert_eq!(
        payload["blocks"][0]["text"]["text"],
        ":x: debian13-base FAILED at sign"
    );
    let fields = payload["blocks"][1]["fields"].to_string();
    assert!(fields.contains("*Trigger*\\nwebhook"), "{fields}");
    assert!(block_kit_problems(&payload).is_empty());
}

#[test]
fn console_button_only_for_a_promoted_image() {
    let ids = |a: &Announcement| -> Vec<String> {
        let payload = rendered(a, &codecommit());
        payload["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .map(|e| e["action_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&promoted()),
        ["bake_log", "test_report", "test_log", "ec2_image"]
    );
    assert_eq!(ids(&test_failed()), ["bake_log", "test_report", "test_log"]);
    assert_eq!(ids(&bake_failed()), ["bake_log"]);
    let bare = Announcement {
        bake_log: None,
        ..bake_failed()
    };
    let payload = rendered(&bare, &codecommit());
    assert!(payload["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .all(|b| b["type"] != "actions"));
    assert!(block_kit_problems(&payload).is_empty());
}

fn absurd() -> Announcement {
    let long = |unit: &str, n: usize| unit.repeat(n);
    let link = format!("https://logs.example/{}", long("a", 5000));
    Announcement {
        family: long("fam<&>é🦀", 4000),
        image: Some(format!("ami-{}", long("0", 3000))),
        region: long("us-east-1", 500),
        trigger: Trigger::Schedule,
        dedupe_key: format!("schedule:{}", long("2026-11<", 2000)),
        commit: Some(long("f", 10_000)),
        outcome: Outcome::Failed {
            stage: Stage::Test,
            reason: long("the reason & more ", 10_000),
        },
        tested: Some(long("tested ", 10_000)),
        parameter: format!("/gild/{}/ami", long("p>", 5000)),
        bake_log: Some(link.clone()),
        test_log: Some(format!("https://ok.example/{}", long("b", 2900))),
        test_report: Some(long("javascript:alert(1)", 3)),
        at: long("2026-11-12T15:01:00Z", 300),
        children: Vec::new(),
    }
}

#[test]
fn absurd_input_stays_within_every_limit() {
    for link in [codecommit(), github()] {
        for a in [
            absurd(),
            Announcement {
                outcome: Outcome::Promoted {
                    parameter: "/p".into(),
                    version: i64::MAX,
                },
                ..absurd()
            },
            Announcement {
                outcome: Outcome::Failed {
                    stage: Stage::Bake,
                    reason: "x".repeat(100_000),
                },
                image: None,
                ..absurd()
            },
        ] {
            let payload = rendered(&a, &link);
            assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
            let header = payload["blocks"][0]["text"]["text"]
                .as_str()
                .expect("header");
            assert_eq!(header.chars().count(), limits::HEADER_TEXT);
            assert!(header.ends_with('…'));
            assert!(payload["text"].as_str().expect("text").ends_with('…'));
            for f in payload["blocks"][1]["fields"].as_array().expect("fields") {
                let text = f["text"].as_str().expect("field text");
                assert!(text.chars().count() <= limits::FIELD_TEXT);
            }
            // Only the well-formed, short enough link survives.
            let urls: Vec<&str> = payload["blocks"]
                .as_array()
                .expect("blocks")
                .iter()
                .filter(|b| b["type"] == "actions")
                .flat_map(|b| b["elements"].as_array().expect("elements").iter())
                .filter_map(|e| e["url"].as_str())
                .collect();
            assert_eq!(urls.len(), 1, "{urls:?}");
            assert!(urls[0].starts_with("https://ok.example/"));
            assert!(serde_json::to_vec(&payload).expect("json").len() < 40_000);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_text_renders_a_valid_payload(
        family in ".{0,300}",
        reason in ".{0,3000}",
        link in "(https?://)?[ -~]{0,3100}",
        region in "[a-z0-9|<>-]{0,40}",
        commit in "[0-9a-f|]{0,70}",
        promoted_outcome in any::<bool>(),
    ) {
        let outcome = if promoted_outcome {
            Outcome::Promoted { parameter: reason.clone(), version: 1 }
        } else {
            Outcome::Failed { stage: Stage::Promote, reason: reason.clone() }
        };
        let a = Announcement {
            family,
            region,
            commit: Some(commit),
            outcome,
            tested: Some(reason.clone()),
            bake_log: Some(link.clone()),
            test_log: Some(link),
            ..promoted()
        };
        for repo in [codecommit(), github()] {
            let payload = rendered(&a, &repo);
            prop_assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
        }
    }
}
