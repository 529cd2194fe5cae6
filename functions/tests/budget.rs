//! Budgets against Redis: the spend ledger, AWS Budgets notifications (the documented
//! SNS event), and the cap property over generated worlds run through the real scaler
//! handler with two deployments deciding concurrently. Needs Redis
//! (`infra/local/services.sh`). Each test keeps its ledger under a namespace of its
//! own and deletes it at the end.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use scale0_core::contract::InstanceState;
use scale0_core::cost::{ledger, period};
use scale0_functions::broker::FixedQueueDepth;
use scale0_functions::budget;
use scale0_functions::events::{ScalerEvent, Wake};
use scale0_functions::provider::fake::FakeProvider;
use scale0_functions::scaler::scaler;
use scale0_functions::{Clock, Deps};
use scale0_state::Store;
use scale0_state::ledger::TOTAL;
use support::*;

async fn ledger_store(name: &str) -> Store {
    store().await.with_ledger_namespace(&unique(name))
}

/// A store as a restarted control plane gets it: a new connection, the same ledger.
async fn reconnect(namespace: &str) -> Store {
    Store::connect(&redis_url())
        .await
        .unwrap()
        .with_ledger_namespace(namespace)
}

fn wake(sweep: bool) -> ScalerEvent {
    ScalerEvent::Wake(Wake {
        deployments: Vec::new(),
        trigger: "test".into(),
        id: None,
        sweep,
    })
}

#[tokio::test]
async fn an_aws_budgets_notification_is_recorded_and_tightens_the_cap() {
    let d = unique("budget-sns");
    let cfg = config(&format!(
        r#"
        [[budgets]]
        name = "gpu-monthly"
        deployments = ["{d}"]
        period = "monthly"
        limit_usd = 100.0
        {}
        "#,
        one_pool(&d, "")
    ));
    let store = ledger_store("ledger-sns").await;
    let deps = Deps::new(
        cfg,
        store.clone(),
        Arc::new(FakeProvider::by_count()),
        depth(&d, 200),
    )
    .with_clock(Clock::fixed(t0()));

    // The documented SNS event: an ACTUAL alert at $99.95 and a FORECASTED one.
    let out = budget::handle_json(fixture("sns-aws-budgets-notification.json"), &deps)
        .await
        .unwrap();
    assert_eq!(out.notices.len(), 2);
    assert_eq!(out.notices[0].budget.as_deref(), Some("gpu-monthly"));
    assert!(out.notices[0].tightens, "{:?}", out.notices[0]);
    assert!(!out.notices[1].tightens, "a forecast never enforces");
    let reports = store.budget_reports().await.unwrap();
    let r = &reports["gpu-monthly"];
    assert_eq!(r.actual_usd, Some(99.95));
    assert_eq!(r.forecast_usd, Some(310.0));
    assert_eq!(r.period, "2026-06-01T00:00:00Z");

    // The ledger has billed nothing, but AWS says $99.95 of $100 is gone: a launch
    // ($1/h for 4 minutes) no longer fits, and the cap says why and until when.
    let out = scaler(wake(false), &deps).await.unwrap();
    let run = &out.deployments[0];
    assert!(run.requested.is_empty(), "{:?}", run.reasons);
    let cap = run.cap.as_ref().expect("capped by the budget");
    assert!(cap.reason.contains("budget gpu-monthly"), "{}", cap.reason);
    assert_eq!(cap.retry_at, Some("2026-07-01T00:00:00Z".parse().unwrap()));
    // Workers see the same cap in Redis.
    let stored = store.cap(&d).await.unwrap().unwrap();
    assert_eq!(stored.retry_at, cap.retry_at);

    // Malformed input is rejected naming what is wrong, and changes nothing.
    let mut bad = fixture("sns-aws-budgets-notification.json");
    bad["Records"][0]["Sns"]["Message"] = "Budget Name: gpu-monthly\nAlert Type: ACTUAL\n".into();
    bad["Records"].as_array_mut().unwrap().truncate(1);
    let e = budget::handle_json(bad, &deps).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("Records[0].Sns.Message: no `ACTUAL Amount:` line"),
        "{e}"
    );
    let e = budget::handle_json(serde_json::json!({"detail": {}}), &deps)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SNS events"), "{e}");
    store.forget_ledger().await.unwrap();
    store.forget_deployment(&d).await.unwrap();
}

