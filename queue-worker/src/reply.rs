//! Replies and dead letters: their AMQP properties and headers (DESIGN.md, "Requests").

use hyper::body::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use scale0_core::contract::{DEAD_LETTER_EXCHANGE, ReplyStatus, headers};

use crate::broker::{Broker, PublishError};
use crate::commit::Outgoing;
use crate::request::{Invalid, ReplyTo};

/// One terminal answer to a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: ReplyStatus,
    /// The instance's answer as it came (shared, not copied) or a JSON error.
    pub body: Bytes,
    pub content_type: Option<String>,
    pub reason: Option<String>,
    pub instance: Option<String>,
    /// Arrival to first dispatch; absent for requests that never ran.
    pub queue_ms: Option<u64>,
    pub cold_start: bool,
    /// Seconds, on `shed`.
    pub retry_after: Option<u64>,
}

impl Reply {
    /// An answer that did not come from an instance: a small JSON body naming the
    /// status and the reason.
    pub fn not_run(status: ReplyStatus, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Reply {
            status,
            body: serde_json::json!({"error": {"status": status.to_string(), "reason": reason}})
                .to_string()
                .into(),
            content_type: Some("application/json".into()),
            reason: Some(reason),
            instance: None,
            queue_ms: None,
            cold_start: false,
            retry_after: None,
        }
    }

    pub fn shed(reason: impl Into<String>, retry_after_secs: u64, cold_start: bool) -> Self {
        Reply {
            retry_after: Some(retry_after_secs),
            cold_start,
            ..Reply::not_run(ReplyStatus::Shed, reason)
        }
    }

    /// The properties of this reply to `to`, for the request `message_id`.
    pub fn properties(&self, to: &ReplyTo, message_id: Option<&str>) -> BasicProperties {
        let mut h = FieldTable::default();
        h.insert(
            headers::STATUS.into(),
            AMQPValue::LongString(self.status.to_string().into()),
        );
        if let Some(r) = &self.reason {
            h.insert(
                headers::REASON.into(),
                AMQPValue::LongString(r.as_str().into()),
            );
        }
        if let Some(ms) = self.queue_ms {
            h.insert(
                headers::QUEUE_MS.into(),
                AMQPValue::LongLongInt(ms.min(i64::MAX as u64) as i64),
            );
        }
        h.insert(
            headers::COLD_START.into(),
            AMQPValue::Boolean(self.cold_start),
        );
        if let Some(i) = &self.instance {
            h.insert(
                headers::INSTANCE.into(),
                AMQPValue::LongString(i.as_str().into()),
            );
        }
        if let Some(s) = self.retry_after {
            h.insert(
                headers::RETRY_AFTER.into(),
                AMQPValue::LongLongInt(s.min(i64::MAX as u64) as i64),
            );
        }
        let mut p = BasicProperties::default()
            .with_headers(h)
            .with_delivery_mode(if to.persistent { 2 } else { 1 });
        if let Some(c) = &to.correlation_id {
            p = p.with_correlation_id(c.clone());
        }
        if let Some(m) = message_id.and_then(|m| ShortString::try_new(m).ok()) {
            p = p.with_message_id(m);
        }
        if let Some(ct) = self
            .content_type
            .as_deref()
            .and_then(|c| ShortString::try_new(c).ok())
        {
            p = p.with_content_type(ct);
        }
        p
    }

    /// The reply as the done record keeps it for later copies of the request: a JSON
    /// line of everything but the body, then the body as it is.
    pub fn encode(&self) -> Vec<u8> {
        let meta = serde_json::json!({
            "status": self.status.to_string(),
            "content_type": self.content_type,
            "reason": self.reason,
            "instance": self.instance,
            "queue_ms": self.queue_ms,
            "cold_start": self.cold_start,
            "retry_after": self.retry_after,
        });
        let mut out = meta.to_string().into_bytes();
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    /// A reply [`Reply::encode`] wrote; `None` if `bytes` are not one.
    pub fn decode(bytes: &[u8]) -> Option<Reply> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let meta: serde_json::Value = serde_json::from_slice(&bytes[..split]).ok()?;
        let text = |k: &str| meta.get(k)?.as_str().map(str::to_string);
        Some(Reply {
            status: meta.get("status")?.as_str()?.parse().ok()?,
            body: Bytes::copy_from_slice(&bytes[split + 1..]),
            content_type: text("content_type"),
            reason: text("reason"),
            instance: text("instance"),
            queue_ms: meta.get("queue_ms").and_then(|v| v.as_u64()),
            cold_start: meta.get("cold_start")?.as_bool()?,
            retry_after: meta.get("retry_after").and_then(|v| v.as_u64()),
        })
    }
}

/// `reply` to `to`, as the committer publishes it: `mandatory`, so a reply to a queue
/// that does not exist comes back, except to the direct reply-to
/// ([`ReplyTo::is_direct`]).
pub fn outgoing(to: &ReplyTo, message_id: Option<&str>, reply: &Reply) -> Outgoing {
    Outgoing {
        routing_key: to.queue.clone(),
        mandatory: !to.is_direct(),
        body: reply.body.clone(),
        properties: reply.properties(to, message_id),
    }
}

