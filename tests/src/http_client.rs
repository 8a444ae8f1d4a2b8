//! A minimal HTTP/1.1 client for talking to moto (health checks, reset),
//! and the forwarding half of the harness's proxies (CodeBuild, faults).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
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

/// Headers that describe one connection rather than the message (RFC 9110
/// §7.6.1), and the ones each hop computes afresh: never copied across.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Copies a message's headers to the next hop's message.
pub(crate) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The emulator a proxy forwards to.
pub(crate) struct Upstream {
    base: String,
    /// SigV4 signed the proxy's Host, but no emulator here checks
    /// signatures; moto does route by Host, so it must see its own.
    host: HeaderValue,
}

impl Upstream {
    /// `endpoint` is `http://host:port`.
    pub(crate) fn parse(endpoint: &str) -> Result<Upstream, HarnessError> {
        let base = endpoint.trim_end_matches('/').to_owned();
        let invalid = || HarnessError::InvalidInput {
            message: format!("`{endpoint}` is not an http://host:port endpoint"),
        };
        let uri: Uri = base.parse().map_err(|_| invalid())?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid());
        }
        let authority = uri.authority().ok_or_else(invalid)?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| invalid())?;
        Ok(Upstream { base, host })
    }

    /// Sends the request a proxy received on to the emulator.
    pub(crate) async fn forward(
        &self,
        client: &HttpClient,
        parts: &http::request::Parts,
        body: Bytes,
        timeout: Duration,
    ) -> Result<HttpResponse, HarnessError> {
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("{}{path}", self.base);
        let mut request = build_request(parts.method.clone(), &url, body)?;
        copy_headers(&parts.headers, request.headers_mut());
        request.headers_mut().insert("host", self.host.clone());
        send(client, request, timeout).await
    }
}
