//! One deployment's actor: the shell around [`scale0_core::worker::Machine`], which
//! holds the rules (holding, admission, shedding, dispatch, expiry, coalescing,
//! draining). The actor feeds the machine its inbox with `now` and performs the
//! effects it returns; everything slow (HTTP, Redis, publishing) runs in tasks it
//! spawns and tracks, which report back through the inbox, so the actor itself never
//! waits on the network.
//!
//! ```text
//! consumer ──Arrival──▶ actor ⇄ Machine ──Dispatch──▶ attempt: lease (Redis) → POST → release
//! watcher ──Snapshot──▶   │                             │ Busy / Retry / Park / Finished
//!                         │◀────────────────────────────┘
//!                         └──Expire/Shed──▶ finish: reply (confirmed) → ack → done marker
//! ```
//!
//! - `job`: what a job carries through the machine (the request, the deliveries it
//!   answers) and what Redis knows it by.
//! - `attempt`: one dispatch (lease, POST with renewals, release) and what follows it.
//! - `finish`: a job's terminal reply to every delivery, the ack, and the record kept
//!   in Redis for later copies.
//! - `signal`: what the worker tells the control plane (control events: activation,
//!   pressure, a failing instance), rate-limited across workers.

mod attempt;
mod finish;
mod job;
mod signal;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::Uri;
use scale0_core::config::Deployment;
use scale0_core::contract::{InstanceRecord, ReplyStatus};
use scale0_core::rng::Rng;
use scale0_core::worker::{Dispatch, Effect, Machine, Rules};
pub use scale0_core::worker::{Outcome, Snapshot};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Shared;
use crate::commit::{Committer, Unit};
use crate::instance_client::endpoint_uri;
use crate::metrics::DeploymentMetrics;
use crate::reply::Reply;
use crate::request::Request;
use attempt::Target;
use finish::Source;
pub use job::{Deliveries, Handle, Job, Payload};
use job::{SharedDeliveries, lock};

/// Time left before `deadline`, on the wall clock the deadline is in.
fn remaining(deadline: DateTime<Utc>) -> Duration {
    (deadline - Utc::now()).to_std().unwrap_or_default()
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
    /// An HTTP attempt ended and its lease is released; the job goes on (a retry, or
    /// parked).
    Released(Freed),
    /// Try the job again elsewhere.
    Retry(Box<Job>),
    /// Another job (of this or another worker) runs this request: look again in a
    /// moment, for its reply or for its claim to lapse.
    Park(Box<Job>),
    /// A job's reply is confirmed and acked (or given up), and the slot its last
    /// attempt held is released: the one message of a request's end.
    Finished {
        seq: u64,
        freed: Option<Freed>,
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

    /// Where requests to `record` go: its endpoint joined with the inference path.
    fn inference_url(&self, record: &InstanceRecord) -> Option<Uri> {
        let endpoint = record.endpoint.as_deref()?;
        endpoint_uri(endpoint, &self.spec.inference_path)
            .inspect_err(|e| {
                tracing::warn!(deployment = %self.spec.name, instance = %record.id, error = %e, "not dispatching to this instance");
            })
            .ok()
    }
}

/// A slot lease released, and what its attempt taught about the instance.
#[derive(Debug)]
pub struct Freed {
    pub instance: String,
    pub outcome: Outcome,
}

/// Where an instance's requests go, parsed once per endpoint (not per request).
#[derive(Debug)]
struct Route {
    endpoint: String,
    url: Option<Uri>,
    /// Its pool's slots, for the lease.
    slots: u32,
}

/// The actor: the machine, and the work it has handed out.
pub struct Actor {
    ctx: Arc<Ctx>,
    inbox: mpsc::UnboundedReceiver<Msg>,
    machine: Machine<Payload>,
    /// The tasks serving or answering jobs: aborted when a drain times out.
    tasks: JoinSet<()>,
    /// The deliveries of every job held or worked on, by seq: where copies join.
    deliveries: HashMap<u64, SharedDeliveries>,
    routes: HashMap<String, Route>,
    draining: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("deployment", &self.ctx.spec.name)
            .field("held", &self.machine.held())
            .finish()
    }
}

impl Actor {
    pub fn new(ctx: Arc<Ctx>, inbox: mpsc::UnboundedReceiver<Msg>) -> Self {
        // Power-of-two choices need no more than distinct workers drawing differently.
        let seed = (std::process::id() as u64) << 32
            ^ Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64;
        let rules = Rules {
            spec: ctx.spec.clone(),
            parking: ctx.shared.settings.refresh_interval,
            activation_interval: ctx.shared.settings.activation_interval,
            dispatch: Dispatch::LeastOutstanding,
        };
        Actor {
            ctx,
            inbox,
            machine: Machine::new(rules, Rng::new(seed)),
            tasks: JoinSet::new(),
            deliveries: HashMap::new(),
            routes: HashMap::new(),
            draining: None,
        }
    }

    pub async fn run(mut self) {
        loop {
            let wake = self
                .machine
                .next_wakeup()
                .map(|at| Instant::now() + remaining(at));
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
            self.machine.advance(Utc::now());
            self.perform();
            // Every task reports through the inbox before it ends: reap the ended.
            while self.tasks.try_join_next().is_some() {}
            self.publish_gauges();
        }
    }

    fn publish_gauges(&self) {
        let m = &self.ctx.metrics;
        let held = self.machine.held();
        m.held.set(held as i64);
        m.in_flight.set(self.machine.working() as i64);
        self.ctx.held_now.store(held as u64, Ordering::Relaxed);
    }

