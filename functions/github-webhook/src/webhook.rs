use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine;
use gild_core::github::pull_request::{
    triage_pull_request, PullRequestPayload, PULL_REQUEST_EVENT,
};
use gild_core::github::{self, PushPayload, SignatureError, PUSH_EVENT};
use gild_core::plan::Triage;
use gild_core::ports::{Builds, Ledger, Repository, SecretStage, Secrets};
use gild_core::retry::Backoff;
use gild_flow::trigger::{Handler, NoPullRequests, Outcome, PullRequestSide, TriggerError};
use gild_lambda::retry::{seed, with_backoff};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::{error, info, warn};

use crate::Config;

/// Reading the webhook secret, retried briefly: GitHub waits 10 s for an
/// answer, and the SDK makes one attempt per call (gild's backoff is the
/// one retry policy).
const SECRET_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(1),
    attempts: 3,
};

/// An HTTP answer in the Function URL response shape.
fn respond(status: u16, body: Value) -> Value {
    let mut response = LambdaFunctionUrlResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(body.to_string());
    serde_json::to_value(&response)
        .unwrap_or_else(|_| json!({"statusCode": status, "body": body.to_string()}))
}

fn message(status: u16, text: &str) -> Value {
    respond(status, json!({ "message": text }))
}

pub struct Webhook<S, R, L, B, X = NoPullRequests> {
    config: Config,
    secrets: S,
    starter: Handler<R, L, B, X>,
}

/// The parts of a Function URL request the webhook reads, from
/// `aws_lambda_events`' type for the documented payload (format 2.0).
struct Request {
    method: String,
    /// Case-insensitive, as HTTP header names are (RFC 9110 section 5.1):
    /// Function URLs lower-case them, but another front end (API Gateway
    /// REST, an ALB, a proxy) may pass GitHub's own casing through.
    headers: HeaderMap,
    body: String,
    base64: bool,
}

