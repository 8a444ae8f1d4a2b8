//! Turns SDK errors into [`PortError`]s, keeping the service's error code.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use gild_core::ports::PortError;

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "SlowDown",
    "PriorRequestNotComplete",
];

const LIMITS: &[&str] = &["AccountLimitExceededException", "LimitExceededException"];

fn is_not_found(code: &str) -> bool {
    code == "ResourceNotFoundException"
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundException")
        || code.ends_with("DoesNotExistException")
        || code.ends_with(".Unavailable")
}

/// Classifies any SDK error of `service`'s `operation`.
pub fn classify<E>(
    service: &'static str,
    operation: &'static str,
    err: SdkError<E, Response>,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => PortError::Timeout { service, operation },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            PortError::Timeout { service, operation }
        }
        SdkError::DispatchFailure(_) => PortError::Transport {
            service,
            operation,
            message: DisplayErrorContext(&err).to_string(),
        },
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("Unknown").to_owned();
            let message = ctx.err().message().unwrap_or_default().to_owned();
            let status = ctx.raw().status().as_u16();
            if THROTTLING.contains(&code.as_str()) || status == 429 {
                PortError::Throttled {
                    service,
                    operation,
                    code,
                    message,
                }
            } else if LIMITS.contains(&code.as_str()) {
                PortError::LimitExceeded {
                    service,
                    operation,
                    code,
                    message,
                }
            } else if code == "ConditionalCheckFailedException" {
                PortError::ConditionFailed {
                    service,
                    operation,
                    message,
                }
            } else if is_not_found(&code) {
                PortError::NotFound {
                    service,
                    operation,
                    code,
                    message,
                }
            } else {
                PortError::Service {
                    service,
                    operation,
                    code,
                    message,
                    server_side: status >= 500,
                }
            }
        }
        _ => PortError::InvalidResponse {
            service,
            operation,
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}
