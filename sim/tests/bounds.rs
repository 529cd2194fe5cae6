//! The bounds against hand-made traces and against every policy and every point of
//! every baseline's sweep: no run that meets a bound's premise costs less than it.

mod support;

use scale0_core::duration::HumanDuration;
use scale0_sim::{self as sim, PolicyKind, RunOptions};
use support::{POOL, csv, run, scenario};

#[test]
fn gap_just_shorter_and_just_longer_than_the_boot() {
    // 2 s requests at t=100 and after a gap; boot 10 s, one slot per instance.
    let pool = POOL.replace("slots = 2", "slots = 1");
    // An hour's window, so nothing is clipped at the last arrival.
    let s = scenario("[transform]\nwindow_length = \"1h\"", "", &pool);
    // Gap 9.5 s (< boot): the instance stays across it: 10 + 2 + 9.5 + 2.
    let short = run(&s, &csv(&[100.0, 111.5]), &[]);
    assert_eq!(short.bounds.zero_wait_instance_seconds, 23.5);
    assert_eq!(short.bounds.launches, 1);
    // Gap 10.5 s (> boot): stop, boot again 10 s before: 10 + 2 + 10 + 2.
    let long = run(&s, &csv(&[100.0, 112.5]), &[]);
    assert_eq!(long.bounds.zero_wait_instance_seconds, 24.0);
    assert_eq!(long.bounds.launches, 2);
    // Within the 60 s SLO one instance-interval covers both: 10 + 2 + 12.5 - 10 … at
    // least one boot and the service of the heavier request.
    assert!(long.bounds.within_slo_cost_usd < long.bounds.zero_wait_cost_usd);
    assert!(long.bounds.within_slo_cost_usd >= 0.012 - 1e-12);
}

/// A second pool with a shorter boot and smaller, pricier instances: the bounds take
/// the best of each kind, so they hold when scale0 uses both.
const TWO_POOLS: &str = r#"name = "p"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s"
        [[deployment.pools]]
        name = "fast"
        max_instances = 20
        slots = 1
        price_per_hour_usd = 2.5
        boot_time = "4s""#;

#[test]
fn no_run_beats_the_bound_it_is_compared_to() {
    // Test scenarios: steady, bursty, sparse, and a mix.
    let steady: Vec<f64> = (0..600).map(|i| f64::from(i) * 0.7).collect();
    let bursty: Vec<f64> = (0..20)
        .flat_map(|b| (0..15).map(move |i| f64::from(b) * 120.0 + f64::from(i) * 0.1))
        .collect();
    let sparse: Vec<f64> = (0..30)
        .map(|i| f64::from(i) * 97.0 + f64::from(i % 3) * 11.0)
        .collect();
    let mut mixed = steady.clone();
    mixed.extend(bursty.iter().map(|t| t + 500.0));
    mixed.sort_by(f64::total_cmp);
    let options = RunOptions {
        frontiers: true,
        ..RunOptions::default()
    };
    let kinds: Vec<PolicyKind> = PolicyKind::all()
        .into_iter()
        .chain(["always-on{instances=20}".parse().unwrap()])
        .collect();
    let (mut within, mut zero) = (0, 0);
    for (name, times) in [
        ("steady", &steady),
        ("bursty", &bursty),
        ("sparse", &sparse),
        ("mixed", &mixed),
    ] {
        for (pools, wait, warmup) in [
            (POOL, 0, 0),
            (POOL, 60, 0),
            (TWO_POOLS, 20, 0),
            (POOL, 20, 300),
        ] {
            let mut s = scenario("", "", pools);
            s.slo.max_wait = HumanDuration::from_secs(wait);
            s.slo.warmup = HumanDuration::from_secs(warmup);
            let trace = csv(times);
            let prepared = sim::Prepared::new(&s, &trace, options).unwrap();
            let b = &prepared.bounds;
            for planned in prepared.runs(&kinds) {
                let Ok(p) = prepared.run(&planned.kind, &mut |_| {}) else {
                    continue;
                };
                let case = format!("{name}, SLO {wait} s, warmup {warmup} s: {}", p.policy);
                if p.slo_attainment == 1.0 {
                    within += 1;
                    assert!(
                        b.within_slo_cost_usd <= p.cost_usd + 1e-9,
                        "{case} costs {} < within-SLO bound {}",
                        p.cost_usd,
                        b.within_slo_cost_usd
                    );
                }
                if p.slo_attainment == 1.0 && p.wait_max_s == 0.0 {
                    zero += 1;
                    assert!(
                        b.zero_wait_cost_usd <= p.cost_usd + 1e-9,
                        "{case} costs {} < zero-wait bound {}",
                        p.cost_usd,
                        b.zero_wait_cost_usd
                    );
                }
            }
            assert!(b.within_slo_cost_usd <= b.zero_wait_cost_usd + 1e-9 || wait == 0);
        }
    }
    eprintln!("{within} runs met the SLO for every request, {zero} never waited");
    assert!(
        within >= 50 && zero >= 10,
        "too few runs checked: {within}, {zero}"
    );
}
