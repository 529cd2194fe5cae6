//! The queue worker's rules for one deployment, as a state machine without I/O.
//!
//! The worker's actor (in `scale0-queue-worker`) feeds it events — a delivery, a
//! registry snapshot, a lease refused, a slot released, a job back for a retry, a job
//! finished, a lost connection, a drain — each with `now`, and performs the
//! [`Effect`]s it returns: dispatch a job to an instance, answer one that expired or
//! was shed, requeue, signal the scaler. Holding, admission, shedding, dispatch
//! choice, expiry, parking, coalescing of copies of one `message_id`, failure
//! counting and draining are decided here and nowhere else, so each is tested as a
//! timeline (see `tests.rs`) and the build keeps clocks out (`core/clippy.toml`).
//!
//! ```text
//! events(now) ──▶ Machine ──▶ effects: Dispatch · Expire · Shed · Requeue · Join
//!                  │  held (priority, age)      Activate · Pressure · ClearFailures
//!                  │  view of the instances     NewArrival · Drained
//!                  └  jobs out with the shell (dispatching, replying), by seq
//! ```
//!
//! A job the machine hands out ([`Effect::Dispatch`], [`Effect::Expire`],
//! [`Effect::Shed`]) is *working* until the shell reports it [`Machine::finished`], or
//! brings it back with [`Machine::lease_refused`], [`Machine::retry`] or
//! [`Machine::park`]. What a job carries for the shell (the request body, the broker
//! deliveries to answer) is the opaque payload `P`.
//!
//! Time is wall-clock (`DateTime<Utc>`): deadlines come from producers as Unix
//! milliseconds, and the simulator runs on its own clock.

mod attempt;
mod held;
mod shedding;
#[cfg(test)]
mod tests;
mod view;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::admission::ShedReason;
use crate::config::Deployment;
use crate::policy::Cap;
use crate::rng::Rng;
pub use attempt::{Attempted, retry};
use held::{HeldQueue, Key};
use view::View;
pub use view::{Dispatch, Snapshot};

/// How often the worker's watcher reads the registry by default (its
/// `refresh_interval`): the simulator's worker reads it as often.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// How long a worker waits after a lease refusal before asking that instance again:
/// short, since other workers' leases turn over at the service rate.
const AFTER_REFUSAL: Duration = Duration::from_millis(50);
/// The same after Redis failed to answer: give it a moment.
const AFTER_REDIS_ERROR: Duration = Duration::from_millis(500);

/// The worker's settings the rules use.
#[derive(Debug, Clone)]
pub struct Rules {
    pub spec: Deployment,
    /// How long a job whose request another job runs waits before looking again.
    pub parking: Duration,
    /// At most one activation signal per this interval from this worker.
    pub activation_interval: Duration,
    pub dispatch: Dispatch,
}

/// A request on its way through the worker.
#[derive(Debug)]
pub struct Job<P> {
    /// Unique per job in this machine; the dispatch order's tie-break (older first).
    pub seq: u64,
    pub message_id: Option<String>,
    pub priority: u8,
    pub arrived: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// Whether it arrived with nothing healthy ready: it waits for a boot.
    pub cold_start: bool,
    /// HTTP attempts made (the shell counts them).
    pub attempts: u32,
    /// Instances that failed this request; others are preferred for a retry.
    pub avoid: Vec<String>,
    /// The latest connection epoch of its deliveries.
    epoch: u64,
    pub payload: P,
}

impl<P> Job<P> {
    fn key(&self) -> Key {
        Key::new(self.priority, self.seq)
    }
}

/// A delivery of a request.
#[derive(Debug)]
pub struct Arrival<P> {
    pub message_id: Option<String>,
    pub priority: u8,
    pub deadline: DateTime<Utc>,
    /// The broker delivered it before (a copy may be held or answered already).
    pub redelivered: bool,
    /// The connection epoch it came on.
    pub epoch: u64,
    pub payload: P,
}

/// What an attempt taught about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Connection error, timeout or 5xx: counts toward `unhealthy_after_failures`.
    Failure,
    /// Neither (a 429, or a 4xx that is the request's own fault).
    Neutral,
}

/// What the shell must do.
#[derive(Debug)]
pub enum Effect<P> {
    /// Take a slot lease on `instance` and send the job there.
    Dispatch { job: Box<Job<P>>, instance: String },
    /// Answer `expired`: the deadline passed while it was held.
    Expire { job: Box<Job<P>>, waited: Duration },
    /// Answer 429 with `retry-after` seconds.
    Shed {
        job: Box<Job<P>>,
        reason: ShedReason,
        retry_after: u64,
    },
    /// Give the job's deliveries back to the broker (nack with requeue).
    Requeue { job: Box<Job<P>> },
    /// A copy of the request job `seq` holds or serves: its reply answers the copy
    /// too. If that reply is already on its way, the shell hands the copy back with
    /// [`Machine::arrive_as_new`].
    Join { seq: u64, copy: P },
    /// Nothing is ready or booting and requests wait: tell the scaler now.
    Activate { held: u64 },
    /// Demand is at the panic threshold of the capacity: tell the scaler.
    Pressure { demand: u64, capacity: u64 },
    /// An instance answered well after failures: clear its failure count.
    ClearFailures { instance: String },
    /// A request not seen before arrived (for the arrival rate).
    NewArrival,
    /// Draining, and nothing is held or working any more.
    Drained,
}

