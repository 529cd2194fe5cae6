//! # scale0-functions
//!
//! The control plane: the event handlers that turn events into capacity, and the
//! instance providers that start and stop instances. In AWS each handler is a Lambda
//! function (the binaries in `src/bin/`, a few lines each); locally the same handlers
//! are called by `scale0 local` and by the tests. The AWS SDK lives here and nowhere
//! else in the workspace.
//!
//! ```text
//!  EventBridge tick ─┐
//!  CloudWatch alarm ─┼─▶ scaler ──▶ health sweep, reconcile (tick only)
//!  scale0.control ───┘     │        observe (Redis + queue depth) ─▶ core::decide
//!  Scheduler ─▶ scheduler ─┘        fenced commit (Redis) ─▶ apply ─▶ Provider
//!  ASG lifecycle, EC2 state ─▶ lifecycle ─▶ registry (adopt, drain, terminated)
//!                                           └▶ complete lifecycle action
//!  Spot warning, rebalance ──▶ lifecycle ─▶ drain, record interruption ─▶ scaler
//!  AWS Budgets (SNS) ─▶ budget ─▶ ledger (reported spend, tightens a cap)
//! ```
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`events`] | the trigger events, parsed from the JSON Lambda delivers into `aws_lambda_events` types |
//! | [`scaler`] | the scaler handler: observe, decide, commit under the fence, apply |
//! | [`scheduler`] | the EventBridge Scheduler handler: validates the action, wakes the scaler |
//! | [`lifecycle`] | EC2 Auto Scaling lifecycle actions and EC2 state changes → registry |
//! | [`spot`] | Spot interruption warnings and rebalance recommendations: drain at once, record, replace now |
//! | [`health`] | the health sweep: readiness probes mark instances ready or count failures |
//! | [`apply`] | reconciling the registry with the provider, and applying a decision to it |
//! | [`provider`] | the [`provider::Provider`] port: [`provider::local`] processes, [`provider::asg`] EC2 Auto Scaling, [`provider::fake`] for tests |
//! | [`broker`] | queue depth by AMQP passive declare; the control plane's own control events |
//! | [`budget`] | budget alerts, and the `scale0-budget` handler for AWS Budgets notifications (SNS) |
//! | [`deps`] | what a handler needs ([`Deps`]): config, store, provider, broker, clock |
//! | [`runtime`] | the Lambda edge: config from the environment or SSM, JSON logs, `lambda_runtime` |
//!
//! Every handler is `async fn(event, &Deps) -> Result<Outcome, HandlerError>`: tests
//! call them directly with fixture events (`tests/fixtures/`), against real Redis and
//! RabbitMQ. Time comes from [`Deps::clock`], so tests pick the instant.

pub mod apply;
pub mod broker;
pub mod budget;
pub mod deps;
pub mod events;
pub mod health;
pub mod lifecycle;
pub mod provider;
pub mod runtime;
pub mod scaler;
pub mod scheduler;
pub mod spot;

pub use deps::{Clock, Deps, HandlerSettings};

use scale0_state::StateError;

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is not one this handler takes, or is malformed. Retrying cannot help.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The event names something the configuration does not have. Retrying cannot help.
    #[error("unknown {what} `{name}`")]
    Unknown { what: &'static str, name: String },
    /// Redis failed or held a corrupt value.
    #[error("state store: {0}")]
    State(#[from] StateError),
    /// The broker could not be asked for a queue depth.
    #[error("broker: {0}")]
    Broker(#[from] broker::BrokerError),
    #[error("provider: {0}")]
    Provider(#[from] provider::ProviderError),
    /// Some deployments failed; the others were handled (and will be recognised as
    /// duplicates when the event is retried).
    #[error("{} of {total} deployments failed: {}", failures.len(), failures.join("; "))]
    Partial { failures: Vec<String>, total: usize },
}

impl HandlerError {
    /// Whether delivering the event again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Malformed(_) | HandlerError::Unknown { .. } => false,
            HandlerError::State(e) => e.is_retryable(),
            HandlerError::Broker(_) | HandlerError::Partial { .. } => true,
            HandlerError::Provider(e) => e.kind.is_retryable(),
        }
    }
}

pub type Result<T, E = HandlerError> = std::result::Result<T, E>;
