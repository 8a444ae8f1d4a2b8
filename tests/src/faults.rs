//! Faults, on the wire: a fault-injecting HTTP proxy of our own between the
//! function binaries and the emulators (moto, the CodeBuild recording proxy,
//! the CodeCommit stub).
//!
//! The proxy forwards every request unchanged (method, path, query, headers
//! with `Host` rewritten to the upstream's, body) except a chosen share of
//! them, picked by a deterministic generator from a seed, which it answers
//! with a [`Fault`] instead:
//!
//! - [`Fault::Throttle`] and [`Fault::ServerError`]: the service's own error
//!   in the service's own protocol (AWS JSON's `__type` and
//!   `x-amzn-ErrorType`, EC2's `<Response><Errors>`, the Query protocol's
//!   `<ErrorResponse>`), so the SDK parses and classifies it as it would
//!   AWS's;
//! - [`Fault::Slow`]: the answer comes late, but within the SDK's timeouts;
//! - [`Fault::Hang`] and [`Fault::Drop`]: the request is read, then the
//!   connection closes without an answer (after a stall, or at once);
//! - [`Fault::LostAnswer`]: the request **is** forwarded (its side effect
//!   happens) and then the answer is lost: the connection closes. This is
//!   the case exactly-once has to survive: a `StartBuild` that started a
//!   build, a `PutItem` that claimed, and a caller that cannot know.
//!
//! Every other fault is decided on the request alone and never reaches the
//! upstream, so it has no side effect.
//!
//! The service is read from the SigV4 credential scope
//! (`Credential=…/<date>/<region>/<service>/aws4_request`), the protocol from
//! `X-Amz-Target` (AWS JSON) or a form body with `Action=` (Query; EC2 has
//! its own dialect), the operation from the target or the action.
//!
//! [`FaultyRoutes`] puts one proxy in front of each of a [`Pipeline`]'s
//! endpoints and spawns the pipeline's functions behind them; the harness's
//! own calls (stand-in, readers) keep going straight to the emulators.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http_client::{self, HttpClient, Upstream};
use crate::pipeline::Pipeline;
use crate::runtime_api::LambdaProcess;
use crate::scenario::Functions;
use crate::standin::{Builds, Completed};
use crate::{bin_path, new_uuid, HarnessError};

const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What the proxy does to a call instead of (or besides) forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The service's throttling error in its protocol (HTTP 400, or 503
    /// `RequestLimitExceeded` for EC2). Not forwarded.
    Throttle,
    /// HTTP 500 `InternalFailure`/`InternalError`/`InternalServerError` in
    /// the service's protocol. Not forwarded.
    ServerError,
    /// Forwarded after [`FaultConfig::slow`] and answered normally; the delay
    /// stays under the SDK's attempt timeout.
    Slow,
    /// The request is read, nothing happens for [`FaultConfig::hang`], then
    /// the connection closes without an answer. Not forwarded.
    Hang,
    /// The request is read and the connection closes at once without an
    /// answer. Not forwarded.
    Drop,
    /// Forwarded, so its side effect happens, then the connection closes
    /// without the answer.
    LostAnswer,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Slow,
        Fault::Hang,
        Fault::Drop,
        Fault::LostAnswer,
    ];

    /// Faults decided on the request alone: the upstream never sees it.
    pub const REQUEST_ONLY: [Fault; 5] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Slow,
        Fault::Hang,
        Fault::Drop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle => "throttle",
            Fault::ServerError => "server-error",
            Fault::Slow => "slow",
            Fault::Hang => "hang",
            Fault::Drop => "drop",
            Fault::LostAnswer => "lost-answer",
        }
    }

    /// Whether the upstream receives the request (and so applies it).
    pub fn reaches_upstream(self) -> bool {
        matches!(self, Fault::Slow | Fault::LostAnswer)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault on a chosen call, whatever the rate: the `call`-th request
/// (1-based) to `service`'s `operation` whose body contains `body_contains`
/// (when set) gets `fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// The SigV4 signing name: `dynamodb`, `codebuild`, `ec2`, `ssm`, …
    pub service: String,
    /// `PutItem`, `StartBuild`, `Publish`, …
    pub operation: String,
    pub body_contains: Option<String>,
    pub call: usize,
    pub fault: Fault,
}

impl Scripted {
    pub fn new(service: &str, operation: &str, call: usize, fault: Fault) -> Self {
        Scripted {
            service: service.to_owned(),
            operation: operation.to_owned(),
            body_contains: None,
            call,
            fault,
        }
    }