impl Request {
    fn from_event(event: &Value) -> Option<Self> {
        let request: LambdaFunctionUrlRequest = serde_json::from_value(event.clone()).ok()?;
        Some(Request {
            method: request.request_context.http.method?,
            headers: request.headers,
            body: request.body.unwrap_or_default(),
            base64: request.is_base64_encoded,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl<S, R, L, B, X> Webhook<S, R, L, B, X>
where
    S: Secrets,
    R: Repository,
    L: Ledger,
    B: Builds,
    X: PullRequestSide,
{
    pub fn new(config: Config, secrets: S, starter: Handler<R, L, B, X>) -> Self {
        Webhook {
            config,
            secrets,
            starter,
        }
    }

    pub fn starter(&self) -> &Handler<R, L, B, X> {
        &self.starter
    }

    /// Always answers with an HTTP response: GitHub shows it on the
    /// delivery, and a Lambda error would only read "502".
    pub async fn handle(&self, event: Value, now: i64) -> Result<Value, std::convert::Infallible> {
        Ok(self.answer(&event, now).await)
    }

    async fn answer(&self, event: &Value, now: i64) -> Value {
        let Some(request) = Request::from_event(event) else {
            return message(400, "not a Lambda Function URL request");
        };
        let delivery = request.header("x-github-delivery").unwrap_or("-");
        if request.method != "POST" {
            return message(405, "POST only");
        }
        // Refuse oversized bodies before decoding or hashing them.
        let encoded_limit = if request.base64 {
            self.config.max_body_bytes.div_ceil(3) * 4
        } else {
            self.config.max_body_bytes
        };
        if request.body.len() > encoded_limit {
            warn!(delivery, bytes = request.body.len(), "body too large");
            return message(413, "payload too large");
        }
        let body: Vec<u8> = if request.base64 {
            match base64::engine::general_purpose::STANDARD.decode(&request.body) {
                Ok(bytes) => bytes,
                Err(_) => return message(400, "body is not valid base64"),
            }
        } else {
            request.body.as_bytes().to_vec()
        };
        if body.len() > self.config.max_body_bytes {
            return message(413, "payload too large");
        }
        let content_type = request.header("content-type").unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return message(
                415,
                "unsupported content type: set the webhook's content type to application/json",
            );
        }
        let mut secrets = Vec::new();
        for stage in [SecretStage::Current, SecretStage::Previous] {
            let read = with_backoff(&SECRET_BACKOFF, seed(&self.config.webhook_secret), || {
                self.secrets.get(&self.config.webhook_secret, stage)
            });
            match read.await {
                Ok(Some(secret)) => secrets.push(secret),
                Ok(None) => {}
                Err(err) => {
                    error!(delivery, error = %err, "webhook secret unavailable");
                    return message(503, "temporarily unavailable");
                }
            }
        }
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        if let Err(err) =
            github::verify_signature(&keys, &body, request.header("x-hub-signature-256"))
        {
            // Neither the payload nor the secret is logged.
            match err {
                SignatureError::NoSecret => {
                    error!(
                        delivery,
                        "no webhook secret configured: every delivery is refused"
                    )
                }
                _ => warn!(delivery, reason = %err, "signature rejected"),
            }
            return message(401, "invalid signature");
        }
        match request.header("x-github-event").unwrap_or("") {
            "ping" => message(200, "pong"),
            "push" => self.push(&body, delivery, now).await,
            "pull_request" => self.pull_request(&body, delivery, now).await,
            other => {
                info!(delivery, event = other, "event type ignored");
                message(
                    202,
                    &format!("ignored: gild acts on push and pull_request events, not `{other}`"),
                )
            }
        }
    }

    /// A pull request opened, updated, labelled or closed: its candidates
    /// (never promoted), a refusal for a fork, or the clean-up.
    async fn pull_request(&self, body: &[u8], delivery: &str, now: i64) -> Value {
        let payload: PullRequestPayload = match serde_json::from_slice(body) {
            Ok(payload) => payload,
            Err(err) => {
                warn!(delivery, error = %err, "malformed pull_request payload");
                return message(400, &format!("malformed pull_request payload: {err}"));
            }
        };
        let settings = self.config.settings();
        let triage = triage_pull_request(
            &payload,
            &settings,
            &settings.review,
            &self.config.repository,
        );
        if let Triage::Ignore(reason) = &triage {
            info!(delivery, reason = %reason, "pull request ignored");
            return message(202, reason);
        }
        let result = self
            .starter
            .start(PULL_REQUEST_EVENT, triage, None, now)
            .await;
        self.answer_outcome(delivery, "pull request", result)
    }

    async fn push(&self, body: &[u8], delivery: &str, now: i64) -> Value {
        let push: PushPayload = match serde_json::from_slice(body) {
            Ok(push) => push,
            Err(err) => {
                warn!(delivery, error = %err, "malformed push payload");
                return message(400, &format!("malformed push payload: {err}"));
            }
        };
        let (triage, changed) =
            github::triage_push(&push, &self.config.settings(), &self.config.repository);
        if let Triage::Ignore(reason) = &triage {
            info!(delivery, reason = %reason, "push ignored");
            return message(202, reason);
        }
        let result = self.starter.start(PUSH_EVENT, triage, changed, now).await;
        self.answer_outcome(delivery, "push", result)
    }

    fn answer_outcome(
        &self,
        delivery: &str,
        what: &str,
        result: Result<Outcome, TriggerError>,
    ) -> Value {
        match result {
            Ok(outcome) => {
                info!(
                    delivery,
                    started = outcome.started.len(),
                    queued = outcome.queued.len(),
                    duplicates = outcome.duplicates.len(),
                    superseded = outcome.superseded.len(),
                    "{what} handled"
                );
                let status = if outcome.started.is_empty()
                    && outcome.queued.is_empty()
                    && outcome.duplicates.is_empty()
                    && outcome.superseded.is_empty()
                {
                    202
                } else {
                    200
                };
                respond(status, json!(outcome))
            }
            Err(err) => {
                error!(delivery, error = %err, kind = err.name(), "{what} not handled");
                let status = match err {
                    // The pusher broke the catalog: tell them, retrying won't help.
                    TriggerError::Catalog(_) | TriggerError::CatalogMissing { .. } => 422,
                    TriggerError::Plan(_) | TriggerError::BadEvent(_) => 400,
                    TriggerError::Repository(_)
                    | TriggerError::Ledger(_)
                    | TriggerError::Review(_)
                    | TriggerError::Superseding { .. }
                    | TriggerError::StartFailed { .. } => 503,
                };
                respond(
                    status,
                    json!({"error": err.name(), "message": err.to_string()}),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
