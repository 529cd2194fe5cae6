//! The instance provider port: the few operations the control plane needs from
//! whatever starts machines (CONVENTIONS.md §4: a narrow trait, hand-written fakes).
//!
//! Two styles of provider sit behind it:
//!
//! - **per instance** ([`local`]): [`Provider::start`] starts one instance for one
//!   `requested` placeholder, which the applier has claimed first so that two runs
//!   never start one placeholder twice;
//! - **by count** ([`asg`]): [`Provider::ensure_count`] sets the group's desired
//!   capacity to the number of instances the registry says the pool should have (an
//!   absolute value, so repeating it changes nothing); the instances the group starts
//!   are registered by the lifecycle handler or by [`crate::apply::reconcile`].
//!
//! Errors are typed ([`ProviderErrorKind`]) so the applier can mark a pool unavailable
//! for a backoff on throttling, insufficient capacity and quota errors, and the next
//! decision launches elsewhere.

pub mod asg;
pub mod fake;
pub mod local;

use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use scale0_core::config::{Deployment, Pool};
use scale0_core::contract::InstanceRecord;
use scale0_state::lifecycle::PendingLifecycleAction;

/// What kind of failure, so callers know whether to retry and what it says about
/// the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    /// The API rate-limited us.
    Throttled,
    /// The cloud has no capacity of this instance type here now.
    InsufficientCapacity,
    /// An account quota or a group's maximum size stops the launch.
    Quota,
    /// The group or instance does not exist (misconfiguration, or already gone).
    NotFound,
    /// A passing failure (network, 5xx, an activity in progress): retry.
    Transient,
    /// Anything else; retrying the same call will not help.
    Fatal,
}

impl ProviderErrorKind {
    /// Whether a pool that reported this should be skipped for a backoff.
    pub fn makes_pool_unavailable(self) -> bool {
        matches!(
            self,
            ProviderErrorKind::Throttled
                | ProviderErrorKind::InsufficientCapacity
                | ProviderErrorKind::Quota
                | ProviderErrorKind::NotFound
                | ProviderErrorKind::Fatal
        )
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ProviderErrorKind::Throttled | ProviderErrorKind::Transient
        )
    }
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderErrorKind::Throttled => "throttled",
            ProviderErrorKind::InsufficientCapacity => "insufficient capacity",
            ProviderErrorKind::Quota => "quota",
            ProviderErrorKind::NotFound => "not found",
            ProviderErrorKind::Transient => "transient",
            ProviderErrorKind::Fatal => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub message: String,
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            message: message.into(),
        }
    }
}

/// Map an AWS error code and/or message to a kind. Capacity failures of launches
/// arrive as text (scaling activity status messages, "EC2 Instance Launch
/// Unsuccessful" events), so the message is searched too.
pub fn classify(code: Option<&str>, message: &str) -> ProviderErrorKind {
    use ProviderErrorKind::*;
    let text = format!("{} {message}", code.unwrap_or_default()).to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "insufficientinstancecapacity",
        "insufficient capacity",
        "insufficientcapacity",
        "insufficienthostcapacity",
        "insufficientreservedinstancecapacity",
        "do not have sufficient",
        "spotmaxpricetoolow",
        "unfulfillable",
    ]) {
        return InsufficientCapacity;
    }
    if has(&[
        "throttl",
        "requestlimitexceeded",
        "rate exceeded",
        "toomanyrequests",
        "resourcecontention",
        "slowdown",
    ]) {
        return Throttled;
    }
    if has(&[
        "limitexceeded",
        "vcpulimitexceeded",
        "instancelimitexceeded",
        "maxspotinstancecountexceeded",
        "quota",
        "exceeds the maximum",
        "max size",
    ]) {
        return Quota;
    }
    if has(&["not found", "notfound", "does not exist", "no such"]) {
        return NotFound;
    }
    if has(&[
        "scalingactivityinprogress",
        "internalfailure",
        "serviceunavailable",
        "internal error",
        "timeout",
        "timed out",
        "dispatch failure",
        "connection",
    ]) {
        return Transient;
    }
    Fatal
}