/// What the machine remembers of a job out with the shell.
#[derive(Debug)]
struct Out {
    message_id: Option<String>,
    /// The latest epoch of its deliveries, copies joined while it was out included.
    epoch: u64,
}

/// One deployment's held requests and view of its instances.
#[derive(Debug)]
pub struct Machine<P> {
    rules: Rules,
    view: View,
    held: HeldQueue<Box<Job<P>>>,
    seq: u64,
    snapshot_seen: bool,
    cap: Option<Cap>,
    service_time: Duration,
    held_all_workers: u64,
    /// Jobs out with the shell, by seq.
    working: HashMap<u64, Out>,
    /// The job answering each `message_id` held or worked on.
    active: HashMap<String, Key>,
    /// Jobs waiting for another job's run of their request, until they look again.
    parked: Vec<(DateTime<Utc>, Box<Job<P>>)>,
    next_activation: Option<DateTime<Utc>>,
    draining: bool,
    drained_told: bool,
    /// Power-of-two choices.
    rng: Rng,
    effects: Vec<Effect<P>>,
}

impl<P> Machine<P> {
    /// A machine with no requests and no instances; `rng` draws the dispatch choices.
    pub fn new(rules: Rules, rng: Rng) -> Self {
        Machine {
            view: View::new(rules.spec.clone()),
            service_time: rules.spec.expected_service_time.0,
            rules,
            held: HeldQueue::default(),
            seq: 0,
            snapshot_seen: false,
            cap: None,
            held_all_workers: 0,
            working: HashMap::new(),
            active: HashMap::new(),
            parked: Vec::new(),
            next_activation: None,
            draining: false,
            drained_told: false,
            rng,
            effects: Vec::new(),
        }
    }

