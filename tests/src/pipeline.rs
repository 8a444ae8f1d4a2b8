//! The whole pipeline's offline surroundings in one value: moto with the
//! stack's resources, the CodeCommit stub over a real git repository, the
//! recording CodeBuild proxy, and the environment each function binary gets.

use std::path::PathBuf;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use crate::codebuild::{CodeBuildProxy, Limits};
use crate::codecommit::CodeCommitStub;
use crate::git::TestRepo;
use crate::moto::MotoServer;
use crate::runtime_api::LambdaProcess;
use crate::{aws, bin_path, HarnessError};

/// Resource names, as the SAM stack names them by default.
pub const REPOSITORY: &str = "platform-images";
pub const LEDGER_TABLE: &str = "gild-ledger";
pub const BAKE_PROJECT: &str = "gild-bake";
pub const TEST_PROJECT: &str = "gild-test";
pub const TOPIC: &str = "gild-announcements";
/// A subscriber of the announcement topic, as an operator's queue would be.
pub const SUBSCRIBER_QUEUE: &str = "gild-announcements-subscriber";

/// What `create_stack` made that callers need to find again.
#[derive(Debug, Clone)]
pub struct Stack {
    pub topic_arn: String,
    pub queue_url: String,
}

fn setup(context: &str, err: impl std::fmt::Display) -> HarnessError {
    HarnessError::InvalidInput {
        message: format!("creating {context} in the emulator: {err}"),
    }
}

