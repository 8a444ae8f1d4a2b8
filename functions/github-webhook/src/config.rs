use gild_core::ledger::DEFAULT_LEASE_SECS;
use gild_core::plan::Settings;
use gild_lambda::{optional, required, ConfigError};

/// Read once at cold start; a missing variable stops the function at init.
#[derive(Debug, Clone)]
pub struct Config {
    /// Secrets Manager name of the webhook secret (current and previous).
    pub webhook_secret: String,
    /// Secrets Manager name of the GitHub token the API reads use.
    pub token_secret: String,
    /// `owner/name` of the images repository.
    pub repository: String,
    pub api_url: String,
    pub tracked_branch: String,
    pub ledger_table: String,
    pub bake_project: String,
    pub concurrency: usize,
    pub lease_secs: i64,
    /// gild's builds at once; more bakes wait in the ledger's queue.
    pub max_parallel: usize,
    /// Larger bodies are refused before they are hashed.
    pub max_body_bytes: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            webhook_secret: required("GILD_WEBHOOK_SECRET")?,
            token_secret: required("GILD_GITHUB_TOKEN_SECRET")?,
            repository: required("GILD_GITHUB_REPOSITORY")?,
            api_url: optional("GILD_GITHUB_API_URL", "https://api.github.com".to_owned())?,
            tracked_branch: optional("GILD_TRACKED_BRANCH", "main".to_owned())?,
            ledger_table: required("GILD_LEDGER_TABLE")?,
            bake_project: required("GILD_BAKE_PROJECT")?,
            concurrency: optional("GILD_START_CONCURRENCY", 8usize)?.max(1),
            lease_secs: optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)?,
            max_parallel: optional(
                "GILD_MAX_PARALLEL_BUILDS",
                gild_core::queue::DEFAULT_MAX_PARALLEL_BUILDS,
            )?,
            max_body_bytes: optional("GILD_MAX_BODY_BYTES", 1024 * 1024usize)?,
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tracked_branch: self.tracked_branch.clone(),
            repository: Some(self.repository.clone()),
            ..Settings::default()
        }
    }
}
