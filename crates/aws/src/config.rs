//! The shared SDK configuration every binary loads once at start.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

/// Loads region, credentials and endpoints from the environment, with
/// timeouts: a hung call must fail inside the Lambda's time limit so the
/// handler can report it (and release its claims) rather than be killed.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await
}
