//! A small AWS Lambda Runtime API server, following the documented interface
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! - `GET /2018-06-01/runtime/invocation/next` long-polls for the next event and answers
//!   it with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` take the
//!   result;
//! - `POST /2018-06-01/runtime/init/error` takes a start-up failure.
//!
//! cargo-lambda's emulator does the same but takes about 16 minutes to build on two
//! cores, so the tests and benchmarks drive the function binaries through this one.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// What the function answered to one invocation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ok: bool,
    pub body: serde_json::Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    pending: VecDeque<(String, Bytes)>,
    answers: HashMap<String, Answer>,
    init_error: Option<String>,
    next_id: u64,
}

#[derive(Clone, Default)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    queued: Arc<Notify>,
    answered: Arc<Notify>,
}

/// A running Runtime API; dropped with the test's runtime.
#[derive(Clone)]
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Shared,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let shared = Shared::default();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RuntimeApi { addr, shared }
    }

    /// Queue an invocation; returns its request id.
    pub fn invoke(&self, event: serde_json::Value) -> String {
        self.invoke_raw(event.to_string().into_bytes())
    }

    /// Queue an invocation whose payload is `body` as given, JSON or not.
    pub fn invoke_raw(&self, body: impl Into<Bytes>) -> String {
        let mut inner = self.shared.inner.lock().unwrap();
        inner.next_id += 1;
        let id = format!("req-{:04}", inner.next_id);
        inner.pending.push_back((id.clone(), body.into()));
        drop(inner);
        self.shared.queued.notify_waiters();
        self.shared.queued.notify_one();
        id
    }

    /// Wait for the answer to `id`.
    pub async fn answer(&self, id: &str, timeout: Duration) -> Option<Answer> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.answered.notified();
            if let Some(a) = self.shared.inner.lock().unwrap().answers.get(id) {
                return Some(a.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn init_error(&self) -> Option<String> {
        self.shared.inner.lock().unwrap().init_error.clone()
    }
}

async fn next(State(s): State<Shared>) -> Response {
    loop {
        let notified = s.queued.notified();
        if let Some((id, event)) = s.inner.lock().unwrap().pending.pop_front() {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            let mut headers = HeaderMap::new();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_str(&deadline.to_string()).unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static(
                    "arn:aws:lambda:us-east-1:123456789012:function:scale0-test",
                ),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static(
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                ),
            );
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            return (StatusCode::OK, headers, event).into_response();
        }
        notified.await;
    }
}

fn record(s: &Shared, id: String, ok: bool, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    s.inner.lock().unwrap().answers.insert(
        id,
        Answer {
            ok,
            body,
            at: Instant::now(),
        },
    );
    s.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&s, id, true, body)
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&s, id, false, body)
}

async fn init_error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    s.inner.lock().unwrap().init_error = Some(String::from_utf8_lossy(&body).into());
    s.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// The environment Lambda gives a function, pointing at `api`.
pub fn lambda_env(api: &RuntimeApi, function: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
