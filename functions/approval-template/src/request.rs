//! A CloudFormation custom resource request, in two readings: the envelope
//! (where to answer, and about what), which must hold for any answer at
//! all; and the request proper, whose faults are answered FAILED.

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use gild_core::approval_rule::{ApprovalRule, ApprovalRuleError, Request};
use serde::Deserialize;
use serde_json::Value;

use crate::response::{ResponseUrl, UrlError};

/// The fields every request carries and every answer echoes
/// (CloudFormation's "Custom resource request objects" page).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default)]
    pub physical_resource_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("not a CloudFormation custom resource request (ResponseURL, StackId, RequestId and LogicalResourceId are needed to answer one): {0}")]
    NoEnvelope(String),
    #[error("the request's ResponseURL is not one gild answers: {0}")]
    BadResponseUrl(#[from] UrlError),
}

/// Why a request with an envelope is answered FAILED before any call.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the request is not a Create, Update or Delete of Custom::ApprovalRuleTemplate: {0}")]
    Shape(String),
    #[error(transparent)]
    Properties(#[from] ApprovalRuleError),
}

/// The envelope and where to answer; an error when there is nowhere.
pub fn envelope(
    event: &Value,
    allow_insecure_loopback: bool,
) -> Result<(Envelope, ResponseUrl), RequestError> {
    let envelope: Envelope = serde_json::from_value(event.clone())
        .map_err(|e| RequestError::NoEnvelope(e.to_string()))?;
    let url = ResponseUrl::parse(&envelope.response_url, allow_insecure_loopback)?;
    Ok((envelope, url))
}

/// What the request asks, in `gild_core::approval_rule`'s terms.
pub fn read(event: Value) -> Result<Request, Refusal> {
    let request: CloudFormationCustomResourceRequest =
        serde_json::from_value(event).map_err(|e| Refusal::Shape(e.to_string()))?;
    Ok(match request {
        CloudFormationCustomResourceRequest::Create(create) => {
            Request::Create(ApprovalRule::from_properties(&create.resource_properties)?)
        }
        CloudFormationCustomResourceRequest::Update(update) => Request::Update {
            // Old properties that no longer read (written by an older
            // gild) only lose the old association's clean-up.
            old: ApprovalRule::from_properties(&update.old_resource_properties).ok(),
            new: ApprovalRule::from_properties(&update.resource_properties)?,
        },
        CloudFormationCustomResourceRequest::Delete(delete) => Request::Delete {
            physical_id: delete.physical_resource_id,
        },
        other => return Err(Refusal::Shape(format!("unknown request {other:?}"))),
    })
}