/// How an instance looks from the provider's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Launched, not in service yet (ASG `Pending`, a process not yet answering).
    Starting,
    /// In service as far as the provider knows (its readiness is the health sweep's
    /// business).
    Running,
    /// On its way out (ASG `Terminating*`, `Detaching`, `Standby`).
    Leaving,
}

/// One instance the provider runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInstance {
    pub id: String,
    pub status: ProviderStatus,
    pub endpoint: Option<String>,
    /// When the provider started it, if it says.
    pub launched_at: Option<DateTime<Utc>>,
}

/// An instance [`Provider::start`] started.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// Its id (the local provider keeps the placeholder's id).
    pub id: String,
    pub endpoint: Option<String>,
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// The port. Futures are boxed so handlers can hold `Arc<dyn Provider>` and choose the
/// provider from config at start-up.
pub trait Provider: Send + Sync + fmt::Debug {
    /// `local`, `aws-asg`, `fake`.
    fn kind(&self) -> &'static str;

    /// Whether [`Provider::start`] launches instances one by one (true), or
    /// [`Provider::ensure_count`] does it by count (false).
    fn launches_each(&self) -> bool;

    /// The instances the provider runs for one pool.
    fn list<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
    ) -> BoxFuture<'a, ProviderResult<Vec<ProviderInstance>>>;

    /// Start one instance for `placeholder` (a claimed `requested` record). Providers
    /// that launch by count return `Ok(None)`.
    fn start<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        placeholder: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<Option<Started>>>;

    /// Make the pool's group run `wanted` instances; returns what it could set (less
    /// than `wanted` when the group's maximum is lower). Per-instance providers return
    /// `wanted`.
    fn ensure_count<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        wanted: u32,
    ) -> BoxFuture<'a, ProviderResult<u32>>;

    /// Stop one instance for good, after its drain, lowering the group's count by one.
    /// Stopping an instance that is already gone succeeds.
    fn stop<'a>(
        &'a self,
        spec: &'a Deployment,
        instance: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<()>>;

    /// Let a waiting lifecycle action proceed (`CONTINUE`). Providers without
    /// lifecycle hooks succeed at once.
    fn complete_lifecycle_action<'a>(
        &'a self,
        action: &'a PendingLifecycleAction,
    ) -> BoxFuture<'a, ProviderResult<()>>;

    /// The base URL of an instance the provider started elsewhere (an ASG instance
    /// seen in a lifecycle event), if the provider can tell from its id.
    fn endpoint_for(&self, instance_id: &str) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::ProviderErrorKind::*;
    use super::classify;

    #[test]
    fn aws_errors_are_classified() {
        let cases = [
            (Some("Throttling"), "Rate exceeded", Throttled),
            (
                Some("ResourceContention"),
                "You already have a pending update to an Auto Scaling resource",
                Throttled,
            ),
            (
                None,
                "Launching a new EC2 instance. Status Reason: We currently do not have \
                 sufficient g5.xlarge capacity in the Availability Zone you requested. \
                 Launching EC2 instance failed.",
                InsufficientCapacity,
            ),
            (
                Some("InsufficientInstanceCapacity"),
                "",
                InsufficientCapacity,
            ),
            (
                None,
                "You have requested more vCPU capacity than your current vCPU limit of 0 \
                 allows. VcpuLimitExceeded",
                Quota,
            ),
            (Some("LimitExceeded"), "", Quota),
            (
                Some("ValidationError"),
                "AutoScalingGroup name not found - scale0-chat-a10g",
                NotFound,
            ),
            (
                Some("ScalingActivityInProgress"),
                "Scaling activity in progress",
                Transient,
            ),
            (None, "dispatch failure: connection refused", Transient),
            (Some("AccessDenied"), "not authorized", Fatal),
        ];
        for (code, message, kind) in cases {
            assert_eq!(classify(code, message), kind, "{code:?} {message}");
        }
    }
}
