//! Step rules: "add 2 if gpu_utilization > 0.75 for 5m", each with its own cooldown.
//!
//! A rule breaches while its metric is strictly above its threshold; it fires once the
//! breach has lasted `for`, and not again until `cooldown` has passed. Firing asks for
//! current capacity plus `add` instances. The request joins target tracking's as a
//! recommendation, so scale-down stabilization keeps it for its window (as AWS keeps
//! the larger of several policies' answers).

use chrono::{DateTime, Utc};

use super::{Observation, PolicyMemory};
use crate::config::{Deployment, Metric, StepRule};

/// The key a rule's state is remembered under: changing the rule starts it afresh.
pub fn rule_key(rule: &StepRule) -> String {
    format!("{}>{}/{}", rule.metric, rule.above, rule.sustained_for)
}

fn metric_value(metric: Metric, obs: &Observation) -> Option<f64> {
    match metric {
        Metric::GpuUtilization => obs.gpu_utilization,
        Metric::LatencyP95Ms => obs.latency_p95_ms,
        Metric::QueueDepth => Some((obs.queue_depth + obs.held) as f64),
        Metric::InFlight => Some(obs.in_flight as f64),
    }
}

/// Slots asked for by rules that fire now (0 when none fires).
pub(super) fn evaluate(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &Observation,
    memory: &mut PolicyMemory,
    capacity_slots: f64,
    reasons: &mut Vec<String>,
) -> f64 {
    let rules = &spec.policy.step_rules;
    memory
        .steps
        .retain(|key, _| rules.iter().any(|r| rule_key(r) == *key));
    // A step adds instances of the pool allocation fills first: the cheapest per slot.
    let slots_per_instance = spec
        .pools
        .iter()
        .min_by(|a, b| {
            (a.price_per_hour_usd / f64::from(a.slots))
                .total_cmp(&(b.price_per_hour_usd / f64::from(b.slots)))
        })
        .map_or(1.0, |p| f64::from(p.slots));

    let mut asked = 0.0f64;
    for rule in rules {
        let state = memory.steps.entry(rule_key(rule)).or_default();
        let value = metric_value(rule.metric, obs);
        let Some(value) = value.filter(|v| *v > rule.above) else {
            state.breach_since = None;
            continue;
        };
        let since = *state.breach_since.get_or_insert(now);
        let sustained = now - since >= rule.sustained_for.delta();
        let cooled = state
            .fired_at
            .is_none_or(|fired| now - fired >= rule.cooldown.delta());
        if sustained && cooled {
            state.fired_at = Some(now);
            let slots = capacity_slots + f64::from(rule.add) * slots_per_instance;
            reasons.push(format!(
                "step rule: {} {value} > {} for {} → add {}",
                rule.metric, rule.above, rule.sustained_for, rule.add
            ));
            asked = asked.max(slots);
        }
    }
    asked
}
