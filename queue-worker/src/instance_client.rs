//! HTTP to instances: the dispatch POST and the readiness probe.
//!
//! A hyper client with keep-alive, `TCP_NODELAY` and a connect timeout, and nothing
//! else: no redirects (a model server that redirects a completion is misconfigured,
//! and a redirect layer parses every request's URL twice), no proxies, no TLS (as
//! before; endpoints are `http://` inside the VPC). Targets are [`Uri`]s parsed once per
//! instance endpoint, not per request. The timeout of a call is what is left of the
//! request's deadline.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long an idle keep-alive connection to an instance is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A keep-alive HTTP/1.1 client for instances.
#[derive(Debug, Clone)]
pub struct InstanceClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An instance's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub content_type: Option<String>,
}

impl Answer {
    /// The prompt and completion tokens an OpenAI-compatible JSON answer reports in its
    /// `usage` (`total_tokens`, or the sum of its parts); `None` for any other answer.
    pub fn tokens(&self) -> Option<u64> {
        #[derive(serde::Deserialize)]
        struct WithUsage {
            usage: Option<Usage>,
        }
        #[derive(serde::Deserialize)]
        struct Usage {
            total_tokens: Option<u64>,
            prompt_tokens: Option<u64>,
            completion_tokens: Option<u64>,
        }
        let json = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.contains("json"));
        if !(200..300).contains(&self.status) || !json {
            return None;
        }
        let u = serde_json::from_slice::<WithUsage>(&self.body)
            .ok()?
            .usage?;
        u.total_tokens
            .or(match (u.prompt_tokens, u.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0) + c.unwrap_or(0)),
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("timed out at the request's deadline")]
    Timeout,
    /// No connection, or it broke before a whole answer came back.
    #[error("{0}")]
    Connect(String),
}

impl InstanceClient {
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        InstanceClient { client }
    }

    /// POST `body` to `uri`, giving up after `timeout`.
    pub async fn post(
        &self,
        uri: &Uri,
        content_type: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let content_type = HeaderValue::from_str(content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| CallError::Connect(e.to_string()))?;
        self.send(request, timeout).await
    }

    /// GET `uri`; its status, or why there was none within `timeout`.
    pub async fn get(&self, uri: &Uri, timeout: Duration) -> Result<u16, CallError> {
        let request = Request::builder()
            .uri(uri.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|e| CallError::Connect(e.to_string()))?;
        Ok(self.send(request, timeout).await?.status)
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::Connect(error_chain(&e)))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Connect(error_chain(&e)))?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                content_type,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(CallError::Timeout))
    }
}

/// `endpoint` joined with `path` (`http://10.0.1.7:8000/` + `/v1/completions`), or why
/// it cannot be called: this client speaks plain HTTP only.
pub fn endpoint_uri(endpoint: &str, path: &str) -> Result<Uri, String> {
    let joined = format!("{}{}", endpoint.trim_end_matches('/'), path);
    let uri: Uri = joined
        .parse()
        .map_err(|e| format!("`{joined}` is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(uri),
        (Some("http"), None) => Err(format!("`{joined}` has no host")),
        _ => Err(format!(
            "`{joined}` is not http:// (instances are called over plain HTTP)"
        )),
    }
}

/// An error with its sources, e.g. "client error (Connect): tcp connect error:
/// Connection refused (os error 111)".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_their_path_and_must_be_plain_http() {
        let ok = endpoint_uri("http://10.0.1.7:8000/", "/v1/completions").unwrap();
        assert_eq!(ok.to_string(), "http://10.0.1.7:8000/v1/completions");
        let e = endpoint_uri("https://i-1.internal:8000", "/health").unwrap_err();
        assert!(e.contains("not http://"), "{e}");
        // Without a scheme: refused, naming what was tried.
        let e = endpoint_uri("10.0.1.7:8000", "/health").unwrap_err();
        assert!(e.contains("`10.0.1.7:8000/health`"), "{e}");
        let e = endpoint_uri("http://exa mple", "/health").unwrap_err();
        assert!(e.contains("not a URL"), "{e}");
    }

    #[test]
    fn tokens_come_from_the_usage_of_a_json_answer() {
        let answer = |status, content_type: &str, body: &str| Answer {
            status,
            body: Bytes::from(body.to_string()),
            content_type: Some(content_type.to_string()),
        };
        let openai = r#"{"id":"c1","choices":[{"text":"hi"}],"usage":{"prompt_tokens":4,"completion_tokens":10,"total_tokens":14}}"#;
        assert_eq!(answer(200, "application/json", openai).tokens(), Some(14));
        // Parts without a total are summed.
        let parts = r#"{"usage":{"prompt_tokens":4,"completion_tokens":6}}"#;
        assert_eq!(answer(200, "application/json", parts).tokens(), Some(10));
        // No usage, an error, another content type, or a body that is not JSON: none.
        assert_eq!(
            answer(200, "application/json", r#"{"text":"hi"}"#).tokens(),
            None
        );
        assert_eq!(answer(500, "application/json", openai).tokens(), None);
        assert_eq!(answer(200, "text/event-stream", openai).tokens(), None);
        assert_eq!(answer(200, "application/json", "not json").tokens(), None);
        assert_eq!(
            answer(200, "application/json", r#"{"usage":{}}"#).tokens(),
            None
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_naming_the_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = InstanceClient::new(Duration::from_secs(1));
        let uri: Uri = format!("http://127.0.0.1:{port}/v1/completions")
            .parse()
            .unwrap();
        match client.get(&uri, Duration::from_secs(5)).await {
            Err(CallError::Connect(why)) => assert!(why.contains("refused"), "{why}"),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_instance_that_never_answers_times_out() {
        // Accepts the connection (the backlog does) but never reads or answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri: Uri = format!("http://{}/v1/completions", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let client = InstanceClient::new(Duration::from_secs(1));
        let r = client
            .post(
                &uri,
                "application/json",
                Bytes::from_static(b"{}"),
                Duration::from_millis(200),
            )
            .await;
        assert!(matches!(r, Err(CallError::Timeout)), "{r:?}");
    }
}
