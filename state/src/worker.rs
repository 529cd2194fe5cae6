//! Operations only the queue worker needs, kept apart from the modules the control
//! plane's functions share.
//!
//! - [`Store::record_requests`]: many `(service ms, latency ms)` samples in one round
//!   trip (the worker batches them once a second instead of one write per request).
//! - [`Store::try_signal`]: at most one signal of a kind per interval per deployment,
//!   across all workers (the `pressure` control event); `activation` keeps its own key
//!   through [`Store::try_activation`].
//! - [`Store::renew_slot`]: move a slot lease's expiry (and its request's claim). The worker takes leases for a
//!   short time and renews them while the request runs, so a worker that dies gives
//!   its slots back within that time instead of at the request's deadline.

use std::sync::LazyLock;
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

/// Moves the lease's expiry only if the lease still exists (an expired lease may
/// already have been purged and its slot taken by someone else), and the request's
/// claim with it while it is still this job's (ARGV[4], '' without a claim).
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[2]) - tonumber(ARGV[3]) + 60000
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
"#,
    )
});

impl Store {
    /// Extend the lease `token` on `instance` to `expires_ms`, and the claim of the
    /// request it serves (`message_id`, the job's claim, TTL from now) with it; false if
    /// the lease is gone.
    pub async fn renew_slot(
        &self,
        deployment: &str,
        instance: &str,
        token: &str,
        now_ms: i64,
        expires_ms: i64,
        claim: Option<(&str, &str, Duration)>,
    ) -> Result<bool> {
        let (message_id, owner, ttl) = claim.unwrap_or(("", "", Duration::ZERO));
        let renewed: i64 = RENEW
            .key(keys::inflight(deployment, instance))
            .key(keys::claim(deployment, message_id))
            .arg(token)
            .arg(expires_ms.max(now_ms + 1))
            .arg(now_ms)
            .arg(owner)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(renewed == 1)
    }

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
