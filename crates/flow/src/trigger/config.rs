//! What starting bakes needs from the environment, read once at cold start.

use gild_core::plan::Settings;
use gild_core::ports::{Builds, Ledger, Repository};
use gild_core::pull_request::{ReviewPolicy, DEFAULT_TRUSTED_LABEL};
use gild_core::queue;
use gild_core::vocabulary::defaults;
use gild_lambda::{optional, required, ConfigError};

use super::Handler;

/// What starting bakes needs from the environment, the same for the trigger
/// and github-webhook functions. Read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartConfig {
    pub ledger_table: String,
    pub bake_project: String,
    /// StartBuild calls in flight at once on a fan-out.
    pub concurrency: usize,
    /// How long a claim is held; longer than the function's timeout.
    pub lease_secs: i64,
    /// gild's builds at once; more bakes wait in the ledger's queue.
    pub max_parallel: usize,
}

/// What validating pull requests needs beyond starting bakes: the test
/// project (test-only runs), the family parameters (the images they test
/// on), and the stack's policy for forks and drafts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewConfig {
    pub test_project: String,
    pub parameter_prefix: String,
    pub policy: ReviewPolicy,
}

impl ReviewConfig {
    /// The pull-request ports over the given adapters.
    pub fn ports<V, T, P, I, S>(
        &self,
        reviews: V,
        (tests, parameters, images, control): (T, P, I, S),
    ) -> super::ReviewPorts<V, T, P, I, S> {
        super::ReviewPorts {
            reviews,
            tests,
            parameters,
            images,
            control,
            parameter_prefix: self.parameter_prefix.clone(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(ReviewConfig {
            test_project: required("GILD_TEST_PROJECT")?,
            parameter_prefix: optional(
                "GILD_PARAMETER_PREFIX",
                defaults::PARAMETER_PREFIX.to_owned(),
            )?,
            policy: ReviewPolicy {
                trusted_label: optional("GILD_TRUSTED_LABEL", DEFAULT_TRUSTED_LABEL.to_owned())?,
                validate_drafts: optional("GILD_VALIDATE_DRAFTS", false)?,
            },
        })
    }
}

impl StartConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let concurrency = optional("GILD_START_CONCURRENCY", 8usize)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "GILD_START_CONCURRENCY",
                value: "0".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(StartConfig {
            bake_project: required("GILD_BAKE_PROJECT")?,
            ledger_table: required("GILD_LEDGER_TABLE")?,
            concurrency,
            lease_secs: optional("GILD_LEASE_SECS", gild_core::ledger::DEFAULT_LEASE_SECS)?,
            max_parallel: optional(
                "GILD_MAX_PARALLEL_BUILDS",
                queue::DEFAULT_MAX_PARALLEL_BUILDS,
            )?,
        })
    }

    /// The handler reading `repo`, over `ledger` and `builds` (the
    /// function's `main.rs` builds them, `gild_aws::start_ports`).
    pub fn handler<R: Repository, L: Ledger, B: Builds>(
        &self,
        settings: Settings,
        repo: R,
        ledger: L,
        builds: B,
    ) -> Handler<R, L, B> {
        Handler::new(
            settings,
            repo,
            ledger,
            builds,
            self.concurrency,
            self.lease_secs,
        )
        .with_max_parallel(self.max_parallel)
    }
}