    /// The effects of the events so far, in order.
    pub fn effects(&mut self) -> std::vec::Drain<'_, Effect<P>> {
        self.effects.drain(..)
    }

    /// Requests held (waiting for a slot, or parked).
    pub fn held(&self) -> usize {
        self.held.len() + self.parked.len()
    }

    /// Jobs out with the shell (dispatching or replying).
    pub fn working(&self) -> usize {
        self.working.len()
    }

    /// When [`Machine::advance`] has something to do without another event: the
    /// earliest held deadline, parked job, or refused instance asked again.
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        let parked = self.parked.iter().map(|(at, _)| *at).min();
        let busy = if self.held.is_empty() {
            None
        } else {
            self.view
                .instances
                .values()
                .filter_map(|i| i.busy_until)
                .min()
        };
        [self.held.next_deadline(), parked, busy]
            .into_iter()
            .flatten()
            .min()
    }

    /// A delivery. A copy of a request held or worked on joins that job. Returns the
    /// seq of the job that answers it.
    pub fn arrive(&mut self, now: DateTime<Utc>, arrival: Arrival<P>) -> u64 {
        if !self.draining
            && let Some(id) = &arrival.message_id
            && let Some(&key) = self.active.get(id)
        {
            let epoch = arrival.epoch;
            if let Some(job) = self.held.get_mut(key) {
                job.epoch = job.epoch.max(epoch);
            } else if let Some(out) = self.working.get_mut(&key.seq()) {
                out.epoch = out.epoch.max(epoch);
            } else if let Some((_, job)) = self.parked.iter_mut().find(|(_, j)| j.seq == key.seq())
            {
                job.epoch = job.epoch.max(epoch);
            }
            self.effects.push(Effect::Join {
                seq: key.seq(),
                copy: arrival.payload,
            });
            return key.seq();
        }
        self.arrive_as_new(now, arrival)
    }

    /// A delivery that starts a job of its own (a copy whose job's reply was on its
    /// way already comes back here from [`Effect::Join`]). Returns the new job's seq.
    pub fn arrive_as_new(&mut self, now: DateTime<Utc>, arrival: Arrival<P>) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        let mut job = Box::new(Job {
            seq,
            message_id: arrival.message_id,
            priority: arrival.priority,
            arrived: now,
            deadline: arrival.deadline,
            cold_start: self.view.cold(),
            attempts: 0,
            avoid: Vec::new(),
            epoch: arrival.epoch,
            payload: arrival.payload,
        });
        if self.draining {
            job.cold_start = false;
            self.requeue(job);
            return seq;
        }
        if !arrival.redelivered {
            self.effects.push(Effect::NewArrival);
        }
        if let Some(id) = &job.message_id {
            self.active.insert(id.clone(), job.key());
        }
        let remaining = (job.deadline - now).to_std().unwrap_or_default();
        if remaining.is_zero() {
            self.expire(job, now);
            return seq;
        }
        // Activation: nothing ready or booting, so the scaler must hear of it now.
        if self.snapshot_seen && !self.view.any_capacity() {
            self.maybe_activate(now, self.held.len() as u64 + 1);
        }
        // Would it wait longer than its deadline? (Only once the capacity is known.)
        if self.snapshot_seen && !self.view.has_free_slot(now) {
            let ahead = self.working.len() as u64 + self.held.ahead_of_new(job.priority) as u64;
            let estimator = self.estimator(now);
            if let Some(reason) = estimator.shed(ahead, remaining, self.cap_reason()) {
                let retry = estimator.retry_after(self.backlog());
                self.shed(job, reason, retry);
                return seq;
            }
        }
        let (key, deadline) = (job.key(), job.deadline);
        self.held.insert(key, deadline, job);
        self.enforce_limit(now);
        seq
    }

    /// What the registry says now.
    pub fn snapshot(&mut self, now: DateTime<Utc>, s: Snapshot) {
        self.snapshot_seen = true;
        self.cap = s.cap;
        if let Some(t) = s.mean_service_time.filter(|t| !t.is_zero()) {
            self.service_time = t;
        }
        if let Some(h) = s.held_all_workers {
            self.held_all_workers = h;
        }
        self.view.update(s.instances, &s.in_flight);
        if !self.view.any_capacity() && !self.held.is_empty() {
            self.maybe_activate(now, self.held.len() as u64);
        }
        self.shed_by_wait(now);
        self.check_pressure();
    }

    /// No lease could be taken on `instance` (full across workers, or Redis failed):
    /// the job is held again and the instance treated as full for a moment.
    pub fn lease_refused(
        &mut self,
        now: DateTime<Utc>,
        mut job: Box<Job<P>>,
        instance: &str,
        redis_error: bool,
    ) {
        self.back(&mut job);
        if let Some(i) = self.view.instances.get_mut(instance) {
            i.local = i.local.saturating_sub(1);
            // Full for other workers: treat it as full until the next snapshot says
            // otherwise, and do not ask again for a moment.
            i.remote = i.slots.saturating_sub(i.local);
            let pause = if redis_error {
                AFTER_REDIS_ERROR
            } else {
                AFTER_REFUSAL
            };
            self.view.rest(instance, now + delta(pause));
        }
        self.hold(now, job);
    }

    /// An attempt on `instance` ended and its slot lease is released.
    pub fn released(&mut self, instance: &str, outcome: Outcome) {
        let Some(i) = self.view.instances.get_mut(instance) else {
            return;
        };
        i.local = i.local.saturating_sub(1);
        match outcome {
            Outcome::Failure => i.failures += 1,
            Outcome::Ok if i.failures > 0 || i.record.failures > 0 => {
                i.failures = 0;
                i.record.failures = 0;
                self.effects.push(Effect::ClearFailures {
                    instance: instance.to_string(),
                });
            }
            _ => {}
        }
    }

    /// The job comes back to be tried again (on another instance, if one is free).
    pub fn retry(&mut self, now: DateTime<Utc>, mut job: Box<Job<P>>) {
        self.back(&mut job);
        self.hold(now, job);
    }

    /// Another job (of this or another worker) runs this request: look again after
    /// [`Rules::parking`], for its reply or for its claim to lapse.
    pub fn park(&mut self, now: DateTime<Utc>, mut job: Box<Job<P>>) {
        self.back(&mut job);
        if self.draining {
            self.requeue(job);
        } else {
            self.parked.push((now + delta(self.rules.parking), job));
        }
    }

    /// Job `seq`'s reply is confirmed and acked (or given up).
    pub fn finished(&mut self, seq: u64) {
        if let Some(Out {
            message_id: Some(id),
            ..
        }) = self.working.remove(&seq)
            && self.active.get(&id).map(Key::seq) == Some(seq)
        {
            self.active.remove(&id);
        }
    }

    /// A job is back from the shell: no longer working, and as new as its copies.
    fn back(&mut self, job: &mut Job<P>) {
        if let Some(out) = self.working.remove(&job.seq) {
            job.epoch = job.epoch.max(out.epoch);
        }
    }

    /// Hand a job to the shell.
    fn out(&mut self, job: &Job<P>) {
        self.working.insert(
            job.seq,
            Out {
                message_id: job.message_id.clone(),
                epoch: job.epoch,
            },
        );
    }

    /// The connection of `epoch` is gone: the broker requeues its deliveries, so
    /// every held job with none newer is dropped (and returned).
    pub fn connection_lost(&mut self, epoch: u64) -> Vec<Box<Job<P>>> {
        let mut dropped: Vec<Box<Job<P>>> = self
            .held
            .drain_where(|j| j.epoch <= epoch)
            .into_iter()
            .map(|(_, j)| j)
            .collect();
        let (gone, kept) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(_, job)| job.epoch <= epoch);
        self.parked = kept;
        dropped.extend(gone.into_iter().map(|(_, j)| j));
        for job in &dropped {
            self.forget(job);
        }
        dropped
    }

    /// Shutdown: requeue what is held, take nothing new, and say [`Effect::Drained`]
    /// once nothing is working. Returns how many were requeued.
    pub fn drain(&mut self) -> usize {
        self.draining = true;
        let mut held: Vec<Box<Job<P>>> = std::iter::from_fn(|| self.held.pop_next())
            .map(|(_, job)| job)
            .collect();
        held.extend(std::mem::take(&mut self.parked).into_iter().map(|(_, j)| j));
        let n = held.len();
        for job in held {
            self.requeue(job);
        }
        n
    }

    /// The drain timeout passed: the shell stopped its work (the closing connection
    /// requeues the deliveries). Returns how many jobs were abandoned.
    pub fn abort(&mut self) -> usize {
        let n = self.working.len();
        self.working.clear();
        self.active.clear();
        self.tell_drained();
        n
    }

    /// After a batch of events: expire what is due, bring back parked jobs, dispatch
    /// to free slots, and say when a drain is complete.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let (due, waiting) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.parked = waiting;
        for (_, job) in due {
            self.hold(now, job);
        }
        for (_, job) in self.held.pop_expired(now) {
            self.expire(job, now);
        }
        self.view.end_rests(now);
        self.dispatch(now);
        if self.draining
            && self.held.is_empty()
            && self.parked.is_empty()
            && self.working.is_empty()
        {
            self.tell_drained();
        }
    }

    fn tell_drained(&mut self) {
        if self.draining && !self.drained_told {
            self.drained_told = true;
            self.effects.push(Effect::Drained);
        }
    }

    fn dispatch(&mut self, now: DateTime<Utc>) {
        while let Some((_, job)) = self.held.peek_next() {
            let Some(instance) =
                self.view
                    .pick(self.rules.dispatch, &job.avoid, now, &mut self.rng)
            else {
                return;
            };
            let Some((_, job)) = self.held.pop_next() else {
                return;
            };
            if let Some(i) = self.view.instances.get_mut(&instance) {
                i.local += 1;
            }
            self.out(&job);
            self.effects.push(Effect::Dispatch { job, instance });
        }
    }

    /// Put a job back (after a refused lease, a retry or parking), keeping its place.
    fn hold(&mut self, now: DateTime<Utc>, job: Box<Job<P>>) {
        if self.draining && job.attempts == 0 {
            self.requeue(job);
            return;
        }
        if job.deadline <= now {
            self.expire(job, now);
            return;
        }
        let (key, deadline) = (job.key(), job.deadline);
        self.held.insert(key, deadline, job);
    }

    fn forget(&mut self, job: &Job<P>) {
        if let Some(id) = &job.message_id
            && self.active.get(id) == Some(&job.key())
        {
            self.active.remove(id);
        }
    }

    fn requeue(&mut self, job: Box<Job<P>>) {
        self.forget(&job);
        self.effects.push(Effect::Requeue { job });
    }

    fn expire(&mut self, job: Box<Job<P>>, now: DateTime<Utc>) {
        let waited = (now - job.arrived).to_std().unwrap_or_default();
        self.out(&job);
        self.effects.push(Effect::Expire { job, waited });
    }

    fn shed(&mut self, job: Box<Job<P>>, reason: ShedReason, retry_after: u64) {
        self.out(&job);
        self.effects.push(Effect::Shed {
            job,
            reason,
            retry_after,
        });
    }

    fn maybe_activate(&mut self, now: DateTime<Utc>, held: u64) {
        if self.next_activation.is_some_and(|at| now < at) {
            return;
        }
        self.next_activation = Some(now + delta(self.rules.activation_interval));
        self.effects.push(Effect::Activate { held });
    }

    fn check_pressure(&mut self) {
        let (capacity, in_flight) = self.view.slots_and_in_flight();
        if capacity == 0 {
            return;
        }
        let demand = self.held_all_workers.max(self.held.len() as u64) + u64::from(in_flight);
        if (demand as f64) < self.rules.spec.policy.panic_threshold * f64::from(capacity) {
            return;
        }
        self.effects.push(Effect::Pressure {
            demand,
            capacity: u64::from(capacity),
        });
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
