//! The instance registry: one hash per deployment, instance id → [`InstanceRecord`]
//! as JSON.
//!
//! Whole-record writes (`put`) come from whoever creates an instance. State changes go
//! through one Lua script that checks the current state first, so a late or repeated
//! event (a lifecycle notification delivered twice, a health probe racing a drain)
//! cannot move an instance backwards.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use scale0_core::contract::{InstanceRecord, InstanceState};
use std::sync::LazyLock;

use crate::{Result, Store, json, keys, parse};

/// Checks the state, applies it, stamps `ready_at` / `draining_since` the first time,
/// resets failures on ready, and sets the endpoint and a Spot reclaim time when given.
static TRANSITION: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {-1, ''} end
local rec = cjson.decode(raw)
if ARGV[4] ~= '' then
  local allowed = false
  for s in string.gmatch(ARGV[4], '[^,]+') do
    if rec.state == s then allowed = true end
  end
  if not allowed then return {0, raw} end
end
rec.state = ARGV[2]
if ARGV[2] == 'ready' then
  if rec.ready_at == nil or rec.ready_at == cjson.null then rec.ready_at = ARGV[3] end
  rec.failures = 0
end
if ARGV[2] == 'draining' and (rec.draining_since == nil or rec.draining_since == cjson.null) then
  rec.draining_since = ARGV[3]
end
if ARGV[5] ~= '' then rec.endpoint = ARGV[5] end
if ARGV[6] and ARGV[6] ~= '' then rec.reclaim_at = ARGV[6] end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
return {1, out}
"#,
    )
});

/// Adds `ARGV[2]` to the failure count (0 resets it) and returns the record.
static FAILURES: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local rec = cjson.decode(raw)
local n = tonumber(ARGV[2])
if n == 0 then rec.failures = 0 else rec.failures = (tonumber(rec.failures) or 0) + n end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
"#,
    )
});

/// Puts a real instance in the registry: it replaces a `requested` placeholder of its
/// pool (keeping the placeholder's `launched_at`, so boot time counts from the
/// request), or is added when the pool has none. An id already present is left alone,
/// so a repeated lifecycle event or a reconcile racing it adopts an instance once.
static ADOPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, '', existing} end
local best_id, best_at = false, false
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local rec = cjson.decode(all[i + 1])
  if rec.state == 'requested' and rec.pool == ARGV[3] then
    -- RFC 3339 strings of one writer compare in time order closely enough to pick
    -- an old placeholder; which one is replaced does not matter for correctness.
    if not best_id or rec.launched_at < best_at or (rec.launched_at == best_at and all[i] < best_id) then
      best_id, best_at = all[i], rec.launched_at
    end
  end
end
local rec = cjson.decode(ARGV[2])
if best_id then
  redis.call('HDEL', KEYS[1], best_id)
  rec.launched_at = best_at
end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
if best_id then return {1, best_id, out} end
return {2, '', out}
"#,
    )
});

/// Drops terminated records older than a bound: the ids in `terminated` scored at or
/// below `ARGV[1]`, if their record still says terminated.
static PURGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local n = 0
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw and cjson.decode(raw).state == 'terminated' then
    redis.call('HDEL', KEYS[1], id); n = n + 1
  end
  redis.call('ZREM', KEYS[2], id)
end
return n
"#,
    )
});

/// What [`Store::adopt_instance`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Adopted {
    /// Took the place of this `requested` placeholder.
    Replaced {
        placeholder: String,
        record: InstanceRecord,
    },
    /// The pool had no placeholder; added as new capacity.
    Added(InstanceRecord),
    /// Already registered; nothing changed.
    Existing(InstanceRecord),
}

impl Adopted {
    pub fn record(&self) -> &InstanceRecord {
        match self {
            Adopted::Replaced { record, .. }
            | Adopted::Added(record)
            | Adopted::Existing(record) => record,
        }
    }
}

/// Outcome of a guarded state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Applied(InstanceRecord),
    /// The instance was in a state the change does not apply to; nothing changed.
    Refused(InstanceRecord),
    NotFound,
}

impl Store {
    /// Insert or replace a record.
    pub async fn put_instance(&self, record: &InstanceRecord) -> Result<()> {
        let mut c = self.conn();
        let _: () = c
            .hset(
                keys::instances(&record.deployment),
                &record.id,
                json(record),
            )
            .await?;
        Ok(())
    }

    pub async fn remove_instance(&self, deployment: &str, id: &str) -> Result<bool> {
        let mut c = self.conn();
        let removed: u32 = c.hdel(keys::instances(deployment), id).await?;
        let _: () = c.del(keys::inflight(deployment, id)).await?;
        Ok(removed > 0)
    }

    pub async fn instance(&self, deployment: &str, id: &str) -> Result<Option<InstanceRecord>> {
        let mut c = self.conn();
        let key = keys::instances(deployment);
        let raw: Option<String> = c.hget(&key, id).await?;
        raw.map(|r| parse(&format!("{key}/{id}"), &r)).transpose()
    }

    /// Every record of the deployment, sorted by id.
    pub async fn instances(&self, deployment: &str) -> Result<Vec<InstanceRecord>> {
        let mut c = self.conn();
        let key = keys::instances(deployment);
        let all: Vec<(String, String)> = c.hgetall(&key).await?;
        let mut records = all
            .iter()
            .map(|(id, raw)| parse(&format!("{key}/{id}"), raw))
            .collect::<Result<Vec<InstanceRecord>>>()?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(records)
    }

