//! In-flight requests per instance, as leases, so the slot limit holds across many
//! workers and survives a worker's crash.
//!
//! Each instance has a sorted set of lease tokens scored by their expiry (ms since the
//! epoch). Acquiring removes expired leases, then adds one only if fewer than `slots`
//! remain — atomically, in one script, so two workers can never both take the last
//! slot. A worker releases its lease when the request ends; if it dies first, the lease
//! expires at the request's deadline and the slot comes back by itself.
//!
//! [`Store::renew_slot`] moves a lease's expiry (and its request's claim): the worker
//! takes leases for a short time and renews them while the request runs, so a worker
//! that dies gives its slots back within that time instead of at the request's
//! deadline. The lease taken together with a request's claim, and the release written
//! with its done marker, are [`Store::lease_for`] and [`Store::finish_request`] in
//! `idempotency`, which share this module's lease script.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::AsyncCommands;

use crate::{Result, Store, keys};

/// `lease(key, now_ms, slots, token, expires_ms)`: purge expired leases, then add one
/// only below the slot limit; 1 if added. The key's own expiry (relative, so clocks
/// need not agree with Redis) only collects garbage after the instance is gone; it
/// only ever extends. Shared with the claimed lease of [`Store::lease_for`].
pub(crate) const LEASE_LUA: &str = r#"
local function lease(key, now, slots, token, expires)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(slots) then return 0 end
  redis.call('ZADD', key, expires, token)
  local ttl = tonumber(expires) - tonumber(now) + 60000
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  return 1
end
"#;

static ACQUIRE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{LEASE_LUA}\nreturn lease(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
    ))
});

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
    /// Take one of `slots` on `instance` until `expires_ms`, under `token`.
    pub async fn acquire_slot(
        &self,
        deployment: &str,
        instance: &str,
        slots: u32,
        token: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<bool> {
        let key = keys::inflight(deployment, instance);
        let acquired: i64 = ACQUIRE
            .key(&key)
            .arg(now_ms)
            .arg(slots)
            .arg(token)
            .arg(expires_ms.max(now_ms + 1))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(acquired == 1)
    }

    pub async fn release_slot(&self, deployment: &str, instance: &str, token: &str) -> Result<()> {
        let mut c = self.conn();
        let _: i64 = c.zrem(keys::inflight(deployment, instance), token).await?;
        Ok(())
    }

    /// Live leases on each of `instances`.
    pub async fn in_flight(
        &self,
        deployment: &str,
        instances: &[&str],
        now_ms: i64,
    ) -> Result<BTreeMap<String, u32>> {
        if instances.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for id in instances {
            pipe.zcount(keys::inflight(deployment, id), format!("({now_ms}"), "+inf");
        }
        let counts: Vec<u32> = pipe.query_async(&mut self.conn()).await?;
        Ok(instances
            .iter()
            .map(|id| id.to_string())
            .zip(counts)
            .collect())
    }

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
}
