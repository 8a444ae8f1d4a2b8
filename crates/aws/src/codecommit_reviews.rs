//! Where a pull request on CodeCommit is reviewed: one comment gild edits
//! in place, and gild's approval of the pull request's revision.

use aws_sdk_codecommit::types::{ApprovalState, Comment};
use aws_sdk_codecommit::Client;
use gild_core::ports::{PortError, PortResult, Reviews};
use gild_core::pull_request::PullRequest;
use gild_core::review::{Status, COMMENT_MARKER};

use crate::classify;
use crate::codecommit::changed_paths;

const SERVICE: &str = "CodeCommit";

pub struct CodeCommitReviews {
    client: Client,
}

impl CodeCommitReviews {
    pub fn new(client: Client) -> Self {
        CodeCommitReviews { client }
    }

    /// gild's comments on the head (the comments between the destination
    /// and the head whose content starts with the marker), oldest first.
    async fn gild_comments(&self, pr: &PullRequest) -> PortResult<Vec<Comment>> {
        let mut pages = self
            .client
            .get_comments_for_pull_request()
            .pull_request_id(pr.number.to_string())
            .repository_name(&pr.repository)
            .before_commit_id(&pr.destination)
            .after_commit_id(&pr.head)
            .into_paginator()
            .send();
        let mut ours = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(SERVICE, "GetCommentsForPullRequest", e))?;
            for data in page.comments_for_pull_request_data() {
                ours.extend(data.comments().iter().filter(|c| is_gilds(c)).cloned());
            }
        }
        ours.sort_by(|a, b| {
            (a.creation_date(), a.comment_id()).cmp(&(b.creation_date(), b.comment_id()))
        });
        Ok(ours)
    }

    /// Writes `body` into the oldest of gild's comments this caller may
    /// edit; `Ok(false)` when there is none.
    async fn update_existing(&self, pr: &PullRequest, body: &str) -> PortResult<bool> {
        for comment in self.gild_comments(pr).await? {
            if comment.content() == Some(body) {
                return Ok(true);
            }
            let Some(id) = comment.comment_id() else {
                continue;
            };
            match self
                .client
                .update_comment()
                .comment_id(id)
                .content(body)
                .send()
                .await
            {
                Ok(_) => return Ok(true),
                // Someone else's comment that quotes the marker, or one
                // deleted since it was listed: not gild's to write.
                Err(e)
                    if e.as_service_error().is_some_and(|e| {
                        e.is_comment_not_created_by_caller_exception()
                            || e.is_comment_deleted_exception()
                            || e.is_comment_does_not_exist_exception()
                    }) =>
                {
                    continue
                }
                Err(e) => return Err(classify(SERVICE, "UpdateComment", e)),
            }
        }
        Ok(false)
    }

    /// The pull request's revision and first target, from `GetPullRequest`.
    async fn pull_request(
        &self,
        pr: &PullRequest,
    ) -> PortResult<aws_sdk_codecommit::types::PullRequest> {
        self.client
            .get_pull_request()
            .pull_request_id(pr.number.to_string())
            .send()
            .await
            .map_err(|e| classify(SERVICE, "GetPullRequest", e))?
            .pull_request
            .ok_or_else(|| {
                invalid(
                    "GetPullRequest",
                    format!("no pull request in the answer for {pr}"),
                )
            })
    }
}

/// A comment gild wrote: its content starts with the marker (a deleted
/// comment has no content left).
fn is_gilds(comment: &Comment) -> bool {
    !comment.deleted()
        && comment
            .content()
            .is_some_and(|c| c.trim_start().starts_with(COMMENT_MARKER))
}

fn invalid(operation: &'static str, message: String) -> PortError {
    PortError::InvalidResponse {
        service: SERVICE,
        operation,
        message,
    }
}

/// `PostCommentForPullRequest`'s idempotency token: one per pull request
/// and head, so a post retried after its answer was lost returns the first
/// post's comment instead of making a second. CodeCommit refuses the token
/// with other parameters (another body: `IdempotencyParameterMismatch`),
/// which tells the poster a comment for this head exists. FNV-1a of the
/// repository keeps it short and the same across builds of this code.
fn post_token(pr: &PullRequest) -> String {
    let repository = gild_core::retry::fnv1a(pr.repository.as_bytes());
    format!("gild-{repository:016x}-{}-{}", pr.number, pr.head)
}

impl Reviews for CodeCommitReviews {
    /// Nothing: CodeCommit has no commit statuses. The comment and the
    /// approval carry the results there.
    async fn set_statuses(&self, _pr: &PullRequest, _statuses: &[Status]) -> PortResult<()> {
        Ok(())
    }