    /// Only requests whose body contains `text` count (and match).
    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }

    fn matches(&self, call: &CallId, body: &[u8]) -> bool {
        self.service == call.service
            && self.operation == call.operation
            && self
                .body_contains
                .as_ref()
                .is_none_or(|text| contains(body, text.as_bytes()))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which calls fail, and how.
#[derive(Debug, Clone)]
pub struct FaultConfig {
    /// Seeds the generator that picks the faulted calls and their faults.
    pub seed: u64,
    /// Share of calls faulted at random, `0.0..=1.0`: one call in each
    /// window of `round(1 / rate)` consecutive calls (see [`Self::window`]),
    /// so 10% is exactly every tenth call on average, never a lucky run of none.
    pub rate: f64,
    /// The faults picked from at random, with their relative weights; the
    /// first faults injected cover every kind once (see [`Self::kind`]).
    pub mix: Vec<(Fault, u32)>,
    /// How late a [`Fault::Slow`] answer comes.
    pub slow: Duration,
    /// How long a [`Fault::Hang`] holds the connection before closing it.
    pub hang: Duration,
    /// When set, random faults only hit these services (signing names).
    pub services: Option<BTreeSet<String>>,
    /// Faults on chosen calls, applied whatever the rate.
    pub scripted: Vec<Scripted>,
}

impl FaultConfig {
    /// No fault at all: the proxy only forwards (and counts calls).
    pub fn none() -> Self {
        FaultConfig {
            seed: 0,
            rate: 0.0,
            mix: Vec::new(),
            slow: Duration::from_millis(300),
            hang: Duration::from_secs(1),
            services: None,
            scripted: Vec::new(),
        }
    }

    /// 10% of calls, every request-only fault, hangs and drops rarer than
    /// errors; slow answers 300 ms late, hangs 1 s long.
    pub fn new(seed: u64) -> Self {
        FaultConfig {
            seed,
            rate: 0.1,
            mix: vec![
                (Fault::Throttle, 3),
                (Fault::ServerError, 2),
                (Fault::Slow, 2),
                (Fault::Drop, 2),
                (Fault::Hang, 1),
            ],
            ..FaultConfig::none()
        }
    }

    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Replaces the mix.
    pub fn mix(mut self, mix: &[(Fault, u32)]) -> Self {
        self.mix = mix.to_vec();
        self
    }

    /// Adds (or reweighs) one fault in the mix.
    pub fn with(mut self, fault: Fault, weight: u32) -> Self {
        self.mix.retain(|(f, _)| *f != fault);
        self.mix.push((fault, weight));
        self
    }

    pub fn slow(mut self, delay: Duration) -> Self {
        self.slow = delay;
        self
    }

    pub fn hang(mut self, stall: Duration) -> Self {
        self.hang = stall;
        self
    }

    pub fn services(mut self, services: &[&str]) -> Self {
        self.services = Some(services.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn script(mut self, scripted: Scripted) -> Self {
        self.scripted.push(scripted);
        self
    }

    /// The faults this config can inject at random.
    pub fn random_kinds(&self) -> BTreeSet<Fault> {
        if self.rate <= 0.0 {
            return BTreeSet::new();
        }
        self.mix
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(fault, _)| *fault)
            .collect()
    }

    fn validate(&self) -> Result<(), HarnessError> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(HarnessError::InvalidInput {
                message: format!("fault rate {} is not within 0..=1", self.rate),
            });
        }
        if self.rate > 0.0 && self.mix.iter().all(|(_, w)| *w == 0) {
            return Err(HarnessError::InvalidInput {
                message: "a fault rate above 0 needs at least one fault with a weight".into(),
            });
        }
        if let Some(bad) = self.scripted.iter().find(|s| s.call == 0) {
            return Err(HarnessError::InvalidInput {
                message: format!("scripted fault {bad:?}: calls are counted from 1"),
            });
        }
        Ok(())
    }

    /// Calls per fault window: exactly one call in each window of this many
    /// consecutive calls is faulted, so the share is `1 / window`.
    pub fn window(&self) -> u64 {
        if self.rate <= 0.0 {
            return 0;
        }
        (1.0 / self.rate).round().max(1.0) as u64
    }

    /// Whether the `seq`-th call through the proxy (from 0) is faulted at
    /// random: one call per window, at a position the seed picks.
    fn faulted(&self, seq: u64, service: &str) -> bool {
        let window = self.window();
        if window == 0
            || self
                .services
                .as_ref()
                .is_some_and(|only| !only.contains(service))
        {
            return false;
        }
        let position = splitmix(self.seed ^ splitmix(seq / window)) % window;
        seq % window == position
    }

    /// The kind of the `index`-th random fault (from 0). Kinds come in bags
    /// holding each kind as often as its weight, shuffled by the seed, with
    /// one of every kind first: the first `kinds` faults cover every kind.
    fn kind(&self, index: u64) -> Option<Fault> {
        let weighted: Vec<(Fault, u32)> =
            self.mix.iter().copied().filter(|(_, w)| *w > 0).collect();
        let size: u64 = weighted.iter().map(|(_, w)| u64::from(*w)).sum();
        if size == 0 {
            return None;
        }
        let round = index / size;
        let mut rng = Rng::new(self.seed ^ splitmix(round ^ 0x6a09_e667));
        let mut first: Vec<Fault> = weighted.iter().map(|(f, _)| *f).collect();
        let mut rest: Vec<Fault> = weighted
            .iter()
            .flat_map(|(f, w)| std::iter::repeat_n(*f, (*w as usize).saturating_sub(1)))
            .collect();
        rng.shuffle(&mut first);
        rng.shuffle(&mut rest);
        first.extend(rest);
        first.get((index % size) as usize).copied()
    }
}

