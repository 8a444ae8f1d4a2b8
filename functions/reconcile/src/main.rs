//! reconcile: every few minutes (a schedule rule), finish the bakes whose
//! events were lost for good and start queued bakes into free slots. The
//! work is `gild_flow::reconcile`; this file reads the config and wires the
//! clients, once per cold start.

mod config;

use std::sync::Arc;

use gild_aws::codebuild::{CodeBuildBuilds, TestBuilds};
use gild_aws::dynamodb::DynamoLedger;
use gild_aws::ec2::Ec2Images;
use gild_aws::sns::SnsNotifier;
use gild_aws::ssm::SsmParameters;
use gild_flow::reconcile::Reconciler;
use gild_flow::trigger::Launcher;
use gild_flow::{Completions, Ports};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// StartBuild calls in flight at once when the queue is drained.
const START_CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() -> Result<(), Error> {
    gild_lambda::init_tracing();
    let config = config::Config::from_env()?;
    let aws = gild_aws::load_sdk_config().await;
    let codebuild = aws_sdk_codebuild::Client::new(&aws);
    let ledger = Arc::new(DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &config.ledger_table,
    ));
    let projects = &config.flow.projects;
    let completions = Completions::new(
        Ports {
            ledger: Arc::clone(&ledger),
            images: Ec2Images::new(aws_sdk_ec2::Client::new(&aws)),
            build_info: CodeBuildBuilds::new(codebuild.clone(), &projects.bake),
            tests: TestBuilds::new(codebuild.clone(), &projects.test),
            parameters: SsmParameters::new(aws_sdk_ssm::Client::new(&aws)),
            notifier: SnsNotifier::new(aws_sdk_sns::Client::new(&aws), &config.topic_arn),
        },
        config.flow.clone(),
    );
    let launcher = Launcher::new(
        ledger,
        CodeBuildBuilds::new(codebuild, &projects.bake),
        START_CONCURRENCY,
        config.flow.lease_secs,
    )
    .with_max_parallel(config.max_parallel);
    let reconciler = Reconciler::new(completions, launcher, config.deadlines, &config.region);
    let reconciler = &reconciler;
    // Boxed: the run's future is deep enough to overflow rustc's layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        tracing::info!(detail_type = %event.payload["detail-type"], "reconcile run");
        Box::pin(reconciler.run(gild_lambda::now()))
    })
    .await
}
