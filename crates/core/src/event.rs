//! The events gild reacts to, parsed from EventBridge envelopes.
//!
//! Only the fields the pipeline reads are typed; everything else is ignored,
//! so AWS adding a field never breaks a handler. A missing or mistyped field
//! the pipeline needs is a [`EventError::Malformed`] naming the field.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

pub const SCHEDULED: &str = "Scheduled Event";
pub const CODECOMMIT_CHANGE: &str = "CodeCommit Repository State Change";
pub const BUILD_REQUESTED: &str = "Build Requested";
pub const BUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";
/// What CodeCommit's pull-request events are called in plans. Their
/// `detail-type` is not matched: its documented spelling varies, so they
/// are told by `source` and `detail.event` ([`PULL_REQUEST_EVENTS`]).
pub const CODECOMMIT_PULL_REQUEST: &str = "CodeCommit Pull Request State Change";
/// The pull-request events gild reads: a new pull request, a new head, a
/// closed or reopened one, and a merge (which closes it).
pub const PULL_REQUEST_EVENTS: [&str; 4] = [
    "pullRequestCreated",
    "pullRequestSourceBranchUpdated",
    "pullRequestStatusChanged",
    "pullRequestMergeStatusUpdated",
];
/// `source` of the manual events `gild build` puts on the bus.
pub const GILD_SOURCE: &str = "gild";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not JSON: {0}")]
    NotJson(String),
    #[error("not an EventBridge event: {0}")]
    NotEventBridge(String),
    #[error("malformed `{detail_type}` event: {problem}")]
    Malformed {
        detail_type: String,
        problem: String,
    },
    #[error("unsupported event: source `{source_name}`, detail-type `{detail_type}` (gild handles `{SCHEDULED}`, `{CODECOMMIT_CHANGE}`, `{BUILD_REQUESTED}` and `{BUILD_STATE_CHANGE}`)")]
    Unsupported {
        source_name: String,
        detail_type: String,
    },
}

/// The EventBridge envelope fields every event has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub time: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub envelope: Envelope,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Schedule,
    RefChange(RefChange),
    BuildRequested(BuildRequest),
    BuildStateChange(BuildStateChange),
    PullRequest(PullRequestChange),
}

/// `detail` of a CodeCommit pull-request event, as the CodeCommit user
/// guide's examples show it (monitoring-events). Two quirks: `isMerged` is
/// the string `"True"`/`"False"`, and the dates are not ISO 8601 (so they
/// are not read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestChange {
    pub event: String,
    pub pull_request_id: String,
    /// `Open` or `Closed`.
    pub pull_request_status: String,
    pub repository_names: Vec<String>,
    #[serde(default)]
    pub revision_id: Option<String>,
    pub source_commit: String,
    #[serde(default)]
    pub source_reference: String,
    pub destination_commit: String,
    pub destination_reference: String,
    #[serde(default, deserialize_with = "string_bool")]
    pub is_merged: bool,
}

/// `"True"`/`"False"` as CodeCommit sends them, or a JSON boolean.
fn string_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Bool(b) => Ok(b),
        Raw::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        Raw::Text(t) if t.eq_ignore_ascii_case("false") => Ok(false),
        Raw::Text(t) => Err(serde::de::Error::custom(format!(
            "`isMerged` `{}` is neither True nor False",
            t.escape_debug()
        ))),
    }
}
/// `detail` of `CodeCommit Repository State Change`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefChange {
    pub event: String,
    /// Absent on `unreferencedMergeCommitCreated`, which names no reference
    /// (CodeCommit's documented event: a merge commit on no branch yet).
    #[serde(default)]
    pub reference_type: String,
    #[serde(default)]
    pub reference_name: String,
    pub repository_name: String,
    /// Absent on `referenceDeleted`.
    #[serde(default)]
    pub commit_id: Option<String>,
    /// Absent on `referenceCreated`.
    #[serde(default)]
    pub old_commit_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildTarget {
    Family(String),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub target: BuildTarget,
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuildRequest {
    #[serde(default)]
    family: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    requested_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStatus {
    Succeeded,
    Failed,
    Fault,
    Stopped,
    TimedOut,
    InProgress,
    /// A status AWS may add later; treated like `IN_PROGRESS` (ignored).
    Other,
}

impl BuildStatus {
    /// CodeBuild's `buildStatus` text, as events and `BatchGetBuilds` give it.
    pub fn parse(s: &str) -> Self {
        match s {
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "FAULT" => Self::Fault,
            "STOPPED" => Self::Stopped,
            "TIMED_OUT" => Self::TimedOut,
            "IN_PROGRESS" => Self::InProgress,
            _ => Self::Other,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Fault | Self::Stopped | Self::TimedOut
        )
    }
}

/// `detail` of `CodeBuild Build State Change`, reduced to what gild reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStateChange {
    pub project_name: String,
    pub build_id: String,
    pub status: BuildStatus,
    pub status_text: String,
    /// The build's environment variables (`GILD_FAMILY`, `GILD_TRIGGER`, …).
    pub env: BTreeMap<String, String>,
    /// Variables the buildspec exported (`GILD_AMI_ID`).
    pub exported: BTreeMap<String, String>,
    pub source_version: Option<String>,
    pub log_link: Option<String>,
}

#[derive(Deserialize)]
struct RawBuildDetail {
    #[serde(rename = "build-status")]
    build_status: String,
    #[serde(rename = "project-name")]
    project_name: String,
    #[serde(rename = "build-id")]
    build_id: String,
    #[serde(rename = "additional-information", default)]
    info: RawBuildInfo,
}

#[derive(Deserialize, Default)]
struct RawBuildInfo {
    #[serde(default)]
    environment: RawBuildEnvironment,
    #[serde(rename = "exported-environment-variables", default)]
    exported: Vec<RawVar>,
    #[serde(rename = "source-version", default)]
    source_version: Option<String>,
    #[serde(default)]
    logs: RawLogs,
}

#[derive(Deserialize, Default)]
struct RawBuildEnvironment {
    #[serde(rename = "environment-variables", default)]
    variables: Vec<RawVar>,
}

#[derive(Deserialize)]
struct RawVar {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
struct RawLogs {
    #[serde(rename = "deep-link", default)]
    deep_link: Option<String>,
}

fn vars(raw: Vec<RawVar>) -> BTreeMap<String, String> {
    raw.into_iter().map(|v| (v.name, v.value)).collect()
}

/// Parses raw bytes (what `gild plan --event FILE` reads).
pub fn parse_bytes(bytes: &[u8]) -> Result<Event, EventError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| EventError::NotJson(e.to_string()))?;
    parse(value)
}

