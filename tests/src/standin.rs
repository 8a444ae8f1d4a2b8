//! A stand-in for what CodeBuild runs, at its edges only.
//!
//! The emulator records builds but runs nothing. For each build the trigger
//! or bake-finished started (as the CodeBuild proxy saw it), this does what
//! the real build leaves behind and reports it the way AWS does:
//! - bake: what Packer does in EC2 (launch an instance from the base image,
//!   create an image tagged at creation, tag its snapshot, terminate), then
//!   a real-shaped `CodeBuild Build State Change` exporting `GILD_AMI_ID`;
//! - test: a completion event that passed, or failed for families told to,
//!   exporting the family's and its consumers' suites (`suites`).
//!
//! Packer, Ansible and the test scripts themselves do not run here.

use std::collections::BTreeSet;
use std::sync::Mutex;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    HttpTokensState, InstanceMetadataOptionsRequest, InstanceType, ResourceType, Tag,
    TagSpecification,
};
use serde_json::{json, Value};

use crate::codebuild::StartedBuild;
use crate::events::sample;
use crate::pipeline::Pipeline;
use crate::standin_bom;
use crate::suites::{suites, Failing};
use crate::{aws, HarnessError};

fn ec2_error(what: &str, err: impl std::fmt::Display) -> HarnessError {
    HarnessError::InvalidInput {
        message: format!("stand-in {what}: {err}"),
    }
}

/// Registers the image bakes start from, as a vendor's base AMI would be.
pub async fn register_base_image(config: &SdkConfig, name: &str) -> Result<String, HarnessError> {
    aws_sdk_ec2::Client::new(config)
        .register_image()
        .name(name)
        .description("base image the demo's bakes start from")
        .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
        .root_device_name("/dev/xvda")
        .virtualization_type("hvm")
        .send()
        .await
        .map_err(|e| ec2_error("RegisterImage", aws_sdk_ec2::error::DisplayErrorContext(e)))?
        .image_id
        .ok_or_else(|| ec2_error("RegisterImage", "no image id"))
}

/// A build the stand-in finished, with the event AWS would emit.
#[derive(Debug, Clone)]
pub struct Completed {
    pub project: String,
    pub family: String,
    pub status: &'static str,
    pub image: Option<String>,
    pub event: Value,
}

/// What runs the builds the functions started and reports their ends:
/// this stand-in (fast, Packer's EC2 edges only) or
/// [`crate::runner::BuildRunner`] (the real buildspecs).
// The harness's own futures, awaited on the test's runtime: no Send bound
// is needed, which is what the lint warns about.
#[allow(async_fn_in_trait)]
pub trait Builds {
    /// The builds already run.
    fn done(&self) -> &RunOnce;

    /// Runs one build to its end.
    async fn run(&self, build: &StartedBuild) -> Result<Completed, HarnessError>;

    /// Runs every recorded build not run yet, in start order.
    async fn run_pending(&self, started: &[StartedBuild]) -> Result<Vec<Completed>, HarnessError> {
        let mut completed = Vec::new();
        for build in started {
            if self.done().first_time(&build.build_id) {
                completed.push(self.run(build).await?);
            }
        }
        Ok(completed)
    }
}

impl Builds for BuildStandIn {
    fn done(&self) -> &RunOnce {
        &self.done
    }

    async fn run(&self, build: &StartedBuild) -> Result<Completed, HarnessError> {
        BuildStandIn::run(self, build).await
    }
}

/// The builds already run, so each runs once however often it is listed.
#[derive(Default)]
pub struct RunOnce(Mutex<BTreeSet<String>>);

impl RunOnce {
    /// True the first time `build_id` is asked about.
    pub fn first_time(&self, build_id: &str) -> bool {
        self.0
            .lock()
            .map(|mut done| done.insert(build_id.to_owned()))
            .unwrap_or(false)
    }
}

