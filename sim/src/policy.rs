//! The one interface every simulated policy implements, and the adapter that puts
//! scale0's own `decide()` behind it.
//!
//! A policy sees what the control plane sees — the [`Observation`] the Lambda handlers
//! build — and answers with the [`Decision`] they apply. scale0 keeps its
//! [`PolicyMemory`] between calls exactly as the scaler stores it in Redis. Baselines keep
//! their own state, and may read [`Signals`]: sim-side facts their real systems measure
//! and scale0's observation has no field for (Knative's windowed concurrency comes from
//! its queue-proxies, AWS's from one-minute CloudWatch datapoints), all derived from the
//! same simulated queue.
//!
//! When a policy is called is part of the policy: every [`Autoscaler::tick`], plus,
//! after the scenario's activation latency, on the worker's control events it listens
//! to ([`Wakes`]).

use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::trace::{MICROS_PER_SEC, Micros};
use scale0_core::config::Deployment;
use scale0_core::contract::InstanceState;
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation, PolicyMemory, PoolDecision, decide};

/// Facts about the simulated queue that some baselines' real systems measure directly.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// Simulated time now, µs from the start.
    pub t: Micros,
    /// The instant the (possibly delayed) counts in the observation describe.
    pub metric_t: Micros,
    /// ∫ (waiting + in flight) dt from the start to `metric_t`, in request-seconds.
    /// Window averages of concurrency are differences of this.
    pub busy_integral: f64,
    /// Highest waiting + in flight since the previous call (live).
    pub peak_in_system: u64,
    /// Waiting + in flight now (live).
    pub in_system: u64,
    /// When the deployment last became empty (nothing waiting or in flight); `None`
    /// while busy.
    pub idle_since: Option<Micros>,
    /// Idle times of the arrivals since the previous call (time since the previous
    /// request finished, 0 when one was still running), for policies that ask.
    pub idle_times: &'a [Micros],
    /// Per instance of the observation (same order): when it was last busy — now if it
    /// is serving or still booting, else when its last request finished (or when it
    /// became ready, if it has served none).
    pub last_busy: &'a [Micros],
}

/// Worker control events a policy reacts to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wakes {
    /// A request arrived and no instance is ready or booting.
    pub activation: bool,
    /// A request arrived and requests in the system exceed this multiple of ready and
    /// booting slots.
    pub pressure: Option<f64>,
}

/// A scaling policy the engine can drive.
pub trait Autoscaler {
    fn name(&self) -> String;
    /// Period of the policy's own decisions, µs.
    fn tick(&self) -> Micros;
    fn wakes(&self) -> Wakes;
    /// Delay the policy's metric source adds to the scenario's metric delay, µs.
    fn extra_metric_delay(&self) -> Micros {
        0
    }
    /// Whether [`Signals::idle_times`] should be collected.
    fn wants_idle_times(&self) -> bool {
        false
    }
    /// Instances of the reference pool ready at time 0 (billed from 0).
    fn initial_ready(&self) -> u32 {
        0
    }
    /// Whether a call with nothing queued, nothing in flight and no instances at all is
    /// provably a no-op that changes nothing the policy will do later, so the engine
    /// may skip periodic ticks while the deployment stays empty. See
    /// [`Scale0::idle_tick_skip`] for why scale0's qualifies.
    fn idle_skip(&self) -> Option<IdleSkip> {
        None
    }
    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision;
}

/// How the engine may skip ticks while a deployment is empty: skip all but the ticks
/// within `replay` before the next arrival, which it replays as they would have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleSkip {
    /// Ticks older than this before the next event leave no trace in what the policy
    /// will decide.
    pub replay: Micros,
}

/// The policies the simulator knows, by the names scenarios and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// scale0's `decide()`, at the scenario's tick or the one given (`scale0@5s`).
    Scale0 { tick: Option<HumanDuration> },
    /// KEDA RabbitMQ scaler (QueueLength) over the Kubernetes HPA.
    Keda,
    /// Knative Pod Autoscaler.
    Knative,
    /// AWS target tracking (EC2 Auto Scaling / Application Auto Scaling).
    AwsTargetTracking,
    /// Keep each instance for a fixed time after its last request (`keep-alive-10m`,
    /// `keep-alive@5m`).
    KeepAlive { ttl: HumanDuration },
    /// The hybrid histogram policy of "Serverless in the Wild".
    HybridHistogram,
    /// Enough instances for the trace's peak, always on.
    AlwaysOn,
}

