//! A scenario's results: the oracle and one row per policy, as JSON and as a table.

use serde::{Deserialize, Serialize};

use crate::metrics::PolicyReport;
use crate::oracle::OracleReport;
use crate::scenario::Scenario;
use crate::trace::{MICROS_PER_SEC, Trace};
use crate::workload::Workload;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub description: String,
    pub trace: String,
    pub seed: u64,
    /// Requests replayed (after the transform).
    pub requests: u64,
    /// Length of the accounting window.
    pub horizon_hours: f64,
    pub slo_max_wait_s: f64,
    pub boot_time_s: f64,
    pub slots: u32,
    pub price_per_hour_usd: f64,
    /// The request deadline and scale0's policy settings that shape its results.
    pub scale0_settings: String,
    pub oracle: OracleReport,
    pub policies: Vec<PolicyReport>,
}

impl ScenarioReport {
    pub fn new(
        scenario: &Scenario,
        trace: &Trace,
        workload: &Workload,
        oracle: OracleReport,
        policies: Vec<PolicyReport>,
    ) -> ScenarioReport {
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
            requests: oracle.requests,
            horizon_hours: workload.horizon as f64 / (3600.0 * MICROS_PER_SEC as f64),
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
            oracle,
            policies,
        }
    }

    /// JSON with every figure of the table (and more), stable across runs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A Markdown table: the oracle first, then the policies in order.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from(
            "| policy | GPU-hours | cost | × oracle | SLO met | p99 wait | cold-start delayed | shed | launches |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let o = &self.oracle;
        out.push_str(&format!(
            "| oracle (lower bound) | {} | {} | 1.00 | 100% | 0 s | — | 0% | {} |\n",
            hours(o.gpu_hours),
            dollars(o.cost_usd),
            o.launches
        ));
        for p in &self.policies {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p.policy,
                hours(p.gpu_hours),
                dollars(p.cost_usd),
                p.ratio_to_oracle.map_or("—".into(), |r| format!("{r:.2}")),
                percent(p.slo_attainment),
                seconds(p.wait_p99_s),
                percent(p.cold_start_share()),
                percent(p.shed_share()),
                p.launches
            ));
        }
        out
    }

    /// One line saying what was replayed.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} requests over {:.1} h from {}; {} slots/instance at ${}/h, boot {} s; SLO: wait ≤ {} s",
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
