//! The CodeCommit stand-in's pull requests: the operations gild's review
//! adapter calls (GetPullRequest, GetCommentsForPullRequest,
//! PostCommentForPullRequest, UpdateComment,
//! UpdatePullRequestApprovalState), with the inputs, answers and errors of
//! the CodeCommit API reference. The test registers each pull request; its
//! merge base is `git merge-base` of its commits. Comments and approvals
//! are recorded for assertions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode_token, encode_token, parse_input, ApiError, CodeCommitStub, StubState};

/// "Comments are limited to 10,240 characters."
const CONTENT_LIMIT: usize = 10_240;
/// The first comment's `creationDate` (epoch seconds); each later one is a
/// second after the one before, so their order is the dates' order.
const FIRST_DATE: f64 = 1_768_305_600.0;

/// A pull request as the test opens it (or moves it: opening the same id
/// again replaces it, as a push to its source branch gives it a new tip
/// and a new revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubPullRequest {
    pub id: String,
    /// `refs/heads/<branch>`.
    pub source_reference: String,
    pub destination_reference: String,
    pub source_commit: String,
    pub destination_commit: String,
    pub revision_id: String,
}

#[derive(Default)]
pub(super) struct PullRequests(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    pulls: BTreeMap<String, StubPullRequest>,
    /// In creation order.
    comments: Vec<Comment>,
    /// `clientRequestToken` → (the request without it, the answer).
    tokens: HashMap<String, (Value, Value)>,
    /// (pull request, revision, APPROVE/REVOKE, caller), in order.
    approvals: Vec<(String, String, String, String)>,
    /// Listings still to answer as if no comment existed yet.
    hidden_listings: usize,
}

struct Comment {
    id: String,
    pull_request_id: String,
    before: String,
    after: String,
    content: String,
    author: String,
    token: Option<String>,
    created: f64,
    modified: f64,
}

impl Comment {
    fn json(&self) -> Value {
        let mut comment = json!({
            "commentId": self.id,
            "content": self.content,
            "creationDate": self.created,
            "lastModifiedDate": self.modified,
            "authorArn": self.author,
            "deleted": false,
            "callerReactions": [],
            "reactionCounts": {},
        });
        if let Some(token) = &self.token {
            comment["clientRequestToken"] = json!(token);
        }
        comment
    }
}

impl PullRequests {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ARN CodeCommit would name the caller by: the principal the IAM gate
/// names when the call came through it, else the access key id of the
/// request's SigV4 credential stands for the principal.
pub(super) fn caller(principal: Option<&str>, authorization: Option<&str>) -> String {
    if let Some(principal) = principal.filter(|p| p.starts_with("arn:")) {
        return principal.to_owned();
    }
    let key = authorization
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("anonymous");
    format!("arn:aws:iam::{}:user/{key}", crate::aws::ACCOUNT_ID)
}

impl CodeCommitStub {
    /// Opens pull request `pull.id`, or moves it to a new tip and revision.
    pub fn open_pull_request(&self, pull: StubPullRequest) {
        // Created: the associated templates' rules are put on it now.
        self.state.templates.on_created(
            &pull.id,
            &self.state.repository_name,
            &pull.destination_reference,
        );
        self.state.pulls.lock().pulls.insert(pull.id.clone(), pull);
    }

    /// The approval-rule templates: name → (content, description,
    /// associated repositories).
    pub fn approval_rule_templates(&self) -> BTreeMap<String, (String, String, Vec<String>)> {
        self.state.templates.snapshot()
    }

    /// The comments on a pull request, oldest first: each comment's fields
    /// as CodeCommit answers them, plus its `beforeCommitId` and
    /// `afterCommitId`.
    pub fn comments(&self, pull_request_id: &str) -> Vec<Value> {
        let inner = self.state.pulls.lock();
        inner
            .comments
            .iter()
            .filter(|c| c.pull_request_id == pull_request_id)
            .map(|c| {
                let mut comment = c.json();
                comment["beforeCommitId"] = json!(c.before);
                comment["afterCommitId"] = json!(c.after);
                comment
            })
            .collect()
    }

