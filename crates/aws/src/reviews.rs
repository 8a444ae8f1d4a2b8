//! The pull requests' host, chosen once from the stack's configuration:
//! CodeCommit here, or GitHub through the adapter the caller brings (so
//! this crate does not depend on `gild-github`).

use gild_core::ports::{PortResult, Reviews};
use gild_core::pull_request::PullRequest;
use gild_core::review::Status;

use crate::codecommit_reviews::CodeCommitReviews;

/// Where candidates report: the stack's one repository host. Each call is
/// handed to that host's adapter as it is.
pub enum HostReviews<G> {
    CodeCommit(CodeCommitReviews),
    GitHub(G),
}

impl<G: Reviews> Reviews for HostReviews<G> {
    async fn set_statuses(&self, pr: &PullRequest, statuses: &[Status]) -> PortResult<()> {
        match self {
            HostReviews::CodeCommit(host) => host.set_statuses(pr, statuses).await,
            HostReviews::GitHub(host) => host.set_statuses(pr, statuses).await,
        }
    }

    async fn upsert_comment(&self, pr: &PullRequest, body: &str) -> PortResult<()> {
        match self {
            HostReviews::CodeCommit(host) => host.upsert_comment(pr, body).await,
            HostReviews::GitHub(host) => host.upsert_comment(pr, body).await,
        }
    }

    async fn approve(&self, pr: &PullRequest, approve: bool) -> PortResult<()> {
        match self {
            HostReviews::CodeCommit(host) => host.approve(pr, approve).await,
            HostReviews::GitHub(host) => host.approve(pr, approve).await,
        }
    }

    async fn changed_paths(&self, pr: &PullRequest) -> PortResult<Vec<String>> {
        match self {
            HostReviews::CodeCommit(host) => host.changed_paths(pr).await,
            HostReviews::GitHub(host) => host.changed_paths(pr).await,
        }
    }
}
