//! The rendered payloads: the expected fixtures, what is shown for values
//! this version does not know, which buttons appear, and that no input,
//! however absurd, breaks Block Kit's limits.

use super::*;
use crate::block_kit_problems;
use crate::testdata::{
    bake_failed, codecommit, compared, fixture, github, promoted, rendered, test_failed, AGAINST,
    DIFF_URL,
};
use gild_core::announce::{AnnouncedPackages, Announcement, Outcome};
use gild_core::bom::{PackageChanges, Summary};
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
        packages: Some(AnnouncedPackages {
            changes: PackageChanges::Compared {
                against: long("ami-<&>", 1000),
                summary: Summary {
                    named: vec![long("openssl<&> 3 → 4 ", 1000); 5],
                    upgraded: 1 << 40,
                    downgraded: 1 << 40,
                    added: 1 << 40,
                    removed: 1 << 40,
                    respelled: 1 << 40,
                },
                diff_bytes: usize::MAX,
            },
            diff: None,
            // Long enough that no button can carry it.
            link: Some(format!("https://s3.example/{}", long("d", 3000))),
            location: Some(format!("s3://{}", long("bucket<&>/", 1000))),
        }),
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
            let packages = payload["blocks"][2]["text"]["text"]
                .as_str()
                .expect("packages");
            assert!(packages.starts_with("*Packages* openssl&lt;&amp;&gt; 3 → 4"));
            assert!(packages.chars().count() <= limits::SECTION_TEXT);
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

/// The blocks of `payload` of type `kind`.
fn blocks_of<'a>(payload: &'a Value, kind: &str) -> Vec<&'a Value> {
    payload["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == kind)
        .collect()
}

/// The link buttons of `payload`, as (action_id, url).
fn button_urls(payload: &Value) -> Vec<(String, String)> {
    blocks_of(payload, "actions")
        .into_iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["action_id"].as_str().unwrap_or_default().to_owned(),
                e["url"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The text of the packages section, if there is one.
fn packages_text(payload: &Value) -> Option<String> {
    blocks_of(payload, "section")
        .into_iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with("*Packages* "))
        .map(str::to_owned)
}

/// `promoted()`'s announcement with `packages` set to `value`, rendered.
fn with_packages(value: Value) -> Value {
    let mut body = promoted().json();
    body["packages"] = value;
    let payload = render_body(&body.to_string(), &codecommit())
        .expect("renders")
        .to_json();
    assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
    payload
}

#[test]
fn compared_packages_show_the_summary_what_they_were_compared_with_and_the_diff() {
    let payload = rendered(&compared(), &codecommit());
    assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
    // Right under the facts, before the buttons.
    assert_eq!(payload["blocks"][2]["type"], "section");
    assert_eq!(
        payload["blocks"][2]["text"]["text"],
        format!(
            "*Packages* linux-image-amd64 6.12.9 → 6.12.12, openssl 3.0.15-1 → 3.0.16-1; 14 upgraded, 1 added, 0 removed\n\
             versus `{AGAINST}`, the family's promoted image when it was baked\n\
             Whole diff: *Package diff* below (the link expires), or `s3://gild-artifacts-123456789012/diff/ami-0123456789abcdef0.json`"
        )
    );
    assert_eq!(payload["blocks"][3]["type"], "actions");
    let buttons = button_urls(&payload);
    assert_eq!(
        buttons
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        [
            "bake_log",
            "test_report",
            "test_log",
            "ec2_image",
            "package_diff"
        ]
    );
    assert_eq!(buttons[4].1, DIFF_URL);
    let diff_button = &payload["blocks"][3]["elements"][4];
    assert_eq!(diff_button["text"]["text"], "Package diff");
    assert_eq!(
        payload["text"],
        "gild: debian13-base ami-0123456789abcdef0 ready (/gild/debian13-base/ami version 3)\n\
         Packages: linux-image-amd64 6.12.9 → 6.12.12, openssl 3.0.15-1 → 3.0.16-1; 14 upgraded, 1 added, 0 removed"
    );

    // The same changes on a failed test: shown too, without the console.
    let failed = Announcement {
        packages: compared().packages,
        ..test_failed()
    };
    let payload = rendered(&failed, &github());
    assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
    assert!(packages_text(&payload).is_some());
    let ids: Vec<String> = button_urls(&payload)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["bake_log", "test_report", "test_log", "package_diff"]);
}

#[test]
fn first_unavailable_and_unknown_statuses_show_their_summary() {
    let payload = with_packages(json!({
        "status": "first",
        "against": null,
        "summary": "first image of the family (312 packages)",
        "packages": 312,
    }));
    assert_eq!(
        packages_text(&payload).as_deref(),
        Some("*Packages* first image of the family (312 packages)")
    );
    assert!(button_urls(&payload)
        .iter()
        .all(|(id, _)| id != "package_diff"));

    let payload = with_packages(json!({
        "status": "unavailable",
        "against": AGAINST,
        "summary": "not compared: no list kept for the promoted image",
        "reason": "no list kept for the promoted image",
    }));
    assert_eq!(
        packages_text(&payload),
        Some(format!("*Packages* not compared: no list kept for the promoted image\nversus `{AGAINST}`, the family's promoted image when it was baked"))
    );

    let payload = with_packages(json!({
        "status": "<!here> estimated",
        "summary": "about 3 changes",
        "diff_s3": "s3://b/diff/x.json",
    }));
    assert_eq!(
        packages_text(&payload).as_deref(),
        Some("*Packages* (&lt;!here&gt; estimated) about 3 changes\nWhole diff: `s3://b/diff/x.json`")
    );
}

