//! CloudFormation's part in a custom resource, played by the harness: the
//! stack twin strips custom resources from moto's stack (moto would run
//! their functions in docker) and keeps them in stack.json; here the real
//! function binary gets the request CloudFormation would send ("Custom
//! resource request objects": RequestType, ResponseURL, StackId, RequestId,
//! ResourceType, LogicalResourceId, PhysicalResourceId, ResourceProperties,
//! OldResourceProperties), and its answer is read where CloudFormation
//! reads it, from the PUT to the response URL (a local server standing in
//! for the pre-signed S3 URL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::pipeline::Pipeline;
use crate::runtime_api::Invocation;
use crate::{new_uuid, HarnessError};

/// How long CloudFormation would wait here; the function answers well
/// within its 60 s timeout.
const ANSWER_WAIT: Duration = Duration::from_secs(90);

/// Each PUT's bodies, by request id.
type Answers = Arc<Mutex<HashMap<String, Vec<Bytes>>>>;

/// The response URLs' server: each PUT's body, by request id.
pub struct ResponseBucket {
    answers: Answers,
    address: std::net::SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for ResponseBucket {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn store(
    State(answers): State<Answers>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(request_id)
        .or_default()
        .push(body);
    StatusCode::OK
}

impl ResponseBucket {
    pub async fn start() -> Result<ResponseBucket, HarnessError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| HarnessError::io("cannot bind the response bucket", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| HarnessError::io("cannot read the response bucket's address", e))?;
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let app = Router::new()
            .route("/responses/{request_id}", put(store))
            .with_state(Arc::clone(&answers));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ResponseBucket {
            answers,
            address,
            server,
        })
    }

    /// A pre-signed-looking URL for `request_id`.
    pub fn url(&self, request_id: &str) -> String {
        format!(
            "http://{}/responses/{request_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0f1e",
            self.address
        )
    }

    /// Every answer PUT for `request_id`, parsed.
    pub fn answers(&self, request_id: &str) -> Vec<Value> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(request_id)
            .map(|bodies| {
                bodies
                    .iter()
                    .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A request about one custom resource of the deployed stack.
pub struct Request {
    pub kind: &'static str,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub properties: Value,
    pub old_properties: Option<Value>,
}

impl Request {
    /// The stack's own resource `logical_id`, as deployed.
    pub fn of(
        pipeline: &Pipeline,
        kind: &'static str,
        logical_id: &str,
    ) -> Result<Request, HarnessError> {
        let resource = pipeline
            .deployment
            .custom_resources
            .get(logical_id)
            .ok_or_else(|| HarnessError::InvalidInput {
                message: format!("the deployed stack has no custom resource {logical_id}"),
            })?;
        Ok(Request {
            kind,
            logical_id: logical_id.to_owned(),
            physical_id: None,
            properties: resource.properties.clone(),
            old_properties: None,
        })
    }

    /// The event CloudFormation sends, answered at `bucket`.
    pub fn event(&self, pipeline: &Pipeline, bucket: &ResponseBucket, request_id: &str) -> Value {
        let resource = &pipeline.deployment.custom_resources[&self.logical_id];
        let mut event = json!({
            "RequestType": self.kind,
            "ServiceToken": self.properties["ServiceToken"],
            "ResponseURL": bucket.url(request_id),
            "StackId": pipeline.deployment.stack_id(),
            "RequestId": request_id,
            "ResourceType": resource.r#type,
            "LogicalResourceId": self.logical_id,
            "ResourceProperties": self.properties,
        });
        if let Some(id) = &self.physical_id {
            event["PhysicalResourceId"] = json!(id);
        }
        if let Some(old) = &self.old_properties {
            event["OldResourceProperties"] = old.clone();
        }
        event
    }
}

/// What came of one request: the invocation, and the answers PUT.
pub struct Played {
    pub invocation: Invocation,
    pub answers: Vec<Value>,
}

/// Sends `request` to its function (the real binary, as the stack deploys
/// it, behind the IAM gate) and collects the answer.
pub async fn play(
    pipeline: &Pipeline,
    bucket: &ResponseBucket,
    request: &Request,
) -> Result<Played, HarnessError> {
    let resource = &pipeline.deployment.custom_resources[&request.logical_id];
    let binary = crate::routing::function_of(&resource.function).ok_or_else(|| {
        HarnessError::InvalidInput {
            message: format!("no binary for function {}", resource.function),
        }
    })?;
    let function = pipeline
        .spawn_with(
            binary,
            &[(
                "GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK".to_owned(),
                "1".to_owned(),
            )],
        )
        .await?
        .with_timeout(ANSWER_WAIT);
    let request_id = new_uuid();
    let invocation = function
        .invoke(&request.event(pipeline, bucket, &request_id))
        .await?;
    Ok(Played {
        invocation,
        answers: bucket.answers(&request_id),
    })
}
