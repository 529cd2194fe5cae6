//! The contracts every side of scale0 shares: AMQP names and headers, reply
//! statuses, control events and instance records.
//!
//! They live in `core` as plain serde types so producers, the worker, the functions
//! and the simulator agree on one definition (DESIGN.md, "Contracts").

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Direct exchange producers publish to, routing key = deployment name.
pub const REQUESTS_EXCHANGE: &str = "scale0.requests";
/// Dead-letter exchange for messages that cannot be answered.
pub const DEAD_LETTER_EXCHANGE: &str = "scale0.dead";
/// Queue bound to the dead-letter exchange, so dead letters are kept for a person.
pub const DEAD_LETTER_QUEUE: &str = "scale0.dead";
/// Queue of control events from workers to the scaler.
pub const CONTROL_QUEUE: &str = "scale0.control";
/// Topic exchange workers publish control events to, routing key
/// [`control_routing_key`]. It is bound to [`CONTROL_QUEUE`] with `#`, so the queue
/// receives every event, and an observer (a test, a dashboard) can bind a queue of its
/// own to one deployment's events without taking them from the scaler.
pub const CONTROL_EXCHANGE: &str = "scale0.control";
/// Alternate exchange of [`REQUESTS_EXCHANGE`] (fanout): a request whose routing key
/// names no deployment lands in [`UNROUTED_QUEUE`], where a worker dead-letters it
/// with the reason `unknown deployment`, instead of the broker dropping it.
pub const UNROUTED_EXCHANGE: &str = "scale0.unrouted";
pub const UNROUTED_QUEUE: &str = "scale0.unrouted";
/// Highest request priority; request queues are declared with `x-max-priority` 9.
pub const MAX_PRIORITY: u8 = 9;

/// Routing key of a control event on [`CONTROL_EXCHANGE`]: `<deployment>.<type>`.
pub fn control_routing_key(deployment: &str, kind: &str) -> String {
    format!("{deployment}.{kind}")
}

/// The queue holding one deployment's requests.
pub fn request_queue(deployment: &str) -> String {
    format!("scale0.{deployment}")
}

/// Header names on requests and replies.
pub mod headers {
    /// Request: absolute deadline, milliseconds since the Unix epoch.
    pub const DEADLINE: &str = "x-scale0-deadline";
    /// Reply: [`super::ReplyStatus`].
    pub const STATUS: &str = "x-scale0-status";
    /// Reply and dead letter: why, in words.
    pub const REASON: &str = "x-scale0-reason";
    /// Reply: milliseconds between the worker receiving the request and dispatching it.
    pub const QUEUE_MS: &str = "x-scale0-queue-ms";
    /// Reply: `true` when the request waited for an instance to boot.
    pub const COLD_START: &str = "x-scale0-cold-start";
    /// Reply: the instance that served it.
    pub const INSTANCE: &str = "x-scale0-instance";
    /// Reply to a shed request: seconds after which a retry may succeed.
    pub const RETRY_AFTER: &str = "retry-after";
    /// Dead letter: the deployment the message was addressed to.
    pub const DEPLOYMENT: &str = "x-scale0-deployment";
}

/// The terminal outcome a producer reads from `x-scale0-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReplyStatus {
    /// The instance answered 2xx; the body is its body.
    Ok,
    /// The instance answered with this non-2xx HTTP status.
    Http(u16),
    /// Not run: capacity cannot come in time. Carries `retry-after`.
    Shed,
    /// Not run: the deadline passed before an instance could take it.
    Expired,
    /// Run attempts failed (connection errors, timeouts) until the deadline.
    Failed,
    /// Not run: the request itself is unacceptable (for example its body is too large).
    Rejected,
}

impl ReplyStatus {
    /// Whether this reply ends the request (every status does; `Http(5xx)` is the
    /// instance's own answer and is passed on).
    pub fn is_success(self) -> bool {
        self == ReplyStatus::Ok
    }
}

impl fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyStatus::Ok => f.write_str("ok"),
            ReplyStatus::Http(code) => write!(f, "{code}"),
            ReplyStatus::Shed => f.write_str("shed"),
            ReplyStatus::Expired => f.write_str("expired"),
            ReplyStatus::Failed => f.write_str("failed"),
            ReplyStatus::Rejected => f.write_str("rejected"),
        }
    }
}

impl FromStr for ReplyStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ok" => ReplyStatus::Ok,
            "shed" => ReplyStatus::Shed,
            "expired" => ReplyStatus::Expired,
            "failed" => ReplyStatus::Failed,
            "rejected" => ReplyStatus::Rejected,
            other => match other.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => ReplyStatus::Http(code),
                _ => return Err(format!("unknown reply status `{other}`")),
            },
        })
    }
}

