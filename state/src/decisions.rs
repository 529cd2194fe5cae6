//! The decision log: a capped stream of every committed decision with its reasons,
//! for `scale0 explain` and for replaying what the control plane did.

use redis::AsyncCommands;
use redis::streams::{StreamMaxlen, StreamRangeReply};
use scale0_core::policy::Decision;

use crate::{Result, StateError, Store, keys, parse};

/// Entries kept (approximately: Redis trims whole macro-nodes).
pub const DECISIONS_KEPT: usize = 1000;

/// A decision as logged, with the generation it committed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    pub generation: u64,
    pub decision: Decision,
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
                })
            })
            .collect()
    }
}
