//! The images repository on GitHub, through its REST API: the same
//! `Repository` port the CodeCommit adapter implements, so the planner and
//! the trigger do not care where the images live.

use std::collections::BTreeMap;

use gild_core::plan::DiffBase;
use gild_core::ports::{PortError, PortResult, Repository, Secrets};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;

use crate::api::{Api, SERVICE};

/// The compare API lists at most this many files; past it, trees are diffed.
const COMPARE_FILES_LIMIT: usize = 300;

pub struct GitHubRepository<S> {
    api: Api<S>,
    /// `owner/name`.
    repository: String,
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
        Ok(GitHubRepository {
            api: Api::new(api.into(), secrets, token_secret.into())?,
            repository: repository.into(),
        })
    }

    async fn get(&self, operation: &'static str, path: &str) -> PortResult<RequestBuilder> {
        let url = self
            .api
            .raw_url(&format!("repos/{}/{path}", self.repository));
        self.api.request(operation, Method::GET, url).await
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &'static str,
        path: &str,
    ) -> PortResult<T> {
        let request = self.get(operation, path).await?;
        Ok(self.api.call(operation, request).await?.0)
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
        match self.api.send("GetContents", request).await {
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
