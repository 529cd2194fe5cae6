//! The state store against a real Redis (`SCALE0_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; `make test` starts one). Each test uses its own
//! deployment name, so tests run in parallel without flushing anything.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use scale0_core::config::Config;
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::{Cap, Decision, Observation, PolicyMemory, decide};
use scale0_state::Store;
use scale0_state::capacity::{CommitOutcome, requested_instances};
use scale0_state::decisions::ObservedSummary;
use scale0_state::idempotency::{Checked, Ending, Leased, ReplyAddress, RequestRef, Standing};
use scale0_state::lifecycle::PendingLifecycleAction;
use scale0_state::registry::{Adopted, Transition};

async fn store() -> Store {
    let url = std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    Store::connect_with_timeout(&url, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("Redis is needed at {url} (run infra/local/services.sh): {e}"))
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn record(d: &str, id: &str, state: InstanceState) -> InstanceRecord {
    InstanceRecord {
        id: id.into(),
        deployment: d.into(),
        pool: "a10g".into(),
        state,
        endpoint: None,
        launched_at: t0(),
        ready_at: None,
        draining_since: None,
        failures: 0,
        reclaim_at: None,
    }
}

#[tokio::test]
async fn registry_transitions_are_guarded() {
    let s = store().await;
    let d = unique("registry");
    s.put_instance(&record(&d, "i-1", InstanceState::Booting))
        .await
        .unwrap();

    // booting → ready, with an endpoint; ready_at stamped and failures reset.
    s.record_failure(&d, "i-1").await.unwrap();
    let t = s
        .transition(
            &d,
            "i-1",
            &[InstanceState::Booting],
            InstanceState::Ready,
            t0(),
            Some("http://127.0.0.1:9000"),
        )
        .await
        .unwrap();
    let Transition::Applied(r) = t else {
        panic!("{t:?}")
    };
    assert_eq!(r.state, InstanceState::Ready);
    assert_eq!(r.ready_at, Some(t0()));
    assert_eq!(r.failures, 0);
    assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:9000"));

    // A late "booting → ready" for an instance already draining is refused.
    s.transition(&d, "i-1", &[], InstanceState::Draining, t0(), None)
        .await
        .unwrap();
    let late = s
        .transition(
            &d,
            "i-1",
            &[InstanceState::Booting],
            InstanceState::Ready,
            t0(),
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(late, Transition::Refused(ref r) if r.state == InstanceState::Draining),
        "{late:?}"
    );
    assert_eq!(
        s.transition(&d, "nope", &[], InstanceState::Ready, t0(), None)
            .await
            .unwrap(),
        Transition::NotFound
    );

    // Failures count up and reset.
    assert_eq!(
        s.record_failure(&d, "i-1").await.unwrap().unwrap().failures,
        1
    );
    assert_eq!(
        s.record_failure(&d, "i-1").await.unwrap().unwrap().failures,
        2
    );
    assert_eq!(
        s.clear_failures(&d, "i-1").await.unwrap().unwrap().failures,
        0
    );

    assert_eq!(s.instances(&d).await.unwrap().len(), 1);
    assert!(s.remove_instance(&d, "i-1").await.unwrap());
    assert!(s.instances(&d).await.unwrap().is_empty());
}

#[tokio::test]
async fn slot_limit_holds_under_concurrency_and_leases_expire() {
    let s = store().await;
    let d = unique("slots");
    let now = 1_000_000i64;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (s, d) = (s.clone(), d.clone());
            tokio::spawn(async move {
                s.acquire_slot(&d, "i-1", 3, &format!("tok-{n}"), now, now + 60_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += u32::from(t.await.unwrap());
    }
    assert_eq!(won, 3, "exactly the slot limit");
    assert_eq!(s.in_flight(&d, &["i-1"], now).await.unwrap()["i-1"], 3);

    // Releasing one frees one.
    let held: Vec<String> = (0..20).map(|n| format!("tok-{n}")).collect();
    for t in &held {
        s.release_slot(&d, "i-1", t).await.unwrap();
    }
    assert_eq!(s.in_flight(&d, &["i-1"], now).await.unwrap()["i-1"], 0);

    // A lease whose holder died expires at its deadline.
    assert!(
        s.acquire_slot(&d, "i-2", 1, "crashed", now, now + 100)
            .await
            .unwrap()
    );
    assert!(
        !s.acquire_slot(&d, "i-2", 1, "other", now + 50, now + 1000)
            .await
            .unwrap()
    );
    assert!(
        s.acquire_slot(&d, "i-2", 1, "other", now + 101, now + 1000)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn repeated_events_and_redelivered_requests_are_recognised() {
    let s = store().await;
    let d = unique("dedupe");
    assert!(
        s.first_sighting(&d, "evt-1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !s.first_sighting(&d, "evt-1", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        s.first_sighting(&d, "evt-2", Duration::from_secs(60))
            .await
            .unwrap()
    );
}

/// One `message_id`, copies on two workers. t=0 worker 1's job leases a slot and
/// claims the request; worker 2's copy (another reply address) finds it claimed.
/// Worker 1 ends: its reply is kept and its address answered. Worker 2's copy then
/// gets the kept reply without a lease; once it answered its address too, every copy
/// of either address is answered. A dead worker's claim lapses with its TTL.
#[tokio::test]
async fn a_message_id_runs_once_and_each_address_is_answered_once() {
    let s = store().await;
    let d = unique("once");
    let now = Utc::now().timestamp_millis();
    let x = ReplyAddress {
        reply_to: "replies-1",
        correlation_id: Some("c1"),
    }
    .field();
    let y = ReplyAddress {
        reply_to: "replies-2",
        correlation_id: None,
    }
    .field();
    let (xs, ys, both) = (vec![x.clone()], vec![y.clone()], vec![x.clone(), y.clone()]);
    let job = |claim, addresses| RequestRef {
        message_id: "m-1",
        claim,
        addresses,
    };
    let ttl = Duration::from_secs(10);
    async fn lease(s: &Store, d: &str, r: RequestRef<'_>, now: i64) -> Checked<Leased> {
        let ttl = Duration::from_secs(10);
        s.lease_for(d, "i-1", 4, r.claim, now, now + 10_000, Some((r, ttl)))
            .await
            .unwrap()
    }
    let (xs, ys, both) = (xs.as_slice(), ys.as_slice(), both.as_slice());

    let first = lease(&s, &d, job("w1:1", xs), now).await;
    assert_eq!(first.outcome, Leased::Granted);
    assert_eq!(first.answered, vec![false]);
    // Its own retry may lease again; another job may not.
    assert_eq!(
        lease(&s, &d, job("w1:1", xs), now).await.outcome,
        Leased::Granted
    );
    let second = lease(&s, &d, job("w2:7", ys), now).await;
    assert_eq!(
        second.outcome,
        Leased::NotNeeded(Standing::ClaimedElsewhere)
    );
    assert!(
        s.renew_slot(
            &d,
            "i-1",
            "w1:1",
            now,
            now + 20_000,
            Some(("m-1", "w1:1", ttl))
        )
        .await
        .unwrap()
    );

    s.finish_request(
        &d,
        Some(("i-1", "w1:1")),
        Some(Ending {
            request: job("w1:1", xs),
            reply: Some(b"the reply"),
            answered: xs,
            ttl,
        }),
    )
    .await
    .unwrap();
    let leases = s.in_flight(&d, &["i-1"], now).await.unwrap();
    assert_eq!(leases["i-1"], 0, "both leases of w1:1 were one token");
    let second = lease(&s, &d, job("w2:7", ys), now).await;
    assert_eq!(
        second.outcome,
        Leased::NotNeeded(Standing::Done {
            reply: b"the reply".to_vec()
        })
    );
    assert_eq!(second.answered, vec![false]);
    assert_eq!(s.in_flight(&d, &["i-1"], now).await.unwrap()["i-1"], 0);

    // A redelivery to the answered address: nothing more to send.
    let redelivered = s.request_standing(&d, job("w3:1", xs)).await.unwrap();
    assert_eq!(
        redelivered.outcome,
        Standing::Done {
            reply: b"the reply".to_vec()
        }
    );
    assert_eq!(redelivered.answered, vec![true]);
    s.finish_request(
        &d,
        None,
        Some(Ending {
            request: job("w2:7", ys),
            reply: None,
            answered: ys,
            ttl,
        }),
    )
    .await
    .unwrap();
    let all = s.request_standing(&d, job("w3:1", both)).await.unwrap();
    assert_eq!(all.answered, vec![true, true]);

    // Answered `shed` (no reply kept), the address is answered and the request open.
    let shed = RequestRef {
        message_id: "m-2",
        claim: "w1:2",
        addresses: xs,
    };
    s.finish_request(
        &d,
        None,
        Some(Ending {
            request: shed,
            reply: None,
            answered: xs,
            ttl,
        }),
    )
    .await
    .unwrap();
    let again = RequestRef {
        message_id: "m-2",
        claim: "w1:3",
        addresses: xs,
    };
    assert_eq!(
        s.request_standing(&d, again).await.unwrap().outcome,
        Standing::Answered
    );
    let fresh = RequestRef {
        message_id: "m-2",
        claim: "w1:3",
        addresses: ys,
    };
    assert_eq!(
        s.request_standing(&d, fresh).await.unwrap().outcome,
        Standing::Open
    );

    // A claim lapses: its worker died.
    let short = Duration::from_millis(50);
    let dying = RequestRef {
        message_id: "m-3",
        claim: "w9:1",
        addresses: xs,
    };
    let r = s
        .lease_for(&d, "i-2", 4, "w9:1", now, now + 60, Some((dying, short)))
        .await
        .unwrap();
    assert_eq!(r.outcome, Leased::Granted);
    let heir = RequestRef {
        message_id: "m-3",
        claim: "w2:9",
        addresses: xs,
    };
    assert_eq!(
        s.request_standing(&d, heir).await.unwrap().outcome,
        Standing::ClaimedElsewhere
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        s.request_standing(&d, heir).await.unwrap().outcome,
        Standing::Open
    );
}

#[tokio::test]
async fn counters_feed_the_observation() {
    let s = store().await;
    let d = unique("counters");
    s.add_arrivals(&d, t0(), 3).await.unwrap();
    s.add_arrivals(&d, t0() + TimeDelta::seconds(5), 2)
        .await
        .unwrap();
    s.add_arrivals(&d, t0() + TimeDelta::seconds(3600), 7)
        .await
        .unwrap();
    let bins = s
        .arrivals(&d, t0(), t0() + TimeDelta::seconds(7200))
        .await
        .unwrap();
    assert_eq!(bins.get(&t0().timestamp()), Some(&5));
    assert_eq!(bins.get(&(t0().timestamp() + 3600)), Some(&7));
    assert_eq!(
        s.last_arrival(&d).await.unwrap(),
        Some(t0() + TimeDelta::seconds(3600))
    );
    // Tokens in the same bins: summed over a range, apart from the arrivals.
    s.add_tokens(&d, t0(), 120).await.unwrap();
    s.add_tokens(&d, t0() + TimeDelta::seconds(3600), 30)
        .await
        .unwrap();
    let all = t0() + TimeDelta::seconds(7200);
    assert_eq!(s.tokens(&d, t0(), all).await.unwrap(), 150);
    assert_eq!(
        s.tokens(&d, t0() + TimeDelta::seconds(10), all)
            .await
            .unwrap(),
        30
    );
    assert_eq!(bins, s.arrivals(&d, t0(), all).await.unwrap());

    let now = t0().timestamp_millis();
    s.report_held(&d, "w1", 4, now).await.unwrap();
    s.report_held(&d, "w2", 6, now - 60_000).await.unwrap(); // stale: crashed a minute ago
    assert_eq!(s.held(&d, now, Duration::from_secs(15)).await.unwrap(), 4);
    s.clear_held(&d, "w1").await.unwrap();
    assert_eq!(s.held(&d, now, Duration::from_secs(15)).await.unwrap(), 0);

    for ms in 1..=100 {
        s.record_request(&d, 10, ms).await.unwrap();
    }
    assert_eq!(s.latency_p95_ms(&d).await.unwrap(), Some(95.0));
    assert_eq!(
        s.mean_service_time(&d).await.unwrap(),
        Some(Duration::from_millis(10))
    );

    s.record_boot(&d, "a10g", Duration::from_secs(80))
        .await
        .unwrap();
    let boots = s.recent_boots(&d, &["a10g", "l4"]).await.unwrap();
    assert_eq!(boots["a10g"], [Duration::from_secs(80)]);
    assert!(!boots.contains_key("l4"));
}

#[tokio::test]
async fn signals_expire_or_clear() {
    let s = store().await;
    let d = unique("signals");
    let cap = Cap {
        max_instances: 2,
        needed_instances: 5,
        reason: "pool max_instances".into(),
        retry_at: None,
    };
    s.set_cap(&d, Some(&cap)).await.unwrap();
    assert_eq!(s.cap(&d).await.unwrap(), Some(cap));
    s.set_cap(&d, None).await.unwrap();
    assert_eq!(s.cap(&d).await.unwrap(), None);

    s.set_pool_unavailable(&d, "spot", t0() + TimeDelta::seconds(60))
        .await
        .unwrap();
    assert_eq!(s.unavailable_pools(&d, t0()).await.unwrap().len(), 1);
    assert!(
        s.unavailable_pools(&d, t0() + TimeDelta::seconds(61))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        s.try_activation(&d, Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(
        !s.try_activation(&d, Duration::from_millis(300))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        s.try_activation(&d, Duration::from_millis(300))
            .await
            .unwrap()
    );
}

fn spec(name: &str) -> scale0_core::config::Deployment {
    let toml = format!(
        r#"
        [[deployments]]
        name = "{name}"
        [[deployments.pools]]
        name = "a10g"
        max_instances = 10
        slots = 8
        price_per_hour_usd = 1.0
        boot_time = "90s"
        "#
    );
    Config::load(&toml).unwrap().deployments.remove(0)
}

#[tokio::test]
async fn one_hundred_concurrent_scalers_launch_one_need_once() {
    let s = store().await;
    let d = unique("fence");
    let spec = spec(&d);

    // 100 scaler runs start from the same snapshot and see the same backlog.
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (s, spec) = (s.clone(), spec.clone());
            tokio::spawn(async move {
                loop {
                    let snap = s.load_policy(&spec.name).await.unwrap();
                    let obs = s.observe(&spec, t0(), 19).await.unwrap();
                    let decision: Decision = decide(t0(), &spec, &obs, &snap.memory);
                    match s.commit_decision(snap.generation, &decision).await.unwrap() {
                        CommitOutcome::Committed { .. } => return decision.launch_total(),
                        CommitOutcome::Fenced { .. } => continue,
                    }
                }
            })
        })
        .collect();
    let mut launched = 0;
    for t in tasks {
        launched += t.await.unwrap();
    }
    // 19 queued × 2s / 10s (target_queue_wait) = 3.8 → 5.4 slots → 1 instance.
    let requested: Vec<_> = s
        .instances(&d)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.state == InstanceState::Requested)
        .collect();
    assert_eq!(launched, 1, "the need was launched once in total");
    assert_eq!(requested.len(), 1);
    assert_eq!(s.desired(&d).await.unwrap()["a10g"], 1);
    assert_eq!(s.recent_decisions(&d, 500).await.unwrap().len(), 100);
}

#[tokio::test]
async fn commit_registers_launches_marks_drains_and_logs() {
    let s = store().await;
    let d = unique("commit");
    let spec = spec(&d);
    let mut busy = record(&d, "old", InstanceState::Ready);
    busy.ready_at = Some(t0());
    s.put_instance(&busy).await.unwrap();

    let decision = Decision {
        at: t0(),
        deployment: d.clone(),
        pools: vec![scale0_core::policy::PoolDecision {
            pool: "a10g".into(),
            target: 2,
            ready: 1,
            booting: 0,
            draining: 0,
            launch: 2,
        }],
        drain: vec!["old".into()],
        terminate: vec![],
        cap: Some(Cap {
            max_instances: 2,
            needed_instances: 3,
            reason: "test".into(),
            retry_at: None,
        }),
        demand: 10.0,
        memory: PolicyMemory {
            idle_since: Some(t0()),
            ..Default::default()
        },
        reasons: vec!["because".into()],
        commitment: None,
        budgets: Vec::new(),
        forecast: None,
    };
    assert_eq!(
        s.commit_decision(0, &decision).await.unwrap(),
        CommitOutcome::Committed { generation: 1 }
    );
    assert_eq!(
        s.commit_decision(0, &decision).await.unwrap(),
        CommitOutcome::Fenced { current: 1 }
    );

    let snap = s.load_policy(&d).await.unwrap();
    assert_eq!(snap.generation, 1);
    assert_eq!(snap.memory.idle_since, Some(t0()));
    let all = s.instances(&d).await.unwrap();
    let expected: Vec<String> = requested_instances(&decision, 1, t0())
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(expected, ["a10g-g1-0", "a10g-g1-1"]);
    for id in &expected {
        assert!(
            all.iter()
                .any(|r| &r.id == id && r.state == InstanceState::Requested)
        );
    }
    let old = all.iter().find(|r| r.id == "old").unwrap();
    assert_eq!(old.state, InstanceState::Draining);
    assert_eq!(old.draining_since, Some(t0()));
    assert_eq!(s.cap(&d).await.unwrap().unwrap().max_instances, 2);
    let log = s.recent_decisions(&d, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].generation, 1);
    assert_eq!(log[0].decision, decision);
    assert!(s.deployments().await.unwrap().contains(&d));

    // The observation counts the requested placeholders as capacity.
    let obs: Observation = s.observe(&spec, t0(), 0).await.unwrap();
    assert_eq!(
        obs.instances
            .iter()
            .filter(|i| i.record.state == InstanceState::Requested)
            .count(),
        2
    );
}

#[tokio::test]
async fn adopting_replaces_a_placeholder_once_and_marks_ready_record_the_boot() {
    let s = store().await;
    let d = unique("adopt");
    let mut placeholder = record(&d, "a10g-g1-0", InstanceState::Requested);
    placeholder.launched_at = t0();
    s.put_instance(&placeholder).await.unwrap();

    let mut real = record(&d, "i-0abc", InstanceState::Booting);
    real.launched_at = t0() + TimeDelta::seconds(30);
    real.endpoint = Some("http://10.0.0.1:8000".into());
    let adopted = s.adopt_instance(&real).await.unwrap();
    let Adopted::Replaced {
        placeholder,
        record: r,
    } = &adopted
    else {
        panic!("{adopted:?}")
    };
    assert_eq!(placeholder, "a10g-g1-0");
    assert_eq!(r.launched_at, t0(), "boot time counts from the request");
    // A second adoption (a repeated event, a racing reconcile) changes nothing; a
    // second instance with no placeholder left is added.
    assert!(matches!(
        s.adopt_instance(&real).await.unwrap(),
        Adopted::Existing(_)
    ));
    let other = record(&d, "i-0def", InstanceState::Booting);
    assert!(matches!(
        s.adopt_instance(&other).await.unwrap(),
        Adopted::Added(_)
    ));
    let ids: Vec<String> = s
        .instances(&d)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["i-0abc", "i-0def"]);

    // Ready once: the boot (90 s after the request) is recorded by whoever applies it.
    let at = t0() + TimeDelta::seconds(90);
    assert!(matches!(
        s.mark_ready(&d, "i-0abc", at, None).await.unwrap(),
        Transition::Applied(_)
    ));
    assert!(matches!(
        s.mark_ready(&d, "i-0abc", at, None).await.unwrap(),
        Transition::Refused(_)
    ));
    let boots = s.recent_boots(&d, &["a10g"]).await.unwrap();
    assert_eq!(boots["a10g"], [Duration::from_secs(90)]);
}

#[tokio::test]
async fn terminated_records_block_readoption_until_purged() {
    let s = store().await;
    let d = unique("purge");
    s.put_instance(&record(&d, "i-1", InstanceState::Ready))
        .await
        .unwrap();
    assert!(
        s.acquire_slot(&d, "i-1", 1, "tok", 0, 60_000)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.mark_terminated(&d, "i-1", t0()).await.unwrap(),
        Transition::Applied(_)
    ));
    assert_eq!(s.in_flight(&d, &["i-1"], 0).await.unwrap()["i-1"], 0);
    // A late listing that still shows the instance does not bring it back.
    assert!(matches!(
        s.adopt_instance(&record(&d, "i-1", InstanceState::Booting))
            .await
            .unwrap(),
        Adopted::Existing(r) if r.state == InstanceState::Terminated
    ));
    assert_eq!(
        s.purge_terminated(&d, t0() - TimeDelta::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.purge_terminated(&d, t0()).await.unwrap(), 1);
    assert!(s.instances(&d).await.unwrap().is_empty());
}

#[tokio::test]
async fn lifecycle_actions_metrics_and_forgotten_events() {
    let s = store().await;
    let d = unique("lifecycle");
    let action = PendingLifecycleAction {
        instance_id: "i-1".into(),
        asg_name: "scale0-x-a10g".into(),
        hook_name: "scale0-terminating".into(),
        token: "tok".into(),
        transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
        received_at: t0(),
        last_error: None,
    };
    s.put_lifecycle_action(&d, &action).await.unwrap();
    assert_eq!(
        s.lifecycle_action(&d, "i-1").await.unwrap(),
        Some(action.clone())
    );
    assert_eq!(s.lifecycle_actions(&d).await.unwrap(), [action]);
    s.remove_lifecycle_action(&d, "i-1").await.unwrap();
    assert!(s.lifecycle_actions(&d).await.unwrap().is_empty());

    s.set_gpu_utilization(&d, 0.8, Duration::from_millis(200))
        .await
        .unwrap();
    let spec = spec(&d);
    assert_eq!(
        s.observe(&spec, t0(), 0).await.unwrap().gpu_utilization,
        Some(0.8)
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(s.gpu_utilization(&d).await.unwrap(), None);

    let ttl = Duration::from_secs(60);
    assert!(s.first_sighting(&d, "e", ttl).await.unwrap());
    s.forget_event(&d, "e").await.unwrap();
    assert!(s.first_sighting(&d, "e", ttl).await.unwrap());
}

#[tokio::test]
async fn the_observation_and_the_log_carry_everything_in_two_round_trips() {
    let s = store().await;
    let d = unique("observe");
    let spec = spec(&d);
    let mut ready = record(&d, "i-1", InstanceState::Ready);
    ready.ready_at = Some(t0());
    s.put_instance(&ready).await.unwrap();
    s.put_instance(&record(&d, "i-gone", InstanceState::Terminated))
        .await
        .unwrap();
    let now_ms = t0().timestamp_millis();
    s.acquire_slot(&d, "i-1", 8, "a", now_ms, now_ms + 1000)
        .await
        .unwrap();
    s.report_held(&d, "w", 7, now_ms).await.unwrap();
    s.record_request(&d, 1500, 40).await.unwrap();
    s.add_arrivals(&d, t0(), 1).await.unwrap();
    s.record_boot(&d, "a10g", Duration::from_secs(75))
        .await
        .unwrap();
    s.set_pool_unavailable(&d, "a10g", t0() + TimeDelta::seconds(30))
        .await
        .unwrap();
    let obs = s.observe(&spec, t0(), 12).await.unwrap();
    assert_eq!(
        obs.instances.len(),
        1,
        "terminated records are not observed"
    );
    assert_eq!((obs.queue_depth, obs.held, obs.in_flight), (12, 7, 1));
    assert_eq!(obs.mean_service_time, Some(Duration::from_millis(1500)));
    assert_eq!(obs.latency_p95_ms, Some(40.0));
    assert_eq!(obs.last_arrival_at, Some(t0()));
    assert_eq!(obs.recent_boot_times["a10g"], [Duration::from_secs(75)]);
    assert!(obs.unavailable_pools.contains_key("a10g"));

    let decision = decide(t0(), &spec, &obs, &PolicyMemory::default());
    let summary = ObservedSummary::new("tick", &obs);
    s.commit_decision_observed(0, &decision, Some(&summary))
        .await
        .unwrap();
    let logged = s.recent_decisions(&d, 1).await.unwrap();
    assert_eq!(logged[0].observed.as_ref(), Some(&summary));
    assert_eq!(summary.mean_service_ms, Some(1500));
}

#[tokio::test]
async fn auth_in_the_url_is_used_and_never_shown() {
    // A throwaway ACL user on the test server (Redis 6+).
    let user = format!("scale0-test-{}", std::process::id());
    let admin = redis::Client::open(
        std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    )
    .unwrap();
    let mut c = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            &user,
            "on",
            ">hunter2",
            "~scale0:*",
            "&*",
            "+@all",
        ])
        .query_async(&mut c)
        .await
        .unwrap();
    let ok = Store::connect_with_timeout(
        &format!("redis://{user}:hunter2@127.0.0.1:6379"),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    ok.ping().await.unwrap();
    let err = Store::connect_with_timeout(
        &format!("redis://{user}:wrong@127.0.0.1:6379"),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("wrong") && !text.contains("hunter2"),
        "{text}"
    );
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &user])
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_forgotten_deployment_leaves_no_key() {
    let s = store().await;
    let d = unique("forget");
    s.put_instance(&record(&d, "i-1", InstanceState::Ready))
        .await
        .unwrap();
    s.add_arrivals(&d, t0(), 3).await.unwrap();
    s.record_request(&d, 10, 20).await.unwrap();
    let other = unique("forget-other");
    s.put_instance(&record(&other, "i-1", InstanceState::Ready))
        .await
        .unwrap();

    assert!(s.forget_deployment(&d).await.unwrap() >= 4);
    let url = std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("scale0:{{{d}}}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        s.instances(&other).await.unwrap().len(),
        1,
        "other deployments untouched"
    );
}
