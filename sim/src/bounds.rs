//! Two lower bounds on what any policy must pay, one for each way of scoring a run.
//!
//! Both hold for every pool mix of a deployment: they use the shortest boot any pool
//! can have (its `boot_time × (1 − boot_spread)`), the most slots any pool has, the
//! lowest price per instance and the lowest price per slot ([`BoundModel`]). Both count
//! only scored requests (arriving after the scenario's warmup) and bill only the
//! scored window `[warmup, horizon]`, as every policy is billed.
//!
//! ## Zero wait
//! Start every request at its arrival and run it for its service time: `c(t)` requests
//! are in service at `t`, and zero waiting needs at least `n(t) = ⌈c(t)/slots⌉` ready
//! instances. Take the instance *levels* one by one: level `k` is busy on
//! `B_k = {t : n(t) ≥ k}`, a union of intervals. Across each idle gap of level `k`,
//! keep the instance if the gap is shorter than the boot time `b`, otherwise stop it and
//! launch it again `b` before it is next needed. Level `k` then costs
//! `|B_k| + b + Σ_gaps min(gap, b)`, which is `|D_b(B_k)|`, the measure of `B_k` dilated
//! backwards by `b` (each busy instant `t` pulls in `[t − b, t]`).
//!
//! *Why no policy with zero waiting costs less.* Let `m(t)` be the instances a policy
//! pays for at `t` (booting, ready or draining). If `n(t) ≥ k`, at least `k` instances
//! are ready at `t`; each was launched at least `b` earlier and has been billed ever
//! since, so `m(s) ≥ k` for all `s ∈ [t − b, t]`. Hence `{m ≥ k} ⊇ D_b(B_k)` for every
//! `k`, and `∫ m = Σ_k |{m ≥ k}| ≥ Σ_k |D_b(B_k)|`, each instant priced at least at
//! the lowest price.
//!
//! ## Within the SLO
//! The tables score a request as met when it starts within `max_wait = w`, and a
//! policy may trade waiting for capacity, so the zero-wait figure is not a bound on
//! them. A bound for "every scored request starts within `w`" is the larger of:
//! - **work**: each request holds a slot for its service time, at least the part of it
//!   inside the window if it starts as late as it may (`a + w`); a slot-second costs at
//!   least the lowest price per slot;
//! - **one instance at a time**: request `i`, arriving at `a_i`, starts at some
//!   `t_i ∈ [a_i, a_i + w]` on an instance that was launched at least `b` before `t_i`
//!   and billed without a break until `t_i + s_i`, so some instance is billed over
//!   `[t_i − b, t_i + s_i]`, which lies in `W_i = [a_i − b, a_i + w + s_i]`. For
//!   requests whose windows `W_i` are pairwise disjoint these intervals are disjoint,
//!   so the policy pays at least the sum of their lengths (each at its smallest over
//!   the choice of `t_i`, after clipping to the window). The best such set is a
//!   weighted interval scheduling problem, solved exactly ([`level_one_chain`]).
//!
//! `sim/tests/bounds.rs` checks both against every run of the test scenarios that
//! meets their premise: no run with zero waits costs less than the zero-wait bound, no
//! run with every request within the SLO costs less than the within-SLO bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::metrics::Series;
use crate::trace::{MICROS_PER_SEC, Micros};
use crate::workload::Request;
use scale0_core::config::Pool;

/// What the bounds assume of the deployment's pools: the cheapest and fastest of each
/// kind, which no pool mix can beat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundModel {
    pub slots: u32,
    pub boot: Micros,
    pub price_per_hour_usd: f64,
    pub price_per_slot_hour_usd: f64,
}

impl BoundModel {
    pub fn of_pools(pools: &[Pool], boot_spread: f64) -> BoundModel {
        let min = |f: &dyn Fn(&Pool) -> f64| pools.iter().map(f).fold(f64::INFINITY, f64::min);
        BoundModel {
            slots: pools.iter().map(|p| p.slots).max().unwrap_or(1).max(1),
            boot: min(&|p| p.boot_time.0.as_micros() as f64 * (1.0 - boot_spread)).floor()
                as Micros,
            price_per_hour_usd: min(&|p| p.price_per_hour_usd),
            price_per_slot_hour_usd: min(&|p| p.price_per_hour_usd / f64::from(p.slots.max(1))),
        }
    }
}

/// The scored window and the SLO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: Micros,
    pub end: Micros,
    pub max_wait: Micros,
}

