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
    /// The bills of materials and package diffs (`GILD_ARTIFACT_BUCKET`).
    pub artifact_bucket: String,
    pub settings: FlowSettings,
    /// Where the pull requests candidates report to live.
    pub host: RepositoryHost,
}

/// CodeCommit (default) or GitHub: where the images repository and its
/// pull requests live. Read by every function that reads the repository or
/// reports on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryHost {
    CodeCommit {
        /// The repository's name (`GILD_REPOSITORY`).
        repository: String,
        /// The role every function reports on pull requests as
        /// (`GILD_REVIEWER_ROLE_ARN`); `None`: each function's own.
        reviewer_role: Option<String>,
    },
    GitHub {
        /// `owner/name` (`GILD_GITHUB_REPOSITORY`).
        repository: String,
        /// Secrets Manager name of the API token, read at run time.
        token_secret: String,
        api_url: String,
    },
}

/// GitHub's public API root, unless `GILD_GITHUB_API_URL` names an
/// Enterprise one.
pub const GITHUB_API_URL: &str = "https://api.github.com";

impl RepositoryHost {
    pub fn from_env() -> Result<Self, ConfigError> {
        match optional("GILD_REPOSITORY_HOST", "codecommit".to_owned())?.as_str() {
            "codecommit" => Ok(RepositoryHost::CodeCommit {
                repository: required("GILD_REPOSITORY")?,
                reviewer_role: Some(optional("GILD_REVIEWER_ROLE_ARN", String::new())?)
                    .filter(|role| !role.is_empty()),
            }),
            "github" => Ok(RepositoryHost::GitHub {
                repository: required("GILD_GITHUB_REPOSITORY")?,
                token_secret: required("GILD_GITHUB_TOKEN_SECRET")?,
                api_url: optional("GILD_GITHUB_API_URL", GITHUB_API_URL.to_owned())?,
            }),
            other => Err(ConfigError::Invalid {
                name: "GILD_REPOSITORY_HOST",
                value: other.to_owned(),
                problem: "must be `codecommit` or `github`".into(),
            }),
        }
    }

    /// GitHub's API root and the token's secret name; `None` on CodeCommit.
    pub fn github(&self) -> Option<(&str, &str)> {
        match self {
            RepositoryHost::GitHub {
                api_url,
                token_secret,
                ..
            } => Some((api_url, token_secret)),
            RepositoryHost::CodeCommit { .. } => None,
        }
    }

    /// The role CodeCommit pull requests are reported as, when the stack
    /// gives one.
    pub fn reviewer_role(&self) -> Option<&str> {
        match self {
            RepositoryHost::CodeCommit { reviewer_role, .. } => reviewer_role.as_deref(),
            RepositoryHost::GitHub { .. } => None,
        }
    }

    /// The repository's name as events and pull requests carry it.
    pub fn repository(&self) -> &str {
        match self {
            RepositoryHost::CodeCommit { repository, .. }
            | RepositoryHost::GitHub { repository, .. } => repository,
        }
    }
}

impl CompletionConfig {
    pub fn from_env(accept: Accept) -> Result<Self, ConfigError> {
        Ok(CompletionConfig {
            ledger_table: required("GILD_LEDGER_TABLE")?,
            topic_arn: required("GILD_TOPIC_ARN")?,
            artifact_bucket: required("GILD_ARTIFACT_BUCKET")?,
            host: RepositoryHost::from_env()?,
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
