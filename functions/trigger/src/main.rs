use aws_sdk_codebuild::Client as CodeBuild;
use aws_sdk_codecommit::Client as CodeCommit;
use aws_sdk_dynamodb::Client as DynamoDb;
use gild_aws::{
    codebuild::CodeBuildBuilds, codecommit::CodeCommitRepository, dynamodb::DynamoLedger,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use trigger::{Config, Handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    gild_lambda::init_tracing();
    let config = Config::from_env()?;
    let aws = gild_aws::load_sdk_config().await;
    let handler = Handler::new(
        config.settings(),
        CodeCommitRepository::new(CodeCommit::new(&aws), &config.repository),
        DynamoLedger::new(DynamoDb::new(&aws), &config.ledger_table),
        CodeBuildBuilds::new(CodeBuild::new(&aws), &config.bake_project),
        config.concurrency,
        config.lease_secs,
    );
    let handler = &handler;
    // Boxed: the handler's future is deep enough to overflow rustc's layout depth.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        Box::pin(handler.handle(event.payload, gild_lambda::now()))
    }))
    .await
}
