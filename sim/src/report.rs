//! A scenario's results: the bounds, one row per policy, and the baselines'
//! frontiers, as JSON and as tables.

use serde::{Deserialize, Serialize};

use crate::Prepared;
use crate::bounds::Bounds;
use crate::frontier::{Frontier, Point, dominating};
use crate::metrics::{PolicyReport, share};
use crate::trace::MICROS_PER_SEC;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub description: String,
    pub trace: String,
    pub seed: u64,
    /// Scored requests (after the transform, arriving after the warmup).
    pub requests: u64,
    /// Length of the whole window, warmup included.
    pub horizon_hours: f64,
    /// Start of the scored window.
    pub warmup_s: f64,
    pub slo_max_wait_s: f64,
    pub boot_time_s: f64,
    pub slots: u32,
    pub price_per_hour_usd: f64,
    /// The request deadline and scale0's policy settings that shape its results.
    pub scale0_settings: String,
    pub bounds: Bounds,
    pub policies: Vec<PolicyReport>,
    /// Each baseline family's Pareto set over its sweep (with `--frontiers`).
    pub frontiers: Vec<Frontier>,
    /// Policies asked for that could not run here, with the reason.
    pub skipped: Vec<String>,
}

impl ScenarioReport {
    pub fn new(
        prepared: &Prepared,
        policies: Vec<PolicyReport>,
        frontiers: Vec<Frontier>,
        skipped: Vec<String>,
    ) -> ScenarioReport {
        let scenario = prepared.scenario;
        let trace = prepared.trace;
        let pool = &scenario.deployment.pools[scenario.reference_pool()];
        ScenarioReport {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            trace: trace
                .source
                .rsplit('/')
                .next()
                .unwrap_or(&trace.source)
                .to_string(),
            seed: scenario.seed,
            requests: prepared.bounds.requests,
            horizon_hours: prepared.workload.horizon as f64 / (3600.0 * MICROS_PER_SEC as f64),
            warmup_s: scenario.slo.warmup.as_secs_f64(),
            slo_max_wait_s: scenario.slo.max_wait.as_secs_f64(),
            boot_time_s: pool.boot_time.as_secs_f64(),
            slots: pool.slots,
            price_per_hour_usd: pool.price_per_hour_usd,
            scale0_settings: {
                let p = &scenario.deployment.policy;
                format!(
                    "target_queue_wait {}, request_deadline {}, target_utilization {}, scale_to_zero_grace {}, scale_down_stabilization {}, tick {}",
                    p.target_queue_wait,
                    scenario.deadline(),
                    p.target_utilization,
                    p.scale_to_zero_grace,
                    p.scale_down_stabilization,
                    scenario.control.tick
                )
            },
            bounds: prepared.bounds.clone(),
            policies,
            frontiers,
            skipped,
        }
    }

