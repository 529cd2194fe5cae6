//! Slots → instances per pool.
//!
//! Allocation is sticky: it starts from the instances that exist and changes only the
//! margin, because swapping a ready instance for a cheaper one costs a whole boot.
//! To grow, it adds one instance at a time from the pool whose next instance buys the
//! missing slots cheapest (effective price per hour over the slots it actually covers:
//! a Spot pool's price is raised by its recent interruptions, `crate::cost::spot`), so
//! a small remainder goes to a small cheap instance rather than a big one. To shrink,
//! it removes the dearest instance per slot while what remains still covers the need.
//! Each pool stays within its min and max; a pool the provider cannot launch into now
//! keeps what it has; a launch into a pool a service quota covers must keep every
//! deployment's use of the quota within it (`crate::cost::quota`), else the next pool
//! is tried. The deployment's first `on_demand_base` instances are on-demand: growth
//! takes on-demand pools first until the base is met, an on-demand instance within the
//! base is the last to go, and a deployment that runs Spot below its base launches
//! on-demand (the Spot instance it then no longer needs goes at a later decision). A
//! scheduled floor then adds the cheapest instances, and a scheduled ceiling removes
//! the dearest.
//!
//! Demand the pools cannot cover is reported as a cap, so the worker can shed instead
//! of holding requests for capacity that will not come.

use chrono::{DateTime, Utc};

use super::Cap;
use crate::config::{CapacityType, Pool};
use crate::cost::budget::SpendLimit;
use crate::cost::quota::QuotaLimit;

#[derive(Debug, Clone, Copy)]
pub struct PoolCapacity<'a> {
    pub pool: &'a Pool,
    /// Instances requested, booting or ready.
    pub current: u32,
    /// False while the provider reports the pool unavailable.
    pub can_launch: bool,
    /// The price allocation compares: the pool's, or a Spot pool's raised by its
    /// interruptions (`crate::cost::spot::effective_price`).
    pub effective_price_per_hour_usd: f64,
}

impl<'a> PoolCapacity<'a> {
    /// A pool at its own price.
    pub fn new(pool: &'a Pool, current: u32, can_launch: bool) -> Self {
        PoolCapacity {
            pool,
            current,
            can_launch,
            effective_price_per_hour_usd: pool.price_per_hour_usd,
        }
    }
}

/// What bounds the allocation besides the pools' own min and max.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits<'a> {
    /// Scheduled floor and ceiling on the total.
    pub floor: u32,
    pub ceiling: Option<u32>,
    /// The tightest budget (`crate::cost::budget`): a hard cap, above every floor.
    pub spend: Option<&'a SpendLimit>,
    /// Quotas covering the deployment's pools: no launch past one.
    pub quotas: &'a [QuotaLimit],
    /// The deployment's first instances that must be on-demand.
    pub on_demand_base: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Target instances per pool, in the order given.
    pub counts: Vec<u32>,
    /// Set when demand is not covered, or a limit cut what runs.
    pub cap: Option<Cap>,
    pub reasons: Vec<String>,
}

const EPSILON: f64 = 1e-9;

