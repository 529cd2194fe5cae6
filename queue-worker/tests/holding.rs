//! Holding at zero, cold starts, deadlines and shedding — against real RabbitMQ,
//! Redis and `scale0-instance` processes (`make test` starts the services).

mod common;

use std::time::Duration;

use common::*;
use scale0_core::contract::{
    CONTROL_EXCHANGE, ControlEvent, ControlEventKind, InstanceState, headers,
};
use scale0_core::policy::Cap;

/// t=0 nothing exists; 20 requests arrive → held, one activation event at once.
/// t≈0.3 s the "provider" starts an instance with a 3 s boot and registers it booting.
/// t≈3.3 s its readiness path answers 200 → the worker notices within a second and
/// every request is answered `ok`, marked as a cold start.
#[tokio::test]
async fn requests_at_zero_are_held_through_a_cold_start() {
    let d = unique("cold");
    let config = config(
        &d,
        r#"request_deadline = "60s""#,
        r#"slots = 4
        boot_time = "5s""#,
    );
    let store = store().await;
    let worker = TestWorker::start(config.clone(), |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    let events = tap(&client.channel, CONTROL_EXCHANGE, &format!("{d}.#")).await;

    let t0 = tokio::time::Instant::now();
    for i in 0..20 {
        client
            .request(&d, &format!("c{i}"), &completion(2), |p| {
                p.with_message_id(format!("m{i}").into())
            })
            .await;
    }
    // The activation event, at once and only once.
    let activation = collect_replies(&client.channel, &events, 1, Duration::from_secs(5)).await;
    assert_eq!(activation.len(), 1, "an activation event is published");
    let event: ControlEvent = serde_json::from_slice(&activation[0].body).unwrap();
    assert_eq!(event.deployment, d);
    assert!(matches!(event.kind, ControlEventKind::Activation { held } if held >= 1));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "activation took {:?}",
        t0.elapsed()
    );

    // The provider's part: launch with a 3 s boot, register as booting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let instance = start_instance(&[
        "--boot-delay",
        "3s",
        "--slots",
        "4",
        "--decode-tokens-per-sec",
        "1000",
    ]);
    let launched = tokio::time::Instant::now();
    register(
        &store,
        &d,
        "i-cold-1",
        &instance.url,
        InstanceState::Booting,
    )
    .await;

    let replies = client.replies(20, Duration::from_secs(20)).await;
    assert_eq!(replies.len(), 20, "every held request is answered");
    for r in &replies {
        assert_eq!(r.status, "ok", "{r:?}");
        assert_eq!(r.header_bool(headers::COLD_START), Some(true));
        assert_eq!(r.header_str(headers::INSTANCE).as_deref(), Some("i-cold-1"));
        assert!(r.header_int(headers::QUEUE_MS).unwrap() >= 3000);
    }
    // Dispatch starts within a second of the readiness path answering 200.
    let first = replies.iter().map(|r| r.at).min().unwrap();
    let ready_at = launched + Duration::from_secs(3);
    assert!(
        first.saturating_duration_since(ready_at) < Duration::from_secs(1),
        "first reply {:?} after the instance became ready",
        first.saturating_duration_since(ready_at)
    );
    // No second activation once capacity was booting; demand of 20 over 4 slots is
    // pressure (threshold 2×) instead.
    let more = collect_replies(&client.channel, &events, 10, Duration::from_millis(300)).await;
    let kinds: Vec<&'static str> = more
        .iter()
        .map(|m| {
            serde_json::from_slice::<ControlEvent>(&m.body)
                .unwrap()
                .kind_name()
        })
        .collect();
    assert!(!kinds.contains(&"activation"), "{kinds:?}");
    assert!(kinds.contains(&"pressure"), "{kinds:?}");
    // The worker moved it to ready in the registry and recorded the boot.
    let rec = store.instance(&d, "i-cold-1").await.unwrap().unwrap();
    assert_eq!(rec.state, InstanceState::Ready);
    assert_eq!(
        store.recent_boots(&d, &["gpu"]).await.unwrap()["gpu"].len(),
        1
    );

    let m = worker.metrics().await;
    assert_eq!(
        metric(
            &m,
            &format!("scale0_worker_replies_total{{deployment=\"{d}\",status=\"ok\"}}")
        ),
        20.0
    );
    // The tokens of the answers' `usage`: counted, flushed to Redis, and the cost
    // standing read back from Redis beside the worker's own figures.
    let tokens: u64 = replies
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["usage"]["total_tokens"].as_u64().unwrap()
        })
        .sum();
    assert!(tokens > 0);
    let counted = format!("scale0_worker_tokens_total{{deployment=\"{d}\"}}");
    assert_eq!(metric(&m, &counted), tokens as f64, "{m}");
    let spend = format!("scale0_spend_usd_24h{{deployment=\"{d}\"}}");
    assert!(m.lines().any(|l| l.starts_with(&spend)), "{m}");
    worker.stop().await;
    let now = chrono::Utc::now();
    let stored = store
        .tokens(
            &d,
            now - chrono::TimeDelta::minutes(5),
            now + chrono::TimeDelta::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(stored, tokens);
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// t=0 an instance is launched and registered booting (expected boot 1 s), but it
/// never becomes ready. Holding looks worthwhile at first (1 s boot against 1.5 s
/// deadlines); then the boot is overdue, the deadlines pass while held → `expired`,
/// never run.
#[tokio::test]
async fn deadlines_expiring_while_held_answer_expired() {
    let d = unique("expire");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "1s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--never-ready"]);
    register(&store, &d, "i-stuck", &instance.url, InstanceState::Booting).await;
    let worker = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    let t0 = tokio::time::Instant::now();
    // No more requests than the stuck instance's slots: each would start the moment
    // the overdue boot ends, so none is ever estimated to miss its deadline (a fifth
    // would be, and could be shed in its last 0.1 s instead of expiring).
    for i in 0..3 {
        client
            .request(&d, &format!("c{i}"), b"{}", |p| {
                p.with_headers(deadline_in(1500))
            })
            .await;
    }
    // One with an expiration (RabbitMQ's relative TTL) instead.
    client
        .request(&d, "ttl", b"{}", |p| p.with_expiration("1500".into()))
        .await;
    let replies = client.replies(4, Duration::from_secs(10)).await;
    assert_eq!(replies.len(), 4);
    for r in &replies {
        assert_eq!(r.status, "expired", "{r:?}");
        assert!(
            r.header_str(headers::REASON)
                .unwrap()
                .contains("deadline passed")
        );
        assert!(
            r.header_int(headers::QUEUE_MS).is_none(),
            "never dispatched"
        );
    }
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(instance.stats().await["received"], 0);
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// max_held_requests = 4 at zero: ten requests with priorities 0–9 → the six lowest
/// are shed at once with `retry-after`; the four highest are held, then served when
/// an instance comes.
#[tokio::test]
async fn shedding_under_a_tight_limit_takes_the_lowest_priority_first() {
    let d = unique("shed");
    let config = config(
        &d,
        "max_held_requests = 4",
        r#"slots = 2
        boot_time = "2s""#,
    );
    let store = store().await;
    let worker = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    // Arrival order mixes priorities.
    for p in [3u8, 9, 0, 5, 7, 1, 8, 2, 6, 4] {
        client
            .request(&d, &format!("p{p}"), &completion(1), |props| {
                props.with_priority(p)
            })
            .await;
    }
    let shed = client.replies(6, Duration::from_secs(5)).await;
    let mut shed_ids: Vec<String> = shed.iter().map(|r| r.correlation_id.clone()).collect();
    shed_ids.sort();
    assert_eq!(shed_ids, ["p0", "p1", "p2", "p3", "p4", "p5"], "{shed:?}");
    for r in &shed {
        assert_eq!(r.status, "shed");
        assert!(r.header_int(headers::RETRY_AFTER).unwrap() >= 1);
        assert!(
            r.header_str(headers::REASON)
                .unwrap()
                .contains("max_held_requests 4")
        );
    }

    let instance = start_instance(&["--slots", "2", "--decode-tokens-per-sec", "0"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Booting).await;
    let served = client.replies(4, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = served.iter().map(|r| r.correlation_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["p6", "p7", "p8", "p9"]);
    assert!(served.iter().all(|r| r.status == "ok"));
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// The estimated wait: at zero, the pool boots in 60 s; a request with a 5 s deadline
/// is shed at once (`retry-after` ≈ the boot), one with 2 minutes is held. A cap of
/// zero instances from the control plane then sheds the held one too.
#[tokio::test]
async fn shedding_when_capacity_cannot_come_in_time() {
    let d = unique("wait");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "60s""#,
    );
    let store = store().await;
    let worker = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    client
        .request(&d, "short", b"{}", |p| p.with_headers(deadline_in(5_000)))
        .await;
    client
        .request(&d, "long", b"{}", |p| p.with_headers(deadline_in(120_000)))
        .await;
    let first = client.replies(1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].correlation_id, "short");
    assert_eq!(first[0].status, "shed");
    assert!(
        first[0]
            .header_str(headers::REASON)
            .unwrap()
            .contains("estimated wait")
    );
    assert!((55..=61).contains(&first[0].header_int(headers::RETRY_AFTER).unwrap()));
    // The long one is still held.
    assert!(
        client
            .replies(1, Duration::from_millis(500))
            .await
            .is_empty()
    );

    store
        .set_cap(
            &d,
            Some(&Cap {
                max_instances: 0,
                needed_instances: 1,
                reason: "budget `gpu-monthly` exhausted".into(),
                // The budget's next period begins in three hours.
                retry_at: Some(chrono::Utc::now() + chrono::TimeDelta::hours(3)),
            }),
        )
        .await
        .unwrap();
    let capped = client.replies(1, Duration::from_secs(5)).await;
    assert_eq!(capped.len(), 1);
    assert_eq!(capped[0].correlation_id, "long");
    assert_eq!(capped[0].status, "shed");
    assert!(
        capped[0]
            .header_str(headers::REASON)
            .unwrap()
            .contains("budget `gpu-monthly` exhausted"),
        "{capped:?}"
    );
    // Retry when the budget's next period begins, not in a minute.
    let retry = capped[0].header_int(headers::RETRY_AFTER).unwrap();
    assert!(
        (3 * 3600 - 30..=3 * 3600).contains(&retry),
        "retry-after {retry}"
    );
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}
