//! The whole pipeline's offline surroundings in one value: moto holding
//! `infra/template.yaml` as deployed (`stack`), the IAM gate judging every
//! call a function makes against its own role (`gate`), EventBridge's
//! routing by the stack's rules (`routing`), the CodeCommit stub over a real
//! git repository, the recording CodeBuild proxy, and the environment each
//! function binary gets: the stack's own, as Lambda holds it.
//!
//! `create_stack` and the names above it are the look-alike resources the
//! adapter tests use (they test the SDK adapters, not the stack); the
//! pipeline never uses them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};

use crate::codebuild::{CodeBuildProxy, Limits};
use crate::codecommit::CodeCommitStub;
use crate::gate::IamGate;
use crate::git::TestRepo;
use crate::moto::MotoServer;
use crate::routing::Router;
use crate::runner::SsmProxy;
use crate::runtime_api::LambdaProcess;
use crate::stack::{self, Deployment};
use crate::{aws, bin_path, events, HarnessError};

/// Look-alike resource names, for the adapter tests only (`create_stack`).
/// A DynamoDB item (or key) as the SDK gives it.
type Item = HashMap<String, AttributeValue>;

pub const REPOSITORY: &str = "platform-images";
pub const LEDGER_TABLE: &str = "gild-ledger";
pub const BAKE_PROJECT: &str = "gild-bake";
pub const TEST_PROJECT: &str = "gild-test";
pub const TOPIC: &str = "gild-announcements";
/// A subscriber of the announcement topic, as an operator's queue would be.
pub const SUBSCRIBER_QUEUE: &str = "gild-announcements-subscriber";

/// The topic announcements go to, and the harness's own subscriber queue
/// (an operator's subscription, not part of the stack).
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

/// Creates look-alikes of the stack's resources in the emulator, for the
/// adapter tests: no roles, no rules, names made up here.
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
    let queue_url = subscribe(config, &topic_arn).await?;
    Ok(Stack {
        topic_arn,
        queue_url,
    })
}

/// The harness's subscriber of the announcement topic: an SQS queue, as an
/// operator's would be. Returns its URL.
async fn subscribe(config: &SdkConfig, topic_arn: &str) -> Result<String, HarnessError> {
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
    aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .map_err(|e| setup("subscription", aws_sdk_sns::error::DisplayErrorContext(e)))?;
    Ok(queue_url)
}

/// How a pipeline is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// CodeBuild's latency, throttling and quota (none by default).
    pub limits: Limits,
    /// Every function call through the IAM gate, under the function's own
    /// role (on by default; `make bench` measures without it).
    pub gate: bool,
    /// Stack parameters besides the network (e.g. a GitHub-hosted repository).
    pub parameters: Vec<(String, String)>,
    /// The template deployed and judged by; `infra/template.yaml` unless a
    /// test deploys an altered copy.
    pub template: PathBuf,
    /// Run the real buildspecs (`runner::BuildRunner`): SSM's far end is
    /// started in front of moto, with these (family, check) pairs failing.
    pub buildspecs: Option<Vec<(String, String)>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            gate: true,
            parameters: Vec::new(),
            template: stack::default_template(),
            buildspecs: None,
        }
    }
}

pub struct Pipeline {
    pub stack: Stack,
    pub deployment: Deployment,
    pub moto: MotoServer,
    pub codecommit: CodeCommitStub,
    pub codebuild: CodeBuildProxy,
    pub gate: Option<IamGate>,
    /// SSM Run Command's far end, when the real buildspecs run.
    pub ssm: Option<SsmProxy>,
    pub router: Arc<Router>,
    /// The harness's own clients' settings: moto directly, as an operator.
    pub aws: SdkConfig,
    pub repo: TestRepo,
    /// stack.json and the gate's files.
    _files: tempfile::TempDir,
}

impl Pipeline {
    /// Starts everything around `repo` and deploys the stack.
    pub async fn start(repo: TestRepo) -> Result<Pipeline, HarnessError> {
        Pipeline::start_on(MotoServer::start().await?, repo).await
    }

