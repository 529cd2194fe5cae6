//! Admission: how long a held request would wait, and which held requests to shed.
//!
//! The queue worker holds requests while no slot is free. Holding is only kind when
//! capacity can come in time; otherwise the producer is better served by an explicit
//! `shed` with `retry-after` at once than by an `expired` at its deadline. The worker
//! sheds, lowest priority first:
//!
//! 1. when it holds more than `max_held_requests` ([`over_limit`]);
//! 2. when a request's estimated wait exceeds what is left of its deadline
//!    ([`estimated_wait`]);
//! 3. when the control plane records a cap that keeps capacity from coming (the cap
//!    bounds the capacity [`Capacity::projected`] counts on, so a cap of zero
//!    instances at zero capacity makes every wait infinite).
//!
//! Pure: time is passed in as durations; the worker reads the clock.
//!
//! ## The wait model
//!
//! Capacity is a step function of time: the slots of ready instances now, plus the
//! slots of each booting instance from its expected remaining boot time on. When
//! nothing is ready or booting, the scaler is expected to start what the deployment
//! may have (every pool's `max_instances`, bounded by a cap) one boot time from now —
//! at zero, `decide` asks for the whole need at once. Requests are served in order at
//! `slots / service_time` per second. A request with `ahead` requests before it (in
//! flight or held with higher priority, or earlier at the same priority) starts once
//! `served(t) ≥ ahead − slots(t) + 1`. This is the issue's "backlog over ready and
//! booting capacity plus the remaining boot time", made exact for step capacity.
//!
//! With several workers on one queue, each holds a share of the backlog and competes
//! for the same slots; [`Capacity::share`] scales the slots to this worker's share.

use std::time::Duration;

use crate::config::Pool;

/// Instances on their way: their slots and expected remaining boot time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Booting {
    pub slots: u32,
    /// Expected time until ready; zero when overdue ("any moment now").
    pub remaining: Duration,
}

/// What the scaler is expected to start at zero ([`Capacity::projected`]): every pool's
/// `max_instances`, bounded by a cap of `cap_instances` instances (counted at the
/// largest instance), ready after the shortest boot. The worker and the simulator both
/// project with it.
pub fn projected_at_zero(pools: &[Pool], cap_instances: Option<u32>) -> Booting {
    let mut slots: u64 = pools
        .iter()
        .map(|p| u64::from(p.max_instances) * u64::from(p.slots))
        .sum();
    if let Some(cap) = cap_instances {
        let per_instance = pools.iter().map(|p| p.slots).max().unwrap_or(1);
        slots = slots.min(u64::from(cap) * u64::from(per_instance));
    }
    Booting {
        slots: slots.min(u64::from(u32::MAX)) as u32,
        remaining: pools
            .iter()
            .map(|p| p.boot_time.0)
            .min()
            .unwrap_or_default(),
    }
}

/// What can serve a deployment's requests, now and soon.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Slots on ready instances that take requests.
    pub ready_slots: u32,
    pub booting: Vec<Booting>,
    /// Used only when nothing is ready or booting: slots the scaler is expected to
    /// start, and when they will be ready. Zero slots means none can come (a cap of
    /// zero instances).
    pub projected: Booting,
    /// This worker's share of the slots, in (0, 1]: its held requests over all
    /// workers' held requests.
    pub share: f64,
    /// Mean time one request occupies a slot.
    pub service_time: Duration,
    /// When a limit lets capacity come again (the cap's `retry_at`: a budget's next
    /// period, or when its spend allows), as a time from now: shed requests are told
    /// to retry then.
    pub capped_until: Option<Duration>,
}

