//! Dispatch, retries, bad input, draining and several workers — against real RabbitMQ,
//! Redis and `scale0-instance` processes (`make test` starts the services).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use scale0_core::contract::{
    CONTROL_EXCHANGE, ControlEvent, ControlEventKind, DEAD_LETTER_EXCHANGE, InstanceState, headers,
    request_queue,
};
use scale0_state::idempotency::{Ending, ReplyAddress, RequestRef};

/// Each kind of unanswerable message lands in `scale0.dead` with its reason; the ones
/// with a `reply_to` also get a `rejected` reply. Nothing is dropped.
#[tokio::test]
async fn bad_messages_are_dead_lettered_with_their_reason() {
    let d = unique("bad");
    let config = config(
        &d,
        "max_body_bytes = 100",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let worker = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    let dead = tap(&client.channel, DEAD_LETTER_EXCHANGE, "").await;
    let tag = unique("bad-msg");
    let unknown = format!("{d}-nope");

    // No reply_to: published without one.
    client
        .channel
        .basic_publish(
            scale0_core::contract::REQUESTS_EXCHANGE.into(),
            d.as_str().into(),
            Default::default(),
            b"{}",
            lapin::BasicProperties::default().with_correlation_id(format!("{tag}-noreply").into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let mut bad_deadline = FieldTable::default();
    bad_deadline.insert(
        headers::DEADLINE.into(),
        AMQPValue::LongString("tomorrow".into()),
    );
    client
        .request(&d, &format!("{tag}-header"), b"{}", |p| {
            p.with_headers(bad_deadline)
        })
        .await;
    // (An unparsable `expiration` never arrives: RabbitMQ refuses it at publish.)
    let mut wrong_type = FieldTable::default();
    wrong_type.insert(
        headers::DEADLINE.into(),
        AMQPValue::FieldTable(FieldTable::default()),
    );
    client
        .request(&d, &format!("{tag}-table"), b"{}", |p| {
            p.with_headers(wrong_type)
        })
        .await;
    client
        .request(&d, &format!("{tag}-large"), &[b'x'; 200], |p| p)
        .await;
    client
        .request(&unknown, &format!("{tag}-unknown"), b"{}", |p| p)
        .await;

    let letters = collect_replies(&client.channel, &dead, 50, Duration::from_secs(5)).await;
    let ours: BTreeMap<String, ReplyMsg> = letters
        .into_iter()
        .filter(|m| m.correlation_id.starts_with(&tag))
        .map(|m| {
            (
                m.correlation_id
                    .trim_start_matches(&format!("{tag}-"))
                    .to_string(),
                m,
            )
        })
        .collect();
    let expect = [
        ("noreply", "no reply_to", d.as_str()),
        ("header", r#"got the text "tomorrow""#, d.as_str()),
        ("table", "got a table of 0 entries", d.as_str()),
        ("large", "exceeds max_body_bytes 100", d.as_str()),
        ("unknown", "unknown deployment", unknown.as_str()),
    ];
    assert_eq!(ours.len(), expect.len(), "{:?}", ours.keys());
    for (id, reason, deployment) in expect {
        let m = &ours[id];
        let got = m.header_str(headers::REASON).unwrap();
        assert!(got.contains(reason), "{id}: {got}");
        // In words, not Rust's debug format of the AMQP value.
        assert!(
            !got.contains("LongString") && !got.contains("FieldTable"),
            "{id}: {got}"
        );
        assert_eq!(
            m.header_str(headers::DEPLOYMENT).as_deref(),
            Some(deployment),
            "{id}"
        );
    }
    assert_eq!(
        ours["large"].body.len(),
        200,
        "the dead letter keeps the body"
    );

    let rejected = client.replies(4, Duration::from_secs(5)).await;
    assert_eq!(rejected.len(), 4);
    assert!(
        rejected.iter().all(|r| r.status == "rejected"),
        "{rejected:?}"
    );
    // Nothing is left unacked in the deployment's queue.
    let q = client
        .channel
        .queue_declare(
            request_queue(&d).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 0);
    let m = worker.metrics().await;
    assert_eq!(
        metric(
            &m,
            &format!("scale0_worker_dead_letters_total{{deployment=\"{d}\",reason=\"too_large\"}}")
        ),
        1.0
    );
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// One instance answers 500 every time, the other works: every request succeeds on a
/// retry, the failing instance reaches `unhealthy_after_failures` in the registry, one
/// `instance-failed` event goes out, and it gets no more requests.
#[tokio::test]
async fn failures_retry_elsewhere_and_report_the_instance() {
    let d = unique("retry");
    let config = config(
        &d,
        "[deployments.policy]\nunhealthy_after_failures = 2",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let bad = start_instance(&["--fail-rate", "1", "--decode-tokens-per-sec", "0"]);
    let good = start_instance(&["--decode-tokens-per-sec", "0"]);
    register(&store, &d, "i-bad", &bad.url, InstanceState::Booting).await;
    register(&store, &d, "i-good", &good.url, InstanceState::Booting).await;
    let worker = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    let events = tap(
        &client.channel,
        CONTROL_EXCHANGE,
        &format!("{d}.instance-failed"),
    )
    .await;
    // Wait for both to be marked ready.
    for _ in 0..50 {
        let ready = store
            .instances(&d)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.state == InstanceState::Ready)
            .count();
        if ready == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        client
            .request(&d, &format!("c{i}"), &completion(1), |p| p)
            .await;
    }
    let replies = client.replies(20, Duration::from_secs(10)).await;
    assert_eq!(replies.len(), 20);
    for r in &replies {
        assert_eq!(r.status, "ok", "{r:?}");
        assert_eq!(r.header_str(headers::INSTANCE).as_deref(), Some("i-good"));
    }
    let failed = collect_replies(&client.channel, &events, 5, Duration::from_secs(2)).await;
    assert_eq!(failed.len(), 1, "exactly one instance-failed event");
    let e: ControlEvent = serde_json::from_slice(&failed[0].body).unwrap();
    assert!(
        matches!(&e.kind, ControlEventKind::InstanceFailed { instance, failures: 2, reason } if instance == "i-bad" && reason.contains("500")),
        "{e:?}"
    );
    let rec = store.instance(&d, "i-bad").await.unwrap().unwrap();
    assert!(rec.failures >= 2);
    // Requests dispatched before the failures came back may have tried it; after
    // that it gets nothing.
    let tried = bad.stats().await["received"].as_u64().unwrap();
    for i in 20..30 {
        client
            .request(&d, &format!("c{i}"), &completion(1), |p| p)
            .await;
    }
    let more = client.replies(10, Duration::from_secs(10)).await;
    assert_eq!(more.len(), 10);
    assert!(more.iter().all(|r| r.status == "ok"));
    assert_eq!(
        bad.stats().await["received"].as_u64().unwrap(),
        tried,
        "excluded after failing"
    );
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// Shutdown with requests held and in flight: the in-flight ones finish and are
/// answered, the held ones go back to the queue unanswered, and a new worker serves them.
#[tokio::test]
async fn shutdown_drains_in_flight_and_requeues_held() {
    let d = unique("drain");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let store = store().await;
    // 1 s per request (100 tokens at 100/s), two slots.
    let instance = start_instance(&["--slots", "2", "--decode-tokens-per-sec", "100"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start(config.clone(), |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    for i in 0..5 {
        client
            .request(&d, &format!("c{i}"), &completion(100), |p| p)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = tokio::time::Instant::now();
    worker.stop().await;
    let stopped_after = t.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(500),
        "waited for in-flight work"
    );
    let answered = client.replies(5, Duration::from_millis(500)).await;
    assert_eq!(
        answered.len(),
        2,
        "the two in flight were answered: {answered:?}"
    );
    assert!(answered.iter().all(|r| r.status == "ok"));
    let q = client
        .channel
        .queue_declare(
            request_queue(&d).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 3, "the held three are back in the queue");
    assert_eq!(
        store
            .held(
                &d,
                chrono::Utc::now().timestamp_millis(),
                Duration::from_secs(15)
            )
            .await
            .unwrap(),
        0
    );

    let again = TestWorker::start(config, |_| {}).await;
    let rest = client.replies(3, Duration::from_secs(10)).await;
    assert_eq!(rest.len(), 3);
    again.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// Two workers on one queue, an instance with 2 slots that answers 429 to a third
/// request: every request is answered `ok` and the instance never saw more than 2.
#[tokio::test]
async fn two_workers_keep_the_slot_limit() {
    let d = unique("two");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&[
        "--slots",
        "2",
        "--when-full",
        "reject",
        "--decode-tokens-per-sec",
        "200",
    ]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let a = TestWorker::start(config.clone(), |_| {}).await;
    let b = TestWorker::start(config.clone(), |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    for i in 0..24 {
        client
            .request(&d, &format!("c{i}"), &completion(10), |p| p)
            .await;
    }
    let replies = client.replies(24, Duration::from_secs(30)).await;
    assert_eq!(replies.len(), 24);
    assert!(replies.iter().all(|r| r.status == "ok"), "{replies:?}");
    let stats = instance.stats().await;
    assert_eq!(stats["max_in_flight"], 2, "{stats}");
    assert_eq!(stats["rejected"], 0, "{stats}");
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let ok = |m: &str| {
        metric(
            m,
            &format!("scale0_worker_replies_total{{deployment=\"{d}\",status=\"ok\"}}"),
        )
    };
    assert_eq!(ok(&ma) + ok(&mb), 24.0);
    assert!(
        ok(&ma) > 0.0 && ok(&mb) > 0.0,
        "both workers served: {} + {}",
        ok(&ma),
        ok(&mb)
    );
    a.stop().await;
    b.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// A request answered before its worker died comes back redelivered: its `done`
/// record (its address answered) makes the next worker ack it without running it or
/// replying again.
#[tokio::test]
async fn a_redelivered_request_marked_done_is_acked_without_running() {
    let d = unique("done");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    declare(&config).await;
    let store = store().await;
    let instance = start_instance(&["--decode-tokens-per-sec", "0"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    let id = format!("{d}-answered");
    client
        .request(&d, "answered", b"{}", |p| {
            p.with_message_id(id.as_str().into())
        })
        .await;
    client
        .request(&d, "fresh", b"{}", |p| {
            p.with_message_id(format!("{d}-fresh").into())
        })
        .await;
    // A worker took both and died before acking: the broker redelivers them.
    {
        let conn = amqp(&amqp_url()).await;
        let ch = conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                request_queue(&d).as_str().into(),
                "dying".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        use futures_util::StreamExt;
        for _ in 0..2 {
            consumer.next().await.unwrap().unwrap();
        }
        conn.close(200, "dies".into()).await.unwrap();
    }
    // It had answered the first one, and recorded its address as answered.
    let address = [ReplyAddress {
        reply_to: &client.replies,
        correlation_id: Some("answered"),
    }
    .field()];
    let request = RequestRef {
        message_id: &id,
        claim: "the-dead-worker:1",
        addresses: &address,
    };
    let ending = Ending {
        request,
        reply: None,
        answered: &address,
        ttl: Duration::from_secs(60),
    };
    store.finish_request(&d, None, Some(ending)).await.unwrap();

    let worker = TestWorker::start(config, |_| {}).await;
    let replies = client.replies(2, Duration::from_secs(3)).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].correlation_id, "fresh");
    assert_eq!(instance.stats().await["received"], 1);
    let m = worker.metrics().await;
    assert_eq!(
        metric(
            &m,
            &format!("scale0_worker_duplicates_total{{deployment=\"{d}\"}}")
        ),
        1.0
    );
    let q = client
        .channel
        .queue_declare(
            request_queue(&d).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 0, "acked, not left in the queue");
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// Declaring the topology twice changes nothing; `quorum_queues = true` makes the
/// request queue a quorum queue; a worker whose config disagrees with the existing
/// queue stops with a topology error instead of retrying forever.
#[tokio::test]
async fn topology_is_idempotent_and_quorum_queues_are_an_option() {
    let d = unique("quorum");
    let classic = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let mut quorum = (*classic).clone();
    quorum.broker.quorum_queues = true;
    let quorum = std::sync::Arc::new(quorum);
    declare(&quorum).await;
    declare(&quorum).await;
    let listing = rabbitmqctl(&[
        "list_queues",
        "name",
        "type",
        "--quiet",
        "--no-table-headers",
    ]);
    let line = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(request_queue(&d).as_str()))
        .unwrap_or_else(|| panic!("queue missing from {listing}"));
    assert!(line.contains("quorum"), "{line}");
    let worker = TestWorker::start(quorum, |_| {}).await;
    worker.stop().await;

    let mut settings = scale0_queue_worker::WorkerSettings::new(amqp_url());
    settings.worker_id = unique("worker");
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        scale0_queue_worker::run(settings, classic, store().await, std::future::pending()),
    )
    .await
    .expect("a topology conflict ends the worker")
    .unwrap_err();
    assert!(err.to_string().contains("different arguments"), "{err}");
    cleanup(&d).await;
}

/// `/health` and `/metrics` of a running worker.
#[tokio::test]
async fn health_and_metrics() {
    let d = unique("ops");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let worker = TestWorker::start(config, |_| {}).await;
    let health: serde_json::Value = reqwest::get(format!("{}/health", worker.metrics_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["broker"], true);
    assert_eq!(health["redis"], true);
    let m = worker.metrics().await;
    // Families with samples before any request (a labelled family without one, such
    // as the replies by status, is left out until it has one).
    for family in [
        "scale0_worker_held",
        "scale0_worker_in_flight",
        "scale0_worker_queue_depth",
        "scale0_worker_wait_seconds",
        "scale0_worker_broker_connected",
        "scale0_spend_usd_24h",
    ] {
        assert!(
            m.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{m}"
        );
    }
    assert_eq!(
        metric(&m, &format!("scale0_worker_held{{deployment=\"{d}\"}}")),
        0.0
    );
    assert_eq!(metric(&m, "scale0_worker_broker_connected"), 1.0);
    // The standing of a deployment with no spend, read from Redis at the scrape.
    assert_eq!(
        metric(&m, &format!("scale0_spend_usd_24h{{deployment=\"{d}\"}}")),
        0.0
    );
    assert!(m.ends_with("# EOF\n"), "{m}");
    worker.stop().await;
    cleanup(&d).await;
}
