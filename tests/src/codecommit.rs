//! A CodeCommit endpoint for the read operations moto lacks (GetFile,
//! GetDifferences, GetBranch) and the pull-request operations gild's review
//! adapter calls (`pull_requests`: GetPullRequest, comments, approvals),
//! speaking the service's real AWS JSON 1.1 protocol so the unmodified
//! `aws-sdk-codecommit` client works against it. It is backed by a real git
//! repository through the `git` CLI.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::git::GIT_ENV;
use crate::{new_uuid, HarnessError};

mod approval_rules;
mod pull_requests;

pub use pull_requests::StubPullRequest;

const TARGET_PREFIX: &str = "CodeCommit_20150413.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const DEFAULT_MAX_RESULTS: usize = 100;
const TOKEN_PREFIX: &str = "gild-offset:";
/// Where the IAM gate names the principal of a call it forwards
/// (tests/twin/iam/gate.py, `PRINCIPAL_HEADER`).
const PRINCIPAL_HEADER: &str = "x-gild-principal";

/// A running CodeCommit stub; the server stops on drop.
pub struct CodeCommitStub {
    state: Arc<StubState>,
    address: SocketAddr,
    server: JoinHandle<()>,
}

struct StubState {
    repo_dir: PathBuf,
    repository_name: String,
    calls: Mutex<HashMap<String, usize>>,
    pulls: pull_requests::PullRequests,
    templates: approval_rules::Templates,
}

impl StubState {
    fn calls(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Counters stay meaningful even if a holder panicked.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CodeCommitStub {
    /// Serves `repo_dir` as the CodeCommit repository `repository_name`.
    pub async fn start(
        repo_dir: PathBuf,
        repository_name: &str,
    ) -> Result<CodeCommitStub, HarnessError> {
        if !repo_dir.join(".git").exists() && !repo_dir.join("HEAD").is_file() {
            return Err(HarnessError::InvalidInput {
                message: format!("{} is not a git repository", repo_dir.display()),
            });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("cannot bind the CodeCommit stub", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the CodeCommit stub address", e))?;
        let state = Arc::new(StubState {
            repo_dir,
            repository_name: repository_name.to_string(),
            calls: Mutex::new(HashMap::new()),
            pulls: pull_requests::PullRequests::default(),
            templates: approval_rules::Templates::default(),
        });
        let app = Router::new()
            .route("/", post(handle))
            .layer(DefaultBodyLimit::max(1024 * 1024))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CodeCommitStub {
            state,
            address,
            server,
        })
    }

    /// Base URL for `endpoint_url` / `AWS_ENDPOINT_URL_CODECOMMIT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// How many requests named operation `op` (e.g. `"GetDifferences"`),
    /// including ones answered with an error.
    pub fn calls(&self, op: &str) -> usize {
        self.state.calls().get(op).copied().unwrap_or(0)
    }
}

impl Drop for CodeCommitStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An error in the JSON 1.1 shape the SDK decodes into typed errors.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn client(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "InternalFailure",
            message: message.into(),
        }
    }
}

fn json_response(status: StatusCode, body: &Value, error_code: Option<&str>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&new_uuid()) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = error_code.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("x-amzn-errortype", code);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({"__type": self.code, "message": self.message}),
            Some(self.code),
        )
    }
}