impl PolicyKind {
    /// Every policy, in table order.
    pub fn all() -> Vec<PolicyKind> {
        vec![
            PolicyKind::Scale0 { tick: None },
            PolicyKind::Keda,
            PolicyKind::Knative,
            PolicyKind::AwsTargetTracking,
            PolicyKind::KeepAlive {
                ttl: HumanDuration::from_secs(600),
            },
            PolicyKind::HybridHistogram,
            PolicyKind::AlwaysOn,
        ]
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyKind::Scale0 { tick: None } => f.write_str("scale0"),
            PolicyKind::Scale0 { tick: Some(t) } => write!(f, "scale0@{t}"),
            PolicyKind::Keda => f.write_str("keda"),
            PolicyKind::Knative => f.write_str("knative"),
            PolicyKind::AwsTargetTracking => f.write_str("aws-target-tracking"),
            PolicyKind::KeepAlive { ttl } if *ttl == HumanDuration::from_secs(600) => {
                f.write_str("keep-alive-10m")
            }
            PolicyKind::KeepAlive { ttl } => write!(f, "keep-alive@{ttl}"),
            PolicyKind::HybridHistogram => f.write_str("hybrid-histogram"),
            PolicyKind::AlwaysOn => f.write_str("always-on"),
        }
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let duration = |d: &str| d.parse::<HumanDuration>().map_err(|e| e.to_string());
        Ok(match s {
            "scale0" => PolicyKind::Scale0 { tick: None },
            "keda" => PolicyKind::Keda,
            "knative" => PolicyKind::Knative,
            "aws-target-tracking" => PolicyKind::AwsTargetTracking,
            "keep-alive-10m" => PolicyKind::KeepAlive {
                ttl: HumanDuration::from_secs(600),
            },
            "hybrid-histogram" => PolicyKind::HybridHistogram,
            "always-on" => PolicyKind::AlwaysOn,
            other => {
                if let Some(t) = other.strip_prefix("scale0@") {
                    PolicyKind::Scale0 {
                        tick: Some(duration(t)?),
                    }
                } else if let Some(t) = other.strip_prefix("keep-alive@") {
                    PolicyKind::KeepAlive { ttl: duration(t)? }
                } else {
                    return Err(format!(
                        "unknown policy `{other}` (scale0, scale0@<tick>, keda, knative, aws-target-tracking, keep-alive-10m, keep-alive@<ttl>, hybrid-histogram, always-on)"
                    ));
                }
            }
        })
    }
}

/// scale0's `decide()` with its memory, as the scaler runs it.
#[derive(Debug)]
pub struct Scale0 {
    spec: Deployment,
    memory: PolicyMemory,
    tick: Micros,
    label: String,
}

impl Scale0 {
    pub fn new(spec: &Deployment, tick: Micros, label: String) -> Scale0 {
        Scale0 {
            spec: spec.clone(),
            memory: PolicyMemory::default(),
            tick,
            label,
        }
    }

    /// Ticks with no instance, nothing queued, held or in flight only record zero
    /// samples in the memory's windows. `decide` keeps a sample for at most the longest
    /// of `stable_window`, `panic_window` and `scale_down_stabilization` (and at most 256
    /// of them), so a tick older than that window before the next event cannot change
    /// any later decision: replaying just the ticks inside it leaves memory and
    /// decisions exactly as running them all. Not claimed when schedules (time-dependent
    /// floors) or step rules (their own breach clocks) are configured, or a pool has a
    /// minimum. `tests/sim_engine.rs` checks the claim by comparing full reports.
    fn idle_tick_skip(&self) -> Option<IdleSkip> {
        let p = &self.spec.policy;
        if !self.spec.schedules.is_empty()
            || !p.step_rules.is_empty()
            || self.spec.pools.iter().any(|pool| pool.min_instances > 0)
        {
            return None;
        }
        let window = p
            .stable_window
            .max(p.panic_window)
            .max(p.scale_down_stabilization)
            .0
            .as_micros() as Micros;
        Some(IdleSkip {
            replay: window + self.tick,
        })
    }
}

impl Autoscaler for Scale0 {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn tick(&self) -> Micros {
        self.tick
    }

