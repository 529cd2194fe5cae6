//! Consumers: one channel per deployment queue (its own prefetch) plus one on
//! `scale0.unrouted`. Each delivery is read into a request and handed to its
//! deployment's actor, or dead-lettered with the reason it cannot be answered.

use std::sync::Arc;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Acker, BasicProperties, Channel};
use scale0_core::contract::{UNROUTED_QUEUE, request_queue};
use tokio::sync::mpsc;

use crate::broker::{self, Live};
use crate::commit::{Committer, Unit};
use crate::deployment::{Ctx, Handle, Msg};
use crate::reply::{self, Reply};
use crate::request::{self, Invalid, InvalidKind, ReplyTo};

/// A running consumer, to cancel on shutdown.
#[derive(Debug)]
pub struct Consumer {
    pub channel: Channel,
    pub tag: String,
}

impl Consumer {
    pub async fn cancel(&self) {
        let _ = self
            .channel
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
}

/// Why a consumer stopped: the supervisor treats it as a lost connection unless it
/// cancelled the consumer itself.
#[derive(Debug)]
pub struct Ended {
    pub epoch: u64,
    pub queue: String,
    pub error: Option<String>,
}

/// Start every consumer on `live`.
pub async fn start(
    live: &Arc<Live>,
    deployments: &[Arc<Ctx>],
    worker_id: &str,
    ended: mpsc::UnboundedSender<Ended>,
) -> lapin::Result<Vec<Consumer>> {
    let mut out = Vec::new();
    for ctx in deployments {
        let channel = live.connection.create_channel().await?;
        channel
            .basic_qos(
                broker::prefetch(&ctx.spec),
                BasicQosOptions { global: false },
            )
            .await?;
        // Replies and acks of this channel's deliveries are committed together.
        ctx.committer
            .send_replace(Some(Committer::start(channel.clone(), live.epoch).await?));
        let queue = request_queue(&ctx.spec.name);
        let tag = format!("{worker_id}/{}/{}", ctx.spec.name, live.epoch);
        let stream = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (ctx, epoch, ended) = (ctx.clone(), live.epoch, ended.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            let mut error = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(delivery) => on_delivery(&ctx, epoch, delivery),
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            let _ = ended.send(Ended {
                epoch,
                queue,
                error,
            });
        });
        out.push(Consumer { channel, tag });
    }

    // Requests for no known deployment, routed here by the alternate exchange.
    let channel = live.connection.create_channel().await?;
    channel
        .basic_qos(100, BasicQosOptions { global: false })
        .await?;
    let committer = Committer::start(channel.clone(), live.epoch).await?;
    let tag = format!("{worker_id}/unrouted/{}", live.epoch);
    let stream = channel
        .basic_consume(
            UNROUTED_QUEUE.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let shared = deployments.first().map(|c| c.shared.clone());
    let epoch = live.epoch;
    tokio::spawn(async move {
        let mut stream = stream;
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(delivery) => {
                    if let Some(shared) = &shared {
                        let (shared, committer) = (shared.clone(), committer.clone());
                        tokio::spawn(async move {
                            let name = delivery.routing_key.to_string();
                            let why = Invalid {
                                kind: InvalidKind::UnknownDeployment,
                                reason: format!("unknown deployment `{name}`"),
                            };
                            let p = &delivery.properties;
                            tracing::warn!(
                                routing_key = %name,
                                message_id = p.message_id().as_ref().map_or("", |m| m.as_str()),
                                correlation_id = p.correlation_id().as_ref().map_or("", |c| c.as_str()),
                                reply_to = p.reply_to().as_ref().map_or("", |r| r.as_str()),
                                "request for an unknown deployment: dead-lettered (and answered rejected when it has a reply_to)"
                            );
                            shared
                                .metrics
                                .deployment(crate::UNKNOWN_DEPLOYMENT)
                                .dead_letters
                                .inc(why.kind.label());
                            let Delivery {
                                properties,
                                data,
                                acker,
                                ..
                            } = delivery;
                            let reject = Reject {
                                broker: &shared.broker,
                                committer: &committer,
                                deployment: &name,
                            };
                            reject.send(properties, &data, acker, why).await;
                        });
                    }
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let _ = ended.send(Ended {
            epoch,
            queue: UNROUTED_QUEUE.into(),
            error,
        });
    });
    out.push(Consumer { channel, tag });
    Ok(out)
}

fn on_delivery(ctx: &Arc<Ctx>, epoch: u64, delivery: Delivery) {
    ctx.metrics.arrivals.inc();
    let now_ms = Utc::now().timestamp_millis();
    let timeout_ms = ctx.shared.broker_settings.consumer_timeout.0.as_millis() as i64;
    let Delivery {
        properties,
        data,
        redelivered,
        acker,
        ..
    } = delivery;
    match request::parse(&ctx.spec, properties, data, redelivered, now_ms, timeout_ms) {
        Ok((req, envelope)) => {
            let handle = Handle {
                epoch,
                acker,
                envelope,
            };
            let _ = ctx
                .inbox
                .send(Msg::Arrival(Box::new(req), Box::new(handle)));
        }
        Err(rejected) => {
            let request::Rejected {
                invalid: why,
                properties,
                body,
            } = *rejected;
            ctx.metrics.dead_letters.inc(why.kind.label());
            tracing::info!(
                deployment = %ctx.spec.name,
                reason = %why.reason,
                message_id = properties.message_id().as_ref().map_or("", |m| m.as_str()),
                correlation_id = properties.correlation_id().as_ref().map_or("", |c| c.as_str()),
                "dead-lettering an unanswerable message"
            );
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let committer = ctx.current_committer().await;
                let reject = Reject {
                    broker: &ctx.shared.broker,
                    committer: &committer,
                    deployment: &ctx.spec.name,
                };
                reject.send(properties, &body, acker, why).await;
            });
        }
    }
}

/// Where a rejected message goes: its dead letter through the broker, its `rejected`
/// reply and its ack through the committer of its channel.
struct Reject<'a> {
    broker: &'a crate::broker::Broker,
    committer: &'a Committer,
    deployment: &'a str,
}

impl Reject<'_> {
    /// Dead-letter a message with its reason (confirmed), then answer `rejected` when
    /// it has a `reply_to` and ack it, both in one commit. If the dead letter cannot be
    /// published the message stays unacked (its connection is gone; the broker
    /// redelivers it).
    async fn send(&self, properties: BasicProperties, body: &[u8], acker: Acker, why: Invalid) {
        let d = self.deployment;
        if reply::dead_letter(self.broker, &properties, body, d, d, &why)
            .await
            .is_err()
        {
            return;
        }
        let mut unit = Unit {
            ack: vec![acker],
            ..Unit::default()
        };
        if why.kind != InvalidKind::NoReplyTo
            && let Some(to) = ReplyTo::of(&properties)
        {
            let answer = Reply::not_run(
                scale0_core::contract::ReplyStatus::Rejected,
                why.reason.clone(),
            );
            let message_id = properties.message_id().as_ref().map(|m| m.as_str());
            unit.publish.push(reply::outgoing(&to, message_id, &answer));
        }
        // A reply that cannot be routed needs nothing more: the dead letter keeps it.
        let _ = self.committer.commit(unit).await;
    }
}
