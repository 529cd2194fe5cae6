//! Replies and acks in AMQP transactions, one committer per consumer channel.
//!
//! A reply and the ack of the delivery it answers are published on the delivery's own
//! channel, in transaction mode, and committed together: RabbitMQ makes neither
//! visible before `tx.commit`, and a channel that closes first (the worker died, the
//! connection was lost) rolls both back, so the broker redelivers a request exactly
//! when its reply did not go out. With publisher confirms on another channel there was
//! a window — reply routed, confirm or ack not yet through — in which a SIGKILL or a
//! lost connection left a delivered reply *and* a redelivered request: a second reply.
//!
//! Every ack and nack of a consumer channel goes through its committer (a transaction
//! covers all of them). Units queued while a commit is in flight are committed
//! together in the next one, so a busy channel commits in batches.
//!
//! A commit whose outcome is unknown (the connection died before `commit-ok`) is
//! reported as such: the caller keeps the reply for a redelivered copy but does not
//! count its addresses as answered (see `deployment::settle`).

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::ShortString;
use lapin::{Acker, BasicProperties, Channel};
use tokio::sync::{mpsc, oneshot};

/// One message to publish inside a transaction (to the default exchange).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub routing_key: ShortString,
    pub mandatory: bool,
    pub body: hyper::body::Bytes,
    pub properties: BasicProperties,
}

/// What to commit at once: replies, and the acks and requeues of deliveries of this
/// committer's channel.
#[derive(Debug, Default)]
pub struct Unit {
    pub publish: Vec<Outgoing>,
    pub ack: Vec<Acker>,
    pub requeue: Vec<Acker>,
}

/// How a unit's commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Committed; the indexes (into [`Unit::publish`]) of replies the broker returned
    /// as unroutable (`mandatory`), with the reply code and text.
    Done { returned: Vec<(usize, u16, String)> },
    /// The channel failed before `commit-ok`: committed or rolled back, nobody knows.
    Unknown(String),
}

/// A handle on one channel's committer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Committer {
    /// The connection epoch of the channel.
    pub epoch: u64,
    units: mpsc::UnboundedSender<(Unit, oneshot::Sender<Committed>)>,
}

impl Committer {
    /// Put `channel` in transaction mode and start committing for it.
    pub async fn start(channel: Channel, epoch: u64) -> lapin::Result<Committer> {
        channel.tx_select().await?;
        let (units, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(channel, rx));
        Ok(Committer { epoch, units })
    }

    /// Commit `unit`; [`Committed::Unknown`] if the channel is gone.
    pub async fn commit(&self, unit: Unit) -> Committed {
        let (done, outcome) = oneshot::channel();
        if self.units.send((unit, done)).is_err() {
            return Committed::Unknown("the channel's committer stopped".into());
        }
        outcome
            .await
            .unwrap_or_else(|_| Committed::Unknown("the channel's committer stopped".into()))
    }
}

/// The most units one commit takes.
const BATCH: usize = 256;

async fn run(
    channel: Channel,
    mut units: mpsc::UnboundedReceiver<(Unit, oneshot::Sender<Committed>)>,
) {
    while let Some(first) = units.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match units.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        let outcome = commit(&channel, batch.iter().map(|(u, _)| u)).await;
        match outcome {
            Ok(returned) => {
                // Returned messages name their queue and correlation id: give each back
                // to the unit (and reply) it came from.
                let mut returned = returned;
                for (unit, done) in batch {
                    let mut mine = Vec::new();
                    for (i, out) in unit.publish.iter().enumerate() {
                        if let Some(pos) = returned.iter().position(|(key, corr, _, _)| {
                            key == &out.routing_key && corr == out.properties.correlation_id()
                        }) {
                            let (_, _, code, text) = returned.swap_remove(pos);
                            mine.push((i, code, text));
                        }
                    }
                    let _ = done.send(Committed::Done { returned: mine });
                }
            }
            Err(e) => {
                let why = e.to_string();
                for (_, done) in batch {
                    let _ = done.send(Committed::Unknown(why.clone()));
                }
            }
        }
    }
}

type Returned = (ShortString, Option<ShortString>, u16, String);

async fn commit<'a>(
    channel: &Channel,
    units: impl Iterator<Item = &'a Unit>,
) -> lapin::Result<Vec<Returned>> {
    for unit in units {
        for out in &unit.publish {
            // Without confirm mode its confirmation resolves at once (NotRequested).
            channel
                .basic_publish(
                    "".into(),
                    out.routing_key.clone(),
                    BasicPublishOptions {
                        mandatory: out.mandatory,
                        immediate: false,
                    },
                    &out.body,
                    out.properties.clone(),
                )
                .await?
                .await?;
        }
        for acker in &unit.ack {
            acker.ack(BasicAckOptions::default()).await?;
        }
        for acker in &unit.requeue {
            acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await?;
        }
    }
    channel.tx_commit().await?;
    // RabbitMQ sends `basic.return`s of a transaction before its `commit-ok`.
    Ok(channel
        .wait_for_confirms()
        .await?
        .into_iter()
        .map(|r| {
            (
                r.delivery.routing_key.clone(),
                r.delivery.properties.correlation_id().clone(),
                r.reply_code,
                r.reply_text.to_string(),
            )
        })
        .collect())
}
