//! The shared SDK configuration every binary loads once at start, and the
//! functions' shared prologue.
//!
//! **One retry policy per call path.** In the Lambda functions every port
//! call is wrapped in gild's own backoff (`gild_lambda::retry`, which knows
//! which `PortError`s are worth retrying and keeps a time budget), so the
//! SDK makes one attempt per call ([`RetryConfig::disabled`]): left at its
//! default (standard mode, 3 attempts) under gild's 6, one throttled call
//! could become 18 requests. The CLI has no backoff of its own and keeps the
//! SDK's standard retries ([`load_cli_sdk_config`]).
//! `tests/tests/adapters.rs` counts the requests one throttled call makes.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Timeouts: a hung call must fail inside the Lambda's time limit so the
/// handler can report it (and release its claims) rather than be killed.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// The functions' SDK settings before anything is read from the
/// environment: one attempt per call (gild's backoff retries), with
/// [`timeouts`]. Tests add an endpoint and keys to it.
pub fn function_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::disabled())
}

/// Region, credentials and endpoints from the environment, with the
/// functions' settings ([`function_loader`]).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    function_loader().load().await
}

/// As [`load_sdk_config`], with the SDK's standard retries: for `gild`,
/// whose calls have no backoff of their own.
pub async fn load_cli_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(RetryConfig::standard())
        .load()
        .await
}

/// What every function does first, the same way: JSON logs, its config read
/// from the environment (failing at init, naming the variable), the SDK
/// configuration.
pub async fn prologue<C, E>(
    read_config: impl FnOnce() -> Result<C, E>,
) -> Result<(C, aws_config::SdkConfig), E> {
    gild_lambda::init_tracing();
    let config = read_config()?;
    Ok((config, load_sdk_config().await))
}
