//! The artifact bucket: bills of materials the bakes keep and the package
//! diffs gild keeps, read and written whole, linked with pre-signed URLs.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use gild_core::bom;
use gild_core::ports::{Artifacts, PortError, PortResult};

use crate::classify;

const SERVICE: &str = "S3";

pub struct S3Artifacts {
    client: Client,
    bucket: String,
}

impl S3Artifacts {
    pub fn new(client: Client, bucket: &str) -> Self {
        S3Artifacts {
            client,
            bucket: bucket.to_owned(),
        }
    }
}

fn invalid(operation: &'static str, message: String) -> PortError {
    PortError::InvalidResponse {
        service: SERVICE,
        operation,
        message,
    }
}

impl Artifacts for S3Artifacts {
    async fn get(&self, key: &str) -> PortResult<Option<Vec<u8>>> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None)
            }
            Err(err) => return Err(classify(SERVICE, "GetObject", err)),
        };
        // Refused before the body is read: the object is written by a
        // build, and a runaway one must not make a function hold it all.
        let length = out.content_length().unwrap_or_default();
        if usize::try_from(length).map_or(true, |n| n > bom::MAX_BYTES) {
            return Err(invalid(
                "GetObject",
                format!("{key} is {length} bytes, more than {}", bom::MAX_BYTES),
            ));
        }
        let body = out.body.collect().await.map_err(|e| PortError::Transport {
            service: SERVICE,
            operation: "GetObject",
            message: format!("reading {key}: {e}"),
        })?;
        let bytes = body.into_bytes();
        if bytes.len() > bom::MAX_BYTES {
            return Err(invalid(
                "GetObject",
                format!("{key} is more than {} bytes", bom::MAX_BYTES),
            ));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// A put of the same body is harmless to repeat: the bucket is
    /// versioned, and the older version expires (the lifecycle rule).
    async fn put(&self, key: &str, body: Vec<u8>) -> PortResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(SERVICE, "PutObject", e))
    }

    /// Signed here, with the function's credentials, without a call: the
    /// link works while they do (a role's session ends sooner than `secs`).
    async fn link(&self, key: &str, secs: u64) -> PortResult<String> {
        let config = PresigningConfig::expires_in(Duration::from_secs(secs))
            .map_err(|e| invalid("GetObject", format!("a {secs} s link: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| classify(SERVICE, "GetObject", e))?;
        Ok(request.uri().to_owned())
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}
