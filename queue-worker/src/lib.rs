//! # scale0-queue-worker
//!
//! The long-running service between producers and GPU instances. It consumes each
//! deployment's RabbitMQ queue, holds requests while instances boot from zero (and
//! tells the control plane at once with an `activation` event), dispatches them to
//! ready instances over HTTP within a slot limit shared by every worker through Redis,
//! sends each producer exactly one reply, and sheds explicitly, lowest priority first,
//! when capacity cannot come in time. Contracts: `DESIGN.md` ("Contracts") and
//! `scale0_core::contract`.
//!
//! ```text
//!            ┌────────────── supervisor (connection, topology, reconnect) ─────────┐
//!  RabbitMQ ─┤ consume ──▶ deployment actor ──▶ attempt task ──HTTP──▶ instance     │
//!            │  (parse,      (shell around        (lease, POST,                     │
//!            │   dead-letter) core::worker's       retry) ──▶ finish task ──▶ reply │
//!            │                rules)                         (confirm, ack, done)   │
//!            └──── watcher (registry, probes) · reporter (Redis counters) ─────────┘
//! ```
//!
//! Modules:
//! - [`settings`]: per-process settings ([`WorkerSettings`]).
//! - [`broker`]: topology, the live connection, publishing with confirms.
//! - [`consume`]: consumers; reading deliveries; dead letters for bad input.
//! - [`commit`]: replies and acks committed together, one transaction per batch.
//! - [`request`]: a delivery → [`request::Request`] (deadline, priority) or why not.
//! - [`instance_client`]: HTTP to instances (dispatch and readiness probes).
//! - [`deployment`]: the per-deployment actor (the shell that performs what
//!   `scale0_core::worker::Machine` decides) and its dispatch and reply tasks.
//! - [`watcher`]: registry reads, readiness probes, periodic reports to Redis.
//! - [`reply`]: reply and dead-letter properties.
//! - [`metrics`]: `/metrics` in the OpenMetrics text format (`prometheus-client`), with
//!   the deployments' cost standing read from Redis at each scrape.
//!
//! The entry point is [`run`] (or [`Worker::start`] then [`Worker::run`] to learn the
//! metrics address first); shutdown is a future passed in.

pub mod broker;
pub mod commit;
pub mod consume;
pub mod deployment;
pub mod instance_client;
pub mod metrics;
pub mod reply;
pub mod request;
pub mod settings;
pub mod watcher;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use scale0_core::backoff::Backoff;
use scale0_core::config::{BrokerSettings, Config, Deployment};
use scale0_state::Store;
use tokio::sync::{mpsc, oneshot, watch};

pub use settings::{DEFAULT_AMQP_URL, DEFAULT_REDIS_URL, WorkerSettings};

use crate::broker::{Broker, ConnectError, Live};
use crate::deployment::{Actor, Ctx, Msg};
use crate::instance_client::InstanceClient;
use crate::metrics::Metrics;