/// Every decision is a pure function of the seed and the call's number.
use gild_core::retry::splitmix;

/// A deterministic generator for the tests' own choices (copies, order).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(splitmix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        if high <= low {
            return low;
        }
        low + (self.next_u64() % (high - low + 1) as u64) as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// How the SDK talks to the service called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.0/1.1 (`X-Amz-Target`); the content type to answer with.
    AwsJson { content_type: String },
    /// EC2's dialect of the Query protocol.
    Ec2Query,
    /// The Query protocol (SNS, and SQS before it moved to JSON).
    AwsQuery,
    /// Anything else (REST protocols): answered like AWS JSON.
    Other,
}

/// What a request is: service, operation, protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallId {
    pub service: String,
    pub operation: String,
    pub protocol: Protocol,
}

/// Reads service, operation and protocol off a request.
pub fn identify(headers: &HeaderMap, body: &[u8]) -> CallId {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let target = header("x-amz-target");
    let scope_service = header("authorization").and_then(signing_service);
    if let Some(target) = target {
        let (prefix, operation) = target.rsplit_once('.').unwrap_or(("", target));
        let content_type = header("content-type")
            .filter(|t| t.starts_with("application/x-amz-json"))
            .unwrap_or("application/x-amz-json-1.1")
            .to_owned();
        return CallId {
            service: scope_service.unwrap_or_else(|| service_of_target(prefix)),
            operation: operation.to_owned(),
            protocol: Protocol::AwsJson { content_type },
        };
    }
    let form =
        header("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let action = if form { form_action(body) } else { None };
    let service = scope_service.unwrap_or_else(|| "unknown".to_owned());
    match action {
        Some(action) => CallId {
            protocol: if service == "ec2" {
                Protocol::Ec2Query
            } else {
                Protocol::AwsQuery
            },
            service,
            operation: action,
        },
        None => CallId {
            service,
            operation: "unknown".to_owned(),
            protocol: Protocol::Other,
        },
    }
}

/// `<service>` from `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, …`.
fn signing_service(authorization: &str) -> Option<String> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [_, _, _, service, "aws4_request"] if !service.is_empty() => {
            Some((*service).to_ascii_lowercase())
        }
        _ => None,
    }
}

/// For unsigned requests: the service a JSON target prefix names.
fn service_of_target(prefix: &str) -> String {
    match prefix {
        p if p.starts_with("DynamoDB") => "dynamodb",
        p if p.starts_with("CodeBuild") => "codebuild",
        p if p.starts_with("CodeCommit") => "codecommit",
        p if p.starts_with("AmazonSSM") => "ssm",
        p if p.starts_with("AmazonSQS") => "sqs",
        p if p.starts_with("AWSEvents") => "events",
        _ => "unknown",
    }
    .to_owned()
}

fn form_action(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .filter(|action| !action.is_empty())
        .map(str::to_owned)
}