    fn wakes(&self) -> Wakes {
        // The worker publishes `activation` at zero and `pressure` when demand exceeds
        // capacity by the burst threshold (DESIGN.md, "Control events").
        Wakes {
            activation: true,
            pressure: Some(self.spec.policy.panic_threshold),
        }
    }

    fn idle_skip(&self) -> Option<IdleSkip> {
        self.idle_tick_skip()
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, _signals: &Signals) -> Decision {
        let mut d = decide(now, &self.spec, obs, &self.memory);
        self.memory = std::mem::take(&mut d.memory);
        d
    }
}

/// A decision that moves pool `pool` of `spec` to `desired` instances (within the
/// pool's min and max), draining the instances with the fewest requests in flight,
/// not-yet-ready first, newest first — the order Kubernetes' ReplicaSet and scale0's
/// own scale-in use. Baselines compute a count; this turns it into a [`Decision`].
pub fn resize(
    spec: &Deployment,
    pool: usize,
    obs: &Observation,
    now: DateTime<Utc>,
    desired: u32,
    reason: String,
) -> Decision {
    let p = &spec.pools[pool];
    let desired = desired.clamp(p.min_instances, p.max_instances);
    let mut capacity: Vec<_> = obs
        .instances
        .iter()
        .filter(|i| i.record.pool == p.name && i.record.state.is_capacity())
        .collect();
    let current = capacity.len() as u32;
    let mut drain = Vec::new();
    if current > desired {
        capacity.sort_by_key(|i| {
            (
                i.in_flight,
                i.record.state == InstanceState::Ready,
                Reverse(i.record.launched_at),
                i.record.id.as_str(),
            )
        });
        drain = capacity
            .iter()
            .take((current - desired) as usize)
            .map(|i| i.record.id.clone())
            .collect();
    }
    let pools = spec
        .pools
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let mine = |s: fn(InstanceState) -> bool| {
                obs.instances
                    .iter()
                    .filter(|x| x.record.pool == q.name && s(x.record.state))
                    .count() as u32
            };
            let target = if i == pool {
                desired
            } else {
                mine(InstanceState::is_capacity)
            };
            PoolDecision {
                pool: q.name.clone(),
                target,
                ready: mine(|s| s == InstanceState::Ready),
                booting: mine(InstanceState::is_booting),
                draining: mine(|s| s == InstanceState::Draining),
                launch: if i == pool {
                    desired.saturating_sub(current)
                } else {
                    0
                },
            }
        })
        .collect();
    Decision {
        at: now,
        deployment: spec.name.clone(),
        pools,
        drain,
        terminate: Vec::new(),
        cap: None,
        demand: 0.0,
        memory: PolicyMemory::default(),
        reasons: vec![reason],
        commitment: None,
        budgets: Vec::new(),
    }
}

/// A decision for pool `pool` that launches `launch` instances and drains `drain`.
pub fn explicit(
    spec: &Deployment,
    pool: usize,
    obs: &Observation,
    now: DateTime<Utc>,
    launch: u32,
    drain: Vec<String>,
    reason: String,
) -> Decision {
    let p = &spec.pools[pool];
    let current = obs
        .instances
        .iter()
        .filter(|i| i.record.pool == p.name && i.record.state.is_capacity())
        .count() as u32;
    let launch = launch.min(
        p.max_instances
            .saturating_sub(current.saturating_sub(drain.len() as u32)),
    );
    let target = current - (drain.len() as u32).min(current) + launch;
    let mut d = resize(spec, pool, obs, now, current, reason);
    d.drain = drain;
    if let Some(pd) = d.pools.get_mut(pool) {
        pd.target = target;
        pd.launch = launch;
    }
    d
}

/// Seconds to µs.
pub fn secs(s: f64) -> Micros {
    (s * MICROS_PER_SEC as f64).round() as Micros
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for k in PolicyKind::all() {
            assert_eq!(k.to_string().parse::<PolicyKind>().unwrap(), k);
        }
        assert_eq!(
            "scale0@5s".parse::<PolicyKind>().unwrap(),
            PolicyKind::Scale0 {
                tick: Some(HumanDuration::from_secs(5))
            }
        );
        assert_eq!(
            "keep-alive@5m".parse::<PolicyKind>().unwrap().to_string(),
            "keep-alive@5m"
        );
        assert!("hpa".parse::<PolicyKind>().is_err());
    }
}
