//! What a job carries through [`scale0_core::worker::Machine`] for the shell: the
//! request, the broker deliveries its reply answers (the first and any copies that
//! joined it), what its attempts measured; and what Redis knows it by.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use lapin::Acker;
use scale0_core::worker::{self, Arrival};
use scale0_state::idempotency::RequestRef;
use tokio::time::Instant;

use crate::reply::Reply;
use crate::request::{Envelope, Request};

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
/// address. `closed` once the replies are on their way: a later copy starts a job of
/// its own, which finds the kept reply in Redis.
#[derive(Debug, Default)]
pub struct Deliveries {
    pub(super) handles: Vec<Handle>,
    pub(super) closed: bool,
}

pub(super) type SharedDeliveries = Arc<Mutex<Deliveries>>;

pub(super) fn lock(d: &SharedDeliveries) -> std::sync::MutexGuard<'_, Deliveries> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a job carries through the machine for the shell.
#[derive(Debug)]
pub struct Payload {
    pub(super) req: Request,
    pub(super) deliveries: SharedDeliveries,
    /// When it arrived, on the monotonic clock: its wait and latency are measured
    /// from here.
    pub(super) arrived: Instant,
    /// The last answer of an instance worth passing on if the attempts run out
    /// (a 5xx or 429 and its body).
    pub(super) last_answer: Option<Reply>,
    pub(super) queue_ms: Option<u64>,
    /// Reply addresses (`ReplyTo::field`) Redis said were answered already.
    pub(super) answered: HashSet<String>,
}

/// A request on its way through the worker.
pub type Job = worker::Job<Payload>;

impl Payload {
    pub(super) fn new(req: Request, handle: Handle) -> Self {
        Payload {
            req,
            deliveries: Arc::new(Mutex::new(Deliveries {
                handles: vec![handle],
                closed: false,
            })),
            arrived: Instant::now(),
            last_answer: None,
            queue_ms: None,
            answered: HashSet::new(),
        }
    }

    /// The delivery the machine sees: what its rules need of the request.
    pub(super) fn arrival(self) -> Arrival<Payload> {
        let epoch = lock(&self.deliveries)
            .handles
            .iter()
            .map(|h| h.epoch)
            .max()
            .unwrap_or(0);
        Arrival {
            message_id: self.req.message_id.clone(),
            priority: self.req.priority,
            deadline: DateTime::from_timestamp_millis(self.req.deadline_ms)
                .unwrap_or(DateTime::UNIX_EPOCH),
            redelivered: self.req.redelivered,
            epoch,
            payload: self,
        }
    }

    /// The distinct reply addresses of every delivery.
    pub(super) fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &lock(&self.deliveries).handles {
            let field = h.envelope.reply.field();
            if !out.contains(&field) {
                out.push(field);
            }
        }
        out
    }

    pub(super) fn note_answered(&mut self, addresses: &[String], answered: &[bool]) {
        for (a, yes) in addresses.iter().zip(answered) {
            if *yes {
                self.answered.insert(a.clone());
            }
        }
    }
}

/// The job's claim on its request in Redis: unique per worker and job.
pub(super) fn claim(worker_id: &str, job: &Job) -> String {
    format!("{worker_id}:{}", job.seq)
}

/// What Redis knows a job by: its `message_id`, its claim and its addresses.
pub(super) fn request_ref<'a>(
    job: &'a Job,
    claim: &'a str,
    addresses: &'a [String],
) -> Option<RequestRef<'a>> {
    Some(RequestRef {
        message_id: job.message_id.as_deref()?,
        claim,
        addresses,
    })
}
