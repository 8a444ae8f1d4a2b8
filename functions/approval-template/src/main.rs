//! approval-template: the stack's `Custom::ApprovalRuleTemplate`. This file
//! reads the config and builds the clients once per cold start.

use approval_template::response::HttpRespond;
use approval_template::{Config, Handler};
use aws_sdk_codecommit::Client as CodeCommitClient;
use gild_aws::codecommit_templates::CodeCommitTemplates;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, aws) = gild_aws::prologue(Config::from_env).await?;
    if config.allow_insecure_loopback {
        tracing::warn!("GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK is set: http response URLs on loopback are accepted (tests only)");
    }
    let handler = Handler::new(
        CodeCommitTemplates::new(CodeCommitClient::new(&aws)),
        HttpRespond::new()?,
        config.allow_insecure_loopback,
    );
    let handler = &handler;
    // Boxed: the handler's future is deep enough to overflow rustc's
    // layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        Box::pin(async move {
            let deadline = gild_lambda::deadline_instant(event.context.deadline());
            let log_stream = &event.context.env_config.log_stream;
            handler.handle(event.payload, deadline, log_stream).await
        })
    })
    .await
}
