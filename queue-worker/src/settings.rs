//! Worker-level settings: what one worker process does, as opposed to the config
//! file's deployments (what every worker serves). The binary fills them from flags and
//! the environment; `scale0 local` and the tests build them directly.

use std::net::SocketAddr;
use std::time::Duration;

/// `SCALE0_AMQP_URL` when unset.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// `SCALE0_REDIS_URL` when unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Names this worker in Redis (held-count reports, slot leases) and in the broker's
    /// connection list. Unique per process.
    pub worker_id: String,
    /// AMQP URL; credentials are redacted before any log or error.
    pub amqp_url: String,
    /// Deployments to serve; empty means every deployment in the config.
    pub deployments: Vec<String>,
    /// Where `/metrics` and `/health` listen; `None` serves neither. Port 0 picks one
    /// ([`crate::Worker::metrics_addr`] tells which).
    pub metrics_addr: Option<SocketAddr>,
    /// On shutdown, how long in-flight requests may take to finish before they are
    /// requeued.
    pub drain_timeout: Duration,
    /// At most one activation event per deployment per interval, across workers.
    pub activation_interval: Duration,
    /// At most one pressure event per deployment per interval, across workers.
    pub pressure_interval: Duration,
    /// Attempts per request (the first plus retries on other instances after a
    /// connection error, a 5xx or a 429), while its deadline allows.
    pub max_attempts: u32,
    /// How often the worker reads the registry and probes booting instances' readiness
    /// paths. An instance is noticed ready at most this long (plus one probe's round
    /// trip) after its readiness path first answers 200.
    pub refresh_interval: Duration,
    /// How often held counts, arrivals, request samples and queue depth are reported.
    pub report_interval: Duration,
    /// Timeout of one readiness probe.
    pub probe_timeout: Duration,
    /// TCP connect timeout to an instance (the whole call is bounded by the deadline).
    pub connect_timeout: Duration,
    /// A slot lease lasts this long and is renewed every third of it while its request
    /// runs: a worker that dies gives its slots back within this time.
    pub lease_ttl: Duration,
    /// A `done` marker lives this long past the request's deadline.
    pub done_ttl_after_deadline: Duration,
    /// Reconnect backoff to RabbitMQ: first delay and ceiling (doubling, with jitter).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl WorkerSettings {
    /// Defaults for everything but the broker URL.
    pub fn new(amqp_url: impl Into<String>) -> Self {
        WorkerSettings {
            worker_id: default_worker_id(),
            amqp_url: amqp_url.into(),
            deployments: Vec::new(),
            metrics_addr: None,
            drain_timeout: Duration::from_secs(30),
            activation_interval: Duration::from_secs(5),
            pressure_interval: Duration::from_secs(10),
            max_attempts: 3,
            refresh_interval: scale0_core::worker::DEFAULT_REFRESH_INTERVAL,
            report_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            done_ttl_after_deadline: Duration::from_secs(600),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// `<hostname>-<pid>`.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}
