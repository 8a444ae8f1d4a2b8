//! Runs a real Lambda function binary the way AWS Lambda does: the binary is
//! started with the standard Lambda environment and pulls its events from a
//! local implementation of the Lambda Runtime API (version `2018-06-01`,
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::aws::{ACCOUNT_ID, REGION};
use crate::process::ChildGuard;
use crate::{keep_logs, new_uuid, random_u64, HarnessError};

/// AWS's own default is 3 s, far too short for a debug build talking to moto.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Lambda accepts 6 MB payloads; leave headroom so an oversized response
/// shows up as the function's problem, not as a harness 413.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The error a function reported through `/invocation/{id}/error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for FunctionError {}

/// The result of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Result<Value, FunctionError>,
    /// From handing the event to the function (its `/next` returning) to the
    /// function posting its answer: what AWS reports as `Duration`, i.e.
    /// without queueing or init time.
    pub duration: Duration,
}

struct Queued {
    request_id: String,
    body: Bytes,
    timeout: Duration,
}

enum Answer {
    Response(Bytes),
    Error {
        header_type: Option<String>,
        body: Bytes,
    },
}

struct Finished {
    answer: Answer,
    dispatched_at: Option<Instant>,
    finished_at: Instant,
}

struct Pending {
    reply: oneshot::Sender<Finished>,
    dispatched_at: Option<Instant>,
}

struct ApiState {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    pending: Mutex<HashMap<String, Pending>>,
    first_next: OnceLock<Instant>,
    /// Flips to `true` when the process exits or reports an init error, so
    /// pending invocations fail at once instead of waiting for the timeout.
    died: watch::Sender<bool>,
    log_path: PathBuf,
}

impl ApiState {
    fn pending(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        // The map stays consistent even if a holder panicked.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, line: &str) {
        append_note(&self.log_path, line);
    }
}

/// A function binary running against a private Runtime API server.
/// Dropping it kills (and reaps) the process and stops the server.
pub struct LambdaProcess {
    function_name: String,
    state: Arc<ApiState>,
    queue: mpsc::UnboundedSender<Queued>,
    died: watch::Receiver<bool>,
    child: Arc<ChildGuard>,
    server: JoinHandle<()>,
    exit_watcher: JoinHandle<()>,
    address: SocketAddr,
    spawned_at: Instant,
    timeout: Duration,
    log_path: PathBuf,
}

impl LambdaProcess {
    pub async fn spawn(
        binary: &Path,
        function_name: &str,
        env: &[(String, String)],
    ) -> Result<LambdaProcess, HarnessError> {
        LambdaProcess::spawn_with_args(binary, &[], function_name, env).await
    }

