//! Warm pools in the simulator, by hand: a launch takes a prepared instance and is
//! ready after `warm_boot_time`; the group refills the pool with a full, billed boot;
//! stopped warm instances cost their storage price.

mod support;

use scale0_sim::PolicyKind;
use support::{HOUR, QUICK, csv, run, scenario};

/// The engine test's pool, with one warm instance that starts in 3 s and costs
/// $0.36/h stopped.
const WARM_POOL: &str = r#"name = "p"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s"
        warm_pool_size = 1
        warm_boot_time = "3s"
        warm_price_per_hour_usd = 0.36"#;

#[test]
fn a_return_from_zero_starts_warm_and_the_pool_refills_with_a_billed_boot() {
    // t=0: one request at zero; the tick at t=0 launches one: a warm start.
    //      The group refills the warm pool at once: a 10 s boot, billed, until t=10.
    // t=3: ready (warm start); the request waited 3 s. Done at t=5.
    // t=35: idle for the 30 s grace → zero.
    // t=100: the second request; the warm instance prepared at t=10 starts: ready at
    //      103, done at 105, zero at 135; its refill boots 100..110.
    // Billed at $3.6/h: 35 + 10 + 35 + 10 = 90 s. Stopped and warm: t=10..100 and
    // t=110..3600, 3,580 s at $0.36/h.
    let s = scenario(HOUR, QUICK, WARM_POOL);
    let r = run(&s, &csv(&[0.0, 100.0]), &[PolicyKind::scale0(None)]);
    let p = &r.policies[0];
    let pool = &p.pools[0];
    assert_eq!(p.wait_max_s, 3.0, "{p:#?}");
    assert_eq!((pool.warm_starts, pool.launches), (2, 2));
    assert_eq!(p.instance_seconds, 90.0, "{p:#?}");
    assert!(
        (pool.warm_hours - 3580.0 / 3600.0).abs() < 1e-9,
        "{pool:#?}"
    );
    let expected = 90.0 / 3600.0 * 3.6 + 3580.0 / 3600.0 * 0.36;
    assert!(
        (p.cost_usd - expected).abs() < 1e-9,
        "{} vs {expected}",
        p.cost_usd
    );
}

#[test]
fn a_second_launch_while_the_pool_refills_boots_cold() {
    // Four requests at t=0 need two instances (2 slots each, a backlog at zero asks
    // for its whole need): the first starts warm (ready at 3), the second boots cold
    // (ready at 10). The warm one serves two at t=3 and the other two when they finish
    // at t=5, before the cold one is ready: waits 3, 3, 5, 5.
    let s = scenario(HOUR, QUICK, WARM_POOL);
    let r = run(&s, &csv(&[0.0, 0.0, 0.0, 0.0]), &[PolicyKind::scale0(None)]);
    let p = &r.policies[0];
    assert_eq!((p.pools[0].warm_starts, p.launches), (1, 2), "{p:#?}");
    assert_eq!((p.wait_p50_s, p.wait_max_s), (3.0, 5.0));
}

#[test]
fn waits_longer_than_long_wait_are_counted() {
    // Without the warm pool both requests wait the 10 s boot; with it, 3 s.
    let cold_pool = WARM_POOL
        .lines()
        .filter(|l| !l.contains("warm"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut cold = scenario(HOUR, QUICK, &cold_pool);
    let mut warm = scenario(HOUR, QUICK, WARM_POOL);
    for s in [&mut cold, &mut warm] {
        s.slo.long_wait = scale0_core::duration::HumanDuration::from_secs(5);
    }
    let trace = csv(&[0.0, 100.0]);
    let c = run(&cold, &trace, &[PolicyKind::scale0(None)]);
    let w = run(&warm, &trace, &[PolicyKind::scale0(None)]);
    assert_eq!(c.policies[0].waited_longer, 2, "{:#?}", c.policies[0]);
    assert_eq!(w.policies[0].waited_longer, 0);
}