pub fn allocate(pools: &[PoolCapacity], slots: f64, limits: &Limits) -> Allocation {
    let (floor, ceiling, spend) = (limits.floor, limits.ceiling, limits.spend);
    let at_min = spend.and_then(|s| s.scale_to_min.as_deref());
    let current: Vec<u32> = pools.iter().map(|p| p.current).collect();
    let upper: Vec<u32> = pools
        .iter()
        .map(|p| {
            let up = if p.can_launch {
                p.pool.max_instances
            } else {
                p.current.min(p.pool.max_instances)
            };
            if at_min.is_some() {
                up.min(p.pool.min_instances)
            } else {
                up
            }
        })
        .collect();
    let lower: Vec<u32> = pools
        .iter()
        .zip(&upper)
        .map(|(p, &up)| p.pool.min_instances.min(up))
        .collect();
    let mut counts: Vec<u32> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| p.current.clamp(lower[i], upper[i]))
        .collect();
    let slots_of = |i: usize| f64::from(pools[i].pool.slots);
    let price_of = |i: usize| pools[i].effective_price_per_hour_usd;
    let on_demand = |i: usize| pools[i].pool.capacity_type == CapacityType::OnDemand;
    let covered = |counts: &[u32]| -> f64 {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| f64::from(c) * slots_of(i))
            .sum()
    };
    let on_demand_count = |counts: &[u32]| -> u32 {
        counts
            .iter()
            .enumerate()
            .filter(|&(i, _)| on_demand(i))
            .map(|(_, &c)| c)
            .sum()
    };
    // What the counts commit under the budget rule, and whether that fits.
    let committed = |counts: &[u32]| -> f64 {
        spend.map_or(0.0, |s| {
            counts
                .iter()
                .enumerate()
                .map(|(i, &c)| s.pools[i].of_target(pools[i].current, c))
                .sum()
        })
    };
    let fits = |counts: &[u32]| spend.is_none_or(|s| committed(counts) <= s.headroom_usd + EPSILON);
    let plus_one = |counts: &[u32], i: usize| {
        let mut next = counts.to_vec();
        next[i] += 1;
        next
    };
    // The first quota a launch in pool `i` would exceed.
    let quota_full = |counts: &[u32], i: usize| -> Option<&QuotaLimit> {
        limits
            .quotas
            .iter()
            .find(|q| !q.allows_one_more(&current, counts, i))
    };
    let mut reasons = Vec::new();
    if let Some(name) = at_min {
        reasons.push(format!(
            "budget {name} is at its cap (scale-to-min): every pool held at min_instances"
        ));
    }

    // Shrink: drop the dearest per slot while the rest still covers the need; an
    // on-demand instance within the base goes only when nothing else can.
    loop {
        let spare = covered(&counts) - slots;
        let candidates: Vec<usize> = (0..pools.len())
            .filter(|&i| counts[i] > lower[i] && slots_of(i) <= spare + EPSILON)
            .collect();
        let within_base = on_demand_count(&counts) <= limits.on_demand_base;
        let preferred: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| !(within_base && on_demand(i)))
            .collect();
        let from = if preferred.is_empty() {
            &candidates
        } else {
            &preferred
        };
        let dearest = from.iter().copied().max_by(|&a, &b| {
            (price_of(a) / slots_of(a))
                .total_cmp(&(price_of(b) / slots_of(b)))
                .then(b.cmp(&a))
        });
        let Some(i) = dearest else { break };
        counts[i] -= 1;
    }

    // Grow: one instance at a time, the cheapest per useful slot the budget and the
    // quotas allow; on-demand first while the base is not met.
    let mut remaining = slots - covered(&counts);
    let mut budget_blocked = false;
    let mut quota_blocked: Option<String> = None;
    let mut skipped: Vec<(usize, String)> = Vec::new();
    while remaining > EPSILON {
        let open: Vec<usize> = (0..pools.len()).filter(|&i| counts[i] < upper[i]).collect();
        let mut allowed = Vec::new();
        for &i in &open {
            if let Some(q) = quota_full(&counts, i) {
                if !skipped.iter().any(|(p, _)| *p == i) {
                    skipped.push((i, q.explain(&current, &counts)));
                }
                continue;
            }
            if fits(&plus_one(&counts, i)) {
                allowed.push(i);
            }
        }
        if on_demand_count(&counts) < limits.on_demand_base && allowed.iter().any(|&i| on_demand(i))
        {
            allowed.retain(|&i| on_demand(i));
        }
        let best = allowed.iter().copied().min_by(|&a, &b| {
            let per = |i: usize| price_of(i) / slots_of(i).min(remaining);
            per(a).total_cmp(&per(b)).then(a.cmp(&b))
        });
        let Some(i) = best else {
            let quota_only =
                !open.is_empty() && open.iter().all(|&i| quota_full(&counts, i).is_some());
            if quota_only {
                quota_blocked = skipped.first().map(|(_, why)| why.clone());
            } else {
                budget_blocked = !open.is_empty();
            }
            break;
        };
        counts[i] += 1;
        remaining -= slots_of(i);
    }
    let unmet_slots = remaining.max(0.0);

    // The on-demand base: a deployment running Spot below it launches on-demand.
    let total = |counts: &[u32]| counts.iter().sum::<u32>();
    let base_wanted = limits.on_demand_base.min(total(&counts));
    while on_demand_count(&counts) < base_wanted {
        let cheapest = (0..pools.len())
            .filter(|&i| on_demand(i) && counts[i] < upper[i])
            .filter(|&i| quota_full(&counts, i).is_none() && fits(&plus_one(&counts, i)))
            .min_by(|&a, &b| {
                (price_of(a) / slots_of(a))
                    .total_cmp(&(price_of(b) / slots_of(b)))
                    .then(a.cmp(&b))
            });
        let Some(i) = cheapest else {
            reasons.push(format!(
                "on_demand_base {} not met: {} on-demand instances can run",
                limits.on_demand_base,
                on_demand_count(&counts)
            ));
            break;
        };
        counts[i] += 1;
    }

    // Scheduled floor: the cheapest instances.
    while total(&counts) < floor {
        let cheapest = (0..pools.len())
            .filter(|&i| counts[i] < upper[i] && fits(&plus_one(&counts, i)))
            .filter(|&i| quota_full(&counts, i).is_none())
            .min_by(|&a, &b| price_of(a).total_cmp(&price_of(b)).then(a.cmp(&b)));
        let Some(i) = cheapest else {
            reasons.push(format!(
                "scheduled floor {floor} not reachable: pools{}{} allow {}",
                if spend.is_some() { ", budget" } else { "" },
                if limits.quotas.is_empty() {
                    ""
                } else {
                    ", quotas"
                },
                total(&counts)
            ));
            break;
        };
        counts[i] += 1;
    }

    // Scheduled ceiling: remove the dearest.
    let mut ceiling_cut = false;
    if let Some(ceiling) = ceiling {
        while total(&counts) > ceiling {
            let dearest = (0..pools.len())
                .filter(|&i| counts[i] > 0)
                .max_by(|&a, &b| price_of(a).total_cmp(&price_of(b)).then(a.cmp(&b)));
            let Some(i) = dearest else { break };
            counts[i] -= 1;
            ceiling_cut = true;
        }
    }

    // The budget outranks every floor: while keeping what runs would not fit, release
    // the instance whose release saves the most (a launch first, then the dearest).
    let mut budget_cut = false;
    if let Some(s) = spend {
        while !fits(&counts) {
            let saving = |i: usize| {
                let mut less = counts.clone();
                less[i] -= 1;
                committed(&counts) - committed(&less)
            };
            let Some(i) = (0..pools.len())
                .filter(|&i| counts[i] > 0)
                .max_by(|&a, &b| saving(a).total_cmp(&saving(b)).then(b.cmp(&a)))
            else {
                break;
            };
            counts[i] -= 1;
            budget_cut = true;
        }
        if budget_cut {
            reasons.push(format!(
                "{}: keeping more would not fit, releasing down to {} instances",
                s.explain,
                total(&counts)
            ));
        }
    }

    // Why each pool that launches was chosen, and why the others were not.
    for i in (0..pools.len()).filter(|&i| counts[i] > current[i]) {
        let p = pools[i].pool;
        let mut why = format!(
            "pool {} chosen: {} at ${:.4}/h",
            p.name, p.capacity_type, p.price_per_hour_usd
        );
        if (price_of(i) - p.price_per_hour_usd).abs() > EPSILON {
            why.push_str(&format!(
                " (${:.4}/h counting its interruptions)",
                price_of(i)
            ));
        }
        why.push_str(&format!(
            " for {} slots = ${:.4} per slot-hour",
            p.slots,
            price_of(i) / slots_of(i)
        ));
        let others: Vec<String> = (0..pools.len())
            .filter(|&j| j != i)
            .map(|j| {
                let q = pools[j].pool;
                if let Some((_, full)) = skipped.iter().find(|(k, _)| *k == j) {
                    format!("{}: {full}", q.name)
                } else if !pools[j].can_launch {
                    format!("{}: unavailable", q.name)
                } else if counts[j] >= q.max_instances {
                    format!("{}: at max_instances {}", q.name, q.max_instances)
                } else {
                    format!(
                        "{}: ${:.4} per slot-hour",
                        q.name,
                        price_of(j) / slots_of(j)
                    )
                }
            })
            .collect();
        if !others.is_empty() {
            why.push_str(&format!("; {}", others.join("; ")));
        }
        if on_demand(i) && limits.on_demand_base > 0 {
            why.push_str(&format!("; on_demand_base {}", limits.on_demand_base));
        }
        reasons.push(why);
    }

    let allowed = total(&counts);
    let by_budget = budget_blocked || budget_cut || at_min.is_some();
    let cap = if unmet_slots > EPSILON || ceiling_cut || budget_cut {
        let largest = pools.iter().map(|p| p.pool.slots).max().unwrap_or(1);
        let uncovered = slots - covered(&counts);
        let needed = allowed + (uncovered / f64::from(largest)).ceil().max(0.0) as u32;
        let mut retry_at: Option<DateTime<Utc>> = None;
        let why = match spend {
            Some(s) if by_budget => {
                retry_at = s.retry_at;
                match at_min {
                    Some(name) => format!("budget {name} at its cap (scale-to-min)"),
                    None => s.explain.clone(),
                }
            }
            _ if ceiling_cut => format!("scheduled ceiling {allowed}"),
            _ if quota_blocked.is_some() => quota_blocked.clone().unwrap_or_default(),
            _ if pools.iter().any(|p| !p.can_launch) => {
                "pool max_instances and unavailable pools".to_string()
            }
            _ => "pool max_instances".to_string(),
        };
        reasons.push(format!(
            "{slots:.1} slots wanted → about {needed} instances; capped at {allowed} by {why}"
        ));
        Some(Cap {
            max_instances: allowed,
            needed_instances: needed.max(allowed),
            reason: why,
            retry_at,
        })
    } else {
        None
    };
    Allocation {
        counts,
        cap,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;

    fn pool(name: &str, min: u32, max: u32, slots: u32, price: f64) -> Pool {
        Pool {
            name: name.into(),
            instance_type: None,
            min_instances: min,
            max_instances: max,
            slots,
            price_per_hour_usd: price,
            boot_time: HumanDuration::from_secs(90),
            asg_name: None,
            instance_args: Vec::new(),
            capacity_type: crate::config::CapacityType::OnDemand,
            vcpus_per_instance: None,
            warm_pool_size: 0,
            warm_boot_time: None,
            warm_price_per_hour_usd: None,
        }
    }

    fn caps(pools: &[Pool]) -> Vec<PoolCapacity<'_>> {
        pools
            .iter()
            .map(|p| PoolCapacity::new(p, 0, true))
            .collect()
    }

    #[test]
    fn fills_cheapest_per_slot_first() {
        let pools = [pool("big", 0, 10, 8, 2.0), pool("small", 0, 10, 2, 1.0)];
        // 16 slots: big costs 0.25/slot, small 0.5/slot → two big.
        assert_eq!(
            allocate(&caps(&pools), 16.0, &Limits::default()).counts,
            [2, 0]
        );
        // 17 slots: the last slot is cheaper as a small instance (1.0) than a big (2.0).
        assert_eq!(
            allocate(&caps(&pools), 17.0, &Limits::default()).counts,
            [2, 1]
        );
    }

    #[test]
    fn respects_min_max_and_reports_cap() {
        let pools = [pool("a", 1, 2, 4, 1.0), pool("b", 0, 1, 4, 3.0)];
        assert_eq!(
            allocate(&caps(&pools), 0.0, &Limits::default()).counts,
            [1, 0]
        );
        let a = allocate(&caps(&pools), 40.0, &Limits::default());
        assert_eq!(a.counts, [2, 1]);
        let cap = a.cap.unwrap();
        assert_eq!((cap.max_instances, cap.needed_instances), (3, 10));
    }

    #[test]
    fn unavailable_pool_keeps_what_it_has() {
        let pools = [pool("spot", 0, 10, 4, 1.0), pool("od", 0, 10, 4, 3.0)];
        let mut c = caps(&pools);
        c[0].current = 1;
        c[0].can_launch = false;
        assert_eq!(allocate(&c, 12.0, &Limits::default()).counts, [1, 2]);
    }

    #[test]
    fn keeps_running_instances_rather_than_swapping() {
        let pools = [pool("big", 0, 10, 8, 2.0), pool("small", 0, 10, 2, 1.0)];
        let mut c = caps(&pools);
        // One big instance runs; 1 slot needed. A small one would be cheaper, but
        // swapping costs a boot: keep the big one.
        c[0].current = 1;
        assert_eq!(allocate(&c, 1.0, &Limits::default()).counts, [1, 0]);
        // Three big and two small run; 10 slots needed: drop the dearest per slot
        // (small, 0.5/slot) while the rest covers 10 → [2, 0] = 16 ≥ 10? First the two
        // smalls go (20 → 16), then a big (16 → 8) would not cover: stop.
        c[0].current = 3;
        c[1].current = 2;
        assert_eq!(allocate(&c, 10.0, &Limits::default()).counts, [2, 0]);
    }

    fn spend(pools: &[Pool], headroom_usd: f64) -> SpendLimit {
        use crate::cost::budget::{Horizons, PoolSpend};
        let h = Horizons {
            interval: chrono::TimeDelta::seconds(60),
            drain: chrono::TimeDelta::seconds(120),
        };
        SpendLimit {
            headroom_usd,
            pools: pools.iter().map(|p| PoolSpend::of(p, h)).collect(),
            budget: "b".into(),
            scale_to_min: None,
            retry_at: None,
            explain: "budget b".into(),
        }
    }

    #[test]
    fn a_budget_bounds_growth_and_outranks_floors() {
        // 240 s commitments: big $0.1333 a launch, small $0.0667.
        let pools = [pool("big", 0, 10, 8, 2.0), pool("small", 1, 10, 2, 1.0)];
        // Room for one small launch only: 16 slots wanted, one small goes, capped by
        // the budget.
        let s = spend(&pools, 0.1);
        let limits = Limits {
            spend: Some(&s),
            ..Limits::default()
        };
        let mut c = caps(&pools);
        c[1].current = 1;
        let a = allocate(&c, 16.0, &limits);
        assert_eq!(a.counts, [0, 1], "{:?}", a.reasons);
        let cap = a.cap.unwrap();
        assert_eq!(cap.reason, "budget b");
        // No room at all for what runs: the small one's min_instances yields, and a
        // scheduled floor of 3 is not reached.
        let broke = spend(&pools, 0.01);
        let limits = Limits {
            floor: 3,
            spend: Some(&broke),
            ..Limits::default()
        };
        let a = allocate(&c, 2.0, &limits);
        assert_eq!(a.counts, [0, 0], "{:?}", a.reasons);
        assert!(a.cap.is_some());
        // scale-to-min: every pool held at its min_instances, however much is wanted.
        let mut at_min = spend(&pools, 100.0);
        at_min.scale_to_min = Some("b".into());
        let a = allocate(
            &caps(&pools),
            40.0,
            &Limits {
                spend: Some(&at_min),
                ..Limits::default()
            },
        );
        assert_eq!(a.counts, [0, 1], "{:?}", a.reasons);
        assert!(a.cap.unwrap().reason.contains("scale-to-min"));
    }

    #[test]
    fn floor_adds_cheapest_and_ceiling_removes_dearest() {
        let pools = [pool("a", 0, 5, 4, 1.0), pool("b", 0, 5, 8, 3.0)];
        assert_eq!(
            allocate(
                &caps(&pools),
                0.0,
                &Limits {
                    floor: 2,
                    ..Limits::default()
                }
            )
            .counts,
            [2, 0]
        );
        let a = allocate(
            &caps(&pools),
            40.0,
            &Limits {
                ceiling: Some(3),
                ..Limits::default()
            },
        );
        assert_eq!(a.counts.iter().sum::<u32>(), 3);
        assert!(a.cap.is_some());
    }

    fn quota(vcpus: u64, others: u64, per_pool: Vec<u64>) -> QuotaLimit {
        QuotaLimit {
            name: "gpu".into(),
            code: "L-DB2E81BA".into(),
            vcpus,
            fixed_vcpus: others,
            others_vcpus: others,
            per_pool,
        }
    }

    #[test]
    fn a_quota_shared_with_other_deployments_sends_capacity_to_the_next_pool() {
        // a: $1, 4 slots, 8 vCPUs, covered; b: $3, 4 slots, not covered.
        let pools = [pool("a", 0, 10, 4, 1.0), pool("b", 0, 10, 4, 3.0)];
        // 24 vCPUs, 8 held by another deployment: room for two of a.
        let quotas = [quota(24, 8, vec![8, 0])];
        let limits = Limits {
            quotas: &quotas,
            ..Limits::default()
        };
        let a = allocate(&caps(&pools), 8.0, &limits);
        assert_eq!(a.counts, [2, 0], "{:?}", a.reasons);
        // 12 slots: the third goes to b, and the reasons say why a was passed over.
        let a = allocate(&caps(&pools), 12.0, &limits);
        assert_eq!(a.counts, [2, 1], "{:?}", a.reasons);
        assert!(
            a.reasons.iter().any(|r| r.contains("pool b chosen")
                && r.contains(
                    "quota gpu (L-DB2E81BA): 24 of 24 vCPUs, 8 held by other deployments"
                )),
            "{:?}",
            a.reasons
        );
        // b cannot take more: the cap names the quota.
        let small_b = [pool("a", 0, 10, 4, 1.0), pool("b", 0, 0, 4, 3.0)];
        let a = allocate(&caps(&small_b), 12.0, &limits);
        assert_eq!(a.counts, [2, 0]);
        let cap = a.cap.unwrap();
        assert!(cap.reason.starts_with("quota gpu"), "{}", cap.reason);
        // Two of a run and hold the quota's rest: growth goes to b.
        let mut c = caps(&pools);
        c[0].current = 2;
        let a = allocate(&c, 24.0, &limits);
        assert_eq!(a.counts, [2, 4], "{:?}", a.reasons);
        // Already past the quota (it was lowered): nothing is stopped for it.
        let tight = [quota(8, 8, vec![8, 0])];
        let a = allocate(
            &c,
            8.0,
            &Limits {
                quotas: &tight,
                ..Limits::default()
            },
        );
        assert_eq!(a.counts, [2, 0]);
    }

    fn spot_pool(name: &str, max: u32, price: f64) -> Pool {
        let mut p = pool(name, 0, max, 4, price);
        p.capacity_type = crate::config::CapacityType::Spot;
        p
    }

    #[test]
    fn on_demand_base_comes_first_and_goes_last() {
        let pools = [spot_pool("spot", 10, 0.35), pool("od", 0, 10, 4, 1.0)];
        let limits = Limits {
            on_demand_base: 1,
            ..Limits::default()
        };
        // 12 slots: the first instance on-demand, the rest Spot.
        let a = allocate(&caps(&pools), 12.0, &limits);
        assert_eq!(a.counts, [2, 1], "{:?}", a.reasons);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.contains("pool od chosen") && r.contains("on_demand_base 1"))
        );
        // Down to 4 slots: the Spot instances go, the base stays.
        let mut c = caps(&pools);
        c[0].current = 2;
        c[1].current = 1;
        assert_eq!(allocate(&c, 4.0, &limits).counts, [0, 1]);
        // Idle: everything goes.
        assert_eq!(allocate(&c, 0.0, &limits).counts, [0, 0]);
        // Running Spot only (on-demand was short earlier): an on-demand launch; the Spot
        // instance it makes spare goes at a later decision.
        let mut c = caps(&pools);
        c[0].current = 2;
        let a = allocate(&c, 8.0, &limits);
        assert_eq!(a.counts, [2, 1], "{:?}", a.reasons);
        c[1].current = 1;
        assert_eq!(allocate(&c, 8.0, &limits).counts, [1, 1]);
        // No on-demand pool can launch: Spot rather than nothing, and a reason.
        let mut c = caps(&pools);
        c[1].can_launch = false;
        let a = allocate(&c, 8.0, &limits);
        assert_eq!(a.counts, [2, 0]);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.contains("on_demand_base 1 not met"))
        );
    }

    #[test]
    fn interruptions_make_a_spot_pool_lose_first_choice() {
        let pools = [spot_pool("spot", 10, 0.35), pool("od", 0, 10, 4, 1.0)];
        let mut c = caps(&pools);
        assert_eq!(allocate(&c, 4.0, &Limits::default()).counts, [1, 0]);
        // Reclaimed so often that a served hour costs more than on-demand.
        c[0].effective_price_per_hour_usd = 1.2;
        let a = allocate(&c, 4.0, &Limits::default());
        assert_eq!(a.counts, [0, 1]);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.contains("pool od chosen") && r.contains("spot: $0.3000 per slot-hour")),
            "{:?}",
            a.reasons
        );
        let a = allocate(&caps(&pools), 4.0, &Limits::default());
        assert!(
            a.reasons[0].contains("pool spot chosen: spot at $0.3500/h for 4 slots"),
            "{:?}",
            a.reasons
        );
    }
}