    /// Like `spawn`, for a runtime started with arguments (an interpreter
    /// and its runtime interface client, as Lambda's managed runtimes do).
    pub async fn spawn_with_args(
        binary: &Path,
        args: &[&str],
        function_name: &str,
        env: &[(String, String)],
    ) -> Result<LambdaProcess, HarnessError> {
        validate_function_name(function_name)?;
        if !binary.is_file() {
            return Err(HarnessError::InvalidInput {
                message: format!("function binary {} does not exist", binary.display()),
            });
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("cannot bind the runtime API server", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the runtime API server address", e))?;

        let log_path = std::env::temp_dir().join(format!(
            "gild-lambda-{function_name}-{}-{}.log",
            std::process::id(),
            address.port()
        ));
        let (stdout, stderr) = open_log(&log_path)?;

        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (died_tx, died_rx) = watch::channel(false);
        let state = Arc::new(ApiState {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queue: tokio::sync::Mutex::new(queue_rx),
            pending: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            died: died_tx,
            log_path: log_path.clone(),
        });
        let app = router(Arc::clone(&state));
        let server = tokio::spawn(async move {
            // Only ends on a listener failure; the process then sees connection
            // errors and exits, which surfaces as FunctionDied.
            let _ = axum::serve(listener, app).await;
        });

        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .envs(lambda_environment(binary, function_name, address, env))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let spawned_at = Instant::now();
        let child = match ChildGuard::spawn(&mut command, &format!("`{}`", binary.display())) {
            Ok(child) => Arc::new(child),
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };

        let exit_watcher = tokio::spawn(watch_exit(Arc::clone(&child), Arc::clone(&state)));

        Ok(LambdaProcess {
            function_name: function_name.to_string(),
            state,
            queue: queue_tx,
            died: died_rx,
            child,
            server,
            exit_watcher,
            address,
            spawned_at,
            timeout: DEFAULT_TIMEOUT,
            log_path,
        })
    }

    /// How long `invoke` waits for an answer; also the deadline announced to
    /// the function in `Lambda-Runtime-Deadline-Ms`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Queues one event and waits for the function's response or error.
    pub async fn invoke(&self, event: &Value) -> Result<Invocation, HarnessError> {
        let body = serde_json::to_vec(event).map_err(|source| HarnessError::Json {
            context: "cannot serialize the invocation event".to_string(),
            source,
        })?;
        self.invoke_raw(Bytes::from(body)).await
    }

    /// Queues a payload of any bytes (Lambda's Invoke takes any blob, JSON
    /// or not) and waits for the function's response or error.
    pub async fn invoke_raw(&self, body: Bytes) -> Result<Invocation, HarnessError> {
        let request_id = new_uuid();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.state.pending().insert(
            request_id.clone(),
            Pending {
                reply: reply_tx,
                dispatched_at: None,
            },
        );
        let enqueued_at = Instant::now();
        let queued = Queued {
            request_id: request_id.clone(),
            body,
            timeout: self.timeout,
        };
        if self.queue.send(queued).is_err() {
            self.state.pending().remove(&request_id);
            return Err(self.stopped());
        }

        let mut died = self.died.clone();
        let waited = tokio::select! {
            // An answer posted just before the process exits still counts.
            biased;
            finished = reply_rx => finished.map_err(|_| self.stopped()),
            _ = died.wait_for(|dead| *dead) => Err(HarnessError::FunctionDied { logs: self.logs() }),
            _ = tokio::time::sleep(self.timeout) => Err(HarnessError::InvokeTimeout {
                function: self.function_name.clone(),
                request_id: request_id.clone(),
                timeout: self.timeout,
                logs: self.logs(),
            }),
        };
        // Abandoned invocations must not be delivered or answered later.
        self.state.pending().remove(&request_id);
        let finished = waited?;

        let duration = finished
            .finished_at
            .saturating_duration_since(finished.dispatched_at.unwrap_or(enqueued_at));
        let outcome = match finished.answer {
            Answer::Response(body) => Ok(serde_json::from_slice(&body).map_err(|source| {
                HarnessError::InvalidFunctionResponse {
                    function: self.function_name.clone(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    source,
                }
            })?),
            Answer::Error { header_type, body } => Err(parse_function_error(header_type, &body)),
        };
        Ok(Invocation {
            request_id,
            outcome,
            duration,
        })
    }

    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// SIGKILLs the process now, as a crash would: an invocation in flight
    /// ends in [`HarnessError::FunctionDied`].
    pub fn kill(&self) {
        self.child.terminate();
    }

    /// The `host:port` given to the function as `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api_address(&self) -> SocketAddr {
        self.address
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Time from spawning the process to its first `/next` poll: the cold
    /// start (process start plus the function's own init code).
    pub fn init_duration(&self) -> Option<Duration> {
        self.state
            .first_next
            .get()
            .map(|first| first.saturating_duration_since(self.spawned_at))
    }

    /// Peak resident set size (`VmHWM`) of the live process, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Combined stdout/stderr of the function, plus harness notes such as the
    /// exit status.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn logs(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<cannot read {}: {e}>", self.log_path.display()),
        }
    }

    fn stopped(&self) -> HarnessError {
        HarnessError::RuntimeApiStopped {
            function: self.function_name.clone(),
        }
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.exit_watcher.abort();
        self.child.terminate();
        self.server.abort();
        if keep_logs() {
            eprintln!(
                "log of `{}` kept at {}",
                self.function_name,
                self.log_path.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

fn validate_function_name(name: &str) -> Result<(), HarnessError> {
    // The name ends up in an HTTP header (the ARN) and in a file name.
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(HarnessError::InvalidInput {
            message: format!(
                "`{name}` is not a valid Lambda function name (1-64 of [A-Za-z0-9_-])"
            ),
        })
    }
}

fn open_log(path: &Path) -> Result<(std::fs::File, std::fs::File), HarnessError> {
    let context = || format!("cannot open function log {}", path.display());
    std::fs::File::create(path).map_err(|e| HarnessError::io(context(), e))?;
    // Append mode, so harness notes written through another handle are never
    // overwritten by the child's own writes.
    let stdout = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| HarnessError::io(context(), e))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| HarnessError::io(context(), e))?;
    Ok((stdout, stderr))
}

fn append_note(path: &Path, line: &str) {
    // Best effort: the note only improves a failure report.
    if let Ok(mut file) = OpenOptions::new().append(true).open(path) {
        let _ = writeln!(file, "[gild-tests] {line}");
    }
}

/// The environment AWS Lambda gives a `provided.al2023` function. The
/// parent's environment is not inherited, so a developer's AWS profile or
/// endpoint settings cannot leak into a test.
fn lambda_environment(
    binary: &Path,
    function_name: &str,
    address: SocketAddr,
    caller: &[(String, String)],
) -> Vec<(String, String)> {
    let task_root = binary
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/var/task".to_string());
    let mut env: Vec<(String, String)> = Vec::new();
    for inherited in ["PATH", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"] {
        if let Ok(value) = std::env::var(inherited) {
            env.push((inherited.to_string(), value));
        }
    }
    let fixed = [
        ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream_name()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
        (
            "AWS_EXECUTION_ENV",
            "AWS_Lambda_provided.al2023".to_string(),
        ),
        ("_HANDLER", "bootstrap".to_string()),
        ("LAMBDA_TASK_ROOT", task_root),
        ("TZ", ":UTC".to_string()),
        ("LANG", "en_US.UTF-8".to_string()),
    ];
    env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
    if !caller.iter().any(|(k, _)| k == "RUST_LOG") {
        // `RUST_LOG=debug cargo test` should reach the function too.
        let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
        env.push(("RUST_LOG".to_string(), level));
    }
    // Later entries win in `Command::envs`, so the caller can override any
    // of the defaults above.
    env.extend(caller.iter().cloned());
    env
}

/// `YYYY/MM/DD/[$LATEST]<32 hex>`, the shape of a real Lambda log stream.
fn log_stream_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (year, month, day) = civil_from_days(secs / 86_400);
    format!(
        "{year:04}/{month:02}/{day:02}/[$LATEST]{:016x}{:016x}",
        random_u64(),
        random_u64()
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm), to avoid a date crate for one log-stream name.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

async fn watch_exit(child: Arc<ChildGuard>, state: Arc<ApiState>) {
    loop {
        if let Some(status) = child.try_exit() {
            state.note(&format!("function process exited: {status}"));
            state.died.send_replace(true);
            return;
        }
        tokio::time::sleep(EXIT_POLL_INTERVAL).await;
    }
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"status": "OK"}))).into_response()
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"errorType": error_type, "errorMessage": message})),
    )
        .into_response()
}

