//! What a run measured, and its table.

use std::collections::BTreeMap;

use scale0_core::contract::ReplyStatus;
use scale0_core::percentile;
use serde::Serialize;

use super::sampler::Sample;

/// What the run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub deployment: String,
    pub sent: u64,
    /// First reply per request, by `x-scale0-status`.
    pub by_status: BTreeMap<String, u64>,
    /// How many first replies gave each `status: x-scale0-reason` (shed, expired,
    /// failed and rejected replies say why).
    pub reasons: BTreeMap<String, u64>,
    /// Replies beyond the first for the same request.
    pub duplicates: u64,
    /// Replies the broker delivered again after the producer recorded them, because
    /// their ack was lost with a connection: the same message, not a second reply.
    pub redelivered: u64,
    /// Requests with no reply at all.
    pub missing: u64,
    /// First replies marked `x-scale0-cold-start: true`.
    pub cold_start_delayed: u64,
    /// Send → first reply, over answered requests.
    pub latency_ms: Percentiles,
    /// The worker's `x-scale0-queue-ms`, over requests that ran.
    pub queue_ms: Percentiles,
    /// Broker connections the producer had to re-open.
    pub reconnects: u64,
    pub wall_s: f64,
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| percentile::of_sorted(&v, p).unwrap_or_default();
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

impl LoadReport {
    pub fn count(&self, status: ReplyStatus) -> u64 {
        self.by_status
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }

    /// Requests that got a terminal reply.
    pub fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} requests to {} in {:.1} s: {} answered, {} missing, {} duplicate replies, {} reconnects ({} replies redelivered)\n",
            self.sent,
            self.deployment,
            self.wall_s,
            self.answered(),
            self.missing,
            self.duplicates,
            self.reconnects,
            self.redelivered
        );
        out.push_str("  status      count\n");
        for (status, n) in &self.by_status {
            out.push_str(&format!("  {status:<10} {n:>6}\n"));
        }
        for (reason, n) in &self.reasons {
            out.push_str(&format!("    {n:>6} × {reason}\n"));
        }
        let pct = |x: u64| 100.0 * x as f64 / self.answered().max(1) as f64;
        out.push_str(&format!(
            "  delayed by a cold start: {} ({:.1}%)\n",
            self.cold_start_delayed,
            pct(self.cold_start_delayed)
        ));
        let l = &self.latency_ms;
        out.push_str(&format!(
            "  latency ms  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}\n",
            l.p50, l.p90, l.p99, l.max
        ));
        let q = &self.queue_ms;
        out.push_str(&format!(
            "  queue ms    p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}\n",
            q.p50, q.p90, q.p99, q.max
        ));
        out
    }
}
