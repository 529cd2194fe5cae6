//! Reading a delivery into a [`Request`], or saying why it cannot be answered.
//!
//! The deadline is the earliest of the `x-scale0-deadline` header (absolute, ms since
//! the epoch) and `expiration` (RabbitMQ's per-message TTL, relative: counted from the
//! `timestamp` property when the producer set one, else from receipt); with neither,
//! the deployment's `request_deadline` from receipt (so a redelivered request without
//! a deadline of its own starts a new one). Every deadline is also clamped to
//! receipt + the broker's `consumer_timeout` − 30 s, because RabbitMQ closes a channel
//! that holds a delivery unacked longer than its consumer timeout.

use hyper::body::Bytes;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};
use scale0_core::config::Deployment;
use scale0_core::contract::{MAX_PRIORITY, headers};

/// A request the worker can answer.
#[derive(Debug, Clone)]
pub struct Request {
    pub deployment: String,
    /// Shared, not copied, by every attempt's POST.
    pub body: Bytes,
    pub reply_to: ShortString,
    pub correlation_id: Option<ShortString>,
    /// The idempotency key.
    pub message_id: Option<String>,
    /// 0–9; higher is served first and shed last.
    pub priority: u8,
    /// Absolute, ms since the epoch.
    pub deadline_ms: i64,
    pub content_type: Option<ShortString>,
    /// `delivery_mode` 2: the reply is persistent too.
    pub persistent: bool,
    /// When this worker received it, ms since the epoch.
    pub received_ms: i64,
    pub redelivered: bool,
    /// As delivered, for a dead letter if the reply cannot be routed.
    pub properties: BasicProperties,
}

/// Why a message cannot be answered; it is dead-lettered with [`Invalid::reason`] in
/// `x-scale0-reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// A short label for metrics: `no_reply_to`, `unknown_deployment`, `bad_headers`,
    /// `too_large`, `unroutable_reply`.
    pub kind: &'static str,
    pub reason: String,
}

impl Invalid {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Invalid {
            kind,
            reason: reason.into(),
        }
    }
}

/// An integer header, from any integer AMQP type or a decimal string.
fn header_int(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// Read a delivery addressed to `spec`. `consumer_timeout_ms` bounds every deadline.
/// A message that cannot be answered comes back with its body, for the dead letter.
pub fn parse(
    spec: &Deployment,
    properties: BasicProperties,
    body: Vec<u8>,
    redelivered: bool,
    now_ms: i64,
    consumer_timeout_ms: i64,
) -> Result<Request, Box<Rejected>> {
    match check(spec, &properties, body.len(), now_ms, consumer_timeout_ms) {
        Ok(checked) => Ok(Request {
            deployment: spec.name.clone(),
            body: Bytes::from(body),
            reply_to: checked.reply_to,
            correlation_id: properties.correlation_id().clone(),
            message_id: properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_string())
                .filter(|m| !m.is_empty()),
            priority: properties.priority().map_or(0, |p| p.min(MAX_PRIORITY)),
            deadline_ms: checked.deadline_ms,
            content_type: properties.content_type().clone(),
            persistent: *properties.delivery_mode() == Some(2),
            received_ms: now_ms,
            redelivered,
            properties,
        }),
        Err(invalid) => Err(Box::new(Rejected {
            invalid,
            properties,
            body,
        })),
    }
}

