//! Losing the broker connection and losing the worker process: nothing is lost —
//! against real RabbitMQ, Redis and `scale0-instance` processes. The connection test
//! uses a vhost of its own so `rabbitmqctl close_all_connections` touches nothing else
//! (it needs `rabbitmqctl`, run as root).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use std::time::Duration;

use common::*;
use scale0_core::contract::InstanceState;
use scale0_testkit::redis::PrivateRedis;

/// Count replies per correlation id.
fn tally(replies: &[ReplyMsg]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in replies {
        *seen.entry(r.correlation_id.clone()).or_insert(0) += 1;
    }
    seen
}

/// t=0 40 requests (0.3 s each, 4 slots) are being served; t≈0.8 s every connection
/// of the vhost is closed (the worker's and the producer's). The worker reconnects,
/// the broker redelivers what was unacked; in-flight requests finish and answer, and
/// their redelivered copies are recognised by `message_id`. Every request is answered.
#[tokio::test]
async fn broker_connections_closed_mid_flight_lose_nothing() {
    let vhost = Vhost::new();
    let url = vhost.url();
    let d = unique("close");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "100"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start_at(&url, config, |_| {}).await;
    let replies = unique("replies");
    let client = Client::new(&url, &replies).await;
    for i in 0..40 {
        client
            .request(&d, &format!("c{i}"), &completion(30), |p| {
                p.with_message_id(format!("{d}-m{i}").into())
                    .with_delivery_mode(2)
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    rabbitmqctl(&[
        "close_all_connections",
        "--vhost",
        &vhost.0,
        "scale0 test: connection loss",
    ]);

    // The producer reconnects too and reads its durable reply queue.
    let client = Client::new(&url, &replies).await;
    worker.wait_healthy().await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tally(&got).len() < 40 && tokio::time::Instant::now() < deadline {
        got.extend(client.replies(40, Duration::from_secs(2)).await);
    }
    let seen = tally(&got);
    assert_eq!(
        seen.len(),
        40,
        "every request answered; missing: {:?}",
        (0..40)
            .map(|i| format!("c{i}"))
            .filter(|c| !seen.contains_key(c))
            .collect::<Vec<_>>()
    );
    assert!(got.iter().all(|r| r.status == "ok"), "{got:?}");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "no request answered twice: {seen:?}");
    let m = worker.metrics().await;
    assert!(metric(&m, "scale0_worker_broker_reconnects_total") >= 1.0);
    eprintln!(
        "connection loss: 40 answered, {duplicates} duplicate replies, instance ran {} requests, {} copies that did not run",
        instance.stats().await["served"],
        metric(
            &m,
            &format!("scale0_worker_duplicates_total{{deployment=\"{d}\"}}")
        )
    );
    worker.stop().await;
    client.cleanup(&[]).await;
    store.remove_instance(&d, "i-1").await.unwrap();
    cleanup(&d).await;
}

/// t=0 a worker process serves 30 requests (0.5 s each, 4 slots); t≈1.2 s it is killed
/// with SIGKILL. Its unacked requests are redelivered to a second worker, its slot
/// leases and claims lapse within their 2 s TTL: every request is answered exactly
/// once (the ones answered before the kill are recognised by their done records), and
/// only the requests in flight at the kill run twice.
#[tokio::test]
async fn a_worker_killed_with_sigkill_loses_nothing() {
    let d = unique("kill");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "100"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let dir = std::env::temp_dir().join(unique("kill-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scale0.json");
    std::fs::write(&path, serde_json::to_string(&*config).unwrap()).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_scale0-queue-worker"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-ttl",
            "2s",
        ])
        .env("SCALE0_AMQP_URL", amqp_url())
        .env("SCALE0_REDIS_URL", redis_url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scale0-queue-worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let metrics_url = line.trim().strip_prefix("metrics on ").unwrap().to_string();
    wait_healthy(&metrics_url).await;

    let client = Client::new(&amqp_url(), &unique("replies")).await;
    for i in 0..30 {
        client
            .request(&d, &format!("c{i}"), &completion(50), |p| {
                p.with_message_id(format!("{d}-m{i}").into())
            })
            .await;
    }
    let before = client.replies(30, Duration::from_millis(1200)).await;
    assert!(
        !before.is_empty() && before.len() < 30,
        "killed mid-way: {}",
        before.len()
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let second = TestWorker::start(config, |_| {}).await;
    let mut got = before.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tally(&got).len() < 30 && tokio::time::Instant::now() < deadline {
        got.extend(client.replies(30, Duration::from_secs(2)).await);
    }
    // Linger: a second reply would come within a few seconds of the first.
    got.extend(client.replies(30, Duration::from_secs(3)).await);
    let seen = tally(&got);
    assert_eq!(seen.len(), 30, "every request answered");
    assert!(got.iter().all(|r| r.status == "ok"));
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "answered twice: {duplicates:?}");
    let served = instance.stats().await["served"].as_u64().unwrap();
    eprintln!(
        "SIGKILL: 30 answered once ({} before the kill), instance ran {served} requests",
        before.len()
    );
    // Every request ran; at most the 4 in flight at the kill ran again.
    assert!((30..=34).contains(&served), "served {served}");
    second.stop().await;
    client.cleanup(&[]).await;
    let _ = std::fs::remove_dir_all(&dir);
    cleanup(&d).await;
}

/// Run commands in order on one connection to `url`.
async fn redis_cmds(url: &str, commands: &[&[&str]]) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for args in commands {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
    }
}

/// t=0 20 requests (0.3 s each, 4 slots) are being served; t≈0.5 s every Redis
/// connection is killed and Redis stops answering for 1.5 s. Leases, markers and the
/// registry are unreachable meanwhile; the worker reconnects and every request is
/// answered. (A Redis of its own, so no other test is paused.)
#[tokio::test]
async fn redis_connections_lost_mid_flight_lose_nothing() {
    let redis = PrivateRedis::start();
    let store = scale0_state::Store::connect_with_timeout(&redis.url(), Duration::from_secs(2))
        .await
        .expect("the private redis-server answers");
    let d = unique("redis-loss");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "100"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start_with(&amqp_url(), store.clone(), config, |_| {}).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    for i in 0..20 {
        client
            .request(&d, &format!("c{i}"), &completion(30), |p| {
                p.with_message_id(format!("{d}-m{i}").into())
            })
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Drop every other connection, then stop answering anyone for 1.5 s.
    redis_cmds(
        &redis.url(),
        &[
            &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
            &["CLIENT", "PAUSE", "1500", "ALL"],
        ],
    )
    .await;

    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tally(&got).len() < 20 && tokio::time::Instant::now() < deadline {
        got.extend(client.replies(20, Duration::from_secs(2)).await);
    }
    let seen = tally(&got);
    assert_eq!(seen.len(), 20, "every request answered");
    assert!(got.iter().all(|r| r.status == "ok"), "{got:?}");
    let m = worker.metrics().await;
    eprintln!(
        "redis loss: 20 answered, {} duplicate replies, {} redis errors",
        seen.values().map(|n| n - 1).sum::<usize>(),
        metric(&m, "scale0_worker_redis_errors_total")
    );
    worker.stop().await;
    client.cleanup(&[]).await;
    cleanup(&d).await;
}

/// The binary on SIGTERM: stops consuming, puts what it holds back in the queue, and
/// exits 0 well within its drain timeout.
#[tokio::test]
async fn the_binary_drains_and_exits_on_sigterm() {
    let d = unique("term");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let dir = std::env::temp_dir().join(unique("term-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scale0.toml");
    std::fs::write(&path, toml::to_string(&*config).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scale0-queue-worker"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("SCALE0_AMQP_URL", amqp_url())
        .env("SCALE0_REDIS_URL", redis_url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scale0-queue-worker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    wait_healthy(line.trim().strip_prefix("metrics on ").unwrap()).await;
    let client = Client::new(&amqp_url(), &unique("replies")).await;
    for i in 0..3 {
        client.request(&d, &format!("c{i}"), b"{}", |p| p).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let q = client
        .channel
        .queue_declare(
            scale0_core::contract::request_queue(&d).as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 3, "held requests are back in the queue");
    assert!(
        client
            .replies(1, Duration::from_millis(200))
            .await
            .is_empty()
    );
    client.cleanup(&[]).await;
    let _ = std::fs::remove_dir_all(&dir);
    cleanup(&d).await;
}

/// `--parent-pid` (as `scale0 local` starts its workers): a worker whose parent
/// exits without stopping it drains and exits by itself instead of running on as an
/// orphan.
#[tokio::test]
async fn the_binary_stops_when_its_parent_exits() {
    let d = unique("orphan");
    let config = config(
        &d,
        "",
        r#"slots = 2
        boot_time = "30s""#,
    );
    let dir = std::env::temp_dir().join(unique("orphan-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scale0.toml");
    std::fs::write(&path, toml::to_string(&*config).unwrap()).unwrap();
    // The shell starts the worker in the background and exits at once.
    let script = format!(
        "{} --config {} --metrics-addr 127.0.0.1:0 --parent-pid $$ >/dev/null 2>&1 & echo $!",
        env!("CARGO_BIN_EXE_scale0-queue-worker"),
        path.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("SCALE0_AMQP_URL", amqp_url())
        .env("SCALE0_REDIS_URL", redis_url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // Alive and not a zombie (an orphan's new parent may not reap it at once).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
            .unwrap_or(false)
    };
    let t = std::time::Instant::now();
    while running() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the orphaned worker {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    cleanup(&d).await;
}
