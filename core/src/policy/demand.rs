//! Demand: how many concurrent requests the deployment must serve, and the slots
//! that takes at the target utilisation.
//!
//! Concurrency is what is in flight plus the backlog (queued and held requests)
//! spread over the time it may take to drain: a backlog of `B` requests of mean
//! service time `S` that must finish within the request deadline `D` needs `B·S/D`
//! more concurrent slots (Little's law). At zero ready capacity the backlog must also
//! wait for a boot, so it has `D − boot lead` to drain.
//!
//! Like Knative's KPA, normal mode follows the mean over the stable window (60 s):
//! a one-second blip does not buy a GPU. Burst (panic) mode starts when the mean over
//! the short panic window reaches `panic_threshold` × ready capacity; it follows the
//! short window and never scales down until a stable window has passed without a
//! burst. At zero capacity a backlog asks at once for all the capacity it needs,
//! without averaging.

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

/// Record `value` at `now` and drop samples older than `window`.
pub(super) fn record(samples: &mut Vec<Sample>, now: DateTime<Utc>, value: f64, window: Duration) {
    let oldest = now - chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
    samples.retain(|s| s.at > oldest && s.at <= now);
    samples.push(Sample { at: now, value });
    if samples.len() > MAX_SAMPLES {
        samples.drain(..samples.len() - MAX_SAMPLES);
    }
}

/// Mean of the samples within `window` of `now` (the latest sample always counts).
fn mean_within(samples: &[Sample], now: DateTime<Utc>, window: Duration) -> f64 {
    let oldest = now - chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::MAX);
    // Two passes instead of collecting: this runs twice per decision, and the sum is
    // taken in the same order, so the mean is bit-for-bit the same.
    let recent = || samples.iter().filter(|s| s.at > oldest).map(|s| s.value);
    let n = recent().count();
    if n == 0 {
        0.0
    } else {
        recent().sum::<f64>() / n as f64
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
    let service = obs
        .mean_service_time
        .filter(|s| !s.is_zero())
        .unwrap_or(spec.expected_service_time.0);
    let deadline = spec.request_deadline.0;
    let horizon = if ready_slots > 0.0 {
        deadline
    } else {
        deadline.saturating_sub(lead).max(service)
    };
    let backlog_concurrency = backlog as f64 * service.as_secs_f64() / horizon.as_secs_f64();
    let concurrency = obs.in_flight as f64 + backlog_concurrency;

    record(&mut memory.demand, now, concurrency, policy.stable_window.0);
    let stable = mean_within(&memory.demand, now, policy.stable_window.0);
    let burst = mean_within(&memory.demand, now, policy.panic_window.0);
    let stable_slots = stable / util;
    let burst_slots = burst / util;

    if backlog > 0 || obs.in_flight > 0 {
        reasons.push(format!(
            "demand {concurrency:.1}: {} in flight + backlog {backlog} × {} / {} (stable mean {stable:.1}, burst mean {burst:.1})",
            obs.in_flight,
            HumanDuration::from(service),
            HumanDuration::from(horizon),
        ));
    }

    if burst_slots > 0.0 && burst_slots >= policy.panic_threshold * ready_slots {
        if memory.panic_until.is_none_or(|until| until <= now) {
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
        burst_slots.max(stable_slots).max(capacity_slots)
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
