//! What a request is (service, operation, protocol, read off the wire) and
//! the error a service answers in its own protocol.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::config::Fault;
use crate::new_uuid;

/// How the SDK talks to the service called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.0/1.1 (`X-Amz-Target`); the content type to answer with.
    AwsJson { content_type: String },
    /// EC2's dialect of the Query protocol.
    Ec2Query,
    /// The Query protocol (SNS, and SQS before it moved to JSON).
    AwsQuery,
    /// S3's REST-XML: errors are `<Error><Code>` documents.
    S3,
    /// Anything else (REST protocols): answered like AWS JSON.
    Other,
}

/// What a request is: service, operation, protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallId {
    pub service: String,
    pub operation: String,
    pub protocol: Protocol,
}

/// Reads service, operation and protocol off a request.
pub fn identify(headers: &HeaderMap, body: &[u8]) -> CallId {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let target = header("x-amz-target");
    let scope_service = header("authorization").and_then(signing_service);
    if let Some(target) = target {
        let (prefix, operation) = target.rsplit_once('.').unwrap_or(("", target));
        let content_type = header("content-type")
            .filter(|t| t.starts_with("application/x-amz-json"))
            .unwrap_or("application/x-amz-json-1.1")
            .to_owned();
        return CallId {
            service: scope_service.unwrap_or_else(|| service_of_target(prefix)),
            operation: operation.to_owned(),
            protocol: Protocol::AwsJson { content_type },
        };
    }
    let form =
        header("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let action = if form { form_action(body) } else { None };
    let service = scope_service.unwrap_or_else(|| "unknown".to_owned());
    if service == "s3" {
        return CallId {
            service,
            operation: "unknown".to_owned(),
            protocol: Protocol::S3,
        };
    }
    match action {
        Some(action) => CallId {
            protocol: if service == "ec2" {
                Protocol::Ec2Query
            } else {
                Protocol::AwsQuery
            },
            service,
            operation: action,
        },
        None => CallId {
            service,
            operation: "unknown".to_owned(),
            protocol: Protocol::Other,
        },
    }
}

/// `<service>` from `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request, …`.
fn signing_service(authorization: &str) -> Option<String> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let parts: Vec<&str> = scope.split('/').collect();
    match parts.as_slice() {
        [_, _, _, service, "aws4_request"] if !service.is_empty() => {
            Some((*service).to_ascii_lowercase())
        }
        _ => None,
    }
}

/// For unsigned requests: the service a JSON target prefix names.
fn service_of_target(prefix: &str) -> String {
    match prefix {
        p if p.starts_with("DynamoDB") => "dynamodb",
        p if p.starts_with("CodeBuild") => "codebuild",
        p if p.starts_with("CodeCommit") => "codecommit",
        p if p.starts_with("AmazonSSM") => "ssm",
        p if p.starts_with("AmazonSQS") => "sqs",
        p if p.starts_with("AWSEvents") => "events",
        _ => "unknown",
    }
    .to_owned()
}

fn form_action(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .filter(|action| !action.is_empty())
        .map(str::to_owned)
}

/// Names an S3 call by its method (the only object calls gild makes), so
/// the fault log says what was hit.
pub fn name_s3_call(call: &mut CallId, method: &http::Method) {
    if call.protocol == Protocol::S3 {
        call.operation = match *method {
            http::Method::GET => "GetObject",
            http::Method::PUT => "PutObject",
            http::Method::HEAD => "HeadObject",
            http::Method::DELETE => "DeleteObject",
            _ => "unknown",
        }
        .to_owned();
    }
}

