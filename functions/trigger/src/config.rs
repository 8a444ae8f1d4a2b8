use gild_core::completion::Projects;
use gild_core::plan::Settings;
use gild_core::vocabulary::defaults;
pub use gild_flow::config::RepositoryHost;
use gild_flow::trigger::{ReviewConfig, StartConfig};
use gild_lambda::{optional, ConfigError};

/// Read once at cold start; a missing variable stops the function at init
/// with its name, before any event is taken.
#[derive(Debug, Clone)]
pub struct Config {
    /// Ledger, bake project and fan-out, as github-webhook reads them.
    pub start: StartConfig,
    /// Pull requests: the test project, the parameters, forks and drafts.
    pub review: ReviewConfig,
    pub tracked_branch: String,
    /// Where the images repository lives.
    pub host: RepositoryHost,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Config {
            start: StartConfig::from_env()?,
            review: ReviewConfig::from_env()?,
            tracked_branch: optional("GILD_TRACKED_BRANCH", defaults::TRACKED_BRANCH.to_owned())?,
            host: RepositoryHost::from_env()?,
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            tracked_branch: self.tracked_branch.clone(),
            // Pushes are matched against this name. A GitHub-hosted stack has
            // no push rule, but a CodeCommit push that reached it anyway must
            // not rebuild: `owner/name` is never a CodeCommit repository's
            // name (no `/` allowed there), so every such push is ignored.
            repository: Some(self.host.repository().to_owned()),
            projects: Projects {
                bake: self.start.bake_project.clone(),
                test: self.review.test_project.clone(),
            },
            review: self.review.policy.clone(),
        }
    }
}
