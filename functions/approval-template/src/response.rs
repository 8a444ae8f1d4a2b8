//! The answer to CloudFormation: a JSON document PUT to the request's
//! pre-signed S3 URL ("Custom resource response objects": at most 4096
//! bytes; PhysicalResourceId non-empty and the same for every answer about
//! one resource; Reason required when FAILED).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use gild_core::retry::Backoff;
use gild_lambda::retry::{with_backoff_until, GaveUp, Retry};
use reqwest::Url;

use crate::request::Envelope;

/// CloudFormation's limit on a response body.
pub const MAX_BODY_BYTES: usize = 4096;
/// Room kept for the other fields when a long reason is cut.
const MAX_REASON_BYTES: usize = 2048;

/// A pre-signed URL: https, or http on a loopback address when allowed
/// (tests). `Debug` and `Display` hide the query, which is a credential.
#[derive(Clone)]
pub struct ResponseUrl(Url);

impl fmt::Debug for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseUrl({self})")
    }
}

impl fmt::Display for ResponseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.0.host_str().unwrap_or_default();
        write!(
            f,
            "{}://{host}{} (signature hidden)",
            self.0.scheme(),
            self.0.path()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it is not a URL ({0})")]
    NotUrl(String),
    #[error("its scheme is `{0}`; CloudFormation's response URLs are https")]
    NotHttps(String),
    #[error("it is http on a loopback address, accepted only with GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK=1 (tests)")]
    InsecureLoopbackNotAllowed,
}

