//! One invocation: an SNS event in, one Slack message per record out.
//!
//! Every failure is returned as a typed error, so Lambda's asynchronous
//! retries and then the function's dead-letter queue / on-failure
//! destination keep the SNS message: an announcement is never dropped
//! silently. A redelivered event may post a message twice; the context line
//! shows the bake's dedupe key, so readers can tell.

use std::time::{Duration, Instant};

use gild_core::ports::{SecretStage, Secrets};
use gild_core::retry::Backoff;
use gild_lambda::retry::{seed, with_backoff, with_backoff_until};
use gild_slack::{Notice, NoticeOutcome, RepositoryLink};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, info_span, warn, Instrument};

use crate::error::NotifyError;
use crate::sns;
use crate::webhook::{Failure, Transport, UrlError, WebhookUrl};

/// Time kept back from the invocation's deadline: no retry starts (and no
/// request runs) into it, so the function reports its error itself rather
/// than being killed mid-request.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// What one invocation did; the Lambda's response.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub posted: Vec<Posted>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Posted {
    pub message_id: String,
    pub family: String,
    pub outcome: NoticeOutcome,
    pub dedupe_key: String,
    /// POSTs it took (retries included).
    pub attempts: u32,
}

/// What the handler needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub webhook_secret: String,
    pub repository: RepositoryLink,
    pub allow_insecure_loopback: bool,
    pub request_timeout: Duration,
}

struct Prepared {
    message_id: String,
    notice: Notice,
    body: Vec<u8>,
}

pub struct Handler<S, T> {
    settings: Settings,
    secrets: S,
    transport: T,
    backoff: Backoff,
    margin: Duration,
}

