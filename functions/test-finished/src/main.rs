//! test-finished: a test build completed. Passed: promote the AMI (the
//! family's SSM parameter) and announce it. Failed, stopped or timed out:
//! remove the untested image, announce the failure. The work is
//! `gild_flow::Completions`, shared with bake-finished and the reconciler;
//! this file wires it once per cold start.

use gild_flow::config::CompletionConfig;
use gild_flow::{Accept, Completions};
use gild_github::GitHubReviews;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = gild_aws::prologue(|| CompletionConfig::from_env(Accept::Test)).await?;
    let reviews = gild_aws::host_reviews(
        &aws,
        config.host.reviewer_role(),
        config.host.github(),
        GitHubReviews::new,
    )
    .await?;
    let ports = gild_aws::completion_ports(
        &aws,
        &config.ledger_table,
        &config.topic_arn,
        &config.artifact_bucket,
        &config.settings.projects,
        reviews,
    );
    let completions = Completions::new(ports, config.settings);
    let completions = &completions;
    // Boxed: the handler's future is deep enough to overflow rustc's layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        Box::pin(completions.handle(event.payload, gild_lambda::now()))
    })
    .await
}