/// Creates the stack's resources in the emulator.
pub async fn create_stack(config: &SdkConfig) -> Result<Stack, HarnessError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(if name == "requested_at" {
                ScalarAttributeType::N
            } else {
                ScalarAttributeType::S
            })
            .build()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    dynamodb
        .create_table()
        .table_name(LEDGER_TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("family").map_err(|e| setup("ledger", e))?)
        .attribute_definitions(attr("dedupe_key").map_err(|e| setup("ledger", e))?)
        .key_schema(key("family", KeyType::Hash).map_err(|e| setup("ledger", e))?)
        .key_schema(key("dedupe_key", KeyType::Range).map_err(|e| setup("ledger", e))?)
        // As infra/template.yaml declares it: the bake queue's index.
        .attribute_definitions(attr("active").map_err(|e| setup("ledger", e))?)
        .attribute_definitions(attr("requested_at").map_err(|e| setup("ledger", e))?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(gild_aws::dynamodb::ACTIVE_INDEX)
                .key_schema(key("active", KeyType::Hash).map_err(|e| setup("ledger", e))?)
                .key_schema(key("requested_at", KeyType::Range).map_err(|e| setup("ledger", e))?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| setup("ledger index", e))?,
        )
        .send()
        .await
        .map_err(|e| {
            setup(
                "ledger table",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;

    let codebuild = aws_sdk_codebuild::Client::new(config);
    for (project, buildspec) in [
        (BAKE_PROJECT, "buildspecs/bake.yml"),
        (TEST_PROJECT, "buildspecs/test.yml"),
    ] {
        use aws_sdk_codebuild::types::*;
        let source = ProjectSource::builder()
            .r#type(SourceType::Codecommit)
            .location(format!(
                "https://git-codecommit.{}.amazonaws.com/v1/repos/{REPOSITORY}",
                aws::REGION
            ))
            .buildspec(buildspec)
            .build()
            .map_err(|e| setup(project, e))?;
        let artifacts = ProjectArtifacts::builder()
            .r#type(ArtifactsType::NoArtifacts)
            .build()
            .map_err(|e| setup(project, e))?;
        let environment = ProjectEnvironment::builder()
            .r#type(EnvironmentType::LinuxContainer)
            .image("aws/codebuild/amazonlinux-x86_64-standard:5.0")
            .compute_type(ComputeType::BuildGeneral1Small)
            .build()
            .map_err(|e| setup(project, e))?;
        codebuild
            .create_project()
            .name(project)
            .source(source)
            .artifacts(artifacts)
            .environment(environment)
            .service_role(format!(
                "arn:aws:iam::{}:role/gild-codebuild",
                aws::ACCOUNT_ID
            ))
            .send()
            .await
            .map_err(|e| setup(project, aws_sdk_codebuild::error::DisplayErrorContext(e)))?;
    }

    let sns = aws_sdk_sns::Client::new(config);
    let topic_arn = sns
        .create_topic()
        .name(TOPIC)
        .send()
        .await
        .map_err(|e| setup("topic", aws_sdk_sns::error::DisplayErrorContext(e)))?
        .topic_arn
        .ok_or_else(|| setup("topic", "no ARN"))?;
    let sqs = aws_sdk_sqs::Client::new(config);
    let queue_url = sqs
        .create_queue()
        .queue_name(SUBSCRIBER_QUEUE)
        .send()
        .await
        .map_err(|e| setup("queue", aws_sdk_sqs::error::DisplayErrorContext(e)))?
        .queue_url
        .ok_or_else(|| setup("queue", "no URL"))?;
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{SUBSCRIBER_QUEUE}",
        aws::REGION,
        aws::ACCOUNT_ID
    );
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .map_err(|e| setup("subscription", aws_sdk_sns::error::DisplayErrorContext(e)))?;
    Ok(Stack {
        topic_arn,
        queue_url,
    })
}

pub struct Pipeline {
    pub stack: Stack,
    pub moto: MotoServer,
    pub codecommit: CodeCommitStub,
    pub codebuild: CodeBuildProxy,
    pub aws: SdkConfig,
    pub repo: TestRepo,
}

impl Pipeline {
    /// Starts everything around `repo` and creates the stack's resources.
    pub async fn start(repo: TestRepo) -> Result<Pipeline, HarnessError> {
        Pipeline::start_on(MotoServer::start().await?, repo).await
    }

    /// Like `start`, on a moto that is already running and holds nothing
    /// (new, or `reset` after an earlier pipeline), so a test that runs many
    /// pipelines one after another pays moto's start-up once.
    pub async fn start_on(moto: MotoServer, repo: TestRepo) -> Result<Pipeline, HarnessError> {
        Pipeline::start_limited(moto, repo, Limits::default()).await
    }

    /// Like `start_on`, with CodeBuild answering under `limits` (latency,
    /// throttling, a concurrent-build quota).
    pub async fn start_limited(
        moto: MotoServer,
        repo: TestRepo,
        limits: Limits,
    ) -> Result<Pipeline, HarnessError> {
        let aws = aws::sdk_config(&moto.endpoint());
        let stack = create_stack(&aws).await?;
        let codecommit = CodeCommitStub::start(PathBuf::from(repo.path()), REPOSITORY).await?;
        let codebuild = CodeBuildProxy::start_limited(&moto.endpoint(), limits).await?;
        Ok(Pipeline {
            stack,
            moto,
            codecommit,
            codebuild,
            aws,
            repo,
        })
    }

    /// What every function process gets: the emulator through the standard
    /// AWS endpoint settings, and the stack's names.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut env = aws::lambda_env(&self.moto.endpoint());
        for (name, value) in [
            ("AWS_ENDPOINT_URL_CODECOMMIT", self.codecommit.endpoint()),
            ("AWS_ENDPOINT_URL_CODEBUILD", self.codebuild.endpoint()),
            ("GILD_REPOSITORY", REPOSITORY.to_owned()),
            ("GILD_LEDGER_TABLE", LEDGER_TABLE.to_owned()),
            ("GILD_BAKE_PROJECT", BAKE_PROJECT.to_owned()),
            ("GILD_TEST_PROJECT", TEST_PROJECT.to_owned()),
            ("GILD_TRACKED_BRANCH", "main".to_owned()),
            ("GILD_TOPIC_ARN", self.stack.topic_arn.clone()),
        ] {
            env.push((name.to_owned(), value));
        }
        env
    }

    /// Runs a function binary of the workspace through the Runtime API.
    pub async fn spawn(&self, function: &str) -> Result<LambdaProcess, HarnessError> {
        LambdaProcess::spawn(
            &bin_path(function)?,
            &format!("gild-{function}"),
            &self.function_env(),
        )
        .await
    }

    /// Build ids moto holds for a project: what really started.
    pub async fn builds(&self, project: &str) -> Result<Vec<String>, HarnessError> {
        let client = aws_sdk_codebuild::Client::new(&self.aws);
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let out = client
                .list_builds_for_project()
                .project_name(project)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    setup(
                        "build list",
                        aws_sdk_codebuild::error::DisplayErrorContext(e),
                    )
                })?;
            ids.extend(out.ids().iter().cloned());
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(ids);
            }
        }
    }
}
