//! Demand: how many concurrent requests the deployment must serve, and the slots
//! that takes at the target utilisation.
//!
//! Concurrency is what the stream needs plus the backlog (queued and held requests)
//! spread over the time it may take to drain. The stream needs the larger of what is
//! in flight and the arrival rate times the mean service time (Little's law; the rate
//! over the stable window, from the arrival history): at a start from zero nothing is
//! in flight yet, and sizing for the backlog alone buys for one boot's worth of
//! requests instead of the traffic that keeps coming. A backlog of `B` requests of mean
//! service time `S` that must drain within `H` needs `B·S/H` more concurrent slots
//! (Little's law). `H` is the policy's `target_queue_wait` once capacity is ready,
//! never beyond the request deadline `D`. With nothing ready the backlog first waits
//! for a boot: more instances cannot shorten that wait, only the drain after it, so
//! the drain still gets `target_queue_wait`, and the whole wait (boot lead + drain)
//! must fit in the deadline: `H = min(target, D − lead)`. `H` is never below `S` — a
//! backlog of `B` can use at most `B` slots.
//!
//! Once capacity is ready, a new instance only serves what is still queued when it
//! is ready, one boot lead later. Ready slots the stream does not take drain
//! `spare · lead / S` requests meanwhile, so the policy launches only for the backlog
//! left after that, and keeps (does not scale in) the capacity already there. An
//! instance launched for a backlog the fleet drains anyway costs its boot and the
//! stabilization window and serves nothing: on `azure-code-2023-1x-boot300` this rule
//! alone cut launches from 28 to 17 and the cost by 21% for 1 point of SLO
//! (BENCHMARKS.md, "Policy rules of issue 12").
//!
//! Like Knative's KPA, normal mode follows the mean over the stable window (60 s):
//! a one-second blip does not buy a GPU. Burst (panic) mode starts when the mean over
//! the short panic window reaches `panic_threshold` × ready capacity; it follows the
//! short window and never scales down until a stable window has passed without a
//! burst. At zero capacity a backlog asks at once for all the capacity it needs,
//! without averaging.
//!
//! The window means are *time-weighted*: the samples are joined by straight lines
//! and the mean is the area under them over the window, divided by its length. The
//! sample just before the window is kept to give the value at the window's start.
//! Knative's windows average metrics scraped every second or two; `decide` is called
//! every EventBridge tick (60 s) and, in between, on worker events that come exactly
//! when load is high. A plain mean of the samples would make the window mean whatever
//! the call rate happened to be: at a 60 s tick the 60 s window held one sample, so the
//! "stable" mean was the instantaneous count and one busy instant launched an instance
//! (67 launches in a week of NASA traffic at a 60 s tick against 3 at 5 s), and a run of
//! event-driven calls in a burst outweighed a minute of quiet ticks. Weighted by the
//! time each sample stands for, the mean estimates the same quantity at any call rate.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Observation, PolicyMemory, Sample};
use crate::config::Deployment;
use crate::duration::HumanDuration;

/// Samples kept at most, whatever the call rate: memory is stored after every call.
const MAX_SAMPLES: usize = 256;

pub(super) struct Demand {
    /// Concurrency needed now.
    pub concurrency: f64,
    /// Slots recommended by tracking (before step rules and stabilization).
    pub slots: f64,
    pub backlog: u64,
}

fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    now - chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX)
}

/// The mean service time measured recently, or the configured one until there is one.
pub(super) fn service_time(spec: &Deployment, obs: &Observation) -> Duration {
    obs.mean_service_time
        .filter(|s| !s.is_zero())
        .unwrap_or(spec.expected_service_time.0)
}

/// Record `value` at `now` and drop samples older than `window`.
pub(super) fn record(samples: &mut Vec<Sample>, now: DateTime<Utc>, value: f64, window: Duration) {
    let oldest = window_start(now, window);
    samples.retain(|s| s.at > oldest && s.at <= now);
    push_capped(samples, Sample { at: now, value });
}

/// Append the newest sample, dropping the oldest beyond [`MAX_SAMPLES`].
fn push_capped(samples: &mut Vec<Sample>, newest: Sample) {
    samples.push(newest);
    if samples.len() > MAX_SAMPLES {
        samples.drain(..samples.len() - MAX_SAMPLES);
    }
}

/// Record `value` at `now`, keeping the samples within `window` and the newest one at
/// or before its start, which [`time_weighted_mean`] interpolates the start from.
pub(super) fn record_series(
    samples: &mut Vec<Sample>,
    now: DateTime<Utc>,
    value: f64,
    window: Duration,
) {
    let oldest = window_start(now, window);
    // Samples are in time order; a clock that went back forgets the "future".
    samples.retain(|s| s.at <= now);
    let inside = samples.partition_point(|s| s.at <= oldest);
    if inside > 1 {
        samples.drain(..inside - 1);
    }
    push_capped(samples, Sample { at: now, value });
}

