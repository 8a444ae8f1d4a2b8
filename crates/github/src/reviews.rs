//! Where a pull request on GitHub is reviewed: one commit status per family
//! on its head, one comment gild edits in place, and the files it changes.
//!
//! The repository and number come from the [`PullRequest`], which the core
//! validated; every URL is still built from percent-encoded path segments,
//! so no field of a delivery can change which endpoint is called or add a
//! query parameter.

use std::sync::Mutex;

use gild_core::ports::{PortError, PortResult, Reviews, Secrets};
use gild_core::pull_request::{valid_repository, PullRequest};
use gild_core::review::{Status, COMMENT_MARKER, DESCRIPTION_LIMIT};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Api, SERVICE};

/// The most files GitHub lists for one pull request ("Responses include a
/// maximum of 3000 files", List pull requests files): a listing that
/// reaches it may have been cut.
pub const FILES_LIMIT: usize = 3000;

pub struct GitHubReviews<S> {
    api: Api<S>,
    /// The login of the token's user, once asked (`None` inside: the token
    /// is not a user's, as a GitHub App's installation token is not).
    login: Mutex<Option<Option<String>>>,
}

#[derive(Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    user: Option<User>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct File {
    filename: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

impl<S: Secrets> GitHubReviews<S> {
    /// `api` is `https://api.github.com` or a GitHub Enterprise API root;
    /// the token is read from `token_secret` through the secrets port on
    /// each call. It needs `statuses: write`, `issues: write` (comments)
    /// and `pull_requests: read` (files).
    pub fn new(
        api: impl Into<String>,
        secrets: S,
        token_secret: impl Into<String>,
    ) -> PortResult<Self> {
        Ok(GitHubReviews {
            api: Api::new(api.into(), secrets, token_secret.into())?,
            login: Mutex::new(None),
        })
    }

    /// `/repos/{owner}/{name}/<rest…>`, from the pull request's repository.
    fn url(&self, operation: &'static str, pr: &PullRequest, rest: &[&str]) -> PortResult<Url> {
        let (owner, name) = pr
            .repository
            .split_once('/')
            .filter(|_| valid_repository(&pr.repository))
            .ok_or_else(|| PortError::Service {
                service: SERVICE,
                operation,
                code: "InvalidRequest".into(),
                message: format!(
                    "`{}` is not a GitHub repository (owner/name)",
                    pr.repository.escape_debug()
                ),
                server_side: false,
            })?;
        let mut segments = vec!["repos", owner, name];
        segments.extend_from_slice(rest);
        self.api.url(operation, &segments)
    }

