//! Budgets in the simulator: `decide()` enforces the cap on the bill the simulator's
//! ledger keeps (`scale0_sim::spend`), and over generated traces, configs and Spot
//! interruption patterns no period is ever billed above its budget's limit.

mod support;

use proptest::prelude::*;
use scale0_sim::{PolicyKind, PolicyReport, Scenario};
use support::{csv, run, scenario};

const POOL: &str = r#"name = "p"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s""#;

/// One request every 0.5 s for `hours`: about four in flight (2 s each), three
/// instances at $3.60/h, $10.80 an hour.
fn steady(hours: u32) -> scale0_sim::Trace {
    let times: Vec<f64> = (0..hours * 7200).map(|i| f64::from(i) * 0.5).collect();
    csv(&times)
}

fn with_budget(budget: &str, hours: u32) -> Scenario {
    let extra = format!("[transform]\nwindow_length = \"{hours}h\"\n{budget}");
    scenario(&extra, "", POOL)
}

fn scale0(s: &Scenario, hours: u32) -> PolicyReport {
    run(s, &steady(hours), &[PolicyKind::scale0(None)])
        .policies
        .remove(0)
}

#[test]
fn a_daily_cap_blocks_scale_out_and_sheds_instead_of_spending_past_it() {
    let free = scale0(&with_budget("", 2), 2);
    assert!(free.cost_usd > 15.0, "{}", free.cost_usd);
    let capped = with_budget(
        "[[budgets]]\nname = \"day\"\nperiod = \"daily\"\nlimit_usd = 5.0",
        2,
    );
    let r = scale0(&capped, 2);
    let use_ = &r.budgets[0];
    assert_eq!(use_.budget, "day");
    assert!(use_.peak_period_usd <= 5.0 + 1e-9, "{use_:?}");
    // Close to the cap, not far below it: the rule stops launches only when the next
    // one would not fit.
    assert!(use_.peak_period_usd > 4.0, "{use_:?}");
    // What the budget could not pay for was shed, not served late.
    assert!(
        r.shed > 0 && r.slo_attainment < free.slo_attainment,
        "{r:#?}"
    );
}

#[test]
fn a_baseline_knows_no_budget_and_the_report_shows_it_passing_the_cap() {
    let s = with_budget(
        "[[budgets]]\nname = \"day\"\nperiod = \"daily\"\nlimit_usd = 5.0",
        2,
    );
    let r = run(
        &s,
        &steady(2),
        &[PolicyKind::baseline(scale0_sim::Family::KeepAlive)],
    );
    assert!(r.policies[0].budgets[0].peak_period_usd > 5.0);
}

#[test]
fn a_quota_bounds_the_fleet() {
    // Two vCPUs per instance under a 4-vCPU quota: at most two instances.
    let pool = format!("{POOL}\n        vcpus_per_instance = 2");
    let extra = "[transform]\nwindow_length = \"1h\"\n[[quotas]]\ncode = \"L-DB2E81BA\"\n\
                 name = \"g\"\nvcpus = 4\npools = [\"d/p\"]";
    let s = scenario(extra, "", &pool);
    let r = scale0(&s, 1);
    assert!(r.peak_instances <= 2, "{r:#?}");
    let free = scale0(&with_budget("", 1), 1);
    assert!(free.peak_instances > 2, "{free:#?}");
}

/// A generated world: bursts of arrivals, one or two pools (the first maybe Spot,
/// interrupted at a random rate and correlation), one or two budgets of every period
/// kind and cap action, and a random tick and drain timeout.
#[derive(Debug, Clone)]
struct World {
    bursts: Vec<(u32, u32, u32)>,
    spot: Option<(f64, f64)>,
    pools: Vec<(f64, u32, u32, u32)>,
    budgets: Vec<(u8, f64, u8, u32)>,
    tick_s: u32,
    drain_s: u32,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec((0u32..4 * 3600, 1u32..400, 1u32..20), 1..6),
        prop::option::of((0.0f64..6.0, 0.0f64..1.0)),
        prop::collection::vec((0.3f64..20.0, 5u32..300, 1u32..8, 1u32..12), 1..3),
        prop::collection::vec((0u8..3, 0.2f64..12.0, 0u8..2, 1u32..4), 1..3),
        10u32..90,
        20u32..300,
    )
        .prop_map(|(bursts, spot, pools, budgets, tick_s, drain_s)| World {
            bursts,
            spot,
            pools,
            budgets,
            tick_s,
            drain_s,
        })
}

impl World {
    fn scenario(&self) -> Scenario {
        let mut extra = String::from("[transform]\nwindow_length = \"5h\"\n");
        if let Some((rate, corr)) = self.spot {
            extra += &format!(
                "[instances]\ninterruptions_per_instance_hour = {rate}\n\
                 interruption_correlation = {corr}\n"
            );
        }
        let zones = ["UTC", "America/New_York", "Asia/Kolkata"];
        for (i, &(kind, limit, at_cap, window_h)) in self.budgets.iter().enumerate() {
            extra += &format!("[[budgets]]\nname = \"b{i}\"\nlimit_usd = {limit}\n");
            extra += match kind {
                0 => "period = \"daily\"\n".to_string(),
                1 => format!("period = \"rolling\"\nwindow = \"{window_h}h\"\n"),
                _ => "period = \"monthly\"\n".to_string(),
            }
            .as_str();
            extra += &format!("time_zone = \"{}\"\n", zones[i % zones.len()]);
            if at_cap == 1 {
                extra += "at_cap = \"scale-to-min\"\n";
            }
        }
        let pools: Vec<String> = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, &(price, boot, slots, max))| {
                let spot = if i == 0 && self.spot.is_some() {
                    "capacity_type = \"spot\"\n"
                } else {
                    ""
                };
                format!(
                    "name = \"p{i}\"\n{spot}max_instances = {max}\nslots = {slots}\n\
                     price_per_hour_usd = {price}\nboot_time = \"{boot}s\""
                )
            })
            .collect();
        let policy = format!(
            "drain_timeout = \"{}s\"\nscale_to_zero_grace = \"1m\"",
            self.drain_s
        );
        let mut s = scenario(&extra, &policy, &pools.join("\n[[deployment.pools]]\n"));
        s.control.tick = scale0_core::duration::HumanDuration::from_secs(u64::from(self.tick_s));
        s.validate().expect("a generated world is valid");
        s
    }

    fn trace(&self) -> scale0_sim::Trace {
        let mut times = Vec::new();
        for &(start, count, spacing_ds) in &self.bursts {
            times.extend((0..count).map(|i| f64::from(start) + f64::from(i * spacing_ds) / 10.0));
        }
        times.sort_by(f64::total_cmp);
        csv(&times)
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// `PROPTEST_CASES=2000 cargo test --release -p scale0-sim --test budget` runs the
    /// thousands BENCHMARKS.md reports; `make test` runs a few dozen.
    #[test]
    fn the_cap_holds_in_every_generated_world(w in world()) {
        let s = w.scenario();
        let r = run(&s, &w.trace(), &[
            PolicyKind::scale0(None),
            "scale0{predictive = \"on\"}".parse().expect("a policy"),
        ]);
        for p in &r.policies {
            for b in &p.budgets {
                prop_assert!(
                    b.peak_period_usd <= b.limit_usd + 1e-9,
                    "{}: budget {} billed ${} in one period, over its ${} cap",
                    p.policy, b.budget, b.peak_period_usd, b.limit_usd
                );
            }
        }
    }
}
