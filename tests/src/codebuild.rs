//! A transparent recording proxy in front of moto's CodeBuild.
//!
//! moto accepts `StartBuild` but drops `environmentVariablesOverride`, which
//! is exactly what the pipeline's tests need to assert on. The proxy forwards
//! every request unchanged (so moto still tracks builds and projects) and
//! records what each successful `StartBuild` asked for.
//!
//! moto's `BatchGetBuilds` calls every build `SUCCEEDED` the moment it is
//! asked, which would let the reconciler resume a bake whose build failed or
//! never ended. The proxy answers for the builds it saw start as CodeBuild
//! would: `IN_PROGRESS` until the harness reports their end
//! ([`CodeBuildProxy::ended`], from the completion event it makes), then
//! that status, those exported variables and that log link, with the
//! environment the start asked for.
//!
//! `StartBuild`'s `idempotencyToken` is honoured as CodeBuild documents it
//! (`StartBuild` API reference, `idempotencyToken`): the token "is valid for
//! 5 minutes. If you repeat the StartBuild request with the same token, but
//! change a parameter, CodeBuild returns a parameter mismatch error." moto
//! ignores the token and would start a second build, so a repeat within
//! [`TOKEN_WINDOW`] is answered here with the first start's answer, and a
//! repeat with other parameters with `InvalidInputException` (the reference
//! names no code for the mismatch; this is the one CodeBuild uses for bad
//! input). Neither reaches moto. The token is scoped to the account, the
//! stricter reading: the documentation does not say per project.
//!
//! `StopBuild` of a build that has ended (reported through
//! [`CodeBuildProxy::ended`], or stopped before) is refused with
//! `InvalidInputException`, as CodeBuild refuses to stop a finished build;
//! moto would mark it `STOPPED` again. A running build is stopped by moto
//! and from then on ends `STOPPED` here too ([`CodeBuildProxy::stopped`]).
//!
//! With [`Limits`] it also behaves like CodeBuild under load: a latency per
//! call, `ThrottlingException` above a request rate (a token bucket, as AWS
//! meters API calls), and `AccountLimitExceededException` when `StartBuild`
//! would run more builds at once than the account's quota. Builds count as
//! running until [`CodeBuildProxy::finish`] ends them.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::http_client::{self, HttpClient, Upstream};
use crate::HarnessError;

const TARGET_PREFIX: &str = "CodeBuild_20161006.";
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// How long CodeBuild remembers a `StartBuild` idempotency token.
pub const TOKEN_WINDOW: Duration = Duration::from_secs(5 * 60);

/// A token's first start: when, what it asked (the request without the
/// token) and what CodeBuild answered.
struct TokenUse {
    at: Instant,
    request: serde_json::Value,
    answer: Answer,
}

/// An answer as the proxy sends it.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(status: StatusCode, body: serde_json::Value) -> Answer {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        Answer {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// What one successful `StartBuild` requested, plus the ids moto assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBuild {
    pub project_name: String,
    pub source_version: Option<String>,
    /// `environmentVariablesOverride` as (name, value), in request order.
    pub env: Vec<(String, String)>,
    pub idempotency_token: Option<String>,
    pub build_id: String,
    pub arn: String,
}

impl StartedBuild {
    /// The overridden value of environment variable `name`, if any.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the proxy loads CodeBuild (all off by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Added before every call is answered.
    pub latency: Duration,
    /// Calls per second (any operation) before `ThrottlingException`; the
    /// bucket holds one second's worth.
    pub rate_per_sec: Option<f64>,
    /// Builds running at once before `AccountLimitExceededException`.
    pub max_running: Option<usize>,
}

/// What the limits did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitCounts {
    pub throttled: usize,
    pub over_quota: usize,
    pub running: usize,
    pub peak_running: usize,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A running proxy; the server stops on drop.
pub struct CodeBuildProxy {
    state: Arc<ProxyState>,
    address: SocketAddr,
    server: JoinHandle<()>,
}

struct ProxyState {
    upstream: Upstream,
    client: HttpClient,
    started: Mutex<Vec<StartedBuild>>,
    /// `detail` of each started build's completion event, by build id.
    ended: Mutex<HashMap<String, serde_json::Value>>,
    calls: Mutex<HashMap<String, usize>>,
    limits: Limits,
    bucket: Mutex<Bucket>,
    running: Mutex<Running>,
    counts: Mutex<LimitCounts>,
    /// Idempotency tokens seen; held across the whole start, so two starts
    /// with one token at once still make one build, as in CodeBuild.
    tokens: tokio::sync::Mutex<HashMap<String, TokenUse>>,
    /// StartBuild calls answered from a token (no new build).
    token_repeats: Mutex<usize>,
    /// Builds `StopBuild` stopped, in order.
    stopped: Mutex<Vec<String>>,
}

