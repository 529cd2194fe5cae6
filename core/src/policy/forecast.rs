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

use super::PolicyMemory;
use super::stabilize::{KEEP_ONE, KeepAlive};
use crate::config::{Deployment, Predictive};
use crate::duration::HumanDuration;

const MIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// The slots the forecast holds now (0 when it holds none, or is off or forecast-only).
pub(super) fn floor(
    now: DateTime<Utc>,
    spec: &Deployment,
    memory: &PolicyMemory,
    lead: Duration,
    keep_alive: &KeepAlive,
    service: Duration,
    reasons: &mut Vec<String>,
) -> f64 {
    let mode = spec.policy.predictive;
    if mode == Predictive::Off {
        return 0.0;
    }
    let window = keep_alive.after_idle.clamp(MIN_WINDOW, MAX_WINDOW);
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let from = now + delta(lead);
    let to = from + delta(window);
    let prefix = match mode {
        Predictive::ForecastOnly => "forecast-only: ",
        _ => "forecast: ",
    };
    let Some(expected) = memory.history.profile.expected(from, to) else {
        reasons.push(format!(
            "{prefix}no forecast yet (a day of history is needed)"
        ));
        return 0.0;
    };
    let window_text = format!(
        "{expected:.1} requests expected in the {} after a boot lead of {} (window: {})",
        HumanDuration::from(window),
        HumanDuration::from(lead),
        keep_alive.because
    );
    if expected < 1.0 {
        reasons.push(format!("{prefix}{window_text}: no pre-warm"));
        return 0.0;
    }
    let rate = expected / window.as_secs_f64();
    let slots = (rate * service.as_secs_f64() / spec.policy.target_utilization).max(KEEP_ONE);
    match mode {
        Predictive::ForecastOnly => {
            reasons.push(format!(
                "{prefix}{window_text}: would pre-warm {slots:.2} slots (changes nothing)"
            ));
            0.0
        }
        _ => {
            reasons.push(format!("{prefix}{window_text}: pre-warm {slots:.2} slots"));
            slots
        }
    }
}
