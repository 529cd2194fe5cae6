//! The scaler handler fed documented event JSON, against real Redis (and RabbitMQ for
//! the queue depth), with the hand-written fake provider.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use scale0_core::contract::{InstanceState, request_queue};
use scale0_functions::broker::AmqpQueueDepth;
use scale0_functions::provider::fake::FakeProvider;
use scale0_functions::provider::{ProviderError, ProviderErrorKind};
use scale0_functions::{Clock, HandlerError, lifecycle, scaler, scheduler};
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn a_tick_launches_for_the_backlog_once_and_a_repeated_tick_changes_nothing() {
    let d = unique("tick");
    // 19 requests wait in the deployment's queue: the depth comes from a passive
    // declare against the real broker.
    let conn = amqp().await;
    let ch = conn.create_channel().await.unwrap();
    let queue = request_queue(&d);
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for _ in 0..19 {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            Default::default(),
        )
        .await
        .unwrap();
    }
    let amqp_depth = AmqpQueueDepth::new(amqp_url());
    for _ in 0..100 {
        use scale0_functions::broker::QueueDepth;
        if amqp_depth.depth(&queue).await.unwrap() == Some(19) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(
        config(&one_pool(&d, "")),
        fake.clone(),
        Arc::new(amqp_depth),
    )
    .await;

    let out = scaler::handle_json(tick("tick-1"), &deps).await.unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.trigger, "tick");
    assert!(!run.duplicate);
    // 19 queued × 2 s / 10 s (target_queue_wait) = 3.8 → 5.4 slots at 0.7 → 1 instance of 8.
    assert_eq!(run.requested, ["a10g-g1-0"]);
    assert_eq!(fake.started(), ["a10g-g1-0"]);
    let registry = deps.store.instances(&d).await.unwrap();
    assert_eq!(registry.len(), 1);
    assert_eq!(registry[0].state, InstanceState::Booting);
    assert_eq!(
        registry[0].endpoint.as_deref(),
        Some("http://fake.invalid/a10g-g1-0")
    );
    let logged = deps.store.recent_decisions(&d, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    let observed = logged[0].observed.as_ref().unwrap();
    assert_eq!(
        (observed.queue_depth, observed.trigger.as_str()),
        (19, "tick")
    );

    // The same event again: recognised, nothing decided, nothing launched.
    let again = scaler::handle_json(tick("tick-1"), &deps).await.unwrap();
    assert!(again.deployments[0].duplicate);
    assert_eq!(deps.store.load_policy(&d).await.unwrap().generation, 1);
    assert_eq!(deps.store.recent_decisions(&d, 10).await.unwrap().len(), 1);
    assert_eq!(fake.started().len(), 1);

    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_request_queue_reads_as_empty() {
    amqp().await; // a clear message when RabbitMQ is not running
    let d = unique("noqueue");
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(
        config(&one_pool(&d, "")),
        fake.clone(),
        Arc::new(AmqpQueueDepth::new(amqp_url())),
    )
    .await;
    // Twice: the first passive declare's 404 closed only its own channel.
    for id in ["t1", "t2"] {
        let out = scaler::handle_json(tick(id), &deps).await.unwrap();
        assert!(out.deployments[0].requested.is_empty(), "{out:?}");
    }
    assert!(fake.started().is_empty());
}

#[tokio::test]
async fn one_hundred_concurrent_scaler_invocations_launch_one_need_once() {
    let d = unique("hundred");
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 95)).await;
    // 95 queued × 2 s / 10 s (target_queue_wait) = 19 → 27 slots at 0.7 → 4 instances of 8.
    let runs: Vec<_> = (0..100)
        .map(|n| {
            let deps = deps.clone();
            let body = control(
                &format!("act-{n}"),
                &d,
                json!({"type": "activation", "held": 0}),
            );
            tokio::spawn(async move { scaler::handle_json(amazon_mq(&[body]), &deps).await })
        })
        .collect();
    let mut requested = 0;
    let mut superseded = 0;
    let mut generations = Vec::new();
    for r in runs {
        let run = r.await.unwrap().unwrap().deployments.remove(0);
        requested += run.requested.len();
        if run.superseded {
            // Fenced out on every attempt: it committed nothing and says so.
            assert_eq!((run.generation, run.rounds), (None, 0), "{run:?}");
            assert!(
                run.requested.is_empty() && run.applied.is_empty(),
                "{run:?}"
            );
            superseded += 1;
        } else {
            assert_eq!(run.rounds, 1, "{run:?}");
            generations.push(run.generation.expect("a committed run has a generation"));
        }
    }
    let registry = deps.store.instances(&d).await.unwrap();
    assert_eq!(requested, 4, "the need was requested once in total");
    assert_eq!(live(&registry).len(), 4);
    assert_eq!(fake.started().len(), 4, "each placeholder started once");
    assert_eq!(deps.store.desired(&d).await.unwrap()["a10g"], 4);
    // Every run either committed one generation of its own or was superseded: the
    // committed generations are exactly 1..=N, N the store's, and the rest superseded.
    generations.sort_unstable();
    let last = deps.store.load_policy(&d).await.unwrap().generation;
    assert_eq!(generations, (1..=last).collect::<Vec<_>>());
    assert_eq!(generations.len() + superseded, 100);
    eprintln!(
        "100 concurrent runs: {} committed, {superseded} superseded",
        generations.len()
    );
}

