//! Exactly one reply per delivery, against real RabbitMQ, Redis and `scale0-instance`:
//! copies of one `message_id` run once across workers and each gets the run's reply at
//! its own address; direct reply-to gets its replies and nothing dead-lettered; the
//! worker logs what it cannot route, with the request's ids (on a vhost of its own:
//! `rabbitmqctl`, run as root, creates it).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use scale0_core::contract::{DEAD_LETTER_EXCHANGE, InstanceState, REQUESTS_EXCHANGE, headers};

/// Everything the worker logs in this test binary, as JSON lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn get() -> &'static Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .json()
                .with_env_filter("info,lapin=warn")
                .with_writer(move || writer.clone())
                .init();
            logs
        })
    }

    /// The log lines that mention every one of `needles`.
    fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }
}

/// Two workers, one instance (0.5 s per request). t=0 1,000 requests share one
/// `message_id`, each with its own `correlation_id`: the request runs once, and every
/// one of the 1,000 gets that run's reply. Then the same request published twice (same
/// id, same address) runs once more in all and is answered once; published again
/// later with a new address, it gets the kept reply without running.
#[tokio::test]
async fn copies_of_one_message_id_run_once_and_each_gets_its_reply() {
    let d = unique("copies");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "100"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let one = TestWorker::start(config.clone(), |_| {}).await;
    let two = TestWorker::start(config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;

    let shared = format!("{d}-shared");
    for i in 0..1000 {
        client
            .request(&d, &format!("c{i}"), &completion(50), |p| {
                p.with_message_id(shared.as_str().into())
            })
            .await;
    }
    let got = client.replies(1000, Duration::from_secs(30)).await;
    let ids: BTreeSet<&str> = got.iter().map(|r| r.correlation_id.as_str()).collect();
    assert_eq!(
        (got.len(), ids.len()),
        (1000, 1000),
        "one reply per request"
    );
    assert!(got.iter().all(|r| r.status == "ok"), "{:?}", got[0]);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the one run's body"
    );
    assert_eq!(instance.stats().await["served"], 1, "it ran once");
    // Counted as each worker acks its copies, just after their replies went out.
    let mut duplicates = 0.0;
    for _ in 0..50 {
        duplicates = 0.0;
        for w in [&one, &two] {
            let m = w.metrics().await;
            duplicates += metric(
                &m,
                &format!("scale0_worker_duplicates_total{{deployment=\"{d}\"}}"),
            );
        }
        if duplicates >= 999.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(duplicates, 999.0, "every copy but the one that ran");

    // The same request twice (a producer's resend): one run, one reply.
    let twice = format!("{d}-twice");
    for _ in 0..2 {
        client
            .request(&d, "twice", &completion(50), |p| {
                p.with_message_id(twice.as_str().into())
            })
            .await;
    }
    let got = client.replies(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, "ok");
    assert_eq!(instance.stats().await["served"], 2);
    // Later, from another producer: the kept reply, no run.
    client
        .request(&d, "later", &completion(50), |p| {
            p.with_message_id(twice.as_str().into())
        })
        .await;
    let later = client.replies(1, Duration::from_secs(5)).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].correlation_id, "later");
    assert_eq!(later[0].body, got[0].body);
    assert_eq!(
        instance.stats().await["served"],
        2,
        "answered from the record"
    );

    one.stop().await;
    two.stop().await;
    client.cleanup(&[]).await;
    store.remove_instance(&d, "i-1").await.unwrap();
    cleanup(&d).await;
}

/// RabbitMQ 3.10 returns a `mandatory` publish to the direct reply-to as unroutable
/// (312 NO_ROUTE) although it delivers it: the worker must publish replies there
/// without `mandatory`, or every request would also be dead-lettered.
#[tokio::test]
async fn direct_reply_to_gets_its_reply_and_nothing_is_dead_lettered() {
    let d = unique("direct");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "0"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start(config, |_| {}).await;
    let conn = amqp(&amqp_url()).await;
    let watch = conn.create_channel().await.unwrap();
    let dead = tap(&watch, DEAD_LETTER_EXCHANGE, "").await;
    let ch = conn.create_channel().await.unwrap();
    let mut replies = ch
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "direct".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let tag = unique("direct-req");
    for i in 0..5 {
        ch.basic_publish(
            REQUESTS_EXCHANGE.into(),
            d.as_str().into(),
            BasicPublishOptions::default(),
            &completion(4),
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id(format!("{tag}-{i}").into())
                .with_message_id(format!("{tag}-{i}").into()),
        )
        .await
        .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 5 {
        let next = tokio::time::timeout(Duration::from_secs(10), replies.next()).await;
        let d = next.expect("a reply within 10 s").unwrap().unwrap();
        got.push(d);
    }
    assert!(got.iter().all(|r| {
        r.properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(headers::STATUS).cloned())
            == Some(lapin::types::AMQPValue::LongString("ok".into()))
    }));
    let letters = collect_replies(&watch, &dead, 100, Duration::from_secs(2)).await;
    let ours: Vec<_> = letters
        .iter()
        .filter(|m| m.correlation_id.starts_with(&tag))
        .collect();
    assert!(ours.is_empty(), "dead-lettered: {ours:?}");
    worker.stop().await;
    store.remove_instance(&d, "i-1").await.unwrap();
    cleanup(&d).await;
}

/// A request for a deployment no worker serves, and a request whose `reply_to` queue
/// does not exist: both are dead-lettered, and the worker's log says so with the
/// request's ids (not only lapin's warning with the body as bytes).
#[tokio::test]
async fn what_cannot_be_routed_is_logged_with_the_requests_ids() {
    let logs = Logs::get();
    // A vhost of its own: requests for unknown deployments go to whichever worker
    // consumes `scale0.unrouted`, and on `/` that may be another test's.
    let vhost = Vhost::new();
    let url = vhost.url();
    let d = unique("logged");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "0"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start_at(&url, config, |_| {}).await;
    let client = Client::new(&url, &unique("replies")).await;
    let dead = tap(&client.channel, DEAD_LETTER_EXCHANGE, "").await;
    let (lost, unknown) = (unique("lost"), format!("{d}-nowhere"));
    let no_queue = unique("no-such-queue");
    client
        .channel
        .basic_publish(
            REQUESTS_EXCHANGE.into(),
            d.as_str().into(),
            BasicPublishOptions::default(),
            &completion(4),
            BasicProperties::default()
                .with_reply_to(no_queue.as_str().into())
                .with_correlation_id(format!("{lost}-c").into())
                .with_message_id(format!("{lost}-m").into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    client
        .request(&unknown, &format!("{lost}-u"), b"{}", |p| p)
        .await;
    let letters = collect_replies(&client.channel, &dead, 100, Duration::from_secs(5)).await;
    let reasons: Vec<String> = letters
        .iter()
        .filter(|m| m.correlation_id.starts_with(&lost))
        .filter_map(|m| m.header_str(headers::REASON))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("is not routable")),
        "{reasons:?}"
    );
    let unroutable = logs.lines_with(&[
        "reply not routable",
        &no_queue,
        &format!("{lost}-c"),
        &format!("{lost}-m"),
    ]);
    assert_eq!(unroutable.len(), 1, "{unroutable:?}");
    let unknown_logged = logs.lines_with(&["unknown deployment", &unknown, &format!("{lost}-u")]);
    assert_eq!(unknown_logged.len(), 1, "{unknown_logged:?}");
    worker.stop().await;
    client.cleanup(&[]).await;
    store.remove_instance(&d, "i-1").await.unwrap();
    cleanup(&d).await;
}
