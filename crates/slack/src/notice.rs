//! An announcement as subscribers receive it: the `lambda`/`sqs` body of
//! gild's SNS publication, read into a [`Notice`].

use gild_core::announce::SCHEMA;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mrkdwn::clip;

/// What the new image's packages changed against the family's promoted
/// image: the announcement's `packages` object (`AnnouncedPackages` in
/// `gild_core::announce`).
///
/// Read leniently, field by field: a field of the wrong type is taken as
/// absent, so a malformed `packages` costs that part of the message, never
/// the whole announcement. Every text is untrusted (package names come from
/// the image) and is escaped and clipped when rendered. The inline `diff`
/// is not read: a message shows the summary and points to the whole diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticePackages {
    /// `compared`, `first` or `unavailable`; another value is shown as text.
    pub status: Option<String>,
    /// The promoted image compared with.
    pub against: Option<String>,
    /// The one-line summary (security-relevant changes named first, then
    /// the counts), or why there is none.
    pub summary: Option<String>,
    /// `compared`: the changes the summary names.
    pub named: Vec<String>,
    /// `compared`: how many packages changed, by kind.
    pub counts: Option<PackageCounts>,
    /// `compared`: a pre-signed link to the whole diff when it is too big to
    /// carry inline. It expires.
    pub diff_url: Option<String>,
    /// `compared`: the stored diff's `s3://` URI.
    pub diff_s3: Option<String>,
    /// `first`: how many packages the image has.
    pub packages: Option<u64>,
    /// `unavailable`: why the packages were not compared.
    pub reason: Option<String>,
}

/// The counts of a `compared` announcement's `packages`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PackageCounts {
    #[serde(default)]
    pub upgraded: u64,
    #[serde(default)]
    pub downgraded: u64,
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub removed: u64,
    #[serde(default)]
    pub respelled: u64,
}

impl NoticePackages {
    /// The `packages` value of an announcement: `None` for `null`, an
    /// absent field, or anything that is not an object.
    pub fn from_value(value: &Value) -> Option<NoticePackages> {
        let object = value.as_object()?;
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        Some(NoticePackages {
            status: text("status"),
            against: text("against"),
            summary: text("summary"),
            named: object
                .get("named")
                .and_then(Value::as_array)
                .map(|named| {
                    named
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            counts: object
                .get("counts")
                .and_then(|c| PackageCounts::deserialize(c).ok()),
            diff_url: text("diff_url"),
            diff_s3: text("diff_s3"),
            packages: object.get("packages").and_then(Value::as_u64),
            reason: text("reason"),
        })
    }

    /// The one line to show: the announcement's summary, else one made of
    /// the other fields (as `gild_core` words it), else `None`.
    pub fn line(&self) -> Option<String> {
        if let Some(summary) = &self.summary {
            return Some(summary.clone());
        }
        match self.status.as_deref() {
            Some("first") => self
                .packages
                .map(|n| format!("first image of the family ({n} packages)")),
            Some("unavailable") => self.reason.as_ref().map(|r| format!("not compared: {r}")),
            _ => {
                let counts = self.counts.map(|c| {
                    let mut counts = format!("{} upgraded", c.upgraded);
                    if c.downgraded > 0 {
                        counts.push_str(&format!(", {} downgraded", c.downgraded));
                    }
                    counts.push_str(&format!(", {} added, {} removed", c.added, c.removed));
                    if c.respelled > 0 {
                        counts.push_str(&format!(", {} respelled", c.respelled));
                    }
                    counts
                });
                match (self.named.is_empty(), counts) {
                    (true, None) => None,
                    (false, None) => Some(self.named.join(", ")),
                    (true, Some(counts)) => Some(counts),
                    (false, Some(counts)) => Some(format!("{}; {counts}", self.named.join(", "))),
                }
            }
        }
    }

    /// The status when it is one this version does not know (shown as
    /// text); `None` for the known ones, whose summary speaks for itself.
    pub fn unknown_status(&self) -> Option<&str> {
        self.status
            .as_deref()
            .filter(|s| !matches!(*s, "compared" | "first" | "unavailable"))
    }
}

/// `packages` as [`NoticePackages::from_value`] reads it: never an error.
fn lenient_packages<'de, D>(deserializer: D) -> Result<Option<NoticePackages>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    Ok(NoticePackages::from_value(&value))
}

/// Why an SNS message is not an announcement this version can show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("the announcement is not JSON: {0}")]
    NotJson(String),
    #[error("not a {SCHEMA} announcement: schema is {found}")]
    Schema { found: String },
    #[error("the {SCHEMA} announcement is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeOutcome {
    Promoted,
    Failed,
}