impl<S: Secrets, T: Transport> Handler<S, T> {
    pub fn new(settings: Settings, secrets: S, transport: T) -> Self {
        Handler {
            settings,
            secrets,
            transport,
            backoff: Backoff::default(),
            margin: DEADLINE_MARGIN,
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn secrets(&self) -> &S {
        &self.secrets
    }

    /// Renders every record first (a bad one fails the event before anything
    /// is posted), then posts them in order, stopping at the first failure:
    /// the retry of the whole event re-posts what went before it.
    pub async fn handle(&self, event: Value, deadline: Instant) -> Result<Outcome, NotifyError> {
        let records = sns::parse(event)?;
        let mut prepared = Vec::with_capacity(records.len());
        for record in records {
            let notice =
                Notice::parse(&record.message).map_err(|error| NotifyError::BadAnnouncement {
                    message_id: record.message_id.clone(),
                    error,
                })?;
            let message = gild_slack::render(&notice, &self.settings.repository);
            let body = message.to_json().to_string().into_bytes();
            prepared.push(Prepared {
                message_id: record.message_id,
                notice,
                body,
            });
        }
        let url = self.webhook().await?;
        let mut posted = Vec::with_capacity(prepared.len());
        for p in prepared {
            let attempts = self.deliver(&url, &p, deadline).await.inspect_err(|_| {
                if !posted.is_empty() {
                    warn!(posted = posted.len(), "earlier records of this event were posted and will be posted again on retry");
                }
            })?;
            info!(
                message_id = %p.message_id,
                family = %p.notice.family,
                outcome = p.notice.outcome.as_str(),
                dedupe_key = %p.notice.dedupe_key,
                attempts,
                "posted to Slack"
            );
            posted.push(Posted {
                message_id: p.message_id,
                family: p.notice.family,
                outcome: p.notice.outcome,
                dedupe_key: p.notice.dedupe_key,
                attempts,
            });
        }
        Ok(Outcome { posted })
    }

    /// The webhook URL from the secret's current version (cached by the
    /// adapter), checked; its text is never logged.
    async fn webhook(&self) -> Result<WebhookUrl, NotifyError> {
        let name = &self.settings.webhook_secret;
        let value = with_backoff(&self.backoff, seed(name), || {
            self.secrets.get(name, SecretStage::Current)
        })
        .await
        .map_err(|error| NotifyError::SecretUnavailable {
            secret: name.clone(),
            error,
        })?;
        let misconfigured = |problem: String| NotifyError::WebhookMisconfigured {
            secret: name.clone(),
            problem,
        };
        let text = value
            .ok_or_else(|| misconfigured("it has no current (AWSCURRENT) text value".into()))?;
        WebhookUrl::from_secret(&text, self.settings.allow_insecure_loopback)
            .map_err(|e: UrlError| misconfigured(e.to_string()))
    }

    /// POSTs until Slack takes the message, refuses it for good, the
    /// attempts run out, or the next wait would run into the deadline's
    /// margin (`gild_lambda::retry`). 429 waits `Retry-After`; 5xx, 408 and
    /// transport failures back off; other statuses are final.
    async fn deliver(
        &self,
        url: &WebhookUrl,
        p: &Prepared,
        deadline: Instant,
    ) -> Result<u32, NotifyError> {
        let (message_id, family) = (&p.message_id, &p.notice.family);
        let cutoff = deadline.checked_sub(self.margin).unwrap_or(deadline);
        let delivered = if Instant::now() >= cutoff {
            Err(NotifyError::SlackUnavailable {
                message_id: message_id.clone(),
                family: family.clone(),
                attempts: 0,
                last: "no time left in this invocation".into(),
            })
        } else {
            let post = || async {
                let left = cutoff.saturating_duration_since(Instant::now());
                let timeout = self.settings.request_timeout.min(left);
                Failure::of(self.transport.post(url, &p.body, timeout).await)
            };
            let seed = seed(&p.notice.dedupe_key);
            with_backoff_until(&self.backoff, seed, Some(cutoff), Failure::retry, post)
                .instrument(info_span!("slack_post", %message_id, %family))
                .await
                .map(|((), attempts)| attempts)
                .map_err(|gave_up| NotifyError::undelivered(message_id, family, gave_up))
        };
        delivered.inspect_err(|err| {
            error!(%message_id, %family, error_type = err.name(), "{err}");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::Reply;
    use gild_core::ports::PortError;
    use gild_lambda::Diagnostic;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    const HOOK: &str = "https://hooks.slack.com/services/T0/B0/SECRETTOKEN";

    struct FakeSecrets {
        value: Result<Option<String>, PortError>,
        calls: Mutex<u32>,
    }

    impl FakeSecrets {
        fn holding(value: &str) -> Self {
            FakeSecrets {
                value: Ok(Some(value.into())),
                calls: Mutex::new(0),
            }
        }
    }

    impl Secrets for FakeSecrets {
        async fn get(&self, name: &str, stage: SecretStage) -> Result<Option<String>, PortError> {
            assert_eq!(name, "gild/slack-webhook");
            assert_eq!(stage, SecretStage::Current);
            *self.calls.lock().expect("lock") += 1;
            self.value.clone()
        }
    }

    /// Answers from a script, then 200 "ok"; records what was sent.
    #[derive(Default)]
    struct Scripted {
        replies: Mutex<VecDeque<Result<Reply, String>>>,
        sent: Mutex<Vec<(Vec<u8>, Duration, Instant)>>,
    }

    impl Scripted {
        fn new(replies: Vec<Result<Reply, String>>) -> Self {
            Scripted {
                replies: Mutex::new(replies.into()),
                sent: Mutex::default(),
            }
        }

        fn posts(&self) -> usize {
            self.sent.lock().expect("lock").len()
        }
    }

    fn reply(status: u16, body: &str, retry_after: Option<Duration>) -> Result<Reply, String> {
        Ok(Reply {
            status,
            retry_after,
            body: body.into(),
        })
    }

    impl Transport for Scripted {
        async fn post(
            &self,
            url: &WebhookUrl,
            body: &[u8],
            timeout: Duration,
        ) -> Result<Reply, String> {
            assert_eq!(url.url().as_str(), HOOK);
            self.sent
                .lock()
                .expect("lock")
                .push((body.to_vec(), timeout, Instant::now()));
            self.replies
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or_else(|| reply(200, "ok", None))
        }
    }

    fn settings() -> Settings {
        Settings {
            webhook_secret: "gild/slack-webhook".into(),
            repository: RepositoryLink::codecommit("gild-images").expect("name"),
            allow_insecure_loopback: false,
            request_timeout: Duration::from_secs(10),
        }
    }

    fn handler(secrets: FakeSecrets, transport: Scripted) -> Handler<FakeSecrets, Scripted> {
        Handler::new(settings(), secrets, transport).with_backoff(Backoff {
            base: Duration::from_millis(2),
            cap: Duration::from_millis(4),
            attempts: 4,
        })
    }

    fn event(name: &str) -> Value {
        let text = match name {
            "promoted" => include_str!("../../../tests/fixtures/slack/sns-promoted.json"),
            "test-failed" => include_str!("../../../tests/fixtures/slack/sns-test-failed.json"),
            "malformed" => include_str!("../../../tests/fixtures/slack/sns-malformed.json"),
            "wrong-schema" => include_str!("../../../tests/fixtures/slack/sns-wrong-schema.json"),
            _ => unreachable!("no fixture {name}"),
        };
        serde_json::from_str(text).expect("fixture")
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn posts_the_rendered_message_once() {
        let h = handler(FakeSecrets::holding(HOOK), Scripted::default());
        let outcome = h.handle(event("promoted"), soon()).await.expect("posted");
        assert_eq!(outcome.posted.len(), 1);
        assert_eq!(outcome.posted[0].attempts, 1);
        assert_eq!(outcome.posted[0].family, "debian13-base");
        let sent = h.transport().sent.lock().expect("lock");
        assert_eq!(sent.len(), 1);
        let body: Value = serde_json::from_slice(&sent[0].0).expect("json");
        let expected: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/slack/expected-promoted.json"
        ))
        .expect("fixture");
        assert_eq!(body, expected);
        assert_eq!(sent[0].1, Duration::from_secs(10));
    }

    #[tokio::test]
    async fn rate_limits_wait_retry_after_then_succeed() {
        let h = handler(
            FakeSecrets::holding(HOOK),
            Scripted::new(vec![reply(
                429,
                "rate_limited",
                Some(Duration::from_millis(300)),
            )]),
        );
        let outcome = h.handle(event("promoted"), soon()).await.expect("posted");
        assert_eq!(outcome.posted[0].attempts, 2);
        let sent = h.transport().sent.lock().expect("lock");
        assert!(sent[1].2 - sent[0].2 >= Duration::from_millis(300));
        assert_eq!(sent[0].0, sent[1].0);
    }

    #[tokio::test]
    async fn server_errors_and_transport_failures_back_off() {
        let h = handler(
            FakeSecrets::holding(HOOK),
            Scripted::new(vec![
                reply(500, "", None),
                Err("timed out".into()),
                reply(503, "", None),
            ]),
        );
        let outcome = h.handle(event("promoted"), soon()).await.expect("posted");
        assert_eq!(outcome.posted[0].attempts, 4);
        assert_eq!(h.transport().posts(), 4);
    }

    #[tokio::test]
    async fn attempts_run_out() {
        let h = handler(
            FakeSecrets::holding(HOOK),
            Scripted::new(vec![reply(500, "boom", None); 10]),
        );
        let err = h
            .handle(event("promoted"), soon())
            .await
            .expect_err("fails");
        assert_eq!(err.name(), "SlackUnavailable");
        assert!(
            err.to_string()
                .contains("after 4 attempt(s): HTTP 500: boom"),
            "{err}"
        );
        assert_eq!(h.transport().posts(), 4);
    }

    #[tokio::test]
    async fn client_errors_are_final() {
        for (status, body) in [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (410, "channel_is_archived"),
        ] {
            let h = handler(
                FakeSecrets::holding(HOOK),
                Scripted::new(vec![reply(status, body, None)]),
            );
            let err = h
                .handle(event("test-failed"), soon())
                .await
                .expect_err("refused");
            assert_eq!(err.name(), "SlackRejected");
            assert!(err.to_string().contains(body), "{err}");
            assert_eq!(h.transport().posts(), 1);
            let diagnostic = Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, "gild.SlackRejected");
        }
    }

    #[tokio::test]
    async fn no_wait_runs_past_the_deadline() {
        let h = handler(
            FakeSecrets::holding(HOOK),
            Scripted::new(vec![reply(
                429,
                "rate_limited",
                Some(Duration::from_secs(30)),
            )]),
        )
        .with_margin(Duration::from_secs(1));
        let started = Instant::now();
        let err = h
            .handle(event("promoted"), Instant::now() + Duration::from_secs(5))
            .await
            .expect_err("gives up");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(err.name(), "SlackUnavailable");
        assert!(err.to_string().contains("deadline"), "{err}");
        assert_eq!(h.transport().posts(), 1);
        // One request's time limit is cut to what is left before the margin.
        let sent = h.transport().sent.lock().expect("lock");
        assert!(sent[0].1 <= Duration::from_secs(4));
    }

    #[tokio::test]
    async fn an_absurd_retry_after_gives_up_without_panicking() {
        let h = handler(
            FakeSecrets::holding(HOOK),
            Scripted::new(vec![reply(429, "rate_limited", Some(Duration::MAX))]),
        );
        let err = h
            .handle(event("promoted"), soon())
            .await
            .expect_err("gives up");
        assert_eq!(err.name(), "SlackUnavailable");
        assert_eq!(h.transport().posts(), 1);
    }

    #[tokio::test]
    async fn nothing_is_posted_without_time_left() {
        let h = handler(FakeSecrets::holding(HOOK), Scripted::default());
        let err = h
            .handle(event("promoted"), Instant::now())
            .await
            .expect_err("no time");
        assert_eq!(err.name(), "SlackUnavailable");
        assert_eq!(h.transport().posts(), 0);
    }

    #[tokio::test]
    async fn bad_events_fail_before_anything_is_read_or_posted() {
        for (name, error_type) in [
            ("malformed", "BadEvent"),
            ("wrong-schema", "BadAnnouncement"),
        ] {
            let h = handler(FakeSecrets::holding(HOOK), Scripted::default());
            let err = h.handle(event(name), soon()).await.expect_err("bad");
            assert_eq!(err.name(), error_type, "{err}");
            assert_eq!(h.transport().posts(), 0);
            assert_eq!(*h.secrets().calls.lock().expect("lock"), 0);
        }
        let h = handler(FakeSecrets::holding(HOOK), Scripted::default());
        let err = h
            .handle(
                serde_json::json!({"detail-type": "Scheduled Event"}),
                soon(),
            )
            .await
            .expect_err("not sns");
        assert_eq!(err.name(), "BadEvent");
    }

    #[tokio::test]
    async fn every_record_is_posted() {
        let mut both = event("promoted");
        let second = event("test-failed")["Records"][0].clone();
        both["Records"]
            .as_array_mut()
            .expect("records")
            .push(second);
        let h = handler(FakeSecrets::holding(HOOK), Scripted::default());
        let outcome = h.handle(both, soon()).await.expect("posted");
        assert_eq!(outcome.posted.len(), 2);
        assert_eq!(outcome.posted[1].outcome, NoticeOutcome::Failed);
        assert_eq!(h.transport().posts(), 2);
    }

    #[tokio::test]
    async fn unusable_secrets_are_named_without_their_value() {
        let cases = [
            (
                FakeSecrets {
                    value: Ok(None),
                    calls: Mutex::new(0),
                },
                "WebhookMisconfigured",
            ),
            (
                FakeSecrets::holding("http://hooks.slack.com/services/T0/B0/SECRETTOKEN"),
                "WebhookMisconfigured",
            ),
            (
                FakeSecrets::holding("http://127.0.0.1:9/services/SECRETTOKEN"),
                "WebhookMisconfigured",
            ),
            (
                FakeSecrets {
                    value: Err(PortError::NotFound {
                        service: "SecretsManager",
                        operation: "GetSecretValue",
                        code: "ResourceNotFoundException".into(),
                        message: "Secrets Manager can't find the specified secret.".into(),
                    }),
                    calls: Mutex::new(0),
                },
                "SecretUnavailable",
            ),
        ];
        for (secrets, error_type) in cases {
            let h = handler(secrets, Scripted::default());
            let err = h
                .handle(event("promoted"), soon())
                .await
                .expect_err("unusable");
            assert_eq!(err.name(), error_type, "{err}");
            assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");
            assert!(err.to_string().contains("gild/slack-webhook"), "{err}");
            assert_eq!(h.transport().posts(), 0);
        }
    }
}
