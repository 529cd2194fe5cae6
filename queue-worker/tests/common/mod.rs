//! Shared test harness: real RabbitMQ (`SCALE0_AMQP_URL`), real Redis
//! (`SCALE0_REDIS_URL`), real `scale0-instance` processes, and workers run in-process
//! (or as the built binary). Every test uses its own deployment name, so tests run in
//! parallel; each removes its queue and Redis keys when done.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use scale0_core::config::Config;
use scale0_core::contract::{InstanceRecord, InstanceState, REQUESTS_EXCHANGE, headers};
use scale0_queue_worker::{Worker, WorkerSettings};
use scale0_state::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn amqp_url() -> String {
    std::env::var("SCALE0_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn store() -> Store {
    let url = redis_url();
    Store::connect_with_timeout(&url, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("Redis is needed at {url} (run infra/local/services.sh): {e}"))
}

pub async fn amqp(url: &str) -> Connection {
    match tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "RabbitMQ is needed at {} (run infra/local/services.sh): {e}",
            scale0_state::redact_url(url)
        ),
        Err(_) => panic!(
            "RabbitMQ did not answer at {} within 5 s",
            scale0_state::redact_url(url)
        ),
    }
}

/// A config with one deployment `name`; `extra` lines go into the deployment table
/// before the pool.
pub fn config(name: &str, extra: &str, pool: &str) -> Arc<Config> {
    let text = format!(
        r#"
        [[deployments]]
        name = "{name}"
        expected_service_time = "100ms"
        {extra}
        [[deployments.pools]]
        name = "gpu"
        max_instances = 4
        price_per_hour_usd = 1.0
        {pool}
        "#
    );
    Arc::new(Config::load(&text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

/// A running `scale0-instance`.
pub struct Instance {
    pub child: Child,
    pub url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The `scale0-instance` binary next to this test's, built if missing.
fn instance_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("scale0-instance");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "scale0-instance"])
            .status()
            .expect("run cargo build -p scale0-instance");
        assert!(status.success(), "building scale0-instance failed");
    });
    assert!(bin.exists(), "no scale0-instance at {}", bin.display());
    bin
}

pub fn start_instance(args: &[&str]) -> Instance {
    let mut child = Command::new(instance_binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scale0-instance");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Instance { child, url }
}

/// Register an instance as the provider would: booting, with its endpoint.
pub async fn register(store: &Store, d: &str, id: &str, url: &str, state: InstanceState) {
    store
        .put_instance(&InstanceRecord {
            id: id.into(),
            deployment: d.into(),
            pool: "gpu".into(),
            state,
            endpoint: Some(url.into()),
            launched_at: Utc::now(),
            ready_at: None,
            draining_since: None,
            failures: 0,
            reclaim_at: None,
        })
        .await
        .unwrap();
}

/// A worker running in this process.
pub struct TestWorker {
    pub metrics_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), scale0_queue_worker::WorkerError>>>,
}

impl TestWorker {
    pub async fn start(config: Arc<Config>, tweak: impl FnOnce(&mut WorkerSettings)) -> Self {
        Self::start_at(&amqp_url(), config, tweak).await
    }

    pub async fn start_at(
        url: &str,
        config: Arc<Config>,
        tweak: impl FnOnce(&mut WorkerSettings),
    ) -> Self {
        Self::start_with(url, store().await, config, tweak).await
    }