/// The bounds' figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// No request waits: instance time and cost.
    pub zero_wait_instance_seconds: f64,
    pub zero_wait_cost_usd: f64,
    /// Every request starts within the SLO's maximum wait.
    pub within_slo_cost_usd: f64,
    /// Highest number of requests in service at once with zero waiting.
    pub peak_concurrency: u64,
    /// ⌈peak_concurrency / slots⌉.
    pub peak_instances: u32,
    /// Launches of the zero-wait construction (level starts after a gap of at least a
    /// boot).
    pub launches: u64,
    /// Scored requests.
    pub requests: u64,
    /// Concurrency and the zero-wait levels over time, for plots.
    #[serde(skip)]
    pub series: Series,
}

/// Both bounds for `requests` (sorted by arrival).
pub fn bounds<I: Iterator<Item = Request>>(
    requests: impl Fn() -> I,
    model: &BoundModel,
    window: Window,
    series_buckets: usize,
) -> Bounds {
    let scored = move |r: &Request| r.at >= window.start;
    let zero = zero_wait(
        requests().filter(scored),
        model.slots,
        model.boot,
        window,
        series_buckets,
    );
    let mut work: i128 = 0;
    let mut chain = Vec::new();
    let clip = |t: Micros| t.clamp(window.start, window.end);
    for r in requests().filter(scored) {
        let latest = r.at + window.max_wait;
        work += i128::from((clip(latest + r.service) - clip(latest)).max(0));
        // Billed over [t − b, t + s] for the best t in [a, a + w], clipped.
        let covered = |t: Micros| clip(t + r.service) - clip(t - model.boot);
        let length = covered(r.at).min(covered(latest));
        if length > 0 {
            chain.push((r.at - model.boot, latest + r.service, length));
        }
    }
    let hour = 3600.0 * MICROS_PER_SEC as f64;
    let work_cost = work as f64 / hour * model.price_per_slot_hour_usd;
    let chain_cost = level_one_chain(chain) as f64 / hour * model.price_per_hour_usd;
    Bounds {
        zero_wait_instance_seconds: zero.0 as f64 / MICROS_PER_SEC as f64,
        zero_wait_cost_usd: zero.0 as f64 / hour * model.price_per_hour_usd,
        within_slo_cost_usd: work_cost.max(chain_cost),
        peak_concurrency: zero.1,
        peak_instances: zero.1.div_ceil(u64::from(model.slots)) as u32,
        launches: zero.2,
        requests: zero.3,
        series: zero.4,
    }
}

/// The heaviest set of pairwise disjoint windows `(start, end, weight)`: weighted
/// interval scheduling by dynamic programming over windows sorted by end, O(n log n).
/// Windows that only touch at an end point count as disjoint.
pub fn level_one_chain(mut windows: Vec<(Micros, Micros, Micros)>) -> i128 {
    windows.sort_by_key(|w| w.1);
    // best[i]: heaviest set among the first i windows.
    let mut best: Vec<i128> = Vec::with_capacity(windows.len() + 1);
    best.push(0);
    for i in 0..windows.len() {
        let (start, _, weight) = windows[i];
        // Windows before i that end at or before this one starts.
        let compatible = windows[..i].partition_point(|w| w.1 <= start);
        let take = best[compatible] + i128::from(weight);
        best.push(best[i].max(take));
    }
    *best.last().unwrap_or(&0)
}

/// The most instances the zero-wait profile of the requests arriving before `until`
/// needs at once (what a team could have sized a fixed fleet from by then).
pub fn peak_before(requests: impl Iterator<Item = Request>, until: Micros, slots: u32) -> u32 {
    let mut ends: BinaryHeap<Reverse<Micros>> = BinaryHeap::new();
    let mut peak = 0usize;
    for r in requests.take_while(|r| r.at < until) {
        while ends.peek().is_some_and(|Reverse(e)| *e <= r.at) {
            ends.pop();
        }
        ends.push(Reverse(r.at + r.service.max(1)));
        peak = peak.max(ends.len());
    }
    (peak as u64).div_ceil(u64::from(slots.max(1))) as u32
}

