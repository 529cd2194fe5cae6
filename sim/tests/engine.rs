//! Hand-checked tiny traces through the engine, one comment per step.

mod support;

use scale0_core::duration::HumanDuration;
use scale0_sim::{self as sim, Family, PolicyKind, RunOptions, Workload};
use support::{HOUR, POOL, QUICK, csv, run, scenario};

#[test]
fn one_request_at_zero_costs_boot_plus_service_plus_keep_alive() {
    // t=0: one request arrives at zero; the worker raises `activation`, but the
    //      periodic tick at t=0 runs first (arrivals precede decisions at an instant):
    //      backlog 1 at zero → launch one. Billing starts now.
    // t=10: booted (10 s); the request starts (waited 10 s, a cold start).
    // t=12: done (2 s). Idle from here.
    // t=42: idle for the 30 s grace → scale to zero; the idle instance stops.
    // Billed 0..42 = boot 10 + service 2 + keep-alive 30 = 42 s at $3.6/h.
    // The window is an hour, so all of it is billed.
    let s = scenario(HOUR, QUICK, POOL);
    let r = run(&s, &csv(&[0.0]), &[PolicyKind::scale0(None)]);
    let p = &r.policies[0];
    assert_eq!(p.instance_seconds, 42.0, "{p:#?}");
    assert!((p.cost_usd - 0.042).abs() < 1e-12);
    assert_eq!((p.launches, p.served, p.cold_start_delayed), (1, 1, 1));
    assert_eq!(p.wait_max_s, 10.0);
    // Fixed keep-alive: the same boot and service, then 10 minutes.
    let k = run(&s, &csv(&[0.0]), &[PolicyKind::baseline(Family::KeepAlive)]);
    assert_eq!(k.policies[0].instance_seconds, 10.0 + 2.0 + 600.0);
    // The zero-wait bound boots 10 s before the arrival (clipped at the window start:
    // t=0) and pays the 2 s of service.
    assert_eq!(r.bounds.zero_wait_instance_seconds, 2.0);
}

#[test]
fn a_second_request_inside_the_grace_reuses_the_instance() {
    // The first as above (ready at 10, done at 12); the second arrives at 30, within the
    // grace: served at once, done at 32; zero at 32 + 30 = 62. Billed 0..62.
    let s = scenario(HOUR, QUICK, POOL);
    let r = run(&s, &csv(&[0.0, 30.0]), &[PolicyKind::scale0(None)]);
    let p = &r.policies[0];
    assert_eq!((p.launches, p.cold_start_delayed), (1, 1));
    assert_eq!(p.instance_seconds, 62.0);
    assert_eq!(p.slo_attainment, 1.0);
}

#[test]
fn requests_expire_at_their_deadline_and_are_counted() {
    // A 5 s deadline against a 10 s boot: the worker sheds what cannot be served in
    // time (core::admission estimates the boot), so nothing waits to expire.
    let s = scenario("[requests]\ndeadline = \"5s\"", QUICK, POOL);
    let r = run(&s, &csv(&[0.0, 0.5, 20.0]), &[PolicyKind::scale0(None)]);
    let p = &r.policies[0];
    assert_eq!(p.requests, 3);
    assert_eq!(p.shed + p.expired + p.served, 3, "{p:#?}");
    assert!(p.shed + p.expired >= 2, "{p:#?}");
    assert!(p.slo_attainment < 1.0);
}

#[test]
fn always_on_is_sized_from_the_warmup_and_boots_in_it() {
    // Bursts of 8 requests (2 s each) every 10 s: 8 at once → 4 instances of 2
    // slots. Sized from the first 20 s (the warmup), launched at t=0, booting 10 s in
    // the warmup, with the backlog of the first two bursts served by t=14: after the
    // warmup nothing waits.
    let times: Vec<f64> = (0..6)
        .flat_map(|k| (0..8).map(move |i| f64::from(k) * 10.0 + f64::from(i) * 0.01))
        .collect();
    let mut s = scenario("", QUICK, POOL);
    s.slo.warmup = HumanDuration::from_secs(20);
    let r = run(&s, &csv(&times), &[PolicyKind::baseline(Family::AlwaysOn)]);
    let p = &r.policies[0];
    assert_eq!(r.bounds.peak_concurrency, 8);
    assert_eq!(p.peak_instances, 4);
    // Scored: the 32 requests from t=20 s on. Launches in the scored window: none.
    assert_eq!(p.requests, 32);
    assert_eq!(
        (p.slo_attainment, p.wait_max_s, p.launches),
        (1.0, 0.0, 0),
        "{p:#?}"
    );
    // The window ends at the last arrival (50.07 s), billed from 20 s: 4 × 30.07.
    assert!(
        (p.instance_seconds - 4.0 * 30.07).abs() < 1e-6,
        "{}",
        p.instance_seconds
    );
    // Without a warmup or a size it cannot be built, and says why.
    s.slo.warmup = HumanDuration::ZERO;
    let r = run(&s, &csv(&times), &[PolicyKind::baseline(Family::AlwaysOn)]);
    assert!(r.policies.is_empty());
    assert!(r.skipped[0].contains("instances"), "{:?}", r.skipped);
}

