//! The spend ledger: every deployment's spend in buckets, what each deployment
//! committed at its last decision, and what AWS Budgets reported.
//!
//! All ledger keys share the hash tag `{ledger}` (a store's ledger namespace; tests use
//! their own), so one Lua script can check and update them together, across
//! deployments: a budget covers several deployments, and two of them deciding at once
//! must not both spend the same headroom.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `scale0:{ledger}:accrued` | hash | deployment → ms up to which its spend is accrued |
//! | `scale0:{ledger}:commitments` | hash | deployment → its last decision's [`PeerCommitment`] |
//! | `scale0:{ledger}:version:<budget>` | counter | bumped by every commit in the budget's scope |
//! | `scale0:{ledger}:days:<series>` | hash | UTC day (days since the epoch) → USD |
//! | `scale0:{ledger}:day:<series>:<day>` | hash | `q<n>` (quarter of the day), `h<n>` (hour) → USD; expires after 40 days |
//! | `scale0:{ledger}:reported` | hash | budget → the last AWS Budgets report ([`BudgetReport`]) |
//! | `scale0:{ledger}:alert:<budget>:<period>:<share>` | string with TTL | an alert raised once per period |
//! | `scale0:{ledger}:version:quota:<quota>` | counter | bumped by every commit of a deployment with a pool in the quota |
//! | `scale0:{ledger}:exposure:<deployment>:<pool>:<day>` | hash | Spot pools: `h<n>` → instance-hours run in that hour; expires after 2 days |
//!
//! **Quotas** ride on the same commit: a deployment's commitment carries the vCPUs it
//! holds of each quota (`scale0_core::cost::quota`), the snapshot sums the other
//! deployments' holdings, and a quota's version is checked and bumped like a budget's,
//! so two deployments sharing a quota never both plan its last vCPUs.
//!
//! **Spot exposure.** The instance-hours of each Spot pool are accrued with its spend,
//! per hour, so the interruption rate (warnings recorded by the Spot handler in the
//! deployment's `interruptions:<pool>`, over these hours) covers the last 24 hours.
//!
//! A series is a deployment's name or `*`, the total of every deployment (names never
//! contain `*`), so a budget over everything reads one series whatever the number of
//! deployments.
//!
//! **Accrual.** A scaler run reads the ledger with everything else ([`Store::ledger_snapshot`]),
//! bills the deployment's instances from its `accrued` mark to now
//! (`scale0_core::cost::ledger`, from the registry: launch times, and for stopped
//! instances the time in `terminated`), decides with that spend counted, and commits
//! with [`Store::commit_ledger`] *before* its fenced decision commit: one script that
//! checks the `accrued` mark and the versions of the deployment's budgets are those it
//! read, then adds the amounts, moves the mark, stores the commitment and bumps the
//! versions. A run that finds either moved decides again. Spend therefore survives any
//! restart (it is in Redis, and an unaccrued interval is billed by the next run from
//! the registry), and each interval is billed once.
//!
//! **Reconciliation.** Billing follows the registry, which the tick's reconcile keeps in
//! line with what the provider runs: an instance the provider stopped listing is marked
//! terminated, and billing stops at that mark — not never, and never before a time
//! already accrued.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use scale0_core::config::CapacityType;
use scale0_core::config::{Budget, BudgetPeriod, Config, Deployment};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::cost::budget::{BudgetObservation, PeerCommitment};
use scale0_core::cost::ledger::{self, Bucket};
use scale0_core::cost::quota::QuotaObservation;
use scale0_core::cost::spot::{self, PoolInterruptions};
use scale0_core::cost::{CostObservation, period};
use scale0_core::policy::Decision;
use serde::{Deserialize, Serialize};

use crate::{Result, Store, json, keys, parse};

/// The series of every deployment together.
pub const TOTAL: &str = "*";
/// Day hashes outlive the longest period (31 days) and window.
const DAY_TTL_SECS: i64 = 40 * 86_400;
/// Exposure hashes outlive the interruption window (a day).
const EXPOSURE_TTL_SECS: i64 = 2 * 86_400;

/// The version key name of a quota (budget names cannot hold `:`).
fn quota_version(name: &str) -> String {
    format!("quota:{name}")
}

/// The ledger's keys under one namespace (the hash tag): `ledger` in production, one
/// of its own for each test, so tests sharing a Redis never see each other's totals.
struct Keys<'a>(&'a str);

