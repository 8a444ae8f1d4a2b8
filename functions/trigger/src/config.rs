use gild_core::completion::Projects;
use gild_core::plan::Settings;
use gild_lambda::{optional, required, ConfigError};

/// Read once at cold start; a missing variable stops the function at init
/// with its name, before any event is taken.
#[derive(Debug, Clone)]
pub struct Config {
    pub bake_project: String,
    /// Its builds ending free a slot for a queued bake.
    pub test_project: String,
    pub ledger_table: String,
    pub repository: String,
    pub tracked_branch: String,
    /// StartBuild calls in flight at once on a fan-out.
    pub concurrency: usize,
    /// gild's builds at once; more bakes wait in the ledger's queue.
    pub max_parallel: usize,
    /// How long a claim is held; longer than the function's timeout.
    pub lease_secs: i64,
    /// Where the images repository lives.
    pub host: RepositoryHost,
}

/// CodeCommit (default) or GitHub, where schedule and manual bakes read
/// the catalog at the tracked branch's tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryHost {
    CodeCommit,
    GitHub {
        /// `owner/name`.
        repository: String,
        token_secret: String,
        api_url: String,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let concurrency = optional("GILD_START_CONCURRENCY", 8usize)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "GILD_START_CONCURRENCY",
                value: "0".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(Config {
            bake_project: required("GILD_BAKE_PROJECT")?,
            test_project: required("GILD_TEST_PROJECT")?,
            ledger_table: required("GILD_LEDGER_TABLE")?,
            repository: required("GILD_REPOSITORY")?,
            tracked_branch: optional("GILD_TRACKED_BRANCH", "main".to_owned())?,
            concurrency,
            max_parallel: optional(
                "GILD_MAX_PARALLEL_BUILDS",
                gild_core::queue::DEFAULT_MAX_PARALLEL_BUILDS,
            )?,
            lease_secs: optional("GILD_LEASE_SECS", gild_core::ledger::DEFAULT_LEASE_SECS)?,
            host: match optional("GILD_REPOSITORY_HOST", "codecommit".to_owned())?.as_str() {
                "codecommit" => RepositoryHost::CodeCommit,
                "github" => RepositoryHost::GitHub {
                    repository: required("GILD_GITHUB_REPOSITORY")?,
                    token_secret: required("GILD_GITHUB_TOKEN_SECRET")?,
                    api_url: optional("GILD_GITHUB_API_URL", "https://api.github.com".to_owned())?,
                },
                other => {
                    return Err(ConfigError::Invalid {
                        name: "GILD_REPOSITORY_HOST",
                        value: other.to_owned(),
                        problem: "must be `codecommit` or `github`".into(),
                    })
                }
            },
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tracked_branch: self.tracked_branch.clone(),
            repository: Some(self.repository.clone()),
            projects: Projects {
                bake: self.bake_project.clone(),
                test: self.test_project.clone(),
            },
        }
    }
}
