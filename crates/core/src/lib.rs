//! gild's decisions, free of I/O: what the catalog says, what an event means,
//! which families to bake, how a bake moves through its states. Handlers ask
//! this crate what to do and do it through the traits in [`ports`].

pub mod announce;
pub mod approval_rule;
pub mod bom;
pub mod catalog;
pub mod completion;
pub mod event;
pub mod explain;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod github;
pub mod layers;
pub mod ledger;
pub mod patch_day;
pub mod plan;
pub mod ports;
pub mod pull_request;
pub mod queue;
pub mod reconcile;
pub mod retry;
pub mod review;
pub mod state;
pub mod steps;
pub mod vocabulary;

#[cfg(feature = "fakes")]
pub mod fakes;