/// The response AWS would send for an injected `Throttle` or `ServerError`.
pub fn error_response(call: &CallId, fault: Fault) -> Response<Full<Bytes>> {
    let request_id = new_uuid();
    let throttle = fault == Fault::Throttle;
    let (status, content_type, body, error_type) = match &call.protocol {
        Protocol::Ec2Query => {
            let (status, code, message) = if throttle {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "RequestLimitExceeded",
                    "Request limit exceeded.",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "An internal error has occurred",
                )
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            );
            (status, "text/xml;charset=UTF-8".to_owned(), body, None)
        }
        Protocol::AwsQuery => {
            let (status, kind, code, message) = if throttle {
                (
                    StatusCode::BAD_REQUEST,
                    "Sender",
                    "Throttling",
                    "Rate exceeded",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Receiver",
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            };
            let xmlns = match call.service.as_str() {
                "sns" => " xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"",
                _ => "",
            };
            let body = format!(
                "<ErrorResponse{xmlns}><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            (status, "text/xml".to_owned(), body, None)
        }
        Protocol::AwsJson { .. } | Protocol::Other => {
            let content_type = match &call.protocol {
                Protocol::AwsJson { content_type } => content_type.clone(),
                _ => "application/json".to_owned(),
            };
            let (status, code, message) = if throttle {
                (
                    StatusCode::BAD_REQUEST,
                    "ThrottlingException",
                    "Rate exceeded",
                )
            } else if call.service == "dynamodb" {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal server error",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            };
            let body = json!({"__type": code, "message": message}).to_string();
            (status, content_type, body, Some(code))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("content-type", &content_type);
    set("x-amzn-requestid", &request_id);
    if let Some(code) = error_type {
        set("x-amzn-errortype", code);
    }
    response
}

/// One fault the proxy injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The call's number at this proxy, from 0.
    pub seq: u64,
    pub service: String,
    pub operation: String,
    pub fault: Fault,
    /// Whether a script (rather than the generator) chose it.
    pub scripted: bool,
    /// For faults that reach the upstream: what it answered (the caller
    /// never saw it when the answer was lost).
    pub upstream_status: Option<u16>,
    /// For a lost answer: the start of the upstream's answer, for evidence.
    pub upstream_excerpt: Option<String>,
    /// Since the proxy started.
    pub at: Duration,
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} +{:.1}s {} {} {}{}",
            self.seq,
            self.at.as_secs_f64(),
            self.fault,
            self.service,
            self.operation,
            if self.scripted { " (scripted)" } else { "" }
        )?;
        if let Some(status) = self.upstream_status {
            write!(f, " [upstream answered {status}")?;
            if let Some(excerpt) = &self.upstream_excerpt {
                write!(f, ": {excerpt}")?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

/// What the proxy (or several, merged) saw and did.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// Requests received, per service.
    pub calls: BTreeMap<String, u64>,
    /// Every fault injected, in order.
    pub log: Vec<Injection>,
}

impl Injected {
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    pub fn total(&self) -> usize {
        self.log.len()
    }

    pub fn of(&self, fault: Fault) -> usize {
        self.log.iter().filter(|i| i.fault == fault).count()
    }

    pub fn by_kind(&self) -> BTreeMap<Fault, usize> {
        let mut counts = BTreeMap::new();
        for i in &self.log {
            *counts.entry(i.fault).or_insert(0) += 1;
        }
        counts
    }

    pub fn by_service(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for i in &self.log {
            *counts.entry(i.service.clone()).or_insert(0) += 1;
        }
        counts
    }

    pub fn by_service_and_kind(&self) -> BTreeMap<(String, Fault), usize> {
        let mut counts = BTreeMap::new();
        for i in &self.log {
            *counts.entry((i.service.clone(), i.fault)).or_insert(0) += 1;
        }
        counts
    }

    pub fn merge(&mut self, other: &Injected) {
        for (service, n) in &other.calls {
            *self.calls.entry(service.clone()).or_insert(0) += n;
        }
        self.log.extend(other.log.iter().cloned());
    }

    /// `14 faults in 160 calls (throttle 5, …; dynamodb 6, …)`.
    pub fn summary(&self) -> String {
        let kinds = self
            .by_kind()
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let services = self
            .by_service()
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.log.is_empty() {
            return format!("0 faults in {} calls", self.total_calls());
        }
        format!(
            "{} faults in {} calls ({kinds}; {services})",
            self.total(),
            self.total_calls()
        )
    }
}

/// The proxy's answer when it drops the connection instead of answering.
#[derive(Debug)]
struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Hangup {}

struct ProxyState {
    upstream: Upstream,
    client: HttpClient,
    config: FaultConfig,
    shared: Arc<Shared>,
}

/// The call sequence and the record, shared by the proxies of one
/// [`FaultyRoutes`]: faults are spread over all their calls together.
struct Shared {
    started: Instant,
    seq: AtomicU64,
    record: Mutex<Record>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            started: Instant::now(),
            seq: AtomicU64::new(0),
            record: Mutex::new(Record::default()),
        })
    }
}

#[derive(Default)]
struct Record {
    injected: Injected,
    /// Calls per scripted entry's matcher, by index in `config.scripted`.
    scripted_seen: HashMap<usize, usize>,
    /// Random faults chosen so far (the next one's index in the bags).
    random_faults: u64,
}

