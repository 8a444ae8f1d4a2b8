//! Starting bake builds on CodeBuild.

use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType};
use aws_sdk_codebuild::Client;
use gild_core::ports::{BakeRequest, Builds, PortError, PortResult};

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
        let out = self
            .client
            .start_build()
            .project_name(&self.bake_project)
            .source_version(&request.commit)
            .idempotency_token(request.key.idempotency_token())
            .environment_variables_override(plain("GILD_FAMILY", &request.key.family)?)
            .environment_variables_override(plain("GILD_TRIGGER", request.trigger.as_str())?)
            .environment_variables_override(plain("GILD_SOURCE_COMMIT", &request.commit)?)
            .environment_variables_override(plain("GILD_DEDUPE_KEY", &request.key.dedupe_key)?)
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