#[tokio::test]
async fn an_amazon_mq_batch_handles_good_messages_and_reports_bad_ones() {
    let d = unique("batch");
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 0)).await;
    let mut sick = record(&d, "i-sick", "a10g", InstanceState::Ready);
    sick.endpoint = Some("http://127.0.0.1:9".into());
    // The worker counts each failure in the registry before it reports the third.
    sick.failures = 3;
    deps.store.put_instance(&sick).await.unwrap();

    let event = amazon_mq(&[
        // A worker holds 19 requests with nothing ready: launch one instance.
        control("a1", &d, json!({"type": "activation", "held": 19})),
        // Dispatches to i-sick failed 3 times (the policy's limit): replace it.
        control(
            "f1",
            &d,
            json!({"type": "instance-failed", "instance": "i-sick", "failures": 3, "reason": "connection refused"}),
        ),
        b"not json".to_vec(),
        control(
            "x1",
            "no-such-deployment",
            json!({"type": "pressure", "demand": 9, "capacity": 1}),
        ),
    ]);
    let out = scaler::handle_json(event, &deps).await.unwrap();
    let rejected = &out.rejected;
    assert_eq!(rejected.total, 2, "{rejected}");
    assert_eq!(
        rejected.by_reason,
        [("not a control event", 1), ("unknown deployment", 1)].into()
    );
    assert!(
        rejected.sample[0].starts_with("scale0.control::/[2]: data is not a control event"),
        "{rejected}"
    );
    assert!(rejected.sample[1].contains("unknown deployment `no-such-deployment`"));
    let run = &out.deployments[0];
    assert_eq!(run.trigger, "activation, instance-failed");
    assert_eq!(run.terminated, ["i-sick"], "{:?}", run.reasons);
    assert_eq!(fake.stopped(), ["i-sick"]);
    assert_eq!(run.requested.len(), 1, "{:?}", run.reasons);
    let sick = deps.store.instance(&d, "i-sick").await.unwrap().unwrap();
    assert_eq!(sick.state, InstanceState::Terminated);
}