fn relock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counts stay valid even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fault proxy; it stops (and closes its connections) on drop.
pub struct FaultProxy {
    state: Arc<ProxyState>,
    address: SocketAddr,
    server: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`http://host:port`), injecting faults as `config` says.
    pub async fn start(upstream: &str, config: FaultConfig) -> Result<FaultProxy, HarnessError> {
        FaultProxy::start_sharing(upstream, config, Shared::new()).await
    }

    async fn start_sharing(
        upstream: &str,
        config: FaultConfig,
        shared: Arc<Shared>,
    ) -> Result<FaultProxy, HarnessError> {
        config.validate()?;
        let upstream = Upstream::parse(upstream)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("cannot bind the fault proxy", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the fault proxy address", e))?;
        let state = Arc::new(ProxyState {
            upstream,
            client: http_client::new_client(),
            config,
            shared,
        });
        let (shutdown, stopping) = watch::channel(false);
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopping));
        Ok(FaultProxy {
            state,
            address,
            server,
            shutdown,
        })
    }

    /// Base URL for `AWS_ENDPOINT_URL` (or a service-specific variant).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Calls seen and faults injected so far (by every proxy of the same
    /// [`FaultyRoutes`], which share one record).
    pub fn injected(&self) -> Injected {
        relock(&self.state.shared.record).injected.clone()
    }

    pub fn config(&self) -> &FaultConfig {
        &self.state.config
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.server.abort();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<ProxyState>,
    stopping: watch::Receiver<bool>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: wait, do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { handle(state, request).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // A service error (`Hangup`) ends the connection without an
            // answer: hyper closes the socket, which is the fault.
            tokio::select! {
                _ = connection => {}
                _ = stopping.wait_for(|stop| *stop) => {}
            }
        });
    }
}

async fn handle(
    state: Arc<ProxyState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Hangup> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(proxy_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            ))
        }
    };
    let call = identify(&parts.headers, &body);
    let shared = &state.shared;
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let (fault, scripted) = {
        let mut record = relock(&shared.record);
        *record
            .injected
            .calls
            .entry(call.service.clone())
            .or_insert(0) += 1;
        let mut chosen = None;
        for (index, script) in state.config.scripted.iter().enumerate() {
            if script.matches(&call, &body) {
                let seen = record.scripted_seen.entry(index).or_insert(0);
                *seen += 1;
                if *seen == script.call && chosen.is_none() {
                    chosen = Some(script.fault);
                }
            }
        }
        match chosen {
            Some(fault) => (Some(fault), true),
            None if state.config.faulted(seq, &call.service) => {
                let index = record.random_faults;
                record.random_faults += 1;
                (state.config.kind(index), false)
            }
            None => (None, false),
        }
    };
    let note = |upstream: Option<&Response<Full<Bytes>>>, excerpt: Option<String>| {
        if let Some(fault) = fault {
            relock(&shared.record).injected.log.push(Injection {
                seq,
                service: call.service.clone(),
                operation: call.operation.clone(),
                fault,
                scripted,
                upstream_status: upstream.map(|r| r.status().as_u16()),
                upstream_excerpt: excerpt,
                at: shared.started.elapsed(),
            });
        }
    };
    match fault {
        None => Ok(forward(&state, &parts, body).await.0),
        Some(fault @ (Fault::Throttle | Fault::ServerError)) => {
            note(None, None);
            Ok(error_response(&call, fault))
        }
        Some(Fault::Slow) => {
            note(None, None);
            tokio::time::sleep(state.config.slow).await;
            Ok(forward(&state, &parts, body).await.0)
        }
        Some(Fault::Hang) => {
            note(None, None);
            tokio::time::sleep(state.config.hang).await;
            Err(Hangup)
        }
        Some(Fault::Drop) => {
            note(None, None);
            Err(Hangup)
        }
        Some(Fault::LostAnswer) => {
            let (response, upstream_body) = forward(&state, &parts, body).await;
            let excerpt: String = String::from_utf8_lossy(&upstream_body)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(160)
                .collect();
            note(Some(&response), Some(excerpt));
            Err(Hangup)
        }
    }
}