    /// Move an instance to `to` if it is in one of `from` (any state when empty).
    pub async fn transition(
        &self,
        deployment: &str,
        id: &str,
        from: &[InstanceState],
        to: InstanceState,
        at: DateTime<Utc>,
        endpoint: Option<&str>,
    ) -> Result<Transition> {
        self.apply_transition(deployment, id, from, to, at, endpoint, None)
            .await
    }

    /// Drain a Spot instance warned at `at` that EC2 reclaims at `reclaim_at`, if it is
    /// in one of `from`; the record keeps the reclaim time, so a ready one goes on
    /// taking requests until `InstanceRecord::serves_until`.
    pub async fn drain_for_reclaim(
        &self,
        deployment: &str,
        id: &str,
        from: &[InstanceState],
        at: DateTime<Utc>,
        reclaim_at: DateTime<Utc>,
    ) -> Result<Transition> {
        let to = InstanceState::Draining;
        self.apply_transition(deployment, id, from, to, at, None, Some(reclaim_at))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_transition(
        &self,
        deployment: &str,
        id: &str,
        from: &[InstanceState],
        to: InstanceState,
        at: DateTime<Utc>,
        endpoint: Option<&str>,
        reclaim_at: Option<DateTime<Utc>>,
    ) -> Result<Transition> {
        let from: Vec<String> = from.iter().map(ToString::to_string).collect();
        let key = keys::instances(deployment);
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (code, raw): (i64, String) = TRANSITION
            .key(&key)
            .arg(id)
            .arg(to.to_string())
            .arg(stamp(at))
            .arg(from.join(","))
            .arg(endpoint.unwrap_or(""))
            .arg(reclaim_at.map(stamp).unwrap_or_default())
            .invoke_async(&mut self.conn())
            .await?;
        let record = || parse(&format!("{key}/{id}"), &raw);
        Ok(match code {
            1 => Transition::Applied(record()?),
            0 => Transition::Refused(record()?),
            _ => Transition::NotFound,
        })
    }

    /// Register a real instance the provider started, replacing a `requested`
    /// placeholder of its pool when there is one (see [`Adopted`]).
    pub async fn adopt_instance(&self, record: &InstanceRecord) -> Result<Adopted> {
        let key = keys::instances(&record.deployment);
        let (code, placeholder, raw): (i64, String, String) = ADOPT
            .key(&key)
            .arg(&record.id)
            .arg(json(record))
            .arg(&record.pool)
            .invoke_async(&mut self.conn())
            .await?;
        let stored: InstanceRecord = parse(&format!("{key}/{}", record.id), &raw)?;
        Ok(match code {
            0 => Adopted::Existing(stored),
            1 => Adopted::Replaced {
                placeholder,
                record: stored,
            },
            _ => Adopted::Added(stored),
        })
    }

    /// `requested`/`booting` → `ready` once its readiness path answered 200. Whoever
    /// applies the change (health sweep, worker) also records the boot duration, so
    /// it is recorded once however many observers saw the instance become ready.
    pub async fn mark_ready(
        &self,
        deployment: &str,
        id: &str,
        at: DateTime<Utc>,
        endpoint: Option<&str>,
    ) -> Result<Transition> {
        let t = self
            .transition(
                deployment,
                id,
                &[InstanceState::Requested, InstanceState::Booting],
                InstanceState::Ready,
                at,
                endpoint,
            )
            .await?;
        if let Transition::Applied(r) = &t
            && let Ok(took) = (at - r.launched_at).to_std()
        {
            self.record_boot(deployment, &r.pool, took).await?;
        }
        Ok(t)
    }

    /// The instance is gone (stopped by us or by its provider). Its record stays, as
    /// `terminated`, so a late listing or event cannot register it again; its leases
    /// are dropped. [`Store::purge_terminated`] removes old records.
    pub async fn mark_terminated(
        &self,
        deployment: &str,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Transition> {
        // Only once: a second stop (a late event, a retried apply) must not move the
        // time it stopped, which the spend ledger bills until.
        let t = self
            .transition(
                deployment,
                id,
                &[
                    InstanceState::Requested,
                    InstanceState::Booting,
                    InstanceState::Ready,
                    InstanceState::Draining,
                    InstanceState::Unhealthy,
                ],
                InstanceState::Terminated,
                at,
                None,
            )
            .await?;
        if matches!(t, Transition::Applied(_)) {
            let _: () = redis::pipe()
                .zadd(keys::terminated(deployment), id, at.timestamp_millis())
                .del(keys::inflight(deployment, id))
                .query_async(&mut self.conn())
                .await?;
        }
        Ok(t)
    }

    /// Remove records terminated at or before `before`; returns how many.
    pub async fn purge_terminated(&self, deployment: &str, before: DateTime<Utc>) -> Result<u32> {
        Ok(PURGE
            .key(keys::instances(deployment))
            .key(keys::terminated(deployment))
            .arg(before.timestamp_millis())
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Count one more consecutive failure; returns the updated record.
    pub async fn record_failure(
        &self,
        deployment: &str,
        id: &str,
    ) -> Result<Option<InstanceRecord>> {
        self.adjust_failures(deployment, id, 1).await
    }

    /// A success ends the run of failures.
    pub async fn clear_failures(
        &self,
        deployment: &str,
        id: &str,
    ) -> Result<Option<InstanceRecord>> {
        self.adjust_failures(deployment, id, 0).await
    }

    async fn adjust_failures(
        &self,
        deployment: &str,
        id: &str,
        by: u32,
    ) -> Result<Option<InstanceRecord>> {
        let key = keys::instances(deployment);
        let raw: Option<String> = FAILURES
            .key(&key)
            .arg(id)
            .arg(by)
            .invoke_async(&mut self.conn())
            .await?;
        raw.map(|r| parse(&format!("{key}/{id}"), &r)).transpose()
    }
}
