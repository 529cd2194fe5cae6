//! The discrete-event engine: one deployment, one policy, one request stream.
//!
//! What it models, and the choices where the system leaves room:
//!
//! - **Instances** are launched by decisions, boot (billed from launch), turn ready, serve
//!   up to their pool's `slots` requests at once, and stop when told, or when draining
//!   and empty. A terminated instance loses the requests it was serving (`failed`).
//! - **The worker** is the queue worker's own state machine, [`scale0_core::worker`],
//!   driven as the worker's shell drives it: each arrival, completion and expiry is an
//!   event at the simulated instant, and the machine decides holding (priority, then
//!   age), admission and shedding (`max_held_requests`, the wait estimate against the
//!   deadline, a cap), dispatch (power of two choices on outstanding requests; or, for
//!   policies of platforms that pack ([`crate::policy::Dispatch::Packing`]: FaaS keep-alive), the
//!   busiest instance with a free slot) and expiry. Its watcher reads the registry when
//!   it changes (a launch, boot, drain, stop, warning, or a new cap) and every 200 ms
//!   while requests are held (the real `refresh_interval`), re-checking held requests
//!   against their deadlines as the worker does. A lease and a POST take no simulated
//!   time; a dispatch to an instance the engine has stopped since the last read is
//!   refused like a full slot. Every policy runs behind the same worker, so only the
//!   scaling differs.
//! - **Control events**: on an arrival the worker raises `activation` when no instance is
//!   ready or booting, and `pressure` when demand exceeds the policy's threshold times
//!   ready and booting slots, each at most once per its interval (the real worker's rate
//!   limits: [`crate::policy::WorkerEvents`]); the policy decides `activation_latency` later,
//!   and at most one such call is pending at a time. These come from the policy's
//!   `WorkerEvents`, not from the worker machine's own activation and pressure effects,
//!   so each baseline keeps its platform's signals (a FaaS platform sees every request).
//! - **Decisions**: every policy decides once at time 0, then on its period from the
//!   scenario's tick phase on.
//! - **Warmup**: requests arriving before `warmup` run like any other but are not
//!   scored; instance time is billed, and launches and the peak counted, only from
//!   `warmup` on. (A request that arrived in the warmup and is lost with its instance
//!   after it counts as failed: the engine tracks in-flight counts, not which request.)
//! - **Spot interruptions** (`[instances] interruptions_per_instance_hour`): each
//!   instance of a `capacity_type = "spot"` pool draws its time to an interruption
//!   warning from a Poisson process, from launch; a warning also takes each other
//!   running instance of the pool with `interruption_correlation`. A warned instance
//!   does what the Spot event handler makes it do (`functions/src/spot.rs`): a ready one
//!   is no longer capacity but takes requests until 30 s before its reclaim
//!   (`InstanceRecord::serves_until`), a booting one stops, the policy is woken after
//!   `activation_latency` to replace it, and the pool's recent interruptions and
//!   instance-hours reach `decide()` as the store would report them
//!   (`Observation.cost.interruptions`, over `scale0_core::cost::spot::WINDOW`). At the
//!   end of the notice the instance is reclaimed: what it still serves fails (counted as
//!   failed and as interrupted in flight; the real worker retries such requests on
//!   another instance, so this is the pessimistic count).
//! - **Warm pools** (a pool's `warm_pool_size`), as EC2 Auto Scaling keeps them: the
//!   pool starts with its warm instances prepared; a launch takes a warm one while
//!   there is one, ready after `warm_boot_time` instead of `boot_time`, and the group
//!   refills the warm pool at once with an instance that runs a full boot (billed at the
//!   pool's price) and then stops. A stopped warm instance costs
//!   `warm_price_per_hour_usd`. Scaled-in instances terminate (the group's
//!   `reuse_on_scale_in = false`, as `terraform/modules/gpu-pool` sets it).
//! - **Budgets and quotas** (`[[budgets]]`, `[[quotas]]`): before each decision the
//!   engine bills every instance by the ledger's rule and hands `decide()` each
//!   budget's spend in its current period (`crate::spend`), the deployment alone in
//!   scope; quotas reach it with nothing held by other deployments. The report gives
//!   each budget's most-billed period, so a run shows whether the cap held.
//! - **Metric delay**: queue depth, held and in-flight counts (and the concurrency
//!   integral) a decision sees are those of `metric_delay` earlier; the instance
//!   registry is current, as it is in Redis.
//! - **Arrival history**: arrivals are counted in wall-clock 10 s bins, as the worker
//!   writes them to Redis; a decision sees the bins since its previous one (the one
//!   still filling included, which it does not fold), as the scaler reads them from
//!   where the policy's history stopped. Nothing of the future is visible.
//!
//! Events at the same instant run in a fixed order — boots, completions, interruption
//! warnings, reclaims, refills, registry reads, expiries, arrivals, decisions — and
//! ties by index (the instance's, or the worker's job sequence for completions), and
//! the worker's dispatch choices draw from their own seeded stream, so a run is a pure
//! function of its inputs: same scenario and seed, same numbers, bit for bit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::metrics::{PolicyReport, PoolUsage, Series, Waits};
use crate::policy::{Autoscaler, Signals};
use crate::rng::{Rng, Stream};
use crate::spend::{self, Billed};
use crate::trace::{MICROS_PER_SEC, Micros};
use crate::workload::Request;
use scale0_core::config::{Budget, CapacityType, Deployment, Metric, Quota};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::cost::quota::QuotaObservation;
use scale0_core::cost::spot::PoolInterruptions;
use scale0_core::policy::history::BIN_SECS as ARRIVAL_BIN_SECS;
use scale0_core::policy::{Cap, Decision, Observation, ObservedInstance};
use scale0_core::worker::{self, Arrival, Effect, Machine, Outcome, Rules};

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Wall-clock instant of simulated time 0 (decisions see `epoch + t`).
    pub epoch: DateTime<Utc>,
    /// End of the accounting window.
    pub horizon: Micros,
    pub slo: Micros,
    /// A wait longer than this is counted in `PolicyReport::waited_longer`.
    pub long_wait: Micros,
    pub deadline: Micros,
    pub activation_latency: Micros,
    pub metric_delay: Micros,
    pub boot_spread: f64,
    pub seed: u64,
    /// Start of the scored window (see the module doc).
    pub warmup: Micros,
    /// First periodic decision after time 0, µs.
    pub tick_phase: Micros,
    pub series_buckets: usize,
    /// Let policies that claim it skip ticks while the deployment is empty.
    pub skip_idle_ticks: bool,
    pub interruptions: InterruptionModel,
    /// The budgets covering the deployment, which `decide()` sees as the store would
    /// report them (`crate::spend`).
    pub budgets: Vec<Budget>,
    /// The quotas covering one of its pools; no other deployment holds any of them.
    pub quotas: Vec<Quota>,
}

