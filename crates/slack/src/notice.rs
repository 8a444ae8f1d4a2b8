//! An announcement as subscribers receive it: the `lambda`/`sqs` body of
//! gild's SNS publication, read into a [`Notice`].

use gild_core::announce::SCHEMA;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mrkdwn::clip;

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
/// text so a new value is shown rather than refused.
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
    use crate::testdata::{bake_failed, fixture, promoted, test_failed};
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
            assert_eq!(sns_message(event), lambda_body);
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
}
