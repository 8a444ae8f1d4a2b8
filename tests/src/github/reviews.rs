//! The GitHub stand-in's pull-request endpoints, as GitHub's REST
//! reference documents them: commit statuses (`POST .../statuses/{sha}`),
//! issue comments (list, create, update, delete), a pull request's files
//! (the real diff between its base and head), and the token's user. What
//! was written is recorded for assertions; listings page with `per_page`,
//! `page` and a `Link` header, as GitHub's do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::{error, git, GitHubStub, StubState};

/// The login of the user the stub's token belongs to (`GET /user`): the
/// author of every comment created through the API.
pub const TOKEN_USER: &str = "gild-bot";

/// "Responses include a maximum of 3000 files" (List pull requests files).
const FILES_LIMIT: usize = 3000;
/// GitHub refuses a longer status description.
const DESCRIPTION_LIMIT: usize = 140;
/// An issue comment's body is at most 65536 characters.
const BODY_LIMIT: usize = 65_536;
/// Timestamps are not what the adapters read; one fixed instant keeps the
/// recorded objects comparable.
const TIME: &str = "2026-01-13T12:00:00Z";

#[derive(Default)]
pub(super) struct Reviews {
    /// Status objects by commit, in the order they were created.
    statuses: Mutex<HashMap<String, Vec<Value>>>,
    comments: Mutex<Comments>,
    /// Pull request number → (base, head).
    pulls: Mutex<HashMap<u64, (String, String)>>,
    /// The next listings of comments to hold until all have arrived.
    race: Mutex<Option<(Arc<Barrier>, usize)>>,
}

#[derive(Default)]
struct Comments {
    last_id: u64,
    by_id: BTreeMap<u64, Comment>,
}

struct Comment {
    number: u64,
    login: String,
    body: String,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl GitHubStub {
    /// Opens pull request `number` from `head_sha` into `base_sha`: its
    /// issue takes comments and its files are `git diff base...head`.
    pub fn open_pull_request(&self, number: u64, base_sha: &str, head_sha: &str) {
        relock(&self.state.reviews.pulls).insert(number, (base_sha.into(), head_sha.into()));
    }

    /// The statuses created on `sha`, oldest first, as GitHub answered them.
    pub fn statuses(&self, sha: &str) -> Vec<Value> {
        relock(&self.state.reviews.statuses)
            .get(sha)
            .cloned()
            .unwrap_or_default()
    }

    /// The comments on pull request `number` now, oldest first.
    pub fn comments(&self, number: u64) -> Vec<Value> {
        let comments = relock(&self.state.reviews.comments);
        comments
            .by_id
            .iter()
            .filter(|(_, c)| c.number == number)
            .map(|(id, c)| comment_json(&self.state.repository, *id, c))
            .collect()
    }

    /// A comment written by `login` outside the adapter (someone else's,
    /// or one a racing writer left); returns its id.
    pub fn add_comment(&self, number: u64, login: &str, body: &str) -> u64 {
        let mut comments = relock(&self.state.reviews.comments);
        comments.last_id += 1;
        let id = comments.last_id;
        comments.by_id.insert(
            id,
            Comment {
                number,
                login: login.into(),
                body: body.into(),
            },
        );
        id
    }

    /// Holds the next `writers` listings of comments until all of them
    /// have arrived, so each writer sees the comments as they were before
    /// any of them wrote: the race two creators run.
    pub fn race_comment_listings(&self, writers: usize) {
        *relock(&self.state.reviews.race) = Some((Arc::new(Barrier::new(writers)), writers));
    }
}

fn comment_json(repository: &str, id: u64, comment: &Comment) -> Value {
    json!({
        "id": id,
        "node_id": format!("IC_{id}"),
        "url": format!("https://api.github.com/repos/{repository}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{repository}/pull/{}#issuecomment-{id}", comment.number),
        "issue_url": format!("https://api.github.com/repos/{repository}/issues/{}", comment.number),
        "body": comment.body,
        "user": {"login": comment.login, "id": 1, "type": "User"},
        "created_at": TIME,
        "updated_at": TIME,
        "author_association": "MEMBER",
    })
}

/// Whether `path` is one of these endpoints (any method).
pub(super) fn handles(path: &str, state: &StubState) -> bool {
    path.strip_prefix(&format!("/repos/{}/", state.repository))
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|first| matches!(first, "statuses" | "issues" | "pulls"))
}