    /// JSON with every figure of the tables (and more), stable across runs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A Markdown table: the two bounds first, then the policies in order.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from(
            "| policy | GPU-hours | cost | × SLO bound | × zero-wait | SLO met | p99 wait | cold-start delayed | shed | launches |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let b = &self.bounds;
        out.push_str(&format!(
            "| bound: all within SLO | — | {} | 1.00 | — | 100% | ≤ {} | — | 0% | — |\n",
            dollars(b.within_slo_cost_usd),
            seconds(self.slo_max_wait_s)
        ));
        out.push_str(&format!(
            "| bound: zero wait | {} | {} | — | 1.00 | 100% | 0 s | — | 0% | {} |\n",
            hours(b.zero_wait_instance_seconds / 3600.0),
            dollars(b.zero_wait_cost_usd),
            b.launches
        ));
        let ratio = |r: Option<f64>| r.map_or("—".into(), |r| format!("{r:.2}"));
        for p in &self.policies {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.policy,
                hours(p.gpu_hours),
                dollars(p.cost_usd),
                ratio(p.ratio_to_slo_bound),
                ratio(p.ratio_to_zero_wait),
                percent(p.slo_attainment),
                seconds(p.wait_p99_s),
                percent(p.cold_start_share()),
                percent(p.shed_share()),
                p.launches
            ));
        }
        out.push_str(&self.markdown_pools());
        for s in &self.skipped {
            out.push_str(&format!("\nNot run: {s}\n"));
        }
        out
    }

    /// Per pool, for deployments of more than one pool or with Spot interruptions:
    /// where the instance time went, and what interruptions took.
    fn markdown_pools(&self) -> String {
        let shown = |p: &PolicyReport| {
            p.pools.len() > 1
                || p.pools
                    .iter()
                    .any(|u| u.interruptions > 0 || u.warm_hours > 0.0)
        };
        if !self.policies.iter().any(shown) {
            return String::new();
        }
        let mut out = String::from(
            "\n| policy | pool | GPU-hours | cost | launches | warm starts | Spot interruptions | waited > long_wait |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let mut lost = Vec::new();
        for p in self.policies.iter().filter(|p| shown(p)) {
            for (i, u) in p.pools.iter().enumerate() {
                // Waits are the deployment's, not a pool's: on the first row.
                let longer = if i == 0 {
                    format!(
                        "{} ({})",
                        p.waited_longer,
                        percent(share(p.waited_longer, p.requests))
                    )
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    p.policy,
                    u.pool,
                    hours(u.instance_seconds / 3600.0),
                    dollars(u.cost_usd),
                    u.launches,
                    u.warm_starts,
                    u.interruptions,
                    longer
                ));
            }
            if p.pools.iter().any(|u| u.interruptions > 0) {
                lost.push(format!("{} {}", p.policy, p.interrupted_in_flight));
            }
        }
        if !lost.is_empty() {
            out.push_str(&format!(
                "\nRequests in flight on a Spot instance when it was reclaimed (counted as failed): {}.\n",
                lost.join(", ")
            ));
        }
        out
    }

    /// A Markdown table of the frontiers: each family's points, cheapest first.
    pub fn markdown_frontiers(&self) -> String {
        let mut out = String::from(
            "| baseline | runs | frontier: setting (cost, SLO met), cheapest first |\n| --- | ---: | --- |\n",
        );
        for f in &self.frontiers {
            let points: Vec<String> = f
                .points
                .iter()
                .map(|p| {
                    format!(
                        "`{}` ({}, {})",
                        p.policy,
                        dollars(p.cost_usd),
                        percent(p.slo_attainment)
                    )
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                f.family,
                f.runs,
                points.join("; ")
            ));
        }
        out
    }

    /// The frontier points that dominate the policy named `policy`.
    pub fn dominating(&self, policy: &str) -> Vec<&Point> {
        self.policies
            .iter()
            .find(|p| p.policy == policy)
            .map_or_else(Vec::new, |p| dominating(&self.frontiers, &Point::of(p)))
    }

    /// One line saying what was replayed.
    pub fn summary(&self) -> String {
        let warmup = if self.warmup_s > 0.0 {
            format!(" (scored after a {} s warmup)", self.warmup_s)
        } else {
            String::new()
        };
        format!(
            "{}: {} requests over {:.1} h{warmup} from {}; {} slots/instance at ${}/h, boot {} s; SLO: wait ≤ {} s",
            self.scenario,
            self.requests,
            self.horizon_hours,
            self.trace,
            self.slots,
            self.price_per_hour_usd,
            self.boot_time_s,
            self.slo_max_wait_s
        )
    }
}

fn hours(h: f64) -> String {
    if h >= 100.0 {
        format!("{h:.0}")
    } else if h >= 10.0 {
        format!("{h:.1}")
    } else {
        format!("{h:.2}")
    }
}

fn dollars(c: f64) -> String {
    if c >= 100.0 {
        format!("${c:.0}")
    } else {
        format!("${c:.2}")
    }
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 || p == 100.0 {
        format!("{p:.0}%")
    } else if (99.0..100.0).contains(&p) {
        // Keep 99.96% from printing as 100.0%.
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    } else {
        format!("{p:.1}%")
    }
}

fn seconds(s: f64) -> String {
    if s == 0.0 {
        "0 s".into()
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}
