//! The worker's metrics, kept and encoded by the Prometheus project's Rust client
//! (`prometheus-client`, the OpenMetrics text format), and the control plane's cost
//! figures exported beside them.
//!
//! Two kinds of figure go out on `/metrics`:
//! - this worker's own: gauges, counters and the wait histogram per deployment, updated
//!   on the request path ([`DeploymentMetrics`]);
//! - the deployment's cost standing as Redis holds it (spend, requests and tokens over
//!   24 h, budgets, quota use, Spot interruptions), read at each scrape
//!   ([`Metrics::encode`] of what `scale0_state::status::gather` returns). Every worker
//!   exports the same standing: aggregate it with `max by (deployment)`, not `sum`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scale0_state::status::{BudgetView, DeploymentStatus};

/// Upper bounds of the wait histogram, in seconds: from a warm dispatch to a cold
/// start of several minutes.
const WAIT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Label pairs in the order they are written (`deployment` first).
type Labels = Vec<(&'static str, String)>;

fn of(deployment: &str) -> Labels {
    vec![("deployment", deployment.to_string())]
}

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}

/// A counter family of one deployment, keyed by one more label.
#[derive(Debug)]
pub struct LabeledCounter {
    family: Family<Labels, Counter>,
    deployment: String,
    key: &'static str,
}

impl LabeledCounter {
    fn labels(&self, value: &str) -> Labels {
        vec![
            ("deployment", self.deployment.clone()),
            (self.key, value.to_string()),
        ]
    }

    pub fn inc(&self, value: &str) {
        self.family.get_or_create(&self.labels(value)).inc();
    }

    pub fn get(&self, value: &str) -> u64 {
        self.family.get_or_create(&self.labels(value)).get()
    }
}

/// Metrics of one deployment: handles into the worker's families, labelled with it.
#[derive(Debug)]
pub struct DeploymentMetrics {
    /// Requests held, waiting for a slot.
    pub held: Gauge,
    /// Requests between dispatch and their confirmed reply.
    pub in_flight: Gauge,
    /// Messages ready in the broker queue (last passive declare).
    pub queue_depth: Gauge,
    /// Terminal replies by `x-scale0-status`.
    pub replies: LabeledCounter,
    /// Dead letters by reason kind.
    pub dead_letters: LabeledCounter,
    /// Control events published, by type.
    pub control_events: LabeledCounter,
    /// Dispatch attempts by outcome (`ok`, `http_5xx`, `busy`, `connect_error`, ...).
    pub attempts: LabeledCounter,
    /// Redeliveries acked without running again (done marker or in-process match).
    pub duplicates: Counter,
    /// Requests that arrived.
    pub arrivals: Counter,
    /// Prompt and completion tokens the answers reported in their `usage`.
    pub tokens: Counter,
    wait: Histogram,
}

impl DeploymentMetrics {
    /// Time from arrival to dispatch.
    pub fn observe_wait(&self, wait: Duration) {
        self.wait.observe(wait.as_secs_f64());
    }
}

/// The families every deployment's handles point into.
#[derive(Debug)]
struct Families {
    held: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    queue_depth: Family<Labels, Gauge>,
    replies: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    control_events: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    duplicates: Family<Labels, Counter>,
    arrivals: Family<Labels, Counter>,
    tokens: Family<Labels, Counter>,
    wait: Family<Labels, Histogram, fn() -> Histogram>,
}

