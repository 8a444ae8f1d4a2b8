//! Slack messages for announcements: what the `slack-notify` Lambda posts to
//! an incoming webhook.
//!
//! Pure: [`Notice::parse`] reads the announcement JSON a subscriber receives
//! (`gild.announcement/1`, see `announce`), [`render`] turns it into Block
//! Kit `blocks` plus a `text` fallback for notifications. Every text is
//! escaped for mrkdwn and cut to Slack's documented limits, so no input,
//! however long or odd, makes Slack reject the payload.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::announce::{short_commit, SCHEMA};
use crate::plan::Trigger;

/// Block Kit's limits, from Slack's reference pages for blocks, block
/// elements and composition objects (lengths in characters).
pub mod limits {
    pub const BLOCKS: usize = 50;
    pub const HEADER_TEXT: usize = 150;
    pub const SECTION_TEXT: usize = 3000;
    pub const SECTION_FIELDS: usize = 10;
    pub const FIELD_TEXT: usize = 2000;
    pub const ACTIONS_ELEMENTS: usize = 25;
    pub const BUTTON_TEXT: usize = 75;
    pub const BUTTON_URL: usize = 3000;
    pub const ACTION_ID: usize = 255;
    pub const CONTEXT_ELEMENTS: usize = 10;
    pub const CONTEXT_TEXT: usize = 3000;
    /// Slack truncates longer messages; the fallback stays under it.
    pub const FALLBACK_TEXT: usize = 4000;
}

/// Where a commit is shown to people: the images repository's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryLink {
    /// A CodeCommit repository in the announcement's region.
    CodeCommit { repository: String },
    /// `github.com/<owner>/<name>`.
    GitHub { owner: String, name: String },
}

impl RepositoryLink {
    /// A CodeCommit repository name: 1–100 letters, digits, `.`, `_`, `-`.
    pub fn codecommit(repository: &str) -> Result<Self, String> {
        if is_codecommit_name(repository) {
            Ok(RepositoryLink::CodeCommit {
                repository: repository.to_owned(),
            })
        } else {
            Err("not a CodeCommit repository name (1-100 letters, digits, `.`, `_`, `-`)".into())
        }
    }

    /// A GitHub repository as `owner/name`.
    pub fn github(full_name: &str) -> Result<Self, String> {
        let (owner, name) = full_name
            .split_once('/')
            .ok_or_else(|| "expected `owner/name`".to_owned())?;
        if !is_github_owner(owner) {
            return Err(format!(
                "`{owner}` is not a GitHub owner (1-39 letters, digits, `-`)"
            ));
        }
        if !is_github_name(name) {
            return Err(format!(
                "`{name}` is not a GitHub repository name (1-100 letters, digits, `.`, `_`, `-`)"
            ));
        }
        Ok(RepositoryLink::GitHub {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The web page of `commit`; `None` when the commit (or region, for
    /// CodeCommit) is not something a link can safely be made of.
    pub fn commit_url(&self, region: &str, commit: &str) -> Option<String> {
        if !is_commit(commit) {
            return None;
        }
        match self {
            RepositoryLink::CodeCommit { repository }
                if is_codecommit_name(repository) && is_region(region) =>
            {
                Some(format!(
                    "https://{region}.console.aws.amazon.com/codesuite/codecommit/repositories/{repository}/commit/{commit}?region={region}"
                ))
            }
            RepositoryLink::GitHub { owner, name } if is_github_owner(owner) && is_github_name(name) => {
                Some(format!("https://github.com/{owner}/{name}/commit/{commit}"))
            }
            _ => None,
        }
    }
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
    /// [`SCHEMA`](crate::announce::SCHEMA) is refused before anything else.
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

    fn links(&self) -> Links {
        self.links.clone().unwrap_or_default()
    }
}

/// A Slack incoming-webhook payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackMessage {
    /// Plain fallback: notifications, and clients that cannot show blocks.
    pub text: String,
    pub blocks: Vec<Value>,
    /// Console links would unfurl into noise.
    pub unfurl_links: bool,
    pub unfurl_media: bool,
}

impl SlackMessage {
    pub fn to_json(&self) -> Value {
        json!({
            "text": self.text,
            "blocks": self.blocks,
            "unfurl_links": self.unfurl_links,
            "unfurl_media": self.unfurl_media,
        })
    }
}

/// Parses and renders in one step.
pub fn render_body(body: &str, link: &RepositoryLink) -> Result<SlackMessage, NoticeError> {
    Notice::parse(body).map(|notice| render(&notice, link))
}

/// The message for an announcement: a header with the outcome, a section
/// with the facts as fields, link buttons, and the bake's key and time.
pub fn render(notice: &Notice, link: &RepositoryLink) -> SlackMessage {
    let mut blocks = vec![header(notice), facts(notice, link)];
    let buttons = buttons(notice);
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "gild bake `{}` · {}",
                escape_clip(&notice.dedupe_key, 1000),
                escape_clip(&notice.at, 100)
            ),
        }],
    }));
    SlackMessage {
        text: fallback(notice),
        blocks,
        unfurl_links: false,
        unfurl_media: false,
    }
}