/// Builds running, plus StartBuild calls admitted and not answered yet: the
/// quota check and the start are one step, as in CodeBuild.
#[derive(Default)]
struct Running {
    builds: BTreeSet<String>,
    admitted: usize,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Recorded data stays valid even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl CodeBuildProxy {
    /// Proxies to `moto_endpoint` (e.g. `MotoServer::endpoint()`).
    pub async fn start(moto_endpoint: &str) -> Result<CodeBuildProxy, HarnessError> {
        CodeBuildProxy::start_limited(moto_endpoint, Limits::default()).await
    }

    /// A proxy that also applies `limits`.
    pub async fn start_limited(
        moto_endpoint: &str,
        limits: Limits,
    ) -> Result<CodeBuildProxy, HarnessError> {
        let upstream = Upstream::parse(moto_endpoint)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("cannot bind the CodeBuild proxy", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the CodeBuild proxy address", e))?;
        let state = Arc::new(ProxyState {
            upstream,
            client: http_client::new_client(),
            started: Mutex::new(Vec::new()),
            ended: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            limits,
            bucket: Mutex::new(Bucket {
                tokens: limits.rate_per_sec.unwrap_or(0.0),
                refilled: Instant::now(),
            }),
            running: Mutex::new(Running::default()),
            counts: Mutex::new(LimitCounts::default()),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
            token_repeats: Mutex::new(0),
            stopped: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CodeBuildProxy {
            state,
            address,
            server,
        })
    }

    /// Base URL for `AWS_ENDPOINT_URL_CODEBUILD` / `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Successful `StartBuild` calls, oldest first.
    pub fn started(&self) -> Vec<StartedBuild> {
        relock(&self.state.started).clone()
    }

    /// How many requests named CodeBuild operation `op` went through.
    pub fn calls(&self, op: &str) -> usize {
        relock(&self.state.calls).get(op).copied().unwrap_or(0)
    }

    /// Ends a running build, freeing its slot; `false` if it was not running.
    pub fn finish(&self, build_id: &str) -> bool {
        self.state.finish(build_id)
    }

    /// The builds `StopBuild` stopped (their ids), oldest first.
    pub fn stopped(&self) -> Vec<String> {
        relock(&self.state.stopped).clone()
    }

    /// Records how a build ended, from its completion event (whether or not
    /// the event is ever delivered): `BatchGetBuilds` tells it from now on.
    pub fn ended(&self, event: &serde_json::Value) {
        let detail = &event["detail"];
        let Some(arn) = detail["build-id"].as_str() else {
            return;
        };
        let id = arn.rsplit('/').next().unwrap_or(arn).to_owned();
        relock(&self.state.ended).insert(id, detail.clone());
    }

    /// `StartBuild` calls answered from an earlier call's idempotency token
    /// instead of starting a build.
    pub fn token_repeats(&self) -> usize {
        *relock(&self.state.token_repeats)
    }

    pub fn limit_counts(&self) -> LimitCounts {
        *relock(&self.state.counts)
    }
}

impl ProxyState {
    fn finish(&self, build_id: &str) -> bool {
        let mut running = relock(&self.running);
        let ended = running.builds.remove(build_id);
        relock(&self.counts).running = running.builds.len();
        ended
    }

    /// The error CodeBuild would answer under the limits, if any.
    fn refuse(&self, operation: Option<&str>) -> Option<(&'static str, String)> {
        if let Some(rate) = self.limits.rate_per_sec {
            let mut bucket = relock(&self.bucket);
            let now = Instant::now();
            let refill = now.duration_since(bucket.refilled).as_secs_f64() * rate;
            bucket.tokens = (bucket.tokens + refill).min(rate.max(1.0));
            bucket.refilled = now;
            if bucket.tokens < 1.0 {
                relock(&self.counts).throttled += 1;
                return Some(("ThrottlingException", "Rate exceeded".to_owned()));
            }
            bucket.tokens -= 1.0;
        }
        if let (Some(max), Some("StartBuild")) = (self.limits.max_running, operation) {
            let mut running = relock(&self.running);
            if running.builds.len() + running.admitted >= max {
                relock(&self.counts).over_quota += 1;
                return Some((
                    "AccountLimitExceededException",
                    format!("Cannot have more than {max} active builds for the account"),
                ));
            }
            running.admitted += 1;
        }
        None
    }

    /// The answer to an admitted StartBuild: `build_id` runs if it started.
    fn answered(&self, build_id: Option<&str>) {
        let mut running = relock(&self.running);
        running.admitted = running.admitted.saturating_sub(1);
        if let Some(build_id) = build_id {
            running.builds.insert(build_id.to_owned());
        }
        let mut counts = relock(&self.counts);
        counts.running = running.builds.len();
        counts.peak_running = counts.peak_running.max(running.builds.len());
    }
}

impl ProxyState {
    /// moto's `BatchGetBuilds` answer, corrected for the builds this proxy
    /// started: their status (running until reported ended), exported
    /// variables, log link and the environment their start asked for.
    fn builds_as_codebuild_tells_them(&self, body: Bytes) -> Bytes {
        let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return body;
        };
        let started = relock(&self.started);
        let ended = relock(&self.ended);
        for build in answer["builds"].as_array_mut().into_iter().flatten() {
            let id = build["id"].as_str().unwrap_or_default().to_owned();
            let Some(start) = started.iter().find(|s| s.build_id == id) else {
                continue;
            };
            let vars = &mut build["environment"]["environmentVariables"];
            if !vars.is_array() {
                *vars = json!([]);
            }
            if let Some(vars) = vars.as_array_mut() {
                for (name, value) in &start.env {
                    vars.retain(|v| v["name"] != name.as_str());
                    vars.push(json!({"name": name, "value": value, "type": "PLAINTEXT"}));
                }
            }
            if let Some(version) = &start.source_version {
                build["sourceVersion"] = json!(version);
            }
            let Some(object) = build.as_object_mut() else {
                continue;
            };
            match ended.get(&id) {
                Some(detail) => {
                    let info = &detail["additional-information"];
                    let exported: Vec<serde_json::Value> = info["exported-environment-variables"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| json!({"name": v["name"], "value": v["value"]}))
                        .collect();
                    object.insert("buildStatus".into(), detail["build-status"].clone());
                    object.insert("currentPhase".into(), json!("COMPLETED"));
                    object.insert("buildComplete".into(), json!(true));
                    object.insert("exportedEnvironmentVariables".into(), json!(exported));
                    object.insert(
                        "logs".into(),
                        json!({"deepLink": info["logs"]["deep-link"]}),
                    );
                }
                None => {
                    object.insert("buildStatus".into(), json!("IN_PROGRESS"));
                    object.insert("currentPhase".into(), json!("BUILD"));
                    object.insert("buildComplete".into(), json!(false));
                    object.remove("endTime");
                    object.remove("exportedEnvironmentVariables");
                }
            }
        }
        serde_json::to_vec(&answer).map(Bytes::from).unwrap_or(body)
    }
}

impl Drop for CodeBuildProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn proxy_error(status: StatusCode, message: String) -> Answer {
    Answer::json(
        status,
        json!({"__type": "GildProxyError", "message": message}),
    )
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            return proxy_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
            .into_response()
        }
    };
    // Run to the end even when the caller hangs up: AWS records a build
    // (and its idempotency token) once the request arrived, whether or not
    // the caller lives to read the answer. Axum drops a handler whose client
    // went away, so a caller killed mid-`StartBuild` would otherwise leave a
    // build in moto with no token on record, and its retry a second build.
    match tokio::spawn(handle(state, parts, body)).await {
        Ok(response) => response,
        Err(e) => proxy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("proxy task: {e}"),
        )
        .into_response(),
    }
}

