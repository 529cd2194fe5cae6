//! One deployment's actor: it owns the held requests and the worker's view of the
//! instances, and decides what to dispatch, shed, expire and signal. Everything slow
//! (HTTP, Redis, publishing) runs in tasks it spawns, which report back through its
//! inbox, so the actor itself never waits on the network.
//!
//! ```text
//! consumer ──Arrival──▶ actor ──spawn──▶ attempt: lease (Redis) → POST → release
//! watcher ──Snapshot──▶   │                 │ Busy / Retry / Released
//!                         │◀────────────────┘
//!                         └──spawn──▶ finish: reply (confirmed) → ack → done marker
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::Uri;
use lapin::Acker;
use scale0_core::admission::{self, Booting, Capacity, Estimator, ShedReason};
use scale0_core::backoff::Backoff;
use scale0_core::config::Deployment;
use scale0_core::contract::{
    ControlEvent, ControlEventKind, InstanceRecord, InstanceState, ReplyStatus,
};
use scale0_core::policy::Cap;
use scale0_core::rng::Rng;
use scale0_state::idempotency::{Checked, Ending, Leased, RequestRef, Standing};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::Shared;
use crate::commit::{Committed, Committer, Unit};
use crate::held::{HeldQueue, Key};
use crate::instance_client::{Answer, CallError, endpoint_uri};
use crate::metrics::DeploymentMetrics;
use crate::reply::{self, Reply};
use crate::request::{Envelope, Invalid, InvalidKind, Request};

/// A delivery of a request on one connection epoch, with where its own reply goes.
#[derive(Debug)]
pub struct Handle {
    pub epoch: u64,
    pub acker: Acker,
    pub envelope: Envelope,
}

/// The deliveries answering one request: the first, plus copies of the same
/// `message_id` that arrived while it was held or served (redeliveries, or other
/// producers' requests with that id). Each copy gets the one run's reply at its own
/// address. `closed` once the replies are confirmed: a later copy starts a job of its
/// own, which finds the kept reply in Redis.
#[derive(Debug, Default)]
pub struct Deliveries {
    handles: Vec<Handle>,
    closed: bool,
}

type SharedDeliveries = Arc<Mutex<Deliveries>>;

fn lock(d: &SharedDeliveries) -> std::sync::MutexGuard<'_, Deliveries> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request on its way through the worker.
#[derive(Debug)]
pub struct Job {
    seq: u64,
    req: Request,
    deliveries: SharedDeliveries,
    arrived: Instant,
    deadline: Instant,
    cold_start: bool,
    attempts: u32,
    /// Instances that failed this request; others are preferred for a retry.
    avoid: Vec<String>,
    /// The last answer of an instance worth passing on if the attempts run out
    /// (a 5xx or 429 and its body).
    last_answer: Option<Reply>,
    queue_ms: Option<u64>,
    /// Reply addresses (`ReplyTo::field`) Redis said were answered already.
    answered: HashSet<String>,
}

impl Job {
    fn key(&self) -> Key {
        Key::new(self.req.priority, self.seq)
    }

    /// The distinct reply addresses of every delivery, and the deliveries with them.
    fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &lock(&self.deliveries).handles {
            let field = h.envelope.reply.field();
            if !out.contains(&field) {
                out.push(field);
            }
        }
        out
    }

    /// What Redis knows this job by: its `message_id`, its claim (unique per job) and
    /// its addresses.
    fn request_ref<'a>(
        &'a self,
        claim: &'a str,
        addresses: &'a [String],
    ) -> Option<RequestRef<'a>> {
        Some(RequestRef {
            message_id: self.req.message_id.as_deref()?,
            claim,
            addresses,
        })
    }

    /// The job's claim on its request in Redis: unique per worker and job.
    fn claim(&self, worker_id: &str) -> String {
        format!("{worker_id}:{}", self.seq)
    }

    fn note_answered(&mut self, addresses: &[String], answered: &[bool]) {
        for (a, yes) in addresses.iter().zip(answered) {
            if *yes {
                self.answered.insert(a.clone());
            }
        }
    }
}

/// What a dispatch attempt taught the actor about an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Connection error, timeout or 5xx: counts toward `unhealthy_after_failures`.
    Failure,
    /// Neither (a 429, or a 4xx that is the request's own fault).
    Neutral,
}

/// The actor's inbox.
#[derive(Debug)]
pub enum Msg {
    Arrival(Box<Request>, Box<Handle>),
    Snapshot(Box<Snapshot>),
    /// No lease could be taken on `instance` (full across workers, or Redis failed).
    Busy {
        job: Box<Job>,
        instance: String,
        redis_error: bool,
    },
    /// An HTTP attempt ended and its lease is released.
    Released {
        instance: String,
        outcome: Outcome,
    },
    /// Try the job again elsewhere.
    Retry(Box<Job>),
    /// Another job (of this or another worker) runs this request: look again in a
    /// moment, for its reply or for its claim to lapse.
    Park(Box<Job>),
    /// A job's reply is confirmed and acked (or given up).
    Finished {
        seq: u64,
        message_id: Option<String>,
        sample: Option<Measured>,
    },
    /// The connection of this epoch is gone; its deliveries are requeued by the broker.
    ConnectionLost {
        epoch: u64,
    },
    /// Shutdown: requeue what is held, take nothing new, report when empty.
    Drain(oneshot::Sender<()>),
    /// The drain timeout passed: stop the remaining work (the closing connection
    /// requeues its deliveries).
    Abort,
}

/// What the watcher read from the registry, with probe results applied.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
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
struct Inst {
    record: InstanceRecord,
    /// The endpoint joined with the deployment's inference path, parsed once per
    /// endpoint (not per request); `None` without an endpoint or if it does not parse.
    url: Option<Uri>,
    slots: u32,
    /// Leases this worker holds (or is acquiring) on it.
    local: u32,
    /// Leases other workers held at the last snapshot.
    remote: u32,
    /// No dispatch before this (a lease was refused).
    busy_until: Option<Instant>,
    /// Failures this worker saw since the last snapshot.
    failures: u32,
}