/// Lifecycle of an instance: `Requested → Booting → Ready → Draining → Terminated`,
/// with `Unhealthy` reachable from `Booting` and `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Asked of the provider; no machine seen yet.
    Requested,
    /// The machine exists; its readiness path has not answered 200 yet.
    Booting,
    /// Serving.
    Ready,
    /// Takes no new requests; stops when its in-flight requests finish or the drain
    /// timeout passes.
    Draining,
    /// Gone.
    Terminated,
    /// Failed health checks or dispatches; to be replaced.
    Unhealthy,
}

impl InstanceState {
    /// Requested, booting or ready: capacity that is here or on its way.
    pub fn is_capacity(self) -> bool {
        matches!(
            self,
            InstanceState::Requested | InstanceState::Booting | InstanceState::Ready
        )
    }

    pub fn is_booting(self) -> bool {
        matches!(self, InstanceState::Requested | InstanceState::Booting)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstanceState::Requested => "requested",
            InstanceState::Booting => "booting",
            InstanceState::Ready => "ready",
            InstanceState::Draining => "draining",
            InstanceState::Terminated => "terminated",
            InstanceState::Unhealthy => "unhealthy",
        })
    }
}

/// One instance in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Provider's id (EC2 instance id, or `local-<pool>-<n>`).
    pub id: String,
    pub deployment: String,
    pub pool: String,
    pub state: InstanceState,
    /// Base URL of the model server, once known (`http://10.0.3.7:8000`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Billing starts here.
    pub launched_at: DateTime<Utc>,
    #[serde(default)]
    pub ready_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub draining_since: Option<DateTime<Utc>>,
    /// Consecutive failed health checks or dispatches.
    #[serde(default)]
    pub failures: u32,
    /// When EC2 reclaims this Spot instance: its interruption warning plus the notice.
    /// Set when a ready instance is warned; it drains, but keeps taking requests until
    /// [`InstanceRecord::serves_until`] while its replacement boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_at: Option<DateTime<Utc>>,
}

impl InstanceRecord {
    /// Until when a draining Spot instance that was ready at its interruption warning
    /// still takes new requests: [`crate::cost::spot::STOP_DISPATCH_BEFORE_RECLAIM`]
    /// before its reclaim, so what it starts can finish. `None` for every other instance.
    pub fn serves_until(&self) -> Option<DateTime<Utc>> {
        match (self.state, self.reclaim_at) {
            (InstanceState::Draining, Some(at)) if self.ready_at.is_some() => {
                Some(at - crate::cost::spot::STOP_DISPATCH_BEFORE_RECLAIM)
            }
            _ => None,
        }
    }

    /// Whether a worker may start a request on it at `now`: it is ready, or it is a
    /// warned Spot instance before [`InstanceRecord::serves_until`].
    pub fn takes_requests(&self, now: DateTime<Utc>) -> bool {
        self.state == InstanceState::Ready || self.serves_until().is_some_and(|t| now < t)
    }
}

/// An event a worker sends the control plane on `scale0.control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlEvent {
    /// Unique per event; the scaler records it so a redelivery changes nothing.
    pub id: String,
    pub deployment: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: ControlEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ControlEventKind {
    /// A request arrived and no instance is ready or booting.
    Activation { held: u64 },
    /// Demand exceeds capacity by the burst threshold.
    Pressure { demand: u64, capacity: u64 },
    /// Dispatches to this instance failed repeatedly.
    InstanceFailed {
        instance: String,
        failures: u32,
        reason: String,
    },
    /// The control plane's own: a budget's spend reached one of its alert thresholds
    /// (once per period and threshold). For observers bound to `scale0.control`; the
    /// scaler that consumes it does nothing more.
    BudgetAlert {
        budget: String,
        /// The threshold reached, as a share of the limit.
        share: f64,
        spent_usd: f64,
        limit_usd: f64,
        /// The period's start (RFC 3339), or `rolling`.
        period: String,
    },
}

impl ControlEvent {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ControlEventKind::Activation { .. } => "activation",
            ControlEventKind::Pressure { .. } => "pressure",
            ControlEventKind::InstanceFailed { .. } => "instance-failed",
            ControlEventKind::BudgetAlert { .. } => "budget-alert",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_status_round_trips() {
        for s in ["ok", "shed", "expired", "failed", "rejected", "503", "404"] {
            assert_eq!(s.parse::<ReplyStatus>().unwrap().to_string(), s);
        }
        assert!("700".parse::<ReplyStatus>().is_err());
        assert!("OK".parse::<ReplyStatus>().is_err());
    }

    #[test]
    fn control_event_wire_shape() {
        let json = r#"{"id":"e1","deployment":"chat","at":"2026-01-01T00:00:00Z","type":"activation","held":3}"#;
        let e: ControlEvent = serde_json::from_str(json).unwrap();
        assert_eq!(e.kind, ControlEventKind::Activation { held: 3 });
        assert_eq!(e.kind_name(), "activation");
        let back: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