pub struct BuildStandIn {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
    artifact_bucket: String,
    /// Bakes so far per family: the next one's list moves on from it.
    baked: Mutex<std::collections::BTreeMap<String, u32>>,
    /// `<prefix>/<family>/ami` of the stack, with `{}` for the family.
    parameter: String,
    base_image: String,
    fail_bake: BTreeSet<String>,
    fail_test: BTreeSet<String>,
    /// Checks that fail in test builds (see `suites`).
    failing: Failing,
    repo: std::path::PathBuf,
    done: RunOnce,
    sequence: Mutex<u32>,
    bake_project: String,
    test_project: String,
}

impl BuildStandIn {
    /// Runs the builds of `pipeline`'s bake and test projects.
    pub fn new(pipeline: &Pipeline, base_image: impl Into<String>) -> Self {
        BuildStandIn {
            ec2: aws_sdk_ec2::Client::new(&pipeline.aws),
            ssm: aws_sdk_ssm::Client::new(&pipeline.aws),
            s3: aws_sdk_s3::Client::new(&pipeline.aws),
            artifact_bucket: pipeline.artifact_bucket().to_owned(),
            baked: Mutex::default(),
            parameter: pipeline.parameter_name("{}"),
            bake_project: pipeline.bake_project().to_owned(),
            test_project: pipeline.test_project().to_owned(),
            base_image: base_image.into(),
            fail_bake: BTreeSet::new(),
            fail_test: BTreeSet::new(),
            failing: Failing::new(),
            repo: pipeline.repo.path().to_path_buf(),
            done: RunOnce::default(),
            sequence: Mutex::new(0),
        }
    }

    /// This family's bakes fail after registering an image (left for cleanup).
    pub fn fail_bake(mut self, family: &str) -> Self {
        self.fail_bake.insert(family.to_owned());
        self
    }

    /// This family's tests fail.
    pub fn fail_test(mut self, family: &str) -> Self {
        self.fail_test.insert(family.to_owned());
        self
    }

    /// `check` of the suite `suite` (a family or a consumer) fails in test
    /// builds of `commit` (of every commit when `None`).
    pub fn fail_check(mut self, commit: Option<&str>, suite: &str, check: &str) -> Self {
        self.failing.insert((
            commit.map(str::to_owned),
            suite.to_owned(),
            check.to_owned(),
        ));
        self
    }

    async fn run(&self, build: &StartedBuild) -> Result<Completed, HarnessError> {
        let family = build
            .env_value("GILD_FAMILY")
            .unwrap_or_default()
            .to_owned();
        if build.project_name == self.bake_project {
            let source = self.source_image(build).await?;
            let image = self.bake(build, &family, &source).await?;
            let failed = self.fail_bake.contains(&family);
            if !failed {
                self.keep_bill_of_materials(build, &family, &image).await?;
            }
            let status = if failed { "FAILED" } else { "SUCCEEDED" };
            let mut exported = vec![("GILD_FAMILY", family.clone())];
            if !failed {
                exported.push(("GILD_AMI_ID", image.clone()));
                exported.push(("GILD_BASE_AMI", source));
            }
            Ok(Completed {
                event: self.event(build, status, &exported)?,
                project: build.project_name.clone(),
                family,
                status,
                image: Some(image),
            })
        } else if build.project_name == self.test_project {
            // The family's and its consumers' suites, as test.yml exports
            // them, when the build names its commit.
            let mut failing = self.failing.clone();
            if self.fail_test.contains(&family) {
                failing.insert((None, family.clone(), "the family's own check".into()));
            }
            let (exported, failed) = match build.env_value("GILD_SOURCE_COMMIT") {
                Some(commit) => {
                    let (json, failed) = suites(&self.repo, commit, &family, &failing)?;
                    (vec![("GILD_TEST_SUITES", json)], failed)
                }
                None => (Vec::new(), false),
            };
            let status = if failed || self.fail_test.contains(&family) {
                "FAILED"
            } else {
                "SUCCEEDED"
            };
            Ok(Completed {
                event: self.event(build, status, &exported)?,
                project: build.project_name.clone(),
                image: build.env_value("GILD_AMI_ID").map(str::to_owned),
                family,
                status,
            })
        } else {
            Err(HarnessError::InvalidInput {
                message: format!("stand-in: unknown project {}", build.project_name),
            })
        }
    }

