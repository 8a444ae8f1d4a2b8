//! The package diff through the completion steps: compared when the bake
//! ends, stored, and announced inline or linked; what cannot be read for
//! good leaves the bake going, what fails for now is retried.

mod common;

use common::*;
use gild_core::bom::{bom_key, diff_key, DiffDocument, PackageChanges, INLINE_DIFF_MAX_BYTES};

const PROMOTED: &str = "ami-0aaaaaaaaaaaaaaaa";
const PARAMETER: &str = "/gild/al2023-base/ami";

fn list(image: &str, openssl: &str, extra: usize) -> Vec<u8> {
    let mut packages = vec![
        format!(
            r#"{{"kind": "dpkg", "name": "openssl", "version": "{openssl}", "arch": "amd64"}}"#
        ),
        r#"{"kind": "dpkg", "name": "curl", "version": "8.14.1-2", "arch": "amd64"}"#.to_owned(),
    ];
    for n in 0..extra {
        packages.push(format!(
            r#"{{"kind": "dpkg", "name": "extra-package-number-{n}", "version": "1.0-{n}", "arch": "amd64"}}"#
        ));
    }
    format!(
        r#"{{"schema": "gild.bom/1", "family": "{FAMILY}", "image": "{image}", "os": "linux",
  "collected_at": "2026-12-06T21:00:00Z", "packages": [{}]}}"#,
        packages.join(",")
    )
    .into_bytes()
}

/// A bake of AMI whose family has PROMOTED promoted, with both lists kept.
async fn baking_over_promoted(new_extra: usize) -> Flow {
    let bake = world();
    seed_baking(&bake).await;
    bake.ports()
        .parameters
        .history
        .lock()
        .expect("lock")
        .insert(PARAMETER.into(), vec![PROMOTED.into()]);
    let artifacts = &bake.ports().artifacts;
    artifacts.insert(&bom_key(PROMOTED), list(PROMOTED, "3.0.15-1", 0));
    artifacts.insert(&bom_key(AMI), list(AMI, "3.0.16-1", new_extra));
    bake
}

/// The bake's test passes; the JSON body and the email of the one
/// announcement published.
async fn passed_and_announced(bake: Flow) -> (Value, String) {
    let test = into_test(bake);
    let build = test_build(&test);
    test.handle(test_event("SUCCEEDED", &build), 20)
        .await
        .expect("test");
    let published = test
        .ports()
        .notifier
        .published
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(published.len(), 1, "one announcement");
    let message: Value = serde_json::from_str(&published[0].message).expect("message");
    let body: Value =
        serde_json::from_str(message["default"].as_str().expect("default")).expect("body");
    let email = message["email"].as_str().expect("email").to_owned();
    (body, email)
}

#[tokio::test]
async fn the_bake_is_compared_with_the_promoted_image_and_announced_with_its_diff() {
    let bake = baking_over_promoted(1).await;
    bake.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    let record = state(&bake).await;
    let Some(PackageChanges::Compared {
        against, summary, ..
    }) = &record.packages
    else {
        panic!("compared: {:?}", record.packages);
    };
    assert_eq!(against, PROMOTED);
    assert_eq!(
        (summary.upgraded, summary.added, summary.removed),
        (1, 1, 0)
    );
    let stored = bake
        .ports()
        .artifacts
        .object(&diff_key(AMI))
        .expect("diff stored");
    let document = DiffDocument::parse(&stored, AMI).expect("a gild diff");
    assert_eq!(document.against, PROMOTED);

    let (body, email) = passed_and_announced(bake).await;
    let packages = &body["packages"];
    assert_eq!(packages["status"], "compared");
    assert_eq!(packages["against"], PROMOTED);
    assert_eq!(
        packages["summary"],
        "openssl 3.0.15-1 → 3.0.16-1, extra-package-number-0 1.0-0 (added); 1 upgraded, 1 added, 0 removed"
    );
    assert_eq!(packages["counts"]["upgraded"], 1);
    assert_eq!(packages["diff"]["upgraded"][0]["new"], "3.0.16-1");
    assert!(packages["diff_url"].is_null());
    assert_eq!(
        packages["diff_s3"],
        format!("s3://gild-artifacts/diff/{AMI}.json")
    );
    // At the top: right under the one-sentence summary, before the facts.
    let top: Vec<&str> = email.lines().take(6).collect();
    assert!(
        top.contains(&"Packages: openssl 3.0.15-1 → 3.0.16-1, extra-package-number-0 1.0-0 (added); 1 upgraded, 1 added, 0 removed"),
        "{email}"
    );
    assert!(
        email.contains("Package changes:\n  upgraded  dpkg  openssl:amd64"),
        "{email}"
    );
}