/// Metrics label of requests that named no known deployment.
pub const UNKNOWN_DEPLOYMENT: &str = "(unknown)";

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The settings name a deployment the config does not have, or none is left.
    #[error("configuration: {0}")]
    Config(String),
    /// The broker's topology conflicts with ours; retrying cannot help.
    #[error("broker topology: {0}")]
    Topology(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What every deployment's actor and tasks share.
#[derive(Debug)]
pub struct Shared {
    pub settings: WorkerSettings,
    pub broker_settings: BrokerSettings,
    pub store: Store,
    pub broker: Broker,
    pub http: InstanceClient,
    pub metrics: Arc<Metrics>,
    event_ids: AtomicU64,
}

impl Shared {
    pub fn next_event_id(&self) -> u64 {
        self.event_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// A worker whose metrics listener is bound, ready to [`Worker::run`].
#[derive(Debug)]
pub struct Worker {
    settings: WorkerSettings,
    config: Arc<Config>,
    store: Store,
    metrics: Arc<Metrics>,
    listener: Option<tokio::net::TcpListener>,
    metrics_addr: Option<SocketAddr>,
}

/// Start a worker and run it until `shutdown` resolves, then drain and stop.
pub async fn run(
    settings: WorkerSettings,
    config: Arc<Config>,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WorkerError> {
    Worker::start(settings, config, store)
        .await?
        .run(shutdown)
        .await
}

impl Worker {
    /// Check the settings against the config and bind the metrics listener.
    pub async fn start(
        settings: WorkerSettings,
        config: Arc<Config>,
        store: Store,
    ) -> Result<Worker, WorkerError> {
        for name in &settings.deployments {
            if config.deployment(name).is_none() {
                return Err(WorkerError::Config(format!(
                    "deployment `{name}` is not in the configuration"
                )));
            }
        }
        if config.deployments.is_empty() {
            return Err(WorkerError::Config("no deployments to serve".into()));
        }
        let (listener, metrics_addr) = match settings.metrics_addr {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| WorkerError::Listen { addr, source })?;
                let bound = l.local_addr().ok();
                (Some(l), bound)
            }
            None => (None, None),
        };
        Ok(Worker {
            settings,
            config,
            store,
            metrics: Arc::new(Metrics::default()),
            listener,
            metrics_addr,
        })
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn served(&self) -> Vec<Deployment> {
        self.config
            .deployments
            .iter()
            .filter(|d| {
                self.settings.deployments.is_empty() || self.settings.deployments.contains(&d.name)
            })
            .cloned()
            .collect()
    }

    /// Serve until `shutdown` resolves; then stop consuming, requeue what is held,
    /// let in-flight requests finish within the drain timeout, and close.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), WorkerError> {
        let deployments = self.served();
        let (live_tx, live_rx) = watch::channel::<Option<Arc<Live>>>(None);
        let http = InstanceClient::new(self.settings.connect_timeout);
        let shared = Arc::new(Shared {
            settings: self.settings.clone(),
            broker_settings: self.config.broker.clone(),
            store: self.store.clone(),
            broker: Broker::new(live_rx),
            http,
            metrics: self.metrics.clone(),
            event_ids: AtomicU64::new(0),
        });

        let mut ctxs = Vec::new();
        let mut background = Vec::new();
        let mut actors = Vec::new();
        for spec in deployments {
            let (tx, rx) = mpsc::unbounded_channel();
            let ctx = Arc::new(Ctx {
                metrics: self.metrics.deployment(&spec.name),
                shared: shared.clone(),
                spec,
                inbox: tx,
                committer: watch::channel(None).0,
                unflushed_arrivals: AtomicU64::new(0),
                unflushed_samples: std::sync::Mutex::new(Vec::new()),
                unflushed_tokens: AtomicU64::new(0),
                held_now: AtomicU64::new(0),
            });
            actors.push(tokio::spawn(Actor::new(ctx.clone(), rx).run()));
            background.push(tokio::spawn(watcher::watch(ctx.clone())));
            background.push(tokio::spawn(watcher::report(ctx.clone())));
            ctxs.push(ctx);
        }

        let (stop_http_tx, stop_http_rx) = oneshot::channel::<()>();
        let http_server = self.listener.map(|listener| {
            let state = HealthState {
                shared: shared.clone(),
            };
            tokio::spawn(serve_http(listener, state, stop_http_rx))
        });

        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let mut supervisor = tokio::spawn(supervise(shared.clone(), ctxs.clone(), live_tx, cmd_rx));

        tokio::select! {
            _ = shutdown => {}
            r = &mut supervisor => {
                // Only a fatal topology error ends the supervisor early.
                for t in background.iter().chain(actors.iter()) {
                    t.abort();
                }
                return match r {
                    Ok(Err(e)) => Err(e),
                    _ => Err(WorkerError::Topology("the broker supervisor stopped".into())),
                };
            }
        }

        // Drain.
        tracing::info!("shutting down: stop consuming, requeue held, drain in-flight");
        self.metrics.draining.set(1);
        let (tx, rx) = oneshot::channel();
        let _ = cmd_tx.send(SupCmd::StopConsuming(tx));
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        let mut drained = Vec::new();
        for ctx in &ctxs {
            let (tx, rx) = oneshot::channel();
            let _ = ctx.inbox.send(Msg::Drain(tx));
            drained.push(rx);
        }
        let all = futures_util::future::join_all(drained);
        if tokio::time::timeout(self.settings.drain_timeout, all)
            .await
            .is_err()
        {
            for ctx in &ctxs {
                let _ = ctx.inbox.send(Msg::Abort);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for t in &background {
            t.abort();
        }
        for ctx in &ctxs {
            watcher::report_once(ctx).await;
            let _ = ctx
                .shared
                .store
                .clear_held(&ctx.spec.name, &ctx.shared.settings.worker_id)
                .await;
        }
        let (tx, rx) = oneshot::channel();
        let _ = cmd_tx.send(SupCmd::Close(tx));
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        supervisor.abort();
        for a in actors {
            a.abort();
        }
        let _ = stop_http_tx.send(());
        if let Some(h) = http_server {
            let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

#[derive(Debug)]
enum SupCmd {
    StopConsuming(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Keep a connection: connect (declaring the topology), start consumers, publish the
/// live handle; on loss, tell the actors, back off and start again.
async fn supervise(
    shared: Arc<Shared>,
    ctxs: Vec<Arc<Ctx>>,
    live_tx: watch::Sender<Option<Arc<Live>>>,
    mut cmds: mpsc::UnboundedReceiver<SupCmd>,
) -> Result<(), WorkerError> {
    use futures_util::StreamExt;

    let settings = &shared.settings;
    let specs: Vec<&Deployment> = ctxs.iter().map(|c| &c.spec).collect();
    let mut backoff = Backoff::new(
        settings.reconnect_min,
        settings.reconnect_max,
        u64::from(std::process::id()),
    );
    let mut epoch = 0u64;
    let mut consuming = true;
    let mut ever_connected = false;
    let redacted = scale0_state::redact_url(&settings.amqp_url);

    loop {
        let attempt = broker::connect(
            &settings.amqp_url,
            &settings.worker_id,
            epoch + 1,
            &shared.broker_settings,
            &specs,
        );
        let connected = tokio::select! {
            r = attempt => r,
            Some(cmd) = cmds.recv() => {
                match cmd {
                    SupCmd::StopConsuming(reply) => { consuming = false; let _ = reply.send(()); }
                    SupCmd::Close(reply) => { let _ = reply.send(()); return Ok(()); }
                }
                continue;
            }
        };
        let live = match connected {
            Ok(live) => Arc::new(live),
            Err(ConnectError::Fatal(m)) if !ever_connected => {
                tracing::error!(error = %m, "broker topology conflict");
                return Err(WorkerError::Topology(m));
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(url = %redacted, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot connect to RabbitMQ");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        epoch += 1;
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
        let consumers = if consuming {
            match consume::start(&live, &ctxs, &settings.worker_id, ended_tx.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start consumers; reconnecting");
                    let _ = live
                        .connection
                        .close(320, "consumer setup failed".into())
                        .await;
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        backoff.reset();
        if ever_connected {
            shared.metrics.broker_reconnects.inc();
            tracing::info!(epoch, "reconnected to RabbitMQ");
        } else {
            tracing::info!(url = %redacted, "connected to RabbitMQ");
        }
        ever_connected = true;
        let _ = live_tx.send(Some(live.clone()));
        shared.metrics.broker_connected.set(1);

        let mut events = live.connection.events_listener();
        let why = loop {
            tokio::select! {
                Some(ended) = ended_rx.recv() => {
                    if consuming && ended.epoch == epoch {
                        break format!("consumer of {} ended: {}", ended.queue, ended.error.unwrap_or_else(|| "cancelled by the broker".into()));
                    }
                }
                ev = events.next() => match ev {
                    Some(lapin::Event::Error(e)) => break e.to_string(),
                    None => break "connection events ended".to_string(),
                    Some(_) => {}
                },
                Some(cmd) = cmds.recv() => match cmd {
                    SupCmd::StopConsuming(reply) => {
                        consuming = false;
                        for c in &consumers {
                            c.cancel().await;
                        }
                        let _ = reply.send(());
                    }
                    SupCmd::Close(reply) => {
                        let _ = live_tx.send(None);
                        shared.metrics.broker_connected.set(0);
                        let _ = tokio::time::timeout(Duration::from_secs(3), live.connection.close(200, "worker stopping".into())).await;
                        let _ = reply.send(());
                        return Ok(());
                    }
                },
            }
        };
        tracing::warn!(epoch, reason = %why, "lost the RabbitMQ connection; its unacked deliveries go back to the queues");
        let _ = live_tx.send(None);
        shared.metrics.broker_connected.set(0);
        for ctx in &ctxs {
            ctx.committer.send_replace(None);
            let _ = ctx.inbox.send(Msg::ConnectionLost { epoch });
        }
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            live.connection.close(320, "reconnecting".into()),
        )
        .await;
        drop(consumers);
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

#[derive(Debug, Clone)]
struct HealthState {
    shared: Arc<Shared>,
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    state: HealthState,
    stop: oneshot::Receiver<()>,
) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .with_state(state);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await;
}

/// How long a scrape waits for the cost standing in Redis before it answers without it.
const STANDING_TIMEOUT: Duration = Duration::from_secs(2);

/// The worker's metrics and each served deployment's cost standing, read from Redis at
/// the scrape (a scrape that cannot read it counts a Redis error and leaves it out).
async fn metrics_handler(
    axum::extract::State(state): axum::extract::State<HealthState>,
) -> impl axum::response::IntoResponse {
    let shared = &state.shared;
    let now = chrono::Utc::now();
    let names = shared.metrics.deployment_names();
    let read = scale0_state::status::gather(&shared.store, &names, now);
    let standing = match tokio::time::timeout(STANDING_TIMEOUT, read).await {
        Ok(Ok(s)) => s,
        _ => {
            shared.metrics.redis_errors.inc();
            Vec::new()
        }
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(&standing),
    )
}

/// 200 while connected to RabbitMQ and Redis and not draining; 503 otherwise, with
/// the parts in JSON either way.
async fn health_handler(
    axum::extract::State(state): axum::extract::State<HealthState>,
) -> impl axum::response::IntoResponse {
    let m = &state.shared.metrics;
    let broker = m.broker_connected.get() == 1;
    let draining = m.draining.get() == 1;
    let redis = matches!(
        tokio::time::timeout(Duration::from_millis(500), state.shared.store.ping()).await,
        Ok(Ok(()))
    );
    let ok = broker && redis && !draining;
    let code = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(serde_json::json!({
            "status": if ok { "ok" } else { "unavailable" },
            "broker": broker,
            "redis": redis,
            "draining": draining,
            "worker": state.shared.settings.worker_id,
        })),
    )
}