fn proxy_error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let body = json!({"__type": "GildFaultProxyError", "message": message}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

/// Forwards to the upstream; returns the response and its body.
async fn forward(
    state: &ProxyState,
    parts: &http::request::Parts,
    body: Bytes,
) -> (Response<Full<Bytes>>, Bytes) {
    match state
        .upstream
        .forward(&state.client, parts, body, UPSTREAM_TIMEOUT)
        .await
    {
        Ok(upstream) => {
            let mut response = Response::new(Full::new(upstream.body.clone()));
            *response.status_mut() = upstream.status;
            http_client::copy_headers(&upstream.headers, response.headers_mut());
            (response, upstream.body)
        }
        Err(e) => (
            proxy_error(StatusCode::BAD_GATEWAY, e.to_string()),
            Bytes::new(),
        ),
    }
}

/// One fault proxy in front of each endpoint a pipeline's functions use:
/// moto (`AWS_ENDPOINT_URL`), the CodeBuild recording proxy and the
/// CodeCommit stub. The harness's own clients still talk to them directly.
///
/// The three proxies share one call sequence and one record: the rate and
/// the kinds' bags apply to all the functions' calls together, wherever
/// they go, and scripted calls are counted across them.
pub struct FaultyRoutes {
    pub moto: FaultProxy,
    pub codebuild: FaultProxy,
    pub codecommit: FaultProxy,
}

impl FaultyRoutes {
    pub async fn start(
        pipeline: &Pipeline,
        config: &FaultConfig,
    ) -> Result<FaultyRoutes, HarnessError> {
        let shared = Shared::new();
        let start = |endpoint: String| {
            let (config, shared) = (config.clone(), Arc::clone(&shared));
            async move { FaultProxy::start_sharing(&endpoint, config, shared).await }
        };
        // In front of what the functions call: the IAM gate (or moto), the
        // CodeBuild proxy, and the CodeCommit endpoint (the gate again,
        // which routes to the stub), so a fault lands after IAM said yes.
        let env = pipeline.function_env("trigger")?;
        let endpoint = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| HarnessError::InvalidInput {
                    message: format!("the functions' environment has no {name}"),
                })
        };
        Ok(FaultyRoutes {
            moto: start(endpoint("AWS_ENDPOINT_URL")?).await?,
            codebuild: start(endpoint("AWS_ENDPOINT_URL_CODEBUILD")?).await?,
            codecommit: start(endpoint("AWS_ENDPOINT_URL_CODECOMMIT")?).await?,
        })
    }

    /// `pipeline.function_env(function)` with every endpoint through a proxy.
    pub fn function_env(
        &self,
        pipeline: &Pipeline,
        function: &str,
    ) -> Result<Vec<(String, String)>, HarnessError> {
        let mut env = pipeline.function_env(function)?;
        for (name, value) in &mut env {
            match name.as_str() {
                "AWS_ENDPOINT_URL" => *value = self.moto.endpoint(),
                "AWS_ENDPOINT_URL_CODEBUILD" => *value = self.codebuild.endpoint(),
                "AWS_ENDPOINT_URL_CODECOMMIT" => *value = self.codecommit.endpoint(),
                _ => {}
            }
        }
        Ok(env)
    }

    /// The pipeline's functions, behind the proxies; `extra(function)` is
    /// appended to (and so overrides) that function's environment, e.g.
    /// `GILD_LEASE_SECS`.
    pub async fn spawn_functions(
        &self,
        pipeline: &Pipeline,
        extra: &dyn Fn(&str) -> Vec<(String, String)>,
    ) -> Result<Functions, HarnessError> {
        let spawn = |function: &'static str| {
            let env = self.function_env(pipeline, function).map(|mut env| {
                env.extend(extra(function));
                env
            });
            async move {
                let name = &pipeline.deployed(function)?.function_name;
                LambdaProcess::spawn(&bin_path(function)?, name, &env?).await
            }
        };
        Ok(Functions {
            trigger: spawn("trigger").await?,
            bake_finished: spawn("bake-finished").await?,
            test_finished: spawn("test-finished").await?,
            reconcile: spawn("reconcile").await?,
            router: std::sync::Arc::clone(&pipeline.router),
        })
    }

    /// What the three proxies saw and did.
    pub fn injected(&self) -> Injected {
        self.moto.injected()
    }
}

/// How events reach the functions, as AWS delivers them: each event
/// `copies` times (at least once), all in an order shuffled by `seed`; an
/// invocation that fails is delivered again after the next of
/// `retry_delays` (Lambda's async retries, then EventBridge's redelivery),
/// up to `max_attempts` per copy.
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub seed: u64,
    pub copies: (usize, usize),
    pub max_attempts: u32,
    pub retry_delays: Vec<Duration>,
}

impl Redelivery {
    pub fn new(seed: u64) -> Self {
        Redelivery {
            seed,
            copies: (1, 3),
            max_attempts: 10,
            retry_delays: vec![Duration::from_millis(500)],
        }
    }

    pub fn copies(mut self, low: usize, high: usize) -> Self {
        self.copies = (low.max(1), high.max(low.max(1)));
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn retry_delays(mut self, delays: &[Duration]) -> Self {
        self.retry_delays = delays.to_vec();
        self
    }

    fn delay(&self, failed_attempt: u32) -> Duration {
        let index = (failed_attempt as usize).saturating_sub(1);
        self.retry_delays
            .get(index)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or_default()
    }
}

/// One failed invocation.
#[derive(Debug, Clone)]
pub struct FailedInvocation {
    pub function: &'static str,
    /// The event's `id` (and, for completions, its build).
    pub event: String,
    pub attempt: u32,
    pub error_type: String,
    pub error_message: String,
}

impl fmt::Display for FailedInvocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt {} of {}: {}: {}",
            self.function, self.attempt, self.event, self.error_type, self.error_message
        )
    }
}

