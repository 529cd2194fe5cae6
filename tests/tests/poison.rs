//! Poison messages: pathological AMQP frames, published byte by byte by
//! `tests/poison.py` (a header table nested 2,000 deep, arrays as deep, 10,000 keys, a
//! 100 KB string, every field type, bytes that are not UTF-8, a deadline of the wrong
//! type, a body that is not JSON), to a deployment's request queue and to
//! `scale0.control` of a running `scale0 local`. RabbitMQ passes most of them through
//! unparsed; what reaches a consumer must be answered or dead-lettered with a reason,
//! and nothing may stop: not `scale0 local`, not its workers, not the service.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use scale0_core::contract::{
    CONTROL_EXCHANGE, CONTROL_QUEUE, DEAD_LETTER_EXCHANGE, REQUESTS_EXCHANGE, headers,
};
use scale0_tests::{Stack, Vhost, alive, load, scratch, shared_redis_url, status_count};
use serde_json::Value;

/// One case of `poison.py`: its name and what the broker said.
fn publish_poison(url: &str, exchange: &str, routing_key: &str, reply_to: &str) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/poison.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([url, exchange, routing_key, reply_to])
        .output()
        .expect("python3 runs tests/poison.py");
    assert!(
        out.status.success(),
        "poison.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A message as a test reads it: correlation id, and the text of its headers.
#[derive(Debug)]
struct Seen {
    correlation_id: String,
    status: Option<String>,
    reason: Option<String>,
}

fn text(h: Option<&AMQPValue>) -> Option<String> {
    match h? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

/// Read what `queue` holds within `within`.
async fn drain(conn: &Connection, queue: &str, within: Duration) -> Vec<Seen> {
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "poison-test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, consumer.next()).await {
        let h = d.properties.headers().clone().unwrap_or_default();
        out.push(Seen {
            correlation_id: d
                .properties
                .correlation_id()
                .as_ref()
                .map_or(String::new(), |c| c.to_string()),
            status: text(h.inner().get(headers::STATUS)),
            reason: text(h.inner().get(headers::REASON)),
        });
    }
    out
}

async fn declare_bound(conn: &Connection, exchange: &str) -> String {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    if !exchange.is_empty() {
        ch.queue_bind(
            q.name().clone(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    q.name().to_string()
}

#[test]
fn poison_messages_are_answered_or_dead_lettered_and_nothing_stops() {
    let vhost = Vhost::create("poison");
    let redis = shared_redis_url();
    let dir = scratch("poison");
    let deployment = format!("e2e-poison-{}", std::process::id());
    let config = format!(
        r#"
[provider.local]
state_dir = "{state}"

[[deployments]]
name = "{deployment}"
request_deadline = "60s"
expected_service_time = "200ms"
[[deployments.pools]]
name = "gpu"
min_instances = 1
max_instances = 2
slots = 4
price_per_hour_usd = 1.0
boot_time = "1s"
"#,
        state = Stack::state_dir_for(&dir).display()
    );
    let stack = Stack::start(
        &dir,
        &config,
        &vhost.url,
        &redis,
        &["--tick", "1s", "--workers", "2"],
    );
    let local = stack.pid().expect("scale0 local runs");
    let workers = stack.worker_pids();
    assert_eq!(workers.len(), 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt
        .block_on(Connection::connect(
            &vhost.url,
            ConnectionProperties::default(),
        ))
        .expect("RabbitMQ");
    let replies = rt.block_on(declare_bound(&conn, ""));
    let dead = rt.block_on(declare_bound(&conn, DEAD_LETTER_EXCHANGE));

    let to_requests = publish_poison(&vhost.url, REQUESTS_EXCHANGE, &deployment, &replies);
    let control_key = format!("{deployment}.activation");
    let to_control = publish_poison(&vhost.url, CONTROL_EXCHANGE, &control_key, "nobody");
    let accepted = |cases: &[Value]| -> Vec<String> {
        cases
            .iter()
            .filter(|c| c["broker"] == "ack")
            .map(|c| c["correlation_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (requests, controls) = (accepted(&to_requests), accepted(&to_control));
    println!("broker verdicts: {to_requests:#?}");
    // RabbitMQ itself refuses a NaN and an unknown field type; it passes the rest.
    assert_eq!(requests.len(), to_requests.len() - 2, "{to_requests:#?}");
    assert_eq!(controls.len(), requests.len());

    // Every request that reached a worker is answered exactly once...
    let got = rt.block_on(drain(&conn, &replies, Duration::from_secs(15)));
    let mut answers: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for r in &got {
        answers
            .entry(r.correlation_id.as_str())
            .or_default()
            .push(r);
    }
    for id in &requests {
        let n = answers.get(id.as_str()).map_or(0, Vec::len);
        assert_eq!(n, 1, "{id}: {n} replies; all replies: {got:#?}");
    }
    let status = |id: &str| answers[id][0].status.clone().unwrap_or_default();
    for readable in [
        "poison-nested-tables-64",
        "poison-many-keys-10000",
        "poison-long-string-100k",
        "poison-every-field-type",
    ] {
        assert_eq!(
            status(readable),
            "ok",
            "{readable}: {:?}",
            answers[readable]
        );
    }
    // ...and what could not be read is dead-lettered with its reason, from the request
    // queue and from the control queue alike.
    let letters = rt.block_on(drain(&conn, &dead, Duration::from_secs(3)));
    let reason = |id: &str, n: usize| -> String {
        let of: Vec<&Seen> = letters.iter().filter(|l| l.correlation_id == id).collect();
        assert_eq!(of.len(), n, "{id}: dead letters {of:#?}");
        of.iter()
            .map(|l| l.reason.clone().expect("a reason"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for (id, why) in [
        ("poison-nested-tables-2000", "deeper than 64 levels"),
        ("poison-nested-arrays-2000", "deeper than 64 levels"),
        ("poison-key-not-utf8", "header key is not UTF-8"),
    ] {
        assert_eq!(status(id), "rejected", "{id}");
        // One from the request queue, one from the control queue.
        let reasons = reason(id, 2);
        assert_eq!(reasons.matches(why).count(), 2, "{id}: {reasons}");
    }
    assert_eq!(status("poison-message-id-not-utf8"), "rejected");
    assert!(reason("poison-message-id-not-utf8", 2).contains("message_id is not UTF-8"));
    assert_eq!(status("poison-deadline-a-byte-array"), "rejected");
    let why = reason("poison-deadline-a-byte-array", 2);
    assert!(why.contains("got a byte array of 1 bytes"), "{why}");
    // The control consumer dead-letters every one of its cases: `{}` is no event.
    for id in &controls {
        let n = letters.iter().filter(|l| &l.correlation_id == id).count();
        assert!(n >= 1, "{id} from scale0.control: not dead-lettered");
    }

    // Nothing stopped, and the service goes on.
    assert!(alive(local), "scale0 local stopped:\n{}", stack.log_text());
    assert_eq!(stack.worker_pids(), workers, "a worker was restarted");
    assert!(workers.iter().all(|&p| alive(p)), "a worker stopped");
    let report = load(
        &dir,
        &[
            "--deployment",
            &deployment,
            "--burst",
            "20",
            "--reply-timeout",
            "30s",
        ],
        &vhost.url,
        &redis,
    );
    assert_eq!(status_count(&report, "ok"), 20, "{report:#}");
    // The control queue is consumed: nothing left in it once the poison is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ch = rt.block_on(conn.create_channel()).unwrap();
        let q = rt
            .block_on(ch.queue_declare(
                CONTROL_QUEUE.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ))
            .unwrap();
        if q.message_count() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "scale0.control is not consumed");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stack);
}
