//! Reading a delivery into a [`Request`], or saying why it cannot be answered.
//!
//! The deadline is the earliest of the `x-scale0-deadline` header (absolute: ms since
//! the epoch as an integer or a decimal string, or an AMQP timestamp, which counts
//! seconds) and `expiration` (RabbitMQ's per-message TTL, relative: counted from the
//! `timestamp` property when the producer set one, else from receipt); with neither,
//! the deployment's `request_deadline` from receipt (so a redelivered request without
//! a deadline of its own starts a new one). Every deadline is also clamped to
//! receipt + the broker's `consumer_timeout` − 30 s, because RabbitMQ closes a channel
//! that holds a delivery unacked longer than its consumer timeout.

use hyper::body::Bytes;
use lapin::BasicProperties;
use lapin::types::parsing::{MAX_NESTING, UNDECODED_KEY};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use scale0_core::config::Deployment;
use scale0_core::contract::{MAX_PRIORITY, headers};
use scale0_state::idempotency::ReplyAddress;

/// A request the worker can answer.
#[derive(Debug, Clone)]
pub struct Request {
    pub deployment: String,
    /// Shared, not copied, by every attempt's POST.
    pub body: Bytes,
    /// The idempotency key.
    pub message_id: Option<String>,
    /// 0–9; higher is served first and shed last.
    pub priority: u8,
    /// Absolute, ms since the epoch.
    pub deadline_ms: i64,
    pub content_type: Option<ShortString>,
    /// When this worker received it, ms since the epoch.
    pub received_ms: i64,
    pub redelivered: bool,
}

/// What one delivery of a request carries besides the request: where its reply goes,
/// and its properties as delivered (for a dead letter if that reply cannot be routed).
/// Copies of one request (same `message_id`) each have their own.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub reply: ReplyTo,
    pub properties: BasicProperties,
}

/// Where and how one delivery wants its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub queue: ShortString,
    pub correlation_id: Option<ShortString>,
    /// `delivery_mode` 2: the reply is persistent too.
    pub persistent: bool,
}

/// RabbitMQ's direct reply-to pseudo-queue (and the per-channel names it hands out).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

impl ReplyTo {
    /// The reply address of a message, if it has a `reply_to`.
    pub fn of(properties: &BasicProperties) -> Option<ReplyTo> {
        let queue = properties
            .reply_to()
            .clone()
            .filter(|r| !r.as_str().is_empty())?;
        Some(ReplyTo {
            queue,
            correlation_id: properties.correlation_id().clone(),
            persistent: *properties.delivery_mode() == Some(2),
        })
    }

    /// The address as the done record spells it.
    pub fn field(&self) -> String {
        ReplyAddress {
            reply_to: self.queue.as_str(),
            correlation_id: self.correlation_id.as_ref().map(|c| c.as_str()),
        }
        .field()
    }

    /// RabbitMQ's direct reply-to. RabbitMQ 3.10 returns a `mandatory` publish to it as
    /// unroutable (312 NO_ROUTE) although it delivers it, so replies to it are published
    /// without `mandatory`; a reply whose producer is gone is dropped by the broker.
    pub fn is_direct(&self) -> bool {
        self.queue.as_str().starts_with(DIRECT_REPLY_TO)
    }
}

/// Why a message cannot be answered; it is dead-lettered with [`Invalid::reason`] in
/// `x-scale0-reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: InvalidKind,
    pub reason: String,
}

/// What is wrong with a message, as the dead-letter metric labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// No `reply_to`: nobody to answer, so no rejection reply either.
    NoReplyTo,
    UnknownDeployment,
    BadHeaders,
    TooLarge,
    /// The broker returned the reply: its `reply_to` queue does not exist.
    UnroutableReply,
}

impl InvalidKind {
    /// The `reason` label of `scale0_worker_dead_letters_total`.
    pub fn label(self) -> &'static str {
        match self {
            InvalidKind::NoReplyTo => "no_reply_to",
            InvalidKind::UnknownDeployment => "unknown_deployment",
            InvalidKind::BadHeaders => "bad_headers",
            InvalidKind::TooLarge => "too_large",
            InvalidKind::UnroutableReply => "unroutable_reply",
        }
    }
}

impl Invalid {
    fn new(kind: InvalidKind, reason: impl Into<String>) -> Self {
        Invalid {
            kind,
            reason: reason.into(),
        }
    }
}