/// Every metric of the worker.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    deployments: Mutex<BTreeMap<String, Arc<DeploymentMetrics>>>,
    /// 1 while connected to RabbitMQ.
    pub broker_connected: Gauge,
    pub broker_reconnects: Counter,
    pub redis_errors: Counter,
    /// 1 once shutdown has begun.
    pub draining: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let families = Families {
            held: Family::default(),
            in_flight: Family::default(),
            queue_depth: Family::default(),
            replies: Family::default(),
            dead_letters: Family::default(),
            control_events: Family::default(),
            attempts: Family::default(),
            duplicates: Family::default(),
            arrivals: Family::default(),
            tokens: Family::default(),
            wait: Family::new_with_constructor(wait_histogram),
        };
        let (broker_connected, broker_reconnects) = (Gauge::default(), Counter::default());
        let (redis_errors, draining) = (Counter::default(), Gauge::default());
        let mut r = Registry::default();
        let f = &families;
        // Help texts without a final period: the encoder adds it.
        r.register(
            "scale0_worker_held",
            "Requests held by this worker, waiting for a slot",
            f.held.clone(),
        );
        r.register(
            "scale0_worker_in_flight",
            "Requests dispatched by this worker whose reply is not yet confirmed",
            f.in_flight.clone(),
        );
        r.register(
            "scale0_worker_queue_depth",
            "Messages ready in the deployment's broker queue",
            f.queue_depth.clone(),
        );
        // Counters are registered without `_total`: the encoder appends it.
        r.register(
            "scale0_worker_replies",
            "Terminal replies sent, by x-scale0-status",
            f.replies.clone(),
        );
        r.register(
            "scale0_worker_dead_letters",
            "Messages dead-lettered to scale0.dead, by reason",
            f.dead_letters.clone(),
        );
        r.register(
            "scale0_worker_control_events",
            "Control events published, by type",
            f.control_events.clone(),
        );
        r.register(
            "scale0_worker_dispatch_attempts",
            "HTTP dispatch attempts to instances, by outcome",
            f.attempts.clone(),
        );
        r.register(
            "scale0_worker_duplicates",
            "Redelivered requests acked without running again",
            f.duplicates.clone(),
        );
        r.register(
            "scale0_worker_arrivals",
            "Requests received",
            f.arrivals.clone(),
        );
        r.register(
            "scale0_worker_tokens",
            "Prompt and completion tokens reported in the usage of the answers",
            f.tokens.clone(),
        );
        r.register(
            "scale0_worker_wait_seconds",
            "Time from a request's arrival to its dispatch",
            f.wait.clone(),
        );
        r.register(
            "scale0_worker_broker_connected",
            "1 while connected to RabbitMQ",
            broker_connected.clone(),
        );
        r.register(
            "scale0_worker_broker_reconnects",
            "Connections to RabbitMQ re-established after a loss",
            broker_reconnects.clone(),
        );
        r.register(
            "scale0_worker_redis_errors",
            "Redis operations that failed (retried or skipped)",
            redis_errors.clone(),
        );
        r.register(
            "scale0_worker_draining",
            "1 once shutdown has begun",
            draining.clone(),
        );
        Metrics {
            registry: r,
            families,
            deployments: Mutex::default(),
            broker_connected,
            broker_reconnects,
            redis_errors,
            draining,
        }
    }
}

impl Metrics {
    pub fn deployment(&self, name: &str) -> Arc<DeploymentMetrics> {
        let mut m = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| {
                let f = &self.families;
                let labels = of(name);
                let labeled = |family: &Family<Labels, Counter>, key| LabeledCounter {
                    family: family.clone(),
                    deployment: name.to_string(),
                    key,
                };
                Arc::new(DeploymentMetrics {
                    held: f.held.get_or_create(&labels).clone(),
                    in_flight: f.in_flight.get_or_create(&labels).clone(),
                    queue_depth: f.queue_depth.get_or_create(&labels).clone(),
                    replies: labeled(&f.replies, "status"),
                    dead_letters: labeled(&f.dead_letters, "reason"),
                    control_events: labeled(&f.control_events, "type"),
                    attempts: labeled(&f.attempts, "outcome"),
                    duplicates: f.duplicates.get_or_create(&labels).clone(),
                    arrivals: f.arrivals.get_or_create(&labels).clone(),
                    tokens: f.tokens.get_or_create(&labels).clone(),
                    wait: f.wait.get_or_create(&labels).clone(),
                })
            })
            .clone()
    }

    /// The deployments this worker serves (those it made metrics for).
    pub fn deployment_names(&self) -> Vec<String> {
        let m = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        m.keys().cloned().collect()
    }

    /// The worker's own metrics, then the cost standing of `standing`, in the
    /// OpenMetrics text format.
    pub fn encode(&self, standing: &[DeploymentStatus]) -> String {
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &standing_registry(standing));
        let _ = encode_eof(&mut out);
        out
    }
}

