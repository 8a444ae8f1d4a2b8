//! The errors an invocation reports, each with a stable `errorType`.

use gild_core::ports::PortError;
use gild_lambda::retry::{GaveUp, Stop};
use gild_lambda::Diagnostic;
use gild_slack::NoticeError;

use crate::sns::SnsError;
use crate::webhook::Failure;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    BadEvent(#[from] SnsError),
    #[error("SNS message {message_id}: {error}")]
    BadAnnouncement {
        message_id: String,
        error: NoticeError,
    },
    #[error("reading the webhook secret `{secret}`: {error}")]
    SecretUnavailable { secret: String, error: PortError },
    #[error("the webhook secret `{secret}` is not usable: {problem}")]
    WebhookMisconfigured { secret: String, problem: String },
    #[error("Slack refused the announcement of {family} (SNS message {message_id}) with HTTP {status}: {body}; not retried")]
    SlackRejected {
        message_id: String,
        family: String,
        status: u16,
        body: String,
    },
    #[error("Slack did not take the announcement of {family} (SNS message {message_id}) after {attempts} attempt(s): {last}")]
    SlackUnavailable {
        message_id: String,
        family: String,
        attempts: u32,
        last: String,
    },
}

impl NotifyError {
    /// Stable names for Lambda's `errorType`, alarms and DLQ triage.
    pub fn name(&self) -> &'static str {
        match self {
            NotifyError::BadEvent(_) => "BadEvent",
            NotifyError::BadAnnouncement { .. } => "BadAnnouncement",
            NotifyError::SecretUnavailable { .. } => "SecretUnavailable",
            NotifyError::WebhookMisconfigured { .. } => "WebhookMisconfigured",
            NotifyError::SlackRejected { .. } => "SlackRejected",
            NotifyError::SlackUnavailable { .. } => "SlackUnavailable",
        }
    }

    /// A message Slack did not take: refused for good, or not taken in the
    /// tries and the time there were.
    pub(crate) fn undelivered(message_id: &str, family: &str, gave_up: GaveUp<Failure>) -> Self {
        let (message_id, family) = (message_id.to_owned(), family.to_owned());
        let GaveUp {
            error,
            attempts,
            stop,
        } = gave_up;
        let last = match (error, stop) {
            (Failure::Rejected { status, body }, _) => {
                return NotifyError::SlackRejected {
                    message_id,
                    family,
                    status,
                    body,
                }
            }
            (error, Stop::Deadline { wait }) => format!(
                "{error}; the next try (in {:.1}s) would run past this invocation's deadline",
                wait.as_secs_f64()
            ),
            (error, _) => error.to_string(),
        };
        NotifyError::SlackUnavailable {
            message_id,
            family,
            attempts,
            last,
        }
    }
}

impl From<NotifyError> for Diagnostic {
    fn from(err: NotifyError) -> Self {
        gild_lambda::diagnostic(err.name(), &err)
    }
}
