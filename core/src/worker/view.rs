//! The worker's view of a deployment's instances: what the last registry snapshot
//! said, corrected by what this worker has done since (leases it holds, refusals,
//! failures it saw). Dispatch picks from it and the wait estimate counts its slots.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::admission::{self, Booting, Capacity};
use crate::config::Deployment;
use crate::contract::{InstanceRecord, InstanceState};
use crate::policy::Cap;
use crate::rng::Rng;

/// How a request is placed on one of the instances with a free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Fewest requests in flight, by power of two choices (scale0's worker; Envoy's
    /// least-request balancer, in front of a Kubernetes Service, does the same).
    LeastOutstanding,
    /// The busiest instance that still has a free slot (the earliest launched on a
    /// tie), so the others go idle and expire: how FaaS platforms place invocations
    /// on warm instances. The simulator runs per-instance keep-alive baselines so.
    Packing,
}

/// What the watcher read from the registry, with probe results applied.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Instances of the deployment. One without an `endpoint` takes no requests (the
    /// worker's shell removes endpoints it cannot route to).
    pub instances: Vec<InstanceRecord>,
    /// Live leases per instance (all workers).
    pub in_flight: BTreeMap<String, u32>,
    pub cap: Option<Cap>,
    pub mean_service_time: Option<Duration>,
    /// Held by all workers (fresh reports only), when read.
    pub held_all_workers: Option<u64>,
}

/// An instance as this worker sees it.
#[derive(Debug)]
pub(super) struct Inst {
    pub record: InstanceRecord,
    pub slots: u32,
    /// Leases this worker holds (or is acquiring) on it.
    pub local: u32,
    /// Leases other workers held at the last snapshot.
    pub remote: u32,
    /// No dispatch before this (a lease was refused).
    pub busy_until: Option<DateTime<Utc>>,
    /// Failures this worker saw since the last snapshot.
    pub failures: u32,
}

impl Inst {
    /// Ready (or a warned Spot instance still serving), healthy, with a free slot.
    fn dispatchable(&self, threshold: u32, now: DateTime<Utc>) -> bool {
        self.record.takes_requests(now)
            && self.record.endpoint.is_some()
            && self.record.failures.max(self.failures) < threshold
            && self.local + self.remote < self.slots
            && self.busy_until.is_none_or(|t| t <= now)
    }

    pub fn serving(&self, threshold: u32) -> bool {
        self.record.state == InstanceState::Ready
            && self.record.failures.max(self.failures) < threshold
    }
}

/// The instances by id, and the deployment they belong to.
#[derive(Debug)]
pub(super) struct View {
    pub spec: Deployment,
    pub instances: BTreeMap<String, Inst>,
    /// Some instance rests after a refusal (so [`View::end_rests`] has work).
    resting: bool,
}

impl View {
    pub fn new(spec: Deployment) -> Self {
        View {
            spec,
            instances: BTreeMap::new(),
            resting: false,
        }
    }

    pub fn threshold(&self) -> u32 {
        self.spec.policy.unhealthy_after_failures
    }

    /// Take a new snapshot's instances; this worker's own leases carry over, and an
    /// instance gone from the registry stays (as terminated) until they are released.
    pub fn update(&mut self, records: Vec<InstanceRecord>, in_flight: &BTreeMap<String, u32>) {
        let mut next = BTreeMap::new();
        for record in records {
            if record.state == InstanceState::Terminated {
                continue;
            }
            let slots = self.spec.slots_of(&record.pool);
            let total = in_flight.get(&record.id).copied().unwrap_or(0);
            let inst = match self.instances.remove(&record.id) {
                Some(mut old) => {
                    old.remote = total.saturating_sub(old.local);
                    old.failures = 0;
                    old.busy_until = None;
                    old.record = record;
                    old.slots = slots;
                    old
                }
                None => Inst {
                    slots,
                    local: 0,
                    remote: total,
                    busy_until: None,
                    failures: 0,
                    record,
                },
            };
            next.insert(inst.record.id.clone(), inst);
        }
        for (id, old) in std::mem::take(&mut self.instances) {
            if old.local > 0 && !next.contains_key(&id) {
                let mut gone = old;
                gone.record.state = InstanceState::Terminated;
                next.insert(id, gone);
            }
        }
        self.instances = next;
    }

    /// Instances rested after a refusal may be asked again once their rest is over
    /// (without this, a past rest would stay the next wakeup until a snapshot).
    pub fn end_rests(&mut self, now: DateTime<Utc>) {
        if !self.resting {
            return;
        }
        self.resting = false;
        for i in self.instances.values_mut() {
            match i.busy_until {
                Some(t) if t <= now => i.busy_until = None,
                Some(_) => self.resting = true,
                None => {}
            }
        }
    }