type Dollars = Gauge<f64, AtomicU64>;

/// The cost standing of each deployment as gauges, in a registry built for one scrape.
fn standing_registry(standing: &[DeploymentStatus]) -> Registry {
    let gauge = Family::<Labels, Dollars>::default;
    let (spend, requests, tokens, per_request, per_1k) =
        (gauge(), gauge(), gauge(), gauge(), gauge());
    let (interruptions, quota_held, quota_all) = (gauge(), gauge(), gauge());
    let (budget_spent, budget_limit, budget_forecast, budget_at_cap) =
        (gauge(), gauge(), gauge(), gauge());
    let set = |f: &Family<Labels, Dollars>, labels: Labels, v: f64| {
        f.get_or_create(&labels).set(v);
    };
    for s in standing {
        let d = || of(&s.deployment);
        let c = &s.last_24h;
        set(&spend, d(), c.spend_usd);
        set(&requests, d(), c.requests as f64);
        set(&tokens, d(), c.tokens as f64);
        if let Some(v) = c.usd_per_request {
            set(&per_request, d(), v);
        }
        if let Some(v) = c.usd_per_1k_tokens {
            set(&per_1k, d(), v);
        }
        for (pool, p) in &s.pools {
            let labels = vec![("deployment", s.deployment.clone()), ("pool", pool.clone())];
            set(&interruptions, labels, p.interruptions_24h as f64);
        }
        for q in &s.quotas {
            let labels = vec![
                ("deployment", s.deployment.clone()),
                ("quota", q.quota.clone()),
            ];
            set(&quota_held, labels, q.held_vcpus as f64);
            set(
                &quota_all,
                vec![("quota", q.quota.clone())],
                q.total_vcpus as f64,
            );
        }
    }
    // A budget can cover several deployments; each of their last decisions saw it.
    // The highest spend seen is the latest.
    let mut budgets: BTreeMap<String, &BudgetView> = BTreeMap::new();
    for b in standing.iter().flat_map(|s| &s.budgets) {
        budgets
            .entry(b.status.budget.clone())
            .and_modify(|kept| {
                if b.status.spent_usd > kept.status.spent_usd {
                    *kept = b;
                }
            })
            .or_insert(b);
    }
    for (name, b) in budgets {
        let labels = || vec![("budget", name.clone())];
        set(&budget_spent, labels(), b.status.spent_usd);
        set(&budget_limit, labels(), b.status.limit_usd);
        if let Some(f) = b.forecast_usd {
            set(&budget_forecast, labels(), f);
        }
        let at_cap = b.status.blocked || b.status.at_min;
        set(&budget_at_cap, labels(), f64::from(u8::from(at_cap)));
    }
    let mut r = Registry::default();
    let families = [
        (
            "scale0_spend_usd_24h",
            "Spend over the last 24 hours, boots included (the ledger)",
            spend,
        ),
        (
            "scale0_requests_24h",
            "Requests the workers counted over the last 24 hours",
            requests,
        ),
        (
            "scale0_tokens_24h",
            "Tokens the answers reported over the last 24 hours",
            tokens,
        ),
        (
            "scale0_usd_per_request_24h",
            "Spend per request over the last 24 hours",
            per_request,
        ),
        (
            "scale0_usd_per_1k_tokens_24h",
            "Spend per 1,000 tokens over the last 24 hours",
            per_1k,
        ),
        (
            "scale0_spot_interruptions_24h",
            "Spot interruption warnings over the last 24 hours, by pool",
            interruptions,
        ),
        (
            "scale0_quota_held_vcpus",
            "vCPUs of a service quota this deployment's last decision holds",
            quota_held,
        ),
        (
            "scale0_quota_all_vcpus",
            "vCPUs of a service quota every deployment holds together",
            quota_all,
        ),
        (
            "scale0_budget_spent_usd",
            "Spend so far in the budget's period",
            budget_spent,
        ),
        (
            "scale0_budget_limit_usd",
            "The budget's cap, tightened by AWS Budgets reports",
            budget_limit,
        ),
        (
            "scale0_budget_forecast_usd",
            "Spend at the period's end at the period's rate so far",
            budget_forecast,
        ),
        (
            "scale0_budget_at_cap",
            "1 while the budget blocks launches or holds at min_instances",
            budget_at_cap,
        ),
    ];
    for (name, help, family) in families {
        r.register(name, help, family);
    }
    r
}

