//! Slack's incoming webhook: where it is (a URL that is a credential, so it
//! is never logged), how one POST goes, and what Slack's answer means.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use gild_lambda::retry::Retry;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;

/// Longest piece of a Slack answer kept for logs and errors; Slack's error
/// answers are one word (`invalid_payload`, `no_service`).
const BODY_KEPT: usize = 500;

/// A webhook URL checked to be https (or, in tests that allow it, http on a
/// loopback address). `Debug` and `Display` hide it: whoever has the URL can
/// post to the channel.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted webhook URL>")
    }
}

/// Why a secret does not hold a usable webhook URL. The messages never
/// repeat the secret's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it is empty")]
    Empty,
    #[error("it is JSON without a string `webhook_url` (or `url`) key")]
    NoUrlKey,
    #[error("it is not a URL ({0})")]
    NotUrl(String),
    #[error("the URL's scheme is `{0}`; Slack webhooks are https")]
    NotHttps(String),
    #[error("the URL is http on a loopback address, allowed only with GILD_SLACK_ALLOW_INSECURE_LOOPBACK=1 (tests)")]
    InsecureLoopbackNotAllowed,
}

impl WebhookUrl {
    /// Reads a secret's text: the URL itself, or a JSON object with
    /// `webhook_url` (or `url`), as the Secrets Manager console stores
    /// key/value secrets.
    pub fn from_secret(secret: &str, allow_insecure_loopback: bool) -> Result<Self, UrlError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(UrlError::Empty);
        }
        let text = if secret.starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(secret).map_err(|_| UrlError::NoUrlKey)?;
            ["webhook_url", "url"]
                .iter()
                .find_map(|k| value.get(k).and_then(|v| v.as_str()))
                .ok_or(UrlError::NoUrlKey)?
                .trim()
                .to_owned()
        } else {
            secret.to_owned()
        };
        // `url::ParseError` describes the problem without quoting the input.
        let url = Url::parse(&text).map_err(|e| UrlError::NotUrl(e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NotUrl("no host".into()));
        }
        match url.scheme() {
            "https" => Ok(WebhookUrl(url)),
            "http" if is_loopback(&url) => {
                if allow_insecure_loopback {
                    Ok(WebhookUrl(url))
                } else {
                    Err(UrlError::InsecureLoopbackNotAllowed)
                }
            }
            other => Err(UrlError::NotHttps(other.to_owned())),
        }
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

fn is_loopback(url: &Url) -> bool {
    // An IP literal only: a name such as `localhost` is whatever DNS says.
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// What Slack answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in seconds, as Slack sends it with 429.
    pub retry_after: Option<Duration>,
    /// The start of the body (`ok`, `invalid_payload`, …).
    pub body: String,
}

/// A POST Slack did not take, and whether it is worth another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Refused for good: a 4xx other than 408 and 429.
    Rejected { status: u16, body: String },
    /// Worth another try (429, 408, 5xx, no answer), after Slack's
    /// `Retry-After` when it sent one.
    Unavailable {
        problem: String,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    /// What a [`Transport::post`] result means: taken, refused for good, or
    /// worth another try.
    pub fn of(reply: Result<Reply, String>) -> Result<(), Failure> {
        match reply {
            Ok(Reply { status, .. }) if (200..300).contains(&status) => Ok(()),
            Ok(Reply {
                status: 429,
                retry_after,
                body,
            }) => Err(Failure::Unavailable {
                problem: format!("HTTP 429 (rate limited): {body}"),
                retry_after,
            }),
            Ok(Reply {
                status,
                retry_after,
                body,
            }) if status >= 500 || status == 408 => Err(Failure::Unavailable {
                problem: format!("HTTP {status}: {body}"),
                retry_after,
            }),
            Ok(Reply { status, body, .. }) => Err(Failure::Rejected { status, body }),
            Err(problem) => Err(Failure::Unavailable {
                problem,
                retry_after: None,
            }),
        }
    }

    /// How `gild_lambda::retry` treats it.
    pub fn retry(&self) -> Retry {
        match self {
            Failure::Rejected { .. } => Retry::Never,
            Failure::Unavailable {
                retry_after: Some(wait),
                ..
            } => Retry::After(*wait),
            Failure::Unavailable { .. } => Retry::Backoff,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Rejected { status, body } => write!(f, "HTTP {status}: {body}"),
            Failure::Unavailable { problem, .. } => f.write_str(problem),
        }
    }
}

