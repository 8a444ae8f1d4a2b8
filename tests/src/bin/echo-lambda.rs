//! Fixture for the harness self-tests: a minimal Lambda built on the same
//! runtime crate as the real functions. It echoes its event, and a few event
//! fields trigger the failure modes the harness must report:
//! `"fail": true` returns an error, `"exit": true` kills the process
//! mid-invocation, `"sleep_ms": N` delays the answer.

use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[derive(Debug)]
struct EchoFailure(String);

impl From<EchoFailure> for Diagnostic {
    fn from(failure: EchoFailure) -> Diagnostic {
        Diagnostic {
            error_type: "EchoFailure".to_string(),
            error_message: failure.0,
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, EchoFailure> {
    let payload = event.payload;
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if payload.get("exit") == Some(&Value::Bool(true)) {
        eprintln!("echo-lambda: exiting on request");
        std::process::exit(3);
    }
    if payload.get("fail") == Some(&Value::Bool(true)) {
        return Err(EchoFailure(format!(
            "asked to fail (request {})",
            event.context.request_id
        )));
    }
    Ok(payload)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    eprintln!("echo-lambda: init");
    lambda_runtime::run(service_fn(handler)).await
}
