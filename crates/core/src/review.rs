//! What reviewers see on a pull request: one commit status per family,
//! one comment gild edits in place, and (on CodeCommit) an approval.
//!
//! Everything here is decided from the candidates' ledger records, so any
//! handler that moved a candidate can render the whole report again, and
//! the last one to write leaves it complete: reporting is idempotent, and
//! a redelivered event rewrites the same text.

use serde::Deserialize;

use crate::ledger::BakeRecord;
use crate::pull_request::PullRequest;
use crate::state::{BakeState, Stage};

/// The hidden first line that finds gild's comment among the others.
pub const COMMENT_MARKER: &str = "<!-- gild:report -->";

/// GitHub refuses a status description over 140 characters.
pub const DESCRIPTION_LIMIT: usize = 140;

/// Suites kept from one test build: more would not fit a comment row.
const SUITES_LIMIT: usize = 20;

/// A commit status's state, in GitHub's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    /// gild could not judge the change: refused, superseded, or its own
    /// machinery failed (not the change's tests).
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// One commit status on the pull request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `gild/<family>`, or `gild` for the pull request as a whole.
    pub context: String,
    pub state: StatusState,
    pub description: String,
    pub target_url: Option<String>,
}

/// The status context of a family.
pub fn context(family: &str) -> String {
    format!("gild/{family}")
}

/// One JUnit suite of a test build, as test.yml exports it in
/// `GILD_TEST_SUITES` (a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Suite {
    /// `family` or `consumer`.
    pub suite: String,
    pub name: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub tests: u32,
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub skipped: u32,
    #[serde(default)]
    pub seconds: u64,
    /// A few failing checks' names.
    #[serde(default)]
    pub failed: Vec<String>,
}

impl Suite {
    pub fn is_consumer(&self) -> bool {
        self.suite == "consumer"
    }

    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

/// The suites of a test build; empty when it exported none or something
/// unreadable (the text comes from the test instance: it is data, and at
/// worst it is not shown).
pub fn parse_suites(raw: Option<&str>) -> Vec<Suite> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut suites: Vec<Suite> = serde_json::from_str(raw).unwrap_or_default();
    suites.truncate(SUITES_LIMIT);
    suites
}

/// Why a test build failed, in a reviewer's words: the failing consumers
/// first (named with their owners), then the family's own suite.
pub fn test_failure(family: &str, suites: &[Suite]) -> Option<String> {
    let failing: Vec<String> = suites
        .iter()
        .filter(|s| !s.passed())
        .map(|s| {
            let who = if s.is_consumer() {
                format!(
                    "{} ({})",
                    s.name,
                    s.owner.as_deref().unwrap_or("no owner named")
                )
            } else {
                format!("{family}'s own tests")
            };
            match s.failed.first() {
                Some(check) => format!("{who} failed: {check}"),
                None => format!("{who} failed {} check(s)", s.failures),
            }
        })
        .collect();
    (!failing.is_empty()).then(|| failing.join("; "))
}

/// The status of one family's candidate.
pub fn status(record: &BakeRecord, target_url: Option<String>) -> Status {
    let image = record.image.as_deref().unwrap_or("its image");
    let suites = parse_suites(record.suites.as_deref());
    let (state, description) = match record.state {
        BakeState::Requested => (StatusState::Pending, "requested".to_owned()),
        BakeState::Queued => (
            StatusState::Pending,
            "waiting for a CodeBuild slot".to_owned(),
        ),
        // Candidates do not wait for a parent (the table's row is
        // production-only); kept total for the status of any record.
        BakeState::Waiting => (
            StatusState::Pending,
            "waiting for its parent's image".to_owned(),
        ),
        BakeState::Baking => (
            StatusState::Pending,
            "baking the candidate image".to_owned(),
        ),
        BakeState::Baked | BakeState::Testing => (
            StatusState::Pending,
            format!("testing {image} with its consumers"),
        ),
        BakeState::Validating => (
            StatusState::Pending,
            format!("testing the consumers on the promoted {image}"),
        ),
        BakeState::Validated => (StatusState::Pending, format!("{image} passed; reporting")),
        BakeState::Reported => {
            let tests: u32 = suites.iter().map(|s| s.tests).sum();
            (
                StatusState::Success,
                format!(
                    "{image} passed {} suite(s), {tests} check(s)",
                    suites.len().max(1)
                ),
            )
        }
        BakeState::Superseded => (
            StatusState::Error,
            record
                .reason
                .clone()
                .unwrap_or_else(|| "superseded".to_owned()),
        ),
        BakeState::Failed => {
            let reason = record.reason.clone().unwrap_or_else(|| "failed".into());
            match record.failed_stage {
                Some(Stage::Test) => match test_failure(&record.key.family, &suites) {
                    Some(why) => (StatusState::Failure, why),
                    None => (StatusState::Failure, format!("tests failed: {reason}")),
                },
                Some(Stage::Bake) => (StatusState::Failure, format!("bake failed: {reason}")),
                _ => (StatusState::Error, reason),
            }
        }
        // A production bake's states: no candidate reaches them.
        BakeState::Promoted => (StatusState::Error, "promoted".to_owned()),
    };
    Status {
        context: context(&record.key.family),
        state,
        description: clip(&description, DESCRIPTION_LIMIT),
        target_url,
    }
}

