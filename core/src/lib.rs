//! # scale0-core
//!
//! The pure heart of scale0: everything that decides, and nothing that does I/O.
//! No async, no clock reads, no network: time is always a parameter, so every
//! decision can be replayed, tested at a chosen instant and simulated.
//!
//! ```text
//! config ──▶ schedule ──┐
//!   │                   ▼
//!   └──────────▶ policy::decide(now, spec, observation, memory) ──▶ Decision
//!                       ▲
//! contract (headers, statuses, control events, registry records)
//! ```
//!
//! - [`duration`]: human durations (`"90s"`, `"5m"`) for configs.
//! - [`config`]: the one configuration schema (TOML for people, JSON for Lambda) and
//!   its validation, which names every field at fault.
//! - [`document`]: reading a TOML or JSON tree into schema types, every fault at once.
//! - [`schedule`]: EventBridge Scheduler expressions (`cron`, `rate`, `at`) in IANA time
//!   zones, and the scheduled floors and ceilings active at an instant.
//! - [`policy`]: `decide()` and the parts it composes.
//! - [`cost`]: the spend ledger's arithmetic, budget periods and the budget invariant.
//! - [`contract`]: the types every side of the wire shares.
//! - [`admission`]: the queue worker's shedding rules and wait estimate.
//! - [`percentile`]: the nearest-rank rule every reported percentile uses.
//! - [`worker`]: the queue worker's rules for one deployment (holding, admission,
//!   dispatch, expiry, coalescing, draining) as a state machine without I/O.

pub mod admission;
pub mod backoff;
pub mod config;
pub mod contract;
pub mod cost;
pub mod document;
pub mod duration;
pub mod percentile;
pub mod policy;
pub mod rng;
pub mod schedule;
pub mod worker;