#[test]
fn a_huge_summary_stays_within_every_limit() {
    let huge = "openssl<&> → ".repeat(800);
    assert!(huge.chars().count() >= 10_000);
    let payload = with_packages(json!({
        "status": "compared",
        "against": "ami-".repeat(2500),
        "summary": huge.clone(),
        "named": vec![huge; 50],
        "diff_url": format!("{DIFF_URL}&{}", "x".repeat(10_000)),
        "diff_s3": format!("s3://{}", "b".repeat(10_000)),
    }));
    let text = packages_text(&payload).expect("packages section");
    assert!(
        text.chars().count() <= limits::SECTION_TEXT,
        "{}",
        text.len()
    );
    assert!(text.starts_with("*Packages* openssl&lt;&amp;&gt; → openssl"));
    assert!(text.contains("…\nversus `ami-ami-"));
    assert!(text.ends_with("bbb…`"));
    // Too long to be a button, and no cut link either.
    assert!(button_urls(&payload)
        .iter()
        .all(|(id, _)| id != "package_diff"));
    assert!(!text.contains("Package diff"));
    let fallback = payload["text"].as_str().expect("text");
    assert!(fallback.chars().count() <= limits::FALLBACK_TEXT);
    assert!(fallback.starts_with("gild: debian13-base ami-0123456789abcdef0 ready"));
    assert!(fallback.contains("\nPackages: openssl&lt;&amp;&gt; → "));
    assert!(fallback.ends_with('…'));

    // A failure's long reason leaves the summary its room in the fallback.
    let a = Announcement {
        packages: compared().packages,
        ..absurd()
    };
    let payload = rendered(&a, &codecommit());
    assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
    let fallback = payload["text"].as_str().expect("text");
    assert!(
        fallback.ends_with("\nPackages: linux-image-amd64 6.12.9 → 6.12.12, openssl 3.0.15-1 → 3.0.16-1; 14 upgraded, 1 added, 0 removed"),
        "{fallback}"
    );
}

#[test]
fn only_an_https_diff_link_becomes_a_button() {
    for url in [
        "http://gild-artifacts.s3.amazonaws.com/diff/x.json",
        "javascript:alert(1)",
        "ftp://example.com/diff.json",
        "https://",
        "https://s3.example/a b",
        "https://s3.example/é",
        "s3://gild-artifacts/diff/x.json",
    ] {
        let mut packages = compared().json()["packages"].clone();
        packages["diff_url"] = json!(url);
        let payload = with_packages(packages);
        assert!(
            button_urls(&payload)
                .iter()
                .all(|(id, _)| id != "package_diff"),
            "{url}"
        );
        let text = packages_text(&payload).expect("packages section");
        assert!(!text.contains("Package diff"), "{text}");
        assert!(text.contains("Whole diff: `s3://"), "{text}");
    }
}

#[test]
fn null_absent_or_malformed_packages_render_as_before() {
    let before = rendered(&promoted(), &codecommit());
    assert_eq!(packages_text(&before), None);
    let mut absent = promoted().json();
    absent.as_object_mut().expect("object").remove("packages");
    let absent = render_body(&absent.to_string(), &codecommit())
        .expect("renders")
        .to_json();
    assert_eq!(absent, before);
    for value in [
        Value::Null,
        json!(5),
        json!("openssl 3.0.16-1"),
        json!([{"summary": "x"}]),
        json!({}),
        json!({"status": "compared"}),
        json!({"summary": 5, "against": "ami-0fedcba9876543210", "diff_url": 5}),
    ] {
        assert_eq!(with_packages(value.clone()), before, "{value}");
    }
    // A good link is a button even when nothing else could be read.
    let payload = with_packages(json!({"summary": [], "diff_url": DIFF_URL}));
    assert_eq!(packages_text(&payload), None);
    assert_eq!(
        button_urls(&payload).last(),
        Some(&("package_diff".to_owned(), DIFF_URL.to_owned()))
    );
    // Half-readable: what can be read is shown.
    let payload = with_packages(json!({
        "summary": "1 upgraded, 0 added, 0 removed",
        "against": 5,
        "diff_url": ["https://x.example"],
        "counts": "many",
    }));
    assert_eq!(
        packages_text(&payload).as_deref(),
        Some("*Packages* 1 upgraded, 0 added, 0 removed")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_packages_render_a_valid_payload(
        summary in ".{0,3500}",
        status in ".{0,40}",
        against in ".{0,300}",
        link in "(https?://)?[ -~]{0,3100}",
        s3 in ".{0,1500}",
        failed in any::<bool>(),
    ) {
        let mut body = if failed { test_failed().json() } else { promoted().json() };
        body["packages"] = json!({
            "status": status,
            "against": against,
            "summary": summary,
            "diff_url": link,
            "diff_s3": s3,
        });
        for repo in [codecommit(), github()] {
            let payload = render_body(&body.to_string(), &repo).expect("renders").to_json();
            prop_assert_eq!(block_kit_problems(&payload), Vec::<String>::new());
            for (id, url) in button_urls(&payload) {
                if id == "package_diff" {
                    prop_assert!(url.starts_with("https://"));
                }
            }
        }
    }
}
