//! The adapters the functions' `main.rs` hand to `gild-flow`, built from one
//! SDK configuration at cold start.

use gild_core::completion::Projects;
use gild_core::ports::CompletionPorts;

use crate::codebuild::{CodeBuildBuilds, TestBuilds};
use crate::dynamodb::DynamoLedger;
use crate::ec2::Ec2Images;
use crate::sns::SnsNotifier;
use crate::ssm::SsmParameters;

/// The ports the completion steps act through, over AWS, with `V` where
/// candidates report (the pull requests' host).
pub type AwsCompletionPorts<V> = CompletionPorts<
    DynamoLedger,
    Ec2Images,
    CodeBuildBuilds,
    TestBuilds,
    SsmParameters,
    SnsNotifier,
    V,
>;

pub fn completion_ports<V>(
    aws: &aws_config::SdkConfig,
    ledger_table: &str,
    topic_arn: &str,
    projects: &Projects,
    reviews: V,
) -> AwsCompletionPorts<V> {
    let codebuild = aws_sdk_codebuild::Client::new(aws);
    CompletionPorts {
        ledger: DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), ledger_table),
        images: Ec2Images::new(aws_sdk_ec2::Client::new(aws)),
        build_info: CodeBuildBuilds::new(codebuild.clone(), &projects.bake),
        tests: TestBuilds::new(codebuild, &projects.test),
        parameters: SsmParameters::new(aws_sdk_ssm::Client::new(aws)),
        notifier: SnsNotifier::new(aws_sdk_sns::Client::new(aws), topic_arn),
        reviews,
    }
}

/// The ledger and the bake project, for starting bakes.
pub fn start_ports(
    aws: &aws_config::SdkConfig,
    ledger_table: &str,
    bake_project: &str,
) -> (DynamoLedger, CodeBuildBuilds) {
    (
        DynamoLedger::new(aws_sdk_dynamodb::Client::new(aws), ledger_table),
        bake_builds(aws, bake_project),
    )
}

/// The bake project alone, for a caller that already has its ledger.
pub fn bake_builds(aws: &aws_config::SdkConfig, bake_project: &str) -> CodeBuildBuilds {
    CodeBuildBuilds::new(aws_sdk_codebuild::Client::new(aws), bake_project)
}
