//! Timeline tests of `decide()`, one comment per step, and property tests of its
//! invariants.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::config::{Config, Metric, StepRule};
use crate::contract::{InstanceRecord, InstanceState};
use crate::duration::HumanDuration;

const SPEC: &str = r#"
    [[deployments]]
    name = "chat"
    request_deadline = "5m"
    expected_service_time = "2s"
    [deployments.policy]
    scale_to_zero_grace = "5m"
    boot_timeout = "10m"
    drain_timeout = "2m"
    [[deployments.pools]]
    name = "a10g"
    max_instances = 10
    slots = 8
    price_per_hour_usd = 1.0
    boot_time = "90s"
    [[deployments.pools]]
    name = "l4"
    max_instances = 4
    slots = 4
    price_per_hour_usd = 0.8
    boot_time = "60s"
"#;

fn spec() -> Deployment {
    Config::load(SPEC).unwrap().deployments.remove(0)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

fn inst(
    id: &str,
    pool: &str,
    state: InstanceState,
    launched: DateTime<Utc>,
    in_flight: u32,
) -> ObservedInstance {
    ObservedInstance {
        record: InstanceRecord {
            id: id.into(),
            deployment: "chat".into(),
            pool: pool.into(),
            state,
            endpoint: None,
            launched_at: launched,
            ready_at: (state == InstanceState::Ready).then_some(launched),
            draining_since: (state == InstanceState::Draining).then_some(launched),
            failures: 0,
            reclaim_at: None,
        },
        in_flight,
    }
}

/// Add the launches of `d` to `obs` as booting instances, as a provider would.
fn apply_launches(obs: &mut Observation, d: &Decision, at: DateTime<Utc>) {
    for p in &d.pools {
        for n in 0..p.launch {
            let id = format!("{}-{}-{}", p.pool, at.timestamp(), n);
            obs.instances
                .push(inst(&id, &p.pool, InstanceState::Booting, at, 0));
        }
    }
    obs.instances
        .retain(|i| !d.terminate.contains(&i.record.id));
    for i in &mut obs.instances {
        if d.drain.contains(&i.record.id) {
            i.record.state = InstanceState::Draining;
            i.record.draining_since = Some(at);
        }
    }
}

/// Slots the decision launches (a10g 8 per instance, l4 4).
fn launched_slots(d: &Decision) -> u32 {
    d.pools
        .iter()
        .map(|p| p.launch * if p.pool == "a10g" { 8 } else { 4 })
        .sum()
}

fn mark_ready(obs: &mut Observation) {
    for i in &mut obs.instances {
        if i.record.state.is_booting() {
            i.record.state = InstanceState::Ready;
        }
    }
}

#[test]
fn scale_from_zero_asks_for_the_whole_backlog_then_waits_for_boots() {
    let spec = spec();
    let mut mem = PolicyMemory::default();
    // t=0: 3000 requests held at zero capacity. They wait a boot first (90s lead), then
    // drain within target_queue_wait (10s, which fits in the 5m deadline): 3000 × 2s /
    // 10s = 600 concurrency, far beyond both pools' max (112 slots): every instance.
    let mut obs = Observation {
        held: 3000,
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &mem);
    assert!(
        d.launch_total() > 1,
        "asks for more than one instance: {:?}",
        d.reasons
    );
    let slots = launched_slots(&d);
    assert_eq!(slots, 10 * 8 + 4 * 4, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains("scale from zero")),
        "{:?}",
        d.reasons
    );
    apply_launches(&mut obs, &d, t0());
    mem = d.memory;

    // t=+30s: same backlog, the instances still booting cover it → no second launch.
    let d = decide(t0() + secs(30), &spec, &obs, &mem);
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
    assert!(d.drain.is_empty() && d.terminate.is_empty());
}