impl Capacity {
    /// Capacity steps `(from, slots)` in time order, starting at zero.
    fn steps(&self) -> Vec<(Duration, f64)> {
        let share = if self.share.is_finite() && self.share > 0.0 {
            self.share.min(1.0)
        } else {
            1.0
        };
        let mut arrivals: Vec<Booting> = if self.ready_slots == 0 && self.booting.is_empty() {
            vec![self.projected]
        } else {
            self.booting.clone()
        };
        arrivals.sort_by_key(|b| b.remaining);
        let mut steps = vec![(Duration::ZERO, f64::from(self.ready_slots) * share)];
        for b in arrivals.into_iter().filter(|b| b.slots > 0) {
            let slots = steps.last().map_or(0.0, |s| s.1) + f64::from(b.slots) * share;
            if steps.last().is_some_and(|s| s.0 == b.remaining) {
                steps.last_mut().expect("not empty").1 = slots;
            } else {
                steps.push((b.remaining, slots));
            }
        }
        steps
    }

    /// Whether any capacity exists or can come.
    pub fn can_serve(&self) -> bool {
        self.steps().iter().any(|s| s.1 > 0.0)
    }
}

/// The wait model of one [`Capacity`], computed once and asked many times (the
/// worker walks every held request in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimator {
    steps: Vec<(Duration, f64)>,
    service_secs: f64,
    capped_until: Option<Duration>,
}

impl Estimator {
    pub fn new(capacity: &Capacity) -> Self {
        Estimator {
            steps: capacity.steps(),
            service_secs: capacity.service_time.as_secs_f64().max(1e-6),
            capped_until: capacity.capped_until,
        }
    }

    /// When a request with `ahead` requests before it would start, or `None` if no
    /// capacity can ever take it.
    pub fn wait(&self, ahead: u64) -> Option<Duration> {
        let service = self.service_secs;
        let ahead = ahead as f64;
        // `served` = requests finished by the start of the current segment.
        let mut served = 0.0;
        for (i, &(from, slots)) in self.steps.iter().enumerate() {
            if slots <= 0.0 {
                continue;
            }
            // It starts when served + slots > ahead, i.e. served(t) ≥ ahead − slots + 1,
            // with served growing at slots / service within the segment.
            let need = (ahead - slots + 1.0).max(0.0);
            if served >= need {
                return Some(from);
            }
            let at = from.as_secs_f64() + (need - served) * service / slots;
            match self.steps.get(i + 1).map(|s| s.0) {
                Some(end) if at > end.as_secs_f64() => {
                    served += (end - from).as_secs_f64() * slots / service;
                }
                _ => return Some(Duration::from_secs_f64(at)),
            }
        }
        None
    }

    /// Whether a request with `ahead` requests before it and `remaining` left of its
    /// deadline should be shed; `None` to keep holding it.
    pub fn shed(
        &self,
        ahead: u64,
        remaining: Duration,
        cap_reason: Option<&str>,
    ) -> Option<ShedReason> {
        match self.wait(ahead) {
            None => Some(ShedReason::NoCapacity {
                cap_reason: cap_reason.map(str::to_string),
            }),
            Some(wait) if wait > remaining => Some(ShedReason::Wait {
                wait,
                remaining,
                cap_reason: cap_reason.map(str::to_string),
            }),
            Some(_) => None,
        }
    }

    /// Seconds a shed producer should wait before retrying: until the cap says
    /// capacity can come again, when it says (a budget's next period may be hours
    /// away); otherwise the estimated time until a backlog of `backlog` requests is
    /// served, at least 1 s and at most 10 minutes; 60 s when no capacity can come (the
    /// scaler re-decides a cap at least that often).
    pub fn retry_after(&self, backlog: u64) -> u64 {
        if let Some(until) = self.capped_until {
            return (until.as_secs_f64().ceil() as u64).max(1);
        }
        match self.wait(backlog) {
            Some(w) => (w.as_secs_f64().ceil() as u64).clamp(1, 600),
            None => 60,
        }
    }
}

/// When a request with `ahead` requests before it would start, or `None` if no
/// capacity can ever take it.
pub fn estimated_wait(ahead: u64, capacity: &Capacity) -> Option<Duration> {
    Estimator::new(capacity).wait(ahead)
}

/// How many held requests to shed so at most `limit` remain.
pub fn over_limit(held: usize, limit: u32) -> usize {
    held.saturating_sub(limit as usize)
}

/// See [`Estimator::retry_after`].
pub fn retry_after(backlog: u64, capacity: &Capacity) -> u64 {
    Estimator::new(capacity).retry_after(backlog)
}