#[cfg(test)]
mod tests {
    use scale0_core::cost::budget::BudgetStatus;
    use scale0_state::status::{PoolStatus, QuotaView, UnitCost};

    use super::*;

    #[test]
    fn encodes_the_worker_metrics_in_the_openmetrics_format() {
        let m = Metrics::default();
        let d = m.deployment("chat");
        d.held.set(3);
        d.replies.inc("ok");
        d.replies.inc("ok");
        d.replies.inc("shed");
        d.tokens.inc_by(14);
        d.observe_wait(Duration::from_millis(30));
        d.observe_wait(Duration::from_secs(20));
        assert_eq!(d.replies.get("ok"), 2);
        let text = m.encode(&[]);
        for line in [
            "scale0_worker_held{deployment=\"chat\"} 3",
            "scale0_worker_replies_total{deployment=\"chat\",status=\"ok\"} 2",
            "scale0_worker_tokens_total{deployment=\"chat\"} 14",
            "scale0_worker_wait_seconds_bucket{le=\"0.05\",deployment=\"chat\"} 1",
            "scale0_worker_wait_seconds_bucket{le=\"30.0\",deployment=\"chat\"} 2",
            "scale0_worker_wait_seconds_count{deployment=\"chat\"} 2",
            "scale0_worker_wait_seconds_sum{deployment=\"chat\"} 20.03",
            "# HELP scale0_worker_held Requests held by this worker, waiting for a slot.",
            "# TYPE scale0_worker_replies counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn exports_each_deployments_cost_standing_and_each_budget_once() {
        let m = Metrics::default();
        let budget = |spent_usd| BudgetView {
            status: BudgetStatus {
                budget: "team".into(),
                period_start: chrono::Utc::now(),
                period_end: None,
                limit_usd: 100.0,
                spent_usd,
                bound_usd: spent_usd,
                blocked: spent_usd > 90.0,
                at_min: false,
            },
            forecast_usd: Some(120.0),
            aws_report: None,
        };
        let status = |name: &str, spent| DeploymentStatus {
            deployment: name.into(),
            generation: 1,
            pools: BTreeMap::from([(
                "spot".to_string(),
                PoolStatus {
                    interruptions_24h: 2,
                    ..PoolStatus::default()
                },
            )]),
            queued: None,
            held: 0,
            in_flight: 0,
            cap: None,
            last_decision: None,
            budgets: vec![budget(spent)],
            quotas: vec![QuotaView {
                quota: "L-DB2E81BA".into(),
                held_vcpus: 8,
                total_vcpus: 24,
            }],
            last_24h: UnitCost::new(12.0, 240, 48_000),
        };
        let text = m.encode(&[status("chat", 91.0), status("embed", 90.5)]);
        for line in [
            "scale0_spend_usd_24h{deployment=\"chat\"} 12.0",
            "scale0_usd_per_request_24h{deployment=\"embed\"} 0.05",
            "scale0_usd_per_1k_tokens_24h{deployment=\"chat\"} 0.25",
            "scale0_spot_interruptions_24h{deployment=\"chat\",pool=\"spot\"} 2.0",
            "scale0_quota_held_vcpus{deployment=\"embed\",quota=\"L-DB2E81BA\"} 8.0",
            "scale0_quota_all_vcpus{quota=\"L-DB2E81BA\"} 24.0",
            "scale0_budget_spent_usd{budget=\"team\"} 91.0",
            "scale0_budget_at_cap{budget=\"team\"} 1.0",
            "scale0_budget_forecast_usd{budget=\"team\"} 120.0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        let budget_lines = text
            .lines()
            .filter(|l| l.starts_with("scale0_budget_spent_usd{"))
            .count();
        assert_eq!(budget_lines, 1, "{text}");
    }
}