    /// What bake.yml's last step does: the image's list at `bom/<ami>.json`.
    async fn keep_bill_of_materials(
        &self,
        build: &StartedBuild,
        family: &str,
        image: &str,
    ) -> Result<(), HarnessError> {
        let commit = build.env_value("GILD_SOURCE_COMMIT").unwrap_or("unknown");
        let nth = {
            let mut baked = self.baked.lock().map_err(|_| HarnessError::InvalidInput {
                message: "stand-in: a bake panicked".into(),
            })?;
            let count = baked.entry(family.to_owned()).or_insert(0);
            *count += 1;
            *count - 1
        };
        let os = standin_bom::os_of(&self.repo, commit, family);
        let body = standin_bom::bill_of_materials(family, os, image, nth)?;
        standin_bom::keep(&self.s3, &self.artifact_bucket, image, body).await
    }

    /// What bake.yml bakes from: the image the build was given
    /// (`GILD_SOURCE_AMI`), else a layered family's parent's promoted image
    /// (its parameter, read when the build starts), else the base image.
    async fn source_image(&self, build: &StartedBuild) -> Result<String, HarnessError> {
        if let Some(image) = build.env_value("GILD_SOURCE_AMI").filter(|v| !v.is_empty()) {
            return Ok(image.to_owned());
        }
        let Some(parent) = build
            .env_value("GILD_PARENT_FAMILY")
            .filter(|v| !v.is_empty())
        else {
            return Ok(self.base_image.clone());
        };
        let name = self.parameter.replace("{}", parent);
        self.ssm
            .get_parameter()
            .name(&name)
            .send()
            .await
            .ok()
            .and_then(|out| out.parameter.and_then(|p| p.value))
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("stand-in: {name} names no image: the parent was never promoted"),
            })
    }

    /// What Packer leaves in EC2: an image made from an instance of the
    /// source image, tagged at creation, with its snapshot tagged too.
    async fn bake(
        &self,
        build: &StartedBuild,
        family: &str,
        source: &str,
    ) -> Result<String, HarnessError> {
        let commit = build.env_value("GILD_SOURCE_COMMIT").unwrap_or("unknown");
        let instance = self
            .ec2
            .run_instances()
            .image_id(source)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ec2_error("RunInstances", aws_sdk_ec2::error::DisplayErrorContext(e)))?
            .instances()
            .first()
            .and_then(|i| i.instance_id().map(str::to_owned))
            .ok_or_else(|| ec2_error("RunInstances", "no instance"))?;
        let tags = [
            ("Name", format!("gild-{family}-{}", short(&build.build_id))),
            ("gild:managed", "true".to_owned()),
            ("gild:family", family.to_owned()),
            ("gild:source-commit", commit.to_owned()),
            ("gild:build-id", build.build_id.clone()),
            ("gild:base-ami", source.to_owned()),
        ];
        let tag_list: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(v).build())
            .collect();
        let image = self
            .ec2
            .create_image()
            .instance_id(&instance)
            .name(format!("gild-{family}-{}", short(&build.build_id)))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Image)
                    .set_tags(Some(tag_list.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| ec2_error("CreateImage", aws_sdk_ec2::error::DisplayErrorContext(e)))?
            .image_id
            .ok_or_else(|| ec2_error("CreateImage", "no image id"))?;
        let snapshots: Vec<String> = self
            .ec2
            .describe_images()
            .image_ids(&image)
            .send()
            .await
            .map_err(|e| ec2_error("DescribeImages", aws_sdk_ec2::error::DisplayErrorContext(e)))?
            .images()
            .iter()
            .flat_map(|i| i.block_device_mappings())
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
            .collect();
        if !snapshots.is_empty() {
            // moto cannot tag snapshots at creation; Packer's snapshot_tags can.
            self.ec2
                .create_tags()
                .set_resources(Some(snapshots))
                .set_tags(Some(tag_list))
                .send()
                .await
                .map_err(|e| ec2_error("CreateTags", aws_sdk_ec2::error::DisplayErrorContext(e)))?;
        }
        self.ec2
            .terminate_instances()
            .instance_ids(&instance)
            .send()
            .await
            .map_err(|e| {
                ec2_error(
                    "TerminateInstances",
                    aws_sdk_ec2::error::DisplayErrorContext(e),
                )
            })?;
        Ok(image)
    }

    /// The `CodeBuild Build State Change` event AWS emits when `build` ends
    /// with `status`, carrying `exported` as exported variables.
    pub fn event(
        &self,
        build: &StartedBuild,
        status: &str,
        exported: &[(&str, String)],
    ) -> Result<Value, HarnessError> {
        let n = self.sequence.lock().map(|mut n| {
            *n += 1;
            *n
        });
        let buildspec = if build.project_name == self.bake_project {
            "buildspecs/bake.yml"
        } else {
            "buildspecs/test.yml"
        };
        completion_event(build, status, exported, n.unwrap_or_default(), buildspec)
    }
}

