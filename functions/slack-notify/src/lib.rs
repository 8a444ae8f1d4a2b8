//! The slack-notify Lambda: subscribed to the announcement topic (protocol
//! `lambda`), it posts each announcement to a Slack incoming webhook whose
//! URL is kept in Secrets Manager. Rendering is `gild_slack`; this crate
//! reads the SNS event (`aws_lambda_events`' type), the secret, and does the
//! POST with `gild_lambda::retry` inside the invocation's time limit.

mod config;
mod error;
mod handler;
pub mod sns;
pub mod webhook;

pub use config::Config;
pub use error::NotifyError;
pub use handler::{Handler, Outcome, Posted, Settings, DEADLINE_MARGIN};