/// Why a request is shed; the reply's `x-scale0-reason`.
#[derive(Debug, Clone, PartialEq)]
pub enum ShedReason {
    /// The worker holds more than `max_held_requests`.
    HeldLimit { limit: u32 },
    /// The estimated wait exceeds the remaining deadline (with the scaler's cap
    /// reason, when a cap holds capacity back).
    Wait {
        wait: Duration,
        remaining: Duration,
        cap_reason: Option<String>,
    },
    /// No capacity can come: a cap (with the scaler's reason) or nothing to launch.
    NoCapacity { cap_reason: Option<String> },
}

impl std::fmt::Display for ShedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShedReason::HeldLimit { limit } => {
                write!(f, "held requests over max_held_requests {limit}")
            }
            ShedReason::Wait {
                wait,
                remaining,
                cap_reason,
            } => {
                write!(
                    f,
                    "estimated wait {:.1}s exceeds the remaining deadline {:.1}s",
                    wait.as_secs_f64(),
                    remaining.as_secs_f64()
                )?;
                match cap_reason {
                    Some(r) => write!(f, " (capped: {r})"),
                    None => Ok(()),
                }
            }
            ShedReason::NoCapacity {
                cap_reason: Some(r),
            } => write!(f, "no capacity can come: capped ({r})"),
            ShedReason::NoCapacity { cap_reason: None } => f.write_str("no capacity can come"),
        }
    }
}

