//! The slack-notify Lambda as AWS runs it: the real binary behind the
//! Runtime API, its webhook URL read over HTTP from moto's Secrets Manager,
//! posting to a local stand-in for Slack that records every POST and
//! answers from a script (rate limits, server errors, Slack's plain-text
//! 4xx refusals). Counts what was posted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gild_tests::moto::MotoServer;
use gild_tests::runtime_api::{FunctionError, Invocation, LambdaProcess};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const SECRET: &str = "gild/slack-webhook";
/// The part of the URL that makes it a credential; must never be logged.
const TOKEN: &str = "gildTestWebhookToken0123456789";
const HOOK_PATH: &str = "/services/T0GILD000/B0GILD000/gildTestWebhookToken0123456789";

fn fixture(name: &str) -> Value {
    let path = gild_tests::workspace_root()
        .join("tests/fixtures/slack")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// One scripted answer of the Slack stand-in.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: &'static str,
    retry_after: Option<&'static str>,
}

fn answer(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        body,
        retry_after: None,
    }
}

#[derive(Debug, Clone)]
struct Post {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Bytes,
    at: Instant,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the function posted JSON")
    }
}

#[derive(Default)]
struct StubState {
    script: Mutex<VecDeque<Answer>>,
    posts: Mutex<Vec<Post>>,
}

/// Slack's incoming webhook, locally: records each request, answers the
/// next scripted status, then `200 ok` as Slack does.
struct SlackStub {
    address: SocketAddr,
    state: Arc<StubState>,
    server: JoinHandle<()>,
}