/// How Spot instances are interrupted (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct InterruptionModel {
    /// Warnings per instance-hour of a Spot pool's instance; 0 = never.
    pub rate_per_instance_hour: f64,
    /// Warning → reclaim.
    pub notice: Micros,
    /// Chance a warning also takes each other running instance of its pool.
    pub correlation: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Booting,
    Ready,
    /// Ready at its Spot interruption warning: draining, not capacity, but taking
    /// requests until `InstanceRecord::serves_until`.
    Warned,
    Draining,
    Stopped,
}

#[derive(Debug, Clone)]
struct Inst {
    /// Its registry id, `i-<index>`.
    id: String,
    pool: usize,
    state: State,
    launched: Micros,
    /// When it became (or will become) ready.
    ready_at: Micros,
    in_flight: u32,
    slots: u32,
    /// When its last request finished (or it became ready).
    idle_from: Micros,
    stopped_at: Option<Micros>,
    /// Had its Spot interruption warning.
    warned: bool,
}

/// A request as the worker's machine carries it.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    at: Micros,
    service: Micros,
    scored: bool,
}

/// Event kinds in their order at equal times.
const EV_BOOT: u8 = 0;
const EV_DONE: u8 = 1;
const EV_WARN: u8 = 2;
const EV_RECLAIM: u8 = 3;
/// A warm pool's refill is prepared (the index is the refill's, in `refills`).
const EV_REFILLED: u8 = 4;
/// The worker's watcher reads the registry again (while requests are held).
const EV_WATCH: u8 = 5;

/// How often the worker's watcher reads the registry: the queue worker's default.
const REFRESH: Micros = worker::DEFAULT_REFRESH_INTERVAL.as_micros() as Micros;

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    t: Micros,
    waiting: u64,
    in_flight: u64,
    integral: f64,
}

const SERVICE_WINDOW: usize = 500;
const BOOT_WINDOW: usize = 20;

struct Engine<'a> {
    spec: &'a Deployment,
    p: EngineParams,
    now: Micros,
    instances: Vec<Inst>,
    /// Indices of instances not stopped, in launch order; `obs.instances` is parallel.
    active: Vec<usize>,
    obs: Observation,
    /// The queue worker's rules (`scale0_core::worker`), driven as the worker's shell
    /// drives them.
    worker: Machine<Waiting>,
    /// The worker's effects being carried out (a buffer kept between calls).
    effects: Vec<Effect<Waiting>>,
    /// The registry (or the cap) changed since the worker last read it.
    registry_changed: bool,
    watch_pending: bool,
    in_flight: u64,
    ready_count: u32,
    booting_count: u32,
    ready_slots: u32,
    booting_slots: u32,
    /// (time, kind, instance or refill index, the worker's job seq for a completion).
    events: BinaryHeap<Reverse<(Micros, u8, usize, u64)>>,
    boot_rng: Rng,
    interruption_rng: Rng,
    /// Per pool: interruption warnings within the store's window, oldest first.
    recent_warnings: Vec<VecDeque<Micros>>,
    /// Instances before this index stopped before the window of `recent_warnings`.
    first_in_window: usize,
    /// Per pool: prepared warm instances, and the integral of that count (µs) over the
    /// scored window, for their storage bill.
    warm_ready: Vec<u32>,
    warm_micros: Vec<i128>,
    /// Refills of warm pools: (pool, launched); billed like a boot when they end.
    refills: Vec<(usize, Micros)>,
    warm_starts: Vec<u64>,
    /// The last decision's cap (the worker sheds by it).
    cap: Option<Cap>,
    /// Mean service time of recent completions (the worker's measurement).
    service_ring: VecDeque<Micros>,
    service_sum: i128,
    latency_ring: VecDeque<Micros>,
    track_latency: bool,
    // Policy-facing accounting.
    integral: f64,
    snapshots: VecDeque<Snapshot>,
    peak_in_system: u64,
    idle_since: Option<Micros>,
    last_completion: Option<Micros>,
    idle_times: Vec<Micros>,
    collect_idle_times: bool,
    last_arrival: Option<Micros>,
    /// Per active instance, for [`Signals::last_busy`]; refilled at each decision.
    last_busy: Vec<Micros>,
    /// Scenario metric delay plus the policy's own.
    delay: Micros,
    last_activation: Option<Micros>,
    last_pressure: Option<Micros>,
    // Report.
    requests: u64,
    shed: u64,
    expired: u64,
    failed: u64,
    within_slo: u64,
    waited_longer: u64,
    cold: u64,
    waits: Waits,
    launches: Vec<u64>,
    interruptions: Vec<u64>,
    interrupted_in_flight: u64,
    billed: Vec<i128>,
    zero_time: Micros,
    peak_instances: u32,
    decisions: u64,
    series: Series,
}