impl Keys<'_> {
    fn key(&self, name: &str) -> String {
        format!("scale0:{{{}}}:{name}", self.0)
    }
    fn accrued(&self) -> String {
        self.key("accrued")
    }
    fn commitments(&self) -> String {
        self.key("commitments")
    }
    fn reported(&self) -> String {
        self.key("reported")
    }
    fn version(&self, budget: &str) -> String {
        self.key(&format!("version:{budget}"))
    }
    fn days(&self, series: &str) -> String {
        self.key(&format!("days:{series}"))
    }
    fn day(&self, series: &str, day: i64) -> String {
        self.key(&format!("day:{series}:{day}"))
    }
    fn exposure(&self, deployment: &str, pool: &str, day: i64) -> String {
        self.key(&format!("exposure:{deployment}:{pool}:{day}"))
    }
    fn alert(&self, budget: &str, period: &str, share: f64) -> String {
        self.key(&format!("alert:{budget}:{period}:{share}"))
    }
    /// The stored key and field of a bucket of a series.
    fn bucket(&self, series: &str, b: Bucket) -> (String, String) {
        match b {
            Bucket::Day(_) => (self.days(series), b.field()),
            _ => (self.day(series, b.day()), b.field()),
        }
    }
}

/// The last report AWS Budgets sent about a budget (through SNS to `scale0-budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    /// The scale0 budget's period the report is about ([`period::key`]).
    pub period: String,
    /// ACTUAL spend AWS reported, when the alert was of that type.
    #[serde(default)]
    pub actual_usd: Option<f64>,
    /// FORECASTED spend, when the alert was of that type.
    #[serde(default)]
    pub forecast_usd: Option<f64>,
    /// The AWS budget it came from, and its threshold, as AWS wrote them.
    pub aws_budget: String,
    #[serde(default)]
    pub threshold: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// What a scaler run read of the ledger, and what it owes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerSnapshot {
    pub deployment: String,
    pub now: DateTime<Utc>,
    /// The mark read (ms), which the commit checks.
    accrued_mark: Option<String>,
    /// This deployment's unaccrued spend, by bucket, which the commit adds.
    pending: Vec<(Bucket, f64)>,
    /// The budgets covering the deployment, their spend including `pending`.
    pub budgets: Vec<BudgetObservation>,
    /// The version read of each of those budgets and quotas.
    versions: Vec<(String, i64)>,
    /// Quotas covering the deployment's pools, with the other deployments' holdings.
    pub quotas: Vec<QuotaObservation>,
    /// Spot pools' interruptions and exposure over the last day.
    pub interruptions: BTreeMap<String, PoolInterruptions>,
    /// Spot pools' unaccrued instance-hours, by hour bucket.
    pending_exposure: Vec<(String, Bucket, f64)>,
}

impl LedgerSnapshot {
    /// What `decide` sees of cost, with the caller's longest decision interval.
    pub fn observation(&self, decision_interval: std::time::Duration) -> CostObservation {
        CostObservation {
            budgets: self.budgets.clone(),
            decision_interval,
            quotas: self.quotas.clone(),
            interruptions: self.interruptions.clone(),
        }
    }

    /// Spend this run bills.
    pub fn pending_usd(&self) -> f64 {
        self.pending
            .iter()
            .filter(|(b, _)| matches!(b, Bucket::Day(_)))
            .map(|(_, usd)| usd)
            .sum()
    }
}

/// How a [`Store::commit_ledger`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerCommit {
    Committed,
    /// Another run accrued this deployment, or committed in one of its budgets, since
    /// the snapshot: observe and decide again.
    Moved,
}

static COMMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local mark = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if mark ~= ARGV[2] then return 0 end
local nv = tonumber(ARGV[5])
for i = 1, nv do
  local v = redis.call('GET', KEYS[2 + i]) or '0'
  if v ~= ARGV[5 + i] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4]) end
for i = 1, nv do redis.call('INCR', KEYS[2 + i]) end
local a = 6 + nv
local nb = tonumber(ARGV[a]); a = a + 1
for i = 1, nb do
  local key = KEYS[2 + nv + i]
  redis.call('HINCRBYFLOAT', key, ARGV[a], ARGV[a + 1])
  if ARGV[a + 2] == '1' then redis.call('EXPIRE', key, ARGV[a + 3]) end
  a = a + 4
