//! RabbitMQ: the topology, the live connection and publishing with confirms.
//!
//! One connection per worker. Its [`Live`] handle (connection, a confirm-mode publish
//! channel, an admin channel for passive declares) is shared through a `watch` so
//! every task publishes on the current connection. When the connection is lost the
//! supervisor (`lib.rs`) clears it, reconnects with backoff and sets a new one with a
//! higher epoch. Deliveries carry the epoch they arrived on: the broker requeues every
//! unacked delivery of a closed connection, so a delivery of an old epoch is never
//! acked, only answered (when its `message_id` lets the redelivered copy be
//! recognised).
//!
//! Reconnection is done here rather than with lapin's automatic recovery because a
//! recovered channel gets new delivery tags: acking a held delivery of the old
//! channel on the new one would be a protocol error, while a fresh connection and an
//! explicit epoch make the rule simple.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use scale0_core::config::{BrokerSettings, Deployment};
use scale0_core::contract::{
    CONTROL_EXCHANGE, CONTROL_QUEUE, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, MAX_PRIORITY,
    REQUESTS_EXCHANGE, UNROUTED_EXCHANGE, UNROUTED_QUEUE, request_queue,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// A connection and its shared channels.
#[derive(Debug)]
pub struct Live {
    pub epoch: u64,
    pub connection: Connection,
    /// Confirm mode; every publish of the worker goes here.
    pub publish: Channel,
    /// Passive declares (queue depth). A failure there closes only this channel.
    pub admin: Channel,
}

/// Cheap to clone; every clone sees the same live connection.
#[derive(Debug, Clone)]
pub struct Broker {
    live: watch::Receiver<Option<Arc<Live>>>,
}

/// How a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Confirmed by the broker.
    Confirmed,
    /// Confirmed, but no queue took it (`mandatory` and unroutable): reply code and text.
    Returned(u16, String),
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no broker connection before the give-up time")]
    GaveUp,
}

impl Broker {
    pub fn new(live: watch::Receiver<Option<Arc<Live>>>) -> Self {
        Broker { live }
    }

    pub fn current(&self) -> Option<Arc<Live>> {
        self.live.borrow().clone()
    }

    /// The live connection, waiting for one until `give_up`.
    pub async fn live_until(&self, give_up: Option<Instant>) -> Option<Arc<Live>> {
        // The common case, without a timer: connected now.
        if let Some(live) = self.current() {
            return Some(live);
        }
        let mut rx = self.live.clone();
        let wait = rx.wait_for(|l| l.is_some());
        let got = match give_up {
            Some(at) => tokio::time::timeout_at(at, wait).await.ok()?,
            None => wait.await,
        };
        got.ok().and_then(|l| l.clone())
    }

    /// Publish and wait for the broker's confirm, republishing on the next connection
    /// after a connection error or a nack, until `give_up`.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
        give_up: Option<Instant>,
    ) -> Result<Published, PublishError> {
        let mut failed_epoch = 0;
        loop {
            let live = loop {
                let live = self.live_until(give_up).await.ok_or(PublishError::GaveUp)?;
                if live.epoch != failed_epoch {
                    break live;
                }
                // Still the connection that just failed: wait for the supervisor to
                // notice and replace it.
                let mut rx = self.live.clone();
                let changed = rx.wait_for(|l| l.as_ref().is_none_or(|l| l.epoch != failed_epoch));
                match give_up {
                    Some(at) => {
                        if tokio::time::timeout_at(at, changed).await.is_err() {
                            return Err(PublishError::GaveUp);
                        }
                    }
                    None => {
                        let _ = changed.await;
                    }
                }
            };
            let attempt = async {
                live.publish
                    .basic_publish(
                        ShortString::from(exchange),
                        ShortString::try_new(routing_key).unwrap_or_default(),
                        BasicPublishOptions {
                            mandatory,
                            immediate: false,
                        },
                        body,
                        properties.clone(),
                    )
                    .await?
                    .await
            };
            match attempt.await {
                Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                    return Ok(Published::Confirmed);
                }
                Ok(Confirmation::Ack(Some(returned))) => {
                    return Ok(Published::Returned(
                        returned.reply_code,
                        returned.reply_text.to_string(),
                    ));
                }
                Ok(Confirmation::Nack(_)) => {
                    tracing::warn!(exchange, "broker nacked a publish; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::debug!(exchange, error = %e, "publish failed; waiting for a new connection");
                    failed_epoch = live.epoch;
                }
            }
            if give_up.is_some_and(|at| Instant::now() >= at) {
                return Err(PublishError::GaveUp);
            }
        }
    }
}

