//! Timelines of the budget invariant through `decide()`: a step-by-step story with a
//! comment per step, and a minute-by-minute world in which spend must never pass the
//! cap. The simulator's property test runs thousands of such worlds; this one pins the
//! numbers of the rule (`scale0_core::cost::budget`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use scale0_core::config::{Config, Deployment};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::cost::budget::BudgetObservation;
use scale0_core::cost::{CostObservation, ledger};
use scale0_core::policy::{Decision, Observation, ObservedInstance, PolicyMemory, decide};

/// One pool of at most 8 instances at $3.60 an hour ($0.001 a second), drain timeout 2
/// minutes, and a daily
/// budget of $10. With a 60 s tick: keep = 2·60 + 120 = 240 s ($0.24 an instance),
/// release = 180 s ($0.18).
const CONFIG: &str = r#"
    [[budgets]]
    name = "daily-gpu"
    period = "daily"
    limit_usd = 10.0
    at_cap = "block-scale-out"

    [[deployments]]
    name = "chat"
    expected_service_time = "2s"
    [deployments.policy]
    drain_timeout = "2m"
    scale_to_zero_grace = "5m"
    [[deployments.pools]]
    name = "a10g"
    max_instances = 8
    slots = 4
    price_per_hour_usd = 3.6
    boot_time = "30s"
"#;

