//! Starting bake and test builds on CodeBuild, reading what they exported,
//! and stopping the ones a pull request no longer needs.

use std::collections::BTreeMap;

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use aws_sdk_codebuild::Client;
use gild_core::event::{BuildStateChange, BuildStatus};
use gild_core::ports::{
    BakeRequest, BuildControl, BuildInfo, Builds, PortError, PortResult, TestRequest, Tests,
};
use gild_core::vocabulary::env;

use crate::classify;

const SERVICE: &str = "CodeBuild";

pub struct CodeBuildBuilds {
    client: Client,
    bake_project: String,
}

impl CodeBuildBuilds {
    pub fn new(client: Client, bake_project: impl Into<String>) -> Self {
        CodeBuildBuilds {
            client,
            bake_project: bake_project.into(),
        }
    }
}

fn plain(name: &str, value: &str) -> PortResult<EnvironmentVariable> {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .map_err(|e| PortError::InvalidResponse {
            service: SERVICE,
            operation: "StartBuild",
            message: e.to_string(),
        })
}

impl Builds for CodeBuildBuilds {
    async fn start_bake(&self, request: &BakeRequest) -> PortResult<String> {
        let mut start = self
            .client
            .start_build()
            .project_name(&self.bake_project)
            .source_version(&request.commit)
            .idempotency_token(request.key.idempotency_token())
            .environment_variables_override(plain(env::FAMILY, &request.key.family)?)
            .environment_variables_override(plain(env::TRIGGER, request.trigger.as_str())?)
            .environment_variables_override(plain(env::SOURCE_COMMIT, &request.commit)?)
            .environment_variables_override(plain(env::DEDUPE_KEY, &request.key.dedupe_key)?);
        if let Some(parent) = &request.parent {
            start = start.environment_variables_override(plain(env::PARENT_FAMILY, parent)?);
        }
        if let Some(image) = &request.source_image {
            start = start.environment_variables_override(plain(env::SOURCE_AMI, image)?);
        }
        let out = start
            .send()
            .await
            .map_err(|e| classify(SERVICE, "StartBuild", e))?;
        out.build_value()
            .and_then(|b| b.id().map(str::to_owned))
            .ok_or_else(|| PortError::InvalidResponse {
                service: SERVICE,
                operation: "StartBuild",
                message: "no build id in the response".into(),
            })
    }
}

impl BuildInfo for CodeBuildBuilds {
    async fn exported_variables(&self, build_id: &str) -> PortResult<BTreeMap<String, String>> {
        exported_variables(&self.client, build_id).await
    }

    async fn build(&self, build_id: &str) -> PortResult<Option<BuildStateChange>> {
        describe_build(&self.client, build_id).await
    }
}

/// Starts test builds for baked images.
pub struct TestBuilds {
    client: Client,
    test_project: String,
}

impl TestBuilds {
    pub fn new(client: Client, test_project: impl Into<String>) -> Self {
        TestBuilds {
            client,
            test_project: test_project.into(),
        }
    }
}

/// The test build's idempotency token. It must differ from the bake's
/// (`BakeKey::idempotency_token`), which CodeBuild would otherwise answer with
/// a parameter mismatch; the image is in it so that another image of the
/// same bake gets a test of its own. FNV-1a keeps it short and stable across
/// builds of this code, which std's hasher does not promise.
fn test_token(request: &TestRequest) -> String {
    let hash = gild_core::retry::fnv1a(request.image.as_bytes());
    // "test-" + 32 + "-" + 16 = 54 characters, under CodeBuild's 64.
    format!("test-{}-{hash:016x}", request.key.idempotency_token())
}

impl Tests for TestBuilds {
    async fn start_test(&self, request: &TestRequest) -> PortResult<String> {
        let mut start = self
            .client
            .start_build()
            .project_name(&self.test_project)
            .idempotency_token(test_token(request))
            .environment_variables_override(plain(env::FAMILY, &request.key.family)?)
            .environment_variables_override(plain(env::AMI_ID, &request.image)?)
            .environment_variables_override(plain(env::DEDUPE_KEY, &request.key.dedupe_key)?);
        if let Some(commit) = &request.commit {
            start = start
                .source_version(commit)
                .environment_variables_override(plain(env::SOURCE_COMMIT, commit)?);
        }
        let out = start
            .send()
            .await
            .map_err(|e| classify(SERVICE, "StartBuild", e))?;
        out.build_value()
            .and_then(|b| b.id().map(str::to_owned))
            .ok_or_else(|| PortError::InvalidResponse {
                service: SERVICE,
                operation: "StartBuild",
                message: "no build id in the response".into(),
            })
    }
}

impl BuildInfo for TestBuilds {
    async fn exported_variables(&self, build_id: &str) -> PortResult<BTreeMap<String, String>> {
        exported_variables(&self.client, build_id).await
    }