    /// Every approval state change of a pull request, in order:
    /// (revision, `APPROVE`/`REVOKE`).
    pub fn approvals(&self, pull_request_id: &str) -> Vec<(String, String)> {
        let inner = self.state.pulls.lock();
        inner
            .approvals
            .iter()
            .filter(|(id, ..)| id == pull_request_id)
            .map(|(_, revision, state, _)| (revision.clone(), state.clone()))
            .collect()
    }

    /// A comment by someone else (`author_arn`), between the two commits.
    pub fn add_comment_by(
        &self,
        pull_request_id: &str,
        before: &str,
        after: &str,
        author_arn: &str,
        content: &str,
    ) {
        let mut inner = self.state.pulls.lock();
        let comment = new_comment(&inner, pull_request_id, before, after, content, author_arn);
        inner.comments.push(comment);
    }

    /// The next `count` comment listings answer as if no comment existed:
    /// a listing that does not show a post yet, or a writer racing another.
    pub fn hide_comments(&self, count: usize) {
        self.state.pulls.lock().hidden_listings = count;
    }
}

fn new_comment(
    inner: &Inner,
    pull_request_id: &str,
    before: &str,
    after: &str,
    content: &str,
    author: &str,
) -> Comment {
    let n = inner.comments.len();
    let created = FIRST_DATE + n as f64;
    Comment {
        id: format!("{:08x}-0000-4000-8000-{n:012x}", 0x91d5_u32 + n as u32),
        pull_request_id: pull_request_id.into(),
        before: before.into(),
        after: after.into(),
        content: content.into(),
        author: author.into(),
        token: None,
        created,
        modified: created,
    }
}

fn required<'a>(
    value: &'a Option<String>,
    code: &'static str,
    what: &str,
) -> Result<&'a str, ApiError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::client(code, format!("{what} is required but was not specified.")))
}

impl StubPullRequest {
    /// CodeCommit's answer to a call about a revision that is not current.
    pub(super) fn check_current(&self, revision: &str) -> Result<(), ApiError> {
        if revision == self.revision_id {
            return Ok(());
        }
        Err(ApiError::client(
            "RevisionNotCurrentException",
            format!(
                "The revision ID {revision} is not the current revision of pull request {}.",
                self.id
            ),
        ))
    }
}

impl PullRequests {
    /// The callers whose latest approval state on `revision` is APPROVE.
    pub(super) fn approvers(&self, pull_request_id: &str, revision: &str) -> Vec<String> {
        let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
        let inner = self.lock();
        for (pull, rev, state, caller) in &inner.approvals {
            if pull == pull_request_id && rev == revision {
                latest.insert(caller, state);
            }
        }
        latest
            .into_iter()
            .filter(|(_, state)| *state == "APPROVE")
            .map(|(caller, _)| caller.to_owned())
            .collect()
    }
}

impl StubState {
    /// The pull request an input names, or the error CodeCommit answers.
    pub(super) fn pull(&self, id: &Option<String>) -> Result<StubPullRequest, ApiError> {
        let id = required(id, "PullRequestIdRequiredException", "A pull request ID")?;
        if id.parse::<u64>().is_err() {
            return Err(ApiError::client(
                "InvalidPullRequestIdException",
                format!("The pull request ID {id} is not valid."),
            ));
        }
        self.pulls.lock().pulls.get(id).cloned().ok_or_else(|| {
            ApiError::client(
                "PullRequestDoesNotExistException",
                format!("The pull request {id} does not exist."),
            )
        })
    }

