//! The clairvoyant lower bound on instance time for zero queueing.
//!
//! ## Construction
//! Start every request at its arrival and run it for its service time: `c(t)` requests
//! are in service at `t`, and zero queueing needs at least `n(t) = ⌈c(t)/slots⌉` ready
//! instances. Take the instance *levels* one by one: level `k` is busy on
//! `B_k = {t : n(t) ≥ k}`, a union of intervals. Across each idle gap of level `k`,
//! keep the instance if the gap is shorter than the boot time `b`, otherwise stop it and
//! launch it again `b` before it is next needed. Level `k` then costs
//! `|B_k| + b + Σ_gaps min(gap, b)`, which is `|D_b(B_k)|`, the measure of `B_k` dilated
//! backwards by `b` (each busy instant `t` pulls in `[t − b, t]`). The bound is
//! `Σ_k |D_b(B_k)|` instance-seconds, clipped to the accounting window `[0, horizon]`
//! like every policy's bill.
//!
//! ## Why no policy with zero queueing can cost less
//! Let `m(t)` be the instances a policy pays for at `t` (booting, ready or draining) and
//! suppose no request ever waits. Then at every `t` at least `n(t)` instances are ready.
//! If `n(t) ≥ k`, at least `k` instances are ready at `t`; each was launched at least
//! `b` earlier (boots take at least `b`; the boot model's minimum is used when boots
//! vary) and has been billed ever since, so `m(s) ≥ k` for all `s ∈ [t − b, t]`.
//! Hence `{m ≥ k} ⊇ D_b(B_k)` for every `k`, and the policy's cost
//! `∫ m = Σ_k |{m ≥ k}| ≥ Σ_k |D_b(B_k)|`. Instances ready at time 0 (always-on) are
//! billed from 0, which the clipping to `[0, horizon]` accounts for.
//!
//! The bound is for one pool (the scenario's cheapest per slot) and for zero queueing.
//! A policy allowed to delay requests up to an SLO may in principle pack a little
//! tighter; the tests check the bound against every policy that meets a 100% SLO on the
//! test scenarios, and in practice waiting costs far more in idle capacity than it saves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::metrics::Series;
use crate::trace::{MICROS_PER_SEC, Micros};
use crate::workload::Request;

/// The oracle's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleReport {
    pub instance_seconds: f64,
    pub gpu_hours: f64,
    pub cost_usd: f64,
    /// Highest number of requests in service at once with zero queueing.
    pub peak_concurrency: u64,
    /// ⌈peak_concurrency / slots⌉.
    pub peak_instances: u32,
    /// Instances the oracle launches (level starts after a gap of at least a boot).
    pub launches: u64,
    pub requests: u64,
    /// Concurrency and the oracle's instances over time, for plots.
    #[serde(skip)]
    pub series: Series,
}