    async fn build(&self, build_id: &str) -> PortResult<Option<BuildStateChange>> {
        describe_build(&self.client, build_id).await
    }
}

impl BuildControl for CodeBuildBuilds {
    async fn stop(&self, build_id: &str) -> PortResult<()> {
        stop_build(&self.client, build_id).await
    }
}

impl BuildControl for TestBuilds {
    async fn stop(&self, build_id: &str) -> PortResult<()> {
        stop_build(&self.client, build_id).await
    }
}

/// `StopBuild`; a build that has already ended is not an error. The API
/// reference names only `InvalidInputException` and
/// `ResourceNotFoundException` and does not say which a finished build
/// gets; CodeBuild refuses to stop one. So an `InvalidInputException` is
/// checked with `BatchGetBuilds`: a build that ended is as stopped as it
/// will be. An unknown build stays `NotFound`.
async fn stop_build(client: &Client, build_id: &str) -> PortResult<()> {
    let refused = match client.stop_build().id(build_id).send().await {
        Ok(_) => return Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_invalid_input_exception()) =>
        {
            e
        }
        Err(e) => return Err(classify(SERVICE, "StopBuild", e)),
    };
    match describe_build(client, build_id).await? {
        Some(build) if ended(build.status) => Ok(()),
        _ => Err(classify(SERVICE, "StopBuild", refused)),
    }
}

fn ended(status: BuildStatus) -> bool {
    match status {
        BuildStatus::Succeeded
        | BuildStatus::Failed
        | BuildStatus::Fault
        | BuildStatus::Stopped
        | BuildStatus::TimedOut => true,
        BuildStatus::InProgress | BuildStatus::Other => false,
    }
}

async fn exported_variables(
    client: &Client,
    build_id: &str,
) -> PortResult<BTreeMap<String, String>> {
    match describe_build(client, build_id).await? {
        Some(build) => Ok(build.exported),
        None => Err(PortError::NotFound {
            service: SERVICE,
            operation: "BatchGetBuilds",
            code: "BuildNotFound".into(),
            message: format!("CodeBuild knows no build `{build_id}`"),
        }),
    }
}

/// `BatchGetBuilds` for one build, read into the completion event's shape
/// (the event's `additional-information` is the same `Build` object). Only
/// plain-text environment variables are kept: the others name a parameter
/// or secret, not a value.
async fn describe_build(client: &Client, build_id: &str) -> PortResult<Option<BuildStateChange>> {
    let out = client
        .batch_get_builds()
        .ids(build_id)
        .send()
        .await
        .map_err(|e| classify(SERVICE, "BatchGetBuilds", e))?;
    // CodeBuild answers an unknown id with success and `buildsNotFound`.
    let Some(build) = out
        .builds()
        .iter()
        .find(|b| b.id() == Some(build_id) || b.arn() == Some(build_id))
    else {
        return Ok(None);
    };
    let pairs = |vars: &mut dyn Iterator<Item = (Option<&str>, Option<&str>)>| {
        vars.filter_map(|(name, value)| {
            Some((name?.to_owned(), value.unwrap_or_default().to_owned()))
        })
        .collect::<BTreeMap<_, _>>()
    };
    let env = build
        .environment()
        .map(|e| e.environment_variables())
        .unwrap_or_default()
        .iter()
        .filter(|v| {
            v.r#type()
                .is_none_or(|t| *t == EnvironmentVariableType::Plaintext)
        })
        .map(|v| (Some(v.name()), Some(v.value())));
    let exported = build
        .exported_environment_variables()
        .iter()
        .map(|v| (v.name(), v.value()));
    let status_text = build
        .build_status()
        .map_or("IN_PROGRESS", |s| s.as_str())
        .to_owned();
    Ok(Some(BuildStateChange {
        project_name: build.project_name().unwrap_or_default().to_owned(),
        build_id: build.arn().or(build.id()).unwrap_or(build_id).to_owned(),
        status: BuildStatus::parse(&status_text),
        status_text,
        env: pairs(&mut { env }),
        exported: pairs(&mut { exported }),
        source_version: build
            .resolved_source_version()
            .or(build.source_version())
            .map(str::to_owned),
        log_link: build.logs().and_then(|l| l.deep_link()).map(str::to_owned),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gild_core::ledger::BakeKey;

    fn request(image: &str) -> TestRequest {
        TestRequest {
            key: BakeKey {
                family: "al2023-base".into(),
                dedupe_key: "push:abc".into(),
            },
            image: image.into(),
            commit: None,
        }
    }

    #[test]
    fn test_tokens_are_stable_distinct_and_short() {
        let a = test_token(&request("ami-0123456789abcdef0"));
        assert_eq!(a, test_token(&request("ami-0123456789abcdef0")));
        assert_ne!(a, test_token(&request("ami-0123456789abcdef1")));
        assert_ne!(a, request("x").key.idempotency_token());
        assert!(a.len() <= 64, "{a}");
    }
}
