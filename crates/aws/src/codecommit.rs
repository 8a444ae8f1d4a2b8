//! The images repository on CodeCommit.

use aws_sdk_codecommit::Client;
use gild_core::plan::DiffBase;
use gild_core::ports::{PortError, PortResult, Repository};

use crate::classify;

const SERVICE: &str = "CodeCommit";

pub struct CodeCommitRepository {
    client: Client,
    repository: String,
}

impl CodeCommitRepository {
    pub fn new(client: Client, repository: impl Into<String>) -> Self {
        CodeCommitRepository {
            client,
            repository: repository.into(),
        }
    }
}

impl Repository for CodeCommitRepository {
    async fn read_file(&self, commit: &str, path: &str) -> PortResult<Option<String>> {
        let result = self
            .client
            .get_file()
            .repository_name(&self.repository)
            .commit_specifier(commit)
            .file_path(path)
            .send()
            .await;
        match result {
            Ok(out) => String::from_utf8(out.file_content.into_inner())
                .map(Some)
                .map_err(|_| PortError::InvalidResponse {
                    service: SERVICE,
                    operation: "GetFile",
                    message: format!("{path} at {commit} is not UTF-8"),
                }),
            Err(err) => {
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_file_does_not_exist_exception())
                {
                    return Ok(None);
                }
                Err(classify(SERVICE, "GetFile", err))
            }
        }
    }

    async fn changed_paths(&self, base: &DiffBase, commit: &str) -> PortResult<Vec<String>> {
        let before = match base {
            DiffBase::Commit(before) => Some(before.as_str()),
            DiffBase::EmptyTree => None,
        };
        changed_paths(&self.client, &self.repository, before, commit).await
    }

    async fn branch_tip(&self, branch: &str) -> PortResult<String> {
        let out = self
            .client
            .get_branch()
            .repository_name(&self.repository)
            .branch_name(branch)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "GetBranch", e))?;
        out.branch
            .and_then(|b| b.commit_id)
            .ok_or_else(|| PortError::InvalidResponse {
                service: SERVICE,
                operation: "GetBranch",
                message: format!("branch `{branch}` has no commitId"),
            })
    }
}

/// Every path changed from `before` (`None`: the empty tree) to `after`,
/// every page of `GetDifferences`, both sides of renames, each once.
pub(crate) async fn changed_paths(
    client: &Client,
    repository: &str,
    before: Option<&str>,
    after: &str,
) -> PortResult<Vec<String>> {
    let mut request = client
        .get_differences()
        .repository_name(repository)
        .after_commit_specifier(after);
    if let Some(before) = before {
        request = request.before_commit_specifier(before);
    }
    let mut pages = request.into_paginator().send();
    let mut paths = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify(SERVICE, "GetDifferences", e))?;
        for difference in page.differences() {
            // A rename touches both folders: either side may belong to a family.
            for blob in [difference.before_blob(), difference.after_blob()]
                .into_iter()
                .flatten()
            {
                if let Some(path) = blob.path() {
                    if !paths.iter().any(|p: &String| p == path) {
                        paths.push(path.to_owned());
                    }
                }
            }
        }
    }
    Ok(paths)
}