/// The mean over `window` before `now` of the samples joined by straight lines: the
/// area under them divided by the time they cover. Each sample counts for the time it
/// stands for, not once per call. With no sample before the window, it covers the time
/// from the first sample; with one sample only, it is that sample.
fn time_weighted_mean(samples: &[Sample], now: DateTime<Utc>, window: Duration) -> f64 {
    let start = window_start(now, window);
    let secs = |d: chrono::TimeDelta| d.num_microseconds().unwrap_or(i64::MAX) as f64 * 1e-6;
    let (mut area, mut covered) = (0.0, 0.0);
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.at <= start || b.at <= a.at {
            continue;
        }
        let span = secs(b.at - a.at);
        let (from, value_from) = if a.at < start {
            let f = secs(start - a.at) / span;
            (start, a.value + (b.value - a.value) * f)
        } else {
            (a.at, a.value)
        };
        let width = secs(b.at - from);
        area += (value_from + b.value) * 0.5 * width;
        covered += width;
    }
    if covered > 0.0 {
        area / covered
    } else {
        samples.last().map_or(0.0, |s| s.value)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn assess(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &Observation,
    memory: &mut PolicyMemory,
    capacity_slots: f64,
    ready_slots: f64,
    lead: Duration,
    reasons: &mut Vec<String>,
) -> Demand {
    let policy = &spec.policy;
    let util = policy.target_utilization;
    let backlog = obs.queue_depth + obs.held;
    let service = service_time(spec, obs);
    let deadline = spec.request_deadline.0;
    let target = policy.target_queue_wait.0;
    // Once capacity is ready the backlog drains within the target; at zero it waits a
    // boot first, and boot plus drain must fit in the deadline.
    let (horizon, bound) = if ready_slots > 0.0 {
        if target <= deadline {
            (target, "target_queue_wait")
        } else {
            (deadline, "request_deadline")
        }
    } else {
        let after_boot = deadline.saturating_sub(lead);
        if target <= after_boot {
            (target, "target_queue_wait")
        } else {
            (after_boot, "request_deadline − boot lead")
        }
    };
    let horizon = horizon.max(service);
    let service_secs = service.as_secs_f64();
    let drain = |requests: f64| requests * service_secs / horizon.as_secs_f64();
    // The stream itself needs its arrival rate times the service time in flight
    // (Little's law), whether or not it is served yet: at a start from zero nothing is
    // in flight, and the backlog alone would size the fleet for one boot's worth of
    // requests, not for the traffic that keeps coming.
    let rate = memory.history.rate_per_sec(now, policy.stable_window.0);
    let streaming = rate * service_secs;
    let base = (obs.in_flight as f64).max(streaming);
    let mut backlog_concurrency = drain(backlog as f64);
    if ready_slots > 0.0 && backlog > 0 {
        // Ready capacity not taken by the stream drains the backlog while a new instance
        // boots; an instance launched now only serves what is left after a boot lead.
        // Capacity already there is kept (no scale-in mid-drain).
        let spare = (ready_slots - streaming).max(0.0);
        let drained_in_lead = spare * lead.as_secs_f64() / service_secs;
        let left = (backlog as f64 - drained_in_lead).max(0.0);
        let kept = (capacity_slots * util - base).max(0.0);
        let sized = backlog_concurrency.min(kept).max(drain(left));
        if sized < backlog_concurrency {
            reasons.push(format!(
                "backlog {backlog}: {left:.0} left after a boot lead of {} on {ready_slots} ready slots; launching only for those",
                HumanDuration::from(lead)
            ));
            backlog_concurrency = sized;
        }
    }
    let concurrency = base + backlog_concurrency;

    record_series(&mut memory.demand, now, concurrency, policy.stable_window.0);
    let stable = time_weighted_mean(&memory.demand, now, policy.stable_window.0);
    let burst = time_weighted_mean(&memory.demand, now, policy.panic_window.0);
    let stable_slots = stable / util;
    let burst_slots = burst / util;

    if backlog > 0 || obs.in_flight > 0 || rate > 0.0 {
        reasons.push(format!(
            "demand {concurrency:.1}: max({} in flight, {rate:.2}/s × {}) + backlog {backlog} drained over {} ({bound}) (stable mean {stable:.1}, burst mean {burst:.1})",
            obs.in_flight,
            HumanDuration::from(service),
            HumanDuration::from(horizon),
        ));
    }

    let mut entered_panic = false;
    if burst_slots > 0.0 && burst_slots >= policy.panic_threshold * ready_slots {
        if memory.panic_until.is_none_or(|until| until <= now) {
            entered_panic = true;
            reasons.push(format!(
                "burst: {burst_slots:.1} slots wanted over {} ≥ {} × {ready_slots} ready slots",
                policy.panic_window, policy.panic_threshold
            ));
        }
        memory.panic_until = Some(now + policy.stable_window.delta());
    }
    let in_panic = memory.panic_until.is_some_and(|until| until > now);
    if !in_panic {
        memory.panic_until = None;
    }

    let mut slots = if in_panic {
        let held = burst_slots.max(stable_slots).max(capacity_slots);
        if let Some(until) = memory.panic_until.filter(|_| !entered_panic) {
            reasons.push(format!(
                "burst mode holds {held:.1} slots (no scale-in) until {}",
                until.format("%H:%M:%S")
            ));
        }
        held
    } else {
        stable_slots
    };
    if capacity_slots == 0.0 && backlog > 0 {
        let at_once = concurrency / util;
        reasons.push(format!(
            "scale from zero: backlog {backlog} asks for {at_once:.1} slots at once"
        ));
        slots = slots.max(at_once);
    }
    Demand {
        concurrency,
        slots,
        backlog,
    }
}