async fn handle(State(state): State<Arc<StubState>>, headers: HeaderMap, body: Bytes) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
        .to_string();
    *state.calls().entry(operation.clone()).or_insert(0) += 1;
    let caller = pull_requests::caller(
        headers.get(PRINCIPAL_HEADER).and_then(|v| v.to_str().ok()),
        headers.get("authorization").and_then(|v| v.to_str().ok()),
    );
    let result = match operation.as_str() {
        "GetFile" => get_file(&state, &body).await,
        "GetDifferences" => get_differences(&state, &body).await,
        "GetBranch" => get_branch(&state, &body).await,
        "GetPullRequest" => pull_requests::get_pull_request(&state, &body).await,
        "GetCommentsForPullRequest" => pull_requests::get_comments(&state, &body).await,
        "PostCommentForPullRequest" => pull_requests::post_comment(&state, &body, &caller).await,
        "UpdateComment" => pull_requests::update_comment(&state, &body, &caller).await,
        "UpdatePullRequestApprovalState" => {
            pull_requests::update_approval_state(&state, &body, &caller).await
        }
        "" => Err(ApiError::client(
            "UnknownOperationException",
            format!("missing or malformed X-Amz-Target (expected {TARGET_PREFIX}<Operation>)"),
        )),
        other => approval_rules::handle(&state, other, &body).unwrap_or_else(|| {
            Err(ApiError::client(
                "UnknownOperationException",
                format!("the gild-tests CodeCommit stub does not implement {other}"),
            ))
        }),
    };
    match result {
        Ok(value) => json_response(StatusCode::OK, &value, None),
        Err(error) => error.into_response(),
    }
}

fn parse_input<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // The SDK always sends at least `{}`, but an empty body is what a bare
    // client would send for "no members".
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::client("SerializationException", format!("invalid request: {e}")))
}

impl StubState {
    fn check_repository(&self, name: Option<&str>) -> Result<(), ApiError> {
        match name {
            None | Some("") => Err(ApiError::client(
                "RepositoryNameRequiredException",
                "A repository name is required but was not specified.",
            )),
            Some(name) if name == self.repository_name => Ok(()),
            Some(name) => Err(ApiError::client(
                "RepositoryDoesNotExistException",
                format!("{name} does not exist"),
            )),
        }
    }

