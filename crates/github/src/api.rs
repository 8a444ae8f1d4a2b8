//! What every call to GitHub's REST API shares: the HTTP client, the token
//! (read through the secrets port on each call, so a rotation is picked up
//! when the port's cache lets it go), the URL, and what an answer's status
//! means as a [`PortError`].

use std::time::Duration;

use gild_core::ports::{PortError, PortResult, SecretStage, Secrets};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

pub(crate) const SERVICE: &str = "GitHub";

/// The REST API version gild is written against.
const API_VERSION: &str = "2022-11-28";

/// The most a listing is paged through (100 items a page): a listing
/// that goes on past it is an answer gild does not understand, not a loop.
const MAX_PAGES: u32 = 100;

pub(crate) struct Api<S> {
    http: Client,
    /// The API root (`https://api.github.com` or a GitHub Enterprise
    /// `/api/v3`), without a trailing slash.
    root: String,
    secrets: S,
    token_secret: String,
}

impl<S: Secrets> Api<S> {
    pub(crate) fn new(root: String, secrets: S, token_secret: String) -> PortResult<Self> {
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("gild")
            .build()
            .map_err(|e| PortError::Transport {
                service: SERVICE,
                operation: "client",
                message: e.to_string(),
            })?;
        Ok(Api {
            http,
            root: root.trim_end_matches('/').to_owned(),
            secrets,
            token_secret,
        })
    }

    /// `<root>/<path>`, `path` taken as it is: for callers whose path is
    /// made of a configured repository and commit ids.
    pub(crate) fn raw_url(&self, path: &str) -> String {
        format!("{}/{path}", self.root)
    }

    /// `<root>/<segments…>`, each segment percent-encoded (a `/`, `?` or
    /// `#` in one stays inside it). `.`, `..` and empty segments are
    /// refused: the url crate would drop them, and the path would no
    /// longer be the one asked for.
    pub(crate) fn url(&self, operation: &'static str, segments: &[&str]) -> PortResult<Url> {
        let invalid = |message: String| PortError::Service {
            service: SERVICE,
            operation,
            code: "InvalidRequest".into(),
            message,
            server_side: false,
        };
        if let Some(bad) = segments
            .iter()
            .find(|s| s.is_empty() || **s == "." || **s == "..")
        {
            return Err(invalid(format!("`{bad}` cannot be a path segment")));
        }
        let mut url = Url::parse(&self.root)
            .map_err(|e| invalid(format!("API root `{}`: {e}", self.root)))?;
        url.path_segments_mut()
            .map_err(|()| invalid(format!("API root `{}` cannot have a path", self.root)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A request bearing the token and the API version.
    pub(crate) async fn request(
        &self,
        operation: &'static str,
        method: Method,
        url: impl reqwest::IntoUrl,
    ) -> PortResult<RequestBuilder> {
        let token = self
            .secrets
            .get(&self.token_secret, SecretStage::Current)
            .await?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| PortError::NotFound {
                service: SERVICE,
                operation,
                code: "NoToken".into(),
                message: format!("secret {} holds no GitHub token", self.token_secret),
            })?;
        Ok(self
            .http
            .request(method, url)
            .bearer_auth(token.trim())
            .header("X-GitHub-Api-Version", API_VERSION))
    }

    /// Sends a request; anything but a 2xx answer is an error.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> PortResult<Response> {
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                PortError::Timeout {
                    service: SERVICE,
                    operation,
                }
            } else {
                PortError::Transport {
                    service: SERVICE,
                    operation,
                    message: e.to_string(),
                }
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let throttled = rate_limited(status, response.headers());
        let message = response.text().await.unwrap_or_default();
        Err(error(operation, status, throttled, &message))
    }

    /// A JSON request (`Accept: application/vnd.github+json`) and its answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> PortResult<(T, HeaderMap)> {
        let request = request.header("Accept", "application/vnd.github+json");
        let response = self.send(operation, request).await?;
        let headers = response.headers().clone();
        let value = response
            .json()
            .await
            .map_err(|e| PortError::InvalidResponse {
                service: SERVICE,
                operation,
                message: e.to_string(),
            })?;
        Ok((value, headers))
    }

