//! Every scenario the benchmark ships (the suite, the held-out set and the cost
//! scenarios) parses and validates, scale0's policy settings included, so `scale0 bench policies` never
//! fails on one halfway through a run.

use std::path::PathBuf;

use scale0_sim::{PolicyKind, Scenario};

#[test]
fn every_bench_scenario_is_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench");
    let mut checked = 0;
    for dir in ["scenarios", "held-out", "cost"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("bench dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let s = Scenario::from_toml_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                s.policies.is_some(),
                "{}: names its policies",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 39, "{checked} scenarios");
}

#[test]
fn scale0_takes_policy_settings_and_rejects_bad_ones() {
    let kind: PolicyKind = "scale0{cold_start_budget = 0.01}".parse().unwrap();
    assert_eq!(kind.to_string(), "scale0{cold_start_budget=0.01}");
    let kind: PolicyKind = "scale0@5s{cold_start_budget = 0.05}".parse().unwrap();
    assert_eq!(kind.to_string(), "scale0@5s{cold_start_budget=0.05}");
    let base = r#"
        name = "s"
        seed = 1
        policies = [POLICY]
        [trace]
        path = "t.csv"
        [service]
        model = "fixed"
        seconds = 1.0
        [slo]
        max_wait = "5s"
        [deployment]
        name = "d"
        [[deployment.pools]]
        name = "p"
        max_instances = 2
        slots = 1
        price_per_hour_usd = 1.0
        boot_time = "10s"
    "#;
    let with = |p: &str| Scenario::from_toml_str(&base.replace("POLICY", p));
    if let Err(e) = with(r#""scale0{cold_start_budget = 0.01}""#) {
        panic!("{e}");
    }
    let err = with(r#""scale0{cold_start_budget = 2.0}""#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cold_start_budget"), "{err}");
    let err = with(r#""scale0{cold_start = 0.1}""#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cold_start"), "{err}");
}
