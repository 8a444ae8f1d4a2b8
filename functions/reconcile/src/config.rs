//! The reconciler's environment, read once at cold start.

use gild_core::completion::Projects;
use gild_core::ledger::DEFAULT_LEASE_SECS;
use gild_core::pull_request::DEFAULT_CANDIDATE_TTL_HOURS;
use gild_core::queue::DEFAULT_MAX_PARALLEL_BUILDS;
use gild_core::reconcile::Deadlines;
use gild_core::vocabulary::defaults;
use gild_flow::config::RepositoryHost;
use gild_flow::{Accept, FlowSettings};
use gild_lambda::{optional, required, ConfigError};

#[derive(Debug, Clone)]
pub struct Config {
    pub ledger_table: String,
    pub topic_arn: String,
    /// The bills of materials and package diffs (`GILD_ARTIFACT_BUCKET`).
    pub artifact_bucket: String,
    pub flow: FlowSettings,
    pub deadlines: Deadlines,
    pub max_parallel: usize,
    pub region: String,
    /// Where candidates report.
    pub host: RepositoryHost,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let lease_secs = optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)?;
        Ok(Config {
            ledger_table: required("GILD_LEDGER_TABLE")?,
            topic_arn: required("GILD_TOPIC_ARN")?,
            artifact_bucket: required("GILD_ARTIFACT_BUCKET")?,
            flow: FlowSettings {
                // The reconciler drives both kinds of completion.
                accept: Accept::Bake,
                projects: Projects {
                    bake: required("GILD_BAKE_PROJECT")?,
                    test: required("GILD_TEST_PROJECT")?,
                },
                parameter_prefix: optional(
                    "GILD_PARAMETER_PREFIX",
                    defaults::PARAMETER_PREFIX.to_owned(),
                )?,
                lease_secs,
                candidate_ttl_hours: optional(
                    "GILD_CANDIDATE_TTL_HOURS",
                    DEFAULT_CANDIDATE_TTL_HOURS,
                )?,
            },
            deadlines: Deadlines::from_timeouts(
                optional(
                    "GILD_BAKE_TIMEOUT_MINUTES",
                    Deadlines::DEFAULT_BAKE_TIMEOUT_MINUTES,
                )?,
                optional(
                    "GILD_TEST_TIMEOUT_MINUTES",
                    Deadlines::DEFAULT_TEST_TIMEOUT_MINUTES,
                )?,
                optional(
                    "GILD_QUEUED_TIMEOUT_MINUTES",
                    Deadlines::DEFAULT_QUEUED_TIMEOUT_MINUTES,
                )?,
                optional(
                    "GILD_LONGEST_LEASE_SECS",
                    Deadlines::DEFAULT_LONGEST_LEASE_SECS,
                )?,
                optional(
                    "GILD_DEADLINE_MARGIN_MINUTES",
                    Deadlines::DEFAULT_MARGIN_MINUTES,
                )?,
            ),
            max_parallel: optional("GILD_MAX_PARALLEL_BUILDS", DEFAULT_MAX_PARALLEL_BUILDS)?,
            region: optional("AWS_REGION", "us-east-1".to_owned())?,
            host: RepositoryHost::from_env()?,
        })
    }
}
