//! `scale0 status [DEPLOYMENT...]`: what the control plane holds in Redis for each
//! deployment — instances by state per pool, desired and actual counts, queued (as the
//! last decision saw it) and held (live worker reports), the cap workers shed by,
//! pools the provider reported unavailable, the last decision, and every budget that
//! covers it: spend so far, the forecast at the period's end, the limit, what AWS
//! Budgets last reported; and the last 24 hours' spend per request (the ledger's spend
//! over the requests the workers counted).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use scale0_core::contract::InstanceState;
use scale0_core::cost::budget::{BudgetStatus, forecast_usd};
use scale0_core::policy::{Cap, Forecast};
use scale0_state::Store;
use scale0_state::ledger::BudgetReport;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Deployments to show (default: every deployment with a decision, plus those of
    /// `--config`).
    pub deployments: Vec<String>,
    /// Redis holding the control plane's state.
    #[arg(
        long,
        env = "SCALE0_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Also list this config's deployments that have no decision yet.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

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
    pub last_24h: CostPerRequest,
}

/// What the deployment spent over a window (the ledger: boots included) and the
/// requests that arrived in it (the workers' 10 s bins).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostPerRequest {
    pub spend_usd: f64,
    pub requests: u64,
    /// `None` without requests.
    pub usd_per_request: Option<f64>,
}

