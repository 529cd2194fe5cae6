//! What a run measured, and the time series behind the plots.
//!
//! Cost is billed from launch (boot time is paid, as on EC2) to stop, clipped to the
//! scenario's scored window `[warmup, horizon]`, the same window the bounds are
//! computed over. SLO attainment is the share of *all* scored requests (arriving after
//! the warmup) that started within the SLO's maximum wait: shed, expired and failed
//! requests count as misses. Wait percentiles are over the scored requests that were
//! served. Launches and the peak count instances launched or running in the scored
//! window.

use serde::{Deserialize, Serialize};

use crate::trace::{MICROS_PER_SEC, Micros};

/// Instance time and cost of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolUsage {
    pub pool: String,
    pub instance_seconds: f64,
    pub cost_usd: f64,
    pub launches: u64,
    /// Spot interruption warnings of the pool's instances in the scored window.
    #[serde(default)]
    pub interruptions: u64,
    /// Launches that started a warm-pool instance (ready after `warm_boot_time`).
    #[serde(default)]
    pub warm_starts: u64,
    /// Hours of stopped warm instances, billed at `warm_price_per_hour_usd` (in
    /// `cost_usd`; the refills' boots are in `instance_seconds`).
    #[serde(default)]
    pub warm_hours: f64,
}

/// Everything one policy's run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub policy: String,
    pub requests: u64,
    pub served: u64,
    pub shed: u64,
    pub expired: u64,
    /// Killed in flight (terminated instance).
    pub failed: u64,
    /// Of `failed`, those in flight on a Spot instance when it was reclaimed (the real
    /// worker retries them on another instance, so this counts them pessimistically).
    #[serde(default)]
    pub interrupted_in_flight: u64,
    /// Each budget's most-billed period: the cap held when no peak is above its limit.
    #[serde(default)]
    pub budgets: Vec<crate::spend::BudgetUse>,
    /// Scored requests that waited longer than the scenario's `[slo] long_wait` for a
    /// slot: served late, or expired waiting.
    #[serde(default)]
    pub waited_longer: u64,
    /// Share of requests that waited at most the SLO's maximum wait.
    pub slo_attainment: f64,
    pub wait_p50_s: f64,
    pub wait_p90_s: f64,
    pub wait_p99_s: f64,
    pub wait_max_s: f64,
    /// Served by an instance that became ready after the request arrived.
    pub cold_start_delayed: u64,
    pub launches: u64,
    pub instance_seconds: f64,
    pub gpu_hours: f64,
    pub cost_usd: f64,
    pub pools: Vec<PoolUsage>,
    /// Time in the window with no instance at all (not even booting or draining).
    pub time_at_zero_s: f64,
    pub peak_instances: u32,
    /// Calls to the policy.
    pub decisions: u64,
    /// Cost over the within-SLO bound ([`crate::bounds`]).
    #[serde(default)]
    pub ratio_to_slo_bound: Option<f64>,
    /// Cost over the zero-wait bound.
    #[serde(default)]
    pub ratio_to_zero_wait: Option<f64>,
    /// Demand and capacity over time, for plots; not in the JSON.
    #[serde(skip)]
    pub series: Series,
}

impl PolicyReport {
    pub fn cold_start_share(&self) -> f64 {
        share(self.cold_start_delayed, self.requests)
    }

    pub fn shed_share(&self) -> f64 {
        share(self.shed, self.requests)
    }
}

pub(crate) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Per time bucket, the highest demand (requests waiting or in flight) and the highest
/// ready and booting capacity (in slots) seen in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Bucket width, µs.
    pub bucket: Micros,
    pub demand: Vec<u32>,
    pub ready_slots: Vec<u32>,
    pub booting_slots: Vec<u32>,
}

impl Series {
    pub fn new(horizon: Micros, buckets: usize) -> Series {
        let buckets = buckets.max(1);
        let bucket = (horizon / buckets as Micros).max(1) + 1;
        let n = (horizon / bucket + 1) as usize;
        Series {
            bucket,
            demand: vec![0; n],
            ready_slots: vec![0; n],
            booting_slots: vec![0; n],
        }
    }

    /// The state was (`demand`, `ready`, `booting`) during [from, to).
    #[inline]
    pub fn record(&mut self, from: Micros, to: Micros, demand: u32, ready: u32, booting: u32) {
        if self.demand.is_empty() || to <= from {
            return;
        }
        let last = self.demand.len() - 1;
        let a = ((from.max(0) / self.bucket) as usize).min(last);
        let b = (((to - 1).max(0) / self.bucket) as usize).min(last);
        for i in a..=b {
            let (d, r, k) = (
                &mut self.demand[i],
                &mut self.ready_slots[i],
                &mut self.booting_slots[i],
            );
            *d = (*d).max(demand);
            *r = (*r).max(ready);
            *k = (*k).max(booting);
        }
    }

    /// Bucket start times in hours.
    pub fn hours(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.demand.len())
            .map(|i| (i as Micros * self.bucket) as f64 / (3600.0 * MICROS_PER_SEC as f64))
    }
}

/// Waits of served requests: exact percentiles without storing the (many) zeros.
#[derive(Debug, Clone, Default)]
pub struct Waits {
    zeros: u64,
    nonzero: Vec<Micros>,
}

impl Waits {
    #[inline]
    pub fn push(&mut self, wait: Micros) {
        if wait <= 0 {
            self.zeros += 1;
        } else {
            self.nonzero.push(wait);
        }
    }

    pub fn count(&self) -> u64 {
        self.zeros + self.nonzero.len() as u64
    }

    /// Nearest-rank percentiles (p in (0, 1]) and the maximum, in seconds.
    pub fn summarize(mut self, ps: &[f64]) -> (Vec<f64>, f64) {
        let n = self.count();
        self.nonzero.sort_unstable();
        let at = |rank: u64| -> Micros {
            // rank is 1-based among all waits, zeros first.
            if rank <= self.zeros {
                0
            } else {
                self.nonzero[(rank - self.zeros - 1) as usize]
            }
        };
        let to_s = |m: Micros| m as f64 / MICROS_PER_SEC as f64;
        let values = ps
            .iter()
            .map(|&p| {
                if n == 0 {
                    0.0
                } else {
                    to_s(at(scale0_core::percentile::rank(p, n)))
                }
            })
            .collect();
        let max = self.nonzero.last().copied().map_or(0.0, to_s);
        (values, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_count_zeros() {
        let mut w = Waits::default();
        for _ in 0..98 {
            w.push(0);
        }
        w.push(2_000_000);
        w.push(5_000_000);
        let (p, max) = w.summarize(&[0.5, 0.99, 1.0]);
        assert_eq!(p, [0.0, 2.0, 5.0]);
        assert_eq!(max, 5.0);
        assert_eq!(Waits::default().summarize(&[0.5]), (vec![0.0], 0.0));
    }

    #[test]
    fn series_keeps_bucket_maxima() {
        let mut s = Series::new(100, 10);
        s.record(0, 30, 5, 8, 0);
        s.record(30, 100, 1, 16, 8);
        assert_eq!(s.demand[0], 5);
        assert_eq!(*s.ready_slots.last().unwrap(), 16);
        assert!(s.booting_slots.contains(&8));
    }
}