    fn handle(&mut self, msg: Msg) {
        let now = Utc::now();
        match msg {
            Msg::Arrival(req, handle) => {
                let payload = Payload::new(*req, *handle);
                let deliveries = payload.deliveries.clone();
                let seq = self.machine.arrive(now, payload.arrival());
                // A new job's deliveries, where later copies join (a joined copy's
                // job is there already).
                self.deliveries.entry(seq).or_insert(deliveries);
            }
            Msg::Snapshot(s) => {
                let s = self.routable(*s);
                self.machine.snapshot(now, s);
            }
            Msg::Busy {
                job,
                instance,
                redis_error,
            } => self.machine.lease_refused(now, job, &instance, redis_error),
            Msg::Released(freed) => self.machine.released(&freed.instance, freed.outcome),
            Msg::Retry(job) => self.machine.retry(now, job),
            Msg::Park(job) => self.machine.park(now, job),
            Msg::Finished { seq, freed, sample } => {
                if let Some(freed) = freed {
                    self.machine.released(&freed.instance, freed.outcome);
                }
                self.machine.finished(seq);
                self.deliveries.remove(&seq);
                if let Some(m) = sample {
                    self.record(m);
                }
            }
            Msg::ConnectionLost { epoch } => {
                let dropped = self.machine.connection_lost(epoch);
                for job in &dropped {
                    self.deliveries.remove(&job.seq);
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
                self.draining = Some(done);
                let n = self.machine.drain();
                tracing::info!(deployment = %self.ctx.spec.name, requeued = n, in_flight = self.machine.working(), "draining");
            }
            Msg::Abort => {
                self.tasks.abort_all();
                let n = self.machine.abort();
                self.deliveries.clear();
                if n > 0 {
                    tracing::warn!(deployment = %self.ctx.spec.name, abandoned = n, "drain timeout: in-flight requests go back to the queue");
                }
            }
        }
        self.perform();
    }

    /// A sample of a request that ran here, for the scaler's reporter.
    fn record(&self, m: Measured) {
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

    /// The snapshot with the endpoints this worker cannot route to removed (so the
    /// machine sends nothing there), parsing each endpoint once.
    fn routable(&mut self, mut s: Snapshot) -> Snapshot {
        let mut routes = HashMap::with_capacity(s.instances.len());
        for record in &mut s.instances {
            let Some(endpoint) = record.endpoint.clone() else {
                continue;
            };
            let route = match self.routes.remove(&record.id) {
                Some(r) if r.endpoint == endpoint => r,
                _ => Route {
                    url: self.ctx.inference_url(record),
                    endpoint,
                    slots: self.ctx.spec.slots_of(&record.pool),
                },
            };
            if route.url.is_none() {
                record.endpoint = None;
            }
            routes.insert(record.id.clone(), route);
        }
        // Nothing new goes to an instance gone from the registry: its route goes too.
        self.routes = routes;
        s
    }

    /// Carry out what the machine decided, and what that in turn decides.
    fn perform(&mut self) {
        loop {
            let effects: Vec<Effect<Payload>> = self.machine.effects().collect();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                self.perform_one(effect);
            }
        }
    }

    fn perform_one(&mut self, effect: Effect<Payload>) {
        let now = Utc::now();
        match effect {
            Effect::Dispatch { job, instance } => {
                let route = self.routes.get(&instance);
                let Some((url, slots)) = route.and_then(|r| Some((r.url.clone()?, r.slots))) else {
                    // Not reachable: the machine dispatches only to routable endpoints.
                    self.machine.lease_refused(now, job, &instance, false);
                    return;
                };
                let target = Target {
                    id: instance,
                    url,
                    slots,
                };
                self.tasks
                    .spawn(attempt::attempt(self.ctx.clone(), job, target));
            }
            Effect::Expire { job, waited } => {
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
            Effect::Shed {
                job,
                reason,
                retry_after,
            } => {
                let reply = Reply::shed(reason.to_string(), retry_after, job.cold_start);
                self.finish_here(job, reply);
            }
            Effect::Requeue { job } => {
                self.deliveries.remove(&job.seq);
                self.requeue(job);
            }
            Effect::Join { seq, copy } => {
                let joined = self.deliveries.get(&seq).is_some_and(|d| {
                    let mut d = lock(d);
                    if d.closed {
                        return false;
                    }
                    d.handles.append(&mut lock(&copy.deliveries).handles);
                    true
                });
                if !joined {
                    let deliveries = copy.deliveries.clone();
                    let seq = self.machine.arrive_as_new(now, copy.arrival());
                    self.deliveries.insert(seq, deliveries);
                }
            }
            Effect::Activate { held } => signal::activate(&self.ctx, held),
            Effect::Pressure { demand, capacity } => signal::pressure(&self.ctx, demand, capacity),
            Effect::ClearFailures { instance } => {
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
            Effect::NewArrival => {
                self.ctx.unflushed_arrivals.fetch_add(1, Ordering::Relaxed);
            }
            Effect::Drained => {
                if let Some(done) = self.draining.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Nack a job's live deliveries with requeue.
    fn requeue(&mut self, job: Box<Job>) {
        let handles = std::mem::take(&mut lock(&job.payload.deliveries).handles);
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

    /// Answer a job that never ran.
    fn finish_here(&mut self, job: Box<Job>, reply: Reply) {
        self.tasks.spawn(finish::finish(
            self.ctx.clone(),
            job,
            reply,
            Source::NotRun,
            None,
            None,
        ));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