fn stage(notice: &Notice) -> Option<&str> {
    notice.stage.as_deref().filter(|s| !s.is_empty())
}

fn header(notice: &Notice) -> Value {
    let text = match notice.outcome {
        NoticeOutcome::Promoted => match &notice.image {
            Some(image) => format!(":white_check_mark: {} {image} ready", notice.family),
            None => format!(":white_check_mark: {} ready", notice.family),
        },
        NoticeOutcome::Failed => match stage(notice) {
            Some(stage) => format!(":x: {} FAILED at {stage}", notice.family),
            None => format!(":x: {} FAILED", notice.family),
        },
    };
    json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": clip(&one_line(&text), limits::HEADER_TEXT),
            "emoji": true,
        },
    })
}

/// The notification line: the email's subject, and the reason of a failure.
fn fallback(notice: &Notice) -> String {
    let image = notice
        .image
        .as_deref()
        .map(|i| format!(" {i}"))
        .unwrap_or_default();
    let text = match notice.outcome {
        NoticeOutcome::Promoted => {
            let version = notice
                .parameter_version
                .map(|v| format!(" version {v}"))
                .unwrap_or_default();
            format!(
                "gild: {}{image} ready ({}{version})",
                notice.family, notice.parameter
            )
        }
        NoticeOutcome::Failed => {
            let at = stage(notice)
                .map(|s| format!(" at {s}"))
                .unwrap_or_default();
            let reason = notice
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            format!("gild: {}{image} FAILED{at}{reason}", notice.family)
        }
    };
    escape_clip(&text, limits::FALLBACK_TEXT)
}

fn summary(notice: &Notice) -> String {
    let family = escape_clip(&notice.family, 500);
    let parameter = escape_clip(&notice.parameter, 500);
    let image = notice
        .image
        .as_deref()
        .map(|i| format!(" `{}`", escape_clip(i, 200)))
        .unwrap_or_default();
    match (notice.outcome, stage(notice)) {
        (NoticeOutcome::Promoted, _) => format!(
            "*{family}*: new image{image} passed its tests and `{parameter}` now points at it."
        ),
        (NoticeOutcome::Failed, Some("bake")) => format!(
            "*{family}*: the bake failed. Nothing was promoted and anything the bake left was removed; `{parameter}` still points at the previous image."
        ),
        (NoticeOutcome::Failed, Some(stage)) => format!(
            "*{family}*: the new image{image} failed at *{}*. It was never promoted; the image and its snapshots were removed. `{parameter}` still points at the previous image.",
            escape_clip(stage, 100)
        ),
        (NoticeOutcome::Failed, None) => format!(
            "*{family}*: the bake failed. Nothing was promoted; `{parameter}` still points at the previous image."
        ),
    }
}

/// Room left in a field for its value after `*label*\n` and `extra` characters.
fn room(label: &str, extra: usize) -> usize {
    limits::FIELD_TEXT.saturating_sub(label.chars().count() + 3 + extra)
}

fn field(label: &str, value: String) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")})
}

fn text_field(label: &str, value: &str) -> Value {
    field(label, escape_clip(value, room(label, 0)))
}

fn code_field(label: &str, value: &str, suffix: &str) -> Value {
    let inner = escape_clip(value, room(label, 2 + suffix.chars().count()));
    field(label, format!("`{inner}`{suffix}"))
}

fn trigger_text(notice: &Notice) -> String {
    match Trigger::parse(&notice.trigger) {
        Some(Trigger::Schedule) => format!(
            "monthly patch rebuild ({})",
            notice.dedupe_key.trim_start_matches("schedule:")
        ),
        Some(Trigger::Push) => "push".into(),
        Some(Trigger::Manual) => "manual request".into(),
        None => notice.trigger.clone(),
    }
}

