//! Health: which instances are capacity, which must drain, which must stop.
//!
//! An instance counts as capacity while it is requested, booting or ready and healthy.
//! It stops counting when it has been booting longer than `boot_timeout`, or when it is
//! unhealthy (state `Unhealthy`, or `unhealthy_after_failures` consecutive failures);
//! target tracking then launches its replacement in the same decision.
//!
//! Nothing with requests in flight is stopped before the drain timeout: an unhealthy
//! instance that is still serving is drained, not killed, and a draining instance
//! stops when it is empty or when `drain_timeout` has passed since draining began. A
//! Spot instance drained by its interruption warning is kept, empty or not, while it
//! still takes requests (`InstanceRecord::serves_until`), then drains like any other.

use chrono::{DateTime, Utc};

use super::{Observation, ObservedInstance};
use crate::config::Deployment;
use crate::contract::InstanceState;

pub(super) struct Health<'a> {
    /// Requested, booting or ready, and healthy.
    pub capacity: Vec<&'a ObservedInstance>,
    /// Draining and staying so for now.
    pub draining: Vec<&'a ObservedInstance>,
    /// To drain now (unhealthy but still serving).
    pub drain: Vec<String>,
    /// To stop now.
    pub terminate: Vec<String>,
}

pub(super) fn assess<'a>(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &'a Observation,
    reasons: &mut Vec<String>,
) -> Health<'a> {
    let policy = &spec.policy;
    let mut h = Health {
        capacity: Vec::new(),
        draining: Vec::new(),
        drain: Vec::new(),
        terminate: Vec::new(),
    };
    for inst in &obs.instances {
        let r = &inst.record;
        let unhealthy = r.state == InstanceState::Unhealthy
            || (r.state.is_capacity() && r.failures >= policy.unhealthy_after_failures);
        let known_pool = spec.pools.iter().any(|p| p.name == r.pool);
        match r.state {
            InstanceState::Terminated => {}
            s if !known_pool && s != InstanceState::Draining => {
                reasons.push(format!(
                    "{} is in pool {}, which is no longer configured",
                    r.id, r.pool
                ));
                if inst.in_flight == 0 {
                    h.terminate.push(r.id.clone());
                } else {
                    h.drain.push(r.id.clone());
                    h.draining.push(inst);
                }
            }
            InstanceState::Draining => {
                let since = r.draining_since.unwrap_or(now);
                if r.serves_until().is_some_and(|t| now < t) {
                    // A warned Spot instance serves while its replacement boots.
                    h.draining.push(inst);
                } else if inst.in_flight == 0 {
                    reasons.push(format!("{} drained", r.id));
                    h.terminate.push(r.id.clone());
                } else if now - since >= policy.drain_timeout.delta() {
                    reasons.push(format!(
                        "{} still has {} in flight after drain timeout {}: stopping",
                        r.id, inst.in_flight, policy.drain_timeout
                    ));
                    h.terminate.push(r.id.clone());
                } else {
                    h.draining.push(inst);
                }
            }
            _ if unhealthy => {
                if inst.in_flight == 0 {
                    reasons.push(format!(
                        "{} unhealthy ({} failures): replacing",
                        r.id, r.failures
                    ));
                    h.terminate.push(r.id.clone());
                } else {
                    reasons.push(format!(
                        "{} unhealthy ({} failures) with {} in flight: draining, replacing",
                        r.id, r.failures, inst.in_flight
                    ));
                    h.drain.push(r.id.clone());
                    h.draining.push(inst);
                }
            }
            s if s.is_booting() && now - r.launched_at >= policy.boot_timeout.delta() => {
                reasons.push(format!(
                    "{} not ready {} after launch (boot timeout {}): replacing",
                    r.id,
                    crate::duration::HumanDuration::from(
                        (now - r.launched_at).to_std().unwrap_or_default()
                    ),
                    policy.boot_timeout
                ));
                if inst.in_flight == 0 {
                    h.terminate.push(r.id.clone());
                } else {
                    h.drain.push(r.id.clone());
                    h.draining.push(inst);
                }
            }
            _ => h.capacity.push(inst),
        }
    }
    h
}

impl Health<'_> {
    fn count(list: &[&ObservedInstance], pool: &str, f: impl Fn(InstanceState) -> bool) -> u32 {
        list.iter()
            .filter(|i| i.record.pool == pool && f(i.record.state))
            .count() as u32
    }

    pub fn capacity_in(&self, pool: &str) -> u32 {
        Self::count(&self.capacity, pool, |_| true)
    }

    pub fn ready_in(&self, pool: &str) -> u32 {
        Self::count(&self.capacity, pool, |s| s == InstanceState::Ready)
    }

    pub fn booting_in(&self, pool: &str) -> u32 {
        Self::count(&self.capacity, pool, InstanceState::is_booting)
    }

    pub fn draining_in(&self, pool: &str) -> u32 {
        Self::count(&self.draining, pool, |_| true)
    }

    fn slots(&self, spec: &Deployment, f: impl Fn(InstanceState) -> bool) -> f64 {
        spec.pools
            .iter()
            .map(|p| f64::from(Self::count(&self.capacity, &p.name, &f)) * f64::from(p.slots))
            .sum()
    }

    /// Slots of instances requested, booting or ready.
    pub fn capacity_slots(&self, spec: &Deployment) -> f64 {
        self.slots(spec, |_| true)
    }

    pub fn ready_slots(&self, spec: &Deployment) -> f64 {
        self.slots(spec, |s| s == InstanceState::Ready)
    }
}
