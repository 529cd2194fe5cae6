//! Benchmark of `decide()` for one deployment with 2 pools and 100 instances, with a
//! warm policy memory (a minute of 1 s samples, a step rule, two scheduled actions).
//!
//! `cargo bench -p scale0-core --bench decide` prints the median and p99 of single
//! calls. Goal (issue 2): p99 ≤ 50 µs, so a control loop over thousands of deployments
//! stays cheap.

use std::hint::black_box;
use std::time::Instant;

use chrono::{TimeDelta, TimeZone, Utc};
use scale0_core::config::Config;
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

    let iterations = 20_000;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let d = decide(
            black_box(now),
            black_box(spec),
            black_box(&obs),
            black_box(&memory),
        );
        samples.push(start.elapsed());
        black_box(d);
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!("decide(): 1 deployment, 2 pools, 100 instances, warm memory, {iterations} calls");
    println!("  median {:>8.1} µs", pct(0.50).as_secs_f64() * 1e6);
    println!("  p99    {:>8.1} µs", pct(0.99).as_secs_f64() * 1e6);
    println!(
        "  max    {:>8.1} µs",
        samples[samples.len() - 1].as_secs_f64() * 1e6
    );
}
