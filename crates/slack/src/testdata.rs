//! What the unit tests render: the announcements gild publishes for each
//! outcome, the two repository hosts, and the fixture files.

use gild_core::announce::{AnnouncedPackages, Announcement, Outcome};
use gild_core::bom::{PackageChanges, Summary};
use gild_core::state::Stage;
use gild_core::vocabulary::Trigger;
use serde_json::Value;

use crate::{render_body, RepositoryLink};

pub const SHA: &str = "a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1";

pub fn codecommit() -> RepositoryLink {
    RepositoryLink::codecommit("gild-images").expect("name")
}

pub fn github() -> RepositoryLink {
    RepositoryLink::github("example-org/gild-images").expect("name")
}

/// What test-finished publishes for a promotion (see `flow::announce`).
pub fn promoted() -> Announcement {
    let log = |id: &str, page: &str| {
        format!("https://us-east-1.console.aws.amazon.com/codesuite/codebuild/projects/{}/build/{}/{page}?region=us-east-1", id.split(':').next().unwrap_or(id), id.replace(':', "%3A"))
    };
    Announcement {
        family: "debian13-base".into(),
        image: Some("ami-0123456789abcdef0".into()),
        region: "us-east-1".into(),
        trigger: Trigger::Push,
        dedupe_key: format!("push:{SHA}"),
        commit: Some(SHA.into()),
        outcome: Outcome::Promoted {
            parameter: "/gild/debian13-base/ami".into(),
            version: 3,
        },
        tested: Some("the family's tests on a fresh instance (test build gild-test:7f1c2a9e-3b4d-4e5f-8a6b-9c0d1e2f3a4b)".into()),
        parameter: "/gild/debian13-base/ami".into(),
        bake_log: Some(log("gild-bake:0b8e6c41-5d2a-4f3b-9e7c-1a2b3c4d5e6f", "log")),
        test_log: Some("https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/$252Faws$252Fcodebuild$252Fgild-test/log-events/7f1c2a9e-3b4d-4e5f-8a6b-9c0d1e2f3a4b".into()),
        test_report: Some(log("gild-test:7f1c2a9e-3b4d-4e5f-8a6b-9c0d1e2f3a4b", "reports")),
        at: "2026-11-12T15:01:00Z".into(),
        children: Vec::new(),
        packages: None,
    }
}

/// The family's promoted image that [`compared`] was compared with.
pub const AGAINST: &str = "ami-0fedcba9876543210";

/// The pre-signed link to [`compared`]'s whole diff.
pub const DIFF_URL: &str = "https://gild-artifacts-123456789012.s3.us-east-1.amazonaws.com/diff/ami-0123456789abcdef0.json?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A promotion whose packages were compared with the promoted image, the
/// diff too big to carry inline (so linked and stored).
pub fn compared() -> Announcement {
    Announcement {
        packages: Some(AnnouncedPackages {
            changes: PackageChanges::Compared {
                against: AGAINST.into(),
                summary: Summary {
                    named: vec![
                        "linux-image-amd64 6.12.9 → 6.12.12".into(),
                        "openssl 3.0.15-1 → 3.0.16-1".into(),
                    ],
                    upgraded: 14,
                    downgraded: 0,
                    added: 1,
                    removed: 0,
                    respelled: 0,
                },
                diff_bytes: 40_000,
            },
            diff: None,
            link: Some(DIFF_URL.into()),
            location: Some(
                "s3://gild-artifacts-123456789012/diff/ami-0123456789abcdef0.json".into(),
            ),
        }),
        ..promoted()
    }
}

pub fn test_failed() -> Announcement {
    Announcement {
        trigger: Trigger::Schedule,
        dedupe_key: "schedule:2026-11".into(),
        outcome: Outcome::Failed {
            stage: Stage::Test,
            reason: "test build FAILED".into(),
        },
        at: "2026-11-01T03:12:45Z".into(),
        ..promoted()
    }
}

pub fn bake_failed() -> Announcement {
    Announcement {
        image: None,
        trigger: Trigger::Manual,
        dedupe_key: "manual:5f0c9d2e-8b7a-4c3d-a1e2-f3b4c5d6e7f8".into(),
        outcome: Outcome::Failed {
            stage: Stage::Bake,
            reason: "bake build FAILED".into(),
        },
        tested: None,
        test_log: None,
        test_report: None,
        at: "2026-11-20T09:30:00Z".into(),
        ..promoted()
    }
}

pub fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

/// The payload posted for `a`.
pub fn rendered(a: &Announcement, link: &RepositoryLink) -> Value {
    render_body(&a.json().to_string(), link)
        .expect("renders")
        .to_json()
}