/// One POST of a JSON body. `Err` is a failure to get an answer at all
/// (connect, timeout), described without the URL.
pub trait Transport: Send + Sync {
    fn post(
        &self,
        url: &WebhookUrl,
        body: &[u8],
        timeout: Duration,
    ) -> impl Future<Output = Result<Reply, String>> + Send;
}

/// The real transport: reqwest over rustls, redirects not followed (a
/// webhook never redirects; following one would hand the message elsewhere).
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("gild-slack-notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpTransport { client })
    }
}

impl Transport for HttpTransport {
    async fn post(
        &self,
        url: &WebhookUrl,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Reply, String> {
        let response = self
            .client
            .post(url.url().clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_vec())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // A body that cannot be read does not change what the status says.
        let text = response.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            retry_after,
            body: gild_slack::clip(text.trim(), BODY_KEPT),
        })
    }
}

/// A reqwest error in words, without the URL reqwest would otherwise print.
fn describe(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let err = err.without_url();
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `Retry-After` as delay-seconds (what Slack sends); an HTTP date or
/// garbage counts as absent, and the caller backs off on its own.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str =
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

    #[test]
    fn secrets_hold_an_https_url_plain_or_as_json() {
        assert!(WebhookUrl::from_secret(HOOK, false).is_ok());
        assert!(WebhookUrl::from_secret(&format!("  {HOOK}\n"), false).is_ok());
        let json = format!(r#"{{"webhook_url": "{HOOK}"}}"#);
        assert_eq!(
            WebhookUrl::from_secret(&json, false).map(|u| u.url().as_str().to_owned()),
            Ok(HOOK.to_owned())
        );
        assert_eq!(
            WebhookUrl::from_secret(r#"{"token": "x"}"#, false),
            Err(UrlError::NoUrlKey)
        );
        assert_eq!(WebhookUrl::from_secret(" ", false), Err(UrlError::Empty));
        assert!(matches!(
            WebhookUrl::from_secret("hooks.slack.com/services/x", false),
            Err(UrlError::NotUrl(_))
        ));
    }

    #[test]
    fn http_only_to_loopback_and_only_when_allowed() {
        let local = "http://127.0.0.1:8080/services/T/B/X";
        assert_eq!(
            WebhookUrl::from_secret(local, false),
            Err(UrlError::InsecureLoopbackNotAllowed)
        );
        assert!(WebhookUrl::from_secret(local, true).is_ok());
        assert!(WebhookUrl::from_secret("http://[::1]:8080/x", true).is_ok());
        for url in [
            "http://hooks.slack.com/services/T/B/X",
            "http://localhost:8080/x",
            "http://10.0.0.1/x",
        ] {
            assert_eq!(
                WebhookUrl::from_secret(url, true),
                Err(UrlError::NotHttps("http".into())),
                "{url}"
            );
        }
        assert_eq!(
            WebhookUrl::from_secret("ftp://127.0.0.1/x", true),
            Err(UrlError::NotHttps("ftp".into()))
        );
    }

    #[test]
    fn the_url_never_shows_in_debug_display_or_errors() {
        let url = WebhookUrl::from_secret(HOOK, false).expect("url");
        assert!(!format!("{url:?} {url}").contains("XXXX"));
        let err = WebhookUrl::from_secret("http://hooks.slack.com/services/SECRET", true)
            .expect_err("http");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let err = WebhookUrl::from_secret("https://[SECRET/", false).expect_err("bad");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