/// The zero-wait construction for `requests` (sorted by arrival) on instances of
/// `slots` slots booting in at least `boot` µs: (instance-µs, peak concurrency,
/// launches, requests, series).
fn zero_wait(
    requests: impl Iterator<Item = Request>,
    slots: u32,
    boot: Micros,
    window: Window,
    series_buckets: usize,
) -> (i128, u64, u64, u64, Series) {
    let horizon = window.end;
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
    let clip = |t: Micros| t.clamp(window.start, horizon);
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
    (total, peak, launches, requests_seen, series)
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

    fn window(end_s: i64) -> Window {
        Window {
            start: 0,
            end: end_s * S,
            max_wait: 0,
        }
    }

    fn run(reqs: &[Request], slots: u32, boot_s: i64, end_s: i64) -> (i128, u64, u64, u64, Series) {
        zero_wait(reqs.iter().copied(), slots, boot_s * S, window(end_s), 10)
    }

    fn bound(reqs: &[Request], slots: u32, boot_s: i64) -> f64 {
        run(reqs, slots, boot_s, 1_000_000).0 as f64 / S as f64
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
        let r = run(&long, 1, 90, 1_000);
        assert_eq!((r.2, r.1), (2, 1));
    }

    #[test]
    fn levels_are_counted_by_slots() {
        // Three overlapping requests on 2-slot instances: 1 in service on 100..105,
        // 2 on 105..110, 3 on 110..115 (B ends at 115), 2 on 115..120, 1 on 120..130.
        // Level 1 is busy 100..130, level 2 only 110..115.
        let reqs = [req(100.0, 30.0), req(105.0, 10.0), req(110.0, 10.0)];
        assert_eq!(bound(&reqs, 2, 10), (10.0 + 30.0) + (10.0 + 5.0));
        let r = run(&reqs, 2, 10, 1_000);
        assert_eq!(r.1, 3);
        // A request ending exactly when another starts frees its slot first.
        assert_eq!(bound(&[req(100.0, 5.0), req(105.0, 5.0)], 1, 10), 20.0);
    }

    #[test]
    fn clipped_at_the_horizon() {
        assert_eq!(run(&[req(100.0, 50.0)], 1, 10, 120).0, 30 * i128::from(S));
    }

    fn model(slots: u32, boot_s: i64) -> BoundModel {
        BoundModel {
            slots,
            boot: boot_s * S,
            price_per_hour_usd: 3600.0,
            price_per_slot_hour_usd: 3600.0 / f64::from(slots),
        }
    }

    #[test]
    fn waiting_lets_one_boot_cover_two_requests() {
        // Two 1 s requests 30 s apart, boot 10 s. Zero wait: two boots (10 + 1 each).
        // Within a 30 s wait, the first can start with the second: one boot.
        let reqs = [req(100.0, 1.0), req(130.0, 1.0)];
        let w = Window {
            start: 0,
            end: 1_000 * S,
            max_wait: 30 * S,
        };
        let b = bounds(|| reqs.iter().copied(), &model(1, 10), w, 10);
        assert_eq!(b.zero_wait_cost_usd, 22.0);
        // The windows [90, 131] and [120, 161] overlap: one instance-interval of 11 s.
        assert_eq!(b.within_slo_cost_usd, 11.0);
        // Zero wait allowed: both windows disjoint, the bounds agree.
        let b = bounds(
            || reqs.iter().copied(),
            &model(1, 10),
            Window { max_wait: 0, ..w },
            10,
        );
        assert_eq!(b.within_slo_cost_usd, 22.0);
    }

    #[test]
    fn work_bounds_dense_traffic() {
        // 100 back-to-back 10 s requests on 4-slot instances: 1000 slot-s = 250 instance-s
        // at least; one instance at a time gives less (windows overlap).
        let reqs: Vec<Request> = (0..100).map(|i| req(f64::from(i) * 0.1, 10.0)).collect();
        let w = Window {
            start: 0,
            end: 10_000 * S,
            max_wait: 0,
        };
        let b = bounds(|| reqs.iter().copied(), &model(4, 0), w, 10);
        assert!(
            (b.within_slo_cost_usd - 250.0).abs() < 1e-6,
            "{}",
            b.within_slo_cost_usd
        );
    }

    #[test]
    fn chain_picks_the_heaviest_disjoint_windows() {
        // [0,10] w5, [5,20] w20, [10,30] w7: 5+7=12 < 20.
        assert_eq!(
            level_one_chain(vec![(0, 10, 5), (5, 20, 20), (10, 30, 7)]),
            20
        );
        assert_eq!(
            level_one_chain(vec![(0, 10, 5), (5, 20, 1), (10, 30, 7)]),
            12
        );
        assert_eq!(level_one_chain(Vec::new()), 0);
    }

    #[test]
    fn warmup_requests_are_not_counted() {
        let reqs = [req(10.0, 1.0), req(500.0, 1.0)];
        let w = Window {
            start: 100 * S,
            end: 1_000 * S,
            max_wait: 0,
        };
        let b = bounds(|| reqs.iter().copied(), &model(1, 10), w, 10);
        assert_eq!((b.requests, b.zero_wait_cost_usd), (1, 11.0));
        assert_eq!(peak_before(reqs.iter().copied(), 100 * S, 1), 1);
    }
}
