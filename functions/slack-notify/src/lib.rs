//! The slack-notify Lambda: subscribed to the announcement topic (protocol
//! `lambda`), it posts each announcement to a Slack incoming webhook whose
//! URL is kept in Secrets Manager. Rendering is `gild_core::slack`; this
//! crate reads the SNS event, the secret, and does the POST with retries
//! inside the invocation's time limit.

mod config;
mod handler;
pub mod sns;
pub mod webhook;

pub use config::Config;
pub use handler::{
    deadline_instant, Handler, NotifyError, Outcome, Posted, Settings, DEADLINE_MARGIN,
};
