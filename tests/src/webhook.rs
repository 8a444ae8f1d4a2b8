//! A GitHub-hosted stack as the webhook tests drive it: the stack's
//! parameters for a GitHub images repository, its two secrets given their
//! values (what the operator does after the deploy), and deliveries signed
//! as GitHub signs them, in the Function URL event's shape.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::events;
use crate::pipeline::{Options, Pipeline};
use crate::HarnessError;

/// The deploy options for a GitHub-hosted images repository `owner/name`
/// (docs/deploy.md: a CodeConnections connection and the repository).
pub fn github_options(repository: &str) -> Options {
    Options {
        parameters: [
            ("SourceType", "GITHUB"),
            (
                "GitHubConnectionArn",
                "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d",
            ),
            ("GitHubRepository", repository),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        ..Options::default()
    }
}

/// Puts the webhook secret's and the token's values into the secrets the
/// stack made; returns the webhook secret's ARN, as the function is given it.
pub async fn set_secrets(
    pipeline: &Pipeline,
    webhook_secret: &str,
    token: &str,
) -> Result<String, HarnessError> {
    let env: std::collections::BTreeMap<String, String> = pipeline
        .function_env("github-webhook")?
        .into_iter()
        .collect();
    let named = |name: &str| {
        env.get(name)
            .cloned()
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the webhook's environment has no {name}"),
            })
    };
    let (secret_arn, token_arn) = (
        named("GILD_WEBHOOK_SECRET")?,
        named("GILD_GITHUB_TOKEN_SECRET")?,
    );
    let secrets = aws_sdk_secretsmanager::Client::new(&pipeline.aws);
    for (arn, value) in [(&secret_arn, webhook_secret), (&token_arn, token)] {
        secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .map_err(|e| HarnessError::InvalidInput {
                message: format!(
                    "PutSecretValue {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ),
            })?;
    }
    Ok(secret_arn)
}

/// `X-Hub-Signature-256` of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The Function URL event for a delivery: GitHub's headers (lower-cased,
/// as Function URLs pass them) and the raw body.
pub fn function_url_event(
    body: &str,
    event: &str,
    delivery: &str,
    signature: Option<String>,
) -> Result<Value, HarnessError> {
    let sample = events::sample("github-push.headers.json")?;
    let mut headers = serde_json::Map::new();
    for (name, value) in sample.as_object().into_iter().flatten() {
        headers.insert(name.to_lowercase(), value.clone());
    }
    headers.insert("x-github-event".into(), event.into());
    headers.insert("x-github-delivery".into(), delivery.into());
    headers.remove("x-hub-signature-256");
    if let Some(signature) = signature {
        headers.insert("x-hub-signature-256".into(), signature.into());
    }
    headers.insert("content-length".into(), body.len().to_string().into());
    Ok(json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": headers, "body": body, "isBase64Encoded": false,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghijklmnop", "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop", "requestId": format!("req-{delivery}"), "routeKey": "$default",
            "stage": "$default", "time": "25/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_600_800_000_u64,
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "140.82.115.1", "userAgent": "GitHub-Hookshot/7c1f2a4"}
        }
    }))
}