#[tokio::test]
async fn spend_is_accrued_in_redis_survives_a_restart_and_stops_when_an_instance_vanishes() {
    let d = unique("ledger");
    let cfg = config(&format!(
        r#"
        [[budgets]]
        name = "daily"
        deployments = ["{d}"]
        period = "daily"
        limit_usd = 1000.0
        {}
        "#,
        one_pool(&d, "")
    ));
    let namespace = unique("ledger-accrual");
    let store = store().await.with_ledger_namespace(&namespace);
    let minute = Arc::new(AtomicI64::new(0));
    let clock = {
        let minute = minute.clone();
        Clock::from_fn(move || t0() + TimeDelta::minutes(minute.load(Ordering::SeqCst)))
    };
    let provider = Arc::new(FakeProvider::per_instance());
    let deps = Deps::new(cfg.clone(), store.clone(), provider.clone(), depth(&d, 40))
        .with_clock(clock.clone());
    // t=0: a backlog of 40 launches instances (2 of 8 slots at the default 10 s drain).
    let out = scaler(wake(true), &deps).await.unwrap();
    let launched = out.deployments[0].requested.len();
    assert!(launched >= 1, "{:?}", out.deployments[0].reasons);
    // t=+10m: the next run bills ten minutes of each at $1/h.
    minute.store(10, Ordering::SeqCst);
    scaler(wake(true), &deps).await.unwrap();
    let day = t0() - TimeDelta::hours(12);
    let spent = store.spend_since(&d, day, clock.now()).await.unwrap();
    let expected = launched as f64 * 10.0 / 60.0;
    assert!((spent - expected).abs() < 1e-6, "{spent} vs {expected}");
    assert!((store.spend_since(TOTAL, day, clock.now()).await.unwrap() - expected).abs() < 1e-6);

    // A restart: a new connection, new handlers; the ledger is in Redis.
    let store = reconnect(&namespace).await;
    let deps =
        Deps::new(cfg, store.clone(), provider.clone(), depth(&d, 40)).with_clock(clock.clone());
    // One instance vanishes from the provider at +12m; the tick at +15m reconciles it
    // (terminated at that tick) and bills it until then, not beyond.
    let mut stopped = BTreeMap::new();
    bill(&store, &d, 1.0, clock.now(), &mut stopped).await;
    let victim = store
        .instances(&d)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.state != InstanceState::Terminated)
        .unwrap();
    minute.store(12, Ordering::SeqCst);
    provider.vanish(&victim.id);
    minute.store(15, Ordering::SeqCst);
    scaler(wake(true), &deps).await.unwrap();
    bill(&store, &d, 1.0, clock.now(), &mut stopped).await;
    let after = store.instance(&d, &victim.id).await.unwrap().unwrap();
    assert_eq!(after.state, InstanceState::Terminated);
    // At +30m the boots time out (the fake endpoints never answer) and are replaced;
    // the tick at +31m bills the replacements' first minute.
    let mut truth = 0.0;
    for m in [30, 31] {
        minute.store(m, Ordering::SeqCst);
        scaler(wake(true), &deps).await.unwrap();
        truth = bill(&store, &d, 1.0, clock.now(), &mut stopped).await;
    }
    assert_eq!(
        stopped.get(&(d.clone(), victim.id.clone())),
        Some(&(t0() + TimeDelta::minutes(15)))
    );
    let spent = store.spend_since(&d, day, clock.now()).await.unwrap();
    assert!(
        (spent - truth).abs() < 1e-6,
        "ledger {spent} vs registry {truth}"
    );
    store.forget_ledger().await.unwrap();
    store.forget_deployment(&d).await.unwrap();
}