/// An absolute time in ms since the epoch, from any integer AMQP type or a decimal
/// string (ms), or an AMQP timestamp (seconds, as the type is defined; pika sends a
/// `datetime` as one).
fn header_ms(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::Timestamp(secs) => i64::try_from(*secs).ok()?.checked_mul(1000),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// A header value in words, for a rejection reason: `the text "tomorrow"`, `a table
/// of 2 entries`.
pub fn describe(value: &AMQPValue) -> String {
    fn text(s: &str) -> String {
        const SHOWN: usize = 64;
        match s.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("the text {:?}… ({} bytes)", &s[..cut], s.len()),
            None => format!("the text {s:?}"),
        }
    }
    match value {
        AMQPValue::Boolean(b) => format!("the boolean {b}"),
        AMQPValue::ShortShortInt(v) => format!("the integer {v}"),
        AMQPValue::ShortShortUInt(v) => format!("the integer {v}"),
        AMQPValue::ShortInt(v) => format!("the integer {v}"),
        AMQPValue::ShortUInt(v) => format!("the integer {v}"),
        AMQPValue::LongInt(v) => format!("the integer {v}"),
        AMQPValue::LongUInt(v) => format!("the integer {v}"),
        AMQPValue::LongLongInt(v) => format!("the integer {v}"),
        AMQPValue::Float(v) => format!("the number {v}"),
        AMQPValue::Double(v) => format!("the number {v}"),
        AMQPValue::DecimalValue(d) => format!("the decimal {} × 10^-{}", d.value, d.scale),
        AMQPValue::ShortString(s) => text(s.as_str()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(t) => text(t),
            Err(_) => format!("{} bytes that are not UTF-8 text", s.as_bytes().len()),
        },
        AMQPValue::FieldArray(a) => format!("an array of {} values", a.as_slice().len()),
        AMQPValue::Timestamp(secs) => format!("the timestamp {secs} (seconds since the epoch)"),
        AMQPValue::FieldTable(t) => format!("a table of {} entries", t.inner().len()),
        AMQPValue::ByteArray(b) => format!("a byte array of {} bytes", b.as_slice().len()),
        AMQPValue::Void => "an empty value (void)".to_string(),
    }
}

/// Why a message's headers were not decoded whole, if they were not: the AMQP client
/// (patched, `vendor/README.md`) keeps a table or array nested deeper than
/// `MAX_NESTING` as bytes under `UNDECODED_KEY`, and decodes a key that is not UTF-8
/// with U+FFFD in place of the bad bytes.
pub fn undecodable(headers: &FieldTable) -> Option<String> {
    // Iterative: whatever the depth, this walk cannot overflow the stack.
    let mut pending: Vec<&AMQPValue> = Vec::new();
    let mut table = Some(headers);
    loop {
        for (key, value) in table.take().map(FieldTable::inner).into_iter().flatten() {
            if key.as_str() == UNDECODED_KEY {
                return Some(format!(
                    "headers nest tables or arrays deeper than {MAX_NESTING} levels; \
                     the part beyond is kept undecoded under `{UNDECODED_KEY}`"
                ));
            }
            if key.as_str().contains(char::REPLACEMENT_CHARACTER) {
                return Some(format!("a header key is not UTF-8 (read as {key:?})"));
            }
            pending.push(value);
        }
        match pending.pop()? {
            AMQPValue::FieldTable(t) => table = Some(t),
            AMQPValue::FieldArray(a) => pending.extend(a.as_slice()),
            _ => {}
        }
    }
}

/// The property named `name` if its bytes were not UTF-8 (see [`undecodable`]).
fn not_utf8(name: &str, value: Option<&ShortString>) -> Option<String> {
    let value = value?.as_str();
    value
        .contains(char::REPLACEMENT_CHARACTER)
        .then(|| format!("{name} is not UTF-8 (read as {value:?})"))
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
) -> Result<(Request, Envelope), Box<Rejected>> {
    match check(spec, &properties, body.len(), now_ms, consumer_timeout_ms) {
        Ok(checked) => Ok((
            Request {
                deployment: spec.name.clone(),
                body: Bytes::from(body),
                message_id: properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str().to_string())
                    .filter(|m| !m.is_empty()),
                priority: properties.priority().map_or(0, |p| p.min(MAX_PRIORITY)),
                deadline_ms: checked.deadline_ms,
                content_type: properties.content_type().clone(),
                received_ms: now_ms,
                redelivered,
            },
            Envelope {
                reply: checked.reply,
                properties,
            },
        )),
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
    reply: ReplyTo,
    deadline_ms: i64,
}

fn check(
    spec: &Deployment,
    properties: &BasicProperties,
    body_len: usize,
    now_ms: i64,
    consumer_timeout_ms: i64,
) -> Result<Checked, Invalid> {
    let Some(reply) = ReplyTo::of(properties) else {
        return Err(Invalid::new(
            InvalidKind::NoReplyTo,
            "no reply_to: nowhere to answer",
        ));
    };
    if let Some(why) = properties
        .headers()
        .as_ref()
        .and_then(undecodable)
        .or_else(|| {
            not_utf8("reply_to", Some(&reply.queue))
                .or_else(|| not_utf8("correlation_id", properties.correlation_id().as_ref()))
                .or_else(|| not_utf8("message_id", properties.message_id().as_ref()))
        })
    {
        return Err(Invalid::new(InvalidKind::BadHeaders, why));
    }
    if body_len > spec.max_body_bytes as usize {
        return Err(Invalid::new(
            InvalidKind::TooLarge,
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
        match header_ms(value) {
            Some(ms) if ms > 0 => {
                deadline_ms = ms;
                explicit = true;
            }
            _ => {
                return Err(Invalid::new(
                    InvalidKind::BadHeaders,
                    format!(
                        "{} must be an absolute time (ms since the epoch, or an AMQP \
                         timestamp in seconds), got {}",
                        headers::DEADLINE,
                        describe(value)
                    ),
                ));
            }
        }
    }
    if let Some(expiration) = properties.expiration() {
        let ttl: i64 = expiration.as_str().trim().parse().map_err(|_| {
            Invalid::new(
                InvalidKind::BadHeaders,
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

    Ok(Checked { reply, deadline_ms })
}

#[cfg(test)]
mod tests;