#[tokio::test]
async fn a_diff_too_large_to_carry_is_linked() {
    let bake = baking_over_promoted(600).await;
    bake.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    let record = state(&bake).await;
    let Some(PackageChanges::Compared { diff_bytes, .. }) = record.packages else {
        panic!("compared");
    };
    assert!(diff_bytes > INLINE_DIFF_MAX_BYTES, "{diff_bytes}");
    let (body, email) = passed_and_announced(bake).await;
    assert!(body["packages"]["diff"].is_null());
    let link = body["packages"]["diff_url"].as_str().expect("a link");
    assert!(
        link.starts_with("https://") && link.contains(&diff_key(AMI)),
        "{link}"
    );
    assert!(
        email.contains("too many to list here; the whole diff: https://"),
        "{email}"
    );
}

#[tokio::test]
async fn a_first_image_says_so() {
    let bake = world();
    seed_baking(&bake).await;
    bake.ports()
        .artifacts
        .insert(&bom_key(AMI), list(AMI, "3.0.16-1", 0));
    bake.handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(
        state(&bake).await.packages,
        Some(PackageChanges::First { packages: 2 })
    );
    assert!(bake.ports().artifacts.object(&diff_key(AMI)).is_none());
}

#[tokio::test]
async fn a_list_refused_for_good_leaves_the_bake_going_and_says_why() {
    let bake = baking_over_promoted(0).await;
    bake.ports()
        .artifacts
        .get_faults
        .lock()
        .expect("lock")
        .push_back(PortError::Service {
            service: "S3",
            operation: "GetObject",
            code: "AccessDenied".into(),
            message: "not allowed".into(),
            server_side: false,
        });
    let report = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect("bake");
    assert_eq!(report.reached, vec![BakeState::Baked, BakeState::Testing]);
    let Some(PackageChanges::Unavailable { reason, against }) = state(&bake).await.packages else {
        panic!("unavailable");
    };
    assert!(
        reason.starts_with(&format!("{} could not be read: ", bom_key(AMI))),
        "{reason}"
    );
    assert!(reason.contains("AccessDenied"), "{reason}");
    assert_eq!(against.as_deref(), Some(PROMOTED));
}

#[tokio::test]
async fn a_bucket_failing_for_now_fails_the_step_and_the_retry_compares() {
    let bake = baking_over_promoted(0).await;
    for _ in 0..fast().attempts {
        bake.ports()
            .artifacts
            .get_faults
            .lock()
            .expect("lock")
            .push_back(PortError::Throttled {
                service: "S3",
                operation: "GetObject",
                code: "SlowDown".into(),
                message: "reduce your request rate".into(),
            });
    }
    let err = bake
        .handle(bake_event("SUCCEEDED"), 10)
        .await
        .expect_err("throttled");
    assert_eq!(err.name(), "StepFailed");
    assert_eq!(state(&bake).await.state, BakeState::Baking);
    // Lambda's retry of the same event.
    bake.handle(bake_event("SUCCEEDED"), 200)
        .await
        .expect("retried");
    let record = state(&bake).await;
    assert_eq!(record.state, BakeState::Testing);
    assert!(matches!(
        record.packages,
        Some(PackageChanges::Compared { .. })
    ));
}
