//! `decide()`: how many instances of which pool a deployment should have now, and
//! which instances to launch, drain and stop.
//!
//! `decide` is a pure function of its four arguments. It reads no clock and does no
//! I/O; the caller (a Lambda handler, the local runner, the simulator) observes the
//! world, calls it, stores the returned [`PolicyMemory`] and applies the [`Decision`].
//! The same inputs always give the same output, so a decision can be replayed from
//! the decision log and tested at any instant.
//!
//! The pipeline, each step a module:
//!
//! ```text
//! health      boot timeouts, unhealthy and drained instances → stop or drain;
//!             what is left (requested, booting, ready) is capacity
//! history     fold the new complete 10 s arrival bins into the deployment's
//!             arrival history (rate, idle-gap histogram, time-of-week profile)
//! demand      max(in flight, arrival rate × service time) + backlog that must
//!             drain within the deadline, less what ready capacity drains
//!             within a boot lead → slots,
//!             averaged over the stable window, or the panic window in a burst;
//!             at zero capacity, the whole backlog at once
//! steps       "add 2 if gpu_utilization > 0.75 for 5m", with cooldowns
//! stabilize   scale-in takes the highest recommendation of the stabilization
//!             window and at most divides capacity by max_scale_down_rate;
//!             zero only when idle for the grace, or for the keep-alive learned
//!             from the history for the cold-start budget
//! forecast    with `predictive = "on"`, a floor ready one boot lead before the
//!             requests the time-of-week profile expects within a keep-alive
//! scheduled   floors and ceilings of scheduled actions, looking one boot lead
//!             time ahead so capacity is ready at the scheduled minute
//! allocate    slots → instances per pool, cheapest per slot first, within pool
//!             min/max, the pools that can launch now and the budgets' hard caps
//!             (`crate::cost`)
//! scale_in    which instances to drain: fewest in flight first
//! ```

mod allocate;
mod demand;
mod forecast;
mod health;
pub mod history;
pub mod profile;
mod scale_in;
mod scheduled;
mod stabilize;
mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Deployment;
use crate::contract::InstanceRecord;
use crate::cost::CostObservation;
use crate::cost::budget::{self, BudgetStatus, Commitment, Horizons};
use crate::cost::quota::QuotaLimit;

pub use allocate::{Limits, PoolCapacity, allocate};
pub use forecast::Forecast;
pub use scheduled::{ScheduledLimit, ScheduledLimits, active_limits};

/// What the control plane sees of one deployment at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Messages ready in the broker queue, not yet delivered to a worker.
    pub queue_depth: u64,
    /// Requests workers hold unacked, waiting for a ready instance.
    pub held: u64,
    /// Requests being served by instances.
    pub in_flight: u64,
    pub instances: Vec<ObservedInstance>,
    /// Mean GPU utilisation of ready instances (0–1), when a metric source has one.
    #[serde(default)]
    pub gpu_utilization: Option<f64>,
    /// p95 request latency over the last minute, in milliseconds.
    #[serde(default)]
    pub latency_p95_ms: Option<f64>,
    /// When the last request arrived.
    #[serde(default)]
    pub last_arrival_at: Option<DateTime<Utc>>,
    /// Mean service time measured recently; the config's `expected_service_time`
    /// stands in until there is one.
    #[serde(default)]
    pub mean_service_time: Option<Duration>,
    /// Recent boot durations (launch → ready) per pool; their p90 is the lead time.
    #[serde(default)]
    pub recent_boot_times: BTreeMap<String, Vec<Duration>>,
    /// Pools the provider cannot launch into before the given time (insufficient
    /// capacity, quota, throttling).
    #[serde(default)]
    pub unavailable_pools: BTreeMap<String, DateTime<Utc>>,
    /// Budgets and the spend ledger (`crate::cost`).
    #[serde(default)]
    pub cost: CostObservation,
    /// Arrivals per 10 s bin (bin start, seconds since the epoch → count) from
    /// [`history::ArrivalHistory::unfolded_from`] (or as far back as the store keeps)
    /// to now; `decide` folds the complete ones into [`PolicyMemory::history`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub arrival_bins: BTreeMap<i64, u64>,
}

/// An instance and the requests it is serving now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedInstance {
    #[serde(flatten)]
    pub record: InstanceRecord,
    pub in_flight: u32,
}

/// What `decide` remembers between calls. Small and bounded: it is stored in Redis
/// after every decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyMemory {
    /// Demand (concurrency) samples within the stable window.
    #[serde(default)]
    pub demand: Vec<Sample>,
    /// Recommended slots within the scale-down stabilization window.
    #[serde(default)]
    pub recommendations: Vec<Sample>,
    /// Burst mode lasts until this instant.
    #[serde(default)]
    pub panic_until: Option<DateTime<Utc>>,
    /// Since when there has been no backlog and nothing in flight.
    #[serde(default)]
    pub idle_since: Option<DateTime<Utc>>,
    /// Step rules, keyed by [`steps::rule_key`]: when the breach began, when it last fired.
    #[serde(default)]
    pub steps: BTreeMap<String, StepState>,
    #[serde(default)]
    pub last_scale_out_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_scale_in_at: Option<DateTime<Utc>>,
    /// `scale-to-min` budgets holding the deployment at its minimum, since when.
    #[serde(default)]
    pub budgets_at_min: BTreeMap<String, DateTime<Utc>>,
    /// The deployment's arrival history, folded from the observed bins.
    #[serde(default)]
    pub history: history::ArrivalHistory,
}

