//! The worker's Prometheus metrics, written in the text exposition format by hand
//! (a few gauges, counters and one histogram do not need a metrics framework).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the wait histogram, in seconds: from a warm dispatch to a cold
/// start of several minutes.
const WAIT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

type Gauge = (&'static str, &'static str, fn(&DeploymentMetrics) -> i64);
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&DeploymentMetrics) -> &LabeledCounter,
);
type Counter = (&'static str, &'static str, fn(&DeploymentMetrics) -> u64);

/// A counter family keyed by one label value.
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    pub fn inc(&self, label: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(label) {
            Some(v) => *v += 1,
            None => {
                m.insert(label.to_string(), 1);
            }
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(label).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Metrics of one deployment.
#[derive(Debug, Default)]
pub struct DeploymentMetrics {
    /// Requests held, waiting for a slot.
    pub held: AtomicI64,
    /// Requests between dispatch and their confirmed reply.
    pub in_flight: AtomicI64,
    /// Messages ready in the broker queue (last passive declare).
    pub queue_depth: AtomicI64,
    /// Terminal replies by `x-scale0-status`.
    pub replies: LabeledCounter,
    /// Dead letters by reason kind.
    pub dead_letters: LabeledCounter,
    /// Control events published, by type.
    pub control_events: LabeledCounter,
    /// Dispatch attempts by outcome (`ok`, `http_5xx`, `busy`, `connect_error`, ...).
    pub attempts: LabeledCounter,
    /// Redeliveries acked without running again (done marker or in-process match).
    pub duplicates: AtomicU64,
    /// Requests that arrived.
    pub arrivals: AtomicU64,
    wait_buckets: [AtomicU64; WAIT_BUCKETS.len()],
    wait_count: AtomicU64,
    wait_sum_us: AtomicU64,
}

impl DeploymentMetrics {
    /// Time from arrival to dispatch.
    pub fn observe_wait(&self, wait: Duration) {
        let secs = wait.as_secs_f64();
        for (i, bound) in WAIT_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.wait_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.wait_count.fetch_add(1, Ordering::Relaxed);
        self.wait_sum_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Every metric of the worker.
#[derive(Debug, Default)]
pub struct Metrics {
    deployments: Mutex<BTreeMap<String, std::sync::Arc<DeploymentMetrics>>>,
    pub broker_connected: AtomicBool,
    pub broker_reconnects: AtomicU64,
    pub redis_errors: AtomicU64,
    pub draining: AtomicBool,
}

impl Metrics {
    pub fn deployment(&self, name: &str) -> std::sync::Arc<DeploymentMetrics> {
        let mut m = self.deployments.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string()).or_default().clone()
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let deployments: Vec<(String, std::sync::Arc<DeploymentMetrics>)> = self
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = String::with_capacity(4096);
        let gauges: [Gauge; 3] = [
            (
                "scale0_worker_held",
                "Requests held by this worker, waiting for a slot.",
                |m| m.held.load(Ordering::Relaxed),
            ),
            (
                "scale0_worker_in_flight",
                "Requests dispatched by this worker whose reply is not yet confirmed.",
                |m| m.in_flight.load(Ordering::Relaxed),
            ),
            (
                "scale0_worker_queue_depth",
                "Messages ready in the deployment's broker queue.",
                |m| m.queue_depth.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (d, m) in &deployments {
                let _ = writeln!(out, "{name}{{deployment=\"{d}\"}} {}", get(m));
            }
        }
        let counters: [Family; 4] = [
            (
                "scale0_worker_replies_total",
                "Terminal replies sent, by x-scale0-status.",
                "status",
                |m| &m.replies,
            ),
            (
                "scale0_worker_dead_letters_total",
                "Messages dead-lettered to scale0.dead, by reason.",
                "reason",
                |m| &m.dead_letters,
            ),
            (
                "scale0_worker_control_events_total",
                "Control events published, by type.",
                "type",
                |m| &m.control_events,
            ),
            (
                "scale0_worker_dispatch_attempts_total",
                "HTTP dispatch attempts to instances, by outcome.",
                "outcome",
                |m| &m.attempts,
            ),
        ];
        for (name, help, label, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (d, m) in &deployments {
                for (value, n) in get(m).snapshot() {
                    let _ = writeln!(out, "{name}{{deployment=\"{d}\",{label}=\"{value}\"}} {n}");
                }
            }
        }
        let plain: [Counter; 2] = [
            (
                "scale0_worker_duplicates_total",
                "Redelivered requests acked without running again.",
                |m| m.duplicates.load(Ordering::Relaxed),
            ),
            ("scale0_worker_arrivals_total", "Requests received.", |m| {
                m.arrivals.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, get) in plain {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (d, m) in &deployments {
                let _ = writeln!(out, "{name}{{deployment=\"{d}\"}} {}", get(m));
            }
        }
        let name = "scale0_worker_wait_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a request's arrival to its dispatch.\n# TYPE {name} histogram"
        );
        for (d, m) in &deployments {
            for (i, bound) in WAIT_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{deployment=\"{d}\",le=\"{bound}\"}} {}",
                    m.wait_buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = m.wait_count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{deployment=\"{d}\",le=\"+Inf\"}} {count}\n{name}_sum{{deployment=\"{d}\"}} {}\n{name}_count{{deployment=\"{d}\"}} {count}",
                m.wait_sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
        }
        let globals: [(&str, &str, &str, u64); 4] = [
            (
                "scale0_worker_broker_connected",
                "1 while connected to RabbitMQ.",
                "gauge",
                u64::from(self.broker_connected.load(Ordering::Relaxed)),
            ),
            (
                "scale0_worker_broker_reconnects_total",
                "Connections to RabbitMQ re-established after a loss.",
                "counter",
                self.broker_reconnects.load(Ordering::Relaxed),
            ),
            (
                "scale0_worker_redis_errors_total",
                "Redis operations that failed (retried or skipped).",
                "counter",
                self.redis_errors.load(Ordering::Relaxed),
            ),
            (
                "scale0_worker_draining",
                "1 once shutdown has begun.",
                "gauge",
                u64::from(self.draining.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, kind, value) in globals {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let m = Metrics::default();
        let d = m.deployment("chat");
        d.held.store(3, Ordering::Relaxed);
        d.replies.inc("ok");
        d.replies.inc("ok");
        d.replies.inc("shed");
        d.observe_wait(Duration::from_millis(30));
        d.observe_wait(Duration::from_secs(20));
        let text = m.render();
        assert!(
            text.contains("scale0_worker_held{deployment=\"chat\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("scale0_worker_replies_total{deployment=\"chat\",status=\"ok\"} 2\n")
        );
        assert!(
            text.contains("scale0_worker_wait_seconds_bucket{deployment=\"chat\",le=\"0.05\"} 1\n")
        );
        assert!(
            text.contains("scale0_worker_wait_seconds_bucket{deployment=\"chat\",le=\"30\"} 2\n")
        );
        assert!(text.contains("scale0_worker_wait_seconds_count{deployment=\"chat\"} 2\n"));
        assert!(text.contains("scale0_worker_wait_seconds_sum{deployment=\"chat\"} 20.03\n"));
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap();
            let base = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} "))
                    || text.contains(&format!("# TYPE {base} ")),
                "undeclared {line}"
            );
        }
    }
}
