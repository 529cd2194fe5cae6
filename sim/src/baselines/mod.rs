//! The policies scale0 is measured against, each behind [`super::Autoscaler`] and each
//! faithful to its documented algorithm and defaults (the module of each cites its
//! sources and says where the simulator had to choose).
//!
//! Each baseline's documented knobs are settings (`KnativeSettings`, …), deserialized
//! from the scenario's `[baselines.<family>]` table with the policy name's inline
//! overrides on top (`knative{scale_down_delay = "5m"}`); their defaults are the
//! platform's documented defaults. Each family also names a `sweep` of its main knobs:
//! the points whose Pareto set is its frontier (see [`crate::frontier`]), so a verdict
//! never rests on one setting the platform's own docs would tell a user to change.
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

pub use always_on::{AlwaysOn, AlwaysOnSettings};
pub use aws::{AwsSettings, AwsTargetTracking};
pub use histogram::{HistogramSettings, HybridHistogram};
pub use keda::{Keda, KedaSettings};
pub use keepalive::{KeepAlive, KeepAliveSettings};
pub use knative::{Knative, KnativeSettings};

use serde::de::DeserializeOwned;

use crate::policy::Family;
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
    /// The policy's name in reports (with its overrides).
    pub label: String,
}

impl Ctx {
    pub fn new(spec: &Deployment, pool: usize, target_utilization: f64, label: String) -> Ctx {
        let p = &spec.pools[pool];
        Ctx {
            spec: spec.clone(),
            pool,
            slots: p.slots,
            target: target_utilization * f64::from(p.slots),
            boot: p.boot_time.0.as_micros() as super::Micros,
            label,
        }
    }

    /// The per-instance target at another utilisation.
    pub fn with_utilization(mut self, utilization: Option<f64>) -> Ctx {
        if let Some(u) = utilization {
            self.target = u * f64::from(self.slots);
        }
        self
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

/// A family's settings: its documented defaults, then the scenario's table, then the
/// policy name's overrides. Errors name the field (`baselines.knative.stable_window`).
pub fn settings<S: DeserializeOwned>(
    family: Family,
    scenario: &toml::Table,
    overrides: &toml::Table,
) -> Result<S, String> {
    let mut merged = scenario.clone();
    merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(".{path}")
        };
        format!("baselines.{}{field}: {}", family.name(), e.into_inner())
    })
}

/// Whether `table` is a valid settings table for `family`.
pub fn check_settings(family: Family, table: &toml::Table) -> Result<(), String> {
    let none = toml::Table::new();
    match family {
        Family::Keda => settings::<KedaSettings>(family, table, &none).map(drop),
        Family::Knative => settings::<KnativeSettings>(family, table, &none).map(drop),
        Family::AwsTargetTracking => settings::<AwsSettings>(family, table, &none).map(drop),
        Family::KeepAlive => settings::<KeepAliveSettings>(family, table, &none).map(drop),
        Family::HybridHistogram => settings::<HistogramSettings>(family, table, &none).map(drop),
        Family::AlwaysOn => settings::<AlwaysOnSettings>(family, table, &none).map(drop),
    }
}

/// The points of `family`'s frontier, as overrides of its settings.
pub fn sweep(family: Family, spec: &Deployment, pool: usize) -> Vec<toml::Table> {
    match family {
        Family::Keda => KedaSettings::sweep(),
        Family::Knative => KnativeSettings::sweep(),
        Family::AwsTargetTracking => AwsSettings::sweep(),
        Family::KeepAlive => KeepAliveSettings::sweep(),
        Family::HybridHistogram => HistogramSettings::sweep(),
        Family::AlwaysOn => AlwaysOnSettings::sweep(spec.pools[pool].max_instances),
    }
}

/// One override table per point of a sweep: the cross product of `axes`.
pub fn grid(axes: &[(&str, Vec<toml::Value>)]) -> Vec<toml::Table> {
    let mut points = vec![toml::Table::new()];
    for (key, values) in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.insert((*key).to_string(), v.clone());
                    q
                })
            })
            .collect();
    }
    points
}

/// TOML duration strings, for sweeps.
pub fn durations(values: &[&str]) -> Vec<toml::Value> {
    values
        .iter()
        .map(|v| toml::Value::String((*v).into()))
        .collect()
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
    fn settings_layer_and_name_the_field() {
        let scenario: toml::Table = toml::from_str("ttl = \"5m\"").unwrap();
        let none = toml::Table::new();
        let s: KeepAliveSettings = settings(Family::KeepAlive, &scenario, &none).unwrap();
        assert_eq!(s.ttl.as_secs_f64(), 300.0);
        let over: toml::Table = toml::from_str("ttl = \"1m\"").unwrap();
        let s: KeepAliveSettings = settings(Family::KeepAlive, &scenario, &over).unwrap();
        assert_eq!(s.ttl.as_secs_f64(), 60.0);
        let bad: toml::Table = toml::from_str("ttl = \"soon\"\nttll = 1").unwrap();
        let e = settings::<KeepAliveSettings>(Family::KeepAlive, &bad, &none).unwrap_err();
        assert!(e.starts_with("baselines.keep-alive"), "{e}");
        assert_eq!(
            grid(&[
                ("a", durations(&["1s", "2s"])),
                ("b", durations(&["x", "y", "z"]))
            ])
            .len(),
            6
        );
    }

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