#[tokio::test]
async fn malformed_events_give_a_clear_error_change_nothing_and_never_panic() {
    let d = unique("malformed");
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 24)).await;

    let mut no_detail_type = tick("x");
    no_detail_type
        .as_object_mut()
        .unwrap()
        .remove("detail-type");
    let mut tick_bad_time = tick("x");
    tick_bad_time["time"] = json!("yesterday");
    let mut rmq_bad_base64 = amazon_mq(&[b"{}".to_vec()]);
    rmq_bad_base64["rmqMessagesByQueue"]["scale0.control::/"][0]["data"] = json!("%%%");
    let mut rmq_no_messages = amazon_mq(&[]);
    rmq_no_messages["rmqMessagesByQueue"] = json!(null);
    let mut alarm_no_name = fixture("cloudwatch-alarm-state-change.json");
    alarm_no_name["detail"]
        .as_object_mut()
        .unwrap()
        .remove("alarmName");

    let scaler_cases: Vec<(&str, Value, &str)> = vec![
        ("null", Value::Null, "got null"),
        ("array", json!([1, 2]), "got an array"),
        ("string", json!("tick"), "got a string"),
        ("empty object", json!({}), "not an EventBridge"),
        (
            "S3 event",
            json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
            "not source `aws.s3`",
        ),
        (
            "no detail-type",
            no_detail_type,
            "not source `aws.events` detail-type ``",
        ),
        (
            "bad time",
            tick_bad_time,
            "EventBridge scheduled event: time: input contains invalid characters",
        ),
        ("bad base64", rmq_bad_base64, "data is not base64"),
        (
            "all messages unknown",
            amazon_mq(&[control(
                "u",
                "nope",
                json!({"type": "activation", "held": 1}),
            )]),
            "unknown deployment `nope`",
        ),
        (
            "no messages",
            rmq_no_messages,
            "Amazon MQ event without messages",
        ),
        (
            "alarm without name",
            alarm_no_name,
            "CloudWatch alarm state change: detail: missing field `alarmName`",
        ),
        (
            "wake unknown",
            json!({"wake": {"trigger": "t", "deployments": ["nope"]}}),
            "unknown deployment `nope`",
        ),
        (
            "wake extra field",
            json!({"wake": {"trigger": "t", "oops": 1}}),
            "unknown field `oops`",
        ),
    ];
    for (name, event, expected) in scaler_cases {
        let err = scaler::handle_json(event, &deps).await.unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{name}: expected `{expected}` in `{err}`"
        );
        assert!(!err.is_retryable(), "{name}: {err}");
    }

    let mut launch_no_token = fixture("autoscaling-launch-lifecycle-action.json");
    launch_no_token["detail"]["AutoScalingGroupName"] = json!(format!("scale0-{d}-a10g"));
    launch_no_token["detail"]
        .as_object_mut()
        .unwrap()
        .remove("LifecycleActionToken");
    let mut ec2_no_id = fixture("ec2-instance-state-change.json");
    ec2_no_id["detail"]["instance-id"] = json!("");
    let lifecycle_cases: Vec<(&str, Value, &str)> = vec![
        ("null", Value::Null, "expected an EventBridge event object"),
        ("scheduled event", tick("x"), "not source `aws.events`"),
        (
            "no token",
            launch_no_token,
            "without detail.LifecycleActionToken",
        ),
        ("no instance id", ec2_no_id, "without detail.instance-id"),
        (
            "no group",
            json!({"source": "aws.autoscaling", "detail-type": "EC2 Instance Launch Successful", "time": "2026-01-01T00:00:00Z", "resources": [], "detail": {}}),
            "without detail.AutoScalingGroupName",
        ),
    ];
    for (name, event, expected) in lifecycle_cases {
        let err = lifecycle::handle_json(event, &deps).await.unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{name}: expected `{expected}` in `{err}`"
        );
    }

    let scheduler_cases: Vec<(&str, Value, &str)> = vec![
        ("null", Value::Null, "expected the schedule's JSON input"),
        (
            "missing action",
            json!({"deployment": d}),
            "missing field `action`",
        ),
        (
            "unknown deployment",
            json!({"deployment": "nope", "action": "a"}),
            "unknown deployment `nope`",
        ),
        (
            "unknown action",
            json!({"deployment": d, "action": "nope"}),
            "unknown scheduled action",
        ),
    ];
    for (name, event, expected) in scheduler_cases {
        let err = scheduler::handle_json(event, &deps).await.unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{name}: expected `{expected}` in `{err}`"
        );
        assert!(matches!(
            err,
            HandlerError::Malformed(_) | HandlerError::Unknown { .. }
        ));
    }

    // Nothing was decided, registered or launched.
    assert_eq!(deps.store.load_policy(&d).await.unwrap().generation, 0);
    assert!(deps.store.instances(&d).await.unwrap().is_empty());
    assert!(deps.store.recent_decisions(&d, 5).await.unwrap().is_empty());
    assert!(!deps.store.deployments().await.unwrap().contains(&d));
    assert!(fake.started().is_empty());
}