async fn next_invocation(State(state): State<Arc<ApiState>>) -> Response {
    state.first_next.get_or_init(Instant::now);
    let queued = {
        let mut queue = state.queue.lock().await;
        loop {
            let Some(queued) = queue.recv().await else {
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    "the harness is shutting down",
                );
            };
            // Skip events whose `invoke` already gave up (timed out).
            if let Some(pending) = state.pending().get_mut(&queued.request_id) {
                pending.dispatched_at = Some(Instant::now());
                break queued;
            }
        }
    };

    let deadline_ms = SystemTime::now()
        .checked_add(queued.timeout)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let trace_id = format!(
        "Root=1-{now_secs:08x}-{:08x}{:016x};Parent={:016x};Sampled=0",
        random_u64() & 0xffff_ffff,
        random_u64(),
        random_u64()
    );
    let headers = [
        ("lambda-runtime-aws-request-id", queued.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            state.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace_id),
        ("content-type", "application/json".to_string()),
    ];
    let mut header_map = HeaderMap::new();
    for (name, value) in headers {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                header_map.insert(HeaderName::from_static(name), value);
            }
            Err(_) => {
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    &format!("cannot encode header {name}"),
                )
            }
        }
    }
    (StatusCode::OK, header_map, queued.body).into_response()
}

fn finish(state: &ApiState, request_id: &str, answer: Answer) -> Response {
    let Some(pending) = state.pending().remove(request_id) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("no pending invocation with request id {request_id}"),
        );
    };
    // The receiver is gone only if `invoke` stopped waiting; nothing to do.
    let _ = pending.reply.send(Finished {
        answer,
        dispatched_at: pending.dispatched_at,
        finished_at: Instant::now(),
    });
    accepted()
}

async fn invocation_response(
    State(state): State<Arc<ApiState>>,
    UrlPath(request_id): UrlPath<String>,
    body: Bytes,
) -> Response {
    finish(&state, &request_id, Answer::Response(body))
}

async fn invocation_error(
    State(state): State<Arc<ApiState>>,
    UrlPath(request_id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_type = error_type_header(&headers);
    finish(&state, &request_id, Answer::Error { header_type, body })
}

async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error = parse_function_error(error_type_header(&headers), &body);
    state.note(&format!("function reported an init error: {error}"));
    state.died.send_replace(true);
    accepted()
}

fn error_type_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_type: Option<String>,
    error_message: Option<String>,
}

fn parse_function_error(header_type: Option<String>, body: &[u8]) -> FunctionError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (body_type, body_message) = match parsed {
        Some(ErrorBody {
            error_type,
            error_message,
        }) => (error_type, error_message),
        None => (None, None),
    };
    FunctionError {
        error_type: body_type
            .or(header_type)
            .unwrap_or_else(|| "Unknown".to_string()),
        error_message: body_message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn error_body_falls_back_to_header_and_raw_text() {
        let e = parse_function_error(Some("Unhandled".into()), b"not json");
        assert_eq!(e.error_type, "Unhandled");
        assert_eq!(e.error_message, "not json");
        let e = parse_function_error(
            Some("Unhandled".into()),
            br#"{"errorType":"Boom","errorMessage":"bad"}"#,
        );
        assert_eq!(e.error_type, "Boom");
        assert_eq!(e.error_message, "bad");
    }

    #[test]
    fn function_names_are_validated() {
        assert!(validate_function_name("gild-trigger_1").is_ok());
        assert!(validate_function_name("").is_err());
        assert!(validate_function_name("a b").is_err());
        assert!(validate_function_name(&"x".repeat(65)).is_err());
    }
}