/// What `d`'s instances cost by the registry, independently of the ledger: each from
/// launch to the tick at which the test first saw it terminated (the applier and the
/// reconcile stop at the tick's instant, so this is exact), at least a minute.
async fn bill(
    store: &Store,
    d: &str,
    price: f64,
    now: DateTime<Utc>,
    stopped: &mut BTreeMap<(String, String), DateTime<Utc>>,
) -> f64 {
    let mut usd = 0.0;
    for r in store.instances(d).await.unwrap() {
        let key = (d.to_string(), r.id.clone());
        if r.state == InstanceState::Terminated {
            stopped.entry(key.clone()).or_insert(now);
        }
        let end = stopped.get(&key).copied().unwrap_or(now);
        usd += ledger::billed_usd(r.launched_at, end, price);
    }
    usd
}

/// Generated worlds: two deployments, a daily budget over both and a rolling one over
/// the first, random prices, limits and backlogs, instances that become ready or
/// vanish, every minute a tick deciding both deployments at once. The spend the
/// registry says ran never passes either cap, and the ledger agrees with it.
#[tokio::test]
async fn the_cap_holds_over_generated_worlds_against_redis() {
    const WORLDS: u64 = 12;
    const MINUTES: i64 = 40;
    for seed in 1..=WORLDS {
        // The project's seeded PRNG: each world is reproducible by its seed.
        let mut rng = scale0_core::rng::Rng::new(seed);
        let (a, b) = (unique("cap-a"), unique("cap-b"));
        let price_a = 1.0 + rng.next_f64() * 19.0;
        let price_b = 1.0 + rng.next_f64() * 19.0;
        let all_limit = 0.3 + rng.next_f64() * 3.0;
        let a_limit = 0.2 + rng.next_f64() * 2.0;
        let pools = |name: &str, price: f64| {
            format!(
                r#"
                [[deployments]]
                name = "{name}"
                [deployments.policy]
                drain_timeout = "2m"
                scale_to_zero_grace = "2m"
                [[deployments.pools]]
                name = "gpu"
                max_instances = 6
                slots = 4
                price_per_hour_usd = {price}
                boot_time = "90s"
                "#
            )
        };
        let cfg = config(&format!(
            r#"
            [[budgets]]
            name = "all"
            period = "daily"
            limit_usd = {all_limit}
            [[budgets]]
            name = "first"
            deployments = ["{a}"]
            period = "rolling"
            window = "1h"
            limit_usd = {a_limit}
            at_cap = "scale-to-min"
            {}
            {}
            "#,
            pools(&a, price_a),
            pools(&b, price_b)
        ));
        let store = ledger_store("ledger-cap").await;
        let minute = Arc::new(AtomicI64::new(0));
        let clock = {
            let minute = minute.clone();
            Clock::from_fn(move || t0() + TimeDelta::minutes(minute.load(Ordering::SeqCst)))
        };
        let provider = Arc::new(FakeProvider::per_instance());
        let queue = Arc::new(FixedQueueDepth::new());
        let deps = Deps::new(cfg.clone(), store.clone(), provider.clone(), queue.clone())
            .with_clock(clock.clone());
        let mut stopped = BTreeMap::new();
        for m in 0..MINUTES {
            minute.store(m, Ordering::SeqCst);
            let now = clock.now();
            for d in [&a, &b] {
                let backlog = if rng.below(3) == 0 { 0 } else { rng.below(80) };
                queue.set(&scale0_core::contract::request_queue(d), backlog);
                for r in store.instances(d).await.unwrap() {
                    match r.state {
                        InstanceState::Booting if rng.below(2) == 0 => {
                            store.mark_ready(d, &r.id, now, None).await.unwrap();
                        }
                        InstanceState::Ready if rng.below(25) == 0 => provider.vanish(&r.id),
                        _ => {}
                    }
                }
            }
            scaler(wake(true), &deps).await.unwrap();
            let spent_a = bill(&store, &a, price_a, now, &mut stopped).await;
            let spent_all = spent_a + bill(&store, &b, price_b, now, &mut stopped).await;
            let spent_a_window = spent_a;
            assert!(
                spent_all <= all_limit + 1e-9,
                "seed {seed} minute {m}: spent {spent_all} over the daily cap {all_limit}"
            );
            assert!(
                spent_a_window <= a_limit + 1e-9,
                "seed {seed} minute {m}: {a} spent {spent_a_window} over its cap {a_limit}"
            );
            let day = period::current(&cfg.budgets[0], now).start;
            let ledger_all = store.spend_since(TOTAL, day, now).await.unwrap();
            // The ledger bills the minimum of an instance that has not stopped yet only
            // once it stops; the registry's bill above counts it at once.
            assert!(
                ledger_all <= spent_all + 1e-6,
                "seed {seed} minute {m}: ledger {ledger_all} registry {spent_all}"
            );
            assert!(
                spent_all - ledger_all <= 12.0 * price_a.max(price_b) / 60.0 + 1e-6,
                "seed {seed} minute {m}: ledger {ledger_all} vs registry {spent_all}"
            );
        }
        store.forget_ledger().await.unwrap();
        store.forget_deployment(&a).await.unwrap();
        store.forget_deployment(&b).await.unwrap();
    }
}

