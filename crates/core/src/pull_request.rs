//! Pull requests: which one, which head, and what gild does with it.
//!
//! A pull request's head is validated as *candidates*, one per affected
//! family, under the dedupe key `pr:<repository>#<number>:<head>`: a
//! redelivered event finds its candidates claimed, and a new head has new
//! keys, so the older head's candidates can be told apart and superseded.
//! GitHub deliveries and CodeCommit events both come down to a
//! [`PullRequest`] and a [`PullRequestTriage`]; planning is the same for both.
//!
//! This module imports only the vocabulary, so the ledger, the events and
//! the planner can all speak of pull requests without a cycle.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::PullRequestChange;

/// Where the pull request lives; it decides how results are reported
/// (commit statuses and a comment on GitHub; a comment and an approval on
/// CodeCommit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    #[serde(rename = "github")]
    GitHub,
    #[serde(rename = "codecommit")]
    CodeCommit,
}

/// One head of one pull request, with what reporting on it needs. Stored
/// with each candidate in the ledger, since the completion handlers that
/// report see only the build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PullRequest {
    pub host: Host,
    /// GitHub `owner/name`, or the CodeCommit repository's name.
    pub repository: String,
    pub number: u64,
    /// The source branch's tip: what the candidates bake.
    pub head: String,
    /// The destination branch's tip when the event was sent.
    pub destination: String,
    /// The commit both branches share, when the event tells it (CodeCommit
    /// asks `GetPullRequest`); changed files are computed from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_base: Option<String>,
    /// CodeCommit's revision id, which approvals name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The pull request's page, for links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Prefix of every candidate's dedupe key.
pub const DEDUPE_PREFIX: &str = "pr:";

impl PullRequest {
    /// `pr:<repository>#<number>:<head>`: one candidate per family and head.
    pub fn dedupe_key(&self) -> String {
        format!("{}{}", self.key_prefix(), self.head)
    }

    /// `<repository>#<number>`: what the ledger finds every head's
    /// candidates by.
    pub fn id(&self) -> String {
        format!("{}#{}", self.repository, self.number)
    }

    /// The part of the dedupe key every head of this pull request shares.
    pub fn key_prefix(&self) -> String {
        format!("{DEDUPE_PREFIX}{}:", self.id())
    }

    /// The value of the `gild:candidate` tag on its images and snapshots.
    pub fn candidate_tag(&self) -> String {
        format!("pr-{}", self.number)
    }

    pub fn short_head(&self) -> &str {
        self.head.get(..7).unwrap_or(&self.head)
    }
}

impl fmt::Display for PullRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{} at {}",
            self.repository,
            self.number,
            self.short_head()
        )
    }
}

/// The head a candidate dedupe key names, and the key's prefix; `None`
/// for any other key.
pub fn split_dedupe_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(DEDUPE_PREFIX)?;
    let (_, head) = rest.rsplit_once(':')?;
    let prefix = key.get(..key.len() - head.len())?;
    Some((prefix, head))
}

/// What the stack allows for pull requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicy {
    /// The label a maintainer adds to a fork's pull request to have it
    /// validated anyway.
    pub trusted_label: String,
    /// Whether draft pull requests are validated.
    pub validate_drafts: bool,
}

/// How long a passed candidate's image is kept by default: not at all.
pub const DEFAULT_CANDIDATE_TTL_HOURS: i64 = 0;

/// The label's default, defined once (the stack's parameter default too).
pub const DEFAULT_TRUSTED_LABEL: &str = "gild:validate";

impl Default for ReviewPolicy {
    fn default() -> Self {
        ReviewPolicy {
            trusted_label: DEFAULT_TRUSTED_LABEL.into(),
            validate_drafts: false,
        }
    }
}

/// What a pull-request event asks of gild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullRequestTriage {
    /// Validate this head: read its changed files and its catalog, then
    /// supersede older heads and start candidates.
    Validate(PullRequest),
    /// Build nothing and say why on the head (a fork without the label).
    Refuse {
        pull_request: PullRequest,
        reason: String,
    },
    /// The pull request was closed or merged: remove what it made.
    Close(PullRequest),
}

impl PullRequestTriage {
    pub fn pull_request(&self) -> &PullRequest {
        match self {
            PullRequestTriage::Validate(pr)
            | PullRequestTriage::Close(pr)
            | PullRequestTriage::Refuse {
                pull_request: pr, ..
            } => pr,
        }
    }
}

/// A repository name as it may appear in API paths and keys: GitHub's
/// `owner/name` or a CodeCommit name (`[\w.-]+`, at most 100 characters).
pub fn valid_repository(name: &str) -> bool {
    let segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    match name.split_once('/') {
        Some((owner, repo)) => segment(owner) && segment(repo),
        None => segment(name),
    }
}