    pub async fn start_with(
        url: &str,
        store: Store,
        config: Arc<Config>,
        tweak: impl FnOnce(&mut WorkerSettings),
    ) -> Self {
        let mut settings = WorkerSettings::new(url);
        settings.worker_id = unique("worker");
        settings.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        settings.drain_timeout = Duration::from_secs(5);
        settings.reconnect_min = Duration::from_millis(50);
        settings.reconnect_max = Duration::from_millis(500);
        tweak(&mut settings);
        let worker = Worker::start(settings, config, store).await.unwrap();
        let metrics_url = format!("http://{}", worker.metrics_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        let w = TestWorker {
            metrics_url,
            stop: Some(tx),
            task: Some(task),
        };
        w.wait_healthy().await;
        w
    }

    pub async fn wait_healthy(&self) {
        wait_healthy(&self.metrics_url).await;
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Shut down (as on SIGTERM) and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("the worker stops within 20 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

pub async fn wait_healthy(metrics_url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{metrics_url}/health")).send().await
            && r.status().as_u16() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("worker at {metrics_url} never became healthy");
}

/// The value of one sample line of `/metrics`, 0 when absent.
pub fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A producer with its own reply queue.
pub struct Client {
    pub conn: Connection,
    pub channel: Channel,
    pub replies: String,
}

/// One reply as a producer sees it.
#[derive(Debug, Clone)]
pub struct ReplyMsg {
    pub correlation_id: String,
    pub status: String,
    pub headers: BTreeMap<String, AMQPValue>,
    pub body: Vec<u8>,
    pub at: tokio::time::Instant,
}

impl ReplyMsg {
    pub fn header_str(&self, name: &str) -> Option<String> {
        match self.headers.get(name)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            other => Some(format!("{other:?}")),
        }
    }

    pub fn header_int(&self, name: &str) -> Option<i64> {
        match self.headers.get(name)? {
            AMQPValue::LongLongInt(v) => Some(*v),
            AMQPValue::LongInt(v) => Some(i64::from(*v)),
            _ => None,
        }
    }

    pub fn header_bool(&self, name: &str) -> Option<bool> {
        match self.headers.get(name)? {
            AMQPValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl Client {
    /// A client whose reply queue survives its connection (durable, not exclusive),
    /// for tests that close connections; delete it with [`Client::cleanup`].
    pub async fn new(url: &str, replies: &str) -> Client {
        let conn = amqp(url).await;
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        channel
            .queue_declare(
                replies.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Client {
            conn,
            channel,
            replies: replies.into(),
        }
    }

    /// Publish a request to `deployment` (confirmed).
    pub async fn request(
        &self,
        deployment: &str,
        correlation_id: &str,
        body: &[u8],
        tweak: impl FnOnce(BasicProperties) -> BasicProperties,
    ) {
        let props = tweak(
            BasicProperties::default()
                .with_reply_to(self.replies.as_str().into())
                .with_correlation_id(correlation_id.into())
                .with_content_type("application/json".into()),
        );
        self.channel
            .basic_publish(
                REQUESTS_EXCHANGE.into(),
                deployment.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Read replies until `n` arrived or `timeout` passed.
    pub async fn replies(&self, n: usize, timeout: Duration) -> Vec<ReplyMsg> {
        collect_replies(&self.channel, &self.replies, n, timeout).await
    }

    pub async fn cleanup(&self, queues: &[&str]) {
        for q in queues.iter().copied().chain([self.replies.as_str()]) {
            let _ = self
                .channel
                .queue_delete(q.into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

pub async fn collect_replies(
    channel: &Channel,
    queue: &str,
    n: usize,
    timeout: Duration,
) -> Vec<ReplyMsg> {
    let tag = unique("reader");
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n {
        let next = tokio::time::timeout_at(deadline, consumer.next()).await;
        let Ok(Some(Ok(d))) = next else { break };
        let headers: BTreeMap<String, AMQPValue> = d
            .properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let status = match headers.get(headers::STATUS) {
            Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            _ => String::new(),
        };
        out.push(ReplyMsg {
            correlation_id: d
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            status,
            headers,
            body: d.data.clone(),
            at: tokio::time::Instant::now(),
        });
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = channel
        .basic_cancel(tag.as_str().into(), Default::default())
        .await;
    out
}

/// A private queue bound to an exchange, to observe control events or dead letters.
pub async fn tap(channel: &Channel, exchange: &str, routing_key: &str) -> String {
    let q = channel
        .queue_declare(
            "".into(),
            // Exclusive: gone with the connection. Not auto-delete: it outlives the
            // consumers a test starts and cancels on it.
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            q.name().clone(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.name().to_string()
}

/// Declare the worker's topology for `config` (as a worker does at start), so a test
/// can publish before any worker runs.
pub async fn declare(config: &Config) {
    let conn = amqp(&amqp_url()).await;
    let ch = conn.create_channel().await.unwrap();
    let specs: Vec<_> = config.deployments.iter().collect();
    scale0_queue_worker::broker::declare_topology(&ch, &config.broker, &specs)
        .await
        .unwrap();
    let _ = conn.close(200, "ok".into()).await;
}

/// Remove a deployment's request queue and Redis keys.
pub async fn cleanup(d: &str) {
    let conn = amqp(&amqp_url()).await;
    let ch = conn.create_channel().await.unwrap();
    let _ = ch
        .queue_delete(
            scale0_core::contract::request_queue(d).as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await;
    let _ = conn.close(200, "ok".into()).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("scale0:{{{d}}}:*"))
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

/// A request body for the stand-in instance.
pub fn completion(max_tokens: u32) -> Vec<u8> {
    format!(r#"{{"prompt":"hello there","max_tokens":{max_tokens}}}"#).into_bytes()
}

/// Now + `ms`, as an `x-scale0-deadline` header table.
pub fn deadline_in(ms: i64) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        headers::DEADLINE.into(),
        AMQPValue::LongLongInt(Utc::now().timestamp_millis() + ms),
    );
    t
}

/// Run `rabbitmqctl` (it needs root on the broker's host), failing the test with its
/// output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("rabbitmqctl is needed for this test (root, on the broker's host): {e}")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A vhost for one test, deleted on drop.
pub struct Vhost(pub String);

impl Vhost {
    pub fn new() -> Vhost {
        let name = unique("vhost");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Vhost(name)
    }

    pub fn url(&self) -> String {
        let base = amqp_url();
        let root = base.rsplit_once('/').map_or(base.as_str(), |(r, _)| r);
        format!("{root}/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .output();
    }
}
