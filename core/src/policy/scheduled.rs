//! Scheduled floors and ceilings.
//!
//! Each scheduled action sets the deployment's floor (`min_instances`) and/or ceiling
//! (`max_instances`) when it fires, until a later firing replaces it, like the
//! scheduled actions of an EC2 Auto Scaling group. The limit active at `t` is therefore
//! a pure function of the config and `t`: for each of floor and ceiling, the value of
//! the action whose latest firing at or before `t` is the most recent (ties go to the
//! action listed last). A missed or repeated scheduler event changes nothing; the event
//! only wakes the control plane.
//!
//! So that capacity is *ready* at the scheduled minute, the floor is read one boot
//! lead time ahead as well: the active floor is the higher of the floor now and the
//! floor at `now + lead`. The ceiling is read at `now` only, and never lies below the
//! floor.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::ScheduledAction;
use crate::schedule::Schedule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledLimit {
    pub instances: u32,
    pub action: String,
    /// The firing that set it.
    pub fired_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledLimits {
    pub floor: Option<ScheduledLimit>,
    pub ceiling: Option<ScheduledLimit>,
    /// The floor comes from a firing within the next lead time.
    pub floor_ahead: bool,
    /// Actions that could not be evaluated (only for configs that skipped validation).
    pub errors: Vec<String>,
}

/// The limit set by the most recent firing at or before `t` among actions that set it.
fn latest(
    actions: &[(&ScheduledAction, Schedule)],
    t: DateTime<Utc>,
    value: impl Fn(&ScheduledAction) -> Option<u32>,
) -> Option<ScheduledLimit> {
    let mut best: Option<ScheduledLimit> = None;
    for (action, schedule) in actions {
        let Some(instances) = value(action) else {
            continue;
        };
        let Some(fired_at) = schedule.latest_at_or_before(t) else {
            continue;
        };
        if best.as_ref().is_none_or(|b| fired_at >= b.fired_at) {
            best = Some(ScheduledLimit {
                instances,
                action: action.name.clone(),
                fired_at,
            });
        }
    }
    best
}

/// The floor and ceiling in force at `now`, with the floor read `lead` ahead too.
pub fn active_limits(
    actions: &[ScheduledAction],
    now: DateTime<Utc>,
    lead: Duration,
) -> ScheduledLimits {
    if actions.is_empty() {
        return ScheduledLimits::default();
    }
    let mut errors = Vec::new();
    let parsed: Vec<(&ScheduledAction, Schedule)> = actions
        .iter()
        .filter_map(|a| match a.schedule() {
            Ok(s) => Some((a, s)),
            Err(e) => {
                errors.push(format!("scheduled action {}: {e}", a.name));
                None
            }
        })
        .collect();
    let ahead = now + chrono::TimeDelta::from_std(lead).unwrap_or_default();
    let floor_now = latest(&parsed, now, |a| a.min_instances);
    let floor_ahead = latest(&parsed, ahead, |a| a.min_instances);
    let ceiling = latest(&parsed, now, |a| a.max_instances);

    let value = |l: &Option<ScheduledLimit>| l.as_ref().map_or(0, |l| l.instances);
    let (floor, is_ahead) = if value(&floor_ahead) > value(&floor_now) {
        (floor_ahead, true)
    } else {
        (floor_now, false)
    };
    let ceiling = ceiling.map(|mut c| {
        c.instances = c.instances.max(value(&floor));
        c
    });
    ScheduledLimits {
        floor,
        ceiling,
        floor_ahead: is_ahead,
        errors,
    }
}

impl ScheduledLimits {
    pub(super) fn explain(&self, lead: Duration, reasons: &mut Vec<String>) {
        reasons.extend(self.errors.iter().cloned());
        if let Some(f) = self.floor.as_ref().filter(|f| f.instances > 0) {
            if self.floor_ahead {
                reasons.push(format!(
                    "scheduled floor {} from {} at {}, started one boot lead time ({}) ahead",
                    f.instances,
                    f.action,
                    f.fired_at,
                    crate::duration::HumanDuration::from(lead)
                ));
            } else {
                reasons.push(format!("scheduled floor {} from {}", f.instances, f.action));
            }
        }
        if let Some(c) = &self.ceiling {
            reasons.push(format!(
                "scheduled ceiling {} from {}",
                c.instances, c.action
            ));
        }
    }
}
