//! A [`Notice`] as a Slack message: a header with the outcome, a section
//! with the facts as fields, a section with the package changes (when the
//! announcement has them), link buttons, the bake's key and time, and a
//! plain `text` fallback for notifications.

use gild_core::announce::short_commit;
use gild_core::vocabulary::Trigger;
use serde::Serialize;
use serde_json::{json, Value};

use crate::blockkit::{is_link, limits};
use crate::link::{ec2_console_url, RepositoryLink};
use crate::mrkdwn::{clip, escape_clip, one_line};
use crate::notice::{Notice, NoticeError, NoticeOutcome, NoticePackages};

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
/// with the facts as fields, the package changes, link buttons, and the
/// bake's key and time.
pub fn render(notice: &Notice, link: &RepositoryLink) -> SlackMessage {
    let mut blocks = vec![header(notice), facts(notice, link)];
    blocks.extend(packages(notice));
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

fn header(notice: &Notice) -> Value {
    let text = match notice.outcome {
        NoticeOutcome::Promoted => match &notice.image {
            Some(image) => format!(":white_check_mark: {} {image} ready", notice.family),
            None => format!(":white_check_mark: {} ready", notice.family),
        },
        NoticeOutcome::Failed => match notice.stage() {
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

/// The notification line: the email's subject, and the reason of a failure;
/// then, on a line of its own, the package changes.
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
            let at = notice
                .stage()
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
    let packages = package_line(notice)
        .map(|line| format!("\nPackages: {}", escape_clip(&line, FALLBACK_PACKAGES)))
        .unwrap_or_default();
    let room = limits::FALLBACK_TEXT - packages.chars().count();
    format!("{}{packages}", escape_clip(&text, room))
}

/// Characters of the fallback the package summary may take, so that a long
/// reason still leaves it room and a long summary the subject.
const FALLBACK_PACKAGES: usize = 1000;

/// Characters the diff's `s3://` URI may take in the packages section (the
/// `versus` image 200); the summary has the rest of the section's
/// `limits::SECTION_TEXT`, at least 1500.
const PACKAGES_DETAIL: usize = 1000;

/// The package summary as one line, when the announcement has one.
fn package_line(notice: &Notice) -> Option<String> {
    notice
        .packages
        .as_ref()
        .and_then(NoticePackages::line)
        .map(|line| one_line(&line))
}

/// The pre-signed link to the whole package diff, when a button can carry
/// it: https only (S3 signs https links; anything else is not gild's), and
/// within Block Kit's URL limit (a cut link would be a broken one).
fn diff_link(packages: &NoticePackages) -> Option<&str> {
    packages
        .diff_url
        .as_deref()
        .filter(|url| url.starts_with("https://") && is_link(url))
}

/// The package changes against the family's promoted image, as the email
/// gives them: `*Packages* <summary>`, the image compared with, and where
/// the whole diff is. `None` when the announcement has nothing to show.
fn packages(notice: &Notice) -> Option<Value> {
    let packages = notice.packages.as_ref()?;
    let line = package_line(notice)?;
    let detail = |text: &str| escape_clip(&one_line(text), PACKAGES_DETAIL);
    let mut tail = String::new();
    if let Some(against) = &packages.against {
        tail.push_str(&format!(
            "\nversus `{}`, the family's promoted image when it was baked",
            escape_clip(&one_line(against), 200)
        ));
    }
    let button = diff_link(packages).is_some();
    match (button, &packages.diff_s3) {
        (true, Some(s3)) => tail.push_str(&format!(
            "\nWhole diff: *Package diff* below (the link expires), or `{}`",
            detail(s3)
        )),
        (true, None) => tail.push_str("\nWhole diff: *Package diff* below (the link expires)"),
        (false, Some(s3)) => tail.push_str(&format!("\nWhole diff: `{}`", detail(s3))),
        (false, None) => {}
    }
    // A status this version does not know is shown, not dropped.
    let head = match packages.unknown_status() {
        Some(status) => format!("*Packages* ({}) ", escape_clip(&one_line(status), 100)),
        None => "*Packages* ".to_owned(),
    };
    let room = limits::SECTION_TEXT.saturating_sub(head.chars().count() + tail.chars().count());
    Some(json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": format!("{head}{}{tail}", escape_clip(&line, room)),
        },
    }))
}

fn summary(notice: &Notice) -> String {
    let family = escape_clip(&notice.family, 500);
    let parameter = escape_clip(&notice.parameter, 500);
    let image = notice
        .image
        .as_deref()
        .map(|i| format!(" `{}`", escape_clip(i, 200)))
        .unwrap_or_default();
    match (notice.outcome, notice.stage()) {
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
        Some(Trigger::PullRequest) => "pull request candidate".into(),
        Some(Trigger::Parent) => "its parent's new image".into(),
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
        if let Some(stage) = notice.stage() {
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
    if let Some(url) = notice.packages.as_ref().and_then(diff_link) {
        buttons.extend(button("package_diff", "Package diff", url));
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

#[cfg(test)]
mod tests;