async fn handle(
    state: Arc<ProxyState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Response {
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .map(str::to_string);
    if let Some(op) = &operation {
        *relock(&state.calls).entry(op.clone()).or_insert(0) += 1;
    }
    if !state.limits.latency.is_zero() {
        tokio::time::sleep(state.limits.latency).await;
    }
    if operation.as_deref() == Some("StopBuild") {
        return stop_build(&state, &parts, body).await.into_response();
    }
    let token = match operation.as_deref() {
        Some("StartBuild") => token_request(&body),
        _ => None,
    };
    let Some((token, request)) = token else {
        return answer(&state, &parts, body, operation.as_deref())
            .await
            .into_response();
    };
    let mut tokens = state.tokens.lock().await;
    tokens.retain(|_, used| used.at.elapsed() < TOKEN_WINDOW);
    if let Some(used) = tokens.get(&token) {
        if used.request == request {
            *relock(&state.token_repeats) += 1;
            return used.answer.clone().into_response();
        }
        return Answer::json(
            StatusCode::BAD_REQUEST,
            json!({
                "__type": "InvalidInputException",
                "message": format!("idempotencyToken {token} was used with other parameters (parameter mismatch)"),
            }),
        )
        .into_response();
    }
    let answered = answer(&state, &parts, body, Some("StartBuild")).await;
    if answered.status.is_success() {
        tokens.insert(
            token,
            TokenUse {
                at: Instant::now(),
                request,
                answer: answered.clone(),
            },
        );
    }
    answered.into_response()
}

/// `StopBuild`: refused for a build that has ended, else moto stops it and
/// it ends `STOPPED` (its slot freed).
async fn stop_build(state: &ProxyState, parts: &axum::http::request::Parts, body: Bytes) -> Answer {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let asked = request["id"].as_str().unwrap_or_default();
    let id = asked.rsplit('/').next().unwrap_or(asked).to_owned();
    if relock(&state.ended).contains_key(&id) {
        return Answer::json(
            StatusCode::BAD_REQUEST,
            json!({"__type": "InvalidInputException", "message": format!("Build {id} has already completed and cannot be stopped")}),
        );
    }
    let answered = answer(state, parts, body, Some("StopBuild")).await;
    if answered.status.is_success() {
        let detail =
            json!({"build-id": id, "build-status": "STOPPED", "additional-information": {}});
        relock(&state.ended).insert(id.clone(), detail);
        state.finish(&id);
        relock(&state.stopped).push(id);
    }
    answered
}

/// A `StartBuild`'s idempotency token and the request without it (what a
/// repeat must match), when it has one.
fn token_request(body: &Bytes) -> Option<(String, serde_json::Value)> {
    let mut request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = request.as_object_mut()?.remove("idempotencyToken")?;
    Some((token.as_str()?.to_owned(), request))
}

/// What CodeBuild answers: the limits' refusal, or moto's answer (with
/// starts recorded and `BatchGetBuilds` corrected).
async fn answer(
    state: &ProxyState,
    parts: &axum::http::request::Parts,
    body: Bytes,
    operation: Option<&str>,
) -> Answer {
    if let Some((code, message)) = state.refuse(operation) {
        return Answer::json(
            StatusCode::BAD_REQUEST,
            json!({"__type": code, "message": message}),
        );
    }
    let upstream = state
        .upstream
        .forward(&state.client, parts, body.clone(), UPSTREAM_TIMEOUT)
        .await;
    let started = match &upstream {
        Ok(answer) if operation == Some("StartBuild") && answer.status.is_success() => {
            Some(started_build(&body, &answer.body))
        }
        _ => None,
    };
    if state.limits.max_running.is_some() && operation == Some("StartBuild") {
        state.answered(started.as_ref().map(|b| b.build_id.as_str()));
    }
    if let Some(started) = started {
        relock(&state.started).push(started);
    }
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(e) => return proxy_error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let body = if operation == Some("BatchGetBuilds") && upstream.status.is_success() {
        state.builds_as_codebuild_tells_them(upstream.body)
    } else {
        upstream.body
    };
    let mut headers = axum::http::HeaderMap::new();
    http_client::copy_headers(&upstream.headers, &mut headers);
    Answer {
        status: upstream.status,
        headers,
        body,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StartBuildInput {
    #[serde(default)]
    project_name: String,
    source_version: Option<String>,
    #[serde(default)]
    environment_variables_override: Vec<EnvironmentVariable>,
    idempotency_token: Option<String>,
}

#[derive(Deserialize)]
struct EnvironmentVariable {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
struct StartBuildOutput {
    #[serde(default)]
    build: BuildIds,
}

#[derive(Deserialize, Default)]
struct BuildIds {
    #[serde(default)]
    id: String,
    #[serde(default)]
    arn: String,
}

/// Best effort: a request moto accepted but we cannot parse is still
/// recorded, so a test asserting on it fails on the fields, not on the count.
fn started_build(request: &Bytes, response: &Bytes) -> StartedBuild {
    let input: StartBuildInput = serde_json::from_slice(request).unwrap_or_default();
    let output: StartBuildOutput = serde_json::from_slice(response).unwrap_or_default();
    StartedBuild {
        project_name: input.project_name,
        source_version: input.source_version,
        env: input
            .environment_variables_override
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect(),
        idempotency_token: input.idempotency_token,
        build_id: output.build.id,
        arn: output.build.arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_build_is_parsed() {
        let request = Bytes::from_static(
            br#"{"projectName":"p","sourceVersion":"abc","idempotencyToken":"t",
                "environmentVariablesOverride":[{"name":"A","value":"1","type":"PLAINTEXT"}]}"#,
        );
        let response = Bytes::from_static(br#"{"build":{"id":"p:1","arn":"arn:x"}}"#);
        let started = started_build(&request, &response);
        assert_eq!(started.project_name, "p");
        assert_eq!(started.source_version.as_deref(), Some("abc"));
        assert_eq!(started.env_value("A"), Some("1"));
        assert_eq!(started.idempotency_token.as_deref(), Some("t"));
        assert_eq!(started.build_id, "p:1");
        assert_eq!(started.arn, "arn:x");
    }
}