/// Parses an EventBridge event as a Lambda receives it.
pub fn parse(value: Value) -> Result<Event, EventError> {
    let Value::Object(mut object) = value else {
        return Err(EventError::NotEventBridge(
            "expected a JSON object with `detail-type`, `source` and `detail`".into(),
        ));
    };
    let detail = object.remove("detail").unwrap_or(Value::Null);
    let envelope: Envelope = serde_json::from_value(Value::Object(object))
        .map_err(|e| EventError::NotEventBridge(e.to_string()))?;
    let malformed = |problem: String| EventError::Malformed {
        detail_type: envelope.detail_type.clone(),
        problem,
    };
    let pull_request_event = envelope.source == "aws.codecommit"
        && detail
            .get("event")
            .and_then(Value::as_str)
            .is_some_and(|e| PULL_REQUEST_EVENTS.contains(&e));
    if pull_request_event {
        let change: PullRequestChange = detail_as(detail).map_err(malformed)?;
        return Ok(Event {
            envelope,
            kind: EventKind::PullRequest(change),
        });
    }
    let kind = match (envelope.source.as_str(), envelope.detail_type.as_str()) {
        ("aws.events", SCHEDULED) => {
            parse_time(&envelope.time).map_err(malformed)?;
            EventKind::Schedule
        }
        ("aws.codecommit", CODECOMMIT_CHANGE) => {
            let change: RefChange = detail_as(detail).map_err(malformed)?;
            // Only the reference events must name their reference; others
            // (unreferencedMergeCommitCreated) are triaged away by name.
            if change.event.starts_with("reference") {
                for (field, value) in [
                    ("referenceType", &change.reference_type),
                    ("referenceName", &change.reference_name),
                ] {
                    if value.is_empty() {
                        return Err(malformed(format!(
                            "`detail`: missing field `{field}` in a `{}` event",
                            change.event
                        )));
                    }
                }
            }
            EventKind::RefChange(change)
        }
        (GILD_SOURCE, BUILD_REQUESTED) => {
            let raw: RawBuildRequest = detail_as(detail).map_err(malformed)?;
            let target = match (raw.family, raw.all) {
                (Some(_), true) => {
                    return Err(malformed(
                        "give either `family` or `\"all\": true`, not both".into(),
                    ))
                }
                (None, false) => {
                    return Err(malformed(
                        "`detail` needs `family` or `\"all\": true`".into(),
                    ))
                }
                (Some(family), false) => BuildTarget::Family(family),
                (None, true) => BuildTarget::All,
            };
            EventKind::BuildRequested(BuildRequest {
                target,
                requested_by: raw.requested_by,
            })
        }
        ("aws.codebuild", BUILD_STATE_CHANGE) => {
            let raw: RawBuildDetail = detail_as(detail).map_err(malformed)?;
            EventKind::BuildStateChange(BuildStateChange {
                status: BuildStatus::parse(&raw.build_status),
                status_text: raw.build_status,
                project_name: raw.project_name,
                build_id: raw.build_id,
                env: vars(raw.info.environment.variables),
                exported: vars(raw.info.exported),
                source_version: raw.info.source_version,
                log_link: raw.info.logs.deep_link,
            })
        }
        (source, detail_type) => {
            return Err(EventError::Unsupported {
                source_name: source.to_owned(),
                detail_type: detail_type.to_owned(),
            })
        }
    };
    Ok(Event { envelope, kind })
}