/// Connect, declare the topology and open the shared channels.
pub async fn connect(
    url: &str,
    worker_id: &str,
    epoch: u64,
    broker: &BrokerSettings,
    deployments: &[&Deployment],
) -> Result<Live, ConnectError> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("scale0-queue-worker {worker_id}")));
    let connection = scale0_connect::amqp(url, props, Duration::from_secs(10))
        .await
        .map_err(|e| match e.is_retryable() {
            true => ConnectError::Retry(e.to_string()),
            false => ConnectError::Fatal(e.to_string()),
        })?;
    let admin = connection
        .create_channel()
        .await
        .map_err(|e| ConnectError::Retry(e.to_string()))?;
    declare_topology(&admin, broker, deployments)
        .await
        .map_err(|e| match e.kind() {
            // 406 PRECONDITION_FAILED: a queue or exchange exists with other arguments.
            lapin::ErrorKind::ProtocolError(p) if p.get_id() == 406 => {
                ConnectError::Fatal(format!(
                    "{e}: a scale0 queue or exchange exists with different arguments \
                     (for example classic vs quorum); delete it or match [broker] in the config"
                ))
            }
            _ => ConnectError::Retry(e.to_string()),
        })?;
    let publish = connection
        .create_channel()
        .await
        .map_err(|e| ConnectError::Retry(e.to_string()))?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| ConnectError::Retry(e.to_string()))?;
    Ok(Live {
        epoch,
        connection,
        publish,
        admin,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Try again after a backoff.
    #[error("{0}")]
    Retry(String),
    /// Trying again cannot help (topology conflicts).
    #[error("{0}")]
    Fatal(String),
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Arguments of a deployment's request queue.
pub fn request_queue_arguments(broker: &BrokerSettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    if broker.quorum_queues {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    } else {
        args.insert(
            "x-max-priority".into(),
            AMQPValue::ShortShortUInt(MAX_PRIORITY),
        );
    }
    args
}

/// Declare everything the worker uses. Idempotent: declaring what exists with the same
/// arguments changes nothing; different arguments fail with 406.
///
/// - `scale0.dead` (fanout exchange) → queue `scale0.dead`;
/// - `scale0.unrouted` (fanout) → queue `scale0.unrouted`, the alternate exchange of
/// - `scale0.requests` (direct) → `scale0.<deployment>` per deployment (durable,
///   dead-lettering to `scale0.dead`; `x-max-priority` 9, or `x-queue-type` quorum);
/// - `scale0.control` (topic exchange) → queue `scale0.control` bound with `#`.
pub async fn declare_topology(
    channel: &Channel,
    broker: &BrokerSettings,
    deployments: &[&Deployment],
) -> lapin::Result<()> {
    let empty = FieldTable::default;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable_exchange(),
            empty(),
        )
        .await?;
    channel
        .queue_declare(DEAD_LETTER_QUEUE.into(), durable(), empty())
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            empty(),
        )
        .await?;

    channel
        .exchange_declare(
            UNROUTED_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable_exchange(),
            empty(),
        )
        .await?;
    channel
        .queue_declare(UNROUTED_QUEUE.into(), durable(), empty())
        .await?;
    channel
        .queue_bind(
            UNROUTED_QUEUE.into(),
            UNROUTED_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            empty(),
        )
        .await?;

    let mut requests_args = FieldTable::default();
    requests_args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString(UNROUTED_EXCHANGE.into()),
    );
    channel
        .exchange_declare(
            REQUESTS_EXCHANGE.into(),
            ExchangeKind::Direct,
            durable_exchange(),
            requests_args,
        )
        .await?;

    channel
        .exchange_declare(
            CONTROL_EXCHANGE.into(),
            ExchangeKind::Topic,
            durable_exchange(),
            empty(),
        )
        .await?;
    channel
        .queue_declare(CONTROL_QUEUE.into(), durable(), empty())
        .await?;
    channel
        .queue_bind(
            CONTROL_QUEUE.into(),
            CONTROL_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            empty(),
        )
        .await?;

    for d in deployments {
        let queue = request_queue(&d.name);
        channel
            .queue_declare(
                queue.as_str().into(),
                durable(),
                request_queue_arguments(broker),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                REQUESTS_EXCHANGE.into(),
                d.name.as_str().into(),
                QueueBindOptions::default(),
                empty(),
            )
            .await?;
    }
    Ok(())
}

