//! What a handler needs, passed in so tests can choose every part.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use scale0_core::config::Config;
use scale0_state::Store;

use crate::broker::{ControlPublisher, QueueDepth};
use crate::provider::Provider;

/// Where handlers read the time. Only this edge reads a clock (CONVENTIONS.md §1).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Utc::now))
    }

    /// Always `at`: for tests.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Clock(Arc::new(move || at))
    }

    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// Knobs of the handlers that are not part of the deployment config.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// Attempts at a fenced commit before giving up: losing the race this often means
    /// other runs are committing fresh decisions, so giving up is safe.
    pub fence_attempts: u32,
    /// How long an event id is remembered for dedupe.
    pub event_ttl: Duration,
    /// Timeout of one readiness probe.
    pub probe_timeout: Duration,
    /// Terminated registry records are kept this long (so late events and listings
    /// cannot register a stopped instance again), then purged by the tick.
    pub keep_terminated: Duration,
    /// How long a GPU utilisation datapoint from an alarm counts.
    pub metric_ttl: Duration,
    /// The longest gap between two scaler runs of a deployment: the tick (EventBridge's
    /// one minute in AWS, `--tick` locally). The budget rule counts on it.
    pub decision_interval: Duration,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        HandlerSettings {
            fence_attempts: 50,
            event_ttl: Duration::from_secs(24 * 3600),
            probe_timeout: Duration::from_secs(2),
            keep_terminated: Duration::from_secs(3600),
            metric_ttl: Duration::from_secs(300),
            decision_interval: scale0_core::cost::DEFAULT_DECISION_INTERVAL,
        }
    }
}

/// Everything a handler touches.
#[derive(Clone)]
pub struct Deps {
    pub config: Arc<Config>,
    pub store: Store,
    pub provider: Arc<dyn Provider>,
    pub queue: Arc<dyn QueueDepth>,
    /// For readiness probes (plain HTTP to instances).
    pub http: reqwest::Client,
    pub clock: Clock,
    pub settings: HandlerSettings,
    /// Where the control plane's own control events go (budget alerts); without one
    /// they are only logged.
    pub events: Option<Arc<dyn ControlPublisher>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("deployments", &self.config.deployments.len())
            .field("provider", &self.provider.kind())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Deps {
    pub fn new(
        config: Config,
        store: Store,
        provider: Arc<dyn Provider>,
        queue: Arc<dyn QueueDepth>,
    ) -> Self {
        Deps {
            config: Arc::new(config),
            store,
            provider,
            queue,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(2)
                .build()
                .unwrap_or_default(),
            clock: Clock::system(),
            settings: HandlerSettings::default(),
            events: None,
        }
    }

    pub fn with_events(mut self, events: Arc<dyn ControlPublisher>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_settings(mut self, settings: HandlerSettings) -> Self {
        self.settings = settings;
        self
    }
}