/// The status that says why a pull request is not validated (a fork).
pub fn refusal(reason: &str) -> Status {
    Status {
        context: "gild".to_owned(),
        state: StatusState::Error,
        description: clip(&format!("not validated: {reason}"), DESCRIPTION_LIMIT),
        target_url: None,
    }
}

/// CodeCommit's approval: approve once every candidate passed, revoke as
/// soon as one failed; `None` while any is still open.
pub fn approval(records: &[BakeRecord]) -> Option<bool> {
    if records
        .iter()
        .any(|r| matches!(r.state, BakeState::Failed | BakeState::Superseded))
    {
        return Some(false);
    }
    (!records.is_empty() && records.iter().all(|r| r.state == BakeState::Reported)).then_some(true)
}

/// The comment: one row per family of the head, its image, each suite with
/// its counts and duration, and what its packages changed against the
/// family's promoted image. `records` are the head's candidates.
pub fn comment(
    pr: &PullRequest,
    records: &[BakeRecord],
    links: &dyn Fn(&BakeRecord) -> Option<String>,
) -> String {
    let mut rows: Vec<&BakeRecord> = records.iter().collect();
    rows.sort_by(|a, b| a.key.family.cmp(&b.key.family));
    let mut out = format!(
        "{COMMENT_MARKER}\n### gild: images for {}\n\n",
        md(pr.short_head())
    );
    if rows.is_empty() {
        out.push_str(
            "This change touches no image family and no consumer's tests: nothing to validate.\n",
        );
        return out;
    }
    out.push_str(
        "| family | result | image | suites | packages vs promoted |\n|---|---|---|---|---|\n",
    );
    for record in rows {
        let status = status(record, None);
        let mark = match status.state {
            StatusState::Success => "✅ passed",
            StatusState::Failure => "❌ failed",
            StatusState::Error => "⚠️ not judged",
            StatusState::Pending => "⏳ running",
        };
        let image = match (record.image.as_deref(), links(record)) {
            (Some(image), Some(link)) => format!("[`{}`]({link})", md(image)),
            (Some(image), None) => format!("`{}`", md(image)),
            (None, _) => "—".to_owned(),
        };
        let suites = parse_suites(record.suites.as_deref());
        let suites = if suites.is_empty() {
            md(&status.description)
        } else {
            suites
                .iter()
                .map(|s| {
                    let who = if s.is_consumer() {
                        format!(
                            "{} ({})",
                            md(&s.name),
                            md(s.owner.as_deref().unwrap_or("?"))
                        )
                    } else {
                        md(&s.name)
                    };
                    let mark = if s.passed() { "✅" } else { "❌" };
                    let mut cell = format!(
                        "{mark} {who}: {}/{} passed, {} s",
                        s.tests.saturating_sub(s.failures),
                        s.tests,
                        s.seconds
                    );
                    if let Some(check) = s.failed.first() {
                        cell.push_str(&format!(" — `{}`", md(check)));
                    }
                    cell
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let packages = match &record.packages {
            Some(changes) => md(&clip(&changes.to_string(), PACKAGES_CHARS)),
            None => "—".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {mark} | {image} | {suites} | {packages} |\n",
            md(&record.key.family)
        ));
    }
    out.push_str("\nCandidates are never promoted: merging starts the production bakes.\n");
    out
}

/// The packages cell's longest text: the summary names five changes at
/// most, so this cuts only odd names, and keeps the table readable.
const PACKAGES_CHARS: usize = 200;

/// Text from events and test instances, made inert in a Markdown table:
/// no HTML, no table breaks, no code-span breaks, one line.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().take(200) {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push('\''),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// At most `limit` characters, ending in `…` when cut.
fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
