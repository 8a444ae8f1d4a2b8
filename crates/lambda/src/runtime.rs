//! The Lambda runtime loop every gild function runs, with one addition to
//! `lambda_runtime::run`: a payload that is not JSON gets a stable
//! `gild.event.NotJson` error instead of the runtime's own
//! `&lambda_runtime::deserializer::DeserializeError`.
//!
//! The runtime parses the payload before any handler sees it, so the check
//! sits one layer above that parse, where the raw bytes still are: a body
//! that is not JSON is replaced by a marker object, and the service below
//! answers the marker with the gild error without calling the handler.

use std::fmt::Debug;
use std::future::Future;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{layers::TracingLayer, Diagnostic, LambdaEvent, LambdaInvocation, Runtime};
use serde::Serialize;
use serde_json::Value;

/// The key of the marker that stands for a payload that was not JSON. It is
/// not a field of any event AWS sends, and a `.` keeps it out of serde's
/// derived field names.
const NOT_JSON: &str = "gild.not_json";

/// The stable `errorType` of a payload that is not JSON.
pub const NOT_JSON_ERROR: &str = "gild.event.NotJson";

/// Runs `handler` on every invocation until Lambda stops the process.
pub async fn run<F, Fut, R, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: Into<Diagnostic> + Debug,
    R: Serialize,
{
    let handler = &handler;
    let service = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
        let LambdaEvent { payload, context } = event;
        let call = match not_json(&payload) {
            None => Ok(handler(LambdaEvent::new(payload, context))),
            Some(problem) => Err(problem),
        };
        async move {
            match call {
                Ok(future) => future.await.map_err(Into::into),
                Err(problem) => Err(Diagnostic {
                    error_type: NOT_JSON_ERROR.to_owned(),
                    error_message: problem,
                }),
            }
        }
    });
    Runtime::new(service)
        .layer(TracingLayer::new())
        .layer(JsonGuard)
        .run()
        .await
}

/// The problem recorded by [`JsonGuard`], if `payload` is its marker.
fn not_json(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(NOT_JSON)?.as_str().map(str::to_owned)
}

/// Replaces a body that is not JSON by the marker (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct JsonGuard;

impl<S> Layer<S> for JsonGuard {
    type Service = JsonGuarded<S>;
    fn layer(&self, inner: S) -> Self::Service {
        JsonGuarded { inner }
    }
}

#[derive(Debug, Clone)]
pub struct JsonGuarded<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for JsonGuarded<S>
where
    S: Service<LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        guard(&mut invocation.body);
        self.inner.call(invocation)
    }
}

/// Swaps a body that is not JSON for the marker naming the parse error
/// (its position, never the payload itself, which may hold anything).
fn guard(body: &mut bytes::Bytes) {
    if let Err(err) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        let problem = format!(
            "the invocation payload ({} bytes) is not JSON: {err}",
            body.len()
        );
        let marker = serde_json::json!({ NOT_JSON: problem });
        *body = bytes::Bytes::from(marker.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_json_becomes_the_marker_and_json_passes() {
        let mut body = bytes::Bytes::from_static(b"not json {");
        guard(&mut body);
        let payload: Value = serde_json::from_slice(&body).expect("marker is JSON");
        let problem = not_json(&payload).expect("marker");
        assert!(
            problem.contains("10 bytes") && problem.contains("not JSON"),
            "{problem}"
        );
        assert!(!problem.contains("not json {"), "the payload is not echoed");

        let mut body = bytes::Bytes::from_static(br#"{"source": "aws.events"}"#);
        guard(&mut body);
        assert_eq!(&body[..], br#"{"source": "aws.events"}"#);
        assert_eq!(not_json(&serde_json::json!({"source": "x"})), None);
    }
}
