//! What every gild Lambda binary does the same way: JSON logs, config from
//! the environment read once at cold start, stable error names for Lambda.

use std::fmt::Display;
use std::str::FromStr;

pub use lambda_runtime::Diagnostic;

/// A configuration problem, naming the variable so a bad deploy is obvious
/// from the first log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name}=`{value}` is invalid: {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: String,
    },
}

/// A variable that must be set and non-empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing { name }),
    }
}

/// A variable with a default, parsed.
pub fn optional<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    value,
                    problem: e.to_string(),
                })
        }
        _ => Ok(default),
    }
}

/// JSON logs, one object per line, as CloudWatch Logs Insights reads them.
/// `RUST_LOG` overrides the default `info` level.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_ansi(false)
        .init();
}

/// Lambda's error report with a stable `errorType` rather than a Rust type path.
pub fn diagnostic(error_type: &str, error: &impl Display) -> Diagnostic {
    Diagnostic {
        error_type: format!("gild.{error_type}"),
        error_message: error.to_string(),
    }
}

/// Lambda's longest time limit; a deadline further out is not believed.
pub const MAX_INVOCATION: std::time::Duration = std::time::Duration::from_secs(900);

/// The Lambda context's deadline (wall clock) as an `Instant`.
pub fn deadline_instant(deadline: std::time::SystemTime) -> std::time::Instant {
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        .min(MAX_INVOCATION);
    std::time::Instant::now() + left
}

pub mod retry;
mod runtime;

pub use runtime::{run, JsonGuard, NOT_JSON_ERROR};

/// A token unique to this invocation (process, time, sequence): the owner
/// of the ledger claims and locks it takes.
pub fn invocation_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Seconds since the epoch; the ledger's clock.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_and_optional_name_the_variable() {
        let err = required("GILD_TEST_SURELY_UNSET").expect_err("unset");
        assert_eq!(
            err.to_string(),
            "environment variable GILD_TEST_SURELY_UNSET is not set"
        );
        assert_eq!(optional("GILD_TEST_SURELY_UNSET", 7usize), Ok(7));
    }

    #[test]
    fn deadlines_come_from_the_wall_clock() {
        use std::time::{Duration, Instant, SystemTime};
        let in_ten = deadline_instant(SystemTime::now() + Duration::from_secs(10));
        let left = in_ten.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
        let past = deadline_instant(SystemTime::UNIX_EPOCH);
        assert!(past <= Instant::now());
        let far = deadline_instant(SystemTime::now() + Duration::from_secs(u32::MAX.into()));
        assert!(far <= Instant::now() + MAX_INVOCATION);
    }
}