#[test]
fn keep_alive_packs_requests_so_spare_instances_expire() {
    // A burst of 4 at t=0 starts 2 instances (2 slots each); from t=20 on, one request
    // every 5 s. Packed, they all land on one instance and the other expires a TTL
    // after the burst; spread (least outstanding), both would stay warm.
    let mut times = vec![0.0, 0.0, 0.0, 0.0];
    times.extend((4..=60).map(|i| f64::from(i) * 5.0));
    let s = scenario("", QUICK, POOL);
    let kind: PolicyKind = "keep-alive@30s".parse().unwrap();
    let r = run(&s, &csv(&times), &[kind]);
    let p = &r.policies[0];
    assert_eq!(p.launches, 2);
    // One instance for the whole 300 s window, the other for boot + 2 s + 30 s TTL
    // (give or take the 1 s expiry check).
    assert!(p.instance_seconds < 300.0 + 45.0, "{}", p.instance_seconds);
}

#[test]
fn priorities_are_served_first() {
    // Half the requests at priority 5. With one 2-slot instance and a burst of 20 at
    // once, the high-priority half waits less.
    let extra = "[[requests.priorities]]\npriority = 5\nshare = 0.5";
    let pool = POOL.replace("max_instances = 20", "max_instances = 1");
    let s = scenario(extra, QUICK, &pool);
    let t = csv(&[0.0; 20]);
    let w = Workload::new(&t, &s).unwrap();
    let reqs: Vec<_> = w.requests().collect();
    assert!(reqs.iter().any(|r| r.priority == 5) && reqs.iter().any(|r| r.priority == 0));
    let r = run(&s, &t, &["always-on{instances=1}".parse().unwrap()]);
    assert_eq!(r.policies[0].served, 20);
}

/// Skipping empty ticks (scale0's provable no-ops) changes no figure.
#[test]
fn skipping_idle_ticks_changes_nothing() {
    let mut times = vec![0.0, 1.0, 2.0];
    // Sparse: gaps of minutes to an hour.
    let mut t = 5.0;
    for i in 0..60 {
        t += 30.0 + f64::from((i * 37) % 11) * 400.0;
        times.push(t);
        if i % 7 == 0 {
            times.push(t + 0.5);
            times.push(t + 3.0);
        }
    }
    for policy in [QUICK, ""] {
        let s = scenario("", policy, POOL);
        let trace = csv(&times);
        let kinds = [
            PolicyKind::scale0(None),
            PolicyKind::scale0(Some(HumanDuration::from_secs(5))),
        ];
        let skip = sim::run_scenario(
            &s,
            &trace,
            &kinds,
            &RunOptions::default(),
            &mut |_, _, _, _| {},
        )
        .unwrap();
        let full = sim::run_scenario(
            &s,
            &trace,
            &kinds,
            &RunOptions {
                skip_idle_ticks: false,
                ..RunOptions::default()
            },
            &mut |_, _, _, _| {},
        )
        .unwrap();
        assert_eq!(skip.to_json(), full.to_json());
        assert_eq!(skip.policies[0].series, full.policies[0].series);
    }
}

#[test]
fn activation_wakes_scale0_between_ticks() {
    // A 60 s tick: the request at t=5 raises `activation`; scale0 decides at t=6
    // (activation latency 1 s), not at the t=60 tick. Ready at 16, so it waits 11 s.
    let s = scenario(HOUR, QUICK, POOL);
    let mut s = s;
    s.control.tick = HumanDuration::from_secs(60);
    let r = run(&s, &csv(&[5.0]), &[PolicyKind::scale0(None)]);
    assert_eq!(r.policies[0].wait_max_s, 11.0);
    // KEDA polls every 30 s and has no activation event: it sees the queue at t=30
    // (its queue length lags 5 s, so the t=15 poll misses it), then boots 10 s.
    let k = run(&s, &csv(&[5.0]), &[PolicyKind::baseline(Family::Keda)]);
    assert_eq!(k.policies[0].wait_max_s, 35.0);
}
