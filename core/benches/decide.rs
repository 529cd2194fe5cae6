//! Benchmark of `decide()` for one deployment with 2 pools and 100 instances, with a
//! warm policy memory (a minute of 1 s samples, a step rule, two scheduled actions),
//! then the same with a week of arrival history folded in, `predictive = "on"` and a
//! cold-start budget (the forecast and the learned keep-alive run on every call, and
//! each call folds one new bin).
//!
//! `cargo bench -p scale0-core --bench decide` prints the median and p99 of single
//! calls of both, side by side. Goals (issues 2 and 12): p99 ≤ 50 µs, with a week of
//! history too, so a control loop over thousands of deployments stays cheap.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use scale0_core::config::{Config, Deployment, Predictive};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::{Observation, ObservedInstance, PolicyMemory, decide};

fn main() {
    let config = Config::load(include_str!("../../examples/local.toml")).expect("example config");
    let spec = &config.deployments[0];
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("valid time");
    let states = [
        InstanceState::Ready,
        InstanceState::Ready,
        InstanceState::Ready,
        InstanceState::Booting,
        InstanceState::Draining,
    ];
    let instances: Vec<ObservedInstance> = (0..100)
        .map(|i| {
            let state = states[i % states.len()];
            ObservedInstance {
                record: InstanceRecord {
                    id: format!("i-{i:04}"),
                    deployment: spec.name.clone(),
                    pool: spec.pools[i % 2].name.clone(),
                    state,
                    endpoint: Some(format!("http://10.0.0.{i}:8000")),
                    launched_at: t0 - TimeDelta::seconds(60 + i as i64),
                    ready_at: None,
                    draining_since: (state == InstanceState::Draining)
                        .then_some(t0 - TimeDelta::seconds(10)),
                    failures: 0,
                    reclaim_at: None,
                },
                in_flight: if state == InstanceState::Booting {
                    0
                } else {
                    (i % 7) as u32
                },
            }
        })
        .collect();
    let in_flight = instances.iter().map(|i| u64::from(i.in_flight)).sum();
    let obs = Observation {
        queue_depth: 120,
        held: 30,
        in_flight,
        instances,
        gpu_utilization: Some(0.8),
        latency_p95_ms: Some(900.0),
        ..Default::default()
    };
    // Warm memory: a minute of decisions one second apart.
    let mut memory = PolicyMemory::default();
    for s in 0..60 {
        memory = decide(t0 + TimeDelta::seconds(s), spec, &obs, &memory).memory;
    }
    let now = t0 + TimeDelta::seconds(61);
    let fresh = measure(spec, &obs, &memory, now);

    // A week of history: a daily pattern (busy 08:00–20:00 UTC, a few requests per 10 s
    // bin, quiet at night), folded once; each measured call folds one more bin.
    let mut weekly: Deployment = spec.clone();
    weekly.policy.predictive = Predictive::On;
    weekly.policy.cold_start_budget = Some(0.01);
    let week_start = now.timestamp() - 7 * 86_400;
    let week: BTreeMap<i64, u64> = (0..7 * 8640)
        .map(|i| week_start + i * 10)
        .filter(|s| (8 * 3600..20 * 3600).contains(&s.rem_euclid(86_400)))
        .map(|s| (s, (s / 10 % 5) as u64))
        .collect();
    let with_week = Observation {
        arrival_bins: week,
        ..obs.clone()
    };
    let memory = decide(now - TimeDelta::seconds(10), &weekly, &with_week, &memory).memory;
    let one_bin = Observation {
        arrival_bins: BTreeMap::from([(now.timestamp() - now.timestamp() % 10 - 10, 3)]),
        ..obs.clone()
    };
    let history = measure(&weekly, &one_bin, &memory, now);

    println!(
        "decide(): 1 deployment, 2 pools, 100 instances, warm memory, {ITERATIONS} calls each"
    );
    println!("                       median        p99");
    for (label, (median, p99)) in [("no history", fresh), ("a week of history", history)] {
        println!("  {label:<18} {median:>7.1} µs {p99:>7.1} µs");
    }
    println!(
        "  ratio (week / none) {:>6.2}×    {:>6.2}×",
        history.0 / fresh.0,
        history.1 / fresh.1
    );
}

const ITERATIONS: usize = 20_000;

/// Median and p99 of single calls, µs. The one clock read of the crate: a bench
/// measures wall time (`core/clippy.toml` forbids it everywhere else).
#[allow(clippy::disallowed_methods)]
fn measure(
    spec: &Deployment,
    obs: &Observation,
    memory: &PolicyMemory,
    now: chrono::DateTime<Utc>,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let d = decide(
            black_box(now),
            black_box(spec),
            black_box(obs),
            black_box(memory),
        );
        samples.push(start.elapsed());
        black_box(d);
    }
    samples.sort();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    (pct(0.50), pct(0.99))
}
