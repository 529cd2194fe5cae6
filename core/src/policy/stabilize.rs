//! Scale-in, slowly; scale-out, at once.
//!
//! As the Kubernetes HPA does, a recommendation above current capacity is taken at
//! once, while scale-in follows the highest recommendation of the last
//! `scale_down_stabilization` window, and, as Knative's `max-scale-down-rate`, never
//! divides capacity by more than `max_scale_down_rate` in one decision.
//!
//! Zero is special: the deployment goes to zero only when every recommendation in the
//! window is zero, nothing is queued, held or in flight, and it has been idle for
//! `scale_to_zero_grace` since the later of the idle start and the last arrival. Until
//! then it keeps at least one instance. Reaching zero skips the rate limit (otherwise
//! halving would never reach it).
//!
//! With `cold_start_budget` set and enough history, the keep-alive is the one
//! [`super::history::ArrivalHistory::keep_alive`] learns (the shortest that would have
//! kept that share of requests from waiting for a boot) instead of the grace, and the
//! deployment may reach zero once the recommendation *now* is zero: the window exists
//! to keep capacity through dips in load, and the learned keep-alive already is the
//! measured answer to how long a dip lasts.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::demand::record;
use super::{Observation, PolicyMemory};
use crate::config::Deployment;
use crate::duration::HumanDuration;

/// Slots small enough to round up to one instance of the cheapest pool.
pub(super) const KEEP_ONE: f64 = 1e-6;

/// How long an idle deployment keeps one instance, and why.
pub(super) struct KeepAlive {
    pub after_idle: Duration,
    pub because: String,
    /// Learned from the history for the cold-start budget (not the grace).
    pub learned: bool,
}

/// The keep-alive learned for the cold-start budget once the history allows, else the
/// configured grace.
pub(super) fn keep_alive(
    now: DateTime<Utc>,
    spec: &Deployment,
    memory: &PolicyMemory,
) -> KeepAlive {
    let policy = &spec.policy;
    match policy
        .cold_start_budget
        .and_then(|b| memory.history.keep_alive(b, now).map(|k| (b, k)))
    {
        Some((budget, k)) => KeepAlive {
            after_idle: k,
            because: format!("keep-alive learned for cold_start_budget {budget}"),
            learned: true,
        },
        None => KeepAlive {
            after_idle: policy.scale_to_zero_grace.0,
            because: "grace".to_string(),
            learned: false,
        },
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn apply(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &Observation,
    memory: &mut PolicyMemory,
    recommended: f64,
    capacity_slots: f64,
    backlog: u64,
    keep_alive: &KeepAlive,
    reasons: &mut Vec<String>,
) -> f64 {
    let policy = &spec.policy;
    let idle = backlog == 0 && obs.in_flight == 0;
    memory.idle_since = if idle {
        Some(memory.idle_since.unwrap_or(now))
    } else {
        None
    };

    record(
        &mut memory.recommendations,
        now,
        recommended,
        policy.scale_down_stabilization.0,
    );
    if recommended >= capacity_slots {
        return recommended;
    }

    let window_max = memory
        .recommendations
        .iter()
        .map(|s| s.value)
        .fold(0.0f64, f64::max)
        .min(capacity_slots);
    if window_max > recommended {
        reasons.push(format!(
            "scale-in held at {window_max:.1} slots: highest recommendation of the last {}",
            policy.scale_down_stabilization
        ));
    }

    // With a cold-start budget the keep-alive learned from the history replaces the
    // grace, and the stabilization window does not hold a fleet that has nothing to do.
    let KeepAlive {
        after_idle: keep_alive,
        because,
        learned,
    } = keep_alive;
    let may_reach_zero = if *learned {
        recommended == 0.0
    } else {
        window_max == 0.0
    };
    if may_reach_zero {
        let idle_from = match (memory.idle_since, obs.last_arrival_at) {
            (Some(idle), Some(arrival)) => Some(idle.max(arrival)),
            (idle, _) => idle,
        };
        let idle_for = idle_from.map(|from| now - from);
        let keep_alive_delta =
            chrono::TimeDelta::from_std(*keep_alive).unwrap_or(chrono::TimeDelta::MAX);
        if let Some(idle_for) = idle_for
            && idle_for >= keep_alive_delta
        {
            reasons.push(format!(
                "idle {} ≥ {} ({because}): scaling to zero",
                HumanDuration::from(idle_for.to_std().unwrap_or_default()),
                HumanDuration::from(*keep_alive)
            ));
            return 0.0;
        }
        reasons.push(format!(
            "no demand, keeping one instance until idle for {} ({because})",
            HumanDuration::from(*keep_alive)
        ));
    }

    let floor_by_rate = capacity_slots / policy.max_scale_down_rate;
    if floor_by_rate > window_max {
        reasons.push(format!(
            "scale-in limited to {floor_by_rate:.1} slots by max_scale_down_rate {}",
            policy.max_scale_down_rate
        ));
    }
    window_max.max(floor_by_rate).max(KEEP_ONE)
}
