//! What bake-finished and test-finished read from the environment, once at
//! cold start. A missing variable stops the function at init, named.

use gild_core::completion::Projects;
use gild_core::ledger::DEFAULT_LEASE_SECS;
use gild_core::pull_request::DEFAULT_CANDIDATE_TTL_HOURS;
use gild_core::vocabulary::defaults;
use gild_lambda::{optional, required, ConfigError};

use crate::{Accept, FlowSettings};

#[derive(Debug, Clone)]
pub struct CompletionConfig {
    pub ledger_table: String,
    pub topic_arn: String,
    pub settings: FlowSettings,
}

impl CompletionConfig {
    pub fn from_env(accept: Accept) -> Result<Self, ConfigError> {
        Ok(CompletionConfig {
            ledger_table: required("GILD_LEDGER_TABLE")?,
            topic_arn: required("GILD_TOPIC_ARN")?,
            settings: FlowSettings {
                accept,
                projects: Projects {
                    bake: required("GILD_BAKE_PROJECT")?,
                    test: required("GILD_TEST_PROJECT")?,
                },
                parameter_prefix: optional(
                    "GILD_PARAMETER_PREFIX",
                    defaults::PARAMETER_PREFIX.to_owned(),
                )?,
                lease_secs: optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)?,
                candidate_ttl_hours: optional(
                    "GILD_CANDIDATE_TTL_HOURS",
                    DEFAULT_CANDIDATE_TTL_HOURS,
                )?,
            },
        })
    }
}