#[tokio::test]
async fn an_alarm_wakes_its_deployment_and_feeds_gpu_utilization_to_step_rules() {
    let d = unique("alarm");
    let rule = r#"
        [[deployments.policy.step_rules]]
        metric = "gpu_utilization"
        above = 0.75
        add = 2
    "#;
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, rule)), fake.clone(), depth(&d, 0)).await;
    let mut ready = record(&d, "i-busy", "a10g", InstanceState::Ready);
    ready.endpoint = Some("http://fake.invalid/i-busy".into());
    deps.store.put_instance(&ready).await.unwrap();

    let mut event = fixture("cloudwatch-alarm-state-change.json");
    event["detail"]["alarmName"] = json!(format!("scale0-{d}-gpu-busy"));
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
        json!("GPUUtilization");
    let out = scaler::handle_json(event.clone(), &deps).await.unwrap();
    assert_eq!(out.deployments.len(), 1);
    let run = &out.deployments[0];
    assert_eq!(run.trigger, format!("alarm scale0-{d}-gpu-busy ALARM"));
    let gpu = deps.store.gpu_utilization(&d).await.unwrap().unwrap();
    assert!((gpu - 0.995).abs() < 1e-3, "{gpu}");
    // 99.5 % > 75 % → the step rule adds 2 to the 1 running.
    assert_eq!(run.targets["a10g"], 3, "{:?}", run.reasons);
    assert_eq!(fake.started().len(), 2);
    assert!(scaler::handle_json(event, &deps).await.unwrap().deployments[0].duplicate);

    // The documented direct alarm action names no deployment: every one is woken.
    let action = fixture("cloudwatch-alarm-lambda-action.json");
    let out = scaler::handle_json(action, &deps).await.unwrap();
    assert_eq!(out.deployments.len(), 1);
    assert_eq!(
        out.deployments[0].trigger,
        "alarm lambda-demo-metric-alarm ALARM"
    );
}

#[tokio::test]
async fn an_unavailable_pool_is_skipped_and_the_need_launches_in_another() {
    let d = unique("fallback");
    let fake = Arc::new(FakeProvider::per_instance());
    fake.fail(
        &d,
        "spot",
        ProviderError::new(ProviderErrorKind::InsufficientCapacity, "no g5 capacity"),
    );
    let deps = deps(config(&two_pools(&d)), fake.clone(), depth(&d, 19)).await;
    let out = scaler::handle_json(tick("t"), &deps).await.unwrap();
    let run = &out.deployments[0];
    // Round 1 picked the cheaper spot pool and failed; round 2 launched on demand.
    assert_eq!(run.rounds, 2, "{run:?}");
    assert!(run.applied[0].unavailable["spot"].contains("no g5 capacity"));
    assert_eq!(run.applied[0].dropped, ["spot-g1-0"]);
    assert_eq!(fake.started(), ["ondemand-g2-0"]);
    let unavailable = deps.store.unavailable_pools(&d, t0()).await.unwrap();
    assert_eq!(unavailable["spot"], t0() + TimeDelta::seconds(300));
    let live_ids: Vec<String> = live(&deps.store.instances(&d).await.unwrap())
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(live_ids, ["ondemand-g2-0"]);
}

#[tokio::test]
async fn a_by_count_provider_gets_the_registry_count_and_a_low_group_max_caps() {
    let d = unique("bycount");
    let fake = Arc::new(FakeProvider::by_count());
    fake.set_max(&d, "a10g", 1);
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 95)).await;
    let out = scaler::handle_json(tick("t"), &deps).await.unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.applied[0].counts["a10g"], 1);
    assert_eq!(run.applied[0].dropped.len(), 3, "{run:?}");
    assert!(run.applied[0].unavailable["a10g"].contains("max size allows 1 of the 4"));
    // Round 2: the only pool cannot grow, so the decision caps and workers shed.
    assert_eq!(run.rounds, 2);
    let cap = run.cap.as_ref().expect("a cap");
    assert_eq!(cap.max_instances, 1);
    assert_eq!(deps.store.cap(&d).await.unwrap().as_ref(), Some(cap));
    assert_eq!(fake.count(&d, "a10g"), Some(1));
    assert_eq!(live(&deps.store.instances(&d).await.unwrap()).len(), 1);
}

