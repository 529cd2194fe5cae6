//! Desired capacity, fenced by a generation number.
//!
//! A scaler run reads the generation with the policy memory ([`Store::load_policy`]),
//! observes, decides, and commits with [`Store::commit_decision`]. The commit is one
//! Lua script: it succeeds only if the generation is still the one read, and then in
//! one step bumps the generation, stores the new memory and the per-pool targets,
//! registers the instances to launch as `requested` (so the next decision already
//! counts them as capacity), marks the instances to drain as `draining`, records or
//! clears the cap, and appends the decision to the log. Two scalers deciding at once
//! therefore can never both launch for one need: the second is fenced, re-observes
//! (now seeing the first one's requested instances) and decides again.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::{Decision, PolicyMemory};

use crate::decisions::ObservedSummary;
use crate::{Result, Store, json, keys, parse};

static COMMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return {0, current} end
local generation = current + 1
redis.call('SET', KEYS[1], generation)
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
local i = 6
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]); i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local raw = redis.call('HGET', KEYS[4], ARGV[i])
  if raw then
    local rec = cjson.decode(raw)
    if rec.state ~= 'draining' and rec.state ~= 'terminated' then
      rec.state = 'draining'
      rec.draining_since = ARGV[5]
      redis.call('HSET', KEYS[4], ARGV[i], cjson.encode(rec))
    end
  end
  i = i + 1
end
if ARGV[i] == '' then redis.call('DEL', KEYS[6]) else redis.call('SET', KEYS[6], ARGV[i], 'EX', 600) end
if ARGV[i + 2] == '' then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[i + 1], '*', 'generation', generation, 'decision', ARGV[4])
else
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[i + 1], '*', 'generation', generation, 'decision', ARGV[4], 'observed', ARGV[i + 2])
end
return {1, generation}
"#,
    )
});

/// What a scaler run starts from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySnapshot {
    pub generation: u64,
    pub memory: PolicyMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored as this generation; the caller applies the decision.
    Committed { generation: u64 },
    /// Someone else committed first; observe and decide again.
    Fenced { current: u64 },
}

/// Placeholder records for the instances a decision launches, so they count as
/// capacity at once. Ids are `<pool>-g<generation>-<n>`: unique per commit.
pub fn requested_instances(
    decision: &Decision,
    generation: u64,
    now: DateTime<Utc>,
) -> Vec<InstanceRecord> {
    decision
        .pools
        .iter()
        .flat_map(|p| {
            (0..p.launch).map(move |n| InstanceRecord {
                id: format!("{}-g{generation}-{n}", p.pool),
                deployment: decision.deployment.clone(),
                pool: p.pool.clone(),
                state: InstanceState::Requested,
                endpoint: None,
                launched_at: now,
                ready_at: None,
                draining_since: None,
                failures: 0,
                reclaim_at: None,
            })
        })
        .collect()
}

impl Store {
    pub async fn load_policy(&self, deployment: &str) -> Result<PolicySnapshot> {
        let (generation, memory): (Option<u64>, Option<String>) = redis::pipe()
            .get(keys::generation(deployment))
            .get(keys::memory(deployment))
            .query_async(&mut self.conn())
            .await?;
        Ok(PolicySnapshot {
            generation: generation.unwrap_or(0),
            memory: memory
                .map(|m| parse(&keys::memory(deployment), &m))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Commit `decision` if the generation is still `expected`. On success, returns
    /// the new generation; the requested placeholders are those of
    /// [`requested_instances`] for it.
    pub async fn commit_decision(
        &self,
        expected: u64,
        decision: &Decision,
    ) -> Result<CommitOutcome> {
        self.commit_decision_observed(expected, decision, None)
            .await
    }

    /// [`Store::commit_decision`], logging with the decision a summary of what it was
    /// decided from (for `scale0 status` and `scale0 explain`).
    pub async fn commit_decision_observed(
        &self,
        expected: u64,
        decision: &Decision,
        observed: Option<&ObservedSummary>,
    ) -> Result<CommitOutcome> {
        let d = decision.deployment.as_str();
        let generation = expected + 1;
        let requested = requested_instances(decision, generation, decision.at);
        let desired: BTreeMap<&str, u32> = decision
            .pools
            .iter()
            .map(|p| (p.pool.as_str(), p.target))
            .collect();
        let commit = &*COMMIT;
        let mut script = commit.prepare_invoke();
        script
            .key(keys::generation(d))
            .key(keys::memory(d))
            .key(keys::desired(d))
            .key(keys::instances(d))
            .key(keys::decisions(d))
            .key(keys::cap(d))
            .arg(expected)
            .arg(json(&decision.memory))
            .arg(json(&desired))
            .arg(json(decision))
            .arg(
                decision
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
            .arg(requested.len());
        for r in &requested {
            script.arg(&r.id).arg(json(r));
        }
        script.arg(decision.drain.len());
        for id in &decision.drain {
            script.arg(id);
        }
        script
            .arg(decision.cap.as_ref().map(json).unwrap_or_default())
            .arg(crate::decisions::DECISIONS_KEPT)
            .arg(observed.map(json).unwrap_or_default());
        let (ok, value): (i64, u64) = script.invoke_async(&mut self.conn()).await?;
        let _: () = self.conn().sadd(keys::DEPLOYMENTS, d).await?;
        Ok(if ok == 1 {
            CommitOutcome::Committed { generation: value }
        } else {
            CommitOutcome::Fenced { current: value }
        })
    }

    /// Targets per pool from the last committed decision.
    pub async fn desired(&self, deployment: &str) -> Result<BTreeMap<String, u32>> {
        let key = keys::desired(deployment);
        let raw: Option<String> = self.conn().get(&key).await?;
        Ok(raw
            .map(|r| parse(&key, &r))
            .transpose()?
            .unwrap_or_default())
    }

    /// Deployments the control plane has committed decisions for.
    pub async fn deployments(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.conn().smembers(keys::DEPLOYMENTS).await?;
        names.sort();
        Ok(names)
    }

    /// Delete every key of a deployment (registry, memory, counters, log, its part of
    /// the spend ledger) and its membership of the deployment set; returns the keys
    /// deleted. For a deployment
    /// that is gone for good, or one a demo or test recreates from scratch.
    pub async fn forget_deployment(&self, deployment: &str) -> Result<u64> {
        let pattern = format!("scale0:{{{deployment}}}:*");
        let mut c = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await?;
            if !batch.is_empty() {
                let n: u64 = c.del(&batch).await?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let _: () = c.srem(keys::DEPLOYMENTS, deployment).await?;
        Ok(deleted + self.forget_ledger_deployment(deployment).await?)
    }
}