impl Inst {
    /// Ready (or a warned Spot instance still serving), healthy, with a free slot.
    fn dispatchable(&self, threshold: u32, now: Instant, wall: DateTime<Utc>) -> bool {
        self.record.takes_requests(wall)
            && self.url.is_some()
            && self.record.failures.max(self.failures) < threshold
            && self.local + self.remote < self.slots
            && self.busy_until.is_none_or(|t| t <= now)
    }

    fn serving(&self, threshold: u32) -> bool {
        self.record.state == InstanceState::Ready
            && self.record.failures.max(self.failures) < threshold
    }
}

/// What a request that ran here measured: its samples for the scaler, and the tokens
/// its answer reported.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub service_ms: u64,
    pub latency_ms: u64,
    pub tokens: Option<u64>,
}

/// Per-deployment context shared by the actor and its tasks.
#[derive(Debug)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub spec: Deployment,
    pub metrics: Arc<DeploymentMetrics>,
    pub inbox: mpsc::UnboundedSender<Msg>,
    /// The committer of the consumer channel of the current connection, if connected:
    /// every reply to this deployment's requests and every ack and nack of its
    /// deliveries goes through it.
    pub committer: watch::Sender<Option<Committer>>,
    /// Arrivals not yet written to Redis (the reporter swaps it out).
    pub unflushed_arrivals: std::sync::atomic::AtomicU64,
    /// `(service ms, latency ms)` samples not yet written to Redis.
    pub unflushed_samples: Mutex<Vec<(u64, u64)>>,
    /// Tokens the answers reported, not yet written to Redis.
    pub unflushed_tokens: std::sync::atomic::AtomicU64,
    /// What the actor holds now, for the held-count report.
    pub held_now: std::sync::atomic::AtomicU64,
}

impl Ctx {
    fn send(&self, msg: Msg) {
        let _ = self.inbox.send(msg);
    }

    /// The current connection's committer, waiting for a connection.
    pub async fn current_committer(&self) -> Committer {
        let mut rx = self.committer.subscribe();
        loop {
            if let Some(c) = rx.borrow_and_update().clone() {
                return c;
            }
            // The sender lives in this Ctx, so it cannot go away.
            let _ = rx.changed().await;
        }
    }

    fn threshold(&self) -> u32 {
        self.spec.policy.unhealthy_after_failures
    }

    fn slots_of(&self, pool: &str) -> u32 {
        self.spec
            .pools
            .iter()
            .find(|p| p.name == pool)
            .map_or(1, |p| p.slots)
    }

    /// Where requests to `record` go: its endpoint joined with the inference path.
    fn inference_url(&self, record: &InstanceRecord) -> Option<Uri> {
        let endpoint = record.endpoint.as_deref()?;
        endpoint_uri(endpoint, &self.spec.inference_path)
            .inspect_err(|e| {
                tracing::warn!(deployment = %self.spec.name, instance = %record.id, error = %e, "not dispatching to this instance");
            })
            .ok()
    }

    /// Publish a control event (confirmed in the background).
    pub fn control(self: &Arc<Self>, kind: ControlEventKind) {
        let ctx = self.clone();
        tokio::spawn(async move {
            let event = ControlEvent {
                id: format!(
                    "{}-{}",
                    ctx.shared.settings.worker_id,
                    ctx.shared.next_event_id()
                ),
                deployment: ctx.spec.name.clone(),
                at: Utc::now(),
                kind,
            };
            let name = event.kind_name();
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let props = lapin::BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_message_id(event.id.as_str().into())
                // An event describes a moment; the scaler's periodic tick covers what
                // an expired one would have said.
                .with_expiration("600000".into());
            let routing = scale0_core::contract::control_routing_key(&ctx.spec.name, name);
            let give_up = Some(Instant::now() + Duration::from_secs(30));
            match ctx
                .shared
                .broker
                .publish(
                    scale0_core::contract::CONTROL_EXCHANGE,
                    &routing,
                    false,
                    &body,
                    props,
                    give_up,
                )
                .await
            {
                Ok(_) => {
                    ctx.metrics.control_events.inc(name);
                    tracing::info!(deployment = %ctx.spec.name, event = name, id = %event.id, "control event published");
                }
                Err(e) => {
                    tracing::warn!(deployment = %ctx.spec.name, event = name, error = %e, "control event not published")
                }
            }
        });
    }
}

/// The actor's state.
pub struct Actor {
    ctx: Arc<Ctx>,
    inbox: mpsc::UnboundedReceiver<Msg>,
    held: HeldQueue<Job>,
    seq: u64,
    instances: BTreeMap<String, Inst>,
    snapshot_seen: bool,
    cap: Option<Cap>,
    service_time: Duration,
    held_all_workers: u64,
    /// Jobs owned by tasks (dispatching, replying), by sequence number.
    working: HashMap<u64, (SharedDeliveries, Option<AbortHandle>)>,
    /// Deliveries of every request held or worked on, by `message_id`.
    active: HashMap<String, SharedDeliveries>,
    /// Jobs waiting for another job's run of their request, until they look again.
    parked: Vec<(Instant, Job)>,
    next_activation: Instant,
    draining: Option<oneshot::Sender<()>>,
    drain_started: bool,
    /// Power-of-two choices; seeded from the process and the clock at start.
    rng: Rng,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("deployment", &self.ctx.spec.name)
            .field("held", &self.held.len())
            .finish()
    }
}

impl Actor {
    pub fn new(ctx: Arc<Ctx>, inbox: mpsc::UnboundedReceiver<Msg>) -> Self {
        let service_time = ctx.spec.expected_service_time.0;
        let seed = (std::process::id() as u64) << 32
            ^ Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64;
        Actor {
            ctx,
            inbox,
            held: HeldQueue::default(),
            seq: 0,
            instances: BTreeMap::new(),
            snapshot_seen: false,
            cap: None,
            service_time,
            held_all_workers: 0,
            working: HashMap::new(),
            active: HashMap::new(),
            parked: Vec::new(),
            next_activation: Instant::now(),
            draining: None,
            drain_started: false,
            rng: Rng::new(seed),
        }
    }

