//! Spot interruptions: the warnings EC2 sent about a pool's instances, per deployment
//! and pool (`interruptions:<pool>`, a zset of instance id → ms of the warning). One
//! member per instance, so a repeated or redelivered warning counts once. The spend
//! ledger accrues the pool's exposure (instance-hours), and the snapshot turns both
//! into the pool's interruption rate (`scale0_core::cost::spot`).

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use crate::{Result, Store, keys};

/// Warnings are kept two days (the rate looks back one).
const KEEP_MS: i64 = 2 * 86_400_000;

impl Store {
    /// Record that `instance` of `pool` got an interruption warning at `at`. True the
    /// first time for that instance.
    pub async fn record_interruption(
        &self,
        deployment: &str,
        pool: &str,
        instance: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let key = keys::interruptions(deployment, pool);
        let ms = at.timestamp_millis();
        let (added, _, _): (i64, i64, i64) = redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg("NX")
            .arg(ms)
            .arg(instance)
            .zrembyscore(&key, "-inf", ms - KEEP_MS)
            .expire(&key, KEEP_MS / 1000)
            .query_async(&mut self.conn())
            .await?;
        Ok(added == 1)
    }

    /// Warnings for `pool` since `since`.
    pub async fn interruptions_since(
        &self,
        deployment: &str,
        pool: &str,
        since: DateTime<Utc>,
    ) -> Result<u64> {
        let n: u64 = self
            .conn()
            .zcount(
                keys::interruptions(deployment, pool),
                since.timestamp_millis(),
                "+inf",
            )
            .await?;
        Ok(n)
    }
}