fn validation(message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        [("content-type", "application/json")],
        json!({
            "message": "Validation Failed",
            "errors": [{"message": message, "code": "custom"}],
            "documentation_url": "https://docs.github.com/rest",
        })
        .to_string(),
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(super) async fn handle(
    state: &StubState,
    parts: &Parts,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    if path == "/user" && parts.method == Method::GET {
        state.count("user");
        return ok(
            StatusCode::OK,
            json!({"login": TOKEN_USER, "id": 1, "type": "User"}),
        );
    }
    let Some(rest) = path.strip_prefix(&format!("/repos/{}/", state.repository)) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(_) => return error(StatusCode::BAD_REQUEST, "Problems parsing JSON"),
        }
    };
    let link_base = format!(
        "http://{}{path}",
        parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
    );
    let number = |n: &str| n.parse::<u64>().ok();
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["statuses", sha]) => {
            state.count("statuses");
            create_status(state, sha, &body).await
        }
        (&Method::GET, ["issues", n, "comments"]) => {
            state.count("comments");
            let Some(n) = number(n).filter(|n| is_open(state, *n)) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let race = {
                let mut race = relock(&state.reviews.race);
                let barrier = race.as_ref().map(|(b, _)| Arc::clone(b));
                if let Some((_, left)) = race.as_mut() {
                    *left -= 1;
                    if *left == 0 {
                        *race = None;
                    }
                }
                barrier
            };
            if let Some(barrier) = race {
                barrier.wait().await;
            }
            let listed = {
                let comments = relock(&state.reviews.comments);
                comments
                    .by_id
                    .iter()
                    .filter(|(_, c)| c.number == n)
                    .map(|(id, c)| comment_json(&state.repository, *id, c))
                    .collect()
            };
            page(listed, query, &link_base)
        }
        (&Method::POST, ["issues", n, "comments"]) => {
            state.count("comments");
            let Some(n) = number(n).filter(|n| is_open(state, *n)) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(text) = comment_body(&body) else {
                return validation("body is missing or longer than 65536 characters");
            };
            let mut comments = relock(&state.reviews.comments);
            comments.last_id += 1;
            let id = comments.last_id;
            let comment = Comment {
                number: n,
                login: TOKEN_USER.into(),
                body: text,
            };
            let answer = comment_json(&state.repository, id, &comment);
            comments.by_id.insert(id, comment);
            ok(StatusCode::CREATED, answer)
        }
        (method, ["issues", "comments", id])
            if *method == Method::PATCH || *method == Method::DELETE =>
        {
            state.count("comments");
            let mut comments = relock(&state.reviews.comments);
            let Some(id) = number(id).filter(|id| comments.by_id.contains_key(id)) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            if *method == Method::DELETE {
                comments.by_id.remove(&id);
                return StatusCode::NO_CONTENT.into_response();
            }
            let Some(text) = comment_body(&body) else {
                return validation("body is missing or longer than 65536 characters");
            };
            let Some(comment) = comments.by_id.get_mut(&id) else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            comment.body = text;
            ok(StatusCode::OK, comment_json(&state.repository, id, comment))
        }
        (&Method::GET, ["pulls", n, "files"]) => {
            state.count("files");
            let pull = number(n).and_then(|n| relock(&state.reviews.pulls).get(&n).cloned());
            let Some((base, head)) = pull else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            match files(state, &base, &head).await {
                Some(mut files) => {
                    files.truncate(FILES_LIMIT);
                    page(files, query, &link_base)
                }
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn is_open(state: &StubState, number: u64) -> bool {
    relock(&state.reviews.pulls).contains_key(&number)
}

fn comment_body(body: &Value) -> Option<String> {
    body["body"]
        .as_str()
        .filter(|b| b.chars().count() <= BODY_LIMIT)
        .map(str::to_owned)
}

async fn create_status(state: &StubState, sha: &str, body: &Value) -> Response {
    let known = git(
        state,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{sha}^{{commit}}"),
        ],
    )
    .await
    .is_some();
    if !known {
        return validation(&format!("No commit found for SHA: {sha}"));
    }
    let Some(status) = body["state"]
        .as_str()
        .filter(|s| matches!(*s, "error" | "failure" | "pending" | "success"))
    else {
        return validation("state is not included in the list");
    };
    let description = body["description"].as_str();
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_LIMIT) {
        return validation("description is too long (maximum is 140 characters)");
    }
    let mut statuses = relock(&state.reviews.statuses);
    let id = statuses.values().map(Vec::len).sum::<usize>() + 1;
    let created = json!({
        "url": format!("https://api.github.com/repos/{}/statuses/{sha}", state.repository),
        "id": id,
        "node_id": format!("SC_{id}"),
        "state": status,
        "description": description,
        "target_url": body["target_url"].as_str(),
        "context": body["context"].as_str().unwrap_or("default"),
        "created_at": TIME,
        "updated_at": TIME,
        "creator": {"login": TOKEN_USER, "id": 1, "type": "User"},
    });
    statuses
        .entry(sha.to_owned())
        .or_default()
        .push(created.clone());
    ok(StatusCode::CREATED, created)
}

