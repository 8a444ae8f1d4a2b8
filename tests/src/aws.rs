//! AWS SDK settings that point at the local emulators.

use aws_config::{BehaviorVersion, Region, SdkConfig};
// aws-config does not re-export these; every generated SDK crate does, and
// this one is already a dependency (saves pinning aws-credential-types).
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT_ID: &str = "123456789012";
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

/// An `SdkConfig` whose clients talk to `endpoint` with static test
/// credentials, never to real AWS and never reading `~/.aws`.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "gild-tests",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// Environment for a function process so that its *unmodified* production
/// configuration code (`aws_config::load_defaults`) reaches the emulator
/// through the standard AWS settings. Service-specific overrides such as
/// `AWS_ENDPOINT_URL_CODEBUILD` can be appended by the caller.
pub fn lambda_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        // Without this a missing credential would make the SDK probe IMDS
        // and stall for seconds instead of failing.
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
