use std::time::Duration;

use gild_lambda::{optional, required, ConfigError};
use gild_slack::RepositoryLink;

use crate::Settings;

/// Read once at cold start; a missing or bad variable stops the function at
/// init with its name, before any announcement is taken.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GILD_SLACK_WEBHOOK_SECRET`: the Secrets Manager secret holding the
    /// incoming-webhook URL (the URL itself, or `{"webhook_url": "…"}`).
    pub webhook_secret: String,
    /// Where commit links point: `GILD_REPOSITORY_HOST` (`codecommit`, the
    /// default, or `github`) with `GILD_REPOSITORY` (the CodeCommit
    /// repository) or `GILD_GITHUB_REPOSITORY` (`owner/name`).
    pub repository: RepositoryLink,
    /// `GILD_SLACK_ALLOW_INSECURE_LOOPBACK=1`, for tests only: accept an
    /// `http://` webhook URL on a loopback address (a local stand-in for
    /// Slack). Never set it in a deployed stack; any other URL must be https.
    pub allow_insecure_loopback: bool,
    /// `GILD_SLACK_TIMEOUT_SECS` (default 10): one POST's time limit, cut
    /// further to what is left of the invocation.
    pub request_timeout: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let host = optional("GILD_REPOSITORY_HOST", "codecommit".to_owned())?;
        let repository = match host.as_str() {
            "codecommit" => {
                let name = required("GILD_REPOSITORY")?;
                codecommit(&name)?
            }
            "github" => {
                let full_name = required("GILD_GITHUB_REPOSITORY")?;
                github(&full_name)?
            }
            _ => {
                return Err(ConfigError::Invalid {
                    name: "GILD_REPOSITORY_HOST",
                    value: host,
                    problem: "expected `codecommit` or `github`".into(),
                })
            }
        };
        let timeout_secs = optional("GILD_SLACK_TIMEOUT_SECS", 10u64)?;
        if timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "GILD_SLACK_TIMEOUT_SECS",
                value: "0".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(Config {
            webhook_secret: required("GILD_SLACK_WEBHOOK_SECRET")?,
            repository,
            allow_insecure_loopback: flag(
                "GILD_SLACK_ALLOW_INSECURE_LOOPBACK",
                std::env::var("GILD_SLACK_ALLOW_INSECURE_LOOPBACK").ok(),
            )?,
            request_timeout: Duration::from_secs(timeout_secs),
        })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            webhook_secret: self.webhook_secret.clone(),
            repository: self.repository.clone(),
            allow_insecure_loopback: self.allow_insecure_loopback,
            request_timeout: self.request_timeout,
        }
    }
}

fn codecommit(name: &str) -> Result<RepositoryLink, ConfigError> {
    RepositoryLink::codecommit(name.trim()).map_err(|problem| ConfigError::Invalid {
        name: "GILD_REPOSITORY",
        value: name.to_owned(),
        problem,
    })
}

fn github(full_name: &str) -> Result<RepositoryLink, ConfigError> {
    RepositoryLink::github(full_name.trim()).map_err(|problem| ConfigError::Invalid {
        name: "GILD_GITHUB_REPOSITORY",
        value: full_name.to_owned(),
        problem,
    })
}

/// `1`/`true` or `0`/`false`/unset; anything else is a typo worth stopping for.
fn flag(name: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::trim) {
        None | Some("" | "0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            name,
            value: value.unwrap_or_default(),
            problem: "expected `1` or `0`".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_links_are_validated_naming_the_variable() {
        assert_eq!(
            codecommit("gild-images"),
            Ok(RepositoryLink::CodeCommit {
                repository: "gild-images".into()
            })
        );
        assert_eq!(
            github("example-org/gild-images"),
            Ok(RepositoryLink::GitHub {
                owner: "example-org".into(),
                name: "gild-images".into()
            })
        );
        let err = github("gild-images").expect_err("no owner");
        assert!(
            err.to_string()
                .starts_with("environment variable GILD_GITHUB_REPOSITORY="),
            "{err}"
        );
        let err = codecommit("a/b").expect_err("slash");
        assert!(err.to_string().contains("GILD_REPOSITORY="), "{err}");
    }

    #[test]
    fn flags_accept_only_clear_values() {
        assert_eq!(flag("F", None), Ok(false));
        assert_eq!(flag("F", Some("0".into())), Ok(false));
        assert_eq!(flag("F", Some("1".into())), Ok(true));
        assert_eq!(flag("F", Some("true".into())), Ok(true));
        assert!(flag("F", Some("yes please".into())).is_err());
    }
}