fn detail_as<T: DeserializeOwned>(detail: Value) -> Result<T, String> {
    if detail.is_null() {
        return Err("missing `detail`".into());
    }
    serde_json::from_value(detail).map_err(|e| format!("`detail`: {e}"))
}

/// Parses the envelope's RFC 3339 `time`.
pub fn parse_time(time: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`time` `{time}` is not RFC 3339: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(source: &str, detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0", "id": "e-1", "detail-type": detail_type, "source": source,
            "account": "111122223333", "time": "2026-11-12T14:05:09Z", "region": "us-east-1",
            "resources": [], "detail": detail
        })
    }

    #[test]
    fn parses_codecommit_change_ignoring_extra_fields() {
        let event = parse(envelope(
            "aws.codecommit",
            CODECOMMIT_CHANGE,
            json!({"event": "referenceUpdated", "referenceType": "branch", "referenceName": "main",
                   "referenceFullName": "refs/heads/main", "repositoryName": "imgs",
                   "repositoryId": "x", "callerUserArn": "arn", "commitId": "c2", "oldCommitId": "c1",
                   "somethingNew": [1, 2]}),
        ))
        .expect("valid");
        let EventKind::RefChange(change) = event.kind else {
            panic!("wrong kind")
        };
        assert_eq!(change.commit_id.as_deref(), Some("c2"));
        assert_eq!(change.old_commit_id.as_deref(), Some("c1"));
    }

    #[test]
    fn malformed_detail_names_the_field() {
        let err = parse(envelope(
            "aws.codecommit",
            CODECOMMIT_CHANGE,
            json!({"event": "referenceUpdated", "referenceName": "main", "repositoryName": "r"}),
        ))
        .expect_err("missing referenceType");
        assert!(err.to_string().contains("referenceType"), "{err}");
        let err = parse(envelope("aws.codecommit", CODECOMMIT_CHANGE, Value::Null))
            .expect_err("no detail");
        assert!(err.to_string().contains("missing `detail`"), "{err}");
    }

    #[test]
    fn manual_request_needs_exactly_one_target() {
        let ok = parse(envelope(
            GILD_SOURCE,
            BUILD_REQUESTED,
            json!({"family": "a", "requested_by": "carol"}),
        ))
        .expect("valid");
        assert!(
            matches!(ok.kind, EventKind::BuildRequested(BuildRequest { target: BuildTarget::Family(ref f), .. }) if f == "a")
        );
        assert!(parse(envelope(GILD_SOURCE, BUILD_REQUESTED, json!({"all": true}))).is_ok());
        assert!(parse(envelope(GILD_SOURCE, BUILD_REQUESTED, json!({}))).is_err());
        assert!(parse(envelope(
            GILD_SOURCE,
            BUILD_REQUESTED,
            json!({"family": "a", "all": true})
        ))
        .is_err());
        assert!(parse(envelope(
            GILD_SOURCE,
            BUILD_REQUESTED,
            json!({"familly": "a"})
        ))
        .is_err());
    }

    #[test]
    fn unsupported_and_non_eventbridge_inputs() {
        assert!(matches!(
            parse(envelope("aws.s3", "Object Created", json!({}))),
            Err(EventError::Unsupported { .. })
        ));
        assert!(matches!(
            parse(json!([1, 2])),
            Err(EventError::NotEventBridge(_))
        ));
        assert!(matches!(
            parse(json!({"detail-type": "x"})),
            Err(EventError::NotEventBridge(_))
        ));
        assert!(matches!(parse_bytes(b"{nope"), Err(EventError::NotJson(_))));
    }

    #[test]
    fn schedule_needs_a_valid_time() {
        let mut event = envelope("aws.events", SCHEDULED, json!({}));
        event["time"] = json!("yesterday");
        assert!(parse(event).is_err());
    }

    #[test]
    fn build_state_change_collects_variables() {
        let event = parse(envelope(
            "aws.codebuild",
            BUILD_STATE_CHANGE,
            json!({"build-status": "SUCCEEDED", "project-name": "gild-bake", "build-id": "arn:b",
                   "additional-information": {
                       "environment": {"environment-variables": [{"name": "GILD_FAMILY", "type": "PLAINTEXT", "value": "a"}]},
                       "exported-environment-variables": [{"name": "GILD_AMI_ID", "value": "ami-1"}],
                       "logs": {"deep-link": "https://logs"}}}),
        ))
        .expect("valid");
        let EventKind::BuildStateChange(change) = event.kind else {
            panic!("wrong kind")
        };
        assert_eq!(change.status, BuildStatus::Succeeded);
        assert_eq!(change.env.get("GILD_FAMILY").map(String::as_str), Some("a"));
        assert_eq!(
            change.exported.get("GILD_AMI_ID").map(String::as_str),
            Some("ami-1")
        );
        assert_eq!(change.log_link.as_deref(), Some("https://logs"));
    }
}
