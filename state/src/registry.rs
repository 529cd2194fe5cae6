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

use crate::{Result, Store, json, keys, parse};

/// Checks the state, applies it, stamps `ready_at` / `draining_since` the first time,
/// resets failures on ready, and sets the endpoint when given.
const TRANSITION: &str = r#"
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
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
return {1, out}
"#;

/// Adds `ARGV[2]` to the failure count (0 resets it) and returns the record.
const FAILURES: &str = r#"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local rec = cjson.decode(raw)
local n = tonumber(ARGV[2])
if n == 0 then rec.failures = 0 else rec.failures = (tonumber(rec.failures) or 0) + n end
local out = cjson.encode(rec)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
"#;

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
        let from: Vec<String> = from.iter().map(ToString::to_string).collect();
        let key = keys::instances(deployment);
        let (code, raw): (i64, String) = redis::Script::new(TRANSITION)
            .key(&key)
            .arg(id)
            .arg(to.to_string())
            .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .arg(from.join(","))
            .arg(endpoint.unwrap_or(""))
            .invoke_async(&mut self.conn())
            .await?;
        let record = || parse(&format!("{key}/{id}"), &raw);
        Ok(match code {
            1 => Transition::Applied(record()?),
            0 => Transition::Refused(record()?),
            _ => Transition::NotFound,
        })
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
        let raw: Option<String> = redis::Script::new(FAILURES)
            .key(&key)
            .arg(id)
            .arg(by)
            .invoke_async(&mut self.conn())
            .await?;
        raw.map(|r| parse(&format!("{key}/{id}"), &r)).transpose()
    }
}
