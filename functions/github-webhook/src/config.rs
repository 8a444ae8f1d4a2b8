use gild_core::plan::Settings;
use gild_core::vocabulary::defaults;
use gild_flow::config::GITHUB_API_URL;
use gild_flow::trigger::{ReviewConfig, StartConfig};
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
    /// Ledger, bake project and fan-out, as the trigger reads them.
    pub start: StartConfig,
    /// Pull requests: the test project, the parameters, forks and drafts.
    pub review: ReviewConfig,
    /// Larger bodies are refused before they are hashed.
    pub max_body_bytes: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            webhook_secret: required("GILD_WEBHOOK_SECRET")?,
            token_secret: required("GILD_GITHUB_TOKEN_SECRET")?,
            repository: required("GILD_GITHUB_REPOSITORY")?,
            api_url: optional("GILD_GITHUB_API_URL", GITHUB_API_URL.to_owned())?,
            tracked_branch: optional("GILD_TRACKED_BRANCH", defaults::TRACKED_BRANCH.to_owned())?,
            start: StartConfig::from_env()?,
            review: ReviewConfig::from_env()?,
            max_body_bytes: optional("GILD_MAX_BODY_BYTES", 1024 * 1024usize)?,
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tracked_branch: self.tracked_branch.clone(),
            repository: Some(self.repository.clone()),
            review: self.review.policy.clone(),
            ..Settings::default()
        }
    }
}