#[test]
fn booting_instances_count_as_capacity() {
    let spec = spec();
    // 20 in flight on 2 ready + 2 booting a10g: 20 / 0.7 = 28.6 slots ≤ 32 → no launch.
    let obs = Observation {
        in_flight: 20,
        instances: vec![
            inst("r1", "a10g", InstanceState::Ready, t0() - secs(600), 10),
            inst("r2", "a10g", InstanceState::Ready, t0() - secs(600), 10),
            inst("b1", "a10g", InstanceState::Booting, t0() - secs(10), 0),
            inst("b2", "a10g", InstanceState::Requested, t0(), 0),
        ],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
}

#[test]
fn scale_in_is_stabilized_and_rate_limited() {
    let spec = spec();
    let mut mem = PolicyMemory::default();
    let ready = |n: usize, in_flight: u32| -> Vec<ObservedInstance> {
        (0..n)
            .map(|i| {
                inst(
                    &format!("a{i}"),
                    "a10g",
                    InstanceState::Ready,
                    t0() - secs(3600),
                    in_flight,
                )
            })
            .collect()
    };
    // t=0: 8 busy a10g, 44 in flight → 44/0.7 = 62.9 slots → 8 instances. Steady.
    let obs = Observation {
        in_flight: 44,
        instances: ready(8, 5),
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &mem);
    assert_eq!(d.target_total(), 8, "{:?}", d.reasons);
    mem = d.memory;

    // t=+60s..+240s: demand drops to 1 in flight; the 5-minute stabilization window
    // still holds the t=0 recommendation → no scale-in. (At +60s the stable mean is
    // (44 + 1) / 2: nothing says when within the minute the drop came.)
    let quiet = Observation {
        in_flight: 1,
        last_arrival_at: Some(t0() + secs(60)),
        instances: ready(8, 0),
        ..Default::default()
    };
    for s in [60, 120, 240] {
        let d = decide(t0() + secs(s), &spec, &quiet, &mem);
        assert_eq!(d.target_total(), 8, "t=+{s}s: {:?}", d.reasons);
        mem = d.memory;
    }

    // t=+361s: t=0 and t=+60s left the window; the highest recommendation is now
    // small, but at most halving per decision (max_scale_down_rate 2): 8 → 4.
    let d = decide(t0() + secs(361), &spec, &quiet, &mem);
    assert_eq!(d.target_total(), 4, "{:?}", d.reasons);
    assert_eq!(d.drain.len(), 4);
    assert!(
        d.reasons.iter().any(|r| r.contains("max_scale_down_rate")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn scales_to_zero_only_after_the_idle_grace() {
    let spec = spec();
    let one = vec![inst(
        "a0",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        0,
    )];
    let idle = Observation {
        instances: one.clone(),
        last_arrival_at: Some(t0()),
        ..Default::default()
    };
    let mut mem = PolicyMemory::default();
    // t=0..+4m59s: idle but within the 5m grace → keep one instance.
    for s in [0, 60, 299] {
        let d = decide(t0() + secs(s), &spec, &idle, &mem);
        assert_eq!(d.target_total(), 1, "t=+{s}s: {:?}", d.reasons);
        mem = d.memory;
    }
    // t=+5m: idle for the grace → zero, draining the last instance.
    let d = decide(t0() + secs(300), &spec, &idle, &mem);
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
    assert_eq!(d.drain, ["a0"]);

    // The same moment with one request in flight → never zero.
    let busy = Observation {
        in_flight: 1,
        instances: vec![inst(
            "a0",
            "a10g",
            InstanceState::Ready,
            t0() - secs(3600),
            1,
        )],
        ..idle.clone()
    };
    let d = decide(t0() + secs(300), &spec, &busy, &mem);
    assert_eq!(d.target_total(), 1, "{:?}", d.reasons);
    // …or with one queued.
    let queued = Observation {
        queue_depth: 1,
        ..idle
    };
    let d = decide(t0() + secs(300), &spec, &queued, &mem);
    assert_eq!(d.target_total(), 1, "{:?}", d.reasons);
}

#[test]
fn step_rule_fires_after_sustained_breach_and_cools_down() {
    let mut spec = spec();
    spec.policy.step_rules.push(StepRule {
        metric: Metric::GpuUtilization,
        above: 0.75,
        sustained_for: HumanDuration::from_secs(300),
        add: 2,
        cooldown: HumanDuration::from_secs(600),
    });
    let ready = vec![inst(
        "a0",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        2,
    )];
    let hot = Observation {
        in_flight: 2,
        gpu_utilization: Some(0.9),
        instances: ready.clone(),
        ..Default::default()
    };
    let mut mem = PolicyMemory::default();
    // t=0: breach starts → nothing yet.
    let d = decide(t0(), &spec, &hot, &mem);
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
    mem = d.memory;
    // t=+4m: not yet sustained for 5m.
    let d = decide(t0() + secs(240), &spec, &hot, &mem);
    assert_eq!(d.launch_total(), 0);
    mem = d.memory;
    // t=+5m: fires → add 2 on top of 1.
    let d = decide(t0() + secs(300), &spec, &hot, &mem);
    assert_eq!(d.target_total(), 3, "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("step rule")));
    mem = d.memory;
    // t=+6m, capacity now 3 (two booting): in cooldown → no more.
    let mut three = hot.clone();
    three.instances.push(inst(
        "b1",
        "a10g",
        InstanceState::Booting,
        t0() + secs(300),
        0,
    ));
    three.instances.push(inst(
        "b2",
        "a10g",
        InstanceState::Booting,
        t0() + secs(300),
        0,
    ));
    let d = decide(t0() + secs(360), &spec, &three, &mem);
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
    // A cool GPU resets the breach.
    let cool = Observation {
        gpu_utilization: Some(0.5),
        ..three
    };
    let d = decide(t0() + secs(420), &spec, &cool, &d.memory);
    assert!(d.memory.steps.values().all(|s| s.breach_since.is_none()));
}

#[test]
fn burst_mode_follows_the_short_window_and_holds() {
    let spec = spec();
    let mut mem = PolicyMemory::default();
    let ready = vec![inst(
        "a0",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        2,
    )];
    // t=0..+50s: a steady 2 in flight on one instance, sampled every 10s.
    let calm = Observation {
        in_flight: 2,
        instances: ready.clone(),
        ..Default::default()
    };
    for s in (0..=50).step_by(10) {
        mem = decide(t0() + secs(s), &spec, &calm, &mem).memory;
    }
    // t=+60s: 40 in flight (the instance is oversubscribed) and 3000 queued. The 60s
    // mean is diluted by the calm samples; the 6s burst window is not → burst mode.
    let burst = Observation {
        in_flight: 40,
        queue_depth: 3000,
        instances: ready.clone(),
        ..Default::default()
    };
    let d = decide(t0() + secs(60), &spec, &burst, &mem);
    assert!(
        d.reasons.iter().any(|r| r.starts_with("burst")),
        "{:?}",
        d.reasons
    );
    assert!(d.target_total() >= 8, "{:?}", d.reasons);
    assert!(d.memory.panic_until.is_some());
    // t=+70s: calm again, but burst mode holds the capacity for a stable window, and
    // says so.
    let held = d.target_total();
    let d = decide(t0() + secs(70), &spec, &calm, &d.memory);
    assert_eq!(d.target_total(), held, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.starts_with("burst mode holds")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn a_backlog_drains_within_the_target_queue_wait_never_beyond_the_deadline() {
    let mut spec = spec();
    let ready = vec![inst(
        "a0",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        0,
    )];
    // 100 queued on 8 idle ready slots: they drain 8 × 90s / 2s = 360 requests within
    // the boot lead (90s), so an instance launched now would find nothing left.
    let mut obs = Observation {
        queue_depth: 100,
        instances: ready,
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("backlog 100: 0 left after a boot lead of 1m30s")),
        "{:?}",
        d.reasons
    );
    // 400 queued: 40 left after the lead, drained within the 10s target: 40 × 2s / 10s.
    obs.queue_depth = 400;
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("demand 8.0") && r.contains("(target_queue_wait)")),
        "{:?}",
        d.reasons
    );
    assert_eq!(d.target_total(), 2, "11.4 slots: {:?}", d.reasons);
    // A target longer than the deadline is bounded by the deadline: 100 × 2s / 5m.
    obs.queue_depth = 100;
    spec.policy.target_queue_wait = HumanDuration::from_secs(3600);
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("demand 0.7") && r.contains("(request_deadline)")),
        "{:?}",
        d.reasons
    );
}

/// Arrival bins of `per_bin` requests every `every` seconds in `[from, to)` of t0.
fn arrivals(from: i64, to: i64, every: i64, per_bin: u64) -> BTreeMap<i64, u64> {
    (from..to)
        .step_by(every as usize)
        .map(|s| (t0().timestamp() + s, per_bin))
        .collect()
}

#[test]
fn a_start_from_zero_sizes_for_the_arrival_rate_not_the_backlog() {
    let spec = spec();
    // 4 requests a second for the last minute, 40 held at zero: the stream needs
    // 4/s × 2s = 8 in flight on top of the backlog's 40 × 2s / 10s = 8.
    let obs = Observation {
        held: 40,
        arrival_bins: arrivals(-60, 0, 10, 40),
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("demand 16.0: max(0 in flight, 4.00/s × 2s)")),
        "{:?}",
        d.reasons
    );
    let slots = launched_slots(&d);
    assert!((23..=28).contains(&slots), "22.9 slots: {:?}", d.reasons);
    // Without the arrival history the same backlog asks for half.
    let blind = Observation {
        arrival_bins: BTreeMap::new(),
        ..obs
    };
    let d = decide(t0(), &spec, &blind, &PolicyMemory::default());
    assert!(
        d.reasons.iter().any(|r| r.starts_with("demand 8.0")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn a_cold_start_budget_learns_the_keep_alive_from_the_idle_gaps() {
    let mut spec = spec();
    // Seven hours of 3 requests a minute: every return after a 50 s gap would wait for
    // a boot, so a 1% budget needs the gaps of that bucket (≤ 6 idle bins) kept: 70 s.
    let history = arrivals(-7 * 3600, -59, 60, 3);
    let idle = |bins: BTreeMap<i64, u64>| Observation {
        instances: vec![inst(
            "a0",
            "a10g",
            InstanceState::Ready,
            t0() - secs(8 * 3600),
            0,
        )],
        last_arrival_at: Some(t0() - secs(60)),
        arrival_bins: bins,
        ..Observation::default()
    };
    let run = |spec: &Deployment| {
        let mut mem = PolicyMemory::default();
        let mut last = None;
        for (at, bins) in [
            (0, history.clone()),
            (80, BTreeMap::new()),
            (150, BTreeMap::new()),
        ] {
            let d = decide(t0() + secs(at), spec, &idle(bins), &mem);
            mem = d.memory.clone();
            last = Some(d);
        }
        last.unwrap()
    };
    let d = run(&spec);
    assert_eq!(d.target_total(), 1, "the grace (5m) holds: {:?}", d.reasons);
    spec.policy.cold_start_budget = Some(0.01);
    let d = run(&spec);
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("≥ 1m10s (keep-alive learned for cold_start_budget 0.01)")),
        "{:?}",
        d.reasons
    );
}

/// Arrival bins of `per_bin` requests every 10 s in the hour from `hour` of each of the
/// `days` days before t0's day.
fn daily_hour(days: i64, hour: i64, per_bin: u64) -> BTreeMap<i64, u64> {
    let midnight = midnight();
    (1..=days)
        .flat_map(|d| {
            let start = midnight - d * 86_400 + hour * 3600;
            (0..360).map(move |i| (start + i * 10, per_bin))
        })
        .collect()
}

/// The start of t0's day (UTC), seconds since the epoch.
fn midnight() -> i64 {
    t0().timestamp() - t0().timestamp().rem_euclid(86_400)
}

fn at_today(hour: i64, minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(midnight() + hour * 3600 + minute * 60, 0).unwrap()
}

#[test]
fn a_daily_pattern_pre_warms_one_boot_lead_before_it_returns() {
    let mut spec = spec();
    spec.policy.predictive = crate::config::Predictive::On;
    // Three days of one request per 10 s from 09:00 to 10:00, nothing else; at zero.
    let history = daily_hour(3, 9, 1);
    let first = Observation {
        arrival_bins: history,
        ..Default::default()
    };
    let mem = decide(at_today(8, 0), &spec, &first, &PolicyMemory::default()).memory;
    let quiet = Observation::default();
    // 08:50: the window a boot lead (90 s) ahead, one grace (5 min) long, ends 08:56:30
    // and expects nothing: stay at zero.
    let d = decide(at_today(8, 50), &spec, &quiet, &mem);
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("forecast: 0.0 requests expected")),
        "{:?}",
        d.reasons
    );
    // 08:57: the window reaches 09:03:30, 21 requests expected: one instance launches
    // and is ready at 08:58:30, before the first request.
    let d = decide(at_today(8, 57), &spec, &quiet, &d.memory);
    assert_eq!(d.launch_total(), 1, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("forecast: 21.0 requests expected") && r.contains("pre-warm")),
        "{:?}",
        d.reasons
    );
    let f = d.forecast.as_ref().unwrap();
    assert!(f.applied && f.slots > 0.0 && (f.expected_requests - 21.0).abs() < 1e-3);
    // Forecast-only says the same and launches nothing.
    spec.policy.predictive = crate::config::Predictive::ForecastOnly;
    let d = decide(at_today(8, 57), &spec, &quiet, &mem);
    assert_eq!(d.launch_total(), 0, "{:?}", d.reasons);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.starts_with("forecast-only: 21.0") && r.contains("would pre-warm")),
        "{:?}",
        d.reasons
    );
    // After the hour the forecast lets go: 10:10 expects nothing.
    spec.policy.predictive = crate::config::Predictive::On;
    let d = decide(at_today(10, 10), &spec, &quiet, &mem);
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
}