#[tokio::test]
async fn the_tick_reconciles_with_the_provider() {
    let d = unique("reconcile");
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 19)).await;
    // A decision asks for one instance; the group starts it, but its lifecycle event
    // never arrives.
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    assert_eq!(out.deployments[0].requested, ["a10g-g1-0"]);
    fake.add_running(&d, "a10g", "i-0aaa", Some("http://10.0.0.1:8000"));
    // And a registered instance vanished (a reclaimed Spot instance).
    let mut lost = record(&d, "i-0lost", "a10g", InstanceState::Ready);
    lost.endpoint = Some("http://10.0.0.2:8000".into());
    deps.store.put_instance(&lost).await.unwrap();

    let out = scaler::handle_json(tick("t"), &deps).await.unwrap();
    let reconcile = out.deployments[0].reconcile.as_ref().unwrap();
    assert_eq!(reconcile.adopted, ["i-0aaa ← a10g-g1-0"]);
    assert_eq!(reconcile.gone, ["i-0lost"]);
    let registry = deps.store.instances(&d).await.unwrap();
    let adopted = registry.iter().find(|r| r.id == "i-0aaa").unwrap();
    assert_eq!(adopted.state, InstanceState::Booting);
    assert_eq!(
        adopted.launched_at,
        t0(),
        "boot time counts from the request"
    );
    assert!(registry.iter().all(|r| r.id != "a10g-g1-0"));
    // The group keeps one instance: the adopted one covers the need.
    assert_eq!(fake.count(&d, "a10g"), Some(1));
}

#[tokio::test]
async fn the_health_sweep_marks_instances_ready_and_replaces_failing_ones() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let d = unique("health");
    // A model server that is ready, and a port nothing listens on.
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };

    let fake = Arc::new(FakeProvider::per_instance());
    let offset = Arc::new(AtomicI64::new(0));
    let clock = {
        let offset = offset.clone();
        Clock::from_fn(move || t0() + TimeDelta::seconds(offset.load(Ordering::Relaxed)))
    };
    // Two instances are the pool's floor, so no scale-in interferes.
    let toml = one_pool(&d, "").replace(
        "max_instances = 10",
        "min_instances = 2\nmax_instances = 10",
    );
    let deps = deps(config(&toml), fake.clone(), depth(&d, 0))
        .await
        .with_clock(clock);
    let mut booting = record(&d, "i-boot", "a10g", InstanceState::Booting);
    booting.endpoint = Some(good.clone());
    let mut failing = record(&d, "i-bad", "a10g", InstanceState::Ready);
    failing.endpoint = Some(closed.clone());
    failing.ready_at = Some(t0());
    for r in [&booting, &failing] {
        deps.store.put_instance(r).await.unwrap();
        fake.add_running(&d, "a10g", &r.id, r.endpoint.as_deref());
    }

    // t=0: i-boot answers 200 → ready, boot recorded (120 s after launch); i-bad fails once.
    let out = scaler::handle_json(tick("h0"), &deps).await.unwrap();
    let sweep = out.deployments[0].sweep.as_ref().unwrap();
    assert_eq!(sweep.ready, ["i-boot"]);
    assert_eq!(sweep.failed, [("i-bad".to_string(), 1)]);
    let boots = deps.store.recent_boots(&d, &["a10g"]).await.unwrap();
    assert_eq!(boots["a10g"], [Duration::from_secs(120)]);
    // t=+60s, +120s: two more failures reach unhealthy_after_failures (3): replaced.
    for (n, id) in [(1, "h1"), (2, "h2")] {
        offset.store(60 * n, Ordering::Relaxed);
        let out = scaler::handle_json(tick(id), &deps).await.unwrap();
        let sweep = out.deployments[0].sweep.as_ref().unwrap();
        assert_eq!(sweep.failed, [("i-bad".to_string(), n as u32 + 1)]);
    }
    assert_eq!(fake.stopped(), ["i-bad"]);
    // ... and replaced in the same decision, to keep the floor.
    assert_eq!(fake.started(), ["a10g-g3-0"]);
    let bad = deps.store.instance(&d, "i-bad").await.unwrap().unwrap();
    assert_eq!(bad.state, InstanceState::Terminated);
    let boot = deps.store.instance(&d, "i-boot").await.unwrap().unwrap();
    assert_eq!(
        (boot.state, boot.ready_at),
        (InstanceState::Ready, Some(t0()))
    );
}

