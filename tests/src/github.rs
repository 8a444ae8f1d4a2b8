//! A stand-in for GitHub's REST API over a real git repository: the
//! endpoints the GitHub adapters call (contents, compare, trees, branches;
//! and for pull requests: commit statuses, issue comments, the pull
//! request's files, the token's user), with their documented response
//! shapes, bearer-token checks, and a count of calls per endpoint. The
//! pull-request endpoints (`reviews`) record what was written.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::HarnessError;

mod reviews;

pub use reviews::TOKEN_USER;

struct StubState {
    repo: PathBuf,
    repository: String,
    token: String,
    calls: Mutex<HashMap<&'static str, usize>>,
    reviews: reviews::Reviews,
}

impl StubState {
    fn count(&self, name: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(name).or_insert(0) += 1;
        }
    }
}

pub struct GitHubStub {
    address: SocketAddr,
    state: Arc<StubState>,
    server: JoinHandle<()>,
}

impl GitHubStub {
    /// Serves `repository` (`owner/name`) from the git repo at `repo`,
    /// answering only requests bearing `token`.
    pub async fn start(
        repo: PathBuf,
        repository: &str,
        token: &str,
    ) -> Result<GitHubStub, HarnessError> {
        let state = Arc::new(StubState {
            repo,
            repository: repository.to_owned(),
            token: token.to_owned(),
            calls: Mutex::new(HashMap::new()),
            reviews: reviews::Reviews::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("binding the GitHub stub", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("reading the GitHub stub's address", e))?;
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitHubStub {
            address,
            state,
            server,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Calls so far to an endpoint: `contents`, `compare`, `trees`,
    /// `branches`, `statuses`, `comments` (any method), `files`, `user`.
    pub fn calls(&self, endpoint: &str) -> usize {
        self.state
            .calls
            .lock()
            .map(|c| c.get(endpoint).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for GitHubStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
            .to_string(),
    )
        .into_response()
}

async fn git(state: &StubState, args: &[&str]) -> Option<Vec<u8>> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(&state.repo)
        .args(args)
        .output()
        .await
        .ok()?;
    out.status.success().then_some(out.stdout)
}

async fn handle(State(state): State<Arc<StubState>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", state.token).as_str());
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if parts.method != Method::GET || path == "/user" || reviews::handles(&path, &state) {
        let body = match axum::body::to_bytes(body, 1 << 20).await {
            Ok(body) => body,
            Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
        };
        return reviews::handle(&state, &parts, &path, &query, &body).await;
    }
    let prefix = format!("/repos/{}/", state.repository);
    let Some(rest) = path.strip_prefix(&prefix) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let (endpoint, arg) = rest.split_once('/').unwrap_or((rest, ""));
    let count = |name: &'static str| state.count(name);
    match endpoint {
        "contents" => {
            count("contents");
            let reference = query.get("ref").map(String::as_str).unwrap_or("HEAD");
            match git(&state, &["show", &format!("{reference}:{arg}")]).await {
                Some(bytes) => (
                    StatusCode::OK,
                    [("content-type", "application/vnd.github.raw+json")],
                    bytes,
                )
                    .into_response(),
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        "compare" => {
            count("compare");
            let Some((base, head)) = arg.split_once("...") else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(raw) = git(&state, &["diff", "--name-status", "-M", base, head]).await else {
                return error(
                    StatusCode::NOT_FOUND,
                    "No common ancestor between base and head.",
                );
            };
            let files: Vec<Value> = String::from_utf8_lossy(&raw)
                .lines()
                .filter_map(|line| {
                    let mut parts = line.split('\t');
                    let status = parts.next()?;
                    let first = parts.next()?;
                    Some(match parts.next() {
                        Some(renamed) => json!({"filename": renamed, "previous_filename": first, "status": "renamed"}),
                        None => json!({"filename": first, "status": match status {
                            "A" => "added", "D" => "removed", _ => "modified" }}),
                    })
                })
                .collect();
            (
                StatusCode::OK,
                axum::Json(json!({"status": "ahead", "files": files})),
            )
                .into_response()
        }
        "git" => {
            count("trees");
            let Some(sha) = arg.strip_prefix("trees/") else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(raw) = git(&state, &["ls-tree", "-r", sha]).await else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let tree: Vec<Value> = String::from_utf8_lossy(&raw)
                .lines()
                .filter_map(|line| {
                    let (meta, path) = line.split_once('\t')?;
                    let mut meta = meta.split_whitespace();
                    let mode = meta.next()?;
                    let kind = meta.next()?;
                    let sha = meta.next()?;
                    Some(json!({"path": path, "mode": mode, "type": kind, "sha": sha}))
                })
                .collect();
            (
                StatusCode::OK,
                axum::Json(json!({"sha": sha, "tree": tree, "truncated": false})),
            )
                .into_response()
        }
        "branches" => {
            count("branches");
            match git(&state, &["rev-parse", &format!("refs/heads/{arg}")]).await {
                Some(sha) => {
                    let sha = String::from_utf8_lossy(&sha).trim().to_owned();
                    (
                        StatusCode::OK,
                        axum::Json(json!({"name": arg, "commit": {"sha": sha}})),
                    )
                        .into_response()
                }
                None => error(StatusCode::NOT_FOUND, "Branch not found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
