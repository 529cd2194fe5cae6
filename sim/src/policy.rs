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
//! to ([`WorkerEvents`]).

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

/// Worker control events a policy reacts to, and how often its platform sends them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerEvents {
    /// A request arrived and no instance is ready or booting: wake the policy, at most
    /// once per this interval (`None`: never).
    pub activation: Option<Micros>,
    /// A request arrived and requests in the system exceed a multiple of ready and
    /// booting slots.
    pub pressure: Option<Pressure>,
}

/// The `pressure` event: its threshold and the least time between two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    pub threshold: f64,
    pub interval: Micros,
}

impl WorkerEvents {
    /// A policy that only runs on its own period.
    pub const NONE: WorkerEvents = WorkerEvents {
        activation: None,
        pressure: None,
    };

    /// A platform that places requests itself: it sees each one at once, and starts an
    /// instance for a request no instance can take (FaaS scale-out, the Knative
    /// activator).
    pub const PER_REQUEST: WorkerEvents = WorkerEvents {
        activation: Some(0),
        pressure: Some(Pressure {
            threshold: 1.0,
            interval: 0,
        }),
    };
}

/// How the platform in front of a policy's instances picks one for a request: the
/// worker's own rule ([`scale0_core::worker::Dispatch`]), which the engine runs.
pub use scale0_core::worker::Dispatch;

/// A scaling policy the engine can drive.
pub trait Autoscaler {
    fn name(&self) -> String;
    /// Period of the policy's own decisions, µs.
    fn tick(&self) -> Micros;
    fn worker_events(&self) -> WorkerEvents;
    fn dispatch(&self) -> Dispatch {
        Dispatch::LeastOutstanding
    }
    /// Delay the policy's metric source adds to the scenario's metric delay, µs.
    fn extra_metric_delay(&self) -> Micros {
        0
    }
    /// Whether [`Signals::idle_times`] should be collected.
    fn wants_idle_times(&self) -> bool {
        false
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

/// The baseline families, by the names scenarios and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// KEDA RabbitMQ scaler (QueueLength) over the Kubernetes HPA.
    Keda,
    /// Knative Pod Autoscaler.
    Knative,
    /// AWS target tracking (EC2 Auto Scaling / Application Auto Scaling).
    AwsTargetTracking,
    /// Keep each instance for a fixed time after its last request.
    KeepAlive,
    /// The hybrid histogram policy of "Serverless in the Wild".
    HybridHistogram,
    /// A fixed fleet, always on.
    AlwaysOn,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Keda,
        Family::Knative,
        Family::AwsTargetTracking,
        Family::KeepAlive,
        Family::HybridHistogram,
        Family::AlwaysOn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Keda => "keda",
            Family::Knative => "knative",
            Family::AwsTargetTracking => "aws-target-tracking",
            Family::KeepAlive => "keep-alive",
            Family::HybridHistogram => "hybrid-histogram",
            Family::AlwaysOn => "always-on",
        }
    }
}

/// The policies the simulator knows. A baseline may carry settings that override its
/// documented defaults and the scenario's `[baselines.<family>]` table, written as an
/// inline TOML table after its name: `knative{scale_down_delay = "5m"}`.
/// `keep-alive@5m` is short for `keep-alive{ttl = "5m"}` (and `keep-alive-10m` for
/// the default, 10 minutes). scale0's settings are those of the deployment's
/// `[policy]`: `scale0{cold_start_budget = 0.01}`.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    /// scale0's `decide()`, at the scenario's tick or the one given (`scale0@5s`), with
    /// `policy` overriding the scenario deployment's `[policy]` settings.
    Scale0 {
        tick: Option<HumanDuration>,
        policy: toml::Table,
    },
    Baseline {
        family: Family,
        overrides: toml::Table,
    },
}

impl PolicyKind {
    /// scale0 with the scenario's settings, at `tick` (or the scenario's).
    pub fn scale0(tick: Option<HumanDuration>) -> PolicyKind {
        PolicyKind::Scale0 {
            tick,
            policy: toml::Table::new(),
        }
    }

    pub fn baseline(family: Family) -> PolicyKind {
        PolicyKind::Baseline {
            family,
            overrides: toml::Table::new(),
        }
    }

    /// scale0 and every baseline at its defaults, in table order.
    pub fn all() -> Vec<PolicyKind> {
        std::iter::once(PolicyKind::scale0(None))
            .chain(Family::ALL.into_iter().map(PolicyKind::baseline))
            .collect()
    }

    pub fn family(&self) -> Option<Family> {
        match self {
            PolicyKind::Scale0 { .. } => None,
            PolicyKind::Baseline { family, .. } => Some(*family),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyKind::Scale0 { tick, policy } => {
                f.write_str("scale0")?;
                if let Some(t) = tick {
                    write!(f, "@{t}")?;
                }
                write_settings(f, policy)
            }
            PolicyKind::Baseline { family, overrides } => {
                f.write_str(family.name())?;
                if *family == Family::KeepAlive
                    && overrides.len() == 1
                    && let Some(toml::Value::String(ttl)) = overrides.get("ttl")
                {
                    return write!(f, "@{ttl}");
                }
                write_settings(f, overrides)
            }
        }
    }
}

