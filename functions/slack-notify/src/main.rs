use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsManagerClient;
use gild_aws::secretsmanager::SecretsManager;
use gild_lambda::deadline_instant;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use slack_notify::webhook::HttpTransport;
use slack_notify::{Config, Handler};

/// How long a warm function reuses the webhook URL before reading the
/// secret again (a rotation shows within this).
const SECRET_TTL: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), Error> {
    gild_lambda::init_tracing();
    let config = Config::from_env()?;
    if config.allow_insecure_loopback {
        tracing::warn!("GILD_SLACK_ALLOW_INSECURE_LOOPBACK is set: http webhooks on loopback are accepted (tests only)");
    }
    let aws = gild_aws::load_sdk_config().await;
    let handler = Handler::new(
        config.settings(),
        SecretsManager::new(SecretsManagerClient::new(&aws), SECRET_TTL),
        HttpTransport::new()?,
    );
    let handler = &handler;
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        let deadline = deadline_instant(event.context.deadline());
        Box::pin(handler.handle(event.payload, deadline))
    })
    .await
}