end
return 1
"#,
    )
});

/// Which deployments a budget's spend comes from, and from which series.
fn scope<'a>(budget: &'a Budget, config: &'a Config) -> (Vec<&'a str>, Vec<&'a str>) {
    match &budget.deployments {
        None => (
            config.deployments.iter().map(|d| d.name.as_str()).collect(),
            vec![TOTAL],
        ),
        Some(names) => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            (names.clone(), names)
        }
    }
}

/// The price of an instance of `pool`; a pool no longer configured is billed at the
/// dearest configured price.
fn price(spec: &Deployment, pool: &str) -> f64 {
    spec.pools
        .iter()
        .find(|p| p.name == pool)
        .map(|p| p.price_per_hour_usd)
        .unwrap_or_else(|| {
            spec.pools
                .iter()
                .map(|p| p.price_per_hour_usd)
                .fold(0.0, f64::max)
        })
}

fn as_f64(v: &redis::Value) -> f64 {
    match v {
        redis::Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0),
        redis::Value::Int(i) => *i as f64,
        redis::Value::Double(d) => *d,
        _ => 0.0,
    }
}

/// Reads of one budget's buckets within the snapshot pipeline.
struct BudgetReads {
    /// Per series: the start day's quarter and hour buckets, then the days.
    series: Vec<(Vec<Bucket>, Vec<Bucket>)>,
    tail: Vec<(i64, Vec<Bucket>)>,
}

