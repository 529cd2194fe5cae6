//! A job's end: its terminal reply to the address of every delivery not answered
//! yet, the ack, and the record Redis keeps for later copies of the request (the
//! reply, the addresses answered), released with the slot lease in one round trip.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use scale0_state::idempotency::{Checked, Ending, Standing};

use super::attempt::{Lease, release};
use super::job::{claim, lock, request_ref};
use super::{Ctx, Job, Measured, Msg};
use crate::commit::{Committed, Unit};
use crate::reply::{self, Reply};
use crate::request::{Invalid, InvalidKind};

/// Where a job's terminal reply comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
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
pub(super) async fn finish(
    ctx: Arc<Ctx>,
    mut job: Box<Job>,
    reply: Reply,
    mut source: Source,
    sample: Option<Measured>,
    lease: Option<Lease>,
) {
    let d = ctx.spec.name.as_str();
    let claim = claim(&ctx.shared.settings.worker_id, &job);
    let mut reply = Some(reply);
    if source == Source::NotRun {
        let addresses = job.payload.addresses();
        if let Some(request) = request_ref(&job, &claim, &addresses) {
            match ctx.shared.store.request_standing(d, request).await {
                Ok(Checked { outcome, answered }) => {
                    job.payload.note_answered(&addresses, &answered);
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
                            if let Some(freed) = release(&ctx, lease, None).await {
                                ctx.send(Msg::Released(freed));
                            }
                            ctx.send(Msg::Park(job));
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

pub(super) async fn settle(
    ctx: Arc<Ctx>,
    job: Box<Job>,
    reply: Option<Reply>,
    source: Source,
    sample: Option<Measured>,
    lease: Option<Lease>,
    claim: String,
) {
    let d = ctx.spec.name.as_str();
    let message_id = job.message_id.as_deref();
    // One message to the actor when the request ends: its slot and its samples.
    let finished = |ctx: &Ctx, freed, sample| {
        ctx.send(Msg::Finished {
            seq: job.seq,
            freed,
            sample,
        })
    };
    let live = lock(&job.payload.deliveries)
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
        let freed = release(&ctx, lease, None).await;
        finished(&ctx, freed, None);
        return;
    }
    // Later copies start a job of their own (and find the kept reply).
    let handles = {
        let mut dl = lock(&job.payload.deliveries);
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
        if replied.iter().any(|(f, _)| *f == field) || job.payload.answered.contains(&field) {
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
                    &job.payload.req.body,
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
    let ending = request_ref(&job, &claim, &[]).map(|request| {
        let now_ms = Utc::now().timestamp_millis();
        Ending {
            request,
            reply: kept.as_deref(),
            answered: &sent,
            ttl: Duration::from_millis((job.payload.req.deadline_ms - now_ms).max(0) as u64)
                + ctx.shared.settings.done_ttl_after_deadline,
        }
    });
    let freed = release(&ctx, lease, ending).await;
    // Every delivery but the one that ran here is a copy that did not run.
    let ran_here = reply.is_some() && source != Source::Kept;
    let copies = (0..handles.len())
        .filter(|i| (*i > 0 || !ran_here) && !unanswerable.contains(i))
        .count();
    ctx.metrics.duplicates.inc_by(copies as u64);
    finished(&ctx, freed, sample);
}