    fn content(content: &Option<String>) -> Result<String, ApiError> {
        let content = required(
            content,
            "CommentContentRequiredException",
            "Comment content",
        )?;
        if content.chars().count() > CONTENT_LIMIT {
            return Err(ApiError::client(
                "CommentContentSizeLimitExceededException",
                "The comment is too large. Comments are limited to 10,240 characters.",
            ));
        }
        Ok(content.to_owned())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetPullRequestInput {
    pull_request_id: Option<String>,
}

pub(super) async fn get_pull_request(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetPullRequestInput = parse_input(body)?;
    let pull = state.pull(&input.pull_request_id)?;
    let output = state
        .git(&["merge-base", &pull.destination_commit, &pull.source_commit])
        .await?;
    let merge_base = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut target = json!({
        "repositoryName": state.repository_name,
        "sourceReference": pull.source_reference,
        "destinationReference": pull.destination_reference,
        "sourceCommit": pull.source_commit,
        "destinationCommit": pull.destination_commit,
        "mergeMetadata": {"isMerged": false},
    });
    if output.status.success() && !merge_base.is_empty() {
        target["mergeBase"] = json!(merge_base);
    }
    Ok(json!({"pullRequest": {
        "pullRequestId": pull.id,
        "title": format!("pull request {}", pull.id),
        "pullRequestStatus": "OPEN",
        "creationDate": FIRST_DATE,
        "lastActivityDate": FIRST_DATE,
        "authorArn": caller(None, None),
        "revisionId": pull.revision_id,
        "pullRequestTargets": [target],
        "approvalRules": [],
    }}))
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct PostCommentInput {
    pull_request_id: Option<String>,
    repository_name: Option<String>,
    before_commit_id: Option<String>,
    after_commit_id: Option<String>,
    content: Option<String>,
    client_request_token: Option<String>,
}

pub(super) async fn post_comment(
    state: &StubState,
    body: &[u8],
    caller: &str,
) -> Result<Value, ApiError> {
    let input: PostCommentInput = parse_input(body)?;
    let pull = state.pull(&input.pull_request_id)?;
    state.check_repository(input.repository_name.as_deref())?;
    let before = required(
        &input.before_commit_id,
        "CommitIdRequiredException",
        "A commit ID",
    )?;
    let after = required(
        &input.after_commit_id,
        "CommitIdRequiredException",
        "A commit ID",
    )?;
    let before = state.resolve_commit(before).await?;
    let after = state.resolve_commit(after).await?;
    if before == after {
        return Err(ApiError::client(
            "BeforeCommitIdAndAfterCommitIdAreSameException",
            "The before commit ID and the after commit ID are the same.",
        ));
    }
    let content = StubState::content(&input.content)?;
    // The token's request: the input as sent, without the token.
    let mut request: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(fields) = request.as_object_mut() {
        fields.remove("clientRequestToken");
    }
    let mut inner = state.pulls.lock();
    if let Some(token) = &input.client_request_token {
        if let Some((first, answer)) = inner.tokens.get(token) {
            if *first == request {
                return Ok(answer.clone());
            }
            return Err(ApiError::client(
                "IdempotencyParameterMismatchException",
                "The client request token is not valid. Either the token is not in a valid format, or the token has been used in a previous request and cannot be reused.",
            ));
        }
    }
    let mut comment = new_comment(&inner, &pull.id, &before, &after, &content, caller);
    comment.token = input.client_request_token.clone();
    let answer = json!({
        "repositoryName": state.repository_name,
        "pullRequestId": pull.id,
        "beforeCommitId": before,
        "afterCommitId": after,
        "comment": comment.json(),
    });
    inner.comments.push(comment);
    if let Some(token) = input.client_request_token {
        inner.tokens.insert(token, (request, answer.clone()));
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateCommentInput {
    comment_id: Option<String>,
    content: Option<String>,
}

pub(super) async fn update_comment(
    state: &StubState,
    body: &[u8],
    caller: &str,
) -> Result<Value, ApiError> {
    let input: UpdateCommentInput = parse_input(body)?;
    let id = required(
        &input.comment_id,
        "CommentIdRequiredException",
        "A comment ID",
    )?;
    let content = StubState::content(&input.content)?;
    let mut inner = state.pulls.lock();
    let comment = inner
        .comments
        .iter_mut()
        .find(|c| c.id == id)
        .ok_or_else(|| {
            ApiError::client(
                "CommentDoesNotExistException",
                format!("No comment exists with the provided ID {id}."),
            )
        })?;
    if comment.author != caller {
        return Err(ApiError::client(
            "CommentNotCreatedByCallerException",
            "You cannot modify or delete this comment. Only comment authors can modify or delete their comments.",
        ));
    }
    comment.content = content;
    comment.modified += 0.5;
    Ok(json!({"comment": comment.json()}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetCommentsInput {
    pull_request_id: Option<String>,
    repository_name: Option<String>,
    before_commit_id: Option<String>,
    after_commit_id: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(super) async fn get_comments(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetCommentsInput = parse_input(body)?;
    let pull = state.pull(&input.pull_request_id)?;
    let commits = (
        input.before_commit_id.as_deref(),
        input.after_commit_id.as_deref(),
    );
    match (&input.repository_name, commits) {
        (Some(name), (Some(_), Some(_))) => state.check_repository(Some(name))?,
        (None, (None, None)) => {}
        (None, _) => state.check_repository(None)?,
        (Some(_), _) => {
            return Err(ApiError::client(
                "CommitIdRequiredException",
                "beforeCommitId and afterCommitId must be specified with repositoryName.",
            ))
        }
    }
    let page_size = match input.max_results {
        None => 100,
        Some(n @ 1..=500) => n as usize,
        Some(n) => {
            return Err(ApiError::client(
                "InvalidMaxResultsException",
                format!("The specified number of maximum results ({n}) is not valid."),
            ))
        }
    };
    let offset = match input.next_token.as_deref() {
        None | Some("") => 0,
        Some(token) => decode_token(token).ok_or_else(|| {
            ApiError::client(
                "InvalidContinuationTokenException",
                "The specified continuation token is not valid.",
            )
        })?,
    };
    let mut inner = state.pulls.lock();
    let hidden = inner.hidden_listings > 0;
    inner.hidden_listings = inner.hidden_listings.saturating_sub(1);
    let matching: Vec<&Comment> = inner
        .comments
        .iter()
        .filter(|c| !hidden && c.pull_request_id == pull.id)
        .filter(|c| commits.0.is_none_or(|b| b == c.before))
        .filter(|c| commits.1.is_none_or(|a| a == c.after))
        .collect();
    let end = offset.saturating_add(page_size).min(matching.len());
    // One entry per commit pair on the page, comments in order.
    let mut data: Vec<Value> = Vec::new();
    for comment in matching.get(offset..end).unwrap_or_default() {
        let same = |d: &Value| {
            d["beforeCommitId"] == comment.before && d["afterCommitId"] == comment.after
        };
        match data.iter_mut().find(|d| same(d)) {
            Some(entry) => {
                if let Some(list) = entry["comments"].as_array_mut() {
                    list.push(comment.json());
                }
            }
            None => data.push(json!({
                "pullRequestId": pull.id,
                "repositoryName": state.repository_name,
                "beforeCommitId": comment.before,
                "afterCommitId": comment.after,
                "comments": [comment.json()],
            })),
        }
    }
    let mut answer = json!({"commentsForPullRequestData": data});
    if end < matching.len() {
        answer["nextToken"] = json!(encode_token(end));
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApprovalInput {
    pull_request_id: Option<String>,
    revision_id: Option<String>,
    approval_state: Option<String>,
}

pub(super) async fn update_approval_state(
    state: &StubState,
    body: &[u8],
    caller: &str,
) -> Result<Value, ApiError> {
    let input: ApprovalInput = parse_input(body)?;
    let pull = state.pull(&input.pull_request_id)?;
    let revision = required(
        &input.revision_id,
        "RevisionIdRequiredException",
        "A revision ID",
    )?;
    let approval = required(
        &input.approval_state,
        "ApprovalStateRequiredException",
        "An approval state",
    )?;
    if !matches!(approval, "APPROVE" | "REVOKE") {
        return Err(ApiError::client(
            "InvalidApprovalStateException",
            format!("The state for the approval is not valid: {approval}. Valid values include APPROVE and REVOKE."),
        ));
    }
    pull.check_current(revision)?;
    state.pulls.lock().approvals.push((
        pull.id,
        revision.to_owned(),
        approval.to_owned(),
        caller.to_owned(),
    ));
    Ok(json!({}))
}