/// The pull request's files: `git diff base...head` (from their merge
/// base, as GitHub compares a pull request), renames detected, in
/// GitHub's entry shape. Line counts are not computed (0): the adapter
/// does not read them.
async fn files(state: &StubState, base: &str, head: &str) -> Option<Vec<Value>> {
    let range = format!("{base}...{head}");
    let raw = git(state, &["diff", "--raw", "-z", "-M", "--no-abbrev", &range]).await?;
    let text = String::from_utf8_lossy(&raw);
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    let mut files = Vec::new();
    while let Some(meta) = fields.next() {
        // `:<old mode> <new mode> <old blob> <new blob> <status>`, then the
        // path, or for a rename or copy the old path and the new one.
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let [_, _, old_blob, new_blob, status] = parts.as_slice() else {
            return None;
        };
        let first = fields.next()?;
        let mut file = json!({"additions": 0, "deletions": 0, "changes": 0});
        let (filename, kind, sha) = match status.chars().next() {
            Some('R') => {
                file["previous_filename"] = json!(first);
                (fields.next()?, "renamed", new_blob)
            }
            Some('C') => (fields.next()?, "copied", new_blob),
            Some('A') => (first, "added", new_blob),
            Some('D') => (first, "removed", old_blob),
            _ => (first, "modified", new_blob),
        };
        file["sha"] = json!(sha);
        file["filename"] = json!(filename);
        file["status"] = json!(kind);
        files.push(file);
    }
    Some(files)
}

/// One page of `items` (`per_page`: 30 by default, at most 100; `page`
/// from 1), with the `Link` header GitHub sends: `next` and `last` while
/// pages follow, `first` and `prev` after the first.
fn page(items: Vec<Value>, query: &HashMap<String, String>, base: &str) -> Response {
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let number = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let start = (number - 1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    let link =
        |page: usize, rel: &str| format!("<{base}?per_page={per_page}&page={page}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if number < last {
        links.push(link(number + 1, "next"));
        links.push(link(last, "last"));
    }
    if number > 1 {
        links.push(link(1, "first"));
        links.push(link(number - 1, "prev"));
    }
    let mut response = ok(StatusCode::OK, Value::Array(items[start..end].to_vec()));
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        if !links.is_empty() {
            response.headers_mut().insert("link", value);
        }
    }
    response
}
