//! Slots → instances per pool.
//!
//! Allocation is sticky: it starts from the instances that exist and changes only the
//! margin, because swapping a ready instance for a cheaper one costs a whole boot.
//! To grow, it adds one instance at a time from the pool whose next instance buys the
//! missing slots cheapest (price per hour over the slots it actually covers), so a
//! small remainder goes to a small cheap instance rather than a big one. To shrink, it
//! removes the dearest instance per slot while what remains still covers the need.
//! Each pool stays within its min and max; a pool the provider cannot launch into now
//! keeps what it has. A scheduled floor then adds the cheapest instances, and a
//! scheduled ceiling removes the dearest.
//!
//! Demand the pools cannot cover is reported as a cap, so the worker can shed instead
//! of holding requests for capacity that will not come.

use crate::config::Pool;

#[derive(Debug, Clone, Copy)]
pub struct PoolCapacity<'a> {
    pub pool: &'a Pool,
    /// Instances requested, booting or ready.
    pub current: u32,
    /// False while the provider reports the pool unavailable.
    pub can_launch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Target instances per pool, in the order given.
    pub counts: Vec<u32>,
    /// (instances allowed, instances needed, why) when demand is not covered.
    pub cap: Option<(u32, u32, String)>,
    pub reasons: Vec<String>,
}

const EPSILON: f64 = 1e-9;

pub fn allocate(
    pools: &[PoolCapacity],
    slots: f64,
    floor: u32,
    ceiling: Option<u32>,
) -> Allocation {
    let upper: Vec<u32> = pools
        .iter()
        .map(|p| {
            if p.can_launch {
                p.pool.max_instances
            } else {
                p.current.min(p.pool.max_instances)
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
    let price_of = |i: usize| pools[i].pool.price_per_hour_usd;
    let covered = |counts: &[u32]| -> f64 {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| f64::from(c) * slots_of(i))
            .sum()
    };
    let mut reasons = Vec::new();

    // Shrink: drop the dearest per slot while the rest still covers the need.
    loop {
        let spare = covered(&counts) - slots;
        let dearest = (0..pools.len())
            .filter(|&i| counts[i] > lower[i] && slots_of(i) <= spare + EPSILON)
            .max_by(|&a, &b| {
                (price_of(a) / slots_of(a))
                    .total_cmp(&(price_of(b) / slots_of(b)))
                    .then(b.cmp(&a))
            });
        let Some(i) = dearest else { break };
        counts[i] -= 1;
    }

    // Grow: one instance at a time, the cheapest per useful slot.
    let mut remaining = slots - covered(&counts);
    while remaining > EPSILON {
        let best = (0..pools.len())
            .filter(|&i| counts[i] < upper[i])
            .min_by(|&a, &b| {
                let per = |i: usize| price_of(i) / slots_of(i).min(remaining);
                per(a).total_cmp(&per(b)).then(a.cmp(&b))
            });
        let Some(i) = best else { break };
        counts[i] += 1;
        remaining -= slots_of(i);
    }
    let unmet_slots = remaining.max(0.0);

    // Scheduled floor: the cheapest instances.
    let total = |counts: &[u32]| counts.iter().sum::<u32>();
    while total(&counts) < floor {
        let cheapest = (0..pools.len())
            .filter(|&i| counts[i] < upper[i])
            .min_by(|&a, &b| price_of(a).total_cmp(&price_of(b)).then(a.cmp(&b)));
        let Some(i) = cheapest else {
            reasons.push(format!(
                "scheduled floor {floor} not reachable: pools allow {}",
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

    let allowed = total(&counts);
    let cap = if unmet_slots > EPSILON || ceiling_cut {
        let largest = pools.iter().map(|p| p.pool.slots).max().unwrap_or(1);
        let uncovered = slots - covered(&counts);
        let needed = allowed + (uncovered / f64::from(largest)).ceil().max(0.0) as u32;
        let why = if ceiling_cut {
            format!("scheduled ceiling {allowed}")
        } else if pools.iter().any(|p| !p.can_launch) {
            "pool max_instances and unavailable pools".to_string()
        } else {
            "pool max_instances".to_string()
        };
        reasons.push(format!(
            "{slots:.1} slots wanted → about {needed} instances; capped at {allowed} by {why}"
        ));
        Some((allowed, needed.max(allowed), why))
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
            .map(|p| PoolCapacity {
                pool: p,
                current: 0,
                can_launch: true,
            })
            .collect()
    }

    #[test]
    fn fills_cheapest_per_slot_first() {
        let pools = [pool("big", 0, 10, 8, 2.0), pool("small", 0, 10, 2, 1.0)];
        // 16 slots: big costs 0.25/slot, small 0.5/slot → two big.
        assert_eq!(allocate(&caps(&pools), 16.0, 0, None).counts, [2, 0]);
        // 17 slots: the last slot is cheaper as a small instance (1.0) than a big (2.0).
        assert_eq!(allocate(&caps(&pools), 17.0, 0, None).counts, [2, 1]);
    }

    #[test]
    fn respects_min_max_and_reports_cap() {
        let pools = [pool("a", 1, 2, 4, 1.0), pool("b", 0, 1, 4, 3.0)];
        assert_eq!(allocate(&caps(&pools), 0.0, 0, None).counts, [1, 0]);
        let a = allocate(&caps(&pools), 40.0, 0, None);
        assert_eq!(a.counts, [2, 1]);
        let (allowed, needed, _) = a.cap.unwrap();
        assert_eq!((allowed, needed), (3, 10));
    }

    #[test]
    fn unavailable_pool_keeps_what_it_has() {
        let pools = [pool("spot", 0, 10, 4, 1.0), pool("od", 0, 10, 4, 3.0)];
        let mut c = caps(&pools);
        c[0].current = 1;
        c[0].can_launch = false;
        assert_eq!(allocate(&c, 12.0, 0, None).counts, [1, 2]);
    }

    #[test]
    fn keeps_running_instances_rather_than_swapping() {
        let pools = [pool("big", 0, 10, 8, 2.0), pool("small", 0, 10, 2, 1.0)];
        let mut c = caps(&pools);
        // One big instance runs; 1 slot needed. A small one would be cheaper, but
        // swapping costs a boot: keep the big one.
        c[0].current = 1;
        assert_eq!(allocate(&c, 1.0, 0, None).counts, [1, 0]);
        // Three big and two small run; 10 slots needed: drop the dearest per slot
        // (small, 0.5/slot) while the rest covers 10 → [2, 0] = 16 ≥ 10? First the two
        // smalls go (20 → 16), then a big (16 → 8) would not cover: stop.
        c[0].current = 3;
        c[1].current = 2;
        assert_eq!(allocate(&c, 10.0, 0, None).counts, [2, 0]);
    }

    #[test]
    fn floor_adds_cheapest_and_ceiling_removes_dearest() {
        let pools = [pool("a", 0, 5, 4, 1.0), pool("b", 0, 5, 8, 3.0)];
        assert_eq!(allocate(&caps(&pools), 0.0, 2, None).counts, [2, 0]);
        let a = allocate(&caps(&pools), 40.0, 0, Some(3));
        assert_eq!(a.counts.iter().sum::<u32>(), 3);
        assert!(a.cap.is_some());
    }
}
