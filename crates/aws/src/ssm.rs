//! Promoted images as SSM parameters of data type `aws:ec2:image`.

use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use gild_core::ports::{Parameters, PortError, PortResult};

use crate::classify;

const SERVICE: &str = "SSM";

/// SSM checks that the value names an AMI and lets launch templates and
/// Image Builder resolve the parameter as an image.
const IMAGE_DATA_TYPE: &str = "aws:ec2:image";

pub struct SsmParameters {
    client: Client,
}

impl SsmParameters {
    pub fn new(client: Client) -> Self {
        SsmParameters { client }
    }
}

impl SsmParameters {
    /// The parameter's current value and version.
    async fn get(&self, name: &str) -> PortResult<Option<(String, i64)>> {
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => out
                .parameter()
                .and_then(|p| p.value().map(|v| Some((v.to_owned(), p.version()))))
                .ok_or_else(|| PortError::InvalidResponse {
                    service: SERVICE,
                    operation: "GetParameter",
                    message: format!("parameter `{name}` came back without a value"),
                }),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_parameter_not_found()) =>
            {
                Ok(None)
            }
            Err(err) => Err(classify(SERVICE, "GetParameter", err)),
        }
    }
}

impl Parameters for SsmParameters {
    /// Idempotent: a parameter already at `image_id` is left as it is. Every
    /// overwrite makes a new version, so the SDK must not retry a put whose
    /// answer was lost; the caller's retry comes back here and reads first.
    async fn promote(&self, name: &str, image_id: &str) -> PortResult<i64> {
        if let Some((value, version)) = self.get(name).await? {
            if value == image_id {
                return Ok(version);
            }
        }
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(image_id)
            .r#type(ParameterType::String)
            .data_type(IMAGE_DATA_TYPE)
            // Overwriting is what keeps the previous images in SSM's history.
            .overwrite(true)
            .customize()
            .config_override(
                aws_sdk_ssm::config::Config::builder()
                    .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| classify(SERVICE, "PutParameter", e))?;
        Ok(out.version())
    }

    async fn current(&self, name: &str) -> PortResult<Option<String>> {
        Ok(self.get(name).await?.map(|(value, _)| value))
    }
}