fn facts(notice: &Notice, link: &RepositoryLink) -> Value {
    let failed = notice.outcome == NoticeOutcome::Failed;
    let mut fields = vec![text_field("Family", &notice.family)];
    if let Some(image) = &notice.image {
        fields.push(code_field(
            "Image",
            image,
            if failed { " (removed)" } else { "" },
        ));
    }
    fields.push(text_field("Region", &notice.region));
    fields.push(text_field("Trigger", &trigger_text(notice)));
    if let Some(commit) = &notice.commit {
        fields.push(match link.commit_url(&notice.region, commit) {
            Some(url) => field("Commit", format!("<{url}|{}>", short_commit(commit))),
            None => code_field("Commit", commit, ""),
        });
    }
    let parameter_note = match (notice.outcome, notice.parameter_version) {
        (NoticeOutcome::Promoted, Some(version)) => format!(" (version {version})"),
        (NoticeOutcome::Promoted, None) => String::new(),
        (NoticeOutcome::Failed, _) => " (unchanged)".into(),
    };
    fields.push(code_field("Parameter", &notice.parameter, &parameter_note));
    if failed {
        if let Some(stage) = stage(notice) {
            fields.push(text_field("Failed at", stage));
        }
        if let Some(reason) = &notice.reason {
            fields.push(text_field("Reason", reason));
        }
    }
    if let Some(tested) = &notice.tested {
        fields.push(text_field("Tested", tested));
    }
    fields.truncate(limits::SECTION_FIELDS);
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": summary(notice)},
        "fields": fields,
    })
}

fn buttons(notice: &Notice) -> Vec<Value> {
    let links = notice.links();
    let mut buttons: Vec<Value> = [
        ("bake_log", "Bake log", links.bake_log.as_deref()),
        ("test_report", "Test report", links.test_report.as_deref()),
        ("test_log", "Test log", links.test_log.as_deref()),
    ]
    .into_iter()
    .filter_map(|(id, label, url)| button(id, label, url?))
    .collect();
    // A failed bake's image was removed: nothing to look at in the console.
    if notice.outcome == NoticeOutcome::Promoted {
        if let Some(url) = notice
            .image
            .as_deref()
            .and_then(|image| ec2_console_url(&notice.region, image))
        {
            buttons.extend(button("ec2_image", "AMI in EC2 console", &url));
        }
    }
    buttons.truncate(limits::ACTIONS_ELEMENTS);
    buttons
}

/// A link button, or `None` for a URL Slack would refuse (not http(s), too
/// long, spaces or non-ASCII): a cut URL would be a broken link.
fn button(action_id: &str, label: &str, url: &str) -> Option<Value> {
    if !is_link(url) {
        return None;
    }
    Some(json!({
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": clip(label, limits::BUTTON_TEXT), "emoji": true},
        "url": url,
    }))
}

/// The AMI's page in the EC2 console.
pub fn ec2_console_url(region: &str, image: &str) -> Option<String> {
    (is_region(region) && is_ami(image)).then(|| {
        format!("https://{region}.console.aws.amazon.com/ec2/home?region={region}#ImageDetails:imageId={image}")
    })
}

fn is_link(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= limits::BUTTON_URL
        && url.len() > "https://".len()
        && url.bytes().all(|b| b.is_ascii_graphic())
}

