//! What the control plane holds about one deployment, gathered from Redis in one pass:
//! instances by state per pool, desired and actual counts, queued (as the last decision
//! saw it) and held (live worker reports), the cap workers shed by, pools the provider
//! reported unavailable, the last decision, every budget that covers it (spend so far,
//! the forecast at the period's end, the limit, what AWS Budgets last reported), quota
//! use, Spot interruptions, and the last 24 hours' spend per request and per 1,000
//! tokens. `scale0 status` prints it; the worker's `/metrics` exports it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use scale0_core::contract::InstanceState;
use scale0_core::cost::budget::{BudgetStatus, PeerCommitment, forecast_usd};
use scale0_core::policy::{Cap, Forecast};
use serde::Serialize;

use crate::ledger::BudgetReport;
use crate::{Result, Store};

/// One pool's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolStatus {
    /// Target of the last decision.
    pub desired: u32,
    /// Requested, booting and ready: capacity here or on its way.
    pub actual: u32,
    /// Instances by state (`requested`, `booting`, `ready`, `draining`, `unhealthy`).
    pub states: BTreeMap<String, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_until: Option<DateTime<Utc>>,
    /// Spot interruption warnings for the pool's instances in the last 24 hours.
    pub interruptions_24h: u64,
}

/// The last decision, briefly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastDecision {
    pub generation: u64,
    pub at: DateTime<Utc>,
    pub trigger: Option<String>,
    pub demand: f64,
    pub reasons: Vec<String>,
    /// What the time-of-week forecast expected, with `predictive` on or forecast-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentStatus {
    pub deployment: String,
    pub generation: u64,
    pub pools: BTreeMap<String, PoolStatus>,
    /// Messages in the broker queue when the last decision was made.
    pub queued: Option<u64>,
    /// Requests workers hold now (fresh reports only).
    pub held: u64,
    pub in_flight: u64,
    pub cap: Option<Cap>,
    pub last_decision: Option<LastDecision>,
    /// The budgets covering the deployment, as its last decision saw them.
    pub budgets: Vec<BudgetView>,
    /// Quotas this deployment holds vCPUs of (its last decision's commitment).
    pub quotas: Vec<QuotaView>,
    /// Spend and requests over the last 24 hours.
    pub last_24h: UnitCost,
}

/// What the deployment spent over a window (the ledger: boots included), and the
/// requests and tokens the workers counted in it (10 s bins).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitCost {
    pub spend_usd: f64,
    pub requests: u64,
    /// Prompt and completion tokens of the replies that reported their `usage`.
    pub tokens: u64,
    /// `None` without requests.
    pub usd_per_request: Option<f64>,
    /// `None` without tokens (no reply reported its `usage`).
    pub usd_per_1k_tokens: Option<f64>,
}

impl UnitCost {
    pub fn new(spend_usd: f64, requests: u64, tokens: u64) -> Self {
        UnitCost {
            spend_usd,
            requests,
            tokens,
            usd_per_request: (requests > 0).then(|| spend_usd / requests as f64),
            usd_per_1k_tokens: (tokens > 0).then(|| 1000.0 * spend_usd / tokens as f64),
        }
    }
}

/// One quota's use, from the commitments every deployment published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaView {
    pub quota: String,
    /// vCPUs this deployment holds.
    pub held_vcpus: u64,
    /// vCPUs every deployment holds together.
    pub total_vcpus: u64,
}

/// One budget's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    #[serde(flatten)]
    pub status: BudgetStatus,
    /// Spend at the period's end at the period's rate so far (calendar periods).
    pub forecast_usd: Option<f64>,
    /// The last AWS Budgets notification about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_report: Option<BudgetReport>,
}

/// Everything Redis holds about each of `deployments` at `now`. What all deployments
/// share (the quota commitments, the AWS Budgets reports) is read once.
pub async fn gather(
    store: &Store,
    deployments: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<DeploymentStatus>> {
    let commitments = store.commitments().await?;
    let reports = store.budget_reports().await?;
    let mut out = Vec::with_capacity(deployments.len());
    for d in deployments {
        out.push(gather_one(store, d, now, &commitments, &reports).await?);
    }
    Ok(out)
}

async fn gather_one(
    store: &Store,
    deployment: &str,
    now: DateTime<Utc>,
    commitments: &BTreeMap<String, PeerCommitment>,
    reports: &BTreeMap<String, BudgetReport>,
) -> Result<DeploymentStatus> {
    let snapshot = store.load_policy(deployment).await?;
    let desired = store.desired(deployment).await?;
    let records = store.instances(deployment).await?;
    let unavailable = store.unavailable_pools(deployment, now).await?;
    let now_ms = now.timestamp_millis();
    let live: Vec<_> = records
        .iter()
        .filter(|r| r.state != InstanceState::Terminated)
        .collect();
    let ids: Vec<&str> = live.iter().map(|r| r.id.as_str()).collect();
    let in_flight: u64 = store
        .in_flight(deployment, &ids, now_ms)
        .await?
        .values()
        .map(|&n| u64::from(n))
        .sum();
    let mut pools: BTreeMap<String, PoolStatus> = desired
        .iter()
        .map(|(p, &n)| {
            (
                p.clone(),
                PoolStatus {
                    desired: n,
                    ..Default::default()
                },
            )
        })
        .collect();
    for r in &live {
        let p = pools.entry(r.pool.clone()).or_default();
        *p.states.entry(r.state.to_string()).or_default() += 1;
        if r.state.is_capacity() {
            p.actual += 1;
        }
    }
    for (pool, until) in unavailable {
        pools.entry(pool).or_default().unavailable_until = Some(until);
    }
    let day_ago = now - scale0_core::cost::spot::WINDOW;
    for (name, p) in pools.iter_mut() {
        p.interruptions_24h = store.interruptions_since(deployment, name, day_ago).await?;
    }
    let quotas = commitments
        .get(deployment)
        .map(|own| {
            own.quota_vcpus
                .iter()
                .map(|(q, &held)| QuotaView {
                    quota: q.clone(),
                    held_vcpus: held,
                    total_vcpus: commitments
                        .values()
                        .filter_map(|c| c.quota_vcpus.get(q))
                        .sum(),
                })
                .collect()
        })
        .unwrap_or_default();
    let last = store
        .recent_decisions(deployment, 1)
        .await?
        .into_iter()
        .next();
    let last_24h = UnitCost::new(
        store.spend_since(deployment, day_ago, now).await?,
        store
            .arrivals(deployment, day_ago, now)
            .await?
            .values()
            .sum(),
        store.tokens(deployment, day_ago, now).await?,
    );
    let budgets = last
        .as_ref()
        .map(|l| {
            l.decision
                .budgets
                .iter()
                .map(|b| BudgetView {
                    forecast_usd: forecast_usd(b, now),
                    aws_report: reports.get(&b.budget).cloned(),
                    status: b.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(DeploymentStatus {
        deployment: deployment.to_string(),
        generation: snapshot.generation,
        pools,
        queued: last
            .as_ref()
            .and_then(|l| l.observed.as_ref())
            .map(|o| o.queue_depth),
        held: store
            .held(deployment, now_ms, crate::HELD_STALE_AFTER)
            .await?,
        in_flight,
        cap: store.cap(deployment).await?,
        last_decision: last.map(|l| LastDecision {
            generation: l.generation,
            at: l.decision.at,
            trigger: l.observed.map(|o| o.trigger),
            demand: l.decision.demand,
            reasons: l.decision.reasons,
            forecast: l.decision.forecast,
        }),
        budgets,
        quotas,
        last_24h,
    })
}
