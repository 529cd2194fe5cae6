//! Spot pools in the simulator: the interruption process, what a warned instance does,
//! and how `decide()` prices a pool that keeps getting reclaimed.

mod support;

use scale0_sim::{PolicyKind, PolicyReport, PoolUsage, Scenario, Trace};
use support::{HOUR, POOL, csv, run, scenario, scenario_text};

/// A Spot pool at 35% of the on-demand pool's price, same slots and boot.
const POOLS: &str = r#"name = "spot"
        capacity_type = "spot"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 1.26
        boot_time = "10s"
        [[deployment.pools]]
        name = "od"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s""#;

fn spot_scenario(rate: f64, notice: &str, correlation: f64) -> Scenario {
    let extra = format!(
        "{HOUR}\n[instances]\ninterruptions_per_instance_hour = {rate}\n\
         interruption_notice = \"{notice}\"\ninterruption_correlation = {correlation}"
    );
    scenario(&extra, "", POOLS)
}

/// One request every 0.5 s for an hour: about four in flight (2 s each).
fn steady() -> Trace {
    let times: Vec<f64> = (0..7200).map(|i| f64::from(i) * 0.5).collect();
    csv(&times)
}

fn scale0(s: &Scenario) -> PolicyReport {
    run(s, &steady(), &[PolicyKind::scale0(None)])
        .policies
        .remove(0)
}

fn pool<'a>(r: &'a PolicyReport, name: &str) -> &'a PoolUsage {
    r.pools.iter().find(|p| p.pool == name).expect("pool")
}

#[test]
fn interrupted_instances_drain_and_are_replaced_without_losing_a_request() {
    // Four interruptions an instance-hour: a dozen or so over the hour. A warned
    // instance takes no new request, its 2 s requests finish well within the two
    // minutes' notice, and a replacement is launched at once.
    let r = scale0(&spot_scenario(4.0, "2m", 0.0));
    let spot = pool(&r, "spot");
    assert!(spot.interruptions >= 5, "{r:#?}");
    assert_eq!((r.failed, r.interrupted_in_flight), (0, 0), "{r:#?}");
    assert!(spot.launches > spot.interruptions, "replaced: {r:#?}");
    assert!(r.slo_attainment > 0.99, "{}", r.slo_attainment);
    // Without interruptions the same stream runs on Spot alone.
    let calm = scale0(&spot_scenario(0.0, "2m", 0.0));
    assert_eq!(pool(&calm, "od").launches, 0, "{calm:#?}");
    assert_eq!(pool(&calm, "spot").interruptions, 0);
}

#[test]
fn requests_longer_than_the_notice_are_lost_with_the_instance_and_counted() {
    // A 1 s notice against 2 s requests: a busy instance is reclaimed while serving.
    let r = scale0(&spot_scenario(4.0, "1s", 0.0));
    assert!(r.interrupted_in_flight > 0, "{r:#?}");
    assert!(r.failed >= r.interrupted_in_flight);
}

#[test]
fn a_pool_that_keeps_getting_reclaimed_stops_being_first_choice() {
    // 60 interruptions an instance-hour waste more than the Spot pool's price saves
    // (each costs a boot and the notice): decide() prices it out and launches the
    // on-demand pool instead, once it has seen the interruptions.
    let r = scale0(&spot_scenario(60.0, "2m", 0.0));
    let (spot, od) = (pool(&r, "spot"), pool(&r, "od"));
    assert!(od.instance_seconds > spot.instance_seconds, "{r:#?}");
    // At four an instance-hour Spot stays the cheaper pool per served hour.
    let r = scale0(&spot_scenario(4.0, "2m", 0.0));
    assert!(pool(&r, "spot").instance_seconds > pool(&r, "od").instance_seconds);
}

#[test]
fn correlated_interruptions_take_more_of_the_pool_at_once() {
    let alone = scale0(&spot_scenario(4.0, "2m", 0.0));
    let together = scale0(&spot_scenario(4.0, "2m", 1.0));
    let count = |r: &PolicyReport| pool(r, "spot").interruptions;
    assert!(count(&together) > count(&alone), "{together:#?}");
    assert_eq!(together.interrupted_in_flight, 0);
}

#[test]
fn a_warned_instance_serves_while_its_replacement_boots() {
    // Correlation 1: every warning takes the whole Spot pool at once. The warned
    // instances keep taking requests until 30 s before their reclaim, 90 s, far longer
    // than the 10 s their replacements take to boot, so few requests wait for those
    // boots (46 waits over 5 s in the hour, about 20 of them the start from zero).
    let with_long_wait = |notice: &str| {
        let mut s = spot_scenario(4.0, notice, 1.0);
        s.slo.long_wait = scale0_core::duration::HumanDuration::from_secs(5);
        scale0(&s)
    };
    let r = with_long_wait("2m");
    assert!(pool(&r, "spot").interruptions >= 10, "{r:#?}");
    assert_eq!(r.failed, 0);
    // With a notice shorter than the 30 s margin they take nothing after the warning:
    // the fleet is gone at once and requests wait for every wave's replacements (116).
    let short = with_long_wait("20s");
    assert!(
        short.waited_longer > 2 * r.waited_longer,
        "{} against {}",
        short.waited_longer,
        r.waited_longer
    );
}

#[test]
fn interruption_settings_are_checked_naming_the_field() {
    let bad = format!(
        "{HOUR}\n[instances]\ninterruptions_per_instance_hour = -1.0\n\
         interruption_notice = \"0s\"\ninterruption_correlation = 1.5"
    );
    let text = scenario_text(&bad, "", POOL);
    let err = Scenario::from_toml_str(&text).unwrap_err().to_string();
    for field in [
        "instances.interruptions_per_instance_hour: -1 must be non-negative",
        "instances.interruption_notice: must be positive",
        "instances.interruption_correlation: 1.5 must be in [0, 1]",
    ] {
        assert!(err.contains(field), "{field} in {err}");
    }
    // A rate with no Spot pool to interrupt is a mistake, not a no-op.
    let on_demand_only = text.replace("-1.0", "0.5");
    let err = Scenario::from_toml_str(&on_demand_only)
        .unwrap_err()
        .to_string();
    assert!(err.contains("only Spot pools are interrupted"), "{err}");
}
