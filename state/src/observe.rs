//! Assembling what the scaler sees of a deployment from the store.

use std::time::Duration;

use chrono::{DateTime, Utc};
use scale0_core::config::Deployment;
use scale0_core::contract::InstanceState;
use scale0_core::policy::{Observation, ObservedInstance};

use crate::{Result, Store};

/// A worker's held-count report older than this no longer counts (workers report
/// every second).
pub const HELD_STALE_AFTER: Duration = Duration::from_secs(15);

impl Store {
    /// Everything the store knows for `decide`. The broker's queue depth and any GPU
    /// metric come from elsewhere and are passed in or set by the caller.
    pub async fn observe(
        &self,
        spec: &Deployment,
        now: DateTime<Utc>,
        queue_depth: u64,
    ) -> Result<Observation> {
        let d = spec.name.as_str();
        let now_ms = now.timestamp_millis();
        let records: Vec<_> = self
            .instances(d)
            .await?
            .into_iter()
            .filter(|r| r.state != InstanceState::Terminated)
            .collect();
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let in_flight = self.in_flight(d, &ids, now_ms).await?;
        let instances: Vec<ObservedInstance> = records
            .iter()
            .map(|r| ObservedInstance {
                in_flight: in_flight.get(&r.id).copied().unwrap_or(0),
                record: r.clone(),
            })
            .collect();
        let pools: Vec<&str> = spec.pools.iter().map(|p| p.name.as_str()).collect();
        Ok(Observation {
            queue_depth,
            held: self.held(d, now_ms, HELD_STALE_AFTER).await?,
            in_flight: instances.iter().map(|i| u64::from(i.in_flight)).sum(),
            instances,
            gpu_utilization: None,
            latency_p95_ms: self.latency_p95_ms(d).await?,
            last_arrival_at: self.last_arrival(d).await?,
            mean_service_time: self.mean_service_time(d).await?,
            recent_boot_times: self.recent_boots(d, &pools).await?,
            unavailable_pools: self.unavailable_pools(d, now).await?,
        })
    }
}
