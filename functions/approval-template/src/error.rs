//! What an invocation reports to Lambda, each with a stable `errorType`.
//! A request CloudFormation can be answered about is answered (FAILED when
//! the work failed) and the invocation succeeds; these are the cases where
//! no answer reached CloudFormation, so Lambda's retry is worth having.

use gild_lambda::Diagnostic;

use crate::request::RequestError;
use crate::response::ResponseError;

#[derive(Debug, thiserror::Error)]
pub enum TemplateFnError {
    /// No `ResponseURL` (or not one gild sends to): nobody to answer.
    #[error(transparent)]
    BadEvent(#[from] RequestError),
    #[error("the answer to CloudFormation request {request_id} was not delivered: {error}")]
    ResponseNotSent {
        request_id: String,
        error: ResponseError,
    },
}

impl TemplateFnError {
    pub fn name(&self) -> &'static str {
        match self {
            TemplateFnError::BadEvent(_) => "BadEvent",
            TemplateFnError::ResponseNotSent { .. } => "ResponseNotSent",
        }
    }
}

impl From<TemplateFnError> for Diagnostic {
    fn from(error: TemplateFnError) -> Diagnostic {
        gild_lambda::diagnostic(error.name(), &error)
    }
}
