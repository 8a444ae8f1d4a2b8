//! The trigger Lambda: turns a schedule, a push or a manual request into one
//! bake build per affected family, exactly once.

mod config;

pub use config::Config;
pub use gild_flow::trigger::{Handler, Outcome, TriggerError};