impl Store {
    fn ledger_keys(&self) -> Keys<'_> {
        Keys(self.ledger_namespace())
    }

    /// Everything the budget check needs for `spec`'s next decision, in one round trip.
    pub async fn ledger_snapshot(
        &self,
        config: &Config,
        spec: &Deployment,
        now: DateTime<Utc>,
    ) -> Result<LedgerSnapshot> {
        let d = spec.name.as_str();
        let budgets: Vec<&Budget> = config.budgets.iter().filter(|b| b.covers(d)).collect();
        let mut pipe = redis::pipe();
        let k = self.ledger_keys();
        pipe.hget(k.accrued(), d)
            .hgetall(keys::instances(d))
            .zrange_withscores(keys::terminated(d), 0, -1)
            .hgetall(k.commitments())
            .hgetall(k.reported());
        let mut reads = Vec::new();
        for b in &budgets {
            pipe.get(k.version(&b.name));
            let p = period::current(b, now);
            let buckets = ledger::period_buckets(p.start, now);
            let (days, within): (Vec<Bucket>, Vec<Bucket>) = buckets
                .into_iter()
                .partition(|b| matches!(b, Bucket::Day(_)));
            let (_, series) = scope(b, config);
            let mut per_series = Vec::new();
            for s in &series {
                // Quarters and hours all lie in the period's first UTC day.
                let first_day = within.first().map_or(0, |b| b.day());
                pipe.cmd("HMGET")
                    .arg(k.day(s, first_day))
                    .arg(within.iter().map(|b| b.field()).collect::<Vec<_>>())
                    .arg("_");
                pipe.cmd("HMGET")
                    .arg(k.days(s))
                    .arg(days.iter().map(|b| b.field()).collect::<Vec<_>>())
                    .arg("_");
                per_series.push((within.clone(), days.clone()));
            }
            // Rolling windows: the hours at the old end, to say when spend allows.
            let mut tail = Vec::new();
            if b.period == BudgetPeriod::Rolling {
                let start = p.start.timestamp().div_euclid(3600) * 3600;
                let hours: Vec<Bucket> = (0..24).map(|h| Bucket::Hour(start + h * 3600)).collect();
                let mut by_day: BTreeMap<i64, Vec<Bucket>> = BTreeMap::new();
                for h in hours {
                    by_day.entry(h.day()).or_default().push(h);
                }
                for (day, hours) in by_day {
                    for s in &series {
                        pipe.cmd("HMGET")
                            .arg(k.day(s, day))
                            .arg(hours.iter().map(|b| b.field()).collect::<Vec<_>>())
                            .arg("_");
                        tail.push((day, hours.clone()));
                    }
                }
            }
            reads.push(BudgetReads {
                series: per_series,
                tail,
            });
        }
        let quotas: Vec<&scale0_core::config::Quota> = config
            .quotas
            .iter()
            .filter(|q| spec.pools.iter().any(|p| q.covers(d, &p.name)))
            .collect();
        for q in &quotas {
            pipe.get(k.version(&quota_version(&q.name)));
        }
        let spot_pools: Vec<&str> = spec
            .pools
            .iter()
            .filter(|p| p.capacity_type == CapacityType::Spot)
            .map(|p| p.name.as_str())
            .collect();
        let window_start = now - spot::WINDOW;
        let exposure_hours: Vec<Bucket> = {
            let first = window_start.timestamp().div_euclid(3600) * 3600;
            (0..=24).map(|h| Bucket::Hour(first + h * 3600)).collect()
        };
        let exposure_days: BTreeSet<i64> = exposure_hours.iter().map(|b| b.day()).collect();
        for pool in &spot_pools {
            pipe.zcount(
                keys::interruptions(d, pool),
                window_start.timestamp_millis(),
                "+inf",
            );
            for &day in &exposure_days {
                pipe.cmd("HMGET")
                    .arg(k.exposure(d, pool, day))
                    .arg(
                        exposure_hours
                            .iter()
                            .filter(|b| b.day() == day)
                            .map(|b| b.field())
                            .collect::<Vec<_>>(),
                    )
                    .arg("_");
            }
        }
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = replies.split_off(5);
        type Head = (
            Option<String>,
            Vec<(String, String)>,
            Vec<(String, i64)>,
            Vec<(String, String)>,
            Vec<(String, String)>,
        );
        let (mark, raw_instances, terminated, raw_commitments, raw_reports): Head =
            redis::FromRedisValue::from_redis_value(redis::Value::Array(replies))
                .map_err(redis::RedisError::from)?;

        // This deployment's unaccrued spend, from the registry.
        let stopped: BTreeMap<String, DateTime<Utc>> = terminated
            .into_iter()
            .filter_map(|(id, ms)| Some((id, DateTime::from_timestamp_millis(ms)?)))
            .collect();
        let key = keys::instances(d);
        let mut billable = Vec::new();
        let mut exposed: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for (id, raw) in &raw_instances {
            let r: InstanceRecord = parse(&format!("{key}/{id}"), raw)?;
            let stop = match r.state {
                // A terminated record without its time stopped at the latest now.
                InstanceState::Terminated => Some(stopped.get(id).copied().unwrap_or(now)),
                _ => None,
            };
            billable.push((r.launched_at, stop, price(spec, &r.pool)));
            if let Some(pool) = spot_pools.iter().find(|p| **p == r.pool) {
                // Instance-hours: billing at $1 an hour.
                exposed
                    .entry(pool)
                    .or_default()
                    .push((r.launched_at, stop, 1.0));
            }
        }
        let from = mark
            .as_deref()
            .and_then(|m| m.parse().ok())
            .and_then(DateTime::from_timestamp_millis);
        let unaccrued = from.is_none_or(|f| f < now);
        let pending = if unaccrued {
            ledger::accrue_all(billable, from, now)
        } else {
            Vec::new()
        };
        let mut pending_exposure = Vec::new();
        if unaccrued {
            for (pool, runs) in exposed {
                for (b, hours) in ledger::accrue_all(runs, from, now) {
                    if matches!(b, Bucket::Hour(_)) {
                        pending_exposure.push((pool.to_string(), b, hours));
                    }
                }
            }
        }

        let commitments: BTreeMap<String, PeerCommitment> = raw_commitments
            .iter()
            .map(|(name, raw)| Ok((name.clone(), parse(&k.commitments(), raw)?)))
            .collect::<Result<_>>()?;
        let reports: BTreeMap<String, BudgetReport> = raw_reports
            .iter()
            .map(|(name, raw)| Ok((name.clone(), parse(&k.reported(), raw)?)))
            .collect::<Result<_>>()?;

        let mut rest = rest.into_iter();
        let mut observations = Vec::new();
        let mut versions = Vec::new();
        for (b, r) in budgets.iter().zip(reads) {
            let version = rest.next().map_or(0.0, |v| as_f64(&v)) as i64;
            versions.push((b.name.clone(), version));
            let mut accrued = 0.0;
            for _ in &r.series {
                for _ in 0..2 {
                    if let Some(redis::Value::Array(values)) = rest.next() {
                        accrued += values.iter().map(as_f64).sum::<f64>();
                    }
                }
            }
            let p = period::current(b, now);
            let own = ledger::sum_in(&pending, &ledger::period_buckets(p.start, now));
            let mut hours: BTreeMap<i64, f64> = BTreeMap::new();
            for (_, tail) in &r.tail {
                if let Some(redis::Value::Array(values)) = rest.next() {
                    for (h, v) in tail.iter().zip(values) {
                        if let Bucket::Hour(start) = h {
                            *hours.entry(*start).or_default() += as_f64(&v);
                        }
                    }
                }
            }
            let (names, _) = scope(b, config);
            let peers = names
                .iter()
                .filter(|n| **n != d)
                .filter_map(|n| commitments.get(*n).cloned())
                .collect();
            let period_key = period::key(b, now);
            let reported_usd = reports
                .get(&b.name)
                .filter(|r| r.period == period_key)
                .and_then(|r| r.actual_usd);
            observations.push(BudgetObservation {
                budget: (*b).clone(),
                accrued_usd: accrued + own,
                peers,
                reported_usd,
                window_tail: hours
                    .into_iter()
                    .filter_map(|(s, usd)| Some((DateTime::from_timestamp(s, 0)?, usd)))
                    .collect(),
            });
        }
        let mut quota_observations = Vec::new();
        for q in quotas {
            let version = rest.next().map_or(0.0, |v| as_f64(&v)) as i64;
            versions.push((quota_version(&q.name), version));
            // Holdings of deployments no longer configured do not count.
            let others_vcpus = commitments
                .iter()
                .filter(|(n, _)| {
                    n.as_str() != d && config.deployments.iter().any(|c| &c.name == *n)
                })
                .filter_map(|(_, c)| c.quota_vcpus.get(&q.name))
                .sum();
            quota_observations.push(QuotaObservation {
                quota: q.clone(),
                others_vcpus,
            });
        }
        let mut interruptions = BTreeMap::new();
        for pool in &spot_pools {
            let count = rest.next().map_or(0.0, |v| as_f64(&v)) as u32;
            let mut hours = 0.0;
            for _ in &exposure_days {
                if let Some(redis::Value::Array(values)) = rest.next() {
                    hours += values.iter().map(as_f64).sum::<f64>();
                }
            }
            hours += pending_exposure
                .iter()
                .filter(|(p, _, _)| p == pool)
                .map(|(_, _, h)| h)
                .sum::<f64>();
            interruptions.insert(
                pool.to_string(),
                PoolInterruptions {
                    interruptions: count,
                    instance_hours: hours,
                },
            );
        }
        Ok(LedgerSnapshot {
            deployment: d.to_string(),
            now,
            accrued_mark: mark,
            pending,
            budgets: observations,
            versions,
            quotas: quota_observations,
            interruptions,
            pending_exposure,
        })
    }

    /// Bill what the snapshot found unaccrued and publish the decision's commitment,
    /// if nothing moved since the snapshot.
    pub async fn commit_ledger(
        &self,
        snapshot: &LedgerSnapshot,
        decision: &Decision,
    ) -> Result<LedgerCommit> {
        let d = snapshot.deployment.as_str();
        let mark = snapshot
            .accrued_mark
            .as_deref()
            .and_then(|m| m.parse::<i64>().ok())
            .unwrap_or(i64::MIN)
            .max(snapshot.now.timestamp_millis());
        let commitment = decision.commitment.as_ref().map(|c| PeerCommitment {
            deployment: d.to_string(),
            decided_at: decision.at,
            committed_usd: c.committed_usd,
            burn_usd_per_hour: c.burn_usd_per_hour,
            release_after: c.release_after,
            quota_vcpus: c.quota_vcpus.clone(),
        });
        let k = self.ledger_keys();
        let script = &*COMMIT;
        let mut call = script.prepare_invoke();
        call.key(k.accrued()).key(k.commitments());
        for (b, _) in &snapshot.versions {
            call.key(k.version(b));
        }
        call.arg(d)
            .arg(snapshot.accrued_mark.clone().unwrap_or_default())
            .arg(mark.to_string())
            .arg(commitment.as_ref().map(json).unwrap_or_default())
            .arg(snapshot.versions.len());
        for (_, v) in &snapshot.versions {
            call.arg(v.to_string());
        }
        let mut writes = Vec::new();
        for &(bucket, usd) in &snapshot.pending {
            for series in [d, TOTAL] {
                let ttl = (!matches!(bucket, Bucket::Day(_))).then_some(DAY_TTL_SECS);
                writes.push((k.bucket(series, bucket), usd, ttl));
            }
        }
        for (pool, bucket, hours) in &snapshot.pending_exposure {
            writes.push((
                (k.exposure(d, pool, bucket.day()), bucket.field()),
                *hours,
                Some(EXPOSURE_TTL_SECS),
            ));
        }
        call.arg(writes.len());
        for ((key, field), usd, ttl) in &writes {
            call.key(key);
            call.arg(field)
                .arg(usd.to_string())
                .arg(if ttl.is_some() { "1" } else { "0" })
                .arg(ttl.unwrap_or(DAY_TTL_SECS));
        }
        let ok: i64 = call.invoke_async(&mut self.conn()).await?;
        Ok(if ok == 1 {
            LedgerCommit::Committed
        } else {
            LedgerCommit::Moved
        })
    }

    /// Spend of `series` (a deployment, or [`TOTAL`]) from `from` until `now`, as
    /// accrued.
    pub async fn spend_since(
        &self,
        series: &str,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<f64> {
        let k = self.ledger_keys();
        let buckets = ledger::period_buckets(from, now);
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in buckets {
            let (key, field) = k.bucket(series, b);
            by_key.entry(key).or_default().push(field);
        }
        let mut pipe = redis::pipe();
        for (key, fields) in &by_key {
            pipe.cmd("HMGET").arg(key).arg(fields).arg("_");
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        Ok(replies
            .iter()
            .map(|r| match r {
                redis::Value::Array(values) => values.iter().map(as_f64).sum(),
                _ => 0.0,
            })
            .sum())
    }

    /// The commitments every deployment published at its last decision.
    pub async fn commitments(&self) -> Result<BTreeMap<String, PeerCommitment>> {
        let key = self.ledger_keys().commitments();
        let raw: Vec<(String, String)> = self.conn().hgetall(&key).await?;
        raw.iter()
            .map(|(name, r)| Ok((name.clone(), parse(&key, r)?)))
            .collect()
    }

    /// Record what AWS Budgets reported about `budget`.
    pub async fn record_budget_report(&self, budget: &str, report: &BudgetReport) -> Result<()> {
        let key = self.ledger_keys().reported();
        let _: () = self.conn().hset(key, budget, json(report)).await?;
        Ok(())
    }

    pub async fn budget_reports(&self) -> Result<BTreeMap<String, BudgetReport>> {
        let key = self.ledger_keys().reported();
        let raw: Vec<(String, String)> = self.conn().hgetall(&key).await?;
        raw.iter()
            .map(|(name, r)| Ok((name.clone(), parse(&key, r)?)))
            .collect()
    }

    /// Whether this is the first time `budget` reached `share` of its limit in
    /// `period` (remembered 40 days, longer than any period).
    pub async fn first_alert(&self, budget: &str, period: &str, share: f64) -> Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.ledger_keys().alert(budget, period, share))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(DAY_TTL_SECS)
            .query_async(&mut self.conn())
            .await?;
        Ok(set.is_some())
    }

    /// Remove one deployment from the ledger: its accrual mark, its commitment and its
    /// spend series (the total keeps what it spent).
    pub async fn forget_ledger_deployment(&self, deployment: &str) -> Result<u64> {
        let k = self.ledger_keys();
        let mut c = self.conn();
        let _: () = redis::pipe()
            .hdel(k.accrued(), deployment)
            .hdel(k.commitments(), deployment)
            .del(k.days(deployment))
            .query_async(&mut c)
            .await?;
        self.delete_matching(&k.key(&format!("day:{deployment}:*")))
            .await
    }

    /// Remove every key of this store's ledger namespace (for a test or a demo that
    /// starts from nothing).
    pub async fn forget_ledger(&self) -> Result<u64> {
        self.delete_matching(&self.ledger_keys().key("*")).await
    }

    async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        let mut c = self.conn();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        let mut seen = BTreeSet::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await?;
            let batch: Vec<String> = batch
                .into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect();
            if !batch.is_empty() {
                let n: u64 = c.del(&batch).await?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(deleted)
    }
}
