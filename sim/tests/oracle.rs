//! The oracle against hand-made traces and against every policy: no policy that meets
//! the SLO for every request costs less than the bound.

mod support;

use scale0_core::duration::HumanDuration;
use scale0_sim::PolicyKind;
use support::{POOL, csv, run, scenario};

#[test]
fn gap_just_shorter_and_just_longer_than_the_boot() {
    // 2 s requests at t=100 and after a gap; boot 10 s, one slot per instance.
    let pool = POOL.replace("slots = 2", "slots = 1");
    // An hour's window, so nothing is clipped at the last arrival.
    let s = scenario("[transform]\nwindow_length = \"1h\"", "", &pool);
    // Gap 9.5 s (< boot): the instance stays across it: 10 + 2 + 9.5 + 2.
    let short = run(&s, &csv(&[100.0, 111.5]), &[]);
    assert_eq!(short.oracle.instance_seconds, 23.5);
    assert_eq!(short.oracle.launches, 1);
    // Gap 10.5 s (> boot): stop, boot again 10 s before: 10 + 2 + 10 + 2.
    let long = run(&s, &csv(&[100.0, 112.5]), &[]);
    assert_eq!(long.oracle.instance_seconds, 24.0);
    assert_eq!(long.oracle.launches, 2);
}

#[test]
fn oracle_is_below_every_policy_that_meets_the_slo_everywhere() {
    // Test scenarios: steady, bursty, sparse, and a mix, on 2-slot instances.
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
    let mut checked = 0;
    for (name, times) in [
        ("steady", &steady),
        ("bursty", &bursty),
        ("sparse", &sparse),
        ("mixed", &mixed),
    ] {
        for wait in [0, 60] {
            let mut s = scenario("", "", POOL);
            s.slo.max_wait = HumanDuration::from_secs(wait);
            let r = run(&s, &csv(times), &PolicyKind::all());
            for p in &r.policies {
                if p.slo_attainment == 1.0 {
                    checked += 1;
                    assert!(
                        r.oracle.cost_usd <= p.cost_usd + 1e-9,
                        "{name}, SLO {wait} s: {} costs {} < oracle {}",
                        p.policy,
                        p.cost_usd,
                        r.oracle.cost_usd
                    );
                }
            }
            // Always-on never queues, so it always qualifies.
            let always = r.policies.iter().find(|p| p.policy == "always-on").unwrap();
            assert_eq!(always.slo_attainment, 1.0, "{name}");
        }
    }
    eprintln!("{checked} runs met their SLO for every request");
    assert!(
        checked >= 8,
        "only {checked} policy runs met their SLO everywhere"
    );
}
