//! Queue depth, read from the broker with a passive `queue.declare` (the message count
//! in its reply). The management API's queue statistics lag about 5 s; the declare is
//! current. A passive declare of a missing queue closes its channel with 404, so every
//! poll uses a channel of its own on one shared connection.
//!
//! The same connection publishes the control plane's own control events (budget
//! alerts) to the `scale0.control` exchange, as the workers publish theirs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ErrorKind};
use tokio::sync::Mutex;

/// The broker could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// Messages waiting in a queue. A narrow port so tests and the simulator can stand in.
pub trait QueueDepth: Send + Sync + fmt::Debug {
    /// Ready messages in `queue`, or `None` when the queue does not exist (yet).
    fn depth<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Option<u64>, BrokerError>>;
}

/// Depth from a RabbitMQ broker over AMQP 0-9-1.
pub struct AmqpQueueDepth {
    url: String,
    conn: Mutex<Option<Arc<Connection>>>,
}

impl fmt::Debug for AmqpQueueDepth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmqpQueueDepth({})", scale0_state::redact_url(&self.url))
    }
}

impl AmqpQueueDepth {
    /// Connects lazily, on the first poll, and again whenever the connection is lost.
    pub fn new(url: impl Into<String>) -> Self {
        AmqpQueueDepth {
            url: url.into(),
            conn: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, BrokerError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && c.status().connected()
        {
            return Ok(c.clone());
        }
        let c = scale0_connect::amqp(
            &self.url,
            ConnectionProperties::default(),
            std::time::Duration::from_secs(5),
        )
        .await
        .map_err(|e| BrokerError(e.to_string()))?;
        let c = Arc::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    fn err(&self, e: impl fmt::Display) -> BrokerError {
        BrokerError(format!("{}: {e}", scale0_state::redact_url(&self.url)))
    }

    async fn poll(&self, queue: &str) -> Result<Option<u64>, BrokerError> {
        let conn = self.connection().await?;
        let channel = conn.create_channel().await.map_err(|e| self.err(e))?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => {
                let _ = channel.close(200, "depth read".into()).await;
                Ok(Some(u64::from(q.message_count())))
            }
            // The broker closed the channel: the queue does not exist.
            Err(e) if matches!(e.kind(), ErrorKind::ProtocolError(p) if p.get_id() == 404) => {
                Ok(None)
            }
            Err(e) => Err(self.err(e)),
        }
    }
}

/// Publishes control events the control plane raises itself (budget alerts).
pub trait ControlPublisher: Send + Sync + fmt::Debug {
    fn publish<'a>(
        &'a self,
        event: &'a scale0_core::contract::ControlEvent,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;
}

impl AmqpQueueDepth {
    async fn publish_control(
        &self,
        event: &scale0_core::contract::ControlEvent,
    ) -> Result<(), BrokerError> {
        use scale0_core::contract::{CONTROL_EXCHANGE, control_routing_key};
        let conn = self.connection().await?;
        let channel = conn.create_channel().await.map_err(|e| self.err(e))?;
        let body = serde_json::to_vec(event).map_err(|e| self.err(e))?;
        let props = lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(event.id.as_str().into())
            .with_expiration("600000".into());
        let confirm = channel
            .basic_publish(
                CONTROL_EXCHANGE.into(),
                control_routing_key(&event.deployment, event.kind_name()).into(),
                lapin::options::BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .map_err(|e| self.err(e))?;
        confirm.await.map_err(|e| self.err(e))?;
        let _ = channel.close(200, "published".into()).await;
        Ok(())
    }
}

impl ControlPublisher for AmqpQueueDepth {
    fn publish<'a>(
        &'a self,
        event: &'a scale0_core::contract::ControlEvent,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(self.publish_control(event))
    }
}

impl QueueDepth for AmqpQueueDepth {
    fn depth<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Option<u64>, BrokerError>> {
        Box::pin(self.poll(queue))
    }
}

/// Fixed depths, set by a test or the simulator. Unknown queues have depth 0.
#[derive(Debug, Default)]
pub struct FixedQueueDepth {
    depths: std::sync::Mutex<HashMap<String, u64>>,
}

impl FixedQueueDepth {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, queue: &str, depth: u64) {
        self.depths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(queue.to_string(), depth);
    }
}

impl QueueDepth for FixedQueueDepth {
    fn depth<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<Option<u64>, BrokerError>> {
        let d = self
            .depths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(queue)
            .copied()
            .unwrap_or(0);
        Box::pin(async move { Ok(Some(d)) })
    }
}