/// Prefetch of a deployment's consumer: what it may hold, what its instances can
/// serve at most, and a margin so a worker at its held limit still receives the next
/// arrivals and sheds the lowest priority instead of leaving them in the queue.
/// AMQP caps it at 65,535.
pub fn prefetch(d: &Deployment) -> u16 {
    let serving: u64 = d
        .pools
        .iter()
        .map(|p| u64::from(p.max_instances) * u64::from(p.slots))
        .sum();
    (u64::from(d.max_held_requests) + serving + 64).min(u64::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale0_core::config::Config;

    /// t=0 no connection; a publish that may wait 30 s waits exactly that and gives
    /// up; one without a give-up time is still waiting an hour later.
    #[tokio::test(start_paused = true)]
    async fn publishing_without_a_connection_waits_until_its_give_up_time() {
        let (tx, rx) = watch::channel(None);
        let broker = Broker::new(rx);
        let t0 = Instant::now();
        let r = broker
            .publish(
                "x",
                "y",
                false,
                b"",
                BasicProperties::default(),
                Some(t0 + Duration::from_secs(30)),
            )
            .await;
        assert!(matches!(r, Err(PublishError::GaveUp)));
        assert_eq!(t0.elapsed(), Duration::from_secs(30));

        let patient = broker.publish("x", "y", false, b"", BasicProperties::default(), None);
        let waited = tokio::time::timeout(Duration::from_secs(3600), patient).await;
        assert!(waited.is_err(), "still waiting for a connection");
        drop(tx);
    }

    #[test]
    fn prefetch_covers_holding_serving_and_a_margin() {
        let c = Config::load(
            r#"
            [[deployments]]
            name = "chat"
            max_held_requests = 100
            [[deployments.pools]]
            name = "a"
            max_instances = 3
            slots = 4
            price_per_hour_usd = 1.0
            boot_time = "30s"
        "#,
        )
        .unwrap();
        assert_eq!(prefetch(&c.deployments[0]), 100 + 12 + 64);
        let mut big = c.deployments[0].clone();
        big.max_held_requests = 1_000_000;
        assert_eq!(prefetch(&big), u16::MAX);
    }

    #[test]
    fn queue_arguments_follow_the_queue_type() {
        let classic = request_queue_arguments(&BrokerSettings::default());
        assert!(classic.contains_key("x-max-priority"));
        assert!(!classic.contains_key("x-queue-type"));
        let quorum = request_queue_arguments(&BrokerSettings {
            quorum_queues: true,
            ..BrokerSettings::default()
        });
        assert!(quorum.contains_key("x-queue-type"));
        assert!(quorum.contains_key("x-dead-letter-exchange"));
    }
}
