//! Spot pools: what an interruption costs, folded into the price allocation compares.
//!
//! A Spot instance may be reclaimed with two minutes' notice. Each interruption wastes
//! billed time: the replacement's boot (billed from launch, serving only once ready)
//! and at most the notice (the warned instance is no longer capacity, and takes no new
//! request in its last [`STOP_DISPATCH_BEFORE_RECLAIM`]). Counting the whole notice
//! overstates the waste a little, on the side of pricing Spot higher. At a rate of `r`
//! interruptions per instance-hour, a fraction `r × (boot + notice)` of a pool's billed
//! hours is wasted, so a served hour costs
//!
//! ```text
//! effective price = price / (1 − r × (boot_time + notice))
//! ```
//!
//! and a pool reclaimed often enough stops being the cheapest per served slot: at 35%
//! of the on-demand price and a 5-minute boot, that happens past about 9 interruptions
//! per instance-hour. The rate is measured per pool over [`WINDOW`] — interruptions
//! recorded by the Spot event handler over the instance-hours the ledger accrued for
//! the pool — with [`PRIOR_INSTANCE_HOURS`] as a floor on the exposure, so one early
//! interruption of a pool that barely ran does not price it out for a day.
//!
//! Work in flight at the warning is not counted as lost: the worker retries it on
//! another instance before its deadline (requests shorter than the notice simply
//! finish). A warned instance that was ready keeps taking requests until
//! [`STOP_DISPATCH_BEFORE_RECLAIM`] before its reclaim
//! (`InstanceRecord::serves_until`): it is not capacity, so its replacement launches at
//! once, but it serves while the replacement boots. Measured in the simulator, draining
//! it at the warning instead cost up to 2.5 points of SLO when interruptions come
//! together (BENCHMARKS.md, "Cost controls in the simulator"). An on-demand pool is
//! never reclaimed, so its effective price is its price.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::config::{CapacityType, Pool};

/// How far back interruptions and exposure are counted.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);
/// EC2's notice before it reclaims a Spot instance.
pub const NOTICE: TimeDelta = TimeDelta::minutes(2);
/// A warned instance takes no new request this close to its reclaim, so requests it
/// starts finish first (longer ones fail with it and are retried on another instance).
pub const STOP_DISPATCH_BEFORE_RECLAIM: TimeDelta = TimeDelta::seconds(30);
/// The least exposure a rate is computed over.
pub const PRIOR_INSTANCE_HOURS: f64 = 1.0;
/// A pool that would waste more than this share of its hours is priced as if it wasted
/// exactly this much (finite, so it still ranks, last).
pub const MAX_WASTED_SHARE: f64 = 0.95;

/// A pool's recent interruptions and how long its instances ran meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolInterruptions {
    /// Interruption warnings within [`WINDOW`].
    pub interruptions: u32,
    /// Instance-hours the pool ran within [`WINDOW`] (boots included).
    pub instance_hours: f64,
}

impl PoolInterruptions {
    /// Interruptions per instance-hour.
    pub fn rate_per_instance_hour(&self) -> f64 {
        f64::from(self.interruptions) / self.instance_hours.max(PRIOR_INSTANCE_HOURS)
    }
}

/// The share of a pool's billed hours that serve, given its interruption rate.
pub fn served_share(pool: &Pool, stats: &PoolInterruptions) -> f64 {
    if pool.capacity_type != CapacityType::Spot {
        return 1.0;
    }
    let waste_hours = (pool.boot_time.delta() + NOTICE).num_milliseconds() as f64 / 3.6e6;
    let wasted = stats.rate_per_instance_hour() * waste_hours;
    1.0 - wasted.min(MAX_WASTED_SHARE)
}

/// The price per served hour of an instance of `pool`.
pub fn effective_price(pool: &Pool, stats: Option<&PoolInterruptions>) -> f64 {
    match stats {
        Some(s) => pool.price_per_hour_usd / served_share(pool, s),
        None => pool.price_per_hour_usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;

    fn spot(price: f64, boot_s: u64) -> Pool {
        Pool {
            name: "spot".into(),
            instance_type: None,
            min_instances: 0,
            max_instances: 4,
            slots: 4,
            price_per_hour_usd: price,
            boot_time: HumanDuration::from_secs(boot_s),
            asg_name: None,
            instance_args: Vec::new(),
            capacity_type: CapacityType::Spot,
            vcpus_per_instance: None,
            warm_pool_size: 0,
            warm_boot_time: None,
            warm_price_per_hour_usd: None,
        }
    }

    #[test]
    fn interruptions_raise_the_price_of_a_spot_pool_only() {
        let p = spot(0.35, 300);
        // No interruptions: the price itself.
        assert_eq!(
            effective_price(&p, Some(&PoolInterruptions::default())),
            0.35
        );
        // 1 per 10 instance-hours, 5 min boot + 2 min notice: 7/600 of hours wasted.
        let rare = PoolInterruptions {
            interruptions: 2,
            instance_hours: 20.0,
        };
        let e = effective_price(&p, Some(&rare));
        assert!((e - 0.35 / (1.0 - 0.1 * 7.0 / 60.0)).abs() < 1e-12, "{e}");
        // Ten per instance-hour: more than the pool saves, dearer than on-demand at 1.0.
        let often = PoolInterruptions {
            interruptions: 10,
            instance_hours: 1.0,
        };
        assert!(effective_price(&p, Some(&often)) > 1.0);
        // One interruption in a pool that ran 6 minutes counts over the prior hour.
        let early = PoolInterruptions {
            interruptions: 1,
            instance_hours: 0.1,
        };
        assert_eq!(early.rate_per_instance_hour(), 1.0);
        // However bad, the price stays finite (at most 20×).
        let hopeless = PoolInterruptions {
            interruptions: 1000,
            instance_hours: 1.0,
        };
        assert!((effective_price(&p, Some(&hopeless)) - 0.35 / 0.05).abs() < 1e-9);
        // An on-demand pool is never reclaimed.
        let mut od = spot(1.0, 300);
        od.capacity_type = CapacityType::OnDemand;
        assert_eq!(effective_price(&od, Some(&often)), 1.0);
    }
}