impl ResponseUrl {
    pub fn parse(text: &str, allow_insecure_loopback: bool) -> Result<Self, UrlError> {
        let url = Url::parse(text).map_err(|e| UrlError::NotUrl(e.to_string()))?;
        match url.scheme() {
            "https" => Ok(ResponseUrl(url)),
            "http" => {
                let loopback = url
                    .host_str()
                    .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                    .and_then(|h| h.parse::<IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback());
                match (loopback, allow_insecure_loopback) {
                    (true, true) => Ok(ResponseUrl(url)),
                    (true, false) => Err(UrlError::InsecureLoopbackNotAllowed),
                    (false, _) => Err(UrlError::NotHttps("http".into())),
                }
            }
            other => Err(UrlError::NotHttps(other.to_owned())),
        }
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// SUCCESS, or FAILED with why.
pub type Outcome = Result<(), String>;

/// The answer's body for `envelope`, within CloudFormation's size limit.
pub fn body(envelope: &Envelope, physical_id: &str, outcome: &Outcome) -> Vec<u8> {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = match outcome {
        Ok(()) => CloudFormationCustomResourceResponseStatus::Success,
        Err(_) => CloudFormationCustomResourceResponseStatus::Failed,
    };
    response.reason = outcome.as_ref().err().map(|r| cut(r, MAX_REASON_BYTES));
    response.physical_resource_id = physical_id.to_owned();
    response.stack_id = envelope.stack_id.clone();
    response.request_id = envelope.request_id.clone();
    response.logical_resource_id = envelope.logical_resource_id.clone();
    response.data = HashMap::new();
    let body = serde_json::to_vec(&response).unwrap_or_default();
    if body.len() <= MAX_BODY_BYTES {
        return body;
    }
    // Ids longer than CloudFormation sends: keep the answer valid JSON and
    // say so rather than send what S3 takes and CloudFormation refuses.
    response.reason =
        Some("the answer was too long for CloudFormation; see the function's log".into());
    serde_json::to_vec(&response).unwrap_or_default()
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResponseError {
    #[error("PUT to {url}: {message}")]
    Transport { url: String, message: String },
    #[error("PUT to {url}: HTTP {status}")]
    Status { url: String, status: u16 },
}

/// Where answers go: the real PUT, or a recording in unit tests.
pub trait Respond: Send + Sync {
    fn put(
        &self,
        url: &ResponseUrl,
        body: Vec<u8>,
        cutoff: Instant,
    ) -> impl Future<Output = Result<(), GaveUp<ResponseError>>> + Send;
}

/// PUTs with reqwest, retrying what may pass on a second try. This loop is
/// the only retry on the path (reqwest has none).
pub struct HttpRespond {
    client: reqwest::Client,
    backoff: Backoff,
}

/// One PUT's limit.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpRespond {
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(HttpRespond {
            client: reqwest::Client::builder()
                .timeout(PUT_TIMEOUT)
                // A pre-signed URL is answered where it points.
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            backoff: Backoff {
                base: Duration::from_millis(500),
                cap: Duration::from_secs(5),
                attempts: 4,
            },
        })
    }
}

impl Respond for HttpRespond {
    async fn put(
        &self,
        url: &ResponseUrl,
        body: Vec<u8>,
        cutoff: Instant,
    ) -> Result<(), GaveUp<ResponseError>> {
        let shown = url.to_string();
        let classify = |e: &ResponseError| match e {
            ResponseError::Transport { .. } => Retry::Backoff,
            ResponseError::Status { status, .. } if *status >= 500 || *status == 429 => {
                Retry::Backoff
            }
            ResponseError::Status { .. } => Retry::Never,
        };
        with_backoff_until(&self.backoff, 0, Some(cutoff), classify, || {
            // No Content-Type: the URL is signed without one, as
            // cfn-response sends it.
            let request = self.client.put(url.url().clone()).body(body.clone());
            let shown = shown.clone();
            async move {
                let answer = request.send().await.map_err(|e| ResponseError::Transport {
                    url: shown.clone(),
                    message: e.without_url().to_string(),
                })?;
                if answer.status().is_success() {
                    Ok(())
                } else {
                    Err(ResponseError::Status {
                        url: shown,
                        status: answer.status().as_u16(),
                    })
                }
            }
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        serde_json::from_value(serde_json::json!({
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=secret",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/gild/1",
            "RequestId": "r-1",
            "LogicalResourceId": "ApprovalRuleTemplate",
        }))
        .expect("envelope")
    }

    #[test]
    fn urls_are_https_or_an_allowed_loopback_and_never_shown_with_their_signature() {
        let url = ResponseUrl::parse(&envelope().response_url, false).expect("https");
        assert!(!url.to_string().contains("secret"), "{url}");
        assert!(!format!("{url:?}").contains("secret"));
        assert_eq!(
            ResponseUrl::parse("http://127.0.0.1:9/x", false).err(),
            Some(UrlError::InsecureLoopbackNotAllowed)
        );
        assert!(ResponseUrl::parse("http://127.0.0.1:9/x", true).is_ok());
        assert!(ResponseUrl::parse("http://[::1]:9/x", true).is_ok());
        assert!(matches!(
            ResponseUrl::parse("http://169.254.169.254/latest", true),
            Err(UrlError::NotHttps(_))
        ));
        assert!(matches!(
            ResponseUrl::parse("file:///etc/passwd", true),
            Err(UrlError::NotHttps(_))
        ));
    }

    #[test]
    fn a_failure_says_why_and_stays_within_the_limit() {
        let long = "é".repeat(10_000);
        let body = body(&envelope(), "gild-approval", &Err(long));
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(answer["Status"], "FAILED");
        assert_eq!(answer["PhysicalResourceId"], "gild-approval");
        assert_eq!(answer["RequestId"], "r-1");
        assert!(answer["Reason"]
            .as_str()
            .is_some_and(|r| r.ends_with("...")));
    }

    #[test]
    fn a_success_echoes_the_request() {
        let answer: serde_json::Value =
            serde_json::from_slice(&body(&envelope(), "gild-approval", &Ok(()))).expect("json");
        assert_eq!(answer["Status"], "SUCCESS");
        assert_eq!(answer["LogicalResourceId"], "ApprovalRuleTemplate");
        assert_eq!(
            answer["StackId"],
            "arn:aws:cloudformation:us-east-1:123456789012:stack/gild/1"
        );
    }
}