#[test]
fn without_a_day_of_history_the_forecast_changes_nothing() {
    let mut spec = spec();
    let obs = Observation {
        queue_depth: 3,
        arrival_bins: arrivals(-3600, 0, 10, 1),
        ..Default::default()
    };
    let off = decide(t0(), &spec, &obs, &PolicyMemory::default());
    spec.policy.predictive = crate::config::Predictive::On;
    let on = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(on.pools, off.pools);
    assert!(
        on.reasons
            .iter()
            .any(|r| r == "forecast: no forecast yet (a day of history is needed)"),
        "{:?}",
        on.reasons
    );
}

#[test]
fn the_stable_mean_weights_samples_by_the_time_they_stand_for() {
    let spec = spec();
    let ready = vec![inst(
        "a0",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        0,
    )];
    let at = |in_flight| Observation {
        in_flight,
        instances: ready.clone(),
        ..Default::default()
    };
    let stable = |d: &Decision| {
        d.reasons
            .iter()
            .find_map(|r| r.split("stable mean ").nth(1))
            .and_then(|r| r.split(',').next())
            .and_then(|m| m.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no stable mean in {:?}", d.reasons))
    };
    // Called every 60s: quiet, then 40 in flight. All the window knows is the two ends,
    // so its mean is the line between them (20), not the busy instant alone (40, what
    // a plain mean of the samples inside the window gave).
    let mem = decide(t0(), &spec, &at(0), &PolicyMemory::default()).memory;
    let sparse = decide(t0() + secs(60), &spec, &at(40), &mem);
    assert_eq!(stable(&sparse), 20.0, "{:?}", sparse.reasons);
    // A steady 10 has the mean 10 whether sampled every 60s or every second.
    let mut every_minute = PolicyMemory::default();
    let mut every_second = PolicyMemory::default();
    for s in 0..=120 {
        if s % 60 == 0 {
            every_minute = decide(t0() + secs(s), &spec, &at(10), &every_minute).memory;
        }
        every_second = decide(t0() + secs(s), &spec, &at(10), &every_second).memory;
    }
    let a = decide(t0() + secs(180), &spec, &at(10), &every_minute);
    let b = decide(t0() + secs(180), &spec, &at(10), &every_second);
    assert_eq!((stable(&a), stable(&b)), (10.0, 10.0));
}

#[test]
fn unhealthy_and_timed_out_instances_are_replaced_never_killed_busy() {
    let spec = spec();
    let mut sick = inst("sick", "a10g", InstanceState::Ready, t0() - secs(3600), 3);
    sick.record.failures = 3;
    let mut sick_idle = inst(
        "sick-idle",
        "a10g",
        InstanceState::Ready,
        t0() - secs(3600),
        0,
    );
    sick_idle.record.state = InstanceState::Unhealthy;
    let stuck = inst("stuck", "a10g", InstanceState::Booting, t0() - secs(601), 0);
    let obs = Observation {
        in_flight: 6,
        instances: vec![
            sick,
            sick_idle,
            stuck,
            inst("ok", "a10g", InstanceState::Ready, t0() - secs(3600), 3),
        ],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.drain, ["sick"], "{:?}", d.reasons);
    assert_eq!(d.terminate, ["sick-idle", "stuck"]);
    // 6 in flight → 8.6 slots → 2 instances; only "ok" is capacity → launch one.
    assert_eq!(d.launch_total(), 1, "{:?}", d.reasons);
}

#[test]
fn draining_stops_when_empty_or_after_the_drain_timeout() {
    let spec = spec();
    let mut busy = inst("busy", "a10g", InstanceState::Draining, t0(), 2);
    busy.record.draining_since = Some(t0() - secs(60));
    let mut empty = inst("empty", "a10g", InstanceState::Draining, t0(), 0);
    empty.record.draining_since = Some(t0() - secs(1));
    let mut late = inst("late", "a10g", InstanceState::Draining, t0(), 5);
    late.record.draining_since = Some(t0() - secs(120));
    let obs = Observation {
        in_flight: 7,
        instances: vec![busy, empty, late],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.terminate, ["empty", "late"], "{:?}", d.reasons);
}

#[test]
fn a_warned_spot_instance_serves_until_shortly_before_its_reclaim_then_drains() {
    // Warned at t0 - 10 s while ready: EC2 reclaims it at t0 + 110 s, and it takes
    // requests until 30 s before that. It is not capacity (its replacement launches),
    // and it is not stopped while it serves, even empty.
    let spec = spec();
    let mut warned = inst("warned", "a10g", InstanceState::Draining, t0(), 0);
    warned.record.ready_at = Some(t0() - secs(600));
    warned.record.draining_since = Some(t0() - secs(10));
    warned.record.reclaim_at = Some(t0() + secs(110));
    assert!(warned.record.takes_requests(t0() + secs(79)));
    assert!(!warned.record.takes_requests(t0() + secs(80)));
    let obs = Observation {
        queue_depth: 5,
        instances: vec![warned.clone()],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert!(d.terminate.is_empty(), "{:?}", d.reasons);
    assert!(launched_slots(&d) > 0, "replaced: {:?}", d.reasons);
    // From 30 s before the reclaim it drains like any other: empty, it stops.
    let d = decide(t0() + secs(80), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.terminate, ["warned"], "{:?}", d.reasons);
    // A booting instance warned (no ready_at) serves nothing: it drains at once.
    let mut booting = warned;
    booting.record.ready_at = None;
    assert!(!booting.record.takes_requests(t0()));
    let obs = Observation {
        instances: vec![booting],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.terminate, ["warned"], "{:?}", d.reasons);
}

#[test]
fn scale_in_drains_the_fewest_in_flight_first() {
    let spec = spec();
    let mem = PolicyMemory::default();
    let obs = Observation {
        in_flight: 9,
        instances: vec![
            inst("a", "a10g", InstanceState::Ready, t0() - secs(900), 5),
            inst("b", "a10g", InstanceState::Ready, t0() - secs(900), 0),
            inst("c", "a10g", InstanceState::Ready, t0() - secs(900), 3),
            inst("d", "a10g", InstanceState::Ready, t0() - secs(900), 1),
        ],
        ..Default::default()
    };
    // 9 in flight → 12.9 slots → 2 a10g: drain the two least busy, "b" then "d".
    let d = decide(t0(), &spec, &obs, &mem);
    assert_eq!(d.target_total(), 2, "{:?}", d.reasons);
    assert_eq!(d.drain, ["b", "d"]);
}

#[test]
fn demand_beyond_max_is_capped_and_says_why() {
    let spec = spec();
    let obs = Observation {
        in_flight: 1000,
        instances: vec![inst("a", "a10g", InstanceState::Ready, t0(), 8)],
        ..Default::default()
    };
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    assert_eq!(d.target_total(), 14, "all of both pools: {:?}", d.reasons);
    let cap = d.cap.expect("a cap");
    assert_eq!(cap.max_instances, 14);
    assert!(cap.needed_instances > 14);
    assert!(
        d.reasons.iter().any(|r| r.contains("capped at 14")),
        "{:?}",
        d.reasons
    );
}

#[test]
fn unavailable_pool_shifts_launches_to_the_other() {
    let spec = spec();
    let mut obs = Observation {
        in_flight: 20,
        ..Default::default()
    };
    obs.unavailable_pools.insert("l4".into(), t0() + secs(60));
    let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
    let l4 = d.pools.iter().find(|p| p.pool == "l4").unwrap();
    assert_eq!(l4.launch, 0);
    assert!(d.launch_total() > 0);
}

#[test]
fn boot_lead_time_is_the_p90_of_recent_boots() {
    let spec = spec();
    let mut obs = Observation::default();
    assert_eq!(boot_lead_time(&spec, &obs, "a10g"), Duration::from_secs(90));
    obs.recent_boot_times.insert(
        "a10g".into(),
        (1..=10).map(|s| Duration::from_secs(s * 10)).collect(),
    );
    assert_eq!(boot_lead_time(&spec, &obs, "a10g"), Duration::from_secs(90));
    obs.recent_boot_times
        .insert("a10g".into(), vec![Duration::from_secs(200)]);
    assert_eq!(
        boot_lead_time(&spec, &obs, "a10g"),
        Duration::from_secs(200)
    );
}

#[test]
fn scheduled_floor_starts_one_lead_time_early() {
    let mut spec = spec();
    spec.schedules = Config::load(include_str!("../../../examples/local.toml"))
        .unwrap()
        .deployments[0]
        .schedules
        .clone();
    // Monday 2026-03-02 09:00 Europe/London is 09:00 UTC (GMT). Lead time = 90s (a10g).
    let nine = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let idle = Observation::default();
    // 08:58:29: the floor rises in 91s, more than the lead → nothing.
    let d = decide(nine - secs(91), &spec, &idle, &PolicyMemory::default());
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
    // 08:58:30: within one lead time → launch the floor of 2 now.
    let d = decide(nine - secs(90), &spec, &idle, &PolicyMemory::default());
    assert_eq!(d.target_total(), 2, "{:?}", d.reasons);
    assert!(
        d.reasons.iter().any(|r| r.contains("ahead")),
        "{:?}",
        d.reasons
    );
    // 18:00: the closing action lowers the floor to 0 (and idle lets it go).
    let six = Utc.with_ymd_and_hms(2026, 3, 2, 18, 0, 0).unwrap();
    let d = decide(six, &spec, &idle, &PolicyMemory::default());
    assert_eq!(d.target_total(), 0, "{:?}", d.reasons);
}

// ---- properties -------------------------------------------------------------

fn arb_state() -> impl Strategy<Value = InstanceState> {
    prop_oneof![
        Just(InstanceState::Requested),
        Just(InstanceState::Booting),
        Just(InstanceState::Ready),
        Just(InstanceState::Ready),
        Just(InstanceState::Draining),
        Just(InstanceState::Unhealthy),
        Just(InstanceState::Terminated),
    ]
}

fn arb_instance(i: usize) -> impl Strategy<Value = ObservedInstance> {
    (
        arb_state(),
        prop::bool::ANY,
        0i64..2000,
        0i64..300,
        0u32..12,
        0u32..5,
    )
        .prop_map(move |(state, big, age, drain_age, in_flight, failures)| {
            let pool = if big { "a10g" } else { "l4" };
            let mut o = inst(&format!("i{i}"), pool, state, t0() - secs(age), in_flight);
            o.record.draining_since =
                (state == InstanceState::Draining).then(|| t0() - secs(drain_age));
            o.record.failures = failures;
            if state.is_booting() {
                o.in_flight = 0;
            }
            o
        })
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    (
        0u64..500,
        0u64..500,
        prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        prop::option::of(0.0f64..1.0),
        prop::bool::ANY,
    )
        .prop_flat_map(|(queue, held, idx, gpu, l4_down)| {
            let n = idx.len();
            (0..n)
                .map(arb_instance)
                .collect::<Vec<_>>()
                .prop_map(move |instances| {
                    let in_flight = instances
                        .iter()
                        .filter(|i| i.record.state != InstanceState::Terminated)
                        .map(|i| u64::from(i.in_flight))
                        .sum();
                    let mut obs = Observation {
                        queue_depth: queue,
                        held,
                        in_flight,
                        instances,
                        gpu_utilization: gpu,
                        ..Default::default()
                    };
                    if l4_down {
                        obs.unavailable_pools.insert("l4".into(), t0() + secs(30));
                    }
                    obs
                })
        })
}

fn arb_spec() -> impl Strategy<Value = Deployment> {
    (
        0u32..3,
        1u32..10,
        0u32..2,
        1u32..5,
        0.1f64..=1.0,
        1.1f64..4.0,
        prop::bool::ANY,
    )
        .prop_map(|(min_a, extra_a, min_b, extra_b, util, rate, step)| {
            let mut s = spec();
            s.pools[0].min_instances = min_a;
            s.pools[0].max_instances = min_a + extra_a;
            s.pools[1].min_instances = min_b;
            s.pools[1].max_instances = min_b + extra_b;
            s.policy.target_utilization = util;
            s.policy.max_scale_down_rate = rate;
            if step {
                s.policy.step_rules.push(StepRule {
                    metric: Metric::QueueDepth,
                    above: 50.0,
                    sustained_for: HumanDuration::ZERO,
                    add: 3,
                    cooldown: HumanDuration::from_secs(600),
                });
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_keeps_its_invariants(spec in arb_spec(), obs in arb_observation(), warm in prop::bool::ANY, dt in 0i64..900) {
        let valid = Config { deployments: vec![spec.clone()], broker: Default::default(), provider: Default::default(), budgets: Vec::new(), quotas: Vec::new() }.validate();
        prop_assert!(valid.is_ok(), "{:?}", valid);
        // Optionally warm the memory with an earlier decision on the same observation.
        let mem = if warm { decide(t0() - secs(dt), &spec, &obs, &PolicyMemory::default()).memory } else { PolicyMemory::default() };
        let d = decide(t0(), &spec, &obs, &mem);

        // Same inputs, same output.
        prop_assert_eq!(&d, &decide(t0(), &spec, &obs, &mem));

        // Never above max; never below min where the pool can launch.
        for (p, pd) in spec.pools.iter().zip(&d.pools) {
            prop_assert!(pd.target <= p.max_instances, "{} target {} > max {}", p.name, pd.target, p.max_instances);
            if !obs.unavailable_pools.contains_key(&p.name) {
                prop_assert!(pd.target >= p.min_instances, "{} target {} < min {}", p.name, pd.target, p.min_instances);
            }
        }

        // Never stops an instance with requests in flight before the drain timeout.
        for id in &d.terminate {
            let i = obs.instances.iter().find(|i| &i.record.id == id).unwrap();
            if i.in_flight > 0 {
                let since = i.record.draining_since.expect("busy instance terminated without draining");
                prop_assert!(i.record.state == InstanceState::Draining);
                prop_assert!(t0() - since >= spec.policy.drain_timeout.delta());
            }
        }
        // Drained and stopped instances are disjoint.
        prop_assert!(d.drain.iter().all(|id| !d.terminate.contains(id)));

        // Never to zero with backlog or work in flight, while some pool can launch.
        let any_pool_can_launch = spec.pools.iter().any(|p| !obs.unavailable_pools.contains_key(&p.name));
        if (obs.queue_depth + obs.held + obs.in_flight) > 0 && any_pool_can_launch {
            prop_assert!(d.target_total() > 0, "zero with work: {:?}", d.reasons);
        }
    }

    #[test]
    fn no_launch_for_a_need_booting_instances_cover(spec in arb_spec(), queue in 1u64..2000, dt in 1i64..60) {
        // t=0 at zero: launch for the backlog.
        let mut obs = Observation { queue_depth: queue, ..Default::default() };
        let d = decide(t0(), &spec, &obs, &PolicyMemory::default());
        apply_launches(&mut obs, &d, t0());
        // t+dt: the same backlog (plus some now in flight on nothing yet) — the
        // booting instances already cover it.
        obs.in_flight = 0;
        let again = decide(t0() + secs(dt), &spec, &obs, &d.memory);
        prop_assert_eq!(again.launch_total(), 0, "relaunch: {:?}", again.reasons);
        // Once they are ready and serving, the same need still launches nothing.
        mark_ready(&mut obs);
        let ready = decide(t0() + secs(dt + 1), &spec, &obs, &again.memory);
        prop_assert_eq!(ready.launch_total(), 0, "relaunch when ready: {:?}", ready.reasons);
    }

    #[test]
    fn the_forecast_stays_within_the_limits_and_forecast_only_changes_nothing(
        spec in arb_spec(),
        obs in arb_observation(),
        hour in 0i64..24,
        per_bin in 1u64..20,
        days in 1i64..4,
        minute in -120i64..120,
        ceiling in prop::option::of(0u32..4),
    ) {
        let mut spec = spec;
        if let Some(max) = ceiling {
            spec.schedules.push(toml::from_str(&format!(
                "name = \"cap\"\nexpression = \"rate(1 minute)\"\nmax_instances = {max}"
            )).unwrap());
        }
        let first = Observation { arrival_bins: daily_hour(days, hour, per_bin), ..Default::default() };
        let mem = decide(at_today(0, 0), &spec, &first, &PolicyMemory::default()).memory;
        let now = at_today(hour, minute.max(-hour * 60));
        let with = |mode| {
            let mut s = spec.clone();
            s.policy.predictive = mode;
            decide(now, &s, &obs, &mem)
        };
        let off = with(crate::config::Predictive::Off);
        let only = with(crate::config::Predictive::ForecastOnly);
        prop_assert_eq!(&only.pools, &off.pools);
        prop_assert_eq!(&only.drain, &off.drain);
        let on = with(crate::config::Predictive::On);
        for (p, pd) in spec.pools.iter().zip(&on.pools) {
            prop_assert!(pd.target <= p.max_instances);
            // Pool minimums bind, unless a scheduled ceiling is below them.
            if ceiling.is_none() && !obs.unavailable_pools.contains_key(&p.name) {
                prop_assert!(pd.target >= p.min_instances);
            }
        }
        if let Some(max) = ceiling {
            prop_assert!(on.target_total() <= max, "{:?}", on.reasons);
        }
    }
}
