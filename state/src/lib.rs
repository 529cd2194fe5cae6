//! # scale0-state
//!
//! The Redis state store shared by the control-plane functions and the queue worker.
//! Every key of a deployment starts with `scale0:{<deployment>}:` — the braces are a
//! Redis Cluster hash tag, so one deployment's keys share a slot and a Lua script
//! can touch them all atomically.
//!
//! | module | keys | written by | read by |
//! | --- | --- | --- | --- |
//! | [`registry`] | `instances` (hash id → record), `terminated` (zset id → ms) | functions, worker (failures, ready) | both |
//! | [`lifecycle`] | `lifecycle` (hash id → pending Auto Scaling lifecycle action) | lifecycle handler | scaler's applier |
//! | [`slots`] | `inflight:<id>` (zset of leases) | worker | both |
//! | [`capacity`] | `generation`, `memory`, `desired` | scaler (fenced commit) | scaler, status |
//! | [`decisions`] | `decisions` (capped stream: decision + observed summary) | scaler | `scale0 status`, `scale0 explain` |
//! | [`dedupe`] | `event:<id>` | both | both |
//! | [`idempotency`] | `claim:<message id>`, `done:<message id>` (reply, answered addresses) | worker | worker |
//! | [`counters`] | `arrivals`, `tokens`, `last-arrival`, `held`, `service-ms`, `latency-ms`, `boots:<pool>` | worker, lifecycle | scaler |
//! | [`signals`] | `cap`, `unavailable`, `gpu-utilization`, `activation` | scaler, worker | worker, scaler |
//! | [`worker`] | `signal:<kind>` (and batched `service-ms`, `latency-ms`) | worker | worker, scaler |
//! | [`spot`] | `interruptions:<pool>` (zset instance → ms of its Spot interruption warning) | lifecycle handler (Spot events) | scaler (ledger snapshot), `scale0 status` |
//! | [`ledger`] | `scale0:{ledger}:*` — spend buckets, accrual marks, commitments, AWS Budgets reports | scaler, budget handler | scaler, `scale0 status` |
//!
//! [`Store::observe`] assembles a [`scale0_core::policy::Observation`] from all of them.
//!
//! Connections go through redis-rs's `ConnectionManager`, which reconnects with
//! backoff; `rediss://` URLs use TLS (rustls, verified against the public roots and
//! `SCALE0_CA_BUNDLE`: `scale0_connect`) and `redis://:password@host` or
//! `redis://user:password@host` authenticate. URLs are redacted before they reach an
//! error or a log.

pub mod capacity;
pub mod counters;
pub mod decisions;
pub mod dedupe;
pub mod idempotency;
pub mod keys;
pub mod ledger;
pub mod lifecycle;
pub mod registry;
pub mod signals;
pub mod slots;
pub mod spot;
pub mod status;
pub mod worker;

mod observe;

pub use observe::HELD_STALE_AFTER;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Errors from the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Redis could not be reached or answered with an error. Retry.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored value does not parse: a bug or a foreign writer. Do not retry.
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The URL or the CA bundle is unusable. Do not retry.
    #[error("redis: {0}")]
    Setup(scale0_connect::ConnectError),
    /// Redis could not be reached, or its certificate did not verify: names the
    /// endpoint (redacted). Retry.
    #[error("redis: {0}")]
    Connect(scale0_connect::ConnectError),
}

impl StateError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Redis(_) | StateError::Connect(_))
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl ToString) -> Self {
        StateError::Corrupt {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

pub use scale0_connect::redact_url;

/// A handle on the store. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    /// The hash tag of the spend ledger's keys ([`ledger`]).
    ledger: std::sync::Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Connect, failing within `timeout` if Redis does not answer.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with_timeout(url, Duration::from_secs(5)).await
    }

    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Store> {
        let (client, trust) = scale0_connect::redis_client(url).map_err(StateError::Setup)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let connected =
            tokio::time::timeout(timeout, client.get_connection_manager_with_config(config)).await;
        let conn = match connected {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StateError::Connect(scale0_connect::endpoint_error(
                    url, e, &trust,
                )));
            }
            Err(_) => {
                let e = format!("no answer within {timeout:?}");
                return Err(StateError::Connect(scale0_connect::endpoint_error(
                    url, e, &trust,
                )));
            }
        };
        Ok(Store {
            conn,
            ledger: "ledger".into(),
        })
    }

    /// The same store with the spend ledger under its own namespace: for tests that
    /// share a Redis and must not see each other's totals.
    pub fn with_ledger_namespace(mut self, namespace: &str) -> Store {
        self.ledger = namespace.into();
        self
    }

    pub(crate) fn ledger_namespace(&self) -> &str {
        &self.ledger
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Round trip to Redis, for health checks.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"serialize_error\":\"{e}\"}}"))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(key: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| StateError::corrupt(key, e))
}