/// A value at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    #[serde(default)]
    pub breach_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fired_at: Option<DateTime<Utc>>,
}

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub deployment: String,
    pub pools: Vec<PoolDecision>,
    /// Stop sending these instances requests; stop them once empty.
    pub drain: Vec<String>,
    /// Stop these now: drained, past the drain timeout, or never became ready.
    pub terminate: Vec<String>,
    /// Capacity the deployment needs but cannot get (ceilings, max, unavailable
    /// pools): workers shed rather than hold requests for it.
    pub cap: Option<Cap>,
    /// Demand in concurrent requests that the targets were computed from.
    pub demand: f64,
    pub memory: PolicyMemory,
    /// Sentences a person can read, in the order the steps ran.
    pub reasons: Vec<String>,
    /// What the instances after this decision commit to spend, for the other
    /// deployments of its budgets.
    #[serde(default)]
    pub commitment: Option<Commitment>,
    /// Every budget covering the deployment, as this decision saw it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetStatus>,
    /// What the time-of-week forecast expected, with `predictive` on or forecast-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolDecision {
    pub pool: String,
    /// Instances this pool should have: ready plus booting, excluding draining.
    pub target: u32,
    pub ready: u32,
    pub booting: u32,
    pub draining: u32,
    /// New instances to ask the provider for.
    pub launch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap {
    /// Instances the deployment may have now.
    pub max_instances: u32,
    /// Instances demand asked for.
    pub needed_instances: u32,
    pub reason: String,
    /// When capacity can come again, when a limit says (a budget's next period, or
    /// when its spend allows): the `retry-after` of shed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

impl Decision {
    pub fn target_total(&self) -> u32 {
        self.pools.iter().map(|p| p.target).sum()
    }

    pub fn launch_total(&self) -> u32 {
        self.pools.iter().map(|p| p.launch).sum()
    }
}

/// The p90 of recent boot durations of a pool, or its configured boot time.
pub fn boot_lead_time(spec: &Deployment, obs: &Observation, pool: &str) -> Duration {
    let configured = spec
        .pools
        .iter()
        .find(|p| p.name == pool)
        .map(|p| p.boot_time.0)
        .unwrap_or_default();
    match obs.recent_boot_times.get(pool) {
        Some(samples) if !samples.is_empty() => {
            let rank = (samples.len() * 9).div_ceil(10).max(1) - 1;
            // Called on every decision: sort a copy on the stack when it fits (the store
            // keeps 20 boots per pool), the same p90 without an allocation.
            let mut buf = [Duration::ZERO; 32];
            if let Some(sorted) = buf.get_mut(..samples.len()) {
                sorted.copy_from_slice(samples);
                sorted.sort_unstable();
                sorted[rank]
            } else {
                let mut sorted = samples.clone();
                sorted.sort_unstable();
                sorted[rank]
            }
        }
        _ => configured,
    }
}

/// Decide the deployment's capacity at `now`. Pure and deterministic.
pub fn decide(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &Observation,
    memory: &PolicyMemory,
) -> Decision {
    let mut reasons = Vec::new();
    let mut memory = memory.clone();

    // 1. Health: what must stop, what must drain, and what counts as capacity.
    let health = health::assess(now, spec, obs, &mut reasons);

    // 2. Demand and the slots it needs.
    let lead = spec
        .pools
        .iter()
        .map(|p| boot_lead_time(spec, obs, &p.name))
        .max()
        .unwrap_or_default();
    memory.history.fold(&obs.arrival_bins, now, lead);
    let capacity_slots = health.capacity_slots(spec);
    let ready_slots = health.ready_slots(spec);
    let demand = demand::assess(
        now,
        spec,
        obs,
        &mut memory,
        capacity_slots,
        ready_slots,
        lead,
        &mut reasons,
    );

    // 3. Step rules raise the recommendation on top of current capacity.
    let step_slots = steps::evaluate(now, spec, obs, &mut memory, capacity_slots, &mut reasons);
    let recommended = demand.slots.max(step_slots);

    // 4. Stabilize scale-in, and only reach zero when idle long enough.
    let keep_alive = stabilize::keep_alive(now, spec, &memory);
    let stabilized = stabilize::apply(
        now,
        spec,
        obs,
        &mut memory,
        recommended,
        capacity_slots,
        demand.backlog,
        &keep_alive,
        &mut reasons,
    );

    // 4a. Pre-warm for the demand the time-of-week profile forecasts.
    let forecast = forecast::assess(
        now,
        spec,
        &memory,
        lead,
        &keep_alive,
        demand::service_time(spec, obs),
        &mut reasons,
    );
    let stabilized = match &forecast {
        Some(f) if f.applied => stabilized.max(f.slots),
        _ => stabilized,
    };

    // 5. Scheduled floor (looking one lead time ahead) and ceiling.
    let limits = active_limits(&spec.schedules, now, lead);
    limits.explain(lead, &mut reasons);

    // 6. Slots → instances per pool.
    let pools: Vec<PoolCapacity> = spec
        .pools
        .iter()
        .map(|p| PoolCapacity {
            pool: p,
            current: health.capacity_in(&p.name),
            can_launch: obs
                .unavailable_pools
                .get(&p.name)
                .is_none_or(|until| *until <= now),
            effective_price_per_hour_usd: crate::cost::spot::effective_price(
                p,
                obs.cost.interruptions.get(&p.name),
            ),
        })
        .collect();
    for p in &spec.pools {
        if let Some(s) = obs.cost.interruptions.get(&p.name)
            && s.interruptions > 0
        {
            reasons.push(format!(
                "pool {}: {} interruptions over {:.1} instance-hours in 24 h ({:.2} per instance-hour)",
                p.name,
                s.interruptions,
                s.instance_hours,
                s.rate_per_instance_hour()
            ));
        }
    }
    for p in pools.iter().filter(|p| !p.can_launch) {
        reasons.push(format!(
            "pool {} cannot launch until {} (provider error)",
            p.pool.name, obs.unavailable_pools[&p.pool.name]
        ));
    }
    // 6a. Budgets: a hard cap on what this decision may keep and launch.
    let horizons = Horizons::of(spec, obs.cost.decision_interval);
    let leaving = crate::cost::leaving(now, spec, obs, &health.terminate, &health.drain, horizons);
    let capacity: Vec<u32> = pools.iter().map(|p| p.current).collect();
    let (spend, budgets) = budget::limit(
        now,
        &obs.cost.budgets,
        &budget::Current {
            spec,
            capacity: &capacity,
            leaving_usd: leaving.usd,
            horizons,
        },
        &memory.budgets_at_min,
    );
    memory
        .budgets_at_min
        .retain(|name, _| budgets.iter().any(|b| b.at_min && &b.budget == name));
    for b in budgets.iter().filter(|b| b.at_min) {
        memory.budgets_at_min.entry(b.budget.clone()).or_insert(now);
    }
    // 6b. Quotas shared with other deployments: no launch past one.
    let leaving_per_pool: Vec<u32> = spec
        .pools
        .iter()
        .map(|p| health.draining_in(&p.name))
        .collect();
    let quotas: Vec<QuotaLimit> = obs
        .cost
        .quotas
        .iter()
        .map(|q| QuotaLimit::of(spec, q, &leaving_per_pool))
        .collect();
    let allocation = allocate(
        &pools,
        stabilized,
        &Limits {
            floor: limits.floor.as_ref().map_or(0, |l| l.instances),
            ceiling: limits.ceiling.as_ref().map(|l| l.instances),
            spend: spend.as_ref(),
            quotas: &quotas,
            on_demand_base: spec.on_demand_base,
        },
    );
    reasons.extend(allocation.reasons.iter().cloned());

    // 7. Launch what is missing, drain what is extra.
    let mut drain = health.drain.clone();
    let mut pool_decisions = Vec::with_capacity(spec.pools.len());
    for (p, &target) in spec.pools.iter().zip(&allocation.counts) {
        let current = health.capacity_in(&p.name);
        let launch = target.saturating_sub(current);
        if current > target {
            let chosen = scale_in::choose(&health.capacity, &p.name, current - target);
            reasons.push(format!(
                "pool {}: {current} → {target}, draining {}",
                p.name,
                chosen.join(", ")
            ));
            drain.extend(chosen);
        } else if launch > 0 {
            reasons.push(format!(
                "pool {}: {current} → {target}, launching {launch}",
                p.name
            ));
        }
        pool_decisions.push(PoolDecision {
            pool: p.name.clone(),
            target,
            ready: health.ready_in(&p.name),
            booting: health.booting_in(&p.name),
            draining: health.draining_in(&p.name),
            launch,
        });
    }

    let total_target: u32 = allocation.counts.iter().sum();
    let total_current = health.capacity.len() as u32;
    if total_target > total_current {
        memory.last_scale_out_at = Some(now);
    } else if total_target < total_current {
        memory.last_scale_in_at = Some(now);
    }

    let mut commitment = budget::commitment(
        spec,
        &capacity,
        &allocation.counts,
        leaving.usd,
        leaving.burn_usd_per_hour,
        horizons,
    );
    commitment.quota_vcpus = crate::cost::quota::holdings(&quotas, &capacity, &allocation.counts);

    Decision {
        at: now,
        deployment: spec.name.clone(),
        pools: pool_decisions,
        drain,
        terminate: health.terminate,
        cap: allocation.cap,
        demand: demand.concurrency,
        memory,
        reasons,
        commitment: Some(commitment),
        budgets,
        forecast,
    }
}

#[cfg(test)]
mod tests;
