//! The policies scale0 is measured against, each behind [`super::Autoscaler`] and each
//! faithful to its documented algorithm and defaults (the module of each cites its
//! sources and says where the simulator had to choose).
//!
//! Common ground, so only the algorithms differ:
//! - one pool, the scenario's cheapest per slot (what a Kubernetes Deployment or an
//!   Auto Scaling group of one instance type is);
//! - the per-instance target of the three target-tracking systems (KEDA, Knative, AWS) is
//!   `target_utilization × slots` concurrent requests, the same utilisation scale0 aims
//!   at (Knative's own default is 70% of container concurrency);
//! - the same worker, queue, deadlines and shedding rules (see the engine).

mod always_on;
mod aws;
mod histogram;
mod keda;
mod keepalive;
mod knative;

pub use always_on::AlwaysOn;
pub use aws::AwsTargetTracking;
pub use histogram::HybridHistogram;
pub use keda::Keda;
pub use keepalive::KeepAlive;
pub use knative::Knative;

use scale0_core::config::Deployment;
use scale0_core::contract::InstanceState;
use scale0_core::policy::Observation;

/// What every baseline needs to know of the deployment.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub spec: Deployment,
    /// The pool it scales.
    pub pool: usize,
    pub slots: u32,
    /// Concurrent requests per instance it aims for.
    pub target: f64,
    /// Boot time of the pool (its configured lead time).
    pub boot: super::Micros,
}

impl Ctx {
    pub fn new(spec: &Deployment, pool: usize, target_utilization: f64) -> Ctx {
        let p = &spec.pools[pool];
        Ctx {
            spec: spec.clone(),
            pool,
            slots: p.slots,
            target: target_utilization * f64::from(p.slots),
            boot: p.boot_time.0.as_micros() as super::Micros,
        }
    }

    fn count(&self, obs: &Observation, f: impl Fn(InstanceState) -> bool) -> u32 {
        let name = &self.spec.pools[self.pool].name;
        obs.instances
            .iter()
            .filter(|i| &i.record.pool == name && f(i.record.state))
            .count() as u32
    }

    /// Instances requested, booting or ready (a Deployment's replicas, an ASG's
    /// desired capacity).
    pub fn capacity(&self, obs: &Observation) -> u32 {
        self.count(obs, InstanceState::is_capacity)
    }

    pub fn ready(&self, obs: &Observation) -> u32 {
        self.count(obs, |s| s == InstanceState::Ready)
    }

    /// Ready instances of the pool with nothing in flight for at least `keep`, most
    /// recently busy last.
    pub fn idle_for(
        &self,
        obs: &Observation,
        signals: &super::Signals,
        keep: super::Micros,
    ) -> Vec<String> {
        let name = &self.spec.pools[self.pool].name;
        let mut idle: Vec<(super::Micros, &str)> = obs
            .instances
            .iter()
            .zip(signals.last_busy)
            .filter(|&(i, &busy)| {
                &i.record.pool == name
                    && i.record.state == InstanceState::Ready
                    && i.in_flight == 0
                    && signals.t - busy >= keep
            })
            .map(|(i, &busy)| (busy, i.record.id.as_str()))
            .collect();
        idle.sort();
        idle.into_iter().map(|(_, id)| id.to_string()).collect()
    }

    /// Instances needed to give every request in the system a slot.
    pub fn needed(&self, requests: u64) -> u32 {
        requests.div_ceil(u64::from(self.slots.max(1))) as u32
    }
}

/// A sliding-window maximum of (time, value) samples.
#[derive(Debug, Clone, Default)]
pub struct WindowMax {
    samples: std::collections::VecDeque<(super::Micros, u32)>,
}

impl WindowMax {
    /// Add `value` at `t` and return the maximum over `[t - window, t]`.
    pub fn push(&mut self, t: super::Micros, value: u32, window: super::Micros) -> u32 {
        while self.samples.back().is_some_and(|&(_, v)| v <= value) {
            self.samples.pop_back();
        }
        self.samples.push_back((t, value));
        while self.samples.front().is_some_and(|&(s, _)| s < t - window) {
            self.samples.pop_front();
        }
        self.samples.front().map_or(0, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_max_forgets_old_peaks() {
        let mut w = WindowMax::default();
        assert_eq!(w.push(0, 3, 10), 3);
        assert_eq!(w.push(5, 1, 10), 3);
        assert_eq!(w.push(10, 0, 10), 3);
        assert_eq!(w.push(11, 0, 10), 1);
        assert_eq!(w.push(16, 0, 10), 0);
    }
}