fn write_settings(f: &mut fmt::Formatter<'_>, settings: &toml::Table) -> fmt::Result {
    if !settings.is_empty() {
        let settings: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{{{}}}", settings.join(", "))?;
    }
    Ok(())
}

/// `spec` with `settings` over its `[policy]`, validated as a config would be.
pub fn with_policy_settings(
    spec: &Deployment,
    settings: &toml::Table,
) -> Result<Deployment, String> {
    let mut value = serde_json::to_value(spec).map_err(|e| e.to_string())?;
    let overrides = serde_json::to_value(settings).map_err(|e| e.to_string())?;
    if let (Some(policy), serde_json::Value::Object(o)) = (value.get_mut("policy"), overrides)
        && let Some(policy) = policy.as_object_mut()
    {
        policy.extend(o);
    }
    let config: scale0_core::config::Config =
        serde_json::from_value(serde_json::json!({ "deployments": [value] }))
            .map_err(|e| format!("scale0 settings: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config
        .deployments
        .into_iter()
        .next()
        .unwrap_or_else(|| spec.clone()))
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let duration = |d: &str| d.parse::<HumanDuration>().map_err(|e| e.to_string());
        let unknown = || {
            format!(
                "unknown policy `{s}` (scale0, scale0@<tick>, {}, each optionally with settings: knative{{scale_down_delay = \"5m\"}}; keep-alive@<ttl>)",
                Family::ALL.map(Family::name).join(", ")
            )
        };
        if s == "keep-alive-10m" {
            return Ok(PolicyKind::baseline(Family::KeepAlive));
        }
        if let Some(t) = s.strip_prefix("keep-alive@") {
            duration(t)?;
            let mut overrides = toml::Table::new();
            overrides.insert("ttl".into(), toml::Value::String(t.into()));
            return Ok(PolicyKind::Baseline {
                family: Family::KeepAlive,
                overrides,
            });
        }
        let (name, settings) = match s.find('{') {
            Some(i) => (s[..i].trim(), Some(&s[i..])),
            None => (s.trim(), None),
        };
        let overrides = match settings {
            None => toml::Table::new(),
            Some(inline) => {
                let mut doc: toml::Table =
                    toml::from_str(&format!("v = {inline}")).map_err(|e| {
                        format!(
                            "policy `{s}`: its settings are not a TOML inline table: {}",
                            e.message()
                        )
                    })?;
                match doc.remove("v") {
                    Some(toml::Value::Table(t)) => t,
                    _ => {
                        return Err(format!(
                            "policy `{s}`: its settings are not a TOML inline table"
                        ));
                    }
                }
            }
        };
        if name == "scale0" || name.starts_with("scale0@") {
            let tick = name.strip_prefix("scale0@").map(duration).transpose()?;
            return Ok(PolicyKind::Scale0 {
                tick,
                policy: overrides,
            });
        }
        let family = Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(unknown)?;
        Ok(PolicyKind::Baseline { family, overrides })
    }
}

/// scale0's `decide()` with its memory, as the scaler runs it.
#[derive(Debug)]
pub struct Scale0 {
    spec: Deployment,
    memory: PolicyMemory,
    tick: Micros,
    worker_events: WorkerEvents,
    label: String,
}

impl Scale0 {
    /// `activation_interval` and `pressure_interval` are the worker's rate limits on
    /// its control events (see the scenario's `[control]`).
    pub fn new(
        spec: &Deployment,
        tick: Micros,
        activation_interval: Micros,
        pressure_interval: Micros,
        label: String,
    ) -> Scale0 {
        // The worker publishes `activation` at zero and `pressure` when demand exceeds
        // capacity by the burst threshold (DESIGN.md, "Control events").
        let worker_events = WorkerEvents {
            activation: Some(activation_interval),
            pressure: Some(Pressure {
                threshold: spec.policy.panic_threshold,
                interval: pressure_interval,
            }),
        };
        Scale0 {
            spec: spec.clone(),
            memory: PolicyMemory::default(),
            tick,
            worker_events,
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

    fn worker_events(&self) -> WorkerEvents {
        self.worker_events
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
        forecast: None,
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
        for name in [
            "scale0@5s",
            "keep-alive@5m",
            "knative{scale_down_delay=\"5m\"}",
            "hybrid-histogram{keep_alive_floor=\"10m\", range=\"1h\"}",
            "always-on{instances=3}",
        ] {
            assert_eq!(name.parse::<PolicyKind>().unwrap().to_string(), name);
        }
        assert_eq!(
            "keep-alive-10m".parse::<PolicyKind>().unwrap(),
            PolicyKind::baseline(Family::KeepAlive)
        );
        assert!("hpa".parse::<PolicyKind>().is_err());
        let e = "knative{scale_down_delay=}"
            .parse::<PolicyKind>()
            .unwrap_err();
        assert!(e.contains("inline table"), "{e}");
    }
}
