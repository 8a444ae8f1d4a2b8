//! The trigger Lambda: turns a schedule, a push or a manual request into one
//! bake build per affected family, exactly once, and starts queued bakes
//! when a build-ended event frees a CodeBuild slot. The work is in
//! `gild_flow::trigger`; this crate reads the config and wires the clients.

mod config;

use gild_core::ports::Repository;
use gild_github::GitHubReviews;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub use config::{Config, RepositoryHost};
pub use gild_flow::trigger::{Handler, Outcome, TriggerError};

/// Runs the trigger with `repo` until the Lambda runtime stops it.
pub async fn serve<R: Repository>(
    config: &Config,
    aws: &aws_config::SdkConfig,
    repo: R,
) -> Result<(), Error> {
    let start = &config.start;
    let (ledger, builds) = gild_aws::start_ports(aws, &start.ledger_table, &start.bake_project);
    let reviews = gild_aws::host_reviews(
        aws,
        config.host.reviewer_role(),
        config.host.github(),
        GitHubReviews::new,
    )
    .await?;
    let adapters = gild_aws::review_adapters(aws, &start.bake_project, &config.review.test_project);
    let handler = start
        .handler(config.settings(), repo, ledger, builds)
        .with_pull_requests(config.review.ports(reviews, adapters));
    let handler = &handler;
    // Boxed: the handler's future is deep enough to overflow rustc's layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        Box::pin(handler.handle(event.payload, gild_lambda::now()))
    })
    .await
}