    /// No dispatch to `instance` before `until` (a lease was refused).
    pub fn rest(&mut self, instance: &str, until: DateTime<Utc>) {
        if let Some(i) = self.instances.get_mut(instance) {
            i.busy_until = Some(until);
            self.resting = true;
        }
    }

    /// Whether any instance is ready or on its way.
    pub fn any_capacity(&self) -> bool {
        self.instances
            .values()
            .any(|i| i.record.state.is_capacity())
    }

    /// Whether a request arriving now waits for a boot: nothing healthy is ready.
    pub fn cold(&self) -> bool {
        let threshold = self.threshold();
        !self.instances.values().any(|i| i.serving(threshold))
    }

    /// Whether some instance could take a request now.
    pub fn has_free_slot(&self, now: DateTime<Utc>) -> bool {
        let threshold = self.threshold();
        self.instances
            .values()
            .any(|i| i.dispatchable(threshold, now))
    }

    /// A ready instance with a free slot, placed by `dispatch` on outstanding requests
    /// (this worker's and the others' at the last snapshot), preferring instances not
    /// in `avoid` (those the request failed on).
    pub fn pick(
        &self,
        dispatch: Dispatch,
        avoid: &[String],
        now: DateTime<Utc>,
        rng: &mut Rng,
    ) -> Option<String> {
        let threshold = self.threshold();
        let free = |id: &String, i: &Inst| i.dispatchable(threshold, now) && !avoid.contains(id);
        // Instances the request failed on only when no other is free.
        let candidates = |avoiding: bool| {
            self.instances.iter().filter(move |(id, i)| {
                if avoiding {
                    free(id, i)
                } else {
                    i.dispatchable(threshold, now)
                }
            })
        };
        let avoiding = candidates(true).next().is_some();
        let outstanding = |i: &Inst| i.local + i.remote;
        let chosen = match dispatch {
            Dispatch::LeastOutstanding => {
                let n = candidates(avoiding).count();
                match n {
                    0 => return None,
                    1 => candidates(avoiding).next()?.0,
                    n => {
                        let a = rng.below(n as u64) as usize;
                        let mut b = rng.below(n as u64 - 1) as usize;
                        if b >= a {
                            b += 1;
                        }
                        let (ia, ib) = (candidates(avoiding).nth(a)?, candidates(avoiding).nth(b)?);
                        if outstanding(ib.1) < outstanding(ia.1) {
                            ib.0
                        } else {
                            ia.0
                        }
                    }
                }
            }
            Dispatch::Packing => {
                candidates(avoiding)
                    .max_by(|(_, x), (_, y)| {
                        outstanding(x)
                            .cmp(&outstanding(y))
                            .then(y.record.launched_at.cmp(&x.record.launched_at))
                    })?
                    .0
            }
        };
        Some(chosen.clone())
    }

    /// What can serve this deployment now and soon, for the wait estimate.
    /// `share` is this worker's share of all workers' held requests.
    pub fn capacity(
        &self,
        cap: Option<&Cap>,
        share: f64,
        service_time: Duration,
        now: DateTime<Utc>,
    ) -> Capacity {
        let threshold = self.threshold();
        let mut ready_slots = 0;
        let mut booting = Vec::new();
        for i in self.instances.values() {
            match i.record.state {
                InstanceState::Ready if i.serving(threshold) => ready_slots += i.slots,
                InstanceState::Requested | InstanceState::Booting => {
                    let boot = self
                        .spec
                        .pool(&i.record.pool)
                        .map_or(Duration::ZERO, |p| p.boot_time.0);
                    let elapsed = (now - i.record.launched_at).to_std().unwrap_or_default();
                    booting.push(Booting {
                        slots: i.slots,
                        remaining: boot.saturating_sub(elapsed),
                    });
                }
                _ => {}
            }
        }
        Capacity {
            ready_slots,
            booting,
            projected: admission::projected_at_zero(&self.spec.pools, cap.map(|c| c.max_instances)),
            share,
            service_time,
            capped_until: cap
                .and_then(|c| c.retry_at)
                .map(|at| (at - now).to_std().unwrap_or_default()),
        }
    }

    /// Slots on capacity (ready or booting), and requests in flight on them by every
    /// worker: what the pressure signal compares.
    pub fn slots_and_in_flight(&self) -> (u32, u32) {
        let slots = self
            .instances
            .values()
            .filter(|i| i.record.state.is_capacity())
            .map(|i| i.slots)
            .sum();
        let in_flight = self.instances.values().map(|i| i.local + i.remote).sum();
        (slots, in_flight)
    }
}
