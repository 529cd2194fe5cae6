//! `scale0 status [DEPLOYMENT...]`: what the control plane holds in Redis for each
//! deployment ([`scale0_state::status`] gathers it), as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use scale0_state::Store;
use scale0_state::status::{DeploymentStatus, gather};

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
    if let Some(per) = c.usd_per_1k_tokens {
        let _ = write!(out, "; {} tokens, ${per:.4} per 1,000", c.tokens);
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
        let all = gather(&store, &names, now).await?;
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
    use std::collections::BTreeMap;

    use scale0_state::status::{PoolStatus, QuotaView, UnitCost};

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
            last_24h: UnitCost::new(12.0, 0, 0),
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