impl SlackStub {
    async fn start(script: Vec<Answer>) -> SlackStub {
        let state = Arc::new(StubState {
            script: Mutex::new(script.into()),
            posts: Mutex::default(),
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Slack stand-in");
        let address = listener.local_addr().expect("stand-in address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlackStub {
            address,
            state,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.address)
    }

    fn posts(&self) -> Vec<Post> {
        self.state
            .posts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SlackStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(state): State<Arc<StubState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .posts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Post {
            method,
            path: uri.path().to_owned(),
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
            at: Instant::now(),
        });
    let next = state
        .script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front()
        .unwrap_or_else(|| answer(200, "ok"));
    let status = StatusCode::from_u16(next.status).expect("scripted status");
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "text/plain; charset=utf-8".parse().expect("header"),
    );
    if let Some(seconds) = next.retry_after {
        headers.insert("retry-after", seconds.parse().expect("header"));
    }
    (status, headers, next.body).into_response()
}

/// Stores the webhook URL as moto's Secrets Manager secret. gild-tests has
/// no Secrets Manager SDK client; one call of the service's JSON protocol
/// (`X-Amz-Target: secretsmanager.CreateSecret`) is all it takes.
async fn create_secret(endpoint: &str, name: &str, value: &str) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("{endpoint}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("x-amz-date", "20261112T150100Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261112/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00",
        )
        .body(Full::new(Bytes::from(
            json!({"Name": name, "SecretString": value}).to_string(),
        )))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("moto answers CreateSecret in time")
        .expect("CreateSecret reaches moto");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("CreateSecret body")
        .to_bytes();
    assert!(
        status.is_success(),
        "CreateSecret: {status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// A function under test; dropped in field order (function, stand-in, moto).
struct Setup {
    function: LambdaProcess,
    /// The function's environment, for more environments of it.
    vars: Vec<(String, String)>,
    slack: SlackStub,
    _moto: MotoServer,
}

impl Setup {
    /// `None` only when the run asked to skip moto (`GILD_SKIP_MOTO=1`).
    async fn start(
        script: Vec<Answer>,
        env: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Option<Setup> {
        if gild_tests::moto::skip_requested() {
            return None;
        }
        let moto = MotoServer::start().await.expect("moto");
        let slack = SlackStub::start(script).await;
        create_secret(&moto.endpoint(), SECRET, &slack.url()).await;
        let mut vars = gild_tests::aws::lambda_env(&moto.endpoint());
        let defaults = [
            ("GILD_SLACK_WEBHOOK_SECRET", SECRET),
            ("GILD_REPOSITORY_HOST", "codecommit"),
            ("GILD_REPOSITORY", "gild-images"),
            ("GILD_SLACK_ALLOW_INSECURE_LOOPBACK", "1"),
        ];
        vars.extend(
            defaults
                .iter()
                .chain(env)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let binary =
            gild_tests::bin_path("slack-notify").expect("run `cargo build --workspace --bins`");
        let mut function = LambdaProcess::spawn(&binary, "gild-slack-notify", &vars)
            .await
            .expect("spawn slack-notify");
        if let Some(timeout) = timeout {
            function = function.with_timeout(timeout);
        }
        Some(Setup {
            function,
            vars,
            slack,
            _moto: moto,
        })
    }

    /// Another environment of the same function.
    async fn sibling(&self) -> LambdaProcess {
        let binary = gild_tests::bin_path("slack-notify").expect("binary");
        LambdaProcess::spawn(&binary, "gild-slack-notify", &self.vars)
            .await
            .expect("spawn slack-notify")
    }

    async fn invoke(&self, event: &str) -> Invocation {
        self.function
            .invoke(&fixture(event))
            .await
            .unwrap_or_else(|e| panic!("invocation: {e}"))
    }

    async fn invoke_ok(&self, event: &str) -> Value {
        let invocation = self.invoke(event).await;
        match invocation.outcome {
            Ok(value) => value,
            Err(err) => panic!("function failed: {err}\n{}", self.function.logs()),
        }
    }

    async fn invoke_err(&self, event: &str) -> FunctionError {
        let invocation = self.invoke(event).await;
        match invocation.outcome {
            Ok(value) => panic!("function succeeded: {value}\n{}", self.function.logs()),
            Err(err) => err,
        }
    }

    /// Every request went to the webhook as JSON, and the URL's secret part
    /// never reached the logs.
    fn check_posts_and_logs(&self) {
        for post in self.slack.posts() {
            assert_eq!(post.method, Method::POST);
            assert_eq!(post.path, HOOK_PATH);
            assert!(
                post.content_type
                    .as_deref()
                    .is_some_and(|c| c.starts_with("application/json")),
                "{:?}",
                post.content_type
            );
            let body = post.json();
            assert_eq!(gild_slack::block_kit_problems(&body), Vec::<String>::new());
        }
        let logs = self.function.logs();
        assert!(!logs.contains(TOKEN), "the webhook URL was logged:\n{logs}");
    }
}

#[tokio::test]
async fn success_posts_the_expected_message_once() {
    let Some(setup) = Setup::start(vec![], &[], None).await else {
        return;
    };
    let outcome = setup.invoke_ok("sns-promoted.json").await;
    assert_eq!(outcome["posted"][0]["attempts"], 1, "{outcome}");
    assert_eq!(outcome["posted"][0]["family"], "debian13-base");
    let posts = setup.slack.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json(), fixture("expected-promoted.json"));

    // A warm invocation (the secret now cached) posts the next one.
    setup.invoke_ok("sns-bake-failed.json").await;
    let posts = setup.slack.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].json(), fixture("expected-bake-failed.json"));
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn github_commit_links_for_a_test_failure() {
    let env = [
        ("GILD_REPOSITORY_HOST", "github"),
        ("GILD_GITHUB_REPOSITORY", "example-org/gild-images"),
    ];
    let Some(setup) = Setup::start(vec![], &env, None).await else {
        return;
    };
    setup.invoke_ok("sns-test-failed.json").await;
    let posts = setup.slack.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].json(), fixture("expected-test-failed.json"));
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn rate_limit_waits_retry_after_then_succeeds() {
    let limited = Answer {
        retry_after: Some("1"),
        ..answer(429, "rate_limited")
    };
    let Some(setup) = Setup::start(vec![limited], &[], None).await else {
        return;
    };
    let outcome = setup.invoke_ok("sns-promoted.json").await;
    assert_eq!(outcome["posted"][0]["attempts"], 2, "{outcome}");
    let posts = setup.slack.posts();
    assert_eq!(posts.len(), 2);
    let gap = posts[1].at - posts[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(posts[0].body, posts[1].body);
    assert_eq!(posts[1].json(), fixture("expected-promoted.json"));
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let script = vec![
        answer(500, "internal_error"),
        answer(503, "service_unavailable"),
    ];
    let Some(setup) = Setup::start(script, &[], None).await else {
        return;
    };
    let outcome = setup.invoke_ok("sns-test-failed.json").await;
    assert_eq!(outcome["posted"][0]["attempts"], 3, "{outcome}");
    assert_eq!(setup.slack.posts().len(), 3);
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn invalid_payload_fails_without_retry() {
    let Some(setup) = Setup::start(vec![answer(400, "invalid_payload")], &[], None).await else {
        return;
    };
    let err = setup.invoke_err("sns-promoted.json").await;
    assert_eq!(err.error_type, "gild.SlackRejected", "{err}");
    assert!(
        err.error_message.contains("HTTP 400: invalid_payload"),
        "{err}"
    );
    assert_eq!(setup.slack.posts().len(), 1);
    let logs = setup.function.logs();
    assert!(
        logs.contains("invalid_payload") && logs.contains("\"level\":\"ERROR\""),
        "{logs}"
    );
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn no_service_fails_without_retry() {
    let Some(setup) = Setup::start(vec![answer(404, "no_service")], &[], None).await else {
        return;
    };
    let err = setup.invoke_err("sns-bake-failed.json").await;
    assert_eq!(err.error_type, "gild.SlackRejected", "{err}");
    assert!(err.error_message.contains("HTTP 404: no_service"), "{err}");
    assert_eq!(setup.slack.posts().len(), 1);
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn malformed_events_fail_and_post_nothing() {
    let Some(setup) = Setup::start(vec![], &[], None).await else {
        return;
    };
    let err = setup.invoke_err("sns-malformed.json").await;
    assert_eq!(err.error_type, "gild.BadEvent", "{err}");
    assert!(err.error_message.contains("Message"), "{err}");
    let err = setup.invoke_err("sns-wrong-schema.json").await;
    assert_eq!(err.error_type, "gild.BadAnnouncement", "{err}");
    assert!(err.error_message.contains("gild.announcement/2"), "{err}");
    assert_eq!(setup.slack.posts().len(), 0);
    // The process survived both and still works.
    setup.invoke_ok("sns-promoted.json").await;
    assert_eq!(setup.slack.posts().len(), 1);
    setup.check_posts_and_logs();
}

#[tokio::test]
async fn retries_stop_inside_the_time_limit() {
    let limited = Answer {
        retry_after: Some("30"),
        ..answer(429, "rate_limited")
    };
    let timeout = Duration::from_secs(8);
    let Some(setup) = Setup::start(vec![limited], &[], Some(timeout)).await else {
        return;
    };
    let invocation = setup.invoke("sns-promoted.json").await;
    let err = invocation.outcome.expect_err("gave up");
    assert_eq!(err.error_type, "gild.SlackUnavailable", "{err}");
    assert!(err.error_message.contains("deadline"), "{err}");
    assert!(
        invocation.duration < Duration::from_secs(6),
        "{:?}",
        invocation.duration
    );
    assert_eq!(setup.slack.posts().len(), 1);
    setup.check_posts_and_logs();
}

/// SNS delivers at least once, so one announcement can reach several
/// environments at once; Slack's incoming webhooks cannot deduplicate, so
/// each posts it (the documented double, ARCHITECTURE.md known limits): three
/// identical messages, each naming the same bake, and a Slack failure on
/// one of them is retried, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_announcement_racing_in_three_environments_posts_the_same_message_each() {
    let Some(setup) = Setup::start(vec![answer(500, "internal_error")], &[], None).await else {
        return;
    };
    let (second, third) = (setup.sibling().await, setup.sibling().await);
    let event = fixture("sns-promoted.json");
    let answers = futures::future::join_all(
        [&setup.function, &second, &third].map(|function| function.invoke(&event)),
    )
    .await;
    for answer in answers {
        let outcome = answer.expect("invocation").outcome.expect("posted");
        assert_eq!(outcome["posted"][0]["family"], "debian13-base", "{outcome}");
    }
    let posts = setup.slack.posts();
    assert_eq!(
        posts.len(),
        4,
        "three posts and one retry of the refused one"
    );
    let expected = fixture("expected-promoted.json");
    assert!(posts.iter().all(|p| p.json() == expected));
    setup.check_posts_and_logs();
}