/// The `CodeBuild Build State Change` event AWS emits when `build` ends
/// with `status`, carrying `exported` as exported variables.
/// `n` numbers the event's id; `buildspec` is the project's.
pub fn completion_event(
    build: &StartedBuild,
    status: &str,
    exported: &[(&str, String)],
    n: u32,
    buildspec: &str,
) -> Result<Value, HarnessError> {
    let mut event = sample("codebuild-bake-succeeded.json")?;
    let arn = format!(
        "arn:aws:codebuild:{}:{}:build/{}",
        aws::REGION,
        aws::ACCOUNT_ID,
        build.build_id
    );
    let stream = build
        .build_id
        .split(':')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    event["id"] = format!("00000000-0000-4000-8000-{n:012}").into();
    event["account"] = aws::ACCOUNT_ID.into();
    event["region"] = aws::REGION.into();
    event["time"] = "2026-11-11T04:00:00Z".into();
    event["resources"] = json!([arn]);
    let detail = &mut event["detail"];
    detail["build-status"] = status.into();
    detail["project-name"] = build.project_name.clone().into();
    detail["build-id"] = arn.into();
    let info = &mut detail["additional-information"];
    info["initiator"] = "gild".into();
    info["source"]["buildspec"] = buildspec.into();
    info["source-version"] = build.source_version.clone().unwrap_or_default().into();
    info["environment"]["environment-variables"] = build
        .env
        .iter()
        .map(|(name, value)| json!({"name": name, "type": "PLAINTEXT", "value": value}))
        .collect();
    info["logs"] = json!({
        "group-name": format!("/aws/codebuild/{}", build.project_name),
        "stream-name": stream,
        "deep-link": format!(
            "https://console.aws.amazon.com/cloudwatch/home?region={}#logEvent:group=/aws/codebuild/{};stream={stream}",
            aws::REGION, build.project_name
        ),
    });
    match info.as_object_mut() {
        Some(map) if exported.is_empty() => {
            map.remove("exported-environment-variables");
        }
        Some(map) => {
            map.insert(
                "exported-environment-variables".into(),
                exported
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect(),
            );
        }
        None => {}
    }
    Ok(event)
}

fn short(build_id: &str) -> &str {
    build_id
        .split(':')
        .nth(1)
        .and_then(|uuid| uuid.get(..8))
        .unwrap_or("build")
}
