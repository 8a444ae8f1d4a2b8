use std::time::Duration;

use gild_aws::secretsmanager::SecretsManager;
use gild_github::{GitHubRepository, GitHubReviews};
use github_webhook::{Config, Webhook};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = gild_aws::prologue(Config::from_env).await?;
    let secrets = || {
        SecretsManager::new(
            aws_sdk_secretsmanager::Client::new(&aws),
            Duration::from_secs(300),
        )
    };
    let repo = GitHubRepository::new(
        &config.api_url,
        &config.repository,
        secrets(),
        &config.token_secret,
    )?;
    let start = &config.start;
    let (ledger, builds) = gild_aws::start_ports(&aws, &start.ledger_table, &start.bake_project);
    let reviews = GitHubReviews::new(&config.api_url, secrets(), &config.token_secret)?;
    let adapters =
        gild_aws::review_adapters(&aws, &start.bake_project, &config.review.test_project);
    let starter = start
        .handler(config.settings(), repo, ledger, builds)
        .with_pull_requests(config.review.ports(reviews, adapters));
    let webhook = Webhook::new(config, secrets(), starter);
    let webhook = &webhook;
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        Box::pin(webhook.handle(event.payload, gild_lambda::now()))
    })
    .await
}
