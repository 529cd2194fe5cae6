//! Assembling what the scaler sees of a deployment from the store, in two round trips:
//! one pipeline for the registry and every counter, then one for the in-flight leases
//! of the instances it found.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use scale0_core::config::Deployment;
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::{Observation, ObservedInstance};

use crate::counters::{held_sum, mean_ms, p95};
use crate::{Result, Store, keys, parse};

/// A worker's held-count report older than this no longer counts (workers report
/// every second).
pub const HELD_STALE_AFTER: Duration = Duration::from_secs(15);

type Fetched = (
    Vec<(String, String)>,
    Vec<(String, String)>,
    Vec<u64>,
    Vec<u64>,
    Option<i64>,
    Vec<(String, i64)>,
    Option<f64>,
);

impl Store {
    /// Everything the store knows for `decide`. The broker's queue depth comes from
    /// elsewhere and is passed in.
    pub async fn observe(
        &self,
        spec: &Deployment,
        now: DateTime<Utc>,
        queue_depth: u64,
    ) -> Result<Observation> {
        let d = spec.name.as_str();
        let now_ms = now.timestamp_millis();
        let mut pipe = redis::pipe();
        pipe.hgetall(keys::instances(d))
            .hgetall(keys::held(d))
            .lrange(keys::latency_ms(d), 0, -1)
            .lrange(keys::service_ms(d), 0, -1)
            .get(keys::last_arrival(d))
            .hgetall(keys::unavailable(d))
            .get(keys::gpu_utilization(d));
        for p in &spec.pools {
            pipe.lrange(keys::boots(d, &p.name), 0, -1);
        }
        // The first seven replies have fixed types; the boot lists follow.
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let boots: Vec<redis::Value> = replies.split_off(7);
        let (raw_instances, held, latency, service, last_arrival, unavailable, gpu): Fetched =
            redis::FromRedisValue::from_redis_value(redis::Value::Array(replies))
                .map_err(redis::RedisError::from)?;

        let key = keys::instances(d);
        let mut records = raw_instances
            .iter()
            .map(|(id, raw)| parse(&format!("{key}/{id}"), raw))
            .collect::<Result<Vec<InstanceRecord>>>()?;
        records.retain(|r| r.state != InstanceState::Terminated);
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let in_flight = self.in_flight(d, &ids, now_ms).await?;
        let instances: Vec<ObservedInstance> = records
            .into_iter()
            .map(|record| ObservedInstance {
                in_flight: in_flight.get(&record.id).copied().unwrap_or(0),
                record,
            })
            .collect();

        let mut recent_boot_times = BTreeMap::new();
        for (pool, value) in spec.pools.iter().zip(boots) {
            let ms: Vec<u64> =
                redis::FromRedisValue::from_redis_value(value).map_err(redis::RedisError::from)?;
            if !ms.is_empty() {
                recent_boot_times.insert(
                    pool.name.clone(),
                    ms.into_iter().map(Duration::from_millis).collect(),
                );
            }
        }
        let unavailable_pools = unavailable
            .into_iter()
            .filter_map(|(pool, ms)| Some((pool, DateTime::from_timestamp_millis(ms)?)))
            .filter(|(_, until)| *until > now)
            .collect();
        Ok(Observation {
            queue_depth,
            held: held_sum(&held, now_ms, HELD_STALE_AFTER),
            in_flight: instances.iter().map(|i| u64::from(i.in_flight)).sum(),
            instances,
            gpu_utilization: gpu,
            latency_p95_ms: p95(latency),
            last_arrival_at: last_arrival.and_then(DateTime::from_timestamp_millis),
            mean_service_time: mean_ms(&service),
            recent_boot_times,
            unavailable_pools,
            // The scaler adds the ledger's view (`Store::ledger_snapshot`) and the
            // arrival bins the policy has not folded yet (`Store::arrivals`).
            cost: Default::default(),
            arrival_bins: Default::default(),
        })
    }
}