    pub async fn run(mut self) {
        loop {
            let wake = self.next_wakeup();
            tokio::select! {
                msg = self.inbox.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break,
                },
                _ = sleep_until_opt(wake) => {}
            }
            // Whatever else arrived meanwhile, before one dispatch pass for all of it
            // (under load, releases and arrivals come in bursts).
            while let Ok(msg) = self.inbox.try_recv() {
                self.handle(msg);
            }
            self.on_timers();
            self.try_dispatch();
            self.publish_gauges();
            if self.drain_started
                && self.held.is_empty()
                && self.parked.is_empty()
                && self.working.is_empty()
                && let Some(done) = self.draining.take()
            {
                let _ = done.send(());
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let parked = self.parked.iter().map(|(at, _)| *at).min();
        let deadline = match (self.held.next_deadline(), parked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let busy = if self.held.is_empty() {
            None
        } else {
            self.instances.values().filter_map(|i| i.busy_until).min()
        };
        match (deadline, busy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn publish_gauges(&self) {
        let m = &self.ctx.metrics;
        let held = self.held.len() + self.parked.len();
        m.held.set(held as i64);
        m.in_flight.set(self.working.len() as i64);
        self.ctx.held_now.store(held as u64, Ordering::Relaxed);
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Arrival(req, handle) => self.arrival(*req, *handle),
            Msg::Snapshot(s) => self.snapshot(*s),
            Msg::Busy {
                job,
                instance,
                redis_error,
            } => {
                self.working.remove(&job.seq);
                let now = Instant::now();
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.local = i.local.saturating_sub(1);
                    // Full for other workers: treat it as full until the next snapshot
                    // says otherwise, and do not ask again for a moment.
                    i.remote = i.slots.saturating_sub(i.local);
                    let pause = if redis_error { 500 } else { 50 };
                    i.busy_until = Some(now + Duration::from_millis(pause));
                }
                self.hold(*job);
            }
            Msg::Released { instance, outcome } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.local = i.local.saturating_sub(1);
                    match outcome {
                        Outcome::Failure => i.failures += 1,
                        Outcome::Ok if i.failures > 0 || i.record.failures > 0 => {
                            i.failures = 0;
                            i.record.failures = 0;
                            let ctx = self.ctx.clone();
                            tokio::spawn(async move {
                                if ctx
                                    .shared
                                    .store
                                    .clear_failures(&ctx.spec.name, &instance)
                                    .await
                                    .is_err()
                                {
                                    ctx.shared.metrics.redis_errors.inc();
                                }
                            });
                        }
                        _ => {}
                    }
                }
            }
            Msg::Retry(job) => {
                self.working.remove(&job.seq);
                self.hold(*job);
            }
            Msg::Park(job) => {
                self.working.remove(&job.seq);
                if self.drain_started {
                    self.requeue(*job);
                } else {
                    let at = Instant::now() + self.ctx.shared.settings.refresh_interval;
                    self.parked.push((at, *job));
                }
            }
            Msg::Finished {
                seq,
                message_id,
                sample,
            } => {
                if let Some((deliveries, _)) = self.working.remove(&seq)
                    && let Some(id) = message_id
                    && self
                        .active
                        .get(&id)
                        .is_some_and(|a| Arc::ptr_eq(a, &deliveries))
                {
                    self.active.remove(&id);
                }
                if let Some(m) = sample {
                    if let Some(tokens) = m.tokens {
                        self.ctx
                            .unflushed_tokens
                            .fetch_add(tokens, Ordering::Relaxed);
                        self.ctx.metrics.tokens.inc_by(tokens);
                    }
                    let mut samples = self
                        .ctx
                        .unflushed_samples
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if samples.len() < 10_000 {
                        samples.push((m.service_ms, m.latency_ms));
                    }
                }
            }
            Msg::ConnectionLost { epoch } => {
                let of_epoch = |job: &Job| {
                    lock(&job.deliveries)
                        .handles
                        .iter()
                        .all(|h| h.epoch <= epoch)
                };
                let mut dropped = self.held.drain_where(of_epoch);
                let (gone, kept) = std::mem::take(&mut self.parked)
                    .into_iter()
                    .partition(|(_, job)| of_epoch(job));
                self.parked = kept;
                dropped.extend(gone.into_iter().map(|(_, job)| (job.key(), job)));
                for (_, job) in &dropped {
                    if let Some(id) = &job.req.message_id {
                        self.active.remove(id);
                    }
                }
                if !dropped.is_empty() {
                    tracing::info!(
                        deployment = %self.ctx.spec.name,
                        requeued = dropped.len(),
                        "connection lost: held requests go back to the queue"
                    );
                }
            }
            Msg::Drain(done) => {
                self.drain_started = true;
                self.draining = Some(done);
                let mut held: Vec<Job> = std::iter::from_fn(|| self.held.pop_next())
                    .map(|(_, job)| job)
                    .collect();
                held.extend(std::mem::take(&mut self.parked).into_iter().map(|(_, j)| j));
                let n = held.len();
                for job in held {
                    self.requeue(job);
                }
                tracing::info!(deployment = %self.ctx.spec.name, requeued = n, in_flight = self.working.len(), "draining");
            }
            Msg::Abort => {
                let n = self.working.len();
                for (_, (_, abort)) in self.working.drain() {
                    if let Some(a) = abort {
                        a.abort();
                    }
                }
                if n > 0 {
                    tracing::warn!(deployment = %self.ctx.spec.name, abandoned = n, "drain timeout: in-flight requests go back to the queue");
                }
                if let Some(done) = self.draining.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Nack a job's live deliveries with requeue.
    fn requeue(&mut self, job: Job) {
        if let Some(id) = &job.req.message_id {
            self.active.remove(id);
        }
        let handles = std::mem::take(&mut lock(&job.deliveries).handles);
        // Deliveries of a lost connection are requeued by the broker already.
        let Some(committer) = self.ctx.committer.borrow().clone() else {
            return;
        };
        let requeue = handles
            .into_iter()
            .filter(|h| h.epoch == committer.epoch && h.acker.usable())
            .map(|h| h.acker)
            .collect();
        tokio::spawn(async move {
            let unit = Unit {
                requeue,
                ..Unit::default()
            };
            let _ = committer.commit(unit).await;
        });
    }

    fn arrival(&mut self, req: Request, handle: Handle) {
        if self.drain_started {
            let deliveries = Arc::new(Mutex::new(Deliveries {
                handles: vec![handle],
                closed: false,
            }));
            self.seq += 1;
            let now = Instant::now();
            self.requeue(Job {
                seq: self.seq,
                req,
                deliveries,
                arrived: now,
                deadline: now,
                cold_start: false,
                attempts: 0,
                avoid: Vec::new(),
                last_answer: None,
                queue_ms: None,
                answered: HashSet::new(),
            });
            return;
        }
        // A copy of a request this worker is already holding or serving (a
        // redelivery after a lost connection, or another producer's request with the
        // same message_id): one run answers every copy, each at its own address.
        if let Some(id) = &req.message_id
            && let Some(existing) = self.active.get(id)
        {
            let mut d = lock(existing);
            if !d.closed {
                d.handles.push(handle);
                return;
            }
        }
        if !req.redelivered {
            self.ctx.unflushed_arrivals.fetch_add(1, Ordering::Relaxed);
        }

        let now = Instant::now();
        let now_ms = Utc::now().timestamp_millis();
        let remaining = Duration::from_millis((req.deadline_ms - now_ms).max(0) as u64);
        let deadline = now + remaining;
        let no_capacity_here = !self
            .instances
            .values()
            .any(|i| i.record.state.is_capacity());
        let cold_start = !self
            .instances
            .values()
            .any(|i| i.serving(self.ctx.threshold()));
        self.seq += 1;
        let deliveries = Arc::new(Mutex::new(Deliveries {
            handles: vec![handle],
            closed: false,
        }));
        if let Some(id) = &req.message_id {
            self.active.insert(id.clone(), deliveries.clone());
        }
        let job = Job {
            seq: self.seq,
            req,
            deliveries,
            arrived: now,
            deadline,
            cold_start,
            attempts: 0,
            avoid: Vec::new(),
            last_answer: None,
            queue_ms: None,
            answered: HashSet::new(),
        };

        if remaining.is_zero() {
            self.expire(job);
            return;
        }

        // Activation: nothing ready or booting, so the scaler must hear of it now.
        if self.snapshot_seen && no_capacity_here {
            self.maybe_activate(now);
        }

        // Would it wait longer than its deadline? (Only once the capacity is known.)
        if self.snapshot_seen && self.free_slot().is_none() {
            let ahead = self.working.len() as u64 + self.held.ahead_of_new(job.req.priority) as u64;
            let estimator = self.estimator();
            if let Some(reason) = estimator.shed(ahead, remaining, self.cap_reason()) {
                let retry =
                    estimator.retry_after(self.held.len() as u64 + self.working.len() as u64);
                self.shed(job, reason, retry);
                return;
            }
        }

        let key = job.key();
        let deadline = job.deadline;
        self.held.insert(key, deadline, job);
        self.enforce_limit();
    }

    /// Put a job back (after a refused lease or for a retry), keeping its place.
    fn hold(&mut self, job: Job) {
        if self.drain_started && job.attempts == 0 {
            self.requeue(job);
            return;
        }
        if job.deadline <= Instant::now() {
            self.expire(job);
            return;
        }
        let (key, deadline) = (job.key(), job.deadline);
        self.held.insert(key, deadline, job);
    }

    fn enforce_limit(&mut self) {
        let limit = self.ctx.spec.max_held_requests;
        let over = admission::over_limit(self.held.len(), limit);
        if over == 0 {
            return;
        }
        let retry = self
            .estimator()
            .retry_after(self.held.len() as u64 + self.working.len() as u64);
        for _ in 0..over {
            if let Some((_, job)) = self.held.pop_lowest() {
                self.shed(job, ShedReason::HeldLimit { limit }, retry);
            }
        }
    }

    fn cap_reason(&self) -> Option<&str> {
        self.cap.as_ref().map(|c| c.reason.as_str())
    }

    fn capacity(&self) -> Capacity {
        let threshold = self.ctx.threshold();
        let now = Utc::now();
        let mut ready_slots = 0;
        let mut booting = Vec::new();
        for i in self.instances.values() {
            match i.record.state {
                InstanceState::Ready if i.serving(threshold) => ready_slots += i.slots,
                InstanceState::Requested | InstanceState::Booting => {
                    let boot = self
                        .ctx
                        .spec
                        .pools
                        .iter()
                        .find(|p| p.name == i.record.pool)
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
        let mine = self.held.len() as f64;
        let share = if self.held_all_workers as f64 > mine && mine > 0.0 {
            mine / self.held_all_workers as f64
        } else {
            1.0
        };
        Capacity {
            ready_slots,
            booting,
            projected: admission::projected_at_zero(
                &self.ctx.spec.pools,
                self.cap.as_ref().map(|c| c.max_instances),
            ),
            share,
            service_time: self.service_time,
            capped_until: self
                .cap
                .as_ref()
                .and_then(|c| c.retry_at)
                .map(|at| (at - now).to_std().unwrap_or_default()),
        }
    }

    fn estimator(&self) -> Estimator {
        Estimator::new(&self.capacity())
    }

    /// Re-check every held request against its deadline, in dispatch order.
    fn shed_by_wait(&mut self) {
        if self.held.is_empty() || !self.snapshot_seen {
            return;
        }
        let estimator = self.estimator();
        let now = Instant::now();
        let base = self.working.len() as u64;
        let mut doomed = Vec::new();
        for (rank, (key, deadline, _)) in self.held.iter().enumerate() {
            let remaining = deadline.saturating_duration_since(now);
            if remaining.is_zero() {
                // Its deadline passed: it is answered `expired` (on_timers), not shed.
                continue;
            }
            if let Some(reason) = estimator.shed(base + rank as u64, remaining, self.cap_reason()) {
                doomed.push((key, reason));
            }
        }
        if doomed.is_empty() {
            return;
        }
        let retry = estimator.retry_after(self.held.len() as u64 + base);
        for (key, reason) in doomed {
            if let Some(job) = self.held.remove(key) {
                self.shed(job, reason, retry);
            }
        }
    }

    fn maybe_activate(&mut self, now: Instant) {
        if now < self.next_activation {
            return;
        }
        let interval = self.ctx.shared.settings.activation_interval;
        self.next_activation = now + interval;
        let ctx = self.ctx.clone();
        let held = self.held.len() as u64 + 1;
        tokio::spawn(async move {
            let allowed = match ctx
                .shared
                .store
                .try_activation(&ctx.spec.name, interval)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    // Better one activation too many than a fleet left at zero.
                    ctx.shared.metrics.redis_errors.inc();
                    tracing::warn!(deployment = %ctx.spec.name, error = %e, "activation rate limit unavailable; sending anyway");
                    true
                }
            };
            if allowed {
                ctx.control(ControlEventKind::Activation { held });
            }
        });
    }

    fn snapshot(&mut self, s: Snapshot) {
        self.snapshot_seen = true;
        self.cap = s.cap;
        if let Some(t) = s.mean_service_time.filter(|t| !t.is_zero()) {
            self.service_time = t;
        }
        if let Some(h) = s.held_all_workers {
            self.held_all_workers = h;
        }
        let mut next = BTreeMap::new();
        for record in s.instances {
            if record.state == InstanceState::Terminated {
                continue;
            }
            let slots = self.ctx.slots_of(&record.pool);
            let total = s.in_flight.get(&record.id).copied().unwrap_or(0);
            let inst = match self.instances.remove(&record.id) {
                Some(mut old) => {
                    if old.record.endpoint != record.endpoint {
                        old.url = self.ctx.inference_url(&record);
                    }
                    old.remote = total.saturating_sub(old.local);
                    old.failures = 0;
                    old.busy_until = None;
                    old.record = record;
                    old.slots = slots;
                    old
                }
                None => Inst {
                    url: self.ctx.inference_url(&record),
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
        // Instances gone from the registry keep their local leases until released.
        for (id, old) in std::mem::take(&mut self.instances) {
            if old.local > 0 && !next.contains_key(&id) {
                let mut gone = old;
                gone.record.state = InstanceState::Terminated;
                next.insert(id, gone);
            }
        }
        self.instances = next;

        let now = Instant::now();
        let nothing = !self
            .instances
            .values()
            .any(|i| i.record.state.is_capacity());
        if nothing && !self.held.is_empty() {
            self.maybe_activate(now);
        }
        self.shed_by_wait();
        self.check_pressure();
    }

    fn check_pressure(&mut self) {
        let threshold = self.ctx.spec.policy.panic_threshold;
        let capacity: u32 = self
            .instances
            .values()
            .filter(|i| i.record.state.is_capacity())
            .map(|i| i.slots)
            .sum();
        if capacity == 0 {
            return;
        }
        let in_flight: u32 = self.instances.values().map(|i| i.local + i.remote).sum();
        let demand = self.held_all_workers.max(self.held.len() as u64) + u64::from(in_flight);
        if (demand as f64) < threshold * f64::from(capacity) {
            return;
        }
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let interval = ctx.shared.settings.pressure_interval;
            if let Ok(true) = ctx
                .shared
                .store
                .try_signal(&ctx.spec.name, "pressure", interval)
                .await
            {
                ctx.control(ControlEventKind::Pressure {
                    demand,
                    capacity: u64::from(capacity),
                });
            }
        });
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let (due, waiting) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.parked = waiting;
        for (_, job) in due {
            self.hold(job);
        }
        for (_, job) in self.held.pop_expired(now) {
            self.expire(job);
        }
    }

    /// A ready instance with a free slot, by power of two choices on outstanding
    /// requests (this worker's and the others' at the last snapshot), preferring
    /// instances the job has not failed on.
    fn pick(&mut self, avoid: &[String]) -> Option<String> {
        let (now, wall) = (Instant::now(), Utc::now());
        let threshold = self.ctx.threshold();
        let mut eligible: Vec<(&String, u32)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.dispatchable(threshold, now, wall))
            .map(|(id, i)| (id, i.local + i.remote))
            .collect();
        if eligible.iter().any(|(id, _)| !avoid.contains(id)) {
            eligible.retain(|(id, _)| !avoid.contains(id));
        }
        let chosen = match eligible.len() {
            0 => return None,
            1 => eligible[0].0.clone(),
            n => {
                let a = self.rng.below(n as u64) as usize;
                let mut b = self.rng.below(n as u64 - 1) as usize;
                if b >= a {
                    b += 1;
                }
                if eligible[b].1 < eligible[a].1 {
                    eligible[b].0.clone()
                } else {
                    eligible[a].0.clone()
                }
            }
        };
        Some(chosen)
    }

    fn free_slot(&self) -> Option<&String> {
        let (now, wall) = (Instant::now(), Utc::now());
        let threshold = self.ctx.threshold();
        self.instances
            .iter()
            .find(|(_, i)| i.dispatchable(threshold, now, wall))
            .map(|(id, _)| id)
    }

    fn try_dispatch(&mut self) {
        while let Some((_, job)) = self.held.peek_next() {
            let avoid = job.avoid.clone();
            let Some(id) = self.pick(&avoid) else {
                return;
            };
            let Some((_, job)) = self.held.pop_next() else {
                return;
            };
            let inst = self.instances.get_mut(&id).expect("picked from instances");
            inst.local += 1;
            let target = Target {
                id,
                url: inst.url.clone().expect("dispatchable instances have a URL"),
                slots: inst.slots,
            };
            let deliveries = job.deliveries.clone();
            let seq = job.seq;
            let handle = tokio::spawn(attempt(self.ctx.clone(), job, target));
            self.working
                .insert(seq, (deliveries, Some(handle.abort_handle())));
        }
    }

    fn expire(&mut self, job: Job) {
        let waited = job.arrived.elapsed();
        let reply = Reply {
            cold_start: job.cold_start,
            ..Reply::not_run(
                ReplyStatus::Expired,
                format!(
                    "deadline passed after {:.1}s held: no instance took it in time",
                    waited.as_secs_f64()
                ),
            )
        };
        self.finish_here(job, reply);
    }

    fn shed(&mut self, job: Job, reason: ShedReason, retry_after: u64) {
        let reply = Reply::shed(reason.to_string(), retry_after, job.cold_start);
        self.finish_here(job, reply);
    }

    /// Answer a job that never ran.
    fn finish_here(&mut self, job: Job, reply: Reply) {
        let seq = job.seq;
        let deliveries = job.deliveries.clone();
        let handle = tokio::spawn(finish(
            self.ctx.clone(),
            job,
            reply,
            Source::NotRun,
            None,
            None,
        ));
        self.working
            .insert(seq, (deliveries, Some(handle.abort_handle())));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where an attempt goes.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    url: Uri,
    slots: u32,
}

/// One dispatch: take a lease, POST, release, then retry elsewhere or answer.
async fn attempt(ctx: Arc<Ctx>, mut job: Job, target: Target) {
    let d = ctx.spec.name.as_str();
    let token = format!(
        "{}:{}:{}",
        ctx.shared.settings.worker_id, job.seq, job.attempts
    );
    let lease_ms = ctx.shared.settings.lease_ttl.as_millis().max(1) as i64;
    let deadline_ms = job.req.deadline_ms;
    let lease_until = move |now_ms: i64| now_ms.saturating_add(lease_ms).min(deadline_ms);
    let claim = job.claim(&ctx.shared.settings.worker_id);
    let addresses = job.addresses();
    let claim_ttl = ctx.shared.settings.lease_ttl;
    let now_ms = Utc::now().timestamp_millis();
    let leased = ctx
        .shared
        .store
        .lease_for(
            d,
            &target.id,
            target.slots,
            &token,
            now_ms,
            lease_until(now_ms),
            job.request_ref(&claim, &addresses).map(|r| (r, claim_ttl)),
        )
        .await;
    match leased {
        Ok(Checked {
            outcome: Leased::Granted,
            answered,
        }) => job.note_answered(&addresses, &answered),
        Ok(Checked {
            outcome: Leased::NotNeeded(standing),
            answered,
        }) => {
            // No slot was taken.
            ctx.send(Msg::Released {
                instance: target.id,
                outcome: Outcome::Neutral,
            });
            job.note_answered(&addresses, &answered);
            settle_elsewhere(ctx, job, standing).await;
            return;
        }
        Ok(Checked {
            outcome: Leased::Full,
            ..
        }) => {
            ctx.metrics.attempts.inc("lease_refused");
            ctx.send(Msg::Busy {
                job: Box::new(job),
                instance: target.id,
                redis_error: false,
            });
            return;
        }
        Err(e) => {
            ctx.shared.metrics.redis_errors.inc();
            tracing::warn!(deployment = d, error = %e, "cannot take a slot lease; holding");
            // The script may have run with only its answer lost: drop the lease once
            // Redis answers again rather than leave the slot taken for lease_ttl.
            tokio::spawn(drop_lease(ctx.clone(), target.id.clone(), token));
            ctx.send(Msg::Busy {
                job: Box::new(job),
                instance: target.id,
                redis_error: true,
            });
            return;
        }
    }

    if job.queue_ms.is_none() {
        let waited = job.arrived.elapsed();
        job.queue_ms = Some(waited.as_millis() as u64);
        ctx.metrics.observe_wait(waited);
    }
    job.attempts += 1;
    let remaining = job.deadline.saturating_duration_since(Instant::now());
    let started = Instant::now();
    let result = if remaining.is_zero() {
        Err(CallError::Timeout)
    } else {
        // Renew the lease while the instance works, so it outlives a short TTL but
        // not this worker.
        let renew = async {
            let claim = job
                .req
                .message_id
                .as_deref()
                .map(|id| (id, claim.as_str(), claim_ttl));
            let every = ctx.shared.settings.lease_ttl / 3;
            loop {
                tokio::time::sleep(every).await;
                let now_ms = Utc::now().timestamp_millis();
                if now_ms >= deadline_ms {
                    std::future::pending::<()>().await;
                }
                match ctx
                    .shared
                    .store
                    .renew_slot(d, &target.id, &token, now_ms, lease_until(now_ms), claim)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(deployment = d, instance = %target.id, "slot lease lapsed during a request");
                    }
                    Err(_) => {
                        ctx.shared.metrics.redis_errors.inc();
                    }
                }
            }
        };
        tokio::select! {
            r = call(&ctx, &job, &target, remaining) => r,
            _ = renew => unreachable!("the renewal loop never ends"),
        }
    };
    let service = started.elapsed();
    let (outcome, label) = match &result {
        Ok(a) if (200..300).contains(&a.status) => (Outcome::Ok, "ok"),
        Ok(a) if a.status >= 500 => (Outcome::Failure, "http_5xx"),
        Ok(a) if a.status == 429 => (Outcome::Neutral, "http_429"),
        Ok(_) => (Outcome::Neutral, "http_4xx"),
        Err(CallError::Timeout) => (Outcome::Failure, "timeout"),
        Err(CallError::Connect(_)) => (Outcome::Failure, "connect_error"),
    };
    ctx.metrics.attempts.inc(label);
    let lease = Lease {
        instance: target.id.clone(),
        token,
        outcome,
    };
    let threshold = ctx.threshold();
    if outcome == Outcome::Failure {
        let reason = match &result {
            Ok(a) => format!("HTTP {}", a.status),
            Err(e) => e.to_string(),
        };
        let ctx2 = ctx.clone();
        let id = target.id.clone();
        tokio::spawn(async move {
            match ctx2.shared.store.record_failure(&ctx2.spec.name, &id).await {
                Ok(Some(r)) if r.failures == threshold => {
                    tracing::warn!(deployment = %ctx2.spec.name, instance = %id, failures = r.failures, %reason, "instance failed repeatedly");
                    ctx2.control(ControlEventKind::InstanceFailed {
                        instance: id,
                        failures: r.failures,
                        reason,
                    });
                }
                Ok(_) => {}
                Err(_) => {
                    ctx2.shared.metrics.redis_errors.inc();
                }
            }
        });
    }

    let retryable = match &result {
        Ok(a) => a.status >= 500 || a.status == 429,
        Err(CallError::Connect(_)) => true,
        Err(CallError::Timeout) => false,
    };
    let time_left = job.deadline > Instant::now();
    if retryable && time_left && job.attempts < ctx.shared.settings.max_attempts {
        job.avoid.push(target.id.clone());
        if let Ok(a) = &result {
            job.last_answer = Some(a.reply(&target.id, &job));
        }
        // Free the slot before the retry looks for one.
        let ctx2 = ctx.clone();
        tokio::spawn(async move { release(&ctx2, Some(lease), None).await });
        ctx.send(Msg::Retry(Box::new(job)));
        return;
    }

    let tokens = result.as_ref().ok().and_then(Answer::tokens);
    let reply = match result {
        Ok(a) => a.reply(&target.id, &job),
        Err(CallError::Timeout) => Reply {
            instance: Some(target.id.clone()),
            queue_ms: job.queue_ms,
            cold_start: job.cold_start,
            ..Reply::not_run(
                ReplyStatus::Failed,
                format!(
                    "deadline passed while instance {} was serving (attempt {})",
                    target.id, job.attempts
                ),
            )
        },
        Err(CallError::Connect(e)) => match job.last_answer.take() {
            Some(answer) => answer,
            None => Reply {
                instance: Some(target.id.clone()),
                queue_ms: job.queue_ms,
                cold_start: job.cold_start,
                ..Reply::not_run(
                    ReplyStatus::Failed,
                    format!("{} attempt(s) failed; last: {e}", job.attempts),
                )
            },
        },
    };
    let sample = Some(Measured {
        service_ms: service.as_millis() as u64,
        latency_ms: job.arrived.elapsed().as_millis() as u64,
        tokens,
    });
    finish(ctx, job, reply, Source::Run, sample, Some(lease)).await;
}

/// A job whose request another job ran, answered, or runs now.
async fn settle_elsewhere(ctx: Arc<Ctx>, job: Job, standing: Standing) {
    match standing {
        Standing::Done { reply } => match Reply::decode(&reply) {
            Some(kept) => finish(ctx, job, kept, Source::Kept, None, None).await,
            None => {
                let reply = Reply::not_run(
                    ReplyStatus::Failed,
                    "the reply another worker kept for this message_id is unreadable",
                );
                finish(ctx, job, reply, Source::Kept, None, None).await
            }
        },
        Standing::Answered => {
            let claim = job.claim(&ctx.shared.settings.worker_id);
            settle(ctx, job, None, Source::Kept, None, None, claim).await
        }
        Standing::ClaimedElsewhere => {
            ctx.metrics.attempts.inc("claimed_elsewhere");
            ctx.send(Msg::Park(Box::new(job)));
        }
        // Open again (its claim lapsed): take it from the top.
        Standing::Open => ctx.send(Msg::Retry(Box::new(job))),
    }
}

/// A slot lease held for a request, and what its attempt taught about the instance.
#[derive(Debug)]
struct Lease {
    instance: String,
    token: String,
    outcome: Outcome,
}

/// Release a lease and/or write a done marker in one round trip, then tell the actor
/// the slot is free (only now, so its next acquire is not refused by our own lease).
async fn release(ctx: &Arc<Ctx>, lease: Option<Lease>, done: Option<Ending<'_>>) {
    if lease.is_none() && done.is_none() {
        return;
    }
    let d = ctx.spec.name.as_str();
    let lease_ref = lease
        .as_ref()
        .map(|l| (l.instance.as_str(), l.token.as_str()));
    if let Err(e) = ctx.shared.store.finish_request(d, lease_ref, done).await {
        // A missing done marker can only cause a duplicate run after a crash; the
        // lease is dropped once Redis answers again (or lapses within lease_ttl).
        ctx.shared.metrics.redis_errors.inc();
        tracing::warn!(deployment = d, error = %e, "cannot release a lease or mark a request done");
        if let Some(l) = &lease {
            tokio::spawn(drop_lease(ctx.clone(), l.instance.clone(), l.token.clone()));
        }
    }
    if let Some(l) = lease {
        ctx.send(Msg::Released {
            instance: l.instance,
            outcome: l.outcome,
        });
    }
}

/// Retry dropping a lease for about as long as it would take to lapse by itself.
async fn drop_lease(ctx: Arc<Ctx>, instance: String, token: String) {
    // Seeded by the lease too, so the drops of one worker do not retry in step.
    let seed = token.bytes().fold(u64::from(std::process::id()), |h, b| {
        h.rotate_left(5) ^ u64::from(b)
    });
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2), seed);
    let give_up = Instant::now() + ctx.shared.settings.lease_ttl;
    while Instant::now() < give_up {
        tokio::time::sleep(backoff.next_delay()).await;
        if ctx
            .shared
            .store
            .release_slot(&ctx.spec.name, &instance, &token)
            .await
            .is_ok()
        {
            return;
        }
    }
}

impl Answer {
    fn reply(&self, instance: &str, job: &Job) -> Reply {
        let status = if (200..300).contains(&self.status) {
            ReplyStatus::Ok
        } else {
            ReplyStatus::Http(self.status)
        };
        Reply {
            status,
            body: self.body.clone(),
            content_type: self.content_type.clone(),
            reason: (status != ReplyStatus::Ok)
                .then(|| format!("instance {instance} answered HTTP {}", self.status)),
            instance: Some(instance.to_string()),
            queue_ms: job.queue_ms,
            cold_start: job.cold_start,
            retry_after: None,
        }
    }
}

async fn call(
    ctx: &Ctx,
    job: &Job,
    target: &Target,
    remaining: Duration,
) -> Result<Answer, CallError> {
    let content_type = job
        .req
        .content_type
        .as_ref()
        .map_or("application/json", |c| c.as_str());
    ctx.shared
        .http
        .post(&target.url, content_type, job.req.body.clone(), remaining)
        .await
        .map_err(|e| match e {
            CallError::Connect(why) => CallError::Connect(format!("{}: {why}", target.id)),
            timeout => timeout,
        })
}

/// Where a job's terminal reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This job's own run (an instance's answer, or `failed` after its attempts): kept
    /// in Redis for later copies of the request.
    Run,
    /// This job never ran (`shed`, `expired`): first ask Redis whether another job
    /// answered the request or runs it now.
    NotRun,
    /// Another job's run, kept in Redis.
    Kept,
}

