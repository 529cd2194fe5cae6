//! Cost controls, pure: what spend is, what a budget allows, and the observation of
//! them that `decide()` receives.
//!
//! ```text
//! ledger   billing (per second, 60 s minimum) and spend buckets (quarter, hour, day)
//! period   a budget's current period: daily, monthly in a time zone, or rolling
//! budget   the hard invariant: what the cap allows this decision to keep and launch
//! quota    service quotas in vCPUs, shared by pools of several deployments
//! spot     what interruptions add to a Spot pool's price per served hour
//! ```
//!
//! The state store keeps the ledger in Redis and fills a [`CostObservation`]; `decide`
//! turns it into limits for allocation ([`budget::SpendLimit`]) and publishes the
//! deployment's [`budget::Commitment`], which the next decisions of the other
//! deployments in a budget's scope read. Nothing here reads a clock or does I/O.

pub mod budget;
pub mod ledger;
pub mod period;
pub mod quota;
pub mod spot;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Deployment;
use crate::policy::Observation;
use budget::{BudgetObservation, Horizons};
use quota::QuotaObservation;
use spot::PoolInterruptions;

/// The longest gap between two decisions that the budget rule assumes when the caller
/// says nothing: EventBridge's one-minute tick.
pub const DEFAULT_DECISION_INTERVAL: Duration = Duration::from_secs(60);

/// What the control plane knows about cost when it decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostObservation {
    /// Every budget that covers the deployment.
    #[serde(default)]
    pub budgets: Vec<BudgetObservation>,
    /// The longest time until this deployment's next decision: the tick.
    #[serde(default = "default_interval")]
    pub decision_interval: Duration,
    /// Every quota that covers one of the deployment's pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaObservation>,
    /// Spot pools' recent interruptions, by pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub interruptions: BTreeMap<String, PoolInterruptions>,
}

fn default_interval() -> Duration {
    DEFAULT_DECISION_INTERVAL
}

impl Default for CostObservation {
    fn default() -> Self {
        CostObservation {
            budgets: Vec::new(),
            decision_interval: DEFAULT_DECISION_INTERVAL,
            quotas: Vec::new(),
            interruptions: BTreeMap::new(),
        }
    }
}

/// What this decision cannot change about spend: the instances already leaving
/// (draining, or stopped by this decision), and what they cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leaving {
    /// What they will still cost after now.
    pub usd: f64,
    /// What those still running cost per hour.
    pub burn_usd_per_hour: f64,
}

/// The instances of `obs` that are not capacity and still bill: draining ones, those
/// this decision stops (`terminate`) and those it drains for health (`drain`).
pub fn leaving(
    now: DateTime<Utc>,
    spec: &Deployment,
    obs: &Observation,
    terminate: &[String],
    drain: &[String],
    h: Horizons,
) -> Leaving {
    let mut out = Leaving {
        usd: 0.0,
        burn_usd_per_hour: 0.0,
    };
    for inst in &obs.instances {
        let r = &inst.record;
        let stopping = terminate.contains(&r.id);
        let drain_now = drain.contains(&r.id);
        let draining = r.state == crate::contract::InstanceState::Draining;
        if !(stopping || drain_now || draining) {
            continue;
        }
        // An instance of a pool no longer configured is billed at the dearest price.
        let price = spec
            .pools
            .iter()
            .find(|p| p.name == r.pool)
            .or_else(|| {
                spec.pools
                    .iter()
                    .max_by(|a, b| a.price_per_hour_usd.total_cmp(&b.price_per_hour_usd))
            })
            .map_or(0.0, |p| p.price_per_hour_usd);
        out.usd += budget::leaving_usd(inst, stopping, drain_now, price, now, h);
        if !stopping {
            out.burn_usd_per_hour += price;
        }
    }
    out
}