/// The response AWS would send for an injected `Throttle` or `ServerError`.
pub fn error_response(call: &CallId, fault: Fault) -> Response<Full<Bytes>> {
    let request_id = new_uuid();
    let throttle = fault == Fault::Throttle;
    let (status, content_type, body, error_type) = match &call.protocol {
        Protocol::Ec2Query => {
            let (status, code, message) = if throttle {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "RequestLimitExceeded",
                    "Request limit exceeded.",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "An internal error has occurred",
                )
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            );
            (status, "text/xml;charset=UTF-8".to_owned(), body, None)
        }
        Protocol::AwsQuery => {
            let (status, kind, code, message) = if throttle {
                (
                    StatusCode::BAD_REQUEST,
                    "Sender",
                    "Throttling",
                    "Rate exceeded",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Receiver",
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            };
            let xmlns = match call.service.as_str() {
                "sns" => " xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"",
                _ => "",
            };
            let body = format!(
                "<ErrorResponse{xmlns}><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            );
            (status, "text/xml".to_owned(), body, None)
        }
        // S3 slows callers down with 503 SlowDown (S3 API reference,
        // "Error responses"), and fails with 500 InternalError.
        Protocol::S3 => {
            let (status, code, message) = if throttle {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate.",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            );
            (status, "application/xml".to_owned(), body, None)
        }
        Protocol::AwsJson { .. } | Protocol::Other => {
            let content_type = match &call.protocol {
                Protocol::AwsJson { content_type } => content_type.clone(),
                _ => "application/json".to_owned(),
            };
            let (status, code, message) = if throttle {
                (
                    StatusCode::BAD_REQUEST,
                    "ThrottlingException",
                    "Rate exceeded",
                )
            } else if call.service == "dynamodb" {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal server error",
                )
            } else {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            };
            let body = json!({"__type": code, "message": message}).to_string();
            (status, content_type, body, Some(code))
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("content-type", &content_type);
    set("x-amzn-requestid", &request_id);
    if let Some(code) = error_type {
        set("x-amzn-errortype", code);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20261111/us-east-1/{}/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";

    fn auth(service: &str) -> String {
        AUTH.replace("{}", service)
    }

    #[test]
    fn services_protocols_and_operations_are_read_off_the_request() {
        let call = identify(
            &headers(&[
                ("authorization", &auth("dynamodb")),
                ("x-amz-target", "DynamoDB_20120810.PutItem"),
                ("content-type", "application/x-amz-json-1.0"),
            ]),
            b"{}",
        );
        assert_eq!(call.service, "dynamodb");
        assert_eq!(call.operation, "PutItem");
        assert_eq!(
            call.protocol,
            Protocol::AwsJson {
                content_type: "application/x-amz-json-1.0".into()
            }
        );
        let call = identify(
            &headers(&[
                ("authorization", &auth("ec2")),
                ("content-type", "application/x-www-form-urlencoded"),
            ]),
            b"Action=DescribeImages&Version=2016-11-15",
        );
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("ec2", "DescribeImages")
        );
        assert_eq!(call.protocol, Protocol::Ec2Query);
        let call = identify(
            &headers(&[
                ("authorization", &auth("sns")),
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
            ]),
            b"Version=2010-03-31&Action=Publish&TopicArn=x",
        );
        assert_eq!(call.operation, "Publish");
        assert_eq!(call.protocol, Protocol::AwsQuery);
        // Unsigned JSON: the target names the service.
        let call = identify(
            &headers(&[("x-amz-target", "CodeBuild_20161006.StartBuild")]),
            b"{}",
        );
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("codebuild", "StartBuild")
        );
        let call = identify(&headers(&[]), b"");
        assert_eq!(call.protocol, Protocol::Other);
        let mut call = identify(&headers(&[("authorization", &auth("s3"))]), b"");
        name_s3_call(&mut call, &http::Method::PUT);
        assert_eq!(
            (
                call.service.as_str(),
                call.operation.as_str(),
                call.protocol
            ),
            ("s3", "PutObject", Protocol::S3)
        );
    }

    #[test]
    fn s3_is_slowed_down_as_s3_does() {
        let s3 = CallId {
            service: "s3".into(),
            operation: "GetObject".into(),
            protocol: Protocol::S3,
        };
        let r = error_response(&s3, Fault::Throttle);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "application/xml");
        assert_eq!(error_response(&s3, Fault::ServerError).status(), 500);
    }

    #[test]
    fn errors_speak_the_protocol_of_the_service_called() {
        let json = CallId {
            service: "ssm".into(),
            operation: "PutParameter".into(),
            protocol: Protocol::AwsJson {
                content_type: "application/x-amz-json-1.1".into(),
            },
        };
        let r = error_response(&json, Fault::Throttle);
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["x-amzn-errortype"], "ThrottlingException");
        assert_eq!(r.headers()["content-type"], "application/x-amz-json-1.1");
        let r = error_response(&json, Fault::ServerError);
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["x-amzn-errortype"], "InternalFailure");

        let ec2 = CallId {
            service: "ec2".into(),
            operation: "CreateTags".into(),
            protocol: Protocol::Ec2Query,
        };
        let r = error_response(&ec2, Fault::Throttle);
        assert_eq!(r.status(), 503);
        let body = body_text(r);
        assert!(body.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"));
        assert!(body.contains("<RequestID>"));

        let sns = CallId {
            service: "sns".into(),
            operation: "Publish".into(),
            protocol: Protocol::AwsQuery,
        };
        let r = error_response(&sns, Fault::Throttle);
        assert_eq!(r.status(), 400);
        let body = body_text(r);
        assert!(
            body.contains("<Type>Sender</Type><Code>Throttling</Code>"),
            "{body}"
        );
        assert!(body.contains("<RequestId>"));
        let r = error_response(&sns, Fault::ServerError);
        assert_eq!(r.status(), 500);
    }

    fn body_text(response: Response<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("body")
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
