//! Signals between the scaler and the workers.
//!
//! - `cap`: the last decision's [`Cap`] — capacity the deployment needs but cannot
//!   get. Workers shed instead of holding requests for it. It expires after ten
//!   minutes so a stopped scaler cannot leave a deployment shedding forever.
//! - `unavailable`: pools the provider cannot launch into until a time (insufficient
//!   capacity, quota, throttling); the next decision launches elsewhere.
//! - `gpu-utilization`: the latest GPU utilisation a metric source reported, with a
//!   short expiry.
//! - `activation`: a short-lived marker that rate-limits activation events per
//!   deployment across all workers.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, SetExpiry, SetOptions};
use scale0_core::policy::Cap;

use crate::{Result, Store, json, keys, parse};

const CAP_TTL_SECS: u64 = 600;

impl Store {
    pub async fn set_cap(&self, deployment: &str, cap: Option<&Cap>) -> Result<()> {
        let mut c = self.conn();
        let key = keys::cap(deployment);
        let _: () = match cap {
            Some(cap) => c.set_ex(key, json(cap), CAP_TTL_SECS).await?,
            None => c.del(key).await?,
        };
        Ok(())
    }

    pub async fn cap(&self, deployment: &str) -> Result<Option<Cap>> {
        let key = keys::cap(deployment);
        let raw: Option<String> = self.conn().get(&key).await?;
        raw.map(|r| parse(&key, &r)).transpose()
    }

    pub async fn set_pool_unavailable(
        &self,
        deployment: &str,
        pool: &str,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let _: () = self
            .conn()
            .hset(
                keys::unavailable(deployment),
                pool,
                until.timestamp_millis(),
            )
            .await?;
        Ok(())
    }

    /// Pools unavailable after `now`; expired entries are dropped.
    pub async fn unavailable_pools(
        &self,
        deployment: &str,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let key = keys::unavailable(deployment);
        let all: Vec<(String, i64)> = self.conn().hgetall(&key).await?;
        let mut out = BTreeMap::new();
        for (pool, ms) in all {
            match DateTime::from_timestamp_millis(ms).filter(|until| *until > now) {
                Some(until) => {
                    out.insert(pool, until);
                }
                None => {
                    let _: () = self.conn().hdel(&key, &pool).await?;
                }
            }
        }
        Ok(out)
    }

    /// The latest mean GPU utilisation (0–1) a metric source reported (a CloudWatch
    /// alarm's datapoint), kept for `ttl` so ticks between alarms still see it.
    pub async fn set_gpu_utilization(
        &self,
        deployment: &str,
        value: f64,
        ttl: Duration,
    ) -> Result<()> {
        let _: () = self
            .conn()
            .pset_ex(
                keys::gpu_utilization(deployment),
                value,
                ttl.as_millis().max(1) as u64,
            )
            .await?;
        Ok(())
    }

    pub async fn gpu_utilization(&self, deployment: &str) -> Result<Option<f64>> {
        Ok(self.conn().get(keys::gpu_utilization(deployment)).await?)
    }

    /// True if this caller may send an activation event now (at most one per
    /// `interval` per deployment, across all workers).
    pub async fn try_activation(&self, deployment: &str, interval: Duration) -> Result<bool> {
        let opts = SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(interval.as_millis().max(1) as u64));
        let set: Option<String> = self
            .conn()
            .set_options(keys::activation(deployment), 1, opts)
            .await?;
        Ok(set.is_some())
    }
}
