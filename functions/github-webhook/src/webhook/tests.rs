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

const BODY: &str = include_str!("../../../../tests/events/github-push.body.json");
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

const PR_BODY: &str = include_str!("../../../../tests/events/github-pull-request.body.json");

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