/// Two deployments sharing a service quota (16 vCPUs, 8 per instance), each wanting two
/// instances, deciding at once: together they plan two, never three, and the one left
/// short says which quota stopped it.
#[tokio::test]
async fn deployments_sharing_a_quota_never_plan_past_it_even_deciding_at_once() {
    let (a, b) = (unique("quota-a"), unique("quota-b"));
    let vcpus = "vcpus_per_instance = 8";
    let cfg = config(&format!(
        r#"
        [[quotas]]
        name = "g-on-demand"
        code = "L-DB2E81BA"
        vcpus = 16
        pools = ["{a}/a10g", "{b}/a10g"]
        {}
        {}
        "#,
        one_pool(&a, vcpus),
        one_pool(&b, vcpus)
    ));
    let store = ledger_store("ledger-quota").await;
    let queue = FixedQueueDepth::new();
    for d in [&a, &b] {
        queue.set(&scale0_core::contract::request_queue(d), 100);
    }
    let deps = Deps::new(
        cfg,
        store.clone(),
        Arc::new(FakeProvider::by_count()),
        Arc::new(queue),
    )
    .with_clock(Clock::fixed(t0()));
    let run = |d: String| {
        let deps = deps.clone();
        async move {
            scaler(
                ScalerEvent::Wake(Wake {
                    deployments: vec![d],
                    trigger: "test".into(),
                    id: None,
                    sweep: false,
                }),
                &deps,
            )
            .await
            .unwrap()
        }
    };
    let (ra, rb) = tokio::join!(run(a.clone()), run(b.clone()));
    let (ra, rb) = (&ra.deployments[0], &rb.deployments[0]);
    assert_eq!(
        ra.requested.len() + rb.requested.len(),
        2,
        "{:?} {:?}",
        ra.reasons,
        rb.reasons
    );
    for run in [ra, rb] {
        let cap = run
            .cap
            .as_ref()
            .expect("both want more than the quota gives");
        assert!(
            cap.reason
                .starts_with("quota g-on-demand (L-DB2E81BA): 16 of 16 vCPUs"),
            "{}",
            cap.reason
        );
    }
    // Deciding again changes nothing: the holdings are published with each decision.
    let again = run(a.clone()).await;
    assert!(again.deployments[0].requested.is_empty());
    store.forget_ledger().await.unwrap();
    for d in [&a, &b] {
        store.forget_deployment(d).await.unwrap();
    }
}
