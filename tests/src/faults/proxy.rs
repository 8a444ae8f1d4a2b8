//! The fault proxy: forwards a call, or answers it with a [`Fault`] in the
//! protocol of the service called, and records what it did.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{Fault, FaultConfig};
use super::protocol::{error_response, identify, name_s3_call};
use crate::http_client::{self, HttpClient, Upstream};
use crate::HarnessError;

const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

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
pub(super) struct Shared {
    started: Instant,
    seq: AtomicU64,
    record: Mutex<Record>,
}

impl Shared {
    pub(super) fn new() -> Arc<Shared> {
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

    pub(super) async fn start_sharing(
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
    let mut call = identify(&parts.headers, &body);
    name_s3_call(&mut call, &parts.method);
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