    /// Like `start`, on a moto that is already running and holds nothing
    /// (new, or `reset` after an earlier pipeline), so a test that runs many
    /// pipelines one after another pays moto's start-up once.
    pub async fn start_on(moto: MotoServer, repo: TestRepo) -> Result<Pipeline, HarnessError> {
        Pipeline::start_with(moto, repo, Options::default()).await
    }

    /// Like `start_on`, with CodeBuild answering under `limits` (latency,
    /// throttling, a concurrent-build quota).
    pub async fn start_limited(
        moto: MotoServer,
        repo: TestRepo,
        limits: Limits,
    ) -> Result<Pipeline, HarnessError> {
        let options = Options {
            limits,
            ..Options::default()
        };
        Pipeline::start_with(moto, repo, options).await
    }

    pub async fn start_with(
        moto: MotoServer,
        repo: TestRepo,
        options: Options,
    ) -> Result<Pipeline, HarnessError> {
        let aws = aws::sdk_config(&moto.endpoint());
        let files = tempfile::Builder::new()
            .prefix("gild-stack-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating the stack's folder", e))?;
        let deployment = stack::deploy(
            &aws,
            &moto.endpoint(),
            &options.template,
            &options.parameters,
            files.path(),
        )
        .await?;
        // A GitHub-hosted stack has no CodeCommit repository; the stub then
        // serves a name nothing asks for.
        let repository = deployment
            .outputs
            .get("RepositoryName")
            .cloned()
            .unwrap_or_else(|| "no-codecommit-repository".into());
        let codecommit = CodeCommitStub::start(PathBuf::from(repo.path()), &repository).await?;
        let ssm = match &options.buildspecs {
            Some(failing) => {
                Some(SsmProxy::start(&moto.endpoint(), repo.path(), failing, files.path()).await?)
            }
            None => None,
        };
        let mut routes = vec![("codecommit", codecommit.endpoint())];
        if let Some(ssm) = &ssm {
            routes.push(("ssm", ssm.endpoint()));
        }
        let gate = if options.gate {
            Some(IamGate::start(
                &moto.endpoint(),
                &deployment,
                &routes,
                files.path(),
            )?)
        } else {
            None
        };
        let upstream = gate
            .as_ref()
            .map(IamGate::endpoint)
            .unwrap_or_else(|| moto.endpoint());
        let codebuild = CodeBuildProxy::start_limited(&upstream, options.limits).await?;
        let topic_arn = deployment.output("TopicArn")?.to_owned();
        let queue_url = subscribe(&aws, &topic_arn).await?;
        let router = Arc::new(Router::new(&aws, &deployment).await?);
        Ok(Pipeline {
            stack: Stack {
                topic_arn,
                queue_url,
            },
            deployment,
            moto,
            codecommit,
            codebuild,
            gate,
            ssm,
            router,
            aws,
            repo,
            _files: files,
        })
    }

    /// A stack output, empty when the stack has none of that name (a
    /// GitHub-hosted stack has no repository name).
    fn output_or_empty(&self, name: &str) -> &str {
        self.deployment
            .outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The deployed repository's name (CodeCommit).
    pub fn repository(&self) -> &str {
        self.output_or_empty("RepositoryName")
    }

    pub fn ledger_table(&self) -> &str {
        self.output_or_empty("LedgerTable")
    }

    pub fn bake_project(&self) -> &str {
        self.output_or_empty("BakeProject")
    }

    pub fn test_project(&self) -> &str {
        self.output_or_empty("TestProject")
    }

    /// Where bakes keep their bills of materials and gild its diffs.
    pub fn artifact_bucket(&self) -> &str {
        self.output_or_empty("ArtifactBucketName")
    }

    /// The family's promoted-image parameter, under the stack's prefix.
    pub fn parameter_name(&self, family: &str) -> String {
        let prefix = self
            .deployment
            .outputs
            .get("ParameterPrefix")
            .map(String::as_str)
            .unwrap_or("/gild");
        format!("{prefix}/{family}/ami")
    }

    /// A push to the deployed repository's `branch`, `old → new`.
    pub fn push_event(
        &self,
        branch: &str,
        old: Option<&str>,
        new: &str,
    ) -> Result<serde_json::Value, HarnessError> {
        events::push(self.repository(), branch, old, new)
    }

    /// The deployed monthly patch schedule firing at `time`.
    pub fn schedule_event(&self, time: &str) -> Result<serde_json::Value, HarnessError> {
        self.rule_fires("ScheduleRule", time)
    }

    /// The deployed reconciler's schedule firing at `time`.
    pub fn reconcile_event(&self, time: &str) -> Result<serde_json::Value, HarnessError> {
        self.rule_fires("ReconcileRule", time)
    }

    /// The `Scheduled Event` the stack's schedule rule `logical_id` sends.
    fn rule_fires(&self, logical_id: &str, time: &str) -> Result<serde_json::Value, HarnessError> {
        let rule = self
            .deployment
            .rules
            .get(logical_id)
            .filter(|r| r.schedule_expression.is_some())
            .ok_or_else(|| setup(logical_id, "the stack has no such schedule rule"))?;
        events::schedule(&rule.name, time)
    }

    /// Where a function's AWS calls go: the gate when there is one.
    fn aws_endpoint(&self) -> String {
        self.gate
            .as_ref()
            .map(IamGate::endpoint)
            .unwrap_or_else(|| self.moto.endpoint())
    }

    /// What the function process `function` (`trigger`, `bake-finished`,
    /// ...) gets: the stack's environment for it, its role's keys, and the
    /// emulator through the standard AWS endpoint settings (the gate; the
    /// CodeBuild proxy for CodeBuild).
    pub fn function_env(&self, function: &str) -> Result<Vec<(String, String)>, HarnessError> {
        let deployed = self.deployed(function)?;
        let mut env = aws::lambda_env(&self.aws_endpoint());
        if let Some(gate) = &self.gate {
            let keys = gate.keys(&deployed.role)?;
            for (name, value) in &mut env {
                match name.as_str() {
                    "AWS_ACCESS_KEY_ID" => value.clone_from(&keys.access_key_id),
                    "AWS_SECRET_ACCESS_KEY" => value.clone_from(&keys.secret_access_key),
                    _ => {}
                }
            }
        }
        let codecommit = if self.gate.is_some() {
            self.aws_endpoint()
        } else {
            self.codecommit.endpoint()
        };
        env.push(("AWS_ENDPOINT_URL_CODECOMMIT".into(), codecommit));
        env.push((
            "AWS_ENDPOINT_URL_CODEBUILD".into(),
            self.codebuild.endpoint(),
        ));
        env.extend(deployed.env());
        Ok(env)
    }

    /// The deployed function the harness runs as `function`.
    pub fn deployed(&self, function: &str) -> Result<&stack::DeployedFunction, HarnessError> {
        self.deployment
            .functions
            .iter()
            .find(|(lid, _)| crate::routing::function_of(lid) == Some(function))
            .map(|(_, deployed)| deployed)
            .ok_or_else(|| setup(function, "the deployed stack has no such function"))
    }

    /// Runs a function binary of the workspace through the Runtime API,
    /// named and configured as the stack deploys it.
    pub async fn spawn(&self, function: &str) -> Result<LambdaProcess, HarnessError> {
        self.spawn_with(function, &[]).await
    }

    /// Like `spawn`, with `extra` appended to (so overriding) its environment.
    pub async fn spawn_with(
        &self,
        function: &str,
        extra: &[(String, String)],
    ) -> Result<LambdaProcess, HarnessError> {
        let mut env = self.function_env(function)?;
        env.extend(extra.iter().cloned());
        LambdaProcess::spawn(
            &bin_path(function)?,
            &self.deployed(function)?.function_name,
            &env,
        )
        .await
    }

    /// The calls the IAM gate refused so far, described (empty without a gate).
    pub fn refused_calls(&self) -> Result<Vec<String>, HarnessError> {
        match &self.gate {
            Some(gate) => gate.refusals(),
            None => Ok(Vec::new()),
        }
    }

    /// Panics, listing them, if the gate refused any call, or saw none: what
    /// an end-to-end test asserts last, so a permission the functions need
    /// and the template lacks fails it even where gild's handling of the
    /// refusal would hide it. Returns how many calls were allowed.
    pub fn assert_every_call_allowed(&self) -> usize {
        let Some(gate) = &self.gate else {
            panic!("this pipeline runs without the IAM gate");
        };
        let decisions = gate.decisions().expect("the IAM gate's decisions");
        let refused: Vec<String> = decisions
            .iter()
            .filter(|d| !d.allowed)
            .map(ToString::to_string)
            .collect();
        assert!(
            refused.is_empty(),
            "the functions' roles (infra/template.yaml) refused {} call(s):\n{}",
            refused.len(),
            refused.join("\n")
        );
        assert!(!decisions.is_empty(), "no call went through the IAM gate");
        decisions.len()
    }

    /// Every ledger item with its key, read straight from moto.
    async fn ledger_items(
        &self,
        dynamodb: &aws_sdk_dynamodb::Client,
    ) -> Result<Vec<(Item, Item)>, HarnessError> {
        let items = dynamodb
            .scan()
            .table_name(self.ledger_table())
            .send()
            .await
            .map_err(|e| {
                setup(
                    "ledger scan",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        Ok(items
            .items()
            .iter()
            .map(|item| {
                let key = ["family", "dedupe_key"]
                    .into_iter()
                    .filter_map(|k| item.get(k).map(|v| (k.to_owned(), v.clone())))
                    .collect();
                (key, item.clone())
            })
            .collect())
    }

    /// Deletes every ledger item: the state a fresh stack starts with.
    pub async fn clear_ledger(&self) -> Result<(), HarnessError> {
        let (dynamodb, table) = (
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.ledger_table(),
        );
        for (key, _) in self.ledger_items(&dynamodb).await? {
            dynamodb
                .delete_item()
                .table_name(table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(|e| {
                    setup(
                        "ledger delete",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    )
                })?;
        }
        Ok(())
    }

    /// Runs the builds started so far that have not run yet and records
    /// each one's end with the CodeBuild proxy, so `BatchGetBuilds` tells it
    /// whether or not its completion event is ever delivered.
    pub async fn run_builds(
        &self,
        builds: &impl crate::standin::Builds,
    ) -> Result<Vec<crate::standin::Completed>, HarnessError> {
        // A build someone stopped (StopBuild) before it ran ends `STOPPED`,
        // leaving nothing behind, as CodeBuild reports it.
        let stopped = self.codebuild.stopped();
        let (halted, running): (Vec<_>, Vec<_>) = self
            .codebuild
            .started()
            .into_iter()
            .partition(|b| stopped.contains(&b.build_id));
        let mut completed = Vec::new();
        for (n, build) in halted.iter().enumerate() {
            if builds.done().first_time(&build.build_id) {
                let buildspec = if build.project_name == self.bake_project() {
                    "buildspecs/bake.yml"
                } else {
                    "buildspecs/test.yml"
                };
                completed.push(crate::standin::Completed {
                    project: build.project_name.clone(),
                    family: build
                        .env_value("GILD_FAMILY")
                        .unwrap_or_default()
                        .to_owned(),
                    status: "STOPPED",
                    image: None,
                    event: crate::standin::completion_event(
                        build,
                        "STOPPED",
                        &[],
                        9000 + n as u32,
                        buildspec,
                    )?,
                });
            }
        }
        completed.extend(builds.run_pending(&running).await?);
        for done in &completed {
            self.codebuild.ended(&done.event);
        }
        Ok(completed)
    }

    /// Time passes for the ledger: every bake's last change (and its lease)
    /// moves `secs` into the past, as if nobody had touched it since.
    pub async fn age_bakes(&self, secs: i64) -> Result<(), HarnessError> {
        let (dynamodb, table) = (
            aws_sdk_dynamodb::Client::new(&self.aws),
            self.ledger_table(),
        );
        for (key, item) in self.ledger_items(&dynamodb).await? {
            let number = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let n = |v: i64| AttributeValue::N(v.to_string());
            dynamodb
                .update_item()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("SET updated_at = :u, lease_until = :l")
                .expression_attribute_values(":u", n(number("updated_at") - secs))
                .expression_attribute_values(":l", n(number("lease_until") - secs))
                .send()
                .await
                .map_err(|e| {
                    setup(
                        "ledger age",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    )
                })?;
        }
        Ok(())
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
