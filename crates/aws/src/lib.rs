//! AWS adapters: gild-core's ports implemented over the AWS SDK.
//!
//! Endpoints come from the standard AWS settings (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`), so the same code talks to AWS or to the
//! local emulator without a branch.

mod error;

pub mod codebuild;
pub mod codecommit;
pub mod codecommit_reviews;
pub mod codecommit_templates;
pub mod config;
pub mod dynamodb;
pub mod ec2;
pub mod eventbridge;
pub mod reviews;
pub mod s3;
pub mod secretsmanager;
pub mod sns;
pub mod ssm;
mod wiring;

pub use config::{load_cli_sdk_config, load_sdk_config, prologue};
pub use error::classify;
pub use wiring::{
    bake_builds, completion_ports, host_reviews, review_adapters, secrets, start_ports,
    AwsCompletionPorts,
};
