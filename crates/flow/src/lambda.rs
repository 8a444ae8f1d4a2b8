//! Wiring for the two completion functions: config read once at cold start,
//! AWS clients built once and borrowed by every invocation.

use gild_aws::codebuild::{CodeBuildBuilds, TestBuilds};
use gild_aws::dynamodb::DynamoLedger;
use gild_aws::ec2::Ec2Images;
use gild_aws::sns::SnsNotifier;
use gild_aws::ssm::SsmParameters;
use gild_core::completion::Projects;
use gild_core::ledger::DEFAULT_LEASE_SECS;
use gild_lambda::{optional, required, ConfigError};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use crate::{Accept, Completions, FlowSettings, Ports};

#[derive(Debug, Clone)]
pub struct Config {
    pub ledger_table: String,
    pub topic_arn: String,
    pub settings: FlowSettings,
}

impl Config {
    pub fn from_env(accept: Accept) -> Result<Self, ConfigError> {
        Ok(Config {
            ledger_table: required("GILD_LEDGER_TABLE")?,
            topic_arn: required("GILD_TOPIC_ARN")?,
            settings: FlowSettings {
                accept,
                projects: Projects {
                    bake: required("GILD_BAKE_PROJECT")?,
                    test: required("GILD_TEST_PROJECT")?,
                },
                parameter_prefix: optional("GILD_PARAMETER_PREFIX", "/gild".to_owned())?,
                lease_secs: optional("GILD_LEASE_SECS", DEFAULT_LEASE_SECS)?,
            },
        })
    }
}

/// Runs a completion function until the Lambda runtime stops it.
pub async fn run(accept: Accept) -> Result<(), Error> {
    gild_lambda::init_tracing();
    let config = Config::from_env(accept)?;
    let aws = gild_aws::load_sdk_config().await;
    let codebuild = aws_sdk_codebuild::Client::new(&aws);
    let completions = Completions::new(
        Ports {
            ledger: DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), &config.ledger_table),
            images: Ec2Images::new(aws_sdk_ec2::Client::new(&aws)),
            build_info: CodeBuildBuilds::new(codebuild.clone(), &config.settings.projects.bake),
            tests: TestBuilds::new(codebuild, &config.settings.projects.test),
            parameters: SsmParameters::new(aws_sdk_ssm::Client::new(&aws)),
            notifier: SnsNotifier::new(aws_sdk_sns::Client::new(&aws), &config.topic_arn),
        },
        config.settings,
    );
    let completions = &completions;
    // Boxed: the handler's future is deep enough to overflow rustc's layout depth.
    gild_lambda::run(move |event: LambdaEvent<Value>| {
        Box::pin(completions.handle(event.payload, gild_lambda::now()))
    })
    .await
}
