//! Same scenario and seed → the same JSON, byte for byte; another seed → another run.

mod support;

use scale0_sim::trace::{ReadOptions, parse};
use scale0_sim::{PolicyKind, RunOptions, run_scenario};
use support::{POOL, bench_scenario, run, scenario};

#[test]
fn same_seed_same_json() {
    // A count series: placement in bins, thinning, service and boot times all drawn.
    let counts: String = (0..3000).map(|i| format!("{} ", (i * 7919) % 5)).collect();
    let trace = parse(counts.as_bytes(), "c", None, ReadOptions::default()).unwrap();
    let text = r#"
        name = "det"
        seed = 11
        [trace]
        path = "c"
        [transform]
        thinning = 0.5
        [service]
        model = "lognormal"
        mean_seconds = 1.5
        sigma = 0.8
        [instances]
        boot_spread = 0.2
        [slo]
        max_wait = "5s"
        [deployment]
        name = "d"
        [[deployment.pools]]
        name = "p"
        max_instances = 20
        slots = 4
        price_per_hour_usd = 1.0
        boot_time = "30s"
    "#;
    let s = scale0_sim::Scenario::from_toml_str(text).unwrap();
    let all = PolicyKind::all();
    let a = run_scenario(
        &s,
        &trace,
        &all,
        &RunOptions::default(),
        &mut |_, _, _, _| {},
    )
    .unwrap();
    let b = run_scenario(
        &s,
        &trace,
        &all,
        &RunOptions::default(),
        &mut |_, _, _, _| {},
    )
    .unwrap();
    assert_eq!(a.to_json(), b.to_json());
    let mut other = s.clone();
    other.seed = 12;
    let c = run_scenario(
        &other,
        &trace,
        &all,
        &RunOptions::default(),
        &mut |_, _, _, _| {},
    )
    .unwrap();
    assert_ne!(a.to_json(), c.to_json());
}

#[test]
fn a_request_trace_is_deterministic_too() {
    let s = scenario("", "", POOL);
    let t = support::csv(&[0.0, 0.1, 0.2, 5.0, 50.0, 51.0, 400.0]);
    assert_eq!(
        run(&s, &t, &PolicyKind::all()).to_json(),
        run(&s, &t, &PolicyKind::all()).to_json()
    );
}

/// On a real bench scenario (when the shared traces are here).
#[test]
fn bench_scenario_is_deterministic() {
    let Some((s, t)) = bench_scenario("azure-code-2023-5x-boot90.toml") else {
        return;
    };
    let kinds = [
        PolicyKind::scale0(None),
        PolicyKind::baseline(scale0_sim::Family::Knative),
    ];
    let a = run_scenario(&s, &t, &kinds, &RunOptions::default(), &mut |_, _, _, _| {}).unwrap();
    let b = run_scenario(&s, &t, &kinds, &RunOptions::default(), &mut |_, _, _, _| {}).unwrap();
    assert_eq!(a.to_json(), b.to_json());
    // An integral multiplier makes exactly five of each request.
    assert_eq!(a.requests, 8819 * 5);
}
