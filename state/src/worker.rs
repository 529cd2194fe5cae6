//! Operations only the queue worker needs, kept apart from the modules the control
//! plane's functions share.
//!
//! - [`Store::record_requests`]: many `(service ms, latency ms)` samples in one round
//!   trip (the worker batches them once a second instead of one write per request).
//! - [`Store::try_signal`]: at most one signal of a kind per interval per deployment,
//!   across all workers (the `pressure` control event); `activation` keeps its own key
//!   through [`Store::try_activation`].

use std::time::Duration;

use redis::{AsyncCommands, SetExpiry, SetOptions};

use crate::{Result, Store, keys};

/// Rate-limit marker of one kind of worker signal. Spelled here rather than in
/// [`keys`] because only the worker writes or reads it.
fn signal_key(deployment: &str, kind: &str) -> String {
    format!("scale0:{{{deployment}}}:signal:{kind}")
}

/// Samples kept per list, as [`Store::record_request`] keeps them.
const REQUEST_SAMPLES: isize = 500;

impl Store {
    /// Record many served requests at once: `(service_ms, latency_ms)` each, oldest
    /// first, into the same capped lists as [`Store::record_request`].
    pub async fn record_requests(&self, deployment: &str, samples: &[(u64, u64)]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let tail = &samples[samples.len().saturating_sub(REQUEST_SAMPLES as usize)..];
        let (s, l) = (keys::service_ms(deployment), keys::latency_ms(deployment));
        let service: Vec<u64> = tail.iter().map(|x| x.0).collect();
        let latency: Vec<u64> = tail.iter().map(|x| x.1).collect();
        let _: () = redis::pipe()
            .lpush(&s, service)
            .ltrim(&s, 0, REQUEST_SAMPLES - 1)
            .lpush(&l, latency)
            .ltrim(&l, 0, REQUEST_SAMPLES - 1)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// True if this caller may send a `kind` signal for `deployment` now: at most one
    /// per `interval` across all workers.
    pub async fn try_signal(
        &self,
        deployment: &str,
        kind: &str,
        interval: Duration,
    ) -> Result<bool> {
        let opts = SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(SetExpiry::PX(interval.as_millis().max(1) as u64));
        let set: Option<String> = self
            .conn()
            .set_options(signal_key(deployment, kind), 1, opts)
            .await?;
        Ok(set.is_some())
    }
}