/// Compute the bound for `requests` (sorted by arrival) on instances of `slots` slots
/// booting in at least `boot` µs, billed at `price_per_hour_usd`.
pub fn oracle(
    requests: impl Iterator<Item = Request>,
    slots: u32,
    boot: Micros,
    price_per_hour_usd: f64,
    horizon: Micros,
    series_buckets: usize,
) -> OracleReport {
    let slots = u64::from(slots.max(1));
    let mut ends: BinaryHeap<Reverse<Micros>> = BinaryHeap::new();
    let mut series = Series::new(horizon, series_buckets);
    // Per level (index k-1): when it became busy, and when it last became idle.
    let mut busy_since: Vec<Micros> = Vec::new();
    let mut idle_since: Vec<Option<Micros>> = Vec::new();
    let mut total: i128 = 0;
    let mut launches = 0u64;
    let mut c: u64 = 0;
    let mut peak = 0u64;
    let mut requests_seen = 0u64;
    let mut now: Micros = 0;
    let clip = |t: Micros| t.clamp(0, horizon);
    let level = |c: u64| c.div_ceil(slots) as usize;

    // Change the number of levels from `from` to `to` at `t`.
    let shift = |from: usize,
                 to: usize,
                 t: Micros,
                 busy_since: &mut Vec<Micros>,
                 idle_since: &mut Vec<Option<Micros>>,
                 total: &mut i128,
                 launches: &mut u64| {
        if to > from {
            if busy_since.len() < to {
                busy_since.resize(to, 0);
                idle_since.resize(to, None);
            }
            for k in from..to {
                // Keep across a short gap, or boot again `boot` before `t`.
                let lead = match idle_since[k] {
                    Some(idle) if t - idle < boot => t - idle,
                    _ => {
                        *launches += 1;
                        boot
                    }
                };
                *total += i128::from(clip(t) - clip(t - lead));
                busy_since[k] = t;
            }
        } else {
            for k in to..from {
                *total += i128::from(clip(t) - clip(busy_since[k]));
                idle_since[k] = Some(t);
            }
        }
    };

    let advance = |t: Micros, c: u64, series: &mut Series, now: &mut Micros| {
        if t > *now {
            let n = level(c) as u32;
            series.record(
                *now,
                t,
                c.min(u64::from(u32::MAX)) as u32,
                n * slots as u32,
                0,
            );
            *now = t;
        }
    };

    for r in requests {
        requests_seen += 1;
        // Requests that end at or before this arrival free their slots first.
        while let Some(&Reverse(end)) = ends.peek() {
            if end > r.at {
                break;
            }
            ends.pop();
            advance(end, c, &mut series, &mut now);
            let before = level(c);
            c -= 1;
            shift(
                before,
                level(c),
                end,
                &mut busy_since,
                &mut idle_since,
                &mut total,
                &mut launches,
            );
        }
        advance(r.at, c, &mut series, &mut now);
        let before = level(c);
        c += 1;
        peak = peak.max(c);
        shift(
            before,
            level(c),
            r.at,
            &mut busy_since,
            &mut idle_since,
            &mut total,
            &mut launches,
        );
        ends.push(Reverse(r.at + r.service.max(1)));
    }
    while let Some(Reverse(end)) = ends.pop() {
        advance(end.min(horizon.max(now)), c, &mut series, &mut now);
        let before = level(c);
        c -= 1;
        shift(
            before,
            level(c),
            end,
            &mut busy_since,
            &mut idle_since,
            &mut total,
            &mut launches,
        );
    }
    let seconds = total as f64 / MICROS_PER_SEC as f64;
    OracleReport {
        instance_seconds: seconds,
        gpu_hours: seconds / 3600.0,
        cost_usd: seconds / 3600.0 * price_per_hour_usd,
        peak_concurrency: peak,
        peak_instances: peak.div_ceil(slots) as u32,
        launches,
        requests: requests_seen,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = MICROS_PER_SEC;

    fn req(at_s: f64, service_s: f64) -> Request {
        Request {
            at: (at_s * S as f64) as Micros,
            service: (service_s * S as f64) as Micros,
            priority: 0,
        }
    }

    fn bound(reqs: &[Request], slots: u32, boot_s: i64) -> f64 {
        oracle(
            reqs.iter().copied(),
            slots,
            boot_s * S,
            3600.0,
            1_000_000 * S,
            10,
        )
        .instance_seconds
    }

    #[test]
    fn one_request_costs_boot_plus_service() {
        // Boot 90 s ahead of the arrival at t=100 s, then 2 s of service.
        assert_eq!(bound(&[req(100.0, 2.0)], 1, 90), 92.0);
        // At t=30 s the boot would have started before the window: clipped at 0.
        assert_eq!(bound(&[req(30.0, 2.0)], 1, 90), 32.0);
    }

    #[test]
    fn gap_just_shorter_and_just_longer_than_the_boot() {
        // Two 10 s requests; the gap between them is 89 s (< boot 90 s): keep the
        // instance across it: 90 + 10 + 89 + 10.
        let short = [req(100.0, 10.0), req(199.0, 10.0)];
        assert_eq!(bound(&short, 1, 90), 199.0);
        // Gap 91 s (> boot): stop, relaunch 90 s before: 90 + 10 + 90 + 10.
        let long = [req(100.0, 10.0), req(201.0, 10.0)];
        assert_eq!(bound(&long, 1, 90), 200.0);
        let r = oracle(long.iter().copied(), 1, 90 * S, 3600.0, 1_000 * S, 10);
        assert_eq!((r.launches, r.peak_instances), (2, 1));
    }

    #[test]
    fn levels_are_counted_by_slots() {
        // Three overlapping requests on 2-slot instances: 1 in service on 100..105,
        // 2 on 105..110, 3 on 110..115 (B ends at 115), 2 on 115..120, 1 on 120..130.
        // Level 1 is busy 100..130, level 2 only 110..115.
        let reqs = [req(100.0, 30.0), req(105.0, 10.0), req(110.0, 10.0)];
        assert_eq!(bound(&reqs, 2, 10), (10.0 + 30.0) + (10.0 + 5.0));
        let r = oracle(reqs.iter().copied(), 2, 10 * S, 3600.0, 1_000 * S, 10);
        assert_eq!((r.peak_concurrency, r.peak_instances), (3, 2));
        // A request ending exactly when another starts frees its slot first.
        assert_eq!(bound(&[req(100.0, 5.0), req(105.0, 5.0)], 1, 10), 20.0);
    }

    #[test]
    fn clipped_at_the_horizon() {
        let r = oracle(
            [req(100.0, 50.0)].into_iter(),
            1,
            10 * S,
            3600.0,
            120 * S,
            10,
        );
        assert_eq!(r.instance_seconds, 30.0);
        assert_eq!(r.cost_usd, 30.0);
    }
}