    /// Edits gild's comment on the head, or posts it
    /// (`beforeCommitId` = the destination tip, `afterCommitId` = the
    /// head). A post whose token CodeCommit already saw with another body
    /// means a comment for this head exists (a racing writer's, or this
    /// one's whose answer was lost and that the listing does not show
    /// yet): it is edited instead.
    async fn upsert_comment(&self, pr: &PullRequest, body: &str) -> PortResult<()> {
        if self.update_existing(pr, body).await? {
            return Ok(());
        }
        let posted = self
            .client
            .post_comment_for_pull_request()
            .pull_request_id(pr.number.to_string())
            .repository_name(&pr.repository)
            .before_commit_id(&pr.destination)
            .after_commit_id(&pr.head)
            .content(body)
            .client_request_token(post_token(pr))
            .send()
            .await;
        match posted {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_idempotency_parameter_mismatch_exception()) =>
            {
                if self.update_existing(pr, body).await? {
                    Ok(())
                } else {
                    Err(classify(SERVICE, "PostCommentForPullRequest", e))
                }
            }
            Err(e) => Err(classify(SERVICE, "PostCommentForPullRequest", e)),
        }
    }

    /// `UpdatePullRequestApprovalState` APPROVE or REVOKE on the pull
    /// request's revision (asked of `GetPullRequest` when the event did
    /// not tell it). A revision the pull request has moved past comes back
    /// as the service's `RevisionNotCurrentException` (a
    /// `PortError::Service` with that code): the caller's head is
    /// superseded.
    async fn approve(&self, pr: &PullRequest, approve: bool) -> PortResult<()> {
        let revision = match &pr.revision {
            Some(revision) => revision.clone(),
            None => self
                .pull_request(pr)
                .await?
                .revision_id()
                .map(str::to_owned)
                .ok_or_else(|| invalid("GetPullRequest", format!("{pr} has no revisionId")))?,
        };
        let state = if approve {
            ApprovalState::Approve
        } else {
            ApprovalState::Revoke
        };
        self.client
            .update_pull_request_approval_state()
            .pull_request_id(pr.number.to_string())
            .revision_id(revision)
            .approval_state(state)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "UpdatePullRequestApprovalState", e))?;
        Ok(())
    }

    /// `GetDifferences` from the merge base to the head: what the pull
    /// request changes, not what the destination gained since. The merge
    /// base is the event's, else `GetPullRequest`'s for the target in this
    /// repository. When the pull request has moved past this head, that
    /// merge base is the newer head's; the diff from it may name more
    /// paths than this head changed (more families validated, never
    /// fewer), and this head is being superseded anyway.
    async fn changed_paths(&self, pr: &PullRequest) -> PortResult<Vec<String>> {
        let base = match &pr.merge_base {
            Some(base) => base.clone(),
            None => {
                let found = self.pull_request(pr).await?;
                let target = found
                    .pull_request_targets()
                    .iter()
                    .find(|t| t.repository_name() == Some(pr.repository.as_str()))
                    .ok_or_else(|| {
                        invalid(
                            "GetPullRequest",
                            format!("{pr} has no target in repository {}", pr.repository),
                        )
                    })?;
                if target.source_commit().is_some_and(|s| s != pr.head) {
                    tracing::info!(
                        pull_request = %pr,
                        source = target.source_commit(),
                        "the pull request moved past this head; diffing from its current merge base"
                    );
                }
                target
                    .merge_base()
                    .ok_or_else(|| invalid("GetPullRequest", format!("{pr} has no mergeBase")))?
                    .to_owned()
            }
        };
        changed_paths(&self.client, &pr.repository, Some(&base), &pr.head).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::pull_request::Host;

    fn pr(repository: &str, number: u64, head: &str) -> PullRequest {
        PullRequest {
            host: Host::CodeCommit,
            repository: repository.into(),
            number,
            head: head.into(),
            destination: "0".repeat(40),
            merge_base: None,
            revision: None,
            url: None,
        }
    }

    #[test]
    fn post_tokens_name_the_pull_request_and_head() {
        let head = "8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e";
        let token = post_token(&pr("images", 7, head));
        assert_eq!(token, post_token(&pr("images", 7, head)));
        assert_ne!(token, post_token(&pr("images", 8, head)));
        assert_ne!(token, post_token(&pr("other", 7, head)));
        assert_ne!(token, post_token(&pr("images", 7, &"1".repeat(40))));
    }
}