    async fn git(&self, args: &[&str]) -> Result<std::process::Output, ApiError> {
        tokio::process::Command::new("git")
            .args(args)
            .current_dir(&self.repo_dir)
            .envs(GIT_ENV)
            // Paths from requests are file names, never glob patterns.
            .env("GIT_LITERAL_PATHSPECS", "1")
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| ApiError::internal(format!("cannot run git: {e}")))
    }

    /// Resolves a branch name, tag or commit id to a full commit id.
    async fn resolve_commit(&self, specifier: &str) -> Result<String, ApiError> {
        if specifier.is_empty() || specifier.starts_with('-') || specifier.contains('\0') {
            return Err(ApiError::client(
                "InvalidCommitException",
                format!("The specified commit `{specifier}` is not valid."),
            ));
        }
        let rev = format!("{specifier}^{{commit}}");
        let output = self
            .git(&["rev-parse", "--verify", "--quiet", "--end-of-options", &rev])
            .await?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if output.status.success() && !id.is_empty() {
            Ok(id)
        } else {
            Err(ApiError::client(
                "CommitDoesNotExistException",
                format!("Could not find commit {specifier}"),
            ))
        }
    }

    async fn empty_tree(&self) -> Result<String, ApiError> {
        // Asked of git rather than hard-coded, so SHA-256 repositories work.
        let output = self
            .git(&["hash-object", "-t", "tree", "/dev/null"])
            .await?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if output.status.success() && !id.is_empty() {
            Ok(id)
        } else {
            Err(ApiError::internal(format!(
                "cannot compute the empty tree id: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}

/// CodeCommit accepts paths with or without a leading slash.
fn normalize_path(path: &str) -> Result<String, ApiError> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    let bad_component = trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if trimmed.contains('\0') || (!trimmed.is_empty() && bad_component) {
        return Err(ApiError::client(
            "InvalidPathException",
            format!("The specified path `{path}` is not valid."),
        ));
    }
    Ok(trimmed.to_string())
}

fn file_mode_name(mode: &str) -> &'static str {
    match mode {
        "100755" => "EXECUTABLE",
        "120000" => "SYMLINK",
        _ => "NORMAL",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetFileInput {
    repository_name: Option<String>,
    commit_specifier: Option<String>,
    file_path: Option<String>,
}

async fn get_file(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetFileInput = parse_input(body)?;
    state.check_repository(input.repository_name.as_deref())?;
    let requested = input.file_path.unwrap_or_default();
    let path = normalize_path(&requested)?;
    if path.is_empty() {
        return Err(ApiError::client(
            "PathRequiredException",
            "The folderPath for a location cannot be null.",
        ));
    }
    // Like CodeCommit: no specifier means the head of the default branch.
    let specifier = input.commit_specifier.unwrap_or_else(|| "HEAD".to_string());
    let commit_id = state.resolve_commit(&specifier).await?;

    let not_found = || {
        ApiError::client(
            "FileDoesNotExistException",
            format!("The file {path} does not exist in commit {commit_id}"),
        )
    };
    let listing = state
        .git(&["ls-tree", "-z", "--full-tree", &commit_id, "--", &path])
        .await?;
    if !listing.status.success() {
        return Err(not_found());
    }
    // `<mode> SP <type> SP <object> TAB <path> NUL`
    let entry = listing
        .stdout
        .split(|b| *b == 0)
        .filter_map(|raw| {
            let text = std::str::from_utf8(raw).ok()?;
            let (meta, name) = text.split_once('\t')?;
            let mut fields = meta.split(' ');
            let mode = fields.next()?;
            let kind = fields.next()?;
            let object = fields.next()?;
            Some((mode.to_string(), kind.to_string(), object.to_string(), name))
        })
        .find(|(_, kind, _, name)| kind == "blob" && *name == path);
    let Some((mode, _, blob_id, _)) = entry else {
        return Err(not_found());
    };

    let content = state.git(&["cat-file", "blob", &blob_id]).await?;
    if !content.status.success() {
        return Err(ApiError::internal(format!(
            "cannot read blob {blob_id}: {}",
            String::from_utf8_lossy(&content.stderr).trim()
        )));
    }
    Ok(json!({
        "commitId": commit_id,
        "blobId": blob_id,
        "filePath": path,
        "fileMode": file_mode_name(&mode),
        "fileSize": content.stdout.len(),
        "fileContent": BASE64.encode(&content.stdout),
    }))
}

#[derive(Deserialize)]
struct GetDifferencesInput {
    #[serde(rename = "repositoryName")]
    repository_name: Option<String>,
    #[serde(rename = "beforeCommitSpecifier")]
    before_commit_specifier: Option<String>,
    #[serde(rename = "afterCommitSpecifier")]
    after_commit_specifier: Option<String>,
    #[serde(rename = "beforePath")]
    before_path: Option<String>,
    #[serde(rename = "afterPath")]
    after_path: Option<String>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i64>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

fn encode_token(offset: usize) -> String {
    BASE64.encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let raw = BASE64.decode(token).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix(TOKEN_PREFIX)?
        .parse()
        .ok()
}

async fn get_differences(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetDifferencesInput = parse_input(body)?;
    state.check_repository(input.repository_name.as_deref())?;
    let page_size = match input.max_results {
        None => DEFAULT_MAX_RESULTS,
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
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
    let after_specifier = match input.after_commit_specifier.as_deref() {
        None | Some("") => {
            return Err(ApiError::client(
                "CommitRequiredException",
                "A commit must be specified.",
            ))
        }
        Some(s) => s,
    };
    let after = state.resolve_commit(after_specifier).await?;
    // No "before" means comparing with nothing: every file is an addition.
    let before = match input.before_commit_specifier.as_deref() {
        None | Some("") => state.empty_tree().await?,
        Some(s) => state.resolve_commit(s).await?,
    };
    let mut pathspecs = Vec::new();
    for path in [&input.before_path, &input.after_path]
        .into_iter()
        .flatten()
    {
        let path = normalize_path(path)?;
        if !path.is_empty() && !pathspecs.contains(&path) {
            pathspecs.push(path);
        }
    }

    let mut args = vec![
        "diff-tree",
        "-r",
        "-z",
        "--no-renames",
        "--no-abbrev",
        before.as_str(),
        after.as_str(),
        "--",
    ];
    args.extend(pathspecs.iter().map(String::as_str));
    let output = state.git(&args).await?;
    if !output.status.success() {
        return Err(ApiError::internal(format!(
            "git diff-tree failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let differences = parse_raw_diff(&output.stdout)?;

    if offset > differences.len() {
        return Err(ApiError::client(
            "InvalidContinuationTokenException",
            "The specified continuation token is not valid.",
        ));
    }
    let end = offset.saturating_add(page_size).min(differences.len());
    let mut response = json!({ "differences": differences[offset..end] });
    if end < differences.len() {
        response["NextToken"] = Value::String(encode_token(end));
    }
    Ok(response)
}

/// Parses `git diff-tree -r -z --no-abbrev` raw output:
/// `:<old mode> <new mode> <old id> <new id> <status> NUL <path> NUL`.
fn parse_raw_diff(raw: &[u8]) -> Result<Vec<Value>, ApiError> {
    let text = String::from_utf8_lossy(raw);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut differences = Vec::new();
    while let Some(meta) = fields.next() {
        let malformed = || ApiError::internal(format!("unexpected git diff-tree output: {meta}"));
        let path = fields.next().ok_or_else(malformed)?;
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [old_mode, new_mode, old_id, new_id, status] = parts.as_slice() else {
            return Err(malformed());
        };
        let before = json!({"blobId": old_id, "path": path, "mode": old_mode});
        let after = json!({"blobId": new_id, "path": path, "mode": new_mode});
        let difference = match status.chars().next() {
            Some('A') => json!({"afterBlob": after, "changeType": "A"}),
            Some('D') => json!({"beforeBlob": before, "changeType": "D"}),
            // CodeCommit has no type-change kind; a mode/type change is a
            // modification to it.
            _ => json!({"beforeBlob": before, "afterBlob": after, "changeType": "M"}),
        };
        differences.push(difference);
    }
    Ok(differences)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetBranchInput {
    repository_name: Option<String>,
    branch_name: Option<String>,
}

async fn get_branch(state: &StubState, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetBranchInput = parse_input(body)?;
    state.check_repository(input.repository_name.as_deref())?;
    let name = match input.branch_name.as_deref() {
        None | Some("") => {
            return Err(ApiError::client(
                "BranchNameRequiredException",
                "A branch name is required, but was not specified.",
            ))
        }
        Some(name) => name,
    };
    if name.starts_with('-') || name.contains('\0') || name.contains("..") {
        return Err(ApiError::client(
            "InvalidBranchNameException",
            format!("The specified branch name `{name}` is not valid."),
        ));
    }
    let rev = format!("refs/heads/{name}^{{commit}}");
    let output = state
        .git(&["rev-parse", "--verify", "--quiet", "--end-of-options", &rev])
        .await?;
    let commit_id = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || commit_id.is_empty() {
        return Err(ApiError::client(
            "BranchDoesNotExistException",
            format!("Could not find branch {name}"),
        ));
    }
    Ok(json!({"branch": {"branchName": name, "commitId": commit_id}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_token(&encode_token(7)), Some(7));
        assert_eq!(decode_token("not base64!"), None);
        assert_eq!(decode_token(&BASE64.encode("other:1")), None);
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path("/a/b.txt").ok(), Some("a/b.txt".to_string()));
        assert!(normalize_path("a/../b").is_err());
        assert!(normalize_path("a//b").is_err());
        assert_eq!(normalize_path("").ok(), Some(String::new()));
    }

    #[test]
    fn raw_diff_is_parsed() {
        let raw = b":000000 100644 0000 aaaa A\0new.txt\0:100644 000000 bbbb 0000 D\0old.txt\0:100644 100755 cccc dddd M\0x.sh\0";
        let diffs = parse_raw_diff(raw).expect("parses");
        assert_eq!(diffs.len(), 3);
        assert_eq!(diffs[0]["changeType"], "A");
        assert_eq!(diffs[0]["afterBlob"]["blobId"], "aaaa");
        assert!(diffs[0].get("beforeBlob").is_none());
        assert_eq!(diffs[1]["beforeBlob"]["path"], "old.txt");
        assert_eq!(diffs[2]["afterBlob"]["mode"], "100755");
    }
}
