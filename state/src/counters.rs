//! Counters the worker and lifecycle handler write and the scaler reads.
//!
//! - Arrivals per 10-second bin, one hash per hour (`arrivals:<hour>`, kept 8 days):
//!   the forecaster's history, and `last-arrival` for the idle clock.
//! - Tokens per 10-second bin the same way (`tokens:<hour>`): the `usage` of the
//!   OpenAI-compatible replies that carry one, for the cost per 1,000 tokens.
//! - Held requests per worker (`held`: worker id → `count:ms`): each worker reports
//!   its own count every second; readers ignore reports older than a staleness bound,
//!   so a crashed worker's count fades instead of sticking.
//! - The last 500 service times and end-to-end latencies (lists), for the mean service
//!   time and the p95 latency.
//! - The last 20 boot durations per pool, whose p90 is the pre-warm lead time.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use crate::{Result, Store, keys};

/// Width of an arrival bin: the policy's arrival history folds these bins.
pub use scale0_core::policy::history::BIN_SECS as ARRIVAL_BIN_SECS;
/// How long arrival bins are kept.
pub const ARRIVAL_RETENTION: Duration = Duration::from_secs(ARRIVAL_RETENTION_SECS as u64);
const ARRIVAL_RETENTION_SECS: i64 = 8 * 86_400;
const REQUEST_SAMPLES: isize = 500;
const BOOT_SAMPLES: isize = 20;

/// The hash holding the bin that starts at `bin_start`, for a series (`keys::arrivals`,
/// `keys::tokens`) of one deployment.
fn hour_key(series: &str, bin_start: i64) -> String {
    format!("{series}:{}", bin_start - bin_start.rem_euclid(3600))
}

/// Add `count` to the bin of `series` containing `at`, kept for the retention.
fn add_to_bin(pipe: &mut redis::Pipeline, series: &str, at: DateTime<Utc>, count: u64) {
    let ts = at.timestamp();
    let bin = ts - ts.rem_euclid(ARRIVAL_BIN_SECS);
    let hour_key = hour_key(series, bin);
    pipe.hincr(&hour_key, bin, count)
        .expire(&hour_key, ARRIVAL_RETENTION_SECS);
}