impl CostPerRequest {
    pub fn new(spend_usd: f64, requests: u64) -> Self {
        CostPerRequest {
            spend_usd,
            requests,
            usd_per_request: (requests > 0).then(|| spend_usd / requests as f64),
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

pub async fn gather(
    store: &Store,
    deployment: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<DeploymentStatus> {
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
    let commitments = store.commitments().await?;
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
    let last_24h = CostPerRequest::new(
        store.spend_since(deployment, day_ago, now).await?,
        store
            .arrivals(deployment, day_ago, now)
            .await?
            .values()
            .sum(),
    );
    let mut reports = store.budget_reports().await?;
    let budgets = last
        .as_ref()
        .map(|l| {
            l.decision
                .budgets
                .iter()
                .map(|b| BudgetView {
                    forecast_usd: forecast_usd(b, now),
                    aws_report: reports.remove(&b.budget),
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
            .held(deployment, now_ms, scale0_state::HELD_STALE_AFTER)
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

pub fn render(s: &DeploymentStatus, now: DateTime<Utc>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = write!(out, "{}  generation {}", s.deployment, s.generation);
    match &s.last_decision {
        Some(l) => {
            let ago = (now - l.at).num_seconds();
            let _ = writeln!(
                out,
                ", last decision {} ({ago}s ago{})",
                l.at.format("%Y-%m-%d %H:%M:%S UTC"),
                l.trigger
                    .as_ref()
                    .map(|t| format!(", {t}"))
                    .unwrap_or_default()
            );
        }
        None => out.push_str(", no decision yet\n"),
    }
    let states = ["requested", "booting", "ready", "draining", "unhealthy"];
    let _ = writeln!(
        out,
        "  {:<12} {:>7} {:>6} {:>9} {:>7} {:>5} {:>8} {:>9}",
        "pool", "desired", "actual", "requested", "booting", "ready", "draining", "unhealthy"
    );
    for (name, p) in &s.pools {
        let n = |st: &str| p.states.get(st).copied().unwrap_or(0);
        let _ = write!(
            out,
            "  {:<12} {:>7} {:>6} {:>9} {:>7} {:>5} {:>8} {:>9}",
            name,
            p.desired,
            p.actual,
            n(states[0]),
            n(states[1]),
            n(states[2]),
            n(states[3]),
            n(states[4])
        );
        if let Some(until) = p.unavailable_until {
            let _ = write!(out, "  unavailable until {}", until.format("%H:%M:%S UTC"));
        }
        if p.interruptions_24h > 0 {
            let _ = write!(out, "  {} Spot interruptions in 24 h", p.interruptions_24h);
        }
        out.push('\n');
    }
    for q in &s.quotas {
        let _ = writeln!(
            out,
            "  quota {}: {} vCPUs held here, {} by all deployments",
            q.quota, q.held_vcpus, q.total_vcpus
        );
    }
    let _ = writeln!(
        out,
        "  queued {} (at the last decision), held {}, in flight {}",
        s.queued.map_or("?".into(), |q| q.to_string()),
        s.held,
        s.in_flight
    );
    if let Some(cap) = &s.cap {
        let _ = writeln!(
            out,
            "  cap: {} of {} instances needed — workers shed ({})",
            cap.max_instances, cap.needed_instances, cap.reason
        );
    }
    for b in &s.budgets {
        let st = &b.status;
        let _ = write!(
            out,
            "  budget {}: ${:.2} of ${:.2} spent ({:.0}%)",
            st.budget,
            st.spent_usd,
            st.limit_usd,
            100.0 * st.spent_usd / st.limit_usd
        );
        if let (Some(f), Some(end)) = (b.forecast_usd, st.period_end) {
            let _ = write!(
                out,
                ", forecast ${f:.2} by {}",
                end.format("%Y-%m-%d %H:%M UTC")
            );
        }
        if st.at_min {
            out.push_str(", at its cap: held at min_instances");
        } else if st.blocked {
            out.push_str(", at its cap: launches blocked");
        }
        if let Some(r) = &b.aws_report {
            match (r.actual_usd, r.forecast_usd) {
                (Some(a), _) => {
                    let _ = write!(out, "; AWS Budgets reported ${a:.2}");
                }
                (None, Some(f)) => {
                    let _ = write!(out, "; AWS Budgets forecast ${f:.2}");
                }
                _ => {}
            }
        }
        out.push('\n');
    }
    let c = &s.last_24h;
    let _ = write!(
        out,
        "  last 24 h: ${:.2} for {} requests",
        c.spend_usd, c.requests
    );
    if let Some(per) = c.usd_per_request {
        let _ = write!(out, ", ${per:.4} per request");
    }
    out.push('\n');
    if let Some(l) = &s.last_decision {
        let _ = writeln!(out, "  demand {:.1} concurrent requests", l.demand);
        if let Some(f) = &l.forecast {
            let _ = writeln!(
                out,
                "  forecast: {:.1} requests expected {} – {}, {} {:.2} slots",
                f.expected_requests,
                f.window_start.format("%H:%M:%S"),
                f.window_end.format("%H:%M:%S UTC"),
                if f.applied {
                    "pre-warming"
                } else {
                    "forecast-only, would pre-warm"
                },
                f.slots
            );
        }
        for r in l.reasons.iter().take(5) {
            let _ = writeln!(out, "  - {r}");
        }
        if l.reasons.len() > 5 {
            let _ = writeln!(
                out,
                "  ... {} more (scale0 explain {})",
                l.reasons.len() - 5,
                s.deployment
            );
        }
    }
    out
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub(crate) async fn connect(url: &str) -> anyhow::Result<Store> {
    Store::connect_with_timeout(url, std::time::Duration::from_secs(3))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach Redis at {}: {e}",
                scale0_state::redact_url(url)
            )
        })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = connect(&args.redis_url).await?;
        let mut names = args.deployments.clone();
        if names.is_empty() {
            names = store.deployments().await?;
            if let Some(path) = &args.config {
                let config = crate::load_config(path)??;
                for d in config.deployments {
                    if !names.contains(&d.name) {
                        names.push(d.name);
                    }
                }
            }
            names.sort();
        }
        let now = Utc::now();
        let mut all = Vec::new();
        for name in &names {
            all.push(gather(&store, name, now).await?);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else if all.is_empty() {
            println!("no deployments in Redis yet (no decision has been committed)");
        } else {
            let text: Vec<String> = all.iter().map(|s| render(s, now)).collect();
            print!("{}", text.join("\n"));
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_quota_use_and_interruptions() {
        let mut pools = BTreeMap::new();
        pools.insert(
            "spot".to_string(),
            PoolStatus {
                desired: 2,
                actual: 2,
                interruptions_24h: 3,
                ..Default::default()
            },
        );
        pools.insert("ondemand".to_string(), PoolStatus::default());
        let s = DeploymentStatus {
            deployment: "chat".into(),
            generation: 7,
            pools,
            queued: Some(0),
            held: 0,
            in_flight: 0,
            cap: None,
            last_decision: None,
            budgets: Vec::new(),
            quotas: vec![QuotaView {
                quota: "g-spot".into(),
                held_vcpus: 16,
                total_vcpus: 40,
            }],
            last_24h: CostPerRequest::new(12.0, 0),
        };
        let text = render(&s, Utc::now());
        assert!(text.contains("3 Spot interruptions in 24 h"), "{text}");
        assert!(
            text.contains("quota g-spot: 16 vCPUs held here, 40 by all deployments"),
            "{text}"
        );
        let ondemand = text.lines().find(|l| l.contains("ondemand")).unwrap();
        assert!(!ondemand.contains("interruptions"), "{text}");
        // No request in the window: spend, and no per-request figure.
        assert!(
            text.contains("  last 24 h: $12.00 for 0 requests\n"),
            "{text}"
        );
    }
}