/// The properties of a message's copy to `scale0.dead`: the producer's properties
/// (reply_to, correlation_id, message_id..., so a person can replay it) with
/// `x-scale0-reason` and `x-scale0-deployment` added to its headers, and without its
/// TTL, so the dead letter itself does not expire.
pub fn dead_letter_properties(
    properties: &BasicProperties,
    deployment: &str,
    reason: &str,
) -> BasicProperties {
    let mut h = properties.headers().clone().unwrap_or_default();
    h.insert(
        headers::REASON.into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    h.insert(
        headers::DEPLOYMENT.into(),
        AMQPValue::LongString(LongString::from(deployment)),
    );
    let mut p = properties.clone().with_headers(h);
    if p.expiration().is_some() {
        p = BasicProperties::default()
            .with_headers(p.headers().clone().unwrap_or_default())
            .with_delivery_mode(p.delivery_mode().unwrap_or(2));
        if let Some(v) = properties.reply_to() {
            p = p.with_reply_to(v.clone());
        }
        if let Some(v) = properties.correlation_id() {
            p = p.with_correlation_id(v.clone());
        }
        if let Some(v) = properties.message_id() {
            p = p.with_message_id(v.clone());
        }
        if let Some(v) = properties.content_type() {
            p = p.with_content_type(v.clone());
        }
        if let Some(v) = properties.priority() {
            p = p.with_priority(*v);
        }
    }
    p
}

/// Copy a message to `scale0.dead` ([`dead_letter_properties`]) and wait for the
/// confirm.
pub async fn dead_letter(
    broker: &Broker,
    properties: &BasicProperties,
    body: &[u8],
    routing_key: &str,
    deployment: &str,
    why: &Invalid,
) -> Result<(), PublishError> {
    let p = dead_letter_properties(properties, deployment, &why.reason);
    broker
        .publish(DEAD_LETTER_EXCHANGE, routing_key, false, body, p, None)
        .await
        .map(|_| ())
}

/// A reply's headers as a producer reads them: what [`Reply::properties`] writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyHeaders {
    /// `x-scale0-status`; `None` on a message that is not a scale0 reply.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub queue_ms: Option<u64>,
    pub cold_start: bool,
    pub instance: Option<String>,
    pub retry_after: Option<u64>,
}

impl ReplyHeaders {
    pub fn read(p: &BasicProperties) -> Self {
        let get = |name: &str| p.headers().as_ref()?.inner().get(name);
        let text = |name: &str| match get(name)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.to_string()),
            _ => None,
        };
        let count = |name: &str| match get(name)? {
            AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
            AMQPValue::LongUInt(n) => Some(u64::from(*n)),
            _ => None,
        };
        ReplyHeaders {
            status: text(headers::STATUS),
            reason: text(headers::REASON),
            queue_ms: count(headers::QUEUE_MS),
            cold_start: matches!(get(headers::COLD_START), Some(AMQPValue::Boolean(true))),
            instance: text(headers::INSTANCE),
            retry_after: count(headers::RETRY_AFTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> ReplyTo {
        ReplyTo {
            queue: "replies".into(),
            correlation_id: Some("c-1".into()),
            persistent: true,
        }
    }

    fn header<'a>(p: &'a BasicProperties, name: &str) -> &'a AMQPValue {
        p.headers().as_ref().unwrap().inner().get(name).unwrap()
    }

    #[test]
    fn a_producer_reads_back_the_headers_a_reply_carries() {
        let mut r = Reply::shed("over the budget `team`", 30, true);
        r.queue_ms = Some(1200);
        r.instance = Some("i-1".into());
        let read = ReplyHeaders::read(&r.properties(&to(), None));
        assert_eq!(
            read,
            ReplyHeaders {
                status: Some("shed".into()),
                reason: Some("over the budget `team`".into()),
                queue_ms: Some(1200),
                cold_start: true,
                instance: Some("i-1".into()),
                retry_after: Some(30),
            }
        );
        // A message without scale0's headers reads as nothing.
        assert_eq!(
            ReplyHeaders::read(&BasicProperties::default()),
            ReplyHeaders::default()
        );
    }

    #[test]
    fn shed_replies_carry_status_reason_and_retry_after() {
        let r = Reply::shed("held requests over max_held_requests 4", 12, true);
        let p = r.properties(&to(), Some("m-1"));
        assert_eq!(
            header(&p, headers::STATUS),
            &AMQPValue::LongString("shed".into())
        );
        assert_eq!(
            header(&p, headers::RETRY_AFTER),
            &AMQPValue::LongLongInt(12)
        );
        assert_eq!(header(&p, headers::COLD_START), &AMQPValue::Boolean(true));
        assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), "c-1");
        assert_eq!(p.message_id().as_ref().unwrap().as_str(), "m-1");
        assert_eq!(*p.delivery_mode(), Some(2));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["status"], "shed");
    }

    #[test]
    fn a_kept_reply_reads_back_the_same() {
        let ran = Reply {
            status: ReplyStatus::Http(503),
            body: Bytes::from_static(b"line one\nline two \xff"),
            content_type: Some("text/plain".into()),
            reason: Some("instance i-1 answered HTTP 503".into()),
            instance: Some("i-1".into()),
            queue_ms: Some(12),
            cold_start: true,
            retry_after: None,
        };
        let back = Reply::decode(&ran.encode()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{ran:?}"));
        let shed = Reply::shed("over the limit", 30, false);
        let back = Reply::decode(&shed.encode()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{shed:?}"));
        assert!(Reply::decode(b"not a reply").is_none());
    }
}