impl NoticeOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeOutcome::Promoted => "promoted",
            NoticeOutcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Links {
    pub bake_log: Option<String>,
    pub test_log: Option<String>,
    pub test_report: Option<String>,
}

/// An announcement as subscribers receive it (the `lambda`/`sqs` body).
/// Fields this version does not know are ignored; `trigger` and `stage` stay
/// text so a new value is shown rather than refused. The core fields are
/// strict (a wrong type refuses the announcement); `packages` is lenient.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notice {
    pub outcome: NoticeOutcome,
    pub family: String,
    pub image: Option<String>,
    pub region: String,
    pub trigger: String,
    pub dedupe_key: String,
    pub commit: Option<String>,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub parameter: String,
    pub parameter_version: Option<i64>,
    pub tested: Option<String>,
    pub links: Option<Links>,
    /// RFC 3339, as published.
    pub at: String,
    /// What the image's packages changed; `None` when nothing was baked,
    /// for an announcement from before the field, and when the field is
    /// not an object (read leniently: see [`NoticePackages`]).
    #[serde(default, deserialize_with = "lenient_packages")]
    pub packages: Option<NoticePackages>,
}

impl Notice {
    /// Parses an announcement body; a `schema` other than
    /// [`SCHEMA`](gild_core::announce::SCHEMA) is refused before anything
    /// else.
    pub fn parse(body: &str) -> Result<Notice, NoticeError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| NoticeError::NotJson(e.to_string()))?;
        match value.get("schema") {
            Some(Value::String(schema)) if schema == SCHEMA => {}
            Some(Value::String(schema)) => {
                return Err(NoticeError::Schema {
                    found: format!("`{}`", clip(schema, 100)),
                })
            }
            Some(other) => {
                return Err(NoticeError::Schema {
                    found: format!("not a string ({})", clip(&other.to_string(), 100)),
                })
            }
            None => {
                return Err(NoticeError::Schema {
                    found: "missing".into(),
                })
            }
        }
        serde_json::from_value(value).map_err(|e| NoticeError::Invalid(e.to_string()))
    }

    pub(crate) fn links(&self) -> Links {
        self.links.clone().unwrap_or_default()
    }

    /// The stage a failure names, when it names one.
    pub(crate) fn stage(&self) -> Option<&str> {
        self.stage.as_deref().filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{
        bake_failed, compared, fixture, promoted, test_failed, AGAINST, DIFF_URL,
    };
    use serde_json::json;

    /// The announcement inside an SNS fixture (the `lambda` body).
    fn sns_message(event: &str) -> Value {
        let event = fixture(event);
        let message = event["Records"][0]["Sns"]["Message"]
            .as_str()
            .expect("Records[0].Sns.Message");
        serde_json::from_str(message).expect("the message is JSON")
    }

    /// The SNS fixtures carry exactly what gild publishes, so the end-to-end
    /// tests and these payloads stay in step with `announce`.
    #[test]
    fn sns_fixtures_carry_the_published_bodies() {
        for (event, announcement) in [
            (
                include_str!("../../../tests/fixtures/slack/sns-promoted.json"),
                promoted(),
            ),
            (
                include_str!("../../../tests/fixtures/slack/sns-test-failed.json"),
                test_failed(),
            ),
            (
                include_str!("../../../tests/fixtures/slack/sns-bake-failed.json"),
                bake_failed(),
            ),
        ] {
            let publication = announcement.publication();
            let bodies = fixture(&publication.message);
            let lambda_body = fixture(bodies["lambda"].as_str().expect("lambda body"));
            let message = sns_message(event);
            assert_eq!(message, lambda_body);
            let sns = &fixture(event)["Records"][0]["Sns"];
            assert_eq!(sns["Subject"], publication.subject.as_str());
            for (name, value) in &publication.attributes {
                assert_eq!(sns["MessageAttributes"][name]["Value"], value.as_str());
                assert_eq!(sns["MessageAttributes"][name]["Type"], "String");
            }
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_wrong_schemas_refused() {
        let mut body = promoted().json();
        body["added_in_a_later_version"] = json!({"x": 1});
        body["links"]["build_graph"] = json!("https://example.com");
        assert!(Notice::parse(&body.to_string()).is_ok());

        body["schema"] = json!("gild.announcement/2");
        assert_eq!(
            Notice::parse(&body.to_string()),
            Err(NoticeError::Schema {
                found: "`gild.announcement/2`".into()
            })
        );
        body["schema"] = json!(1);
        assert!(matches!(
            Notice::parse(&body.to_string()),
            Err(NoticeError::Schema { .. })
        ));
        let missing = json!({"family": "x"}).to_string();
        assert_eq!(
            Notice::parse(&missing),
            Err(NoticeError::Schema {
                found: "missing".into()
            })
        );
        assert!(matches!(
            Notice::parse("Hello from SNS!"),
            Err(NoticeError::NotJson(_))
        ));
        assert!(matches!(
            Notice::parse("[1]"),
            Err(NoticeError::Schema { .. })
        ));

        let mut bad = promoted().json();
        bad["outcome"] = json!("exploded");
        let err = Notice::parse(&bad.to_string()).expect_err("bad outcome");
        assert!(matches!(err, NoticeError::Invalid(_)), "{err}");
        let mut bad = promoted().json();
        bad.as_object_mut().expect("object").remove("family");
        let err = Notice::parse(&bad.to_string()).expect_err("no family");
        assert!(err.to_string().contains("family"), "{err}");
    }

    #[test]
    fn packages_are_read_from_what_gild_publishes() {
        let notice = Notice::parse(&compared().json().to_string()).expect("parses");
        let packages = notice.packages.expect("packages");
        assert_eq!(packages.status.as_deref(), Some("compared"));
        assert_eq!(packages.against.as_deref(), Some(AGAINST));
        assert_eq!(
            packages.summary.as_deref(),
            Some("linux-image-amd64 6.12.9 → 6.12.12, openssl 3.0.15-1 → 3.0.16-1; 14 upgraded, 1 added, 0 removed")
        );
        assert_eq!(packages.named.len(), 2);
        assert_eq!(
            packages.counts,
            Some(PackageCounts {
                upgraded: 14,
                added: 1,
                ..PackageCounts::default()
            })
        );
        assert_eq!(packages.diff_url.as_deref(), Some(DIFF_URL));
        assert!(packages
            .diff_s3
            .as_deref()
            .is_some_and(|s| s.starts_with("s3://")));
        assert_eq!(packages.line(), packages.summary);

        // Nothing baked (`null`), and an announcement from before the field.
        let mut body = promoted().json();
        assert!(body["packages"].is_null());
        assert_eq!(
            Notice::parse(&body.to_string()).expect("null").packages,
            None
        );
        body.as_object_mut().expect("object").remove("packages");
        assert_eq!(
            Notice::parse(&body.to_string()).expect("absent").packages,
            None
        );
    }

    #[test]
    fn malformed_packages_cost_only_themselves() {
        for value in [json!(5), json!("openssl"), json!([1, 2]), json!(true)] {
            let mut body = promoted().json();
            body["packages"] = value;
            let notice = Notice::parse(&body.to_string()).expect("still an announcement");
            assert_eq!(notice.packages, None);
        }
        let mut body = promoted().json();
        body["packages"] = json!({
            "status": 3,
            "against": ["ami-0fedcba9876543210"],
            "summary": {"text": "x"},
            "named": [1, "jq 1.7.1-3 (added)", null],
            "counts": {"upgraded": -1},
            "diff_url": 7,
            "diff_s3": "",
            "packages": "many",
            "reason": false,
        });
        let packages = Notice::parse(&body.to_string())
            .expect("still an announcement")
            .packages
            .expect("an object");
        assert_eq!(
            packages,
            NoticePackages {
                named: vec!["jq 1.7.1-3 (added)".into()],
                ..NoticePackages::default()
            }
        );
        assert_eq!(packages.line().as_deref(), Some("jq 1.7.1-3 (added)"));
        // The core fields keep their strictness.
        body["family"] = json!(5);
        assert!(matches!(
            Notice::parse(&body.to_string()),
            Err(NoticeError::Invalid(_))
        ));
    }

    #[test]
    fn a_missing_summary_is_made_of_the_other_fields() {
        let line = |packages: Value| NoticePackages::from_value(&packages).and_then(|p| p.line());
        assert_eq!(
            line(json!({"status": "first", "packages": 312})).as_deref(),
            Some("first image of the family (312 packages)")
        );
        assert_eq!(
            line(json!({"status": "unavailable", "reason": "no list for ami-1"})).as_deref(),
            Some("not compared: no list for ami-1")
        );
        assert_eq!(
            line(json!({
                "status": "compared",
                "named": ["openssl 3.0.15-1 → 3.0.16-1"],
                "counts": {"upgraded": 1, "downgraded": 2, "added": 0, "removed": 0, "respelled": 3},
            }))
            .as_deref(),
            Some("openssl 3.0.15-1 → 3.0.16-1; 1 upgraded, 2 downgraded, 0 added, 0 removed, 3 respelled")
        );
        assert_eq!(line(json!({"status": "compared"})), None);
        assert_eq!(line(json!({})), None);
        let later = NoticePackages::from_value(&json!({"status": "estimated", "summary": "s"}))
            .expect("object");
        assert_eq!(later.unknown_status(), Some("estimated"));
        let known = NoticePackages::from_value(&json!({"status": "first"})).expect("object");
        assert_eq!(known.unknown_status(), None);
    }
}