/// What delivering events took.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLog {
    pub invocations: usize,
    /// Time the functions spent on them (Lambda's billed `Duration`).
    pub busy: Duration,
    /// Every invocation that returned an error (and was delivered again,
    /// unless it is also in `gave_up`).
    pub failures: Vec<FailedInvocation>,
    /// Copies still failing after `max_attempts`: AWS would drop them
    /// (or park them in a dead-letter queue).
    pub gave_up: Vec<FailedInvocation>,
    /// Copies that succeeded only after failing: (function, event, the
    /// attempt that succeeded).
    pub recovered: Vec<(&'static str, String, u32)>,
    /// Every build completion the stand-in reported, in order.
    pub completed: Vec<Completed>,
}

fn event_label(event: &Value) -> String {
    let id = event["id"].as_str().unwrap_or("?");
    match event["detail"]["build-id"].as_str() {
        Some(build) => format!("{id} ({})", build.rsplit('/').next().unwrap_or(build)),
        None => id.to_owned(),
    }
}

impl Functions {
    /// Delivers `events` as `policy` says (copies, shuffled, failures
    /// delivered again) until every copy succeeded or ran out of attempts.
    pub async fn deliver_redelivering(
        &self,
        events: &[Value],
        policy: &Redelivery,
        rng: &mut Rng,
        log: &mut DeliveryLog,
    ) -> Result<(), HarnessError> {
        struct Pending {
            event: usize,
            target: &'static str,
            attempt: u32,
            ready_at: Instant,
        }
        let now = Instant::now();
        let mut queue: Vec<Pending> = Vec::new();
        // Each rule target gets its own copies, as EventBridge delivers them.
        for (index, event) in events.iter().enumerate() {
            for target in self.targets(event).await? {
                for _ in 0..rng.between(policy.copies.0, policy.copies.1) {
                    queue.push(Pending {
                        event: index,
                        target,
                        attempt: 1,
                        ready_at: now,
                    });
                }
            }
        }
        rng.shuffle(&mut queue);
        while !queue.is_empty() {
            let now = Instant::now();
            let Some(position) = queue.iter().position(|p| p.ready_at <= now) else {
                let next = queue.iter().map(|p| p.ready_at).min().unwrap_or(now);
                tokio::time::sleep(next.saturating_duration_since(now)).await;
                continue;
            };
            let pending = queue.remove(position);
            let event = &events[pending.event];
            let delivery = self.deliver_to(pending.target, event).await?;
            log.invocations += 1;
            log.busy += delivery.invocation.duration;
            if delivery.invocation.outcome.is_ok() && pending.attempt > 1 {
                log.recovered
                    .push((delivery.function, event_label(event), pending.attempt));
            }
            if let Err(error) = delivery.invocation.outcome {
                let failed = FailedInvocation {
                    function: delivery.function,
                    event: event_label(event),
                    attempt: pending.attempt,
                    error_type: error.error_type,
                    error_message: error.error_message,
                };
                log.failures.push(failed.clone());
                if pending.attempt >= policy.max_attempts {
                    log.gave_up.push(failed);
                } else {
                    let at = rng.between(0, queue.len());
                    queue.insert(
                        at,
                        Pending {
                            event: pending.event,
                            target: pending.target,
                            attempt: pending.attempt + 1,
                            ready_at: Instant::now() + policy.delay(pending.attempt),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Like [`Functions::settle`], with [`Functions::deliver_redelivering`]:
    /// runs the stand-in's pending builds and delivers their completions
    /// until no build is pending.
    pub async fn settle_redelivering(
        &self,
        pipeline: &Pipeline,
        standin: &impl Builds,
        policy: &Redelivery,
        rng: &mut Rng,
        log: &mut DeliveryLog,
    ) -> Result<(), HarnessError> {
        loop {
            let completed = pipeline.run_builds(standin).await?;
            if completed.is_empty() {
                return Ok(());
            }
            let events: Vec<Value> = completed.iter().map(|c| c.event.clone()).collect();
            log.completed.extend(completed);
            self.deliver_redelivering(&events, policy, rng, log).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20261111/us-east-1/{}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";

    fn auth(service: &str) -> String {
        AUTH.replace("{}", service)
    }

    #[test]
    fn services_protocols_and_operations_are_read_off_the_request() {
        let call = identify(
            &headers(&[
                ("authorization", &auth("dynamodb")),
                ("x-amz-target", "DynamoDB_20120810.PutItem"),
                ("content-type", "application/x-amz-json-1.0"),
            ]),
            b"{}",
        );
        assert_eq!(call.service, "dynamodb");
        assert_eq!(call.operation, "PutItem");
        assert_eq!(
            call.protocol,
            Protocol::AwsJson {
                content_type: "application/x-amz-json-1.0".into()
            }
        );
        let call = identify(
            &headers(&[
                ("authorization", &auth("ec2")),
                ("content-type", "application/x-www-form-urlencoded"),
            ]),
            b"Action=DescribeImages&Version=2016-11-15",
        );
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("ec2", "DescribeImages")
        );
        assert_eq!(call.protocol, Protocol::Ec2Query);
        let call = identify(
            &headers(&[
                ("authorization", &auth("sns")),
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
            ]),
            b"Version=2010-03-31&Action=Publish&TopicArn=x",
        );
        assert_eq!(call.operation, "Publish");
        assert_eq!(call.protocol, Protocol::AwsQuery);
        // Unsigned JSON: the target names the service.
        let call = identify(
            &headers(&[("x-amz-target", "CodeBuild_20161006.StartBuild")]),
            b"{}",
        );
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("codebuild", "StartBuild")
        );
        let call = identify(&headers(&[]), b"");
        assert_eq!(call.protocol, Protocol::Other);
    }

    #[test]
    fn errors_speak_the_protocol_of_the_service_called() {
        let json = CallId {
            service: "ssm".into(),
            operation: "PutParameter".into(),
            protocol: Protocol::AwsJson {
                content_type: "application/x-amz-json-1.1".into(),
            },
        };
        let r = error_response(&json, Fault::Throttle);
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["x-amzn-errortype"], "ThrottlingException");
        assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.1");
        let r = error_response(&json, Fault::ServerError);
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-amzn-errortype"], "InternalFailure");

        let ec2 = CallId {
            service: "ec2".into(),
            operation: "CreateTags".into(),
            protocol: Protocol::Ec2Query,
        };
        let r = error_response(&ec2, Fault::Throttle);
        assert_eq!(r.status(), 503);
        let body = body_text(r);
        assert!(body.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"));
        assert!(body.contains("<RequestID>"));

        let sns = CallId {
            service: "sns".into(),
            operation: "Publish".into(),
            protocol: Protocol::AwsQuery,
        };
        let r = error_response(&sns, Fault::Throttle);
        assert_eq!(r.status(), 400);
        let body = body_text(r);
        assert!(
            body.contains("<Type>Sender</Type><Code>Throttling</Code>"),
            "{body}"
        );
        assert!(body.contains("<RequestId>"));
        let r = error_response(&sns, Fault::ServerError);
        assert_eq!(r.status(), 500);
    }

    fn body_text(response: Response<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn random_faults(config: &FaultConfig, calls: u64, service: &str) -> Vec<Option<Fault>> {
        let mut index = 0;
        (0..calls)
            .map(|seq| {
                config.faulted(seq, service).then(|| {
                    index += 1;
                    config.kind(index - 1).expect("a kind")
                })
            })
            .collect()
    }

    #[test]
    fn decisions_depend_on_seed_and_call_only_and_follow_the_rate() {
        let config = FaultConfig::new(7);
        let picks = random_faults(&config, 2000, "ec2");
        assert_eq!(picks, random_faults(&config, 2000, "ec2"));
        assert_ne!(picks, random_faults(&FaultConfig::new(8), 2000, "ec2"));
        // Exactly one in every ten calls.
        for window in picks.chunks(10) {
            assert_eq!(window.iter().flatten().count(), 1, "{window:?}");
        }
        // The first five faults are the five kinds; then by weight.
        let kinds: BTreeSet<_> = picks.iter().flatten().take(5).copied().collect();
        assert_eq!(kinds, Fault::REQUEST_ONLY.into_iter().collect());
        let all: Vec<Fault> = picks.iter().flatten().copied().collect();
        let share = |f: Fault| all.iter().filter(|k| **k == f).count();
        assert_eq!(share(Fault::Throttle), 60);
        assert_eq!(share(Fault::Hang), 20);
        assert!(random_faults(&FaultConfig::none(), 50, "ec2")
            .iter()
            .all(Option::is_none));
        let only = FaultConfig::new(1).rate(1.0).services(&["sns"]);
        assert!(!only.faulted(1, "ec2"));
        assert!(only.faulted(1, "sns"));
        assert_eq!(FaultConfig::new(1).rate(0.25).window(), 4);
        assert!(FaultConfig::new(1).rate(1.5).validate().is_err());
    }

    #[test]
    fn rng_shuffles_reproducibly() {
        let mut a: Vec<u32> = (0..30).collect();
        let mut b = a.clone();
        Rng::new(3).shuffle(&mut a);
        Rng::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
        let mut rng = Rng::new(9);
        assert!((0..100).all(|_| (1..=3).contains(&rng.between(1, 3))));
    }
}
