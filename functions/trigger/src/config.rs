use gild_core::completion::Projects;
use gild_core::plan::Settings;
use gild_core::vocabulary::defaults;
use gild_flow::trigger::StartConfig;
use gild_lambda::{optional, required, ConfigError};

/// Read once at cold start; a missing variable stops the function at init
/// with its name, before any event is taken.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ledger, bake project and fan-out, as github-webhook reads them.
    pub start: StartConfig,
    pub tracked_branch: String,
    /// Where the images repository lives.
    pub host: RepositoryHost,
}

/// CodeCommit (default) or GitHub, where schedule and manual bakes read
/// the catalog at the tracked branch's tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryHost {
    /// The CodeCommit repository's name (`GILD_REPOSITORY`, only read here:
    /// the stack gives a GitHub-hosted trigger none).
    CodeCommit { repository: String },
    GitHub {
        /// `owner/name`.
        repository: String,
        token_secret: String,
        api_url: String,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            start: StartConfig::from_env()?,
            tracked_branch: optional("GILD_TRACKED_BRANCH", defaults::TRACKED_BRANCH.to_owned())?,
            host: match optional("GILD_REPOSITORY_HOST", "codecommit".to_owned())?.as_str() {
                "codecommit" => RepositoryHost::CodeCommit {
                    repository: required("GILD_REPOSITORY")?,
                },
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
            // Pushes are matched against this name. A GitHub-hosted stack has
            // no push rule, but a CodeCommit push that reached it anyway must
            // not rebuild: `owner/name` is never a CodeCommit repository's
            // name (no `/` allowed there), so every such push is ignored.
            repository: Some(match &self.host {
                RepositoryHost::CodeCommit { repository } => repository.clone(),
                RepositoryHost::GitHub { repository, .. } => repository.clone(),
            }),
            projects: Projects {
                bake: self.start.bake_project.clone(),
                ..Projects::default()
            },
        }
    }
}