/// See [`Estimator::shed`].
pub fn shed_for_wait(
    ahead: u64,
    remaining: Duration,
    capacity: &Capacity,
    cap_reason: Option<&str>,
) -> Option<ShedReason> {
    Estimator::new(capacity).shed(ahead, remaining, cap_reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn capacity(ready: u32, booting: &[(u32, f64)]) -> Capacity {
        Capacity {
            ready_slots: ready,
            booting: booting
                .iter()
                .map(|&(slots, r)| Booting {
                    slots,
                    remaining: secs(r),
                })
                .collect(),
            projected: Booting {
                slots: 8,
                remaining: secs(90.0),
            },
            share: 1.0,
            service_time: secs(1.0),
            capped_until: None,
        }
    }

    fn wait(ahead: u64, c: &Capacity) -> f64 {
        estimated_wait(ahead, c).unwrap().as_secs_f64()
    }

    #[test]
    fn at_zero_the_scaler_is_expected_to_start_every_pool_within_the_cap() {
        let config = crate::config::Config::load(
            r#"
            [[deployments]]
            name = "chat"
            [[deployments.pools]]
            name = "a10g"
            max_instances = 3
            slots = 8
            price_per_hour_usd = 1.0
            boot_time = "90s"
            [[deployments.pools]]
            name = "h100"
            max_instances = 2
            slots = 32
            price_per_hour_usd = 4.0
            boot_time = "5m"
            "#,
        )
        .unwrap();
        let pools = &config.deployments[0].pools;
        // 3 × 8 + 2 × 32 slots, after the shortest boot.
        assert_eq!(
            projected_at_zero(pools, None),
            Booting {
                slots: 88,
                remaining: secs(90.0)
            }
        );
        // A cap of 2 instances, counted at the largest instance: 64 slots.
        assert_eq!(projected_at_zero(pools, Some(2)).slots, 64);
        assert_eq!(projected_at_zero(pools, Some(0)).slots, 0);
    }

    #[test]
    fn free_slots_mean_no_wait() {
        let c = capacity(4, &[]);
        for ahead in 0..4 {
            assert_eq!(wait(ahead, &c), 0.0, "ahead {ahead}");
        }
        // The fifth waits for one of four slots: 1 s service / 4 slots.
        assert!((wait(4, &c) - 0.25).abs() < 1e-9);
        // 40 ahead on 4 slots: 37 must finish first at 4/s.
        assert!((wait(40, &c) - 9.25).abs() < 1e-9);
    }

    #[test]
    fn at_zero_the_boot_time_comes_first() {
        // One instance of 2 slots booting, 3 s left.
        let c = capacity(0, &[(2, 3.0)]);
        assert_eq!(wait(0, &c), 3.0);
        assert_eq!(wait(1, &c), 3.0);
        // The third waits a service time after the boot.
        assert!((wait(2, &c) - 3.5).abs() < 1e-9);
    }

    #[test]
    fn later_boots_add_capacity_part_way() {
        // 1 ready slot now, 3 more slots in 2 s; service 1 s.
        let c = capacity(1, &[(3, 2.0)]);
        // By t=2, 2 requests are served; then 4 slots at 4/s.
        // ahead=10: need 10-4+1 = 7 served: 2 by t=2, 5 more at 4/s → 3.25 s.
        assert!((wait(10, &c) - 3.25).abs() < 1e-9);
        // ahead=1 needs 1 served: at 1 s, before the boot.
        assert!((wait(1, &c) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn overdue_boots_count_as_now() {
        let c = capacity(0, &[(4, 0.0)]);
        assert_eq!(wait(3, &c), 0.0);
    }

    #[test]
    fn nothing_ready_or_booting_uses_the_projection() {
        let c = capacity(0, &[]);
        assert_eq!(wait(0, &c), 90.0);
        let mut capped = c.clone();
        capped.projected.slots = 0;
        assert_eq!(estimated_wait(0, &capped), None);
        assert!(!capped.can_serve());
        assert!(c.can_serve());
    }

    #[test]
    fn a_share_of_the_slots_waits_longer() {
        let mut c = capacity(4, &[]);
        c.share = 0.5;
        // 2 effective slots: the third waits half a service time.
        assert_eq!(wait(1, &c), 0.0);
        assert!((wait(2, &c) - 0.5).abs() < 1e-9);
        c.share = f64::NAN;
        assert_eq!(wait(3, &c), 0.0);
    }

    #[test]
    fn shedding_rules() {
        let c = capacity(0, &[(2, 3.0)]);
        // 3 s boot against a 10 s deadline: hold.
        assert_eq!(shed_for_wait(0, secs(10.0), &c, None), None);
        // Against a 2 s deadline: shed, naming both.
        let r = shed_for_wait(0, secs(2.0), &c, None).unwrap();
        assert_eq!(
            r.to_string(),
            "estimated wait 3.0s exceeds the remaining deadline 2.0s"
        );
        // Far back in the line: 2 slots at 2/s, 30 ahead → 3 + 14.5 s.
        assert!(matches!(
            shed_for_wait(30, secs(10.0), &c, None),
            Some(ShedReason::Wait { .. })
        ));
        // A cap of zero at zero capacity: nothing can come.
        let mut capped = capacity(0, &[]);
        capped.projected.slots = 0;
        let r = shed_for_wait(0, secs(300.0), &capped, Some("budget exhausted")).unwrap();
        assert_eq!(
            r.to_string(),
            "no capacity can come: capped (budget exhausted)"
        );
    }

    #[test]
    fn limits_and_retry_after() {
        assert_eq!(over_limit(10, 4), 6);
        assert_eq!(over_limit(3, 4), 0);
        let c = capacity(2, &[]);
        // 100 held on 2 slots at 1 s: about 49.5 s.
        assert_eq!(retry_after(100, &c), 50);
        assert_eq!(retry_after(0, &c), 1);
        assert_eq!(retry_after(1_000_000, &c), 600);
        let mut capped = capacity(0, &[]);
        capped.projected.slots = 0;
        assert_eq!(retry_after(5, &capped), 60);
        // A budget's cap says when: its next period, three hours away.
        capped.capped_until = Some(secs(3.0 * 3600.0));
        assert_eq!(retry_after(5, &capped), 10_800);
    }

    #[test]
    fn a_wait_shed_under_a_cap_names_it() {
        let c = capacity(0, &[(2, 3.0)]);
        let r = shed_for_wait(0, secs(2.0), &c, Some("budget gpu-monthly: $500.00 spent")).unwrap();
        assert_eq!(
            r.to_string(),
            "estimated wait 3.0s exceeds the remaining deadline 2.0s \
             (capped: budget gpu-monthly: $500.00 spent)"
        );
    }
}