/// A full commit id: 40 hex digits (what both hosts send).
pub fn is_commit(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a CodeCommit pull-request event asks; `Err(reason)` when nothing.
/// `repository` is the images repository (`None`: any).
pub fn triage_codecommit(
    change: &PullRequestChange,
    tracked_branch: &str,
    repository: Option<&str>,
) -> Result<PullRequestTriage, String> {
    let [name] = change.repository_names.as_slice() else {
        return Err(format!(
            "pull request event names {} repositories, not one",
            change.repository_names.len()
        ));
    };
    if let Some(images) = repository {
        if name != images {
            return Err(format!(
                "repository `{name}` is not the images repository `{images}`"
            ));
        }
    }
    if !valid_repository(name) || name.contains('/') {
        return Err(format!(
            "repository name `{}` is not a CodeCommit name",
            name.escape_debug()
        ));
    }
    let number: u64 = change.pull_request_id.parse().map_err(|_| {
        format!(
            "pullRequestId `{}` is not a number",
            change.pull_request_id.escape_debug()
        )
    })?;
    let into = change
        .destination_reference
        .strip_prefix("refs/heads/")
        .unwrap_or(&change.destination_reference);
    if into != tracked_branch {
        return Err(format!(
            "pull request {number} is into `{into}`, not the tracked branch `{tracked_branch}`: only changes to `{tracked_branch}` are validated"
        ));
    }
    for (field, sha) in [
        ("sourceCommit", &change.source_commit),
        ("destinationCommit", &change.destination_commit),
    ] {
        if !is_commit(sha) {
            return Err(format!(
                "pull request {number}: {field} `{}` is not a 40-hex-digit commit id",
                sha.escape_debug()
            ));
        }
    }
    let pull_request = PullRequest {
        host: Host::CodeCommit,
        repository: name.clone(),
        number,
        head: change.source_commit.to_ascii_lowercase(),
        destination: change.destination_commit.to_ascii_lowercase(),
        merge_base: None,
        revision: change.revision_id.clone().filter(|r| {
            !r.is_empty() && r.len() <= 128 && r.bytes().all(|b| b.is_ascii_alphanumeric())
        }),
        url: None,
    };
    let open = change.pull_request_status.eq_ignore_ascii_case("open");
    match change.event.as_str() {
        "pullRequestMergeStatusUpdated" if change.is_merged || !open => {
            Ok(PullRequestTriage::Close(pull_request))
        }
        "pullRequestMergeStatusUpdated" => Err(format!(
            "pull request {number}: merge status updated, not merged: nothing to do"
        )),
        "pullRequestStatusChanged" if !open => Ok(PullRequestTriage::Close(pull_request)),
        "pullRequestCreated" | "pullRequestSourceBranchUpdated" | "pullRequestStatusChanged"
            if open =>
        {
            Ok(PullRequestTriage::Validate(pull_request))
        }
        other => Err(format!(
            "pull request {number}: `{other}` while {}: nothing to do",
            change.pull_request_status
        )),
    }
}

/// A GitHub pull request's head for tests: `acme/images#17`.
#[cfg(any(test, feature = "fakes"))]
pub fn sample() -> PullRequest {
    PullRequest {
        host: Host::GitHub,
        repository: "acme/images".into(),
        number: 17,
        head: "8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e".into(),
        destination: "3f2d1c0b9a8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c".into(),
        merge_base: None,
        revision: None,
        url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr() -> PullRequest {
        sample()
    }

    #[test]
    fn dedupe_keys_name_the_head_and_share_a_prefix() {
        let pr = pr();
        assert_eq!(
            pr.dedupe_key(),
            "pr:acme/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e"
        );
        let key = pr.dedupe_key();
        let (prefix, head) = split_dedupe_key(&key).expect("a candidate key");
        assert_eq!(prefix, pr.key_prefix());
        assert_eq!(head, pr.head);
        assert_eq!(split_dedupe_key("push:8c1e5a7"), None);
        assert_eq!(pr.candidate_tag(), "pr-17");
    }

    #[test]
    fn repository_names_cannot_steer_a_path() {
        assert!(valid_repository("acme/images"));
        assert!(valid_repository("platform-images"));
        for bad in ["", "a/b/c", "../x", "a/..", "a b", "a?x=1", "a/b#1", "/a"] {
            assert!(!valid_repository(bad), "{bad}");
        }
    }

    #[test]
    fn stored_records_round_trip() {
        let json = serde_json::to_string(&pr()).expect("serialises");
        assert!(json.contains(r#""host":"github""#), "{json}");
        let back: PullRequest = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, pr());
    }
}
