//! One dispatch of a job: take a slot lease (checking in the same round trip whether
//! the request was answered or is run elsewhere), POST to the instance while renewing
//! the lease, release it, then answer, or hand the job back for a retry or to park.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hyper::Uri;
use scale0_core::backoff::Backoff;
use scale0_core::contract::{ControlEventKind, ReplyStatus};
use scale0_core::worker::{self, Attempted};
use scale0_state::idempotency::{Checked, Ending, Leased, Standing};
use tokio::time::Instant;

use super::finish::{Source, finish, settle};
use super::job::{claim, request_ref};
use super::{Ctx, Freed, Job, Measured, Msg, Outcome, remaining};
use crate::instance_client::{Answer, CallError};
use crate::reply::Reply;

/// Where an attempt goes.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub id: String,
    pub url: Uri,
    pub slots: u32,
}

/// One dispatch: take a lease, POST, release, then retry elsewhere or answer.
pub(super) async fn attempt(ctx: Arc<Ctx>, mut job: Box<Job>, target: Target) {
    let d = ctx.spec.name.as_str();
    let token = format!(
        "{}:{}:{}",
        ctx.shared.settings.worker_id, job.seq, job.attempts
    );
    let lease_ms = ctx.shared.settings.lease_ttl.as_millis().max(1) as i64;
    let deadline_ms = job.payload.req.deadline_ms;
    let lease_until = move |now_ms: i64| now_ms.saturating_add(lease_ms).min(deadline_ms);
    let claim = claim(&ctx.shared.settings.worker_id, &job);
    let addresses = job.payload.addresses();
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
            request_ref(&job, &claim, &addresses).map(|r| (r, claim_ttl)),
        )
        .await;
    match leased {
        Ok(Checked {
            outcome: Leased::Granted,
            answered,
        }) => job.payload.note_answered(&addresses, &answered),
        Ok(Checked {
            outcome: Leased::NotNeeded(standing),
            answered,
        }) => {
            // No slot was taken.
            ctx.send(Msg::Released(Freed {
                instance: target.id,
                outcome: Outcome::Neutral,
            }));
            job.payload.note_answered(&addresses, &answered);
            settle_elsewhere(ctx, job, standing).await;
            return;
        }
        Ok(Checked {
            outcome: Leased::Full,
            ..
        }) => {
            ctx.metrics.attempts.inc("lease_refused");
            ctx.send(Msg::Busy {
                job,
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
                job,
                instance: target.id,
                redis_error: true,
            });
            return;
        }
    }

    if job.payload.queue_ms.is_none() {
        let waited = job.payload.arrived.elapsed();
        job.payload.queue_ms = Some(waited.as_millis() as u64);
        ctx.metrics.observe_wait(waited);
    }
    job.attempts += 1;
    let remaining = remaining(job.deadline);
    let started = Instant::now();
    let result = if remaining.is_zero() {
        Err(CallError::Timeout)
    } else {
        // Renew the lease while the instance works, so it outlives a short TTL but
        // not this worker.
        let renew = async {
            let claim = job
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
    let attempted = match &result {
        Ok(a) => Attempted::Status(a.status),
        Err(CallError::Timeout) => Attempted::Timeout,
        Err(CallError::Connect(_)) => Attempted::ConnectError,
    };
    let outcome = attempted.outcome();
    ctx.metrics.attempts.inc(attempted.label());
    let lease = Lease {
        instance: target.id.clone(),
        token,
        outcome,
    };
    let threshold = ctx.spec.policy.unhealthy_after_failures;
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

    if worker::retry(
        &job,
        attempted,
        ctx.shared.settings.max_attempts,
        Utc::now(),
    ) {
        job.avoid.push(target.id.clone());
        if let Ok(a) = &result {
            job.payload.last_answer = Some(a.reply(&target.id, &job));
        }
        // Free the slot before the retry looks for one.
        let ctx2 = ctx.clone();
        tokio::spawn(async move {
            if let Some(freed) = release(&ctx2, Some(lease), None).await {
                ctx2.send(Msg::Released(freed));
            }
        });
        ctx.send(Msg::Retry(job));
        return;
    }

    let tokens = result.as_ref().ok().and_then(Answer::tokens);
    let reply = match result {
        Ok(a) => a.reply(&target.id, &job),
        Err(CallError::Timeout) => Reply {
            instance: Some(target.id.clone()),
            queue_ms: job.payload.queue_ms,
            cold_start: job.cold_start,
            ..Reply::not_run(
                ReplyStatus::Failed,
                format!(
                    "deadline passed while instance {} was serving (attempt {})",
                    target.id, job.attempts
                ),
            )
        },
        Err(CallError::Connect(e)) => match job.payload.last_answer.take() {
            Some(answer) => answer,
            None => Reply {
                instance: Some(target.id.clone()),
                queue_ms: job.payload.queue_ms,
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
        latency_ms: job.payload.arrived.elapsed().as_millis() as u64,
        tokens,
    });
    finish(ctx, job, reply, Source::Run, sample, Some(lease)).await;
}

/// A job whose request another job ran, answered, or runs now.
async fn settle_elsewhere(ctx: Arc<Ctx>, job: Box<Job>, standing: Standing) {
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
            let claim = claim(&ctx.shared.settings.worker_id, &job);
            settle(ctx, job, None, Source::Kept, None, None, claim).await
        }
        Standing::ClaimedElsewhere => {
            ctx.metrics.attempts.inc("claimed_elsewhere");
            ctx.send(Msg::Park(job));
        }
        // Open again (its claim lapsed): take it from the top.
        Standing::Open => ctx.send(Msg::Retry(job)),
    }
}

/// A slot lease held for a request, and what its attempt taught about the instance.
#[derive(Debug)]
pub(super) struct Lease {
    instance: String,
    token: String,
    outcome: Outcome,
}

/// Release a lease and/or write a done marker in one round trip. Returns the slot
/// freed, for the actor to hear of only now (so its next acquire is not refused by
/// our own lease).
pub(super) async fn release(
    ctx: &Arc<Ctx>,
    lease: Option<Lease>,
    done: Option<Ending<'_>>,
) -> Option<Freed> {
    if lease.is_none() && done.is_none() {
        return None;
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
    lease.map(|l| Freed {
        instance: l.instance,
        outcome: l.outcome,
    })
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
            queue_ms: job.payload.queue_ms,
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
        .payload
        .req
        .content_type
        .as_ref()
        .map_or("application/json", |c| c.as_str());
    ctx.shared
        .http
        .post(
            &target.url,
            content_type,
            job.payload.req.body.clone(),
            remaining,
        )
        .await
        .map_err(|e| match e {
            CallError::Connect(why) => CallError::Connect(format!("{}: {why}", target.id)),
            timeout => timeout,
        })
}
