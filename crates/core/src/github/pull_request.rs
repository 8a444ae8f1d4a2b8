//! GitHub `pull_request` deliveries: what one means for gild.
//!
//! The fields read are those of GitHub's webhook reference for the
//! `pull_request` event: `action`, `number`, `label` (on `labeled`), and of
//! `pull_request`: `head`/`base` (`sha`, `ref`, `repo.full_name`; `head.repo`
//! is null once a fork is deleted), `draft`, `labels[].name`, `merged`,
//! `html_url`. GitHub sends no list of changed files: the trigger asks the
//! pull request's files API.

use serde::Deserialize;

use crate::plan::{Settings, Triage};
use crate::pull_request::{
    is_commit, valid_repository, Host, PullRequest, PullRequestTriage, ReviewPolicy,
};

/// The name GitHub pull requests carry in plans and logs.
pub const PULL_REQUEST_EVENT: &str = "GitHub pull_request";

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestPayload {
    pub action: String,
    pub number: u64,
    pub pull_request: PullRequestBody,
    pub repository: Repo,
    /// The label just added, on `labeled`.
    #[serde(default)]
    pub label: Option<Label>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestBody {
    pub head: Side,
    pub base: Side,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub merged: bool,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Side {
    pub sha: String,
    #[serde(rename = "ref")]
    pub reference: String,
    /// Null when the fork the head came from was deleted.
    #[serde(default)]
    pub repo: Option<Repo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Repo {
    pub full_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub name: String,
}

/// The actions that ask for a validation of the head.
const VALIDATE: [&str; 4] = ["opened", "synchronize", "reopened", "ready_for_review"];

/// What a `pull_request` delivery means. `repository` is the images
/// repository (`owner/name`).
pub fn triage_pull_request(
    payload: &PullRequestPayload,
    settings: &Settings,
    policy: &ReviewPolicy,
    repository: &str,
) -> Triage {
    let ignore = |reason: String| Triage::Ignore(reason);
    let body = &payload.pull_request;
    if !payload
        .repository
        .full_name
        .eq_ignore_ascii_case(repository)
    {
        return ignore(format!(
            "repository `{}` is not the images repository `{repository}`",
            payload.repository.full_name
        ));
    }
    // Both go into API URLs and the dedupe key: refuse anything odd before
    // it can steer a path.
    if !valid_repository(&payload.repository.full_name) {
        return ignore(format!(
            "repository name `{}` is not `owner/name`",
            payload.repository.full_name.escape_debug()
        ));
    }
    for (side, sha) in [("head", &body.head.sha), ("base", &body.base.sha)] {
        if !is_commit(sha) {
            return ignore(format!(
                "pull request #{}: {side}.sha `{}` is not a 40-hex-digit commit id",
                payload.number,
                sha.escape_debug()
            ));
        }
    }
    if body.base.reference != settings.tracked_branch {
        return ignore(format!(
            "pull request #{} is into `{}`, not the tracked branch `{}`: only changes to `{}` are validated",
            payload.number, body.base.reference, settings.tracked_branch, settings.tracked_branch
        ));
    }
    let pull_request = PullRequest {
        host: Host::GitHub,
        repository: payload.repository.full_name.clone(),
        number: payload.number,
        head: body.head.sha.to_ascii_lowercase(),
        destination: body.base.sha.to_ascii_lowercase(),
        merge_base: None,
        revision: None,
        url: body.html_url.clone().filter(|u| u.starts_with("https://")),
    };
    let action = payload.action.as_str();
    if action == "closed" {
        return Triage::PullRequest(PullRequestTriage::Close(pull_request));
    }
    let labelled_now = action == "labeled"
        && payload
            .label
            .as_ref()
            .is_some_and(|l| l.name == policy.trusted_label);
    if !VALIDATE.contains(&action) && !labelled_now {
        return ignore(format!(
            "pull request #{}: action `{action}` changes no code (gild validates on {}, and cleans up on closed)",
            payload.number,
            VALIDATE.join(", ")
        ));
    }
    if body.draft && !policy.validate_drafts {
        return ignore(format!(
            "pull request #{} is a draft: skipped until it is ready for review (the stack can validate drafts)",
            payload.number
        ));
    }
    let head_repo = body.head.repo.as_ref().map(|r| r.full_name.as_str());
    let from_fork = !head_repo.is_some_and(|h| h.eq_ignore_ascii_case(repository));
    if from_fork {
        let trusted = body.labels.iter().any(|l| l.name == policy.trusted_label);
        if !trusted {
            return Triage::PullRequest(PullRequestTriage::Refuse {
                // What to do first: a status description is cut at 140
                // characters, and the label is what the reader needs.
                reason: format!(
                    "from a fork ({}): a maintainer adds the label `{}` to validate it (its code would run with the bake role's permissions)",
                    head_repo.unwrap_or("deleted"),
                    policy.trusted_label
                ),
                pull_request,
            });
        }
    } else if labelled_now {
        // The label matters only for forks; the pull request's own events
        // already validated this head.
        return ignore(format!(
            "pull request #{}: label `{}` added to a pull request from the images repository itself: nothing to do",
            payload.number, policy.trusted_label
        ));
    }
    Triage::PullRequest(PullRequestTriage::Validate(pull_request))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = include_bytes!("../../../../tests/events/github-pull-request.body.json");
    const REPO: &str = "acme-platform/images";

    fn payload(edit: impl FnOnce(&mut serde_json::Value)) -> PullRequestPayload {
        let mut value: serde_json::Value = serde_json::from_slice(BODY).expect("sample is JSON");
        edit(&mut value);
        serde_json::from_value(value).expect("payload shape")
    }

    fn triage(p: &PullRequestPayload) -> Triage {
        triage_pull_request(p, &Settings::default(), &ReviewPolicy::default(), REPO)
    }

    #[test]
    fn the_sample_opened_pull_request_is_validated_at_its_head() {
        let Triage::PullRequest(PullRequestTriage::Validate(pr)) = triage(&payload(|_| {})) else {
            panic!("validate expected");
        };
        assert_eq!(pr.number, 17);
        assert_eq!(pr.head, "8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e");
        assert_eq!(pr.destination, "3f2d1c0b9a8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c");
        assert_eq!(
            pr.dedupe_key(),
            "pr:acme-platform/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e"
        );
    }

    #[test]
    fn a_fork_is_refused_until_a_maintainer_labels_it() {
        let fork = |v: &mut serde_json::Value| {
            v["pull_request"]["head"]["repo"]["full_name"] = "mallory/images".into();
        };
        let refused = triage(&payload(fork));
        assert!(
            matches!(&refused, Triage::PullRequest(PullRequestTriage::Refuse { reason, .. }) if reason.contains("gild:validate") && reason.contains("mallory/images")),
            "{refused:?}"
        );
        let labelled = payload(|v| {
            fork(v);
            v["action"] = "labeled".into();
            v["label"] = serde_json::json!({"name": "gild:validate"});
            v["pull_request"]["labels"] = serde_json::json!([{"name": "gild:validate"}]);
        });
        assert!(matches!(
            triage(&labelled),
            Triage::PullRequest(PullRequestTriage::Validate(_))
        ));
        // A deleted fork's head has no repository at all.
        let deleted = payload(|v| v["pull_request"]["head"]["repo"] = serde_json::Value::Null);
        assert!(matches!(
            triage(&deleted),
            Triage::PullRequest(PullRequestTriage::Refuse { .. })
        ));
    }

    #[test]
    fn drafts_are_skipped_unless_the_stack_validates_them() {
        let draft = payload(|v| v["pull_request"]["draft"] = true.into());
        assert!(matches!(triage(&draft), Triage::Ignore(r) if r.contains("draft")));
        let policy = ReviewPolicy {
            validate_drafts: true,
            ..ReviewPolicy::default()
        };
        assert!(matches!(
            triage_pull_request(&draft, &Settings::default(), &policy, REPO),
            Triage::PullRequest(PullRequestTriage::Validate(_))
        ));
    }

    #[test]
    fn closed_cleans_up_merged_or_not() {
        for merged in [true, false] {
            let closed = payload(|v| {
                v["action"] = "closed".into();
                v["pull_request"]["merged"] = merged.into();
            });
            assert!(matches!(
                triage(&closed),
                Triage::PullRequest(PullRequestTriage::Close(_))
            ));
        }
    }

    #[test]
    fn other_actions_branches_and_odd_values_build_nothing() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 5] = [
            ("edited", |v| v["action"] = "edited".into()),
            ("not the tracked", |v| {
                v["pull_request"]["base"]["ref"] = "release".into()
            }),
            ("not the images repository", |v| {
                v["repository"]["full_name"] = "acme-platform/other".into()
            }),
            ("commit id", |v| {
                v["pull_request"]["head"]["sha"] = "../../x".into()
            }),
            ("label `gild:validate` added", |v| {
                v["action"] = "labeled".into();
                v["label"] = serde_json::json!({"name": "gild:validate"});
            }),
        ];
        for (why, edit) in cases {
            let t = triage(&payload(edit));
            assert!(
                matches!(&t, Triage::Ignore(r) if r.contains(why)),
                "{why}: {t:?}"
            );
        }
    }
}