impl Store {
    /// Add `count` arrivals in the bin containing `at`, and move `last-arrival` to `at`.
    pub async fn add_arrivals(
        &self,
        deployment: &str,
        at: DateTime<Utc>,
        count: u64,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        add_to_bin(&mut pipe, &keys::arrivals(deployment), at, count);
        let _: () = pipe
            .set(keys::last_arrival(deployment), at.timestamp_millis())
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Arrival counts per bin start (seconds since the epoch) in `[from, to)`, in one
    /// round trip however many hours the range covers.
    pub async fn arrivals(
        &self,
        deployment: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<i64, u64>> {
        self.bins(&keys::arrivals(deployment), from, to).await
    }

    /// Add `count` tokens (prompt and completion) in the bin containing `at`.
    pub async fn add_tokens(&self, deployment: &str, at: DateTime<Utc>, count: u64) -> Result<()> {
        let mut pipe = redis::pipe();
        add_to_bin(&mut pipe, &keys::tokens(deployment), at, count);
        let _: () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Tokens served in `[from, to)`, summed over its bins.
    pub async fn tokens(
        &self,
        deployment: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(self
            .bins(&keys::tokens(deployment), from, to)
            .await?
            .values()
            .sum())
    }

    /// The bins of `series` whose start is in `[from, to)`.
    async fn bins(
        &self,
        series: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<BTreeMap<i64, u64>> {
        let (from, to) = (from.timestamp(), to.timestamp());
        if from >= to {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        let mut hour = from - from.rem_euclid(3600);
        while hour < to {
            pipe.hgetall(hour_key(series, hour));
            hour += 3600;
        }
        let hours: Vec<Vec<(i64, u64)>> = pipe.query_async(&mut self.conn()).await?;
        Ok(hours
            .into_iter()
            .flatten()
            .filter(|(b, _)| (from..to).contains(b))
            .collect())
    }

    pub async fn last_arrival(&self, deployment: &str) -> Result<Option<DateTime<Utc>>> {
        let ms: Option<i64> = self.conn().get(keys::last_arrival(deployment)).await?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }

    /// This worker holds `count` requests as of `now_ms`.
    pub async fn report_held(
        &self,
        deployment: &str,
        worker: &str,
        count: u64,
        now_ms: i64,
    ) -> Result<()> {
        let _: () = self
            .conn()
            .hset(keys::held(deployment), worker, format!("{count}:{now_ms}"))
            .await?;
        Ok(())
    }

    /// A worker that stops cleanly removes its report.
    pub async fn clear_held(&self, deployment: &str, worker: &str) -> Result<()> {
        let _: () = self.conn().hdel(keys::held(deployment), worker).await?;
        Ok(())
    }

    /// Requests held by all workers whose report is fresher than `stale_after`.
    pub async fn held(&self, deployment: &str, now_ms: i64, stale_after: Duration) -> Result<u64> {
        let reports: Vec<(String, String)> = self.conn().hgetall(keys::held(deployment)).await?;
        Ok(held_sum(&reports, now_ms, stale_after))
    }

    /// One request served: `service_ms` at the instance, `latency_ms` end to end.
    pub async fn record_request(
        &self,
        deployment: &str,
        service_ms: u64,
        latency_ms: u64,
    ) -> Result<()> {
        let (s, l) = (keys::service_ms(deployment), keys::latency_ms(deployment));
        let _: () = redis::pipe()
            .lpush(&s, service_ms)
            .ltrim(&s, 0, REQUEST_SAMPLES - 1)
            .lpush(&l, latency_ms)
            .ltrim(&l, 0, REQUEST_SAMPLES - 1)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Mean of recent service times.
    pub async fn mean_service_time(&self, deployment: &str) -> Result<Option<Duration>> {
        let samples: Vec<u64> = self
            .conn()
            .lrange(keys::service_ms(deployment), 0, -1)
            .await?;
        Ok(mean_ms(&samples))
    }

    /// p95 of recent end-to-end latencies, in milliseconds.
    pub async fn latency_p95_ms(&self, deployment: &str) -> Result<Option<f64>> {
        let samples: Vec<u64> = self
            .conn()
            .lrange(keys::latency_ms(deployment), 0, -1)
            .await?;
        Ok(p95(samples))
    }

    pub async fn record_boot(&self, deployment: &str, pool: &str, took: Duration) -> Result<()> {
        let key = keys::boots(deployment, pool);
        let _: () = redis::pipe()
            .lpush(&key, took.as_millis() as u64)
            .ltrim(&key, 0, BOOT_SAMPLES - 1)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    pub async fn recent_boots(
        &self,
        deployment: &str,
        pools: &[&str],
    ) -> Result<BTreeMap<String, Vec<Duration>>> {
        let mut out = BTreeMap::new();
        for pool in pools {
            let ms: Vec<u64> = self
                .conn()
                .lrange(keys::boots(deployment, pool), 0, -1)
                .await?;
            if !ms.is_empty() {
                out.insert(
                    pool.to_string(),
                    ms.into_iter().map(Duration::from_millis).collect(),
                );
            }
        }
        Ok(out)
    }
}

/// Sum of the held-count reports (`count:ms`) fresher than `stale_after`.
pub(crate) fn held_sum(reports: &[(String, String)], now_ms: i64, stale_after: Duration) -> u64 {
    let oldest = now_ms - stale_after.as_millis() as i64;
    reports
        .iter()
        .filter_map(|(_, v)| v.split_once(':'))
        .filter_map(|(count, ms)| Some((count.parse::<u64>().ok()?, ms.parse::<i64>().ok()?)))
        .filter(|&(_, ms)| ms >= oldest)
        .map(|(count, _)| count)
        .sum()
}

pub(crate) fn mean_ms(samples: &[u64]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    Some(Duration::from_secs_f64(mean / 1000.0))
}

pub(crate) fn p95(mut samples: Vec<u64>) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (samples.len() * 95).div_ceil(100).max(1) - 1;
    Some(samples[rank] as f64)
}
