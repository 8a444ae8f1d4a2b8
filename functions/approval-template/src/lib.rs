//! The approval-template Lambda: the CloudFormation custom resource
//! (`Custom::ApprovalRuleTemplate`) that keeps a CodeCommit approval-rule
//! template requiring gild's approval on the images repository. CloudFormation
//! has no resource for approval-rule templates.
//!
//! - `request`: the custom resource request (`aws_lambda_events`' type),
//!   read into `gild_core::approval_rule`'s terms; a malformed one still
//!   gets a FAILED answer when it says where to send it.
//! - `response`: the answer, PUT to the request's pre-signed URL with
//!   retries: CloudFormation waits for it (up to the resource's
//!   `ServiceTimeout`), so every request that names a URL gets one.
//! - `handler`: one invocation, the CodeCommit calls being
//!   `gild_flow::approval_rule`'s.

mod config;
mod error;
mod handler;
pub mod request;
pub mod response;

pub use config::Config;
pub use error::TemplateFnError;
pub use handler::{Handler, DEADLINE_MARGIN};