#[tokio::test]
async fn an_instance_past_its_boot_timeout_is_replaced() {
    let d = unique("boottimeout");
    let fake = Arc::new(FakeProvider::per_instance());
    let toml = one_pool(&d, "").replace(
        "max_instances = 10",
        "min_instances = 1\nmax_instances = 10",
    );
    let deps = deps(config(&toml), fake.clone(), depth(&d, 0)).await;
    // Launched 16 minutes ago and never ready: boot_timeout is 15 minutes.
    let mut stuck = record(&d, "i-stuck", "a10g", InstanceState::Booting);
    stuck.launched_at = t0() - TimeDelta::minutes(16);
    stuck.endpoint = Some("http://fake.invalid/i-stuck".into());
    deps.store.put_instance(&stuck).await.unwrap();
    fake.add_running(&d, "a10g", "i-stuck", stuck.endpoint.as_deref());

    let out = scaler::handle_json(tick("bt"), &deps).await.unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.terminated, ["i-stuck"], "{:?}", run.reasons);
    assert!(
        run.reasons.iter().any(|r| r.contains("boot timeout")),
        "{:?}",
        run.reasons
    );
    assert_eq!(fake.stopped(), ["i-stuck"]);
    assert_eq!(fake.started(), ["a10g-g1-0"], "replaced to keep the floor");
}

#[tokio::test]
async fn a_control_event_with_a_bad_timestamp_names_the_field() {
    let d = unique("badat");
    let deps = deps(
        config(&one_pool(&d, "")),
        Arc::new(FakeProvider::per_instance()),
        depth(&d, 0),
    )
    .await;
    let mut body: Value =
        serde_json::from_slice(&control("c1", &d, json!({"type": "activation", "held": 1})))
            .unwrap();
    body["at"] = json!("last tuesday");
    let err = scaler::handle_json(amazon_mq(&[serde_json::to_vec(&body).unwrap()]), &deps)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a control event: at: input contains invalid characters"),
        "{err}"
    );
}

#[tokio::test]
async fn an_undecodable_batch_is_summarised_with_counts_and_a_bounded_sample() {
    let d = unique("bigbatch");
    let deps = deps(
        config(&one_pool(&d, "")),
        Arc::new(FakeProvider::per_instance()),
        depth(&d, 0),
    )
    .await;
    // 10,000 messages (Amazon MQ's largest batch) that are not control events, 10 that
    // are not base64, and one good one: handled, and the rest summarised.
    let mut bodies = vec![b"not json".to_vec(); 10_000];
    bodies.push(control(
        "good",
        &d,
        json!({"type": "activation", "held": 3}),
    ));
    let mut event = amazon_mq(&bodies);
    for i in 0..10 {
        event["rmqMessagesByQueue"]["scale0.control::/"][i]["data"] = json!("%%%");
    }
    let out = scaler::handle_json(event, &deps).await.unwrap();
    assert_eq!(out.deployments.len(), 1);
    let rejected = &out.rejected;
    assert_eq!(rejected.total, 10_000);
    assert_eq!(
        rejected.by_reason,
        [("not a control event", 9_990), ("not base64", 10)].into()
    );
    assert_eq!(rejected.sample.len(), 5);
    let shown = serde_json::to_string(&out).unwrap().len();
    assert!(shown < 4_000, "the outcome is {shown} bytes");
    assert!(rejected.to_string().starts_with(
        "10000 rejected (not a control event: 9990, not base64: 10); first 5 scale0.control::/[0]: data is not base64"
    ), "{rejected}");
}

