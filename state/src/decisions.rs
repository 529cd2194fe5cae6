//! The decision log: a capped stream of every committed decision with its reasons,
//! for `scale0 explain` and for replaying what the control plane did.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use redis::streams::{StreamMaxlen, StreamRangeReply};
use scale0_core::policy::{Decision, Observation};
use serde::{Deserialize, Serialize};

use crate::{Result, StateError, Store, keys, parse};

/// Entries kept (approximately: Redis trims whole macro-nodes).
pub const DECISIONS_KEPT: usize = 1000;

/// A decision as logged, with the generation it committed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    pub generation: u64,
    pub decision: Decision,
    /// What it was decided from, when the committer logged it.
    pub observed: Option<ObservedSummary>,
}

/// The figures of an [`Observation`] a person wants next to a decision (the instance
/// list is left out: the decision's reasons name the instances that matter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedSummary {
    /// What woke the scaler: `tick`, `activation`, `alarm <name>`, `schedule <action>`...
    pub trigger: String,
    pub queue_depth: u64,
    pub held: u64,
    pub in_flight: u64,
    #[serde(default)]
    pub gpu_utilization: Option<f64>,
    #[serde(default)]
    pub latency_p95_ms: Option<f64>,
    #[serde(default)]
    pub mean_service_ms: Option<u64>,
    #[serde(default)]
    pub unavailable_pools: BTreeMap<String, DateTime<Utc>>,
}

impl ObservedSummary {
    pub fn new(trigger: impl Into<String>, obs: &Observation) -> Self {
        ObservedSummary {
            trigger: trigger.into(),
            queue_depth: obs.queue_depth,
            held: obs.held,
            in_flight: obs.in_flight,
            gpu_utilization: obs.gpu_utilization,
            latency_p95_ms: obs.latency_p95_ms,
            mean_service_ms: obs.mean_service_time.map(|d| d.as_millis() as u64),
            unavailable_pools: obs.unavailable_pools.clone(),
        }
    }
}

impl Store {
    /// Append a decision outside a fenced commit (the commit script logs its own).
    pub async fn log_decision(&self, generation: u64, decision: &Decision) -> Result<()> {
        let _: String = self
            .conn()
            .xadd_maxlen(
                keys::decisions(&decision.deployment),
                StreamMaxlen::Approx(DECISIONS_KEPT),
                "*",
                &[
                    ("generation", generation.to_string()),
                    ("decision", crate::json(decision)),
                ],
            )
            .await?;
        Ok(())
    }

    /// The last `n` decisions, newest first.
    pub async fn recent_decisions(
        &self,
        deployment: &str,
        n: usize,
    ) -> Result<Vec<LoggedDecision>> {
        let key = keys::decisions(deployment);
        let reply: StreamRangeReply = self.conn().xrevrange_count(&key, "+", "-", n).await?;
        reply
            .ids
            .iter()
            .map(|entry| {
                let field = |name: &str| -> Result<String> {
                    entry.get::<String>(name).ok_or_else(|| {
                        StateError::corrupt(
                            format!("{key}/{}", entry.id),
                            format!("missing {name}"),
                        )
                    })
                };
                Ok(LoggedDecision {
                    generation: field("generation")?
                        .parse()
                        .map_err(|e| StateError::corrupt(&key, e))?,
                    decision: parse(&key, &field("decision")?)?,
                    observed: entry
                        .get::<String>("observed")
                        .map(|raw| parse(&key, &raw))
                        .transpose()?,
                })
            })
            .collect()
    }
}
