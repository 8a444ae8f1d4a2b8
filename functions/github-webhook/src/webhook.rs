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
mod tests {
    use super::*;
    use gild_core::fakes::{MemoryLedger, MemoryRepository, ScriptedBuilds};
    use gild_core::ports::PortResult;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    struct FixedSecrets(Option<&'static str>, Option<&'static str>);

    impl Secrets for FixedSecrets {
        async fn get(&self, _name: &str, stage: SecretStage) -> PortResult<Option<String>> {
            Ok(match stage {
                SecretStage::Current => self.0,
                SecretStage::Previous => self.1,
            }
            .map(str::to_owned))
        }
    }

    const BODY: &str = include_str!("../../../tests/events/github-push.body.json");
    const CATALOG: &str = "[families.debian12-base]\npath = \"images/debian12-base\"\nos = \"linux\"\nroles = [\"cw-agent\"]\n[families.win]\npath = \"images/win\"\nos = \"windows\"\n";

    fn config() -> Config {
        Config {
            webhook_secret: "gild/webhook".into(),
            token_secret: "gild/token".into(),
            repository: "acme/platform-images".into(),
            api_url: "http://unused".into(),
            tracked_branch: "main".into(),
            start: gild_flow::trigger::StartConfig {
                ledger_table: "t".into(),
                bake_project: "gild-bake".into(),
                concurrency: 2,
                lease_secs: 60,
                max_parallel: 20,
            },
            review: gild_flow::trigger::ReviewConfig {
                test_project: "gild-test".into(),
                parameter_prefix: "/gild".into(),
                policy: Default::default(),
            },
            max_body_bytes: 64 * 1024,
        }
    }