    /// Every item of a paginated listing at `url`, 100 a page, following
    /// the `Link` header's `rel="next"` while it is there. The next page
    /// is asked for by number on gild's own URL, never by the link's URL,
    /// so an answer cannot send the token elsewhere.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: Url,
    ) -> PortResult<Vec<T>> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = url.clone();
            url.query_pairs_mut()
                .append_pair("per_page", "100")
                .append_pair("page", &page.to_string());
            let request = self.request(operation, Method::GET, url).await?;
            let (batch, headers): (Vec<T>, _) = self.call(operation, request).await?;
            items.extend(batch);
            if !has_next(&headers) {
                return Ok(items);
            }
        }
        Err(PortError::InvalidResponse {
            service: SERVICE,
            operation,
            message: format!("the listing goes on past {MAX_PAGES} pages"),
        })
    }
}

/// GitHub's rate limits: 429, or 403 with no requests left
/// (`x-ratelimit-remaining: 0`, the primary limit) or a `retry-after`
/// (the secondary limits). Any other 403 is a refusal.
fn rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v == "0")
                || headers.contains_key("retry-after")))
}

/// The error an answer's status means, keeping (the start of) GitHub's
/// message: a 422 says which field it refused.
fn error(operation: &'static str, status: StatusCode, throttled: bool, body: &str) -> PortError {
    let message: String = body.chars().take(300).collect();
    let code = status.as_u16().to_string();
    if throttled {
        PortError::Throttled {
            service: SERVICE,
            operation,
            code,
            message,
        }
    } else if status == StatusCode::NOT_FOUND {
        PortError::NotFound {
            service: SERVICE,
            operation,
            code,
            message,
        }
    } else {
        PortError::Service {
            service: SERVICE,
            operation,
            code,
            message,
            server_side: status.is_server_error(),
        }
    }
}

/// Whether a `Link` header names a next page (RFC 8288: `<url>; rel="next"`,
/// links separated by commas, `rel` possibly listing several relations).
pub(crate) fn has_next(headers: &HeaderMap) -> bool {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|link| {
            link.split(';').skip(1).any(|param| {
                let Some((key, value)) = param.split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn next_links_are_found_among_others() {
        let link = r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#;
        assert!(has_next(&headers(&[("link", link)])));
        let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert!(!has_next(&headers(&[("link", last)])));
        assert!(!has_next(&headers(&[])));
        assert!(has_next(&headers(&[("link", "<u>; rel=\"prev next\"")])));
    }

    #[test]
    fn rate_limits_are_throttling_and_other_refusals_are_not() {
        let none = headers(&[]);
        assert!(rate_limited(StatusCode::TOO_MANY_REQUESTS, &none));
        assert!(rate_limited(
            StatusCode::FORBIDDEN,
            &headers(&[("x-ratelimit-remaining", "0")])
        ));
        assert!(rate_limited(
            StatusCode::FORBIDDEN,
            &headers(&[("retry-after", "60")])
        ));
        assert!(!rate_limited(StatusCode::FORBIDDEN, &none));
        assert!(!rate_limited(
            StatusCode::FORBIDDEN,
            &headers(&[("x-ratelimit-remaining", "12")])
        ));
    }

    #[test]
    fn statuses_map_to_port_errors() {
        let e = error(
            "Op",
            StatusCode::UNPROCESSABLE_ENTITY,
            false,
            "{\"message\":\"Validation Failed\"}",
        );
        assert!(
            matches!(&e, PortError::Service { code, message, server_side: false, .. } if code == "422" && message.contains("Validation Failed")),
            "{e:?}"
        );
        assert!(!e.is_transient());
        assert!(error("Op", StatusCode::BAD_GATEWAY, false, "").is_transient());
        assert!(matches!(
            error("Op", StatusCode::NOT_FOUND, false, ""),
            PortError::NotFound { .. }
        ));
        assert!(matches!(
            error("Op", StatusCode::FORBIDDEN, true, ""),
            PortError::Throttled { .. }
        ));
    }

    struct NoSecrets;

    impl Secrets for NoSecrets {
        async fn get(&self, _: &str, _: SecretStage) -> PortResult<Option<String>> {
            Ok(None)
        }
    }

    #[test]
    fn segments_are_encoded_and_dot_segments_refused() {
        let api = Api::new(
            "https://ghe.example.com/api/v3/".into(),
            NoSecrets,
            "t".into(),
        )
        .expect("client");
        let url = api
            .url("Op", &["repos", "acme", "a?b#c/d", "issues", "7"])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://ghe.example.com/api/v3/repos/acme/a%3Fb%23c%2Fd/issues/7"
        );
        for bad in ["..", ".", ""] {
            assert!(api.url("Op", &["repos", bad, "x"]).is_err(), "{bad:?}");
        }
    }
}
