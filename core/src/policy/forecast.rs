//! Pre-warm: capacity ready one boot lead before the demand the profile forecasts.
//!
//! Reacting to a request at zero makes it, and every one within a boot lead after it,
//! wait for a boot. The time-of-week profile ([`super::profile`]) says how many
//! requests to expect in any window; the question is when expecting them is worth an
//! instance.
//!
//! The policy already answers it after a request: it keeps one instance idle for the
//! keep-alive `K` (the grace, or the one learned for the cold-start budget), because a
//! request within `K` is worth that much idle time. An instance launched now is ready
//! one boot lead `L` later, so pre-warming now is worth it by the same measure exactly
//! when the forecast expects a request within one keep-alive of that moment:
//!
//! ```text
//! E[arrivals in [now + L, now + L + K]] ≥ 1   →   floor = max(one instance,
//!                                                  forecast rate × S / utilisation)
//! ```
//!
//! with `K` at least a minute (the profile's resolution) and at most an hour (a
//! forecast for an hour ahead of the boot is a keep-alive of a day in disguise). The
//! floor goes into allocation like any other: pool minimums, scheduled floors and
//! ceilings, quotas and budgets still bind. `forecast-only` computes the same floor
//! and only says it in the reasons (what `scale0 explain` shows); `off` skips it.
//!
//! The rule uses one threshold and no tuned constant: a deployment that keeps alive
//! longer (a tighter cold-start budget) also pre-warms for sparser forecasts.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::PolicyMemory;
use super::stabilize::{KEEP_ONE, KeepAlive};
use crate::config::{Deployment, Predictive};
use crate::duration::HumanDuration;

const MIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// What the forecast expected and held, on the decision (for `scale0 explain`, the
/// decision log and whatever exports it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Requests the profile expects in `[window_start, window_end)`.
    pub expected_requests: f64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Slots the forecast holds (`on`) or would hold (`forecast-only`); 0 below one
    /// expected request.
    pub slots: f64,
    /// Whether the slots went into the decision (`on`).
    pub applied: bool,
}

/// The forecast at `now`, or `None` when it is off or the history is too short.
pub(super) fn assess(
    now: DateTime<Utc>,
    spec: &Deployment,
    memory: &PolicyMemory,
    lead: Duration,
    keep_alive: &KeepAlive,
    service: Duration,
    reasons: &mut Vec<String>,
) -> Option<Forecast> {
    let prefix = match spec.policy.predictive {
        Predictive::Off => return None,
        Predictive::ForecastOnly => "forecast-only: ",
        Predictive::On => "forecast: ",
    };
    let applied = spec.policy.predictive == Predictive::On;
    let window = keep_alive.after_idle.clamp(MIN_WINDOW, MAX_WINDOW);
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let window_start = now + delta(lead);
    let window_end = window_start + delta(window);
    let Some(expected) = memory.history.profile.expected(window_start, window_end) else {
        reasons.push(format!(
            "{prefix}no forecast yet (a day of history is needed)"
        ));
        return None;
    };
    let said = format!(
        "{prefix}{expected:.1} requests expected in the {} after a boot lead of {} (window: {})",
        HumanDuration::from(window),
        HumanDuration::from(lead),
        keep_alive.because
    );
    let slots = if expected < 1.0 {
        reasons.push(format!("{said}: no pre-warm"));
        0.0
    } else {
        let rate = expected / window.as_secs_f64();
        let slots = (rate * service.as_secs_f64() / spec.policy.target_utilization).max(KEEP_ONE);
        reasons.push(if applied {
            format!("{said}: pre-warm {slots:.2} slots")
        } else {
            format!("{said}: would pre-warm {slots:.2} slots (changes nothing)")
        });
        slots
    };
    Some(Forecast {
        expected_requests: expected,
        window_start,
        window_end,
        slots,
        applied,
    })
}