fn is_commit(commit: &str) -> bool {
    (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_ami(image: &str) -> bool {
    image.strip_prefix("ami-").is_some_and(|hex| {
        (8..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn is_codecommit_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_github_owner(owner: &str) -> bool {
    (1..=39).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_github_name(name: &str) -> bool {
    is_codecommit_name(name) && name != "." && name != ".."
}

/// Control characters (newlines in a header) as spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters of `text`, cut on a character boundary and
/// ending in "…" when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let end = text
        .char_indices()
        .nth(max - 1)
        .map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..end])
}

/// mrkdwn needs `&`, `<` and `>` escaped (else `<!channel>` in a family name
/// would ping a channel); the escaped text is cut to `max` characters without
/// splitting an entity.
pub fn escape_clip(text: &str, max: usize) -> String {
    fn escaped(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            _ => None,
        }
    }
    let width = |c: char| escaped(c).map_or(1, str::len);
    let total: usize = text.chars().map(width).sum();
    let budget = if total <= max {
        usize::MAX
    } else if max == 0 {
        return String::new();
    } else {
        max - 1
    };
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut used = 0;
    for c in text.chars() {
        let w = width(c);
        if used + w > budget {
            out.push('…');
            return out;
        }
        match escaped(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
        used += w;
    }
    out
}

/// Every way `payload` breaks Block Kit's structure or limits, as far as
/// these messages use it (header, section, actions, context); empty when
/// Slack would take it.
pub fn block_kit_problems(payload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut action_ids = BTreeSet::new();
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count());
    match chars(&payload["text"]) {
        Some(n) if (1..=limits::FALLBACK_TEXT).contains(&n) => {}
        other => problems.push(format!("text: length {other:?}")),
    }
    let Some(blocks) = payload["blocks"].as_array() else {
        problems.push("blocks: not an array".into());
        return problems;
    };
    if blocks.is_empty() || blocks.len() > limits::BLOCKS {
        problems.push(format!("blocks: {} blocks", blocks.len()));
    }
    let text_object = |path: &str, v: &Value, types: &[&str], max: usize, out: &mut Vec<String>| {
        let kind = v["type"].as_str().unwrap_or("");
        if !types.contains(&kind) {
            out.push(format!("{path}: type `{kind}` not one of {types:?}"));
        }
        match chars(&v["text"]) {
            Some(n) if (1..=max).contains(&n) => {}
            other => out.push(format!("{path}: text length {other:?} (max {max})")),
        }
    };
    for (i, block) in blocks.iter().enumerate() {
        let path = format!("blocks[{i}]");
        match block["type"].as_str() {
            Some("header") => text_object(
                &path,
                &block["text"],
                &["plain_text"],
                limits::HEADER_TEXT,
                &mut problems,
            ),
            Some("section") => {
                let fields = block["fields"].as_array();
                if block.get("text").is_none() && fields.is_none() {
                    problems.push(format!("{path}: neither text nor fields"));
                }
                if let Some(text) = block.get("text") {
                    text_object(
                        &format!("{path}.text"),
                        text,
                        &["mrkdwn", "plain_text"],
                        limits::SECTION_TEXT,
                        &mut problems,
                    );
                }
                if let Some(fields) = fields {
                    if fields.is_empty() || fields.len() > limits::SECTION_FIELDS {
                        problems.push(format!("{path}: {} fields", fields.len()));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        text_object(
                            &format!("{path}.fields[{j}]"),
                            f,
                            &["mrkdwn", "plain_text"],
                            limits::FIELD_TEXT,
                            &mut problems,
                        );
                    }
                }
            }
            Some("actions") => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > limits::ACTIONS_ELEMENTS {
                    problems.push(format!("{path}: {} elements", elements.len()));
                }
                for (j, e) in elements.iter().enumerate() {
                    let epath = format!("{path}.elements[{j}]");
                    if e["type"] != "button" {
                        problems.push(format!("{epath}: not a button"));
                    }
                    text_object(
                        &format!("{epath}.text"),
                        &e["text"],
                        &["plain_text"],
                        limits::BUTTON_TEXT,
                        &mut problems,
                    );
                    match e["url"].as_str() {
                        Some(url) if is_link(url) => {}
                        other => problems.push(format!("{epath}: url {other:?}")),
                    }
                    match e["action_id"].as_str() {
                        Some(id) if (1..=limits::ACTION_ID).contains(&id.len()) => {
                            if !action_ids.insert(id.to_owned()) {
                                problems.push(format!("{epath}: action_id `{id}` repeated"));
                            }
                        }
                        other => problems.push(format!("{epath}: action_id {other:?}")),
                    }
                }
            }
            Some("context") => {
                let elements = block["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > limits::CONTEXT_ELEMENTS {
                    problems.push(format!("{path}: {} elements", elements.len()));
                }
                for (j, e) in elements.iter().enumerate() {
                    text_object(
                        &format!("{path}.elements[{j}]"),
                        e,
                        &["mrkdwn", "plain_text"],
                        limits::CONTEXT_TEXT,
                        &mut problems,
                    );
                }
            }
            other => problems.push(format!("{path}: unexpected block type {other:?}")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{Announcement, Outcome};
    use crate::state::Stage;
    use proptest::prelude::*;

    const SHA: &str = "a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1";

    fn codecommit() -> RepositoryLink {
        RepositoryLink::codecommit("gild-images").expect("name")
    }

    fn github() -> RepositoryLink {
        RepositoryLink::github("example-org/gild-images").expect("name")
    }

    /// What test-finished publishes for a promotion (see `flow::announce`).
    fn promoted() -> Announcement {
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
        }
    }

    fn test_failed() -> Announcement {
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

    fn bake_failed() -> Announcement {
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

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is JSON")
    }

    /// The announcement inside an SNS fixture (the `lambda` body).
    fn sns_message(event: &str) -> Value {
        let event = fixture(event);
        let message = event["Records"][0]["Sns"]["Message"]
            .as_str()
            .expect("Records[0].Sns.Message");
        serde_json::from_str(message).expect("the message is JSON")
    }

    fn rendered(a: &Announcement, link: &RepositoryLink) -> Value {
        render_body(&a.json().to_string(), link)
            .expect("renders")
            .to_json()
    }

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
            include_str!("../../../tests/fixtures/slack/expected-promoted.json"),
        );
    }

    #[test]
    fn test_failure_matches_expected_payload() {
        assert_payload(
            &rendered(&test_failed(), &github()),
            include_str!("../../../tests/fixtures/slack/expected-test-failed.json"),
        );
    }

    #[test]
    fn bake_failure_matches_expected_payload() {
        assert_payload(
            &rendered(&bake_failed(), &codecommit()),
            include_str!("../../../tests/fixtures/slack/expected-bake-failed.json"),
        );
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
    fn commit_links_follow_the_repository_host() {
        assert_eq!(
            codecommit().commit_url("eu-west-1", SHA).as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/codesuite/codecommit/repositories/gild-images/commit/a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1?region=eu-west-1")
        );
        assert_eq!(
            github().commit_url("eu-west-1", SHA).as_deref(),
            Some("https://github.com/example-org/gild-images/commit/a3f5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1")
        );
        // Nothing that could break out of `<url|text>` becomes a link.
        assert_eq!(codecommit().commit_url("us-east-1", "main|evil>"), None);
        assert_eq!(codecommit().commit_url("us-east-1/x", SHA), None);
        let sneaky = RepositoryLink::GitHub {
            owner: "a|b".into(),
            name: "c".into(),
        };
        assert_eq!(sneaky.commit_url("us-east-1", SHA), None);

        let mut body = promoted().json();
        body["commit"] = json!("not|a>sha");
        let payload = render_body(&body.to_string(), &github())
            .expect("renders")
            .to_json();
        let fields = payload["blocks"][1]["fields"].to_string();
        assert!(fields.contains("*Commit*\\n`not|a&gt;sha`"), "{fields}");

        assert!(RepositoryLink::github("owner").is_err());
        assert!(RepositoryLink::github("own er/x").is_err());
        assert!(RepositoryLink::github("o/..").is_err());
        assert!(RepositoryLink::codecommit("a/b").is_err());
        assert!(RepositoryLink::codecommit("").is_err());
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

    #[test]
    fn mrkdwn_is_escaped_so_names_cannot_ping_or_link() {
        let a = Announcement {
            family: "<!channel> & <https://evil.example|click>".into(),
            ..test_failed()
        };
        let mut payload = rendered(&a, &codecommit());
        // Plain text (the header) is shown as typed: Slack parses no
        // mentions or links in it.
        let header = payload["blocks"][0].take();
        let text = payload.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("<https://evil"), "{text}");
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
        payload["blocks"][0] = header;
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            ":x: <!channel> & <https://evil.example|click> FAILED at test"
        );
    }

    #[test]
    fn clipping_keeps_characters_and_entities_whole() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("🦀🦀🦀", 2), "🦀…");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(escape_clip("a&b", 7), "a&amp;b");
        assert_eq!(escape_clip("a&b", 6), "a…");
        assert_eq!(escape_clip("a&bc", 7), "a&amp;…");
        assert_eq!(escape_clip("<<<", 9), "&lt;&lt;…");
        assert_eq!(escape_clip("é<", 2), "é…");
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

    #[test]
    fn the_validator_notices_broken_payloads() {
        let mut payload = rendered(&promoted(), &codecommit());
        payload["blocks"][0]["text"]["type"] = json!("mrkdwn");
        payload["blocks"][1]["fields"][0]["text"] = json!("x".repeat(2001));
        payload["blocks"][2]["elements"][1]["action_id"] = json!("bake_log");
        payload["blocks"][2]["elements"][0]["url"] = json!("ftp://x");
        payload["text"] = json!("");
        assert_eq!(
            block_kit_problems(&payload).len(),
            5,
            "{:?}",
            block_kit_problems(&payload)
        );
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
}
