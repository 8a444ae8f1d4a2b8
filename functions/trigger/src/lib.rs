//! The trigger Lambda: turns a schedule, a push or a manual request into one
//! bake build per affected family, exactly once.

mod config;
mod handler;

pub use config::Config;
pub use handler::{Handler, Outcome, TriggerError};