    fn webhook(
        secrets: FixedSecrets,
    ) -> Webhook<FixedSecrets, MemoryRepository, MemoryLedger, ScriptedBuilds> {
        let push: Value = serde_json::from_str(BODY).expect("sample");
        let after = push["after"].as_str().expect("after").to_owned();
        let mut repo = MemoryRepository::default();
        repo.files
            .insert((after, "gild.toml".into()), CATALOG.into());
        let starter = Handler::new(
            config().settings(),
            repo,
            MemoryLedger::default(),
            ScriptedBuilds::default(),
            2,
            60,
        );
        Webhook::new(config(), secrets, starter)
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn request(body: &str, event: &str, signature: Option<String>, content_type: &str) -> Value {
        let mut headers = json!({"content-type": content_type, "x-github-event": event,
                                 "x-github-delivery": "d-1", "user-agent": "GitHub-Hookshot/1"});
        if let Some(signature) = signature {
            headers["x-hub-signature-256"] = signature.into();
        }
        json!({"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
               "headers": headers, "body": body, "isBase64Encoded": false,
               "requestContext": {"accountId": "anonymous", "apiId": "abcdefghijklmnop",
                                  "requestId": "req-1", "timeEpoch": 1_795_600_800_000_u64,
                                  "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                                           "sourceIp": "192.30.252.1", "userAgent": "GitHub-Hookshot/1"}}})
    }

    fn status(response: &Value) -> u64 {
        response["statusCode"].as_u64().expect("status")
    }

    #[tokio::test]
    async fn signed_push_starts_the_affected_family_once() {
        let hook = webhook(FixedSecrets(Some("gild-sample-secret"), None));
        let signed = request(
            BODY,
            "push",
            Some(sign("gild-sample-secret", BODY.as_bytes())),
            "application/json",
        );
        let first = hook.handle(signed.clone(), 1).await.expect("infallible");
        assert_eq!(status(&first), 200, "{first}");
        let again = hook.handle(signed, 2).await.expect("infallible");
        assert_eq!(status(&again), 200, "{again}");
        assert_eq!(
            hook.starter().builds().started_families(),
            vec!["debian12-base"]
        );
    }

    #[tokio::test]
    async fn github_header_casing_is_accepted() {
        let hook = webhook(FixedSecrets(Some("gild-sample-secret"), None));
        let mut req = request(BODY, "push", None, "application/json");
        req["headers"] = json!({
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": sign("gild-sample-secret", BODY.as_bytes()),
            "User-Agent": "GitHub-Hookshot/1",
        });
        let response = hook.handle(req, 1).await.expect("infallible");
        assert_eq!(status(&response), 200, "{response}");
    }

    #[tokio::test]
    async fn signed_push_with_a_bad_commit_id_is_refused_before_any_api_call() {
        let hook = webhook(FixedSecrets(Some("gild-sample-secret"), None));
        let mut push: Value = serde_json::from_str(BODY).expect("sample");
        for (field, value) in [
            ("before", "../../repos/other/x"),
            ("after", "abc?ref=evil"),
            ("after", "0123456789abcdef"),
        ] {
            push[field] = value.into();
            let body = push.to_string();
            let signed = request(
                &body,
                "push",
                Some(sign("gild-sample-secret", body.as_bytes())),
                "application/json",
            );
            let response = hook.handle(signed, 1).await.expect("infallible");
            assert_eq!(status(&response), 400, "{field}={value}: {response}");
            assert!(
                response["body"].as_str().unwrap_or("").contains("40-hex"),
                "{response}"
            );
            push = serde_json::from_str(BODY).expect("sample");
        }
        assert!(hook.starter().builds().started_families().is_empty());
    }

    const PR_BODY: &str = include_str!("../../../tests/events/github-pull-request.body.json");

    type PrHook = Webhook<
        FixedSecrets,
        MemoryRepository,
        MemoryLedger,
        ScriptedBuilds,
        gild_flow::trigger::ReviewPorts<
            gild_core::fakes::RecordingReviews,
            gild_core::fakes::RecordingTests,
            gild_core::fakes::MemoryParameters,
            gild_core::fakes::MemoryImages,
            ScriptedBuilds,
        >,
    >;

    /// A webhook for the sample pull request's repository, with the
    /// pull-request ports over fakes; the change touches family `win`.
    fn pull_request_webhook() -> PrHook {
        let config = Config {
            repository: "acme-platform/images".into(),
            ..config()
        };
        let mut repo = MemoryRepository::default();
        repo.files.insert(
            (
                "8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e".into(),
                "gild.toml".into(),
            ),
            CATALOG.into(),
        );
        let reviews = gild_core::fakes::RecordingReviews::default();
        *reviews.changed.lock().expect("lock") = vec!["images/win/win.pkr.hcl".into()];
        let starter = Handler::new(
            config.settings(),
            repo,
            MemoryLedger::default(),
            ScriptedBuilds::default(),
            2,
            60,
        )
        .with_pull_requests(config.review.ports(
            reviews,
            (
                gild_core::fakes::RecordingTests::default(),
                gild_core::fakes::MemoryParameters::default(),
                gild_core::fakes::MemoryImages::default(),
                ScriptedBuilds::default(),
            ),
        ));
        Webhook::new(
            config,
            FixedSecrets(Some("gild-sample-secret"), None),
            starter,
        )
    }

    #[tokio::test]
    async fn a_signed_pull_request_starts_a_candidate_and_a_forged_one_nothing() {
        let hook = pull_request_webhook();
        for forged in [
            request(
                PR_BODY,
                "pull_request",
                Some(sign("forged", PR_BODY.as_bytes())),
                "application/json",
            ),
            request(PR_BODY, "pull_request", None, "application/json"),
        ] {
            let got = hook.handle(forged, 1).await.expect("infallible");
            assert_eq!(status(&got), 401, "{got}");
        }
        assert!(hook
            .starter()
            .builds()
            .started
            .lock()
            .expect("lock")
            .is_empty());
        let signed = request(
            PR_BODY,
            "pull_request",
            Some(sign("gild-sample-secret", PR_BODY.as_bytes())),
            "application/json",
        );
        let got = hook.handle(signed.clone(), 1).await.expect("infallible");
        assert_eq!(status(&got), 200, "{got}");
        let started = hook
            .starter()
            .builds()
            .started
            .lock()
            .expect("lock")
            .clone();
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].trigger, gild_core::plan::Trigger::PullRequest);
        assert_eq!(
            started[0].key.dedupe_key,
            "pr:acme-platform/images#17:8c1e5a7f3b9d2c4e6a8f0b1d3c5e7a9f2b4d6c8e"
        );
        // The same delivery again (GitHub's redelivery) starts nothing more.
        let again = hook.handle(signed, 2).await.expect("infallible");
        assert_eq!(status(&again), 200, "{again}");
        assert_eq!(
            hook.starter().builds().started.lock().expect("lock").len(),
            1
        );
    }

    #[tokio::test]
    async fn forged_unsigned_oversized_and_misdeclared_requests_are_refused() {
        let hook = webhook(FixedSecrets(Some("gild-sample-secret"), None));
        let cases = [
            (
                request(
                    BODY,
                    "push",
                    Some(sign("forged", BODY.as_bytes())),
                    "application/json",
                ),
                401,
            ),
            (request(BODY, "push", None, "application/json"), 401),
            (
                request(BODY, "push", Some("sha256=zz".into()), "application/json"),
                401,
            ),
            (
                request(
                    &BODY[..BODY.len() / 2],
                    "push",
                    Some(sign("gild-sample-secret", BODY.as_bytes())),
                    "application/json",
                ),
                401,
            ),
            (
                request(
                    BODY,
                    "push",
                    Some(sign("gild-sample-secret", BODY.as_bytes())),
                    "application/x-www-form-urlencoded",
                ),
                415,
            ),
            (
                request(&"x".repeat(64 * 1024 + 1), "push", None, "application/json"),
                413,
            ),
        ];
        for (i, (req, want)) in cases.into_iter().enumerate() {
            let got = hook.handle(req, 1).await.expect("infallible");
            assert_eq!(status(&got), want, "case {i}: {got}");
        }
        let mut get = request(BODY, "push", None, "application/json");
        get["requestContext"]["http"]["method"] = "GET".into();
        assert_eq!(status(&hook.handle(get, 1).await.expect("infallible")), 405);
        assert!(hook.starter().builds().started_families().is_empty());
    }

    #[tokio::test]
    async fn empty_secret_refuses_everything_and_rotation_accepts_both() {
        let hook = webhook(FixedSecrets(Some(""), None));
        let signed = request(
            BODY,
            "push",
            Some(sign("", BODY.as_bytes())),
            "application/json",
        );
        assert_eq!(
            status(&hook.handle(signed, 1).await.expect("infallible")),
            401
        );

        let hook = webhook(FixedSecrets(Some("new"), Some("gild-sample-secret")));
        for secret in ["new", "gild-sample-secret"] {
            let ping = request("{}", "ping", Some(sign(secret, b"{}")), "application/json");
            assert_eq!(
                status(&hook.handle(ping, 1).await.expect("infallible")),
                200,
                "{secret}"
            );
        }
        let other = request("{}", "issues", Some(sign("new", b"{}")), "application/json");
        assert_eq!(
            status(&hook.handle(other, 1).await.expect("infallible")),
            202
        );
    }

    #[tokio::test]
    async fn base64_bodies_are_verified_on_the_decoded_bytes() {
        let hook = webhook(FixedSecrets(Some("gild-sample-secret"), None));
        let mut req = request(
            "",
            "push",
            Some(sign("gild-sample-secret", BODY.as_bytes())),
            "application/json",
        );
        req["body"] = base64::engine::general_purpose::STANDARD
            .encode(BODY)
            .into();
        req["isBase64Encoded"] = true.into();
        assert_eq!(status(&hook.handle(req, 1).await.expect("infallible")), 200);
    }
}