/// A message that cannot be answered, given back whole for its dead letter.
#[derive(Debug)]
pub struct Rejected {
    pub invalid: Invalid,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

struct Checked {
    reply_to: ShortString,
    deadline_ms: i64,
}

fn check(
    spec: &Deployment,
    properties: &BasicProperties,
    body_len: usize,
    now_ms: i64,
    consumer_timeout_ms: i64,
) -> Result<Checked, Invalid> {
    let reply_to = match properties.reply_to() {
        Some(r) if !r.as_str().is_empty() => r.clone(),
        _ => {
            return Err(Invalid::new(
                "no_reply_to",
                "no reply_to: nowhere to answer",
            ));
        }
    };
    if body_len > spec.max_body_bytes as usize {
        return Err(Invalid::new(
            "too_large",
            format!(
                "body of {body_len} bytes exceeds max_body_bytes {}",
                spec.max_body_bytes
            ),
        ));
    }

    let mut deadline_ms = now_ms.saturating_add(spec.request_deadline.0.as_millis() as i64);
    let mut explicit = false;
    if let Some(table) = properties.headers()
        && let Some(value) = table.inner().get(headers::DEADLINE)
    {
        match header_int(value) {
            Some(ms) if ms > 0 => {
                deadline_ms = ms;
                explicit = true;
            }
            _ => {
                return Err(Invalid::new(
                    "bad_headers",
                    format!(
                        "{} must be an absolute time in ms since the epoch, got {value:?}",
                        headers::DEADLINE
                    ),
                ));
            }
        }
    }
    if let Some(expiration) = properties.expiration() {
        let ttl: i64 = expiration.as_str().trim().parse().map_err(|_| {
            Invalid::new(
                "bad_headers",
                format!("expiration `{expiration}` is not a number of milliseconds"),
            )
        })?;
        let from = match properties.timestamp() {
            // Seconds; never count from a producer clock ahead of ours.
            Some(ts) => i64::try_from(*ts)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .min(now_ms),
            None => now_ms,
        };
        let by_ttl = from.saturating_add(ttl.max(0));
        deadline_ms = if explicit {
            deadline_ms.min(by_ttl)
        } else {
            by_ttl
        };
    }
    deadline_ms = deadline_ms.min(now_ms.saturating_add(consumer_timeout_ms - 30_000));

    Ok(Checked {
        reply_to,
        deadline_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldTable, LongString};
    use scale0_core::config::Config;

    const CONFIG: &str = r#"
        [[deployments]]
        name = "chat"
        request_deadline = "60s"
        max_body_bytes = 10
        [[deployments.pools]]
        name = "a10g"
        max_instances = 2
        slots = 4
        price_per_hour_usd = 1.0
        boot_time = "30s"
    "#;
    const NOW: i64 = 1_800_000_000_000;
    const TIMEOUT: i64 = 1_800_000;

    fn spec() -> Deployment {
        Config::load(CONFIG).unwrap().deployments.remove(0)
    }

    fn props() -> BasicProperties {
        BasicProperties::default().with_reply_to("replies".into())
    }

    fn with_header(p: BasicProperties, value: AMQPValue) -> BasicProperties {
        let mut t = FieldTable::default();
        t.insert(headers::DEADLINE.into(), value);
        p.with_headers(t)
    }

    fn parse_ok(p: BasicProperties) -> Request {
        parse(&spec(), p, b"{}".to_vec(), false, NOW, TIMEOUT).unwrap()
    }

    fn parse_err(p: BasicProperties, body: &[u8]) -> Invalid {
        parse(&spec(), p, body.to_vec(), false, NOW, TIMEOUT)
            .unwrap_err()
            .invalid
    }

    #[test]
    fn deadlines() {
        // None given: the deployment's request_deadline.
        assert_eq!(parse_ok(props()).deadline_ms, NOW + 60_000);
        // The header, of any integer type or a decimal string.
        for v in [
            AMQPValue::LongLongInt(NOW + 5_000),
            AMQPValue::Timestamp((NOW + 5_000) as u64),
            AMQPValue::LongString(LongString::from(format!("{}", NOW + 5_000))),
        ] {
            assert_eq!(parse_ok(with_header(props(), v)).deadline_ms, NOW + 5_000);
        }
        // expiration counts from receipt, or from the producer's timestamp.
        let p = props().with_expiration("2000".into());
        assert_eq!(parse_ok(p.clone()).deadline_ms, NOW + 2_000);
        let stamped = p.clone().with_timestamp((NOW / 1000 - 1) as u64);
        assert_eq!(parse_ok(stamped).deadline_ms, NOW + 1_000);
        // Both: the earlier wins.
        let both = with_header(p, AMQPValue::LongLongInt(NOW + 500));
        assert_eq!(parse_ok(both).deadline_ms, NOW + 500);
        // A far deadline is clamped under the consumer timeout.
        let far = with_header(props(), AMQPValue::LongLongInt(NOW + 10 * TIMEOUT));
        assert_eq!(parse_ok(far).deadline_ms, NOW + TIMEOUT - 30_000);
    }

    #[test]
    fn fields() {
        let p = props()
            .with_priority(200)
            .with_message_id("m-1".into())
            .with_correlation_id("c-1".into())
            .with_delivery_mode(2);
        let r = parse_ok(p);
        assert_eq!(r.priority, 9);
        assert_eq!(r.message_id.as_deref(), Some("m-1"));
        assert_eq!(r.correlation_id.as_ref().map(|c| c.as_str()), Some("c-1"));
        assert!(r.persistent);
        assert_eq!(r.reply_to.as_str(), "replies");
    }

    #[test]
    fn unanswerable_messages_say_why() {
        let cases: Vec<(&str, BasicProperties, &[u8], &str)> = vec![
            (
                "no reply_to",
                BasicProperties::default(),
                b"{}",
                "no_reply_to",
            ),
            (
                "empty reply_to",
                BasicProperties::default().with_reply_to("".into()),
                b"{}",
                "no_reply_to",
            ),
            ("too large", props(), b"01234567890", "too_large"),
            (
                "deadline not a number",
                with_header(props(), AMQPValue::LongString("tomorrow".into())),
                b"{}",
                "bad_headers",
            ),
            (
                "deadline of a wrong type",
                with_header(props(), AMQPValue::Boolean(true)),
                b"{}",
                "bad_headers",
            ),
            (
                "negative deadline",
                with_header(props(), AMQPValue::LongLongInt(-5)),
                b"{}",
                "bad_headers",
            ),
            (
                "expiration not a number",
                props().with_expiration("soon".into()),
                b"{}",
                "bad_headers",
            ),
        ];
        for (name, p, body, kind) in cases {
            let e = parse_err(p, body);
            assert_eq!(e.kind, kind, "{name}: {e:?}");
            assert!(!e.reason.is_empty());
        }
    }
}