/// Replay `requests` (sorted by arrival) against `policy`. `progress` is called now and
/// then with the share of simulated time done.
pub fn run(
    spec: &Deployment,
    params: EngineParams,
    requests: impl Iterator<Item = Request>,
    policy: &mut dyn Autoscaler,
    progress: &mut dyn FnMut(f64),
) -> PolicyReport {
    let mut e = Engine::new(spec, params, policy);
    e.run(requests, policy, progress);
    e.report(policy.name())
}

impl<'a> Engine<'a> {
    fn new(spec: &'a Deployment, p: EngineParams, policy: &dyn Autoscaler) -> Engine<'a> {
        let track_latency = spec
            .policy
            .step_rules
            .iter()
            .any(|r| r.metric == Metric::LatencyP95Ms);
        let mut obs = Observation::default();
        obs.cost.quotas = p
            .quotas
            .iter()
            .map(|q| QuotaObservation {
                quota: q.clone(),
                others_vcpus: 0,
            })
            .collect();
        for pool in &spec.pools {
            obs.recent_boot_times.insert(pool.name.clone(), Vec::new());
        }
        let series = Series::new(p.horizon, p.series_buckets);
        let boot_rng = crate::rng::stream(p.seed, Stream::Boot);
        Engine {
            spec,
            now: 0,
            instances: Vec::new(),
            active: Vec::new(),
            obs,
            worker: Machine::new(
                Rules {
                    spec: spec.clone(),
                    // No request is run by another job, and the policy's own
                    // WorkerEvents wake it (see the module doc).
                    parking: Duration::ZERO,
                    activation_interval: Duration::ZERO,
                    dispatch: policy.dispatch(),
                },
                crate::rng::stream(p.seed, Stream::Dispatch),
            ),
            effects: Vec::new(),
            registry_changed: true,
            watch_pending: false,
            in_flight: 0,
            ready_count: 0,
            booting_count: 0,
            ready_slots: 0,
            booting_slots: 0,
            events: BinaryHeap::new(),
            boot_rng,
            interruption_rng: crate::rng::stream(p.seed, Stream::Interruption),
            recent_warnings: vec![VecDeque::new(); spec.pools.len()],
            first_in_window: 0,
            warm_ready: spec.pools.iter().map(|p| p.warm_pool_size).collect(),
            warm_micros: vec![0; spec.pools.len()],
            refills: Vec::new(),
            warm_starts: vec![0; spec.pools.len()],
            cap: None,
            service_ring: VecDeque::with_capacity(SERVICE_WINDOW),
            service_sum: 0,
            latency_ring: VecDeque::new(),
            track_latency,
            integral: 0.0,
            snapshots: VecDeque::new(),
            peak_in_system: 0,
            idle_since: Some(0),
            last_completion: None,
            idle_times: Vec::new(),
            collect_idle_times: policy.wants_idle_times(),
            last_arrival: None,
            last_busy: Vec::new(),
            delay: p.metric_delay + policy.extra_metric_delay(),
            last_activation: None,
            last_pressure: None,
            requests: 0,
            shed: 0,
            expired: 0,
            failed: 0,
            within_slo: 0,
            waited_longer: 0,
            cold: 0,
            waits: Waits::default(),
            launches: vec![0; spec.pools.len()],
            interruptions: vec![0; spec.pools.len()],
            interrupted_in_flight: 0,
            billed: vec![0; spec.pools.len()],
            zero_time: 0,
            peak_instances: 0,
            decisions: 0,
            series,
            p,
        }
    }

    fn at(&self, t: Micros) -> DateTime<Utc> {
        self.p.epoch + TimeDelta::microseconds(t)
    }

    /// Requests the worker holds.
    fn waiting(&self) -> u64 {
        self.worker.held() as u64
    }

    fn in_system(&self) -> u64 {
        self.waiting() + self.in_flight
    }

    /// Move the clock to `t`, accounting for the state that held since `now`.
    #[inline]
    fn advance(&mut self, t: Micros) {
        let from = self.now;
        if t <= from {
            return;
        }
        let in_system = self.in_system();
        self.integral += in_system as f64 * (t - from) as f64 / MICROS_PER_SEC as f64;
        let scored = |x: Micros| x.clamp(self.p.warmup, self.p.horizon);
        let scored_span = i128::from(scored(t) - scored(from));
        for (micros, &ready) in self.warm_micros.iter_mut().zip(&self.warm_ready) {
            *micros += i128::from(ready) * scored_span;
        }
        if self.active.is_empty() {
            self.zero_time += scored(t) - scored(from);
        }
        if from < self.p.warmup && t >= self.p.warmup {
            self.peak_instances = self.peak_instances.max(self.active.len() as u32);
        }
        if from < self.p.horizon {
            self.series.record(
                from,
                t,
                in_system.min(u64::from(u32::MAX)) as u32,
                self.ready_slots,
                self.booting_slots,
            );
        }
        self.now = t;
    }

    /// Record the counts a delayed observer will see.
    #[inline]
    fn note(&mut self) {
        let in_system = self.in_system();
        if in_system > self.peak_in_system {
            self.peak_in_system = in_system;
        }
        if self.delay == 0 {
            return;
        }
        let s = Snapshot {
            t: self.now,
            waiting: self.waiting(),
            in_flight: self.in_flight,
            integral: self.integral,
        };
        match self.snapshots.back_mut() {
            Some(last) if last.t == s.t => *last = s,
            _ => self.snapshots.push_back(s),
        }
    }

    /// (waiting, in flight, integral) as of `t`.
    fn delayed(&mut self, t: Micros) -> (u64, u64, f64) {
        while self.snapshots.len() >= 2 && self.snapshots[1].t <= t {
            self.snapshots.pop_front();
        }
        match self.snapshots.front() {
            Some(s) if s.t <= t => (
                s.waiting,
                s.in_flight,
                s.integral
                    + (s.waiting + s.in_flight) as f64 * (t - s.t) as f64 / MICROS_PER_SEC as f64,
            ),
            _ => (0, 0, 0.0),
        }
    }

    fn mean_service(&self) -> Micros {
        if self.service_ring.is_empty() {
            self.spec.expected_service_time.0.as_micros() as Micros
        } else {
            (self.service_sum / self.service_ring.len() as i128) as Micros
        }
    }

    // ---- instances -------------------------------------------------------------------

    fn launch(&mut self, pool: usize) {
        let spec = self.spec;
        let p = &spec.pools[pool];
        let idx = self.instances.len();
        let warm = self.warm_ready[pool] > 0;
        let boot = if warm {
            self.warm_ready[pool] -= 1;
            self.refill(pool);
            if self.now >= self.p.warmup {
                self.warm_starts[pool] += 1;
            }
            let warm_boot = p.warm_boot_time.unwrap_or(p.boot_time);
            self.draw_boot(warm_boot.0)
        } else {
            self.draw_boot(p.boot_time.0)
        };
        let inst = Inst {
            id: format!("i-{idx}"),
            pool,
            state: State::Booting,
            launched: self.now,
            ready_at: self.now + boot,
            in_flight: 0,
            slots: p.slots,
            idle_from: self.now + boot,
            stopped_at: None,
            warned: false,
        };
        self.obs.instances.push(ObservedInstance {
            record: InstanceRecord {
                id: inst.id.clone(),
                deployment: self.spec.name.clone(),
                pool: p.name.clone(),
                state: InstanceState::Booting,
                endpoint: Some(format!("sim://i-{idx}")),
                launched_at: self.at(self.now),
                ready_at: None,
                draining_since: None,
                failures: 0,
                reclaim_at: None,
            },
            in_flight: 0,
        });
        self.booting_count += 1;
        self.booting_slots += p.slots;
        self.registry_changed = true;
        self.events.push(Reverse((inst.ready_at, EV_BOOT, idx, 0)));
        let rate = self.p.interruptions.rate_per_instance_hour;
        if rate > 0.0 && p.capacity_type == CapacityType::Spot {
            let mean = 3600.0 * MICROS_PER_SEC as f64 / rate;
            let after = self.interruption_rng.exponential(mean).min(1e15) as Micros;
            self.events
                .push(Reverse((self.now + after.max(1), EV_WARN, idx, 0)));
        }
        self.instances.push(inst);
        self.active.push(idx);
        if self.now >= self.p.warmup {
            self.launches[pool] += 1;
            self.peak_instances = self.peak_instances.max(self.active.len() as u32);
        }
        self.idle_since_check();
    }

    /// A boot of nominal length `nominal`, spread as the scenario says.
    fn draw_boot(&mut self, nominal: Duration) -> Micros {
        let spread = self.p.boot_spread;
        let factor = if spread > 0.0 {
            1.0 - spread + 2.0 * spread * self.boot_rng.next_f64()
        } else {
            1.0
        };
        ((nominal.as_micros() as f64 * factor).round() as Micros).max(1)
    }

    /// The group prepares a new warm instance for the one just started: a full boot.
    fn refill(&mut self, pool: usize) {
        let boot = self.draw_boot(self.spec.pools[pool].boot_time.0);
        let i = self.refills.len();
        self.refills.push((pool, self.now));
        self.events
            .push(Reverse((self.now + boot, EV_REFILLED, i, 0)));
    }

    fn refilled(&mut self, i: usize) {
        let (pool, launched) = self.refills[i];
        let clip = |x: Micros| x.clamp(self.p.warmup, self.p.horizon);
        self.billed[pool] += i128::from(clip(self.now) - clip(launched));
        self.warm_ready[pool] += 1;
    }

    fn position(&self, idx: usize) -> Option<usize> {
        self.active.iter().position(|&i| i == idx)
    }

    fn stop(&mut self, idx: usize) {
        let Some(pos) = self.position(idx) else {
            return;
        };
        let inst = &mut self.instances[idx];
        match inst.state {
            State::Booting => {
                self.booting_count -= 1;
                self.booting_slots -= inst.slots;
            }
            State::Ready => {
                self.ready_count -= 1;
                self.ready_slots -= inst.slots;
            }
            State::Warned | State::Draining | State::Stopped => {}
        }
        inst.state = State::Stopped;
        self.registry_changed = true;
        inst.stopped_at = Some(self.now);
        if inst.in_flight > 0 {
            // Terminated while serving: those requests are lost.
            if self.now >= self.p.warmup {
                self.failed += u64::from(inst.in_flight);
            }
            self.in_flight -= u64::from(inst.in_flight);
            inst.in_flight = 0;
        }
        let clip = |x: Micros| x.clamp(self.p.warmup, self.p.horizon);
        self.billed[inst.pool] += i128::from(clip(self.now) - clip(inst.launched));
        self.active.remove(pos);
        self.obs.instances.remove(pos);
        self.note();
    }

    fn drain(&mut self, idx: usize) {
        let Some(pos) = self.position(idx) else {
            return;
        };
        let inst = &mut self.instances[idx];
        match inst.state {
            State::Booting => self.stop(idx),
            State::Ready if inst.in_flight == 0 => self.stop(idx),
            State::Ready => {
                inst.state = State::Draining;
                self.ready_count -= 1;
                self.ready_slots -= inst.slots;
                self.registry_changed = true;
                let since = self.at(self.now);
                let rec = &mut self.obs.instances[pos].record;
                rec.state = InstanceState::Draining;
                rec.draining_since = Some(since);
            }
            State::Warned if inst.in_flight == 0 => self.stop(idx),
            State::Warned => {
                // Its record says draining already; it takes no more requests.
                inst.state = State::Draining;
                self.registry_changed = true;
                self.obs.instances[pos].record.reclaim_at = None;
            }
            State::Draining | State::Stopped => {}
        }
    }

    /// An interruption warning for `idx` (and, by correlation, others of its pool).
    /// Returns whether an instance was warned, so the policy is woken to replace it.
    fn warn(&mut self, idx: usize) -> bool {
        if self.instances[idx].state == State::Stopped || self.instances[idx].warned {
            return false;
        }
        let pool = self.instances[idx].pool;
        let mut warned = vec![idx];
        let correlation = self.p.interruptions.correlation;
        if correlation > 0.0 {
            for &other in &self.active {
                let o = &self.instances[other];
                if other != idx
                    && o.pool == pool
                    && !o.warned
                    && self.interruption_rng.chance(correlation)
                {
                    warned.push(other);
                }
            }
        }
        for i in warned {
            self.instances[i].warned = true;
            self.recent_warnings[pool].push_back(self.now);
            if self.now >= self.p.warmup {
                self.interruptions[pool] += 1;
            }
            self.on_warning(i);
            if self.instances[i].state != State::Stopped {
                let at = self.now + self.p.interruptions.notice;
                self.events.push(Reverse((at, EV_RECLAIM, i, 0)));
            }
        }
        true
    }

    /// What the Spot event handler does to a warned instance: a ready one keeps
    /// serving until shortly before its reclaim (`InstanceRecord::serves_until`), but is
    /// no longer capacity; a booting one drains (it stops: nothing runs on it).
    fn on_warning(&mut self, idx: usize) {
        let Some(pos) = self.position(idx) else {
            return;
        };
        let inst = &mut self.instances[idx];
        match inst.state {
            State::Booting => self.drain(idx),
            State::Ready => {
                inst.state = State::Warned;
                self.ready_count -= 1;
                self.ready_slots -= inst.slots;
                self.registry_changed = true;
                let (since, reclaim) = (
                    self.at(self.now),
                    self.at(self.now + self.p.interruptions.notice),
                );
                let rec = &mut self.obs.instances[pos].record;
                rec.state = InstanceState::Draining;
                rec.draining_since = Some(since);
                rec.reclaim_at = Some(reclaim);
            }
            State::Warned | State::Draining | State::Stopped => {}
        }
    }

    /// The end of a warned instance's notice: EC2 takes it, with what it still serves.
    fn reclaim(&mut self, idx: usize) {
        let inst = &self.instances[idx];
        if inst.state == State::Stopped {
            return;
        }
        if self.now >= self.p.warmup {
            self.interrupted_in_flight += u64::from(inst.in_flight);
        }
        self.stop(idx);
    }

    /// Each Spot pool's interruptions and instance-hours over the store's window, as
    /// the scaler reads them for `decide()`.
    fn observe_interruptions(&mut self) {
        if self.p.interruptions.rate_per_instance_hour == 0.0 {
            return;
        }
        let window = scale0_core::cost::spot::WINDOW
            .num_microseconds()
            .unwrap_or(Micros::MAX);
        let from = self.now - window;
        while self
            .instances
            .get(self.first_in_window)
            .is_some_and(|i| i.stopped_at.is_some_and(|t| t < from))
        {
            self.first_in_window += 1;
        }
        let mut hours = vec![0.0; self.spec.pools.len()];
        for inst in &self.instances[self.first_in_window..] {
            let end = inst.stopped_at.unwrap_or(self.now);
            let start = inst.launched.max(from);
            if end > start {
                hours[inst.pool] += (end - start) as f64 / (3600.0 * MICROS_PER_SEC as f64);
            }
        }
        for (i, pool) in self.spec.pools.iter().enumerate() {
            if pool.capacity_type != CapacityType::Spot {
                continue;
            }
            let warnings = &mut self.recent_warnings[i];
            while warnings.front().is_some_and(|&t| t < from) {
                warnings.pop_front();
            }
            self.obs.cost.interruptions.insert(
                pool.name.clone(),
                PoolInterruptions {
                    interruptions: warnings.len() as u32,
                    instance_hours: hours[i],
                },
            );
        }
    }

    fn boot_done(&mut self, idx: usize) {
        if self.instances[idx].state != State::Booting {
            return;
        }
        let Some(pos) = self.position(idx) else {
            return;
        };
        let inst = &mut self.instances[idx];
        inst.state = State::Ready;
        inst.idle_from = self.now;
        let boot = Duration::from_micros((self.now - inst.launched) as u64);
        let slots = inst.slots;
        let pool = inst.pool;
        self.booting_count -= 1;
        self.booting_slots -= slots;
        self.ready_count += 1;
        self.ready_slots += slots;
        self.registry_changed = true;
        let ready_at = self.at(self.now);
        let rec = &mut self.obs.instances[pos].record;
        rec.state = InstanceState::Ready;
        rec.ready_at = Some(ready_at);
        let boots = self
            .obs
            .recent_boot_times
            .get_mut(&self.spec.pools[pool].name)
            .expect("every pool has a boot list");
        boots.push(boot);
        if boots.len() > BOOT_WINDOW {
            boots.remove(0);
        }
    }

    // ---- requests --------------------------------------------------------------------

    fn idle_since_check(&mut self) {
        if self.in_system() == 0 {
            if self.idle_since.is_none() {
                self.idle_since = Some(self.now);
            }
        } else {
            self.idle_since = None;
        }
    }

    /// The worker reads the registry: its snapshot, then what it decides.
    fn watch(&mut self) {
        self.registry_changed = false;
        let snapshot = worker::Snapshot {
            instances: self
                .obs
                .instances
                .iter()
                .map(|o| o.record.clone())
                .collect(),
            // One worker: its own leases are all there are.
            in_flight: BTreeMap::new(),
            cap: self.cap.clone(),
            mean_service_time: Some(Duration::from_micros(self.mean_service() as u64)),
            held_all_workers: None,
        };
        let now = self.at(self.now);
        self.worker.snapshot(now, snapshot);
        self.run_worker();
    }

    /// Read the registry again in one refresh interval while requests are held (the
    /// worker re-checks their waits against their deadlines at each read).
    fn schedule_watch(&mut self) {
        if !self.watch_pending && self.worker.held() > 0 {
            self.watch_pending = true;
            self.events
                .push(Reverse((self.now + REFRESH, EV_WATCH, 0, 0)));
        }
    }

    /// Let the worker expire, dispatch and shed at `now`, and carry out what it decides.
    fn run_worker(&mut self) {
        self.worker.advance(self.at(self.now));
        // One buffer for every call (this runs twice per request).
        let mut effects = std::mem::take(&mut self.effects);
        loop {
            effects.extend(self.worker.effects());
            if effects.is_empty() {
                break;
            }
            for effect in effects.drain(..) {
                match effect {
                    Effect::Dispatch { job, instance } => self.serve(job, &instance),
                    Effect::Expire { job, .. } => {
                        let scored = u64::from(job.payload.scored);
                        self.expired += scored;
                        self.waited_longer += scored;
                        self.worker.finished(job.seq);
                    }
                    Effect::Shed { job, .. } => {
                        self.shed += u64::from(job.payload.scored);
                        self.worker.finished(job.seq);
                    }
                    // The policy's own WorkerEvents wake it, so baselines keep their
                    // platforms' signals (see the module doc); requests have no
                    // message_id to join on and the worker never drains here.
                    Effect::Activate { .. }
                    | Effect::Pressure { .. }
                    | Effect::NewArrival
                    | Effect::ClearFailures { .. }
                    | Effect::Join { .. }
                    | Effect::Requeue { .. }
                    | Effect::Drained => {}
                }
            }
        }
        self.effects = effects;
        self.schedule_watch();
        self.idle_since_check();
        self.note();
    }

    /// The worker sent `job` to `instance`: it starts service at once (the lease and
    /// the POST take no simulated time).
    fn serve(&mut self, job: Box<worker::Job<Waiting>>, instance: &str) {
        let now = self.at(self.now);
        let Some(idx) = parse_id(instance).filter(|&i| {
            let inst = &self.instances[i];
            matches!(inst.state, State::Ready | State::Warned) && inst.in_flight < inst.slots
        }) else {
            // The worker's view is a read behind: refused, as a full slot is.
            self.worker.lease_refused(now, job, instance, false);
            return;
        };
        let req = job.payload;
        let inst = &mut self.instances[idx];
        inst.in_flight += 1;
        self.in_flight += 1;
        let wait = self.now - req.at;
        if req.scored {
            self.waits.push(wait);
            if wait <= self.p.slo {
                self.within_slo += 1;
            }
            if wait > self.p.long_wait {
                self.waited_longer += 1;
            }
            if inst.ready_at > req.at {
                self.cold += 1;
            }
        }
        if self.track_latency {
            if self.latency_ring.len() == SERVICE_WINDOW {
                self.latency_ring.pop_front();
            }
            self.latency_ring.push_back(wait + req.service);
        }
        self.events
            .push(Reverse((self.now + req.service, EV_DONE, idx, job.seq)));
        self.record_service(req.service);
    }

    fn record_service(&mut self, service: Micros) {
        // The worker measures service times as requests finish; recording at dispatch
        // (service is known) keeps the same window one service time earlier.
        if self.service_ring.len() == SERVICE_WINDOW {
            self.service_sum -= i128::from(self.service_ring.pop_front().unwrap_or(0));
        }
        self.service_ring.push_back(service);
        self.service_sum += i128::from(service);
    }

    /// The worker's job `seq` is served on `idx` (or was lost with it, counted then).
    fn complete(&mut self, idx: usize, seq: u64) {
        let inst = &mut self.instances[idx];
        let lost = inst.state == State::Stopped;
        if !lost {
            inst.in_flight -= 1;
            if inst.in_flight == 0 {
                inst.idle_from = self.now;
            }
            self.in_flight -= 1;
            self.last_completion = Some(self.now);
            if inst.state == State::Draining && inst.in_flight == 0 {
                self.stop(idx);
            }
        }
        let outcome = if lost { Outcome::Neutral } else { Outcome::Ok };
        self.worker.released(&self.instances[idx].id, outcome);
        self.worker.finished(seq);
        self.run_worker();
    }

    /// Returns true when the arrival should wake the policy.
    fn arrive(&mut self, r: Request, events: super::policy::WorkerEvents) -> bool {
        let scored = r.at >= self.p.warmup;
        self.requests += u64::from(scored);
        self.last_arrival = Some(self.now);
        let wall = self.at(self.now).timestamp();
        *self
            .obs
            .arrival_bins
            .entry(wall - wall.rem_euclid(ARRIVAL_BIN_SECS))
            .or_default() += 1;
        if self.collect_idle_times {
            let it = if self.in_flight > 0 || self.waiting() > 0 {
                0
            } else {
                self.now - self.last_completion.unwrap_or(self.now)
            };
            self.idle_times.push(it.max(0));
        }
        let capacity_slots = u64::from(self.ready_slots + self.booting_slots);
        let (now, deadline) = (self.at(self.now), self.at(self.now + self.p.deadline));
        self.worker.arrive(
            now,
            Arrival {
                message_id: None,
                priority: r.priority,
                deadline,
                redelivered: false,
                epoch: 0,
                payload: Waiting {
                    at: self.now,
                    service: r.service,
                    scored,
                },
            },
        );
        self.run_worker();
        let now = self.now;
        let due = |last: Option<Micros>, interval: Micros| last.is_none_or(|t| now - t >= interval);
        let activation = events.activation.is_some_and(|interval| {
            self.ready_count + self.booting_count == 0 && due(self.last_activation, interval)
        });
        if activation {
            self.last_activation = Some(now);
        }
        let pressure = events.pressure.is_some_and(|p| {
            capacity_slots > 0
                && self.in_system() as f64 > p.threshold * capacity_slots as f64
                && due(self.last_pressure, p.interval)
        });
        if pressure {
            self.last_pressure = Some(now);
        }
        activation || pressure
    }

    // ---- control ---------------------------------------------------------------------

    fn observe(&mut self, delay: Micros) -> (u64, u64, f64, Micros) {
        let metric_t = self.now - delay;
        let (waiting, in_flight, integral) = if delay == 0 {
            (self.waiting(), self.in_flight, self.integral)
        } else {
            self.delayed(metric_t)
        };
        // Held by the worker while nothing is ready; otherwise still in the broker queue.
        if self.ready_count == 0 {
            self.obs.held = waiting;
            self.obs.queue_depth = 0;
        } else {
            self.obs.held = 0;
            self.obs.queue_depth = waiting;
        }
        self.obs.in_flight = in_flight;
        for (pos, &idx) in self.active.iter().enumerate() {
            self.obs.instances[pos].in_flight = self.instances[idx].in_flight;
        }
        self.obs.last_arrival_at = self
            .last_arrival
            .map(|t| self.p.epoch + TimeDelta::microseconds(t));
        self.obs.mean_service_time = (!self.service_ring.is_empty())
            .then(|| Duration::from_micros(self.mean_service() as u64));
        if self.track_latency && !self.latency_ring.is_empty() {
            let mut v: Vec<Micros> = self.latency_ring.iter().copied().collect();
            v.sort_unstable();
            let rank = ((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1;
            self.obs.latency_p95_ms = Some(v[rank] as f64 / 1000.0);
        }
        (waiting, in_flight, integral, metric_t)
    }

    /// Every instance's time on the bill, running ones up to `until`.
    fn bill(&self) -> Vec<Billed> {
        self.instances
            .iter()
            .map(|i| Billed {
                launched: self.at(i.launched),
                stopped: i.stopped_at.map(|t| self.at(t)),
                price: self.spec.pools[i.pool].price_per_hour_usd,
            })
            .collect()
    }

    fn control(&mut self, policy: &mut dyn Autoscaler, delay: Micros) {
        let (_, _, integral, metric_t) = self.observe(delay);
        self.observe_interruptions();
        if !self.p.budgets.is_empty() {
            let (bill, now) = (self.bill(), self.at(self.now));
            self.obs.cost.budgets = self
                .p
                .budgets
                .iter()
                .map(|b| spend::observe(b, &bill, now))
                .collect();
        }
        self.last_busy.clear();
        for &idx in &self.active {
            let inst = &self.instances[idx];
            let busy = inst.in_flight > 0 || inst.state == State::Booting;
            self.last_busy
                .push(if busy { self.now } else { inst.idle_from });
        }
        let signals = Signals {
            t: self.now,
            metric_t,
            busy_integral: integral,
            peak_in_system: self.peak_in_system.max(self.in_system()),
            in_system: self.in_system(),
            idle_since: self.idle_since,
            idle_times: &self.idle_times,
            last_busy: &self.last_busy,
        };
        let now = self.at(self.now);
        let decision = policy.decide(now, &self.obs, &signals);
        // The policy has folded the complete bins; only the one still filling is read
        // again, as the scaler reads from where the history stopped.
        let filling = now.timestamp() - now.timestamp().rem_euclid(ARRIVAL_BIN_SECS);
        self.obs.arrival_bins = self.obs.arrival_bins.split_off(&filling);
        self.decisions += 1;
        self.peak_in_system = self.in_system();
        self.idle_times.clear();
        self.apply(&decision);
    }

    fn apply(&mut self, d: &Decision) {
        for id in &d.terminate {
            if let Some(idx) = parse_id(id) {
                self.stop(idx);
            }
        }
        for id in &d.drain {
            if let Some(idx) = parse_id(id) {
                self.drain(idx);
            }
        }
        for (pool, pd) in d.pools.iter().enumerate().take(self.spec.pools.len()) {
            for _ in 0..pd.launch {
                self.launch(pool);
            }
        }
        if self.cap != d.cap {
            self.cap = d.cap.clone();
            self.registry_changed = true;
        }
    }

    fn run(
        &mut self,
        requests: impl Iterator<Item = Request>,
        policy: &mut dyn Autoscaler,
        progress: &mut dyn FnMut(f64),
    ) {
        let mut requests = requests.peekable();
        let tick = policy.tick().max(1);
        self.obs.cost.decision_interval = Duration::from_micros(tick as u64);
        let worker_events = policy.worker_events();
        let delay = self.delay;
        let skip = if self.p.skip_idle_ticks {
            policy.idle_skip()
        } else {
            None
        };
        // A decision at time 0 (after the arrivals of that instant), then the ticks
        // from the phase on.
        let mut next_tick: Micros = 0;
        let mut pending_wake: Option<Micros> = None;
        let mut steps: u64 = 0;
        self.watch();
        let horizon = self.p.horizon.max(1);
        loop {
            steps += 1;
            if steps & 0xFFFF == 0 {
                progress((self.now as f64 / horizon as f64).min(1.0));
            }
            let t_arrival = requests.peek().map_or(Micros::MAX, |r| r.at);
            let t_event = self
                .events
                .peek()
                .map_or(Micros::MAX, |Reverse((t, _, _, _))| *t);
            let t_expiry = self.worker.next_wakeup().map_or(Micros::MAX, |at| {
                (at - self.p.epoch)
                    .num_microseconds()
                    .unwrap_or(Micros::MAX)
            });
            let t_control = next_tick.min(pending_wake.unwrap_or(Micros::MAX));
            let idle = t_arrival == Micros::MAX && self.waiting() == 0 && self.in_flight == 0;
            let t_next = t_arrival.min(t_event).min(t_expiry).min(t_control);
            if t_next == Micros::MAX || (idle && t_next >= self.p.horizon) {
                break;
            }
            // Skip ticks while the deployment is empty, replaying only the last window.
            if let Some(skip) = skip
                && next_tick > 0
                && t_control == next_tick
                && t_next == next_tick
                && pending_wake.is_none()
                && self.active.is_empty()
                && self.waiting() == 0
                && self.in_flight == 0
                && self.idle_since.is_some()
            {
                let next_real = t_arrival.min(t_event).min(self.p.horizon);
                let resume_from = next_real - skip.replay;
                if next_tick < resume_from {
                    let jump = (resume_from - next_tick) / tick;
                    if jump > 0 {
                        // Skipped ticks are decisions whose outcome is known: nothing.
                        next_tick += jump * tick;
                        self.decisions += jump as u64;
                        continue;
                    }
                }
            }
            if t_event == t_next {
                let Reverse((t, kind, idx, seq)) = self.events.pop().expect("peeked");
                self.advance(t);
                match kind {
                    EV_BOOT => self.boot_done(idx),
                    EV_DONE => self.complete(idx, seq),
                    EV_WATCH => {
                        self.watch_pending = false;
                        self.watch();
                    }
                    EV_REFILLED => self.refilled(idx),
                    EV_WARN => {
                        if self.warn(idx) && pending_wake.is_none() {
                            pending_wake = Some(self.now + self.p.activation_latency);
                        }
                    }
                    _ => self.reclaim(idx),
                }
            } else if t_expiry == t_next {
                self.advance(t_expiry);
                self.run_worker();
            } else if t_arrival == t_next {
                let r = requests.next().expect("peeked");
                self.advance(r.at);
                if self.arrive(r, worker_events) && pending_wake.is_none() {
                    pending_wake = Some(self.now + self.p.activation_latency);
                }
            } else {
                self.advance(t_control);
                if pending_wake == Some(t_control) {
                    pending_wake = None;
                }
                if next_tick == t_control {
                    next_tick = if next_tick == 0 && self.p.tick_phase > 0 {
                        self.p.tick_phase
                    } else {
                        next_tick + tick
                    };
                }
                self.control(policy, delay);
            }
            // The watcher notices what changed in the registry (launches, boots,
            // drains, stops, warnings) or the cap.
            if self.registry_changed {
                self.watch();
            }
        }
        self.advance(self.p.horizon.max(self.now));
        progress(1.0);
    }

    fn report(mut self, name: String) -> PolicyReport {
        // Bill what still runs, to the end of the window.
        let clip = |x: Micros| x.clamp(self.p.warmup, self.p.horizon);
        for &idx in &self.active {
            let inst = &self.instances[idx];
            self.billed[inst.pool] += i128::from(clip(self.p.horizon) - clip(inst.launched));
        }
        // Refills still booting at the end.
        while let Some(Reverse((_, kind, i, _))) = self.events.pop() {
            if kind == EV_REFILLED {
                let (pool, launched) = self.refills[i];
                self.billed[pool] += i128::from(clip(self.p.horizon) - clip(launched));
            }
        }
        let served = self.waits.count();
        let (p, max) = std::mem::take(&mut self.waits).summarize(&[0.5, 0.9, 0.99]);
        let pools: Vec<PoolUsage> = self
            .spec
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let seconds = self.billed[i] as f64 / MICROS_PER_SEC as f64;
                let warm_hours = self.warm_micros[i] as f64 / (3600.0 * MICROS_PER_SEC as f64);
                let warm_cost = warm_hours * pool.warm_price_per_hour_usd.unwrap_or(0.0);
                PoolUsage {
                    pool: pool.name.clone(),
                    instance_seconds: seconds,
                    cost_usd: seconds / 3600.0 * pool.price_per_hour_usd + warm_cost,
                    launches: self.launches[i],
                    warm_starts: self.warm_starts[i],
                    warm_hours,
                    interruptions: self.interruptions[i],
                }
            })
            .collect();
        let instance_seconds: f64 = pools.iter().map(|p| p.instance_seconds).sum();
        let bill = self.bill();
        let (start, end) = (self.at(0), self.at(self.p.horizon.max(self.now)));
        let budgets = self
            .p
            .budgets
            .iter()
            .map(|b| spend::peak(b, &bill, start, end))
            .collect();
        let attained = self.within_slo.saturating_sub(self.failed);
        PolicyReport {
            policy: name,
            requests: self.requests,
            served: served - self.failed.min(served),
            shed: self.shed,
            expired: self.expired,
            failed: self.failed,
            interrupted_in_flight: self.interrupted_in_flight,
            waited_longer: self.waited_longer,
            budgets,
            slo_attainment: super::metrics::share(attained, self.requests),
            wait_p50_s: p[0],
            wait_p90_s: p[1],
            wait_p99_s: p[2],
            wait_max_s: max,
            cold_start_delayed: self.cold,
            launches: self.launches.iter().sum(),
            instance_seconds,
            gpu_hours: instance_seconds / 3600.0,
            cost_usd: pools.iter().map(|p| p.cost_usd).sum(),
            pools,
            time_at_zero_s: self.zero_time as f64 / MICROS_PER_SEC as f64,
            peak_instances: self.peak_instances,
            decisions: self.decisions,
            ratio_to_slo_bound: None,
            ratio_to_zero_wait: None,
            series: self.series,
        }
    }
}

/// Instance ids are `i-<index>`.
fn parse_id(id: &str) -> Option<usize> {
    id.strip_prefix("i-")?.parse().ok()
}