/// Send a job's terminal reply to the address of each of its deliveries not answered
/// yet, record the reply and the addresses in Redis with the lease's release (one
/// round trip), then ack the deliveries. `reply` is `None` when every address was
/// answered already and nothing was kept to answer a new one with.
async fn finish(
    ctx: Arc<Ctx>,
    mut job: Job,
    reply: Reply,
    mut source: Source,
    sample: Option<Measured>,
    lease: Option<Lease>,
) {
    let d = ctx.spec.name.as_str();
    let claim = job.claim(&ctx.shared.settings.worker_id);
    let mut reply = Some(reply);
    if source == Source::NotRun {
        let addresses = job.addresses();
        if let Some(request) = job.request_ref(&claim, &addresses) {
            match ctx.shared.store.request_standing(d, request).await {
                Ok(Checked { outcome, answered }) => {
                    job.note_answered(&addresses, &answered);
                    match outcome {
                        Standing::Open => {}
                        Standing::Done { reply: kept } => {
                            if let Some(kept) = Reply::decode(&kept) {
                                reply = Some(kept);
                                source = Source::Kept;
                            }
                        }
                        Standing::Answered => reply = None,
                        Standing::ClaimedElsewhere => {
                            release(&ctx, lease, None).await;
                            ctx.send(Msg::Park(Box::new(job)));
                            return;
                        }
                    }
                }
                // Without Redis, answering is the side that loses nothing.
                Err(_) => {
                    ctx.shared.metrics.redis_errors.inc();
                }
            }
        }
    }
    settle(ctx, job, reply, source, sample, lease, claim).await;
}

