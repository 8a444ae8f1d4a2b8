//! What gild tells people: one SNS message per outcome, with a short
//! readable email and a JSON body with the same facts for programs.

use serde::Serialize;
use serde_json::json;

use crate::bom::{self, BomDiff, PackageChanges};
use crate::ports::Publication;
use crate::state::Stage;
use crate::vocabulary::Trigger;

/// Version of the machine-readable body; bump on incompatible changes.
pub const SCHEMA: &str = "gild.announcement/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Promoted { parameter: String, version: i64 },
    Failed { stage: Stage, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub family: String,
    pub image: Option<String>,
    pub region: String,
    pub trigger: Trigger,
    pub dedupe_key: String,
    pub commit: Option<String>,
    pub outcome: Outcome,
    /// What the test build checked, in words.
    pub tested: Option<String>,
    /// The family's parameter (for failures: the one left untouched).
    pub parameter: String,
    pub bake_log: Option<String>,
    pub test_log: Option<String>,
    pub test_report: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// Families queued to rebuild from this promoted image (layered
    /// families); empty otherwise.
    pub children: Vec<String>,
    /// What the image's packages changed against the family's promoted
    /// image; `None` when nothing was baked.
    pub packages: Option<AnnouncedPackages>,
}

/// The package changes as announced: the one-line summary always, the
/// whole diff when it is small enough to carry, else a link to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedPackages {
    pub changes: PackageChanges,
    /// The whole diff, when at most `bom::INLINE_DIFF_MAX_BYTES`.
    pub diff: Option<BomDiff>,
    /// Else a pre-signed link to it (it expires: `bom::LINK_SECS`, or the
    /// signing role's session, whichever ends first).
    pub link: Option<String>,
    /// The stored diff's `s3://` URI, for people with access to the bucket.
    pub location: Option<String>,
}

impl AnnouncedPackages {
    /// The changes alone, before the diff is read or linked.
    pub fn of(changes: PackageChanges) -> Self {
        AnnouncedPackages {
            changes,
            diff: None,
            link: None,
            location: None,
        }
    }

    /// The paragraph at the top of the email.
    fn headline(&self) -> String {
        let mut text = format!("Packages: {}", self.changes);
        if let Some(against) = self.changes.against() {
            text.push_str(&format!(
                "\n(versus {against}, the family's promoted image when it was baked)"
            ));
        }
        text
    }

    /// The whole list of changes for the end of the email: every row when
    /// the diff is here (up to `EMAIL_ROWS`), else where to find it.
    fn details(&self) -> Option<String> {
        let PackageChanges::Compared { .. } = self.changes else {
            return None;
        };
        let mut out = String::from("Package changes:\n");
        match &self.diff {
            Some(diff) => {
                let lines = bom::lines(diff);
                for line in lines.iter().take(EMAIL_ROWS) {
                    out.push_str(&format!("  {line}\n"));
                }
                if lines.len() > EMAIL_ROWS {
                    out.push_str(&format!(
                        "  ... and {} more (the JSON announcement's packages.diff)\n",
                        lines.len() - EMAIL_ROWS
                    ));
                }
            }
            None => {
                if let Some(link) = &self.link {
                    out.push_str(&format!(
                        "  too many to list here; the whole diff: {link}\n  (the link expires)\n"
                    ));
                }
                if let Some(location) = &self.location {
                    out.push_str(&format!("  stored at {location}\n"));
                }
            }
        }
        Some(out)
    }

    fn json(&self) -> serde_json::Value {
        let mut out = json!({
            "status": self.changes.status(),
            "against": self.changes.against(),
            "summary": self.changes.to_string(),
        });
        match &self.changes {
            PackageChanges::Compared { summary, .. } => {
                out["named"] = json!(summary.named);
                out["counts"] = json!({
                    "upgraded": summary.upgraded,
                    "downgraded": summary.downgraded,
                    "added": summary.added,
                    "removed": summary.removed,
                    "respelled": summary.respelled,
                });
                out["diff"] = json!(self.diff);
                out["diff_url"] = json!(self.link);
                out["diff_s3"] = json!(self.location);
            }
            PackageChanges::First { packages } => out["packages"] = json!(packages),
            PackageChanges::Unavailable { reason, .. } => out["reason"] = json!(reason),
        }
        out
    }
}