    /// The token's user (`GET /user`), asked once. A token that is not a
    /// user's (an App's installation token is refused there) leaves gild's
    /// comment found by its marker alone; a failure that may pass is not
    /// remembered.
    async fn login(&self) -> Option<String> {
        if let Some(known) = self.login.lock().ok().and_then(|l| l.clone()) {
            return known;
        }
        let asked = async {
            let url = self.api.url("GetUser", &["user"])?;
            let request = self.api.request("GetUser", Method::GET, url).await?;
            let (user, _): (User, _) = self.api.call("GetUser", request).await?;
            PortResult::Ok(user.login)
        }
        .await;
        let known = match asked {
            Ok(login) => Some(login),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "could not ask whose token this is; finding gild's comment by its marker alone");
                return None;
            }
            Err(e) => {
                tracing::info!(error = %e, "the token is not a user's; finding gild's comment by its marker alone");
                None
            }
        };
        if let Ok(mut cache) = self.login.lock() {
            *cache = Some(known.clone());
        }
        known
    }

    /// gild's comments on the pull request, oldest first: the body starts
    /// with the marker and, when the token's user is known, they are that
    /// user's (someone quoting the marker does not get edited).
    async fn gild_comments(&self, pr: &PullRequest) -> PortResult<Vec<Comment>> {
        let number = pr.number.to_string();
        let url = self.url("ListComments", pr, &["issues", &number, "comments"])?;
        let login = self.login().await;
        let mut ours: Vec<Comment> = self
            .api
            .list::<Comment>("ListComments", url)
            .await?
            .into_iter()
            .filter(|c| {
                c.body
                    .as_deref()
                    .is_some_and(|b| b.trim_start().starts_with(COMMENT_MARKER))
            })
            .filter(|c| match (&login, &c.user) {
                (Some(login), Some(user)) => user.login.eq_ignore_ascii_case(login),
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        // Ids grow with time: the smallest is the oldest.
        ours.sort_by_key(|c| c.id);
        Ok(ours)
    }

    async fn create_comment(&self, pr: &PullRequest, body: &str) -> PortResult<()> {
        let number = pr.number.to_string();
        let url = self.url("CreateComment", pr, &["issues", &number, "comments"])?;
        let request = self.api.request("CreateComment", Method::POST, url).await?;
        self.api
            .call::<serde_json::Value>("CreateComment", request.json(&json!({ "body": body })))
            .await?;
        Ok(())
    }

    async fn edit_comment(&self, pr: &PullRequest, id: u64, body: &str) -> PortResult<()> {
        let id = id.to_string();
        let url = self.url("UpdateComment", pr, &["issues", "comments", &id])?;
        let request = self
            .api
            .request("UpdateComment", Method::PATCH, url)
            .await?;
        self.api
            .call::<serde_json::Value>("UpdateComment", request.json(&json!({ "body": body })))
            .await?;
        Ok(())
    }

    /// Deletes a comment; one already gone (another writer deleted it) is
    /// what was wanted.
    async fn delete_comment(&self, pr: &PullRequest, id: u64) -> PortResult<()> {
        let id = id.to_string();
        let url = self.url("DeleteComment", pr, &["issues", "comments", &id])?;
        let request = self
            .api
            .request("DeleteComment", Method::DELETE, url)
            .await?
            .header("Accept", "application/vnd.github+json");
        match self.api.send("DeleteComment", request).await {
            Ok(_) | Err(PortError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// At most [`DESCRIPTION_LIMIT`] characters (GitHub refuses a longer
/// status description with a 422), ending in `…` when cut.
fn description(text: &str) -> String {
    if text.chars().count() <= DESCRIPTION_LIMIT {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(DESCRIPTION_LIMIT - 1).collect();
    cut.push('…');
    cut
}

impl<S: Secrets> Reviews for GitHubReviews<S> {
    /// `POST /repos/{o}/{r}/statuses/{head}`, one per status, in order.
    async fn set_statuses(&self, pr: &PullRequest, statuses: &[Status]) -> PortResult<()> {
        for status in statuses {
            let url = self.url("CreateStatus", pr, &["statuses", &pr.head])?;
            let mut body = json!({
                "state": status.state.as_str(),
                "context": status.context,
                "description": description(&status.description),
            });
            if let Some(target) = &status.target_url {
                body["target_url"] = json!(target);
            }
            let request = self.api.request("CreateStatus", Method::POST, url).await?;
            self.api
                .call::<serde_json::Value>("CreateStatus", request.json(&body))
                .await?;
        }
        Ok(())
    }

    /// Edits gild's comment, or creates it. GitHub has no conditional
    /// create, so two writers that both found none both create one: the
    /// creator looks again, and whoever sees more than one keeps the
    /// oldest, writes its body there and deletes the rest, so the
    /// comments converge to one.
    async fn upsert_comment(&self, pr: &PullRequest, body: &str) -> PortResult<()> {
        let mut ours = self.gild_comments(pr).await?;
        if ours.is_empty() {
            self.create_comment(pr, body).await?;
            ours = self.gild_comments(pr).await?;
            if ours.len() <= 1 {
                return Ok(());
            }
        }
        let Some((keep, others)) = ours.split_first() else {
            return Ok(());
        };
        if keep.body.as_deref() != Some(body) {
            self.edit_comment(pr, keep.id, body).await?;
        }
        for other in others {
            self.delete_comment(pr, other.id).await?;
        }
        Ok(())
    }

    /// Nothing: on GitHub, gild's statuses are what branch protection
    /// requires (`gild/<family>`), so an approval would add nothing, and a
    /// token that may approve could also dismiss human reviews.
    async fn approve(&self, _pr: &PullRequest, _approve: bool) -> PortResult<()> {
        Ok(())
    }

    /// `GET /repos/{o}/{r}/pulls/{n}/files`, every page: each file and the
    /// path a rename came from. GitHub lists at most [`FILES_LIMIT`] files;
    /// a listing that reaches it may be cut, and a family missed there
    /// would go unvalidated, so it is an error (`TooManyFiles`).
    async fn changed_paths(&self, pr: &PullRequest) -> PortResult<Vec<String>> {
        let number = pr.number.to_string();
        let url = self.url("ListFiles", pr, &["pulls", &number, "files"])?;
        let files: Vec<File> = self.api.list("ListFiles", url).await?;
        if files.len() >= FILES_LIMIT {
            return Err(PortError::Service {
                service: SERVICE,
                operation: "ListFiles",
                code: "TooManyFiles".into(),
                message: format!(
                    "{pr} lists {} files, GitHub's most: the list may be cut, so which families it touches is unknown",
                    files.len()
                ),
                server_side: false,
            });
        }
        let mut paths: Vec<String> = files
            .into_iter()
            .flat_map(|f| std::iter::once(f.filename).chain(f.previous_filename))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_to_githubs_limit() {
        assert_eq!(description("short"), "short");
        let long = "é".repeat(200);
        let cut = description(&long);
        assert_eq!(cut.chars().count(), DESCRIPTION_LIMIT);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(DESCRIPTION_LIMIT);
        assert_eq!(description(&exact), exact);
    }
}
