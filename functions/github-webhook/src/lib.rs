//! github-webhook: a Lambda Function URL that takes GitHub `push`
//! deliveries, checks their signature, and starts the bakes the push calls
//! for through the same planner and ledger as CodeCommit pushes.

mod config;
mod webhook;

pub use config::Config;
pub use webhook::Webhook;
