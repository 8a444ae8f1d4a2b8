//! The adapters the functions' `main.rs` hand to `gild-flow`, built from one
//! SDK configuration at cold start.

use std::time::Duration;

use gild_core::completion::Projects;
use gild_core::ports::{CompletionPorts, PortResult};

use crate::codebuild::{CodeBuildBuilds, TestBuilds};
use crate::codecommit_reviews::CodeCommitReviews;
use crate::dynamodb::DynamoLedger;
use crate::ec2::Ec2Images;
use crate::reviews::HostReviews;
use crate::s3::S3Artifacts;
use crate::secretsmanager::SecretsManager;
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
    S3Artifacts,
>;

pub fn completion_ports<V>(
    aws: &aws_config::SdkConfig,
    ledger_table: &str,
    topic_arn: &str,
    artifact_bucket: &str,
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
        artifacts: S3Artifacts::new(aws_sdk_s3::Client::new(aws), artifact_bucket),
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

/// How long a secret read from Secrets Manager is reused: rotation takes
/// effect within this, and a busy function reads each secret once per period.
pub const SECRET_CACHE: Duration = Duration::from_secs(300);

/// A Secrets Manager reader with gild's cache.
pub fn secrets(aws: &aws_config::SdkConfig) -> SecretsManager {
    SecretsManager::new(aws_sdk_secretsmanager::Client::new(aws), SECRET_CACHE)
}

/// Where candidates report: CodeCommit's pull requests, as `reviewer`
/// (the stack's ReviewerRole, assumed for these calls only) when given,
/// or GitHub's when `github` names the API root and the token's secret;
/// `make_github` builds that adapter (it lives in `gild-github`).
pub async fn host_reviews<G>(
    aws: &aws_config::SdkConfig,
    reviewer: Option<&str>,
    github: Option<(&str, &str)>,
    make_github: impl FnOnce(String, SecretsManager, String) -> PortResult<G>,
) -> PortResult<HostReviews<G>> {
    Ok(match github {
        None => {
            let mut conf = aws_sdk_codecommit::config::Builder::from(aws);
            if let Some(role) = reviewer {
                // CodeCommit lets only a comment's author edit it and only
                // an approver revoke its approval: every function reports
                // as the one role, under one session name.
                let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name("gild")
                    .configure(aws)
                    .build()
                    .await;
                conf = conf.credentials_provider(provider);
            }
            HostReviews::CodeCommit(CodeCommitReviews::new(
                aws_sdk_codecommit::Client::from_conf(conf.build()),
            ))
        }
        Some((api, token_secret)) => HostReviews::GitHub(make_github(
            api.to_owned(),
            secrets(aws),
            token_secret.to_owned(),
        )?),
    })
}

/// What validating pull requests acts through besides the host: the test
/// project (test-only runs), the family parameters, the images and the
/// builds an older head leaves (stopped through the bake project's client).
pub fn review_adapters(
    aws: &aws_config::SdkConfig,
    bake_project: &str,
    test_project: &str,
) -> (TestBuilds, SsmParameters, Ec2Images, CodeBuildBuilds) {
    let codebuild = aws_sdk_codebuild::Client::new(aws);
    (
        TestBuilds::new(codebuild.clone(), test_project),
        SsmParameters::new(aws_sdk_ssm::Client::new(aws)),
        Ec2Images::new(aws_sdk_ec2::Client::new(aws)),
        CodeBuildBuilds::new(codebuild, bake_project),
    )
}