fn config() -> Config {
    Config::load(CONFIG).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// The instances of the world, with when each stopped.
#[derive(Default)]
struct World {
    instances: Vec<(InstanceRecord, Option<DateTime<Utc>>)>,
    accrued: f64,
    accrued_until: Option<DateTime<Utc>>,
    memory: PolicyMemory,
}

impl World {
    /// Bill everything up to `now` (what the state store does at each scaler run).
    fn accrue(&mut self, now: DateTime<Utc>) {
        let from = self.accrued_until.unwrap_or(now);
        for (r, stopped) in &self.instances {
            for (_, _, usd) in ledger::accrue(r.launched_at, *stopped, 3.6, from, now) {
                self.accrued += usd;
            }
        }
        self.accrued_until = Some(now);
    }

    /// What the control plane observes at `now`: ready instances serve all their slots.
    fn observe(&self, now: DateTime<Utc>, backlog: u64, cfg: &Config) -> Observation {
        let instances: Vec<ObservedInstance> = self
            .instances
            .iter()
            .filter(|(_, stopped)| stopped.is_none())
            .map(|(r, _)| ObservedInstance {
                in_flight: if r.state == InstanceState::Booting {
                    0
                } else {
                    4
                },
                record: r.clone(),
            })
            .collect();
        Observation {
            queue_depth: backlog,
            in_flight: instances.iter().map(|i| u64::from(i.in_flight)).sum(),
            instances,
            last_arrival_at: Some(now),
            cost: CostObservation {
                budgets: vec![BudgetObservation {
                    budget: cfg.budgets[0].clone(),
                    accrued_usd: self.accrued,
                    peers: Vec::new(),
                    reported_usd: None,
                    window_tail: Vec::new(),
                }],
                decision_interval: Duration::from_secs(60),
                ..Default::default()
            },
            ..Observation::default()
        }
    }

    /// Apply a decision as the applier would: launch, drain, stop; boots finish in 30 s.
    fn apply(&mut self, d: &Decision, now: DateTime<Utc>) {
        for (r, stopped) in &mut self.instances {
            if stopped.is_none() && d.terminate.contains(&r.id) {
                *stopped = Some(now);
            }
            if d.drain.contains(&r.id) && r.state != InstanceState::Draining {
                r.state = InstanceState::Draining;
                r.draining_since = Some(now);
            }
        }
        for p in &d.pools {
            for n in 0..p.launch {
                self.instances.push((
                    InstanceRecord {
                        id: format!("{}-{}-{n}", p.pool, now.timestamp()),
                        deployment: d.deployment.clone(),
                        pool: p.pool.clone(),
                        state: InstanceState::Booting,
                        endpoint: None,
                        launched_at: now,
                        ready_at: None,
                        draining_since: None,
                        failures: 0,
                        reclaim_at: None,
                    },
                    None,
                ));
            }
        }
    }

    /// Boots that have finished by `now` are ready.
    fn boot(&mut self, now: DateTime<Utc>) {
        for (r, _) in &mut self.instances {
            if r.state == InstanceState::Booting && now - r.launched_at >= TimeDelta::seconds(30) {
                r.state = InstanceState::Ready;
                r.ready_at = Some(r.launched_at + TimeDelta::seconds(30));
            }
        }
    }

    fn step(&mut self, now: DateTime<Utc>, backlog: u64, cfg: &Config) -> Decision {
        self.boot(now);
        self.accrue(now);
        let spec: &Deployment = &cfg.deployments[0];
        let d = decide(now, spec, &self.observe(now, backlog, cfg), &self.memory);
        self.memory = d.memory.clone();
        self.apply(&d, now);
        d
    }

    fn running(&self) -> usize {
        self.instances
            .iter()
            .filter(|(r, s)| s.is_none() && r.state != InstanceState::Draining)
            .count()
    }
}

#[test]
fn a_budget_blocks_launches_then_releases_what_runs_before_spend_reaches_the_cap() {
    let cfg = config();
    let mut w = World::default();
    // t=0: 100 requests queued at zero; the burst asks for 8 instances (28.6 slots at
    // 0.7 utilisation). Eight launches commit 8 × $0.24 = $1.92 ≤ $10: all go, no cap.
    let d = w.step(t0(), 100, &cfg);
    assert_eq!(d.launch_total(), 8, "{:?}", d.reasons);
    assert!(d.cap.is_none());
    assert_eq!(d.budgets[0].budget, "daily-gpu");
    // Each minute the eight cost $0.48 more. Keeping them for another interval fits
    // while spent + 8 × $0.24 ≤ $10, i.e. through minute 16 (spent $7.68).
    for m in 1..=16 {
        let d = w.step(t0() + minutes(m), 100, &cfg);
        assert!(d.drain.is_empty(), "minute {m}: {:?}", d.reasons);
        // Capped by the pool's max of 8 (the backlog wants more), not by the budget.
        assert!(
            d.cap.is_none_or(|c| !c.reason.contains("budget")),
            "minute {m}"
        );
    }
    // t=+17m: spent $8.16; keeping all would reach $10.08. Keeping k costs
    // $8.16 + k × $0.24 + (8 − k) × $0.18 ≤ $10 → k ≤ 6: two drain, and the cap names
    // the budget and says when to retry (midnight UTC, the next daily period).
    let d = w.step(t0() + minutes(17), 100, &cfg);
    assert!((w.accrued - 8.16).abs() < 1e-6, "{}", w.accrued);
    assert_eq!(d.drain.len(), 2, "{:?}", d.reasons);
    let cap = d.cap.expect("a budget cap");
    assert!(cap.reason.contains("budget daily-gpu"), "{}", cap.reason);
    assert_eq!(
        cap.retry_at,
        Some(Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap())
    );
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("keeping more would not fit")),
        "{:?}",
        d.reasons
    );
    assert_eq!(w.running(), 6);
    // From here on the world runs to the end of the day with work always waiting:
    // whatever the policy does, spend never passes the cap.
    for m in 18..12 * 60 {
        w.step(t0() + minutes(m), 100, &cfg);
        assert!(w.accrued <= 10.0 + 1e-9, "minute {m}: spent {}", w.accrued);
    }
    // It used the budget: within a launch's commitment of the cap, and stopped.
    assert!(w.accrued > 10.0 - 0.5, "{}", w.accrued);
    assert_eq!(w.running(), 0);
}

#[test]
fn the_next_period_starts_from_zero_spend() {
    let cfg = config();
    let mut w = World::default();
    // A day's budget spent by the evening...
    let evening = Utc.with_ymd_and_hms(2026, 3, 2, 23, 50, 0).unwrap();
    w.accrued = 9.99;
    let d = w.step(evening, 100, &cfg);
    assert_eq!(d.launch_total(), 0);
    assert!(d.cap.unwrap().reason.contains("daily-gpu"));
    // ...and after midnight the ledger's period sum starts again (the store sums the
    // new period's buckets): launches resume.
    w.accrued = 0.0;
    let d = w.step(evening + minutes(11), 100, &cfg);
    assert_eq!(d.launch_total(), 8, "{:?}", d.reasons);
}