#[tokio::test]
async fn a_gpu_utilization_outside_its_range_is_refused_and_changes_nothing() {
    let d = unique("gpubad");
    let rule = r#"
        [[deployments.policy.step_rules]]
        metric = "gpu_utilization"
        above = 0.75
        add = 2
    "#;
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, rule)), fake.clone(), depth(&d, 0)).await;
    let mut ready = record(&d, "i-busy", "a10g", InstanceState::Ready);
    ready.endpoint = Some("http://fake.invalid/i-busy".into());
    deps.store.put_instance(&ready).await.unwrap();

    for (n, value) in [-50.0, 1e308, 100.5, -0.01].into_iter().enumerate() {
        // Through EventBridge: the datapoint is in the reason data (a JSON string).
        let mut event = fixture("cloudwatch-alarm-state-change.json");
        event["id"] = json!(format!("gpu-{n}"));
        event["detail"]["alarmName"] = json!(format!("scale0-{d}-gpu-busy"));
        event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
            json!("GPUUtilization");
        let reason: Value =
            serde_json::from_str(event["detail"]["state"]["reasonData"].as_str().unwrap()).unwrap();
        let mut reason = reason;
        let last = reason["recentDatapoints"].as_array().unwrap().len() - 1;
        reason["recentDatapoints"][last] = json!(value);
        event["detail"]["state"]["reasonData"] = json!(reason.to_string());
        let err = scaler::handle_json(event, &deps).await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, HandlerError::Malformed(_)), "{value}: {err}");
        assert!(
            message.contains(&format!(
                "detail.state.reasonData.recentDatapoints[{last}]: GPU utilisation {}",
                json!(value)
            )),
            "{value}: {message}"
        );
        // And as a direct alarm action.
        let mut action = fixture("cloudwatch-alarm-lambda-action.json");
        action["alarmData"]["alarmName"] = json!(format!("scale0-{d}-gpu-busy"));
        action["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] =
            json!("GPUUtilization");
        action["alarmData"]["state"]["reasonData"] = json!(reason.to_string());
        let err = scaler::handle_json(action, &deps).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("alarmData.state.reasonData.recentDatapoints"),
            "{value}: {err}"
        );
    }
    // Nothing stored, decided or launched: no step rule fired.
    assert_eq!(deps.store.gpu_utilization(&d).await.unwrap(), None);
    assert_eq!(deps.store.load_policy(&d).await.unwrap().generation, 0);
    assert!(fake.started().is_empty());
}

#[tokio::test]
async fn a_daily_pattern_written_as_the_worker_writes_it_pre_warms_before_it_returns() {
    for (mode, launches) in [("forecast-only", 0), ("on", 1)] {
        let d = unique("prewarm");
        let fake = Arc::new(FakeProvider::per_instance());
        let extra = format!("[deployments.policy]\npredictive = \"{mode}\"");
        let deps = deps(config(&one_pool(&d, &extra)), fake.clone(), depth(&d, 0)).await;
        // The two days before: one request per 10 s from t0 + 2 min for an hour, counted
        // into Redis by the worker's own call. Nothing is queued now, nothing runs.
        for day in 1..=2 {
            let start = t0() - TimeDelta::days(day) + TimeDelta::minutes(2);
            for i in 0..360 {
                let at = start + TimeDelta::seconds(i * 10);
                deps.store.add_arrivals(&d, at, 1).await.unwrap();
            }
        }
        let out = scaler::handle_json(tick(&format!("prewarm-{mode}")), &deps)
            .await
            .unwrap();
        let run = &out.deployments[0];
        // At t0 the window one boot lead (90 s) ahead, one grace (5 min) long, holds
        // 4.5 minutes of the pattern (from t0 + 2 min to t0 + 6.5 min): 27 requests expected.
        assert_eq!(run.requested.len(), launches, "{mode}: {:?}", run.reasons);
        let logged = deps.store.recent_decisions(&d, 1).await.unwrap();
        let said = logged[0]
            .decision
            .reasons
            .iter()
            .find(|r| r.contains("27.0 requests expected"))
            .cloned();
        assert!(
            said.as_deref().is_some_and(|r| r.contains("pre-warm")),
            "{mode}: the decision log (what `scale0 explain` prints) says why: {:?}",
            logged[0].decision.reasons
        );
    }
}
