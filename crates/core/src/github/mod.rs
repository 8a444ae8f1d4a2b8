//! GitHub pushes: the webhook signature, and what a push payload means for
//! the planner. A GitHub push becomes the same [`Triage::Push`] as a
//! CodeCommit push, so both are planned by the same rules.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::plan::{DiffBase, Settings, Triage};

pub mod pull_request;

/// The `detail-type`-like name GitHub pushes carry in plans and logs.
pub const PUSH_EVENT: &str = "GitHub push";

/// Webhook payloads list at most this many commits before GitHub truncates;
/// at or past it the changed paths come from the compare API instead.
pub const LISTED_COMMITS_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not `sha256=` and 64 hex digits")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
    /// An empty secret would make the signature forgeable by anyone.
    #[error("no webhook secret is configured")]
    NoSecret,
}

/// Checks `X-Hub-Signature-256` against HMAC-SHA256 of the raw body under
/// each non-empty secret (current and, during rotation, previous). The
/// comparison is constant-time, and every secret is tried, so the timing
/// does not tell which one matched or how much of the signature did.
pub fn verify_signature(
    secrets: &[&[u8]],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let keys: Vec<&[u8]> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    if keys.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut signature = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut signature).map_err(|_| SignatureError::Malformed)?;
    let mut matched = false;
    for key in keys {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
            continue;
        };
        mac.update(body);
        matched |= mac.verify_slice(&signature).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The fields of a `push` delivery gild reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PushPayload {
    #[serde(rename = "ref")]
    pub reference: String,
    /// 40 hex digits, checked while parsing: both go into GitHub API URLs
    /// (compare, contents), so a signed but odd payload must not be able to
    /// steer the path or query.
    #[serde(deserialize_with = "sha40")]
    pub before: String,
    #[serde(deserialize_with = "sha40")]
    pub after: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    pub repository: PushRepository,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    /// Present in some payloads: commits in the push, when more than listed.
    #[serde(default)]
    pub size: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushRepository {
    pub full_name: String,
    #[serde(default)]
    pub fork: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PushCommit {
    pub id: String,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

/// A git commit id as GitHub sends it: exactly 40 hex digits (the zero SHA
/// included, for created and deleted branches).
pub fn is_sha40(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sha40<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let sha = String::deserialize(deserializer)?;
    if is_sha40(&sha) {
        Ok(sha)
    } else {
        Err(serde::de::Error::custom(format!(
            "`{}` is not a 40-hex-digit commit id",
            sha.escape_debug()
        )))
    }
}

fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// What a push means: the triage, and the changed paths when the payload
/// lists them all (else the caller asks the compare API).
pub fn triage_push(
    push: &PushPayload,
    settings: &Settings,
    repository: &str,
) -> (Triage, Option<Vec<String>>) {
    let ignore = |reason: String| (Triage::Ignore(reason), None);
    if !push.repository.full_name.eq_ignore_ascii_case(repository) {
        return ignore(format!(
            "repository `{}` is not the images repository `{repository}`",
            push.repository.full_name
        ));
    }
    if push.repository.fork {
        return ignore(format!("`{}` is a fork", push.repository.full_name));
    }
    if let Some(tag) = push.reference.strip_prefix("refs/tags/") {
        return ignore(format!(
            "tag `{tag}` ignored: only pushes to the branch `{}` build images",
            settings.tracked_branch
        ));
    }
    let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
        return ignore(format!("ref `{}` is not a branch", push.reference));
    };
    if branch != settings.tracked_branch {
        return ignore(format!(
            "branch `{branch}` is not the tracked branch `{}`",
            settings.tracked_branch
        ));
    }
    if push.deleted || is_zero_sha(&push.after) {
        return ignore(format!("branch `{branch}` was deleted: nothing to build"));
    }
    let base = if push.created || is_zero_sha(&push.before) {
        DiffBase::EmptyTree
    } else {
        DiffBase::Commit(push.before.clone())
    };
    let complete = base != DiffBase::EmptyTree
        && !push.forced
        && push.commits.len() < LISTED_COMMITS_LIMIT
        && push.size.is_none_or(|size| size <= push.commits.len());
    let changed = complete.then(|| {
        let mut paths: Vec<String> = push
            .commits
            .iter()
            .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
            .cloned()
            .collect();
        paths.sort();
        paths.dedup();
        paths
    });
    (
        Triage::Push {
            branch: branch.to_owned(),
            commit: push.after.clone(),
            base,
        },
        changed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = include_bytes!("../../../../tests/events/github-push.body.json");
    const SIGNATURE: &str =
        "sha256=1fe84bdaff65c51a36b71dfa62a49e6a95e0ffe6cbc2c4d6a5a8b870f58651b1";

    #[test]
    fn sample_delivery_verifies_with_its_secret() {
        assert_eq!(
            verify_signature(&[b"gild-sample-secret"], BODY, Some(SIGNATURE)),
            Ok(())
        );
        // Rotation: the previous secret still works, in either slot.
        assert_eq!(
            verify_signature(
                &[b"new-secret", b"gild-sample-secret"],
                BODY,
                Some(SIGNATURE)
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_truncated_and_unsigned_bodies_are_rejected() {
        let secret: &[&[u8]] = &[b"gild-sample-secret"];
        assert_eq!(
            verify_signature(&[b"wrong"], BODY, Some(SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, &BODY[..BODY.len() - 1], Some(SIGNATURE)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(secret, BODY, None),
            Err(SignatureError::Missing)
        );
        for bad in ["sha1=abc", "sha256=xyz", "sha256=", &SIGNATURE[..40]] {
            assert_eq!(
                verify_signature(secret, BODY, Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify_signature(&[b""], BODY, Some(SIGNATURE)),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify_signature(&[], BODY, Some(SIGNATURE)),
            Err(SignatureError::NoSecret)
        );
    }

    fn push() -> PushPayload {
        serde_json::from_slice(BODY).expect("sample push parses")
    }

    fn settings() -> Settings {
        Settings::default()
    }

    #[test]
    fn sample_push_lists_its_paths() {
        let p = push();
        let (triage, changed) = triage_push(&p, &settings(), "acme/platform-images");
        assert!(
            matches!(triage, Triage::Push { ref branch, ref commit, base: DiffBase::Commit(_) } if branch == "main" && commit == &p.after)
        );
        let changed = changed.expect("complete list");
        assert!(!changed.is_empty());
    }

    #[test]
    fn ignored_pushes() {
        let s = settings();
        let mut p = push();
        p.reference = "refs/tags/v1".into();
        assert!(
            matches!(triage_push(&p, &s, "acme/platform-images").0, Triage::Ignore(r) if r.contains("tag `v1`"))
        );
        let mut p = push();
        p.reference = "refs/heads/feature".into();
        assert!(
            matches!(triage_push(&p, &s, "acme/platform-images").0, Triage::Ignore(r) if r.contains("not the tracked"))
        );
        let mut p = push();
        p.deleted = true;
        p.after = "0".repeat(40);
        assert!(
            matches!(triage_push(&p, &s, "acme/platform-images").0, Triage::Ignore(r) if r.contains("deleted"))
        );
        let mut p = push();
        p.repository.fork = true;
        assert!(
            matches!(triage_push(&p, &s, "acme/platform-images").0, Triage::Ignore(r) if r.contains("fork"))
        );
        let p = push();
        assert!(
            matches!(triage_push(&p, &s, "someone/else").0, Triage::Ignore(r) if r.contains("not the images repository"))
        );
    }

    #[test]
    fn truncated_forced_or_new_branch_pushes_need_the_api() {
        let s = settings();
        let mut p = push();
        let first = p.commits.first().cloned().expect("sample has commits");
        p.commits = vec![first; LISTED_COMMITS_LIMIT];
        assert_eq!(triage_push(&p, &s, "acme/platform-images").1, None);
        let mut p = push();
        p.forced = true;
        assert_eq!(triage_push(&p, &s, "acme/platform-images").1, None);
        let mut p = push();
        p.size = Some(p.commits.len() + 1);
        assert_eq!(triage_push(&p, &s, "acme/platform-images").1, None);
        let mut p = push();
        p.created = true;
        p.before = "0".repeat(40);
        let (triage, changed) = triage_push(&p, &s, "acme/platform-images");
        assert!(matches!(
            triage,
            Triage::Push {
                base: DiffBase::EmptyTree,
                ..
            }
        ));
        assert_eq!(changed, None);
    }
}