async fn settle(
    ctx: Arc<Ctx>,
    job: Job,
    reply: Option<Reply>,
    source: Source,
    sample: Option<Measured>,
    lease: Option<Lease>,
    claim: String,
) {
    let d = ctx.spec.name.as_str();
    let message_id = job.req.message_id.as_deref();
    let finished = |ctx: &Ctx, sample| {
        ctx.send(Msg::Finished {
            seq: job.seq,
            message_id: job.req.message_id.clone(),
            sample,
        })
    };
    let live = lock(&job.deliveries)
        .handles
        .iter()
        .any(|h| h.acker.usable());
    if !live && message_id.is_none() {
        // Its connection is gone and the broker redelivers it; without a message_id
        // the copy cannot be recognised, so the copy's reply will be the only one.
        tracing::info!(
            deployment = d,
            "reply withheld: the request was requeued with its connection"
        );
        release(&ctx, lease, None).await;
        finished(&ctx, None);
        return;
    }
    // Later copies start a job of their own (and find the kept reply).
    let handles = {
        let mut dl = lock(&job.deliveries);
        dl.closed = true;
        std::mem::take(&mut dl.handles)
    };
    // One reply per address not answered yet; with nothing to answer a new address
    // with, its delivery is requeued to run again.
    let committer = ctx.current_committer().await;
    let mut unit = Unit::default();
    let mut replied: Vec<(String, usize)> = Vec::new();
    let mut unanswerable = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let field = h.envelope.reply.field();
        if replied.iter().any(|(f, _)| *f == field) || job.answered.contains(&field) {
            continue;
        }
        match &reply {
            Some(reply) => {
                unit.publish
                    .push(reply::outgoing(&h.envelope.reply, message_id, reply));
                replied.push((field, i));
            }
            None => unanswerable.push(i),
        }
    }
    for (i, h) in handles.iter().enumerate() {
        if h.epoch == committer.epoch && h.acker.usable() {
            let to = if unanswerable.contains(&i) {
                &mut unit.requeue
            } else {
                &mut unit.ack
            };
            to.push(h.acker.clone());
        }
    }
    let mut sent: Vec<String> = Vec::new();
    match committer.commit(unit).await {
        Committed::Done { returned } => {
            for (k, code, text) in returned {
                let h = &handles[replied[k].1];
                let to = &h.envelope.reply;
                let status = reply
                    .as_ref()
                    .map_or(String::new(), |r| r.status.to_string());
                // No queue by the reply_to name: the reply cannot be delivered. Keep the
                // request for a person instead of dropping it.
                tracing::warn!(
                    deployment = d,
                    reply_to = %to.queue,
                    correlation_id = to.correlation_id.as_ref().map_or("", |c| c.as_str()),
                    message_id = message_id.unwrap_or_default(),
                    %status,
                    code,
                    %text,
                    "reply not routable: no queue by its reply_to; the request is dead-lettered"
                );
                let why = Invalid {
                    kind: InvalidKind::UnroutableReply,
                    reason: format!(
                        "reply_to `{}` is not routable ({code} {text}); the request ended {status}",
                        to.queue
                    ),
                };
                ctx.metrics.dead_letters.inc(why.kind.label());
                let _ = reply::dead_letter(
                    &ctx.shared.broker,
                    &h.envelope.properties,
                    &job.req.body,
                    d,
                    d,
                    &why,
                )
                .await;
            }
            if let Some(reply) = &reply {
                for _ in &replied {
                    ctx.metrics.replies.inc(&reply.status.to_string());
                }
            }
            sent = replied.into_iter().map(|(f, _)| f).collect();
        }
        Committed::Unknown(why) => {
            // Committed or rolled back: a delivery that comes back was not answered, so
            // its address is not recorded as answered; the kept reply answers it.
            tracing::warn!(deployment = d, error = %why, "reply commit outcome unknown; a redelivered copy gets the kept reply");
        }
    }
    // The record: the kept reply for later copies, and the addresses answered.
    let kept = reply
        .as_ref()
        .filter(|_| source == Source::Run)
        .map(Reply::encode);
    let ending = job.request_ref(&claim, &[]).map(|request| {
        let now_ms = Utc::now().timestamp_millis();
        Ending {
            request,
            reply: kept.as_deref(),
            answered: &sent,
            ttl: Duration::from_millis((job.req.deadline_ms - now_ms).max(0) as u64)
                + ctx.shared.settings.done_ttl_after_deadline,
        }
    });
    release(&ctx, lease, ending).await;
    // Every delivery but the one that ran here is a copy that did not run.
    let ran_here = reply.is_some() && source != Source::Kept;
    let copies = (0..handles.len())
        .filter(|i| (*i > 0 || !ran_here) && !unanswerable.contains(i))
        .count();
    ctx.metrics.duplicates.inc_by(copies as u64);
    finished(&ctx, sample);
}
