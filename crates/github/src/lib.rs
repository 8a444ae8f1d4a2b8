//! The images repository on GitHub, through its REST API: the same
//! `Repository` port the CodeCommit adapter implements, so the planner and
//! the trigger do not care where the images live.

use std::collections::BTreeMap;
use std::time::Duration;

use gild_core::plan::DiffBase;
use gild_core::ports::{PortError, PortResult, Repository, SecretStage, Secrets};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

const SERVICE: &str = "GitHub";
/// The compare API lists at most this many files; past it, trees are diffed.
const COMPARE_FILES_LIMIT: usize = 300;

pub struct GitHubRepository<S> {
    http: Client,
    api: String,
    /// `owner/name`.
    repository: String,
    secrets: S,
    token_secret: String,
}

impl<S: Secrets> GitHubRepository<S> {
    /// `api` is `https://api.github.com` or a GitHub Enterprise API root;
    /// the token is read from Secrets Manager (`token_secret`) per call,
    /// through the secrets port's cache.
    pub fn new(
        api: impl Into<String>,
        repository: impl Into<String>,
        secrets: S,
        token_secret: impl Into<String>,
    ) -> Result<Self, PortError> {
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("gild")
            .build()
            .map_err(|e| PortError::Transport {
                service: SERVICE,
                operation: "client",
                message: e.to_string(),
            })?;
        Ok(GitHubRepository {
            http,
            api: api.into().trim_end_matches('/').to_owned(),
            repository: repository.into(),
            secrets,
            token_secret: token_secret.into(),
        })
    }

    async fn get(&self, operation: &'static str, path: &str) -> PortResult<RequestBuilder> {
        let token = self
            .secrets
            .get(&self.token_secret, SecretStage::Current)
            .await?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| PortError::NotFound {
                service: SERVICE,
                operation,
                code: "NoToken".into(),
                message: format!("secret {} holds no GitHub token", self.token_secret),
            })?;
        Ok(self
            .http
            .get(format!("{}/repos/{}/{path}", self.api, self.repository))
            .bearer_auth(token.trim())
            .header("X-GitHub-Api-Version", "2022-11-28"))
    }

    async fn send(&self, operation: &'static str, request: RequestBuilder) -> PortResult<Response> {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                PortError::Timeout {
                    service: SERVICE,
                    operation,
                }
            } else {
                PortError::Transport {
                    service: SERVICE,
                    operation,
                    message: e.to_string(),
                }
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && response
                    .headers()
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v == "0"));
        let message = response.text().await.unwrap_or_default();
        let message: String = message.chars().take(300).collect();
        let code = status.as_u16().to_string();
        Err(if rate_limited {
            PortError::Throttled {
                service: SERVICE,
                operation,
                code,
                message,
            }
        } else if status == StatusCode::NOT_FOUND {
            PortError::NotFound {
                service: SERVICE,
                operation,
                code,
                message,
            }
        } else {
            PortError::Service {
                service: SERVICE,
                operation,
                code,
                message,
                server_side: status.is_server_error(),
            }
        })
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        path: &str,
    ) -> PortResult<T> {
        let request = self
            .get(operation, path)
            .await?
            .header("Accept", "application/vnd.github+json");
        self.send(operation, request)
            .await?
            .json()
            .await
            .map_err(|e| PortError::InvalidResponse {
                service: SERVICE,
                operation,
                message: e.to_string(),
            })
    }

    /// Every blob of a commit's tree, path → blob sha.
    async fn tree(&self, commit: &str) -> PortResult<BTreeMap<String, String>> {
        let tree: Tree = self
            .json("GetTree", &format!("git/trees/{commit}?recursive=1"))
            .await?;
        if tree.truncated {
            return Err(PortError::InvalidResponse {
                service: SERVICE,
                operation: "GetTree",
                message: format!("the tree of {commit} is too large for one listing"),
            });
        }
        Ok(tree
            .tree
            .into_iter()
            .filter(|e| e.kind == "blob")
            .map(|e| (e.path, e.sha))
            .collect())
    }
}

#[derive(Deserialize)]
struct Tree {
    #[serde(default)]
    truncated: bool,
    tree: Vec<TreeEntry>,
}

#[derive(Deserialize)]
struct TreeEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    sha: String,
}

#[derive(Deserialize)]
struct Compare {
    #[serde(default)]
    files: Vec<CompareFile>,
}

#[derive(Deserialize)]
struct CompareFile {
    filename: String,
    #[serde(default)]
    previous_filename: Option<String>,
}

#[derive(Deserialize)]
struct Branch {
    commit: BranchCommit,
}

#[derive(Deserialize)]
struct BranchCommit {
    sha: String,
}

impl<S: Secrets> Repository for GitHubRepository<S> {
    async fn read_file(&self, commit: &str, path: &str) -> PortResult<Option<String>> {
        let request = self
            .get("GetContents", &format!("contents/{path}?ref={commit}"))
            .await?
            .header("Accept", "application/vnd.github.raw+json");
        match self.send("GetContents", request).await {
            Ok(response) => {
                response
                    .text()
                    .await
                    .map(Some)
                    .map_err(|e| PortError::InvalidResponse {
                        service: SERVICE,
                        operation: "GetContents",
                        message: e.to_string(),
                    })
            }
            Err(PortError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn changed_paths(&self, base: &DiffBase, commit: &str) -> PortResult<Vec<String>> {
        let before = match base {
            DiffBase::EmptyTree => return Ok(self.tree(commit).await?.into_keys().collect()),
            DiffBase::Commit(before) => before,
        };
        let compare: Compare = self
            .json("Compare", &format!("compare/{before}...{commit}"))
            .await?;
        if compare.files.len() < COMPARE_FILES_LIMIT {
            let mut paths: Vec<String> = compare
                .files
                .into_iter()
                .flat_map(|f| std::iter::once(f.filename).chain(f.previous_filename))
                .collect();
            paths.sort();
            paths.dedup();
            return Ok(paths);
        }
        // The compare listing is cut at its limit: diff the two trees.
        let (old, new) = (self.tree(before).await?, self.tree(commit).await?);
        let mut paths: Vec<String> = old
            .iter()
            .filter(|(path, sha)| new.get(*path) != Some(sha))
            .map(|(path, _)| path.clone())
            .chain(new.keys().filter(|path| !old.contains_key(*path)).cloned())
            .collect();
        paths.sort();
        Ok(paths)
    }

    async fn branch_tip(&self, branch: &str) -> PortResult<String> {
        let branch: Branch = self
            .json("GetBranch", &format!("branches/{branch}"))
            .await?;
        Ok(branch.commit.sha)
    }
}
