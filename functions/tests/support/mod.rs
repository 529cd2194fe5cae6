//! Shared by the functions' integration tests: services (Redis at `SCALE0_REDIS_URL`,
//! RabbitMQ at `SCALE0_AMQP_URL`; `make test` starts both), unique deployment names so
//! tests run in parallel without flushing anything, fixtures and small builders.
#![allow(dead_code)]

pub mod runtime_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use scale0_core::config::Config;
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_functions::broker::{FixedQueueDepth, QueueDepth};
use scale0_functions::provider::Provider;
use scale0_functions::{Clock, Deps};
use scale0_state::Store;
use serde_json::Value;

pub fn redis_url() -> String {
    std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn amqp_url() -> String {
    std::env::var("SCALE0_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub async fn store() -> Store {
    let url = redis_url();
    Store::connect_with_timeout(&url, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| {
            panic!("these tests need Redis at {url} (run infra/local/services.sh): {e}")
        })
}

pub async fn amqp() -> lapin::Connection {
    let url = amqp_url();
    let connect = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
    tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            panic!("these tests need RabbitMQ at {url} (run infra/local/services.sh): {e}")
        })
}

/// A deployment name no other test (or earlier run) uses.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_subsec_nanos() % 100_000;
    format!(
        "t-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// A fixture from the workspace's `tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One deployment, one pool `a10g` (8 slots, max 10, boot 90 s), plus `extra` TOML
/// appended inside the deployment (policy, schedules...).
pub fn one_pool(name: &str, extra: &str) -> String {
    format!(
        r#"
        [[deployments]]
        name = "{name}"
        [[deployments.pools]]
        name = "a10g"
        max_instances = 10
        slots = 8
        price_per_hour_usd = 1.0
        boot_time = "90s"
        {extra}
        "#
    )
}

/// Pools `spot` (cheaper per slot, allocated first) and `ondemand`.
pub fn two_pools(name: &str) -> String {
    format!(
        r#"
        [[deployments]]
        name = "{name}"
        [[deployments.pools]]
        name = "spot"
        max_instances = 5
        slots = 8
        price_per_hour_usd = 0.5
        boot_time = "90s"
        [[deployments.pools]]
        name = "ondemand"
        max_instances = 5
        slots = 8
        price_per_hour_usd = 1.5
        boot_time = "90s"
        "#
    )
}

pub fn config(toml: &str) -> Config {
    Config::load(toml).unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
}

pub async fn deps(config: Config, provider: Arc<dyn Provider>, queue: Arc<dyn QueueDepth>) -> Deps {
    Deps::new(config, store().await, provider, queue).with_clock(Clock::fixed(t0()))
}

/// A queue-depth stand-in with `depth` messages in the deployment's queue.
pub fn depth(deployment: &str, depth: u64) -> Arc<FixedQueueDepth> {
    let q = FixedQueueDepth::new();
    q.set(&scale0_core::contract::request_queue(deployment), depth);
    Arc::new(q)
}

pub fn record(d: &str, id: &str, pool: &str, state: InstanceState) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        deployment: d.into(),
        pool: pool.into(),
        state,
        endpoint: None,
        launched_at: t0() - chrono::TimeDelta::seconds(120),
        ready_at: None,
        draining_since: None,
        failures: 0,
        reclaim_at: None,
    }
}

/// An Amazon MQ event (the documented fixture) carrying `bodies` as base64 messages.
pub fn amazon_mq(bodies: &[Vec<u8>]) -> Value {
    use base64::Engine;
    let mut event = fixture("amazon-mq-rabbitmq-event.json");
    let template = event["rmqMessagesByQueue"]["test::/"][0].clone();
    let messages: Vec<Value> = bodies
        .iter()
        .map(|b| {
            let mut m = template.clone();
            m["data"] = Value::String(base64::engine::general_purpose::STANDARD.encode(b));
            m["basicProperties"]["contentType"] = Value::String("application/json".into());
            m
        })
        .collect();
    event["rmqMessagesByQueue"] = serde_json::json!({ "scale0.control::/": messages });
    event
}

/// A control event's JSON body.
pub fn control(id: &str, deployment: &str, kind: Value) -> Vec<u8> {
    let mut v = serde_json::json!({ "id": id, "deployment": deployment, "at": t0() });
    for (k, x) in kind.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::to_vec(&v).unwrap()
}

/// The tick fixture with its own event id.
pub fn tick(id: &str) -> Value {
    let mut e = fixture("eventbridge-scheduled-event.json");
    e["id"] = Value::String(id.into());
    e
}

pub fn live(records: &[InstanceRecord]) -> Vec<&InstanceRecord> {
    records
        .iter()
        .filter(|r| r.state != InstanceState::Terminated)
        .collect()
}
