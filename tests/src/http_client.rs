//! A minimal HTTP/1.1 client for talking to moto (health checks, reset,
//! and the CodeBuild proxy's upstream requests).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::HarnessError;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

pub(crate) fn new_client() -> HttpClient {
    // No idle pooling: moto's werkzeug server may close kept-alive
    // connections at any time, and a reused dead connection would surface as
    // a spurious failure in the middle of a test. Tests are not throughput
    // bound, so a fresh connection per request costs nothing noticeable.
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

pub(crate) async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<HttpResponse, HarnessError> {
    let url = request.uri().to_string();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| http_error(&url, &e))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| http_error(&url, &e))?
            .to_bytes();
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| HarnessError::Http {
            url: url.clone(),
            message: format!("no answer within {timeout:?}"),
        })?
}

/// Includes the error's source chain, because hyper's top-level messages
/// ("client error (Connect)") hide the useful part.
fn http_error(url: &str, error: &dyn std::error::Error) -> HarnessError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    HarnessError::Http {
        url: url.to_string(),
        message,
    }
}

pub(crate) fn build_request(
    method: http::Method,
    url: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, HarnessError> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .map_err(|e| HarnessError::Http {
            url: url.to_string(),
            message: format!("invalid request: {e}"),
        })
}