/// Rows of package changes an email lists before pointing to the JSON.
pub const EMAIL_ROWS: usize = 40;

/// A commit as people quote it: its first 12 characters (the email here and
/// the Slack message in `gild-slack` quote it alike).
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

impl Announcement {
    fn outcome_word(&self) -> &'static str {
        match self.outcome {
            Outcome::Promoted { .. } => "promoted",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn subject(&self) -> String {
        let image = self
            .image
            .as_deref()
            .map(|i| format!(" {i}"))
            .unwrap_or_default();
        match &self.outcome {
            Outcome::Promoted { .. } => format!("gild: {}{image} ready", self.family),
            Outcome::Failed { stage, .. } => {
                format!("gild: {}{image} FAILED at {stage}", self.family)
            }
        }
    }

    fn trigger_text(&self) -> String {
        match self.trigger {
            Trigger::Schedule => format!(
                "monthly patch rebuild ({})",
                self.dedupe_key.trim_start_matches("schedule:")
            ),
            Trigger::Push => match &self.commit {
                Some(commit) => format!("push of {}", short_commit(commit)),
                None => "push".into(),
            },
            Trigger::Manual => "manual request".into(),
            Trigger::PullRequest => "pull request candidate".into(),
            Trigger::Parent => "its parent's new image".into(),
        }
    }

    /// The email body: short, aligned, links last.
    pub fn email(&self) -> String {
        let mut lines = Vec::new();
        let mut row = |label: &str, value: &str| lines.push(format!("{label:<12}{value}"));
        let (headline, summary) = match &self.outcome {
            Outcome::Promoted { parameter, .. } => (
                format!("{}: new image {} is ready", self.family, self.image.as_deref().unwrap_or("?")),
                format!("It passed its tests and {parameter} now points at it."),
            ),
            Outcome::Failed { stage: Stage::Parent, .. } => (
                format!("{}: not rebuilt, its parent FAILED", self.family),
                format!("Its parent's new image failed, so nothing was baked;\n{} still points at the previous image.", self.parameter),
            ),
            Outcome::Failed { stage: Stage::Bake, .. } => (
                format!("{}: the bake FAILED", self.family),
                format!("Nothing was promoted and anything the bake left was removed;\n{} still points at the previous image.", self.parameter),
            ),
            Outcome::Failed { stage, .. } => (
                format!("{}: the new image FAILED at {stage}", self.family),
                format!("It was never promoted; the image and its snapshots were removed.\n{} still points at the previous image.", self.parameter),
            ),
        };
        row("Family", &self.family);
        if let Some(image) = &self.image {
            let removed = matches!(self.outcome, Outcome::Failed { .. });
            row(
                "Image",
                &format!("{image}{}", if removed { " (removed)" } else { "" }),
            );
        }
        row("Region", &self.region);
        row("Trigger", &self.trigger_text());
        if let Some(commit) = &self.commit {
            row("Commit", commit);
        }
        match &self.outcome {
            Outcome::Promoted { parameter, version } => {
                if let Some(tested) = &self.tested {
                    row("Tested", tested);
                }
                row("Parameter", &format!("{parameter} (version {version})"));
                if !self.children.is_empty() {
                    row(
                        "Children",
                        &format!(
                            "{} (queued to rebuild from this image)",
                            self.children.join(", ")
                        ),
                    );
                }
            }
            Outcome::Failed { stage, reason } => {
                row("Failed at", stage.as_str());
                row("Reason", reason);
                if let Some(tested) = &self.tested {
                    row("Tested", tested);
                }
            }
        }
        for (label, link) in [
            ("Bake log", &self.bake_log),
            ("Test report", &self.test_report),
            ("Test log", &self.test_log),
        ] {
            if let Some(link) = link {
                row(label, link);
            }
        }
        let mut body = format!("{headline}\n\n{summary}\n\n");
        if let Some(packages) = &self.packages {
            body.push_str(&format!("{}\n\n", packages.headline()));
        }
        body.push_str(&format!("{}\n", lines.join("\n")));
        if let Some(details) = self.packages.as_ref().and_then(AnnouncedPackages::details) {
            body.push_str(&format!("\n{details}"));
        }
        if let Outcome::Promoted { parameter, .. } = &self.outcome {
            body.push_str(&format!(
                "\nUse it:      resolve:ssm:{parameter} (launch templates), or\n             aws ssm get-parameter --name {parameter}\nRoll back:   aws ssm get-parameter-history --name {parameter}, then put the previous value back\n"
            ));
        }
        body.push_str(&format!(
            "\n-- \ngild, bake {} of {}\n",
            self.dedupe_key, self.family
        ));
        body
    }

    /// The same facts for programs (`default`, `sqs` and `lambda` bodies).
    pub fn json(&self) -> serde_json::Value {
        self.json_with_text(self.email())
    }

    fn json_with_text(&self, text: String) -> serde_json::Value {
        let (stage, reason, version) = match &self.outcome {
            Outcome::Promoted { version, .. } => (None, None, Some(*version)),
            Outcome::Failed { stage, reason } => {
                (Some(stage.as_str()), Some(reason.as_str()), None)
            }
        };
        json!({
            "schema": SCHEMA,
            "outcome": self.outcome_word(),
            "family": self.family,
            "image": self.image,
            "region": self.region,
            "trigger": self.trigger.as_str(),
            "dedupe_key": self.dedupe_key,
            "commit": self.commit,
            "stage": stage,
            "reason": reason,
            "parameter": self.parameter,
            "parameter_version": version,
            "tested": self.tested,
            "links": {
                "bake_log": self.bake_log,
                "test_log": self.test_log,
                "test_report": self.test_report,
            },
            "at": self.at,
            "children": self.children,
            "packages": self.packages.as_ref().map(AnnouncedPackages::json),
            // The email's text, for subscribers that show people a message
            // (chat, queues read by a person) without re-rendering the facts.
            "text": text,
        })
    }

    /// The SNS publication: `MessageStructure=json` with a body per protocol,
    /// and attributes subscribers can filter on.
    pub fn publication(&self) -> Publication {
        // The email is rendered once: it is both a body and the JSON's text.
        let email = self.email();
        let machine = self.json_with_text(email.clone()).to_string();
        let message = json!({
            "default": machine,
            "sqs": machine,
            "lambda": machine,
            "email": email,
            "email-json": machine,
        });
        let mut attributes = vec![
            ("family".to_owned(), self.family.clone()),
            ("outcome".to_owned(), self.outcome_word().to_owned()),
            ("trigger".to_owned(), self.trigger.as_str().to_owned()),
        ];
        if let Outcome::Failed { stage, .. } = &self.outcome {
            attributes.push(("stage".to_owned(), stage.as_str().to_owned()));
        }
        Publication {
            subject: self.subject(),
            message: message.to_string(),
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promoted() -> Announcement {
        Announcement {
            family: "debian13-base".into(),
            image: Some("ami-0123456789abcdef0".into()),
            region: "us-east-1".into(),
            trigger: Trigger::Push,
            dedupe_key: "push:a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1".into(),
            commit: Some("a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1".into()),
            outcome: Outcome::Promoted {
                parameter: "/gild/debian13-base/ami".into(),
                version: 3,
            },
            tested: Some(
                "images/debian13-base/tests on a fresh instance (build gild-test:7f1c)".into(),
            ),
            parameter: "/gild/debian13-base/ami".into(),
            bake_log: Some("https://logs.example/bake".into()),
            test_log: Some("https://logs.example/test".into()),
            test_report: Some("https://reports.example/test".into()),
            at: "2026-11-12T15:01:00Z".into(),
            children: Vec::new(),
            packages: None,
        }
    }

    #[test]
    fn success_email_reads_well() {
        let a = promoted();
        assert_eq!(
            a.subject(),
            "gild: debian13-base ami-0123456789abcdef0 ready"
        );
        let expected = "\
debian13-base: new image ami-0123456789abcdef0 is ready

It passed its tests and /gild/debian13-base/ami now points at it.

Family      debian13-base
Image       ami-0123456789abcdef0
Region      us-east-1
Trigger     push of a3f5c7e9b1d3
Commit      a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1
Tested      images/debian13-base/tests on a fresh instance (build gild-test:7f1c)
Parameter   /gild/debian13-base/ami (version 3)
Bake log    https://logs.example/bake
Test report https://reports.example/test
Test log    https://logs.example/test

Use it:      resolve:ssm:/gild/debian13-base/ami (launch templates), or
             aws ssm get-parameter --name /gild/debian13-base/ami
Roll back:   aws ssm get-parameter-history --name /gild/debian13-base/ami, then put the previous value back

-- 
gild, bake push:a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1 of debian13-base
";
        assert_eq!(a.email(), expected);
    }

    #[test]
    fn test_failure_email_reads_well() {
        let a = Announcement {
            trigger: Trigger::Schedule,
            dedupe_key: "schedule:2026-11".into(),
            outcome: Outcome::Failed {
                stage: Stage::Test,
                reason: "test build FAILED".into(),
            },
            bake_log: None,
            ..promoted()
        };
        assert_eq!(
            a.subject(),
            "gild: debian13-base ami-0123456789abcdef0 FAILED at test"
        );
        let expected = "\
debian13-base: the new image FAILED at test

It was never promoted; the image and its snapshots were removed.
/gild/debian13-base/ami still points at the previous image.

Family      debian13-base
Image       ami-0123456789abcdef0 (removed)
Region      us-east-1
Trigger     monthly patch rebuild (2026-11)
Commit      a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1
Failed at   test
Reason      test build FAILED
Tested      images/debian13-base/tests on a fresh instance (build gild-test:7f1c)
Test report https://reports.example/test
Test log    https://logs.example/test

-- 
gild, bake schedule:2026-11 of debian13-base
";
        assert_eq!(a.email(), expected);
    }

    #[test]
    fn bake_failure_email_reads_well() {
        let a = Announcement {
            image: None,
            trigger: Trigger::Manual,
            dedupe_key: "manual:5f0c".into(),
            outcome: Outcome::Failed {
                stage: Stage::Bake,
                reason: "bake build FAILED".into(),
            },
            tested: None,
            test_log: None,
            test_report: None,
            ..promoted()
        };
        assert_eq!(a.subject(), "gild: debian13-base FAILED at bake");
        let expected = "\
debian13-base: the bake FAILED

Nothing was promoted and anything the bake left was removed;
/gild/debian13-base/ami still points at the previous image.

Family      debian13-base
Region      us-east-1
Trigger     manual request
Commit      a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1
Failed at   bake
Reason      bake build FAILED
Bake log    https://logs.example/bake

-- 
gild, bake manual:5f0c of debian13-base
";
        assert_eq!(a.email(), expected);
    }

    fn compared(diff_bytes: usize) -> AnnouncedPackages {
        let old = br#"{"schema": "gild.bom/1", "family": "debian13-base", "image": "ami-0aaaaaaaaaaaaaaaa", "os": "linux", "collected_at": "2026-12-06T21:00:00Z", "packages": [{"kind": "dpkg", "name": "openssl", "version": "3.0.15-1", "arch": "amd64"}]}"#;
        let new = br#"{"schema": "gild.bom/1", "family": "debian13-base", "image": "ami-0123456789abcdef0", "os": "linux", "collected_at": "2026-12-06T21:00:00Z", "packages": [{"kind": "dpkg", "name": "openssl", "version": "3.0.16-1", "arch": "amd64"}, {"kind": "dpkg", "name": "jq", "version": "1.7.1-3", "arch": "amd64"}]}"#;
        let (changes, document) = bom::compare(bom::Lists {
            family: "debian13-base",
            image: "ami-0123456789abcdef0",
            new: Some(new),
            promoted: Some(("ami-0aaaaaaaaaaaaaaaa", Some(old))),
        });
        let changes = match changes {
            PackageChanges::Compared {
                against, summary, ..
            } => PackageChanges::Compared {
                against,
                summary,
                diff_bytes,
            },
            other => other,
        };
        let mut packages = AnnouncedPackages::of(changes);
        if diff_bytes <= bom::INLINE_DIFF_MAX_BYTES {
            packages.diff = document.map(|d| d.diff);
        } else {
            packages.link =
                Some("https://bucket.s3.amazonaws.com/diff/x.json?X-Amz-Signature=s".into());
        }
        packages.location = Some("s3://bucket/diff/ami-0123456789abcdef0.json".into());
        packages
    }

    #[test]
    fn the_package_summary_is_at_the_top_and_the_changes_at_the_end() {
        let a = Announcement {
            packages: Some(compared(100)),
            ..promoted()
        };
        let email = a.email();
        let expected_top = "\
debian13-base: new image ami-0123456789abcdef0 is ready

It passed its tests and /gild/debian13-base/ami now points at it.

Packages: openssl 3.0.15-1 → 3.0.16-1, jq 1.7.1-3 (added); 1 upgraded, 1 added, 0 removed
(versus ami-0aaaaaaaaaaaaaaaa, the family's promoted image when it was baked)

Family      debian13-base
";
        assert!(email.starts_with(expected_top), "{email}");
        assert!(
            email.contains(
                "\nPackage changes:\n  upgraded  dpkg  openssl:amd64  3.0.15-1 → 3.0.16-1\n  added     dpkg  jq:amd64       1.7.1-3\n\nUse it:"
            ),
            "{email}"
        );
        let json = a.json();
        assert_eq!(json["packages"]["status"], "compared");
        assert_eq!(json["packages"]["counts"]["added"], 1);
        assert_eq!(json["packages"]["diff"]["added"][0]["name"], "jq");
        assert!(json["packages"]["diff_url"].is_null());

        let linked = Announcement {
            packages: Some(compared(bom::INLINE_DIFF_MAX_BYTES + 1)),
            ..promoted()
        };
        let email = linked.email();
        assert!(
            email.contains(
                "too many to list here; the whole diff: https://bucket.s3.amazonaws.com/"
            ),
            "{email}"
        );
        assert!(email.contains("stored at s3://bucket/diff/"), "{email}");
        let json = linked.json();
        assert!(json["packages"]["diff"].is_null());
        assert!(json["packages"]["diff_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")));

        let first = Announcement {
            packages: Some(AnnouncedPackages::of(PackageChanges::First {
                packages: 312,
            })),
            ..promoted()
        };
        let email = first.email();
        assert!(
            email.contains("\n\nPackages: first image of the family (312 packages)\n\nFamily"),
            "{email}"
        );
        assert!(!email.contains("Package changes:"), "{email}");
        assert_eq!(first.json()["packages"]["packages"], 312);
        assert!(promoted().json()["packages"].is_null());
    }

    #[test]
    fn publication_carries_bodies_and_attributes() {
        let p = promoted().publication();
        let message: serde_json::Value = serde_json::from_str(&p.message).expect("json");
        for key in ["default", "sqs", "lambda", "email", "email-json"] {
            assert!(message[key].is_string(), "{key}");
        }
        let body: serde_json::Value =
            serde_json::from_str(message["sqs"].as_str().expect("sqs")).expect("json body");
        assert_eq!(body["schema"], SCHEMA);
        assert_eq!(body["outcome"], "promoted");
        assert_eq!(body["parameter_version"], 3);
        assert_eq!(body["image"], "ami-0123456789abcdef0");
        assert!(p
            .attributes
            .contains(&("outcome".into(), "promoted".into())));
        assert!(p
            .attributes
            .contains(&("family".into(), "debian13-base".into())));
        assert!(p.subject.len() <= 100);
    }
}
