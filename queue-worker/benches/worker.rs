//! Queue worker benchmarks against real RabbitMQ, Redis and `scale0-instance`
//! processes; the worker runs as its own process (the release binary).
//!
//!     cargo bench -p scale0-queue-worker --bench worker            # all four
//!     cargo bench -p scale0-queue-worker --bench worker -- throughput latency
//!
//! 1. `throughput`: request → reply through the worker with an instant instance, and
//!    through a plain lapin RPC responder on the same broker (pipelined, publisher
//!    confirms, ack after the confirm: the same delivery guarantee), and through a
//!    "floor": that responder plus only what the design asks of each request (the
//!    request queues' arguments behind `scale0.requests`, the reply headers, a slot
//!    lease in Redis, the POST to the instance, the done marker) — the most any worker
//!    built to the design reaches here. Alternating rounds in one run. Goal:
//!    worker / plain ≥ 0.8.
//! 2. `latency`: one request at a time, warm; the worker's added latency is its round
//!    trip minus the plain responder's, at p50 and p99. Goal: p50 ≤ 1 ms, p99 ≤ 5 ms.
//! 3. `cold`: 50,000 requests published at zero, held through one cold start (the
//!    bench plays the provider: on the activation event it starts an instance with a
//!    3 s boot). Goal: all answered, the worker's peak RSS ≤ 256 MB.
//! 4. `activation`: first request at zero → activation event received on a queue bound
//!    to `scale0.control`. Goal: p99 ≤ 20 ms.
//!
//! `throughput` also reads each process's CPU time from `/proc` around every round and
//! prints CPU per request by process and path. Diagnostics: `BENCH_FLOOR_IO=http`
//! leaves Redis out of the floor; `BENCH_WORKER_LOG` sets the worker's
//! `RUST_LOG`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use scale0_core::config::{BrokerSettings, Config};
use scale0_core::contract::{
    CONTROL_EXCHANGE, InstanceRecord, InstanceState, REQUESTS_EXCHANGE, ReplyStatus, headers,
};
use scale0_queue_worker::broker::request_queue_arguments;
use scale0_queue_worker::instance_client::InstanceClient;
use scale0_queue_worker::reply::Reply;
use scale0_queue_worker::request;
use scale0_state::idempotency::{Ending, Leased, RequestRef};
use tokio::sync::{Mutex, Semaphore};

fn amqp_url() -> String {
    std::env::var("SCALE0_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn redis_url() -> String {
    std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// First stdout line of a child, `<prefix><rest>` → rest.
fn first_line(child: &mut Child, prefix: &str) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

fn instance_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "scale0-instance"])
        .status()
        .expect("build scale0-instance");
    assert!(status.success());
    dir.join("scale0-instance")
}

fn start_instance(bin: &Path, args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = first_line(&mut child, "listening on ");
    (Proc(child), url)
}

fn write_config(name: &str, toml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scale0-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    path
}

async fn start_worker(config: &Path, extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scale0-queue-worker"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("SCALE0_AMQP_URL", amqp_url())
        .env("SCALE0_REDIS_URL", redis_url())
        .env(
            "RUST_LOG",
            std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let metrics = first_line(&mut child, "metrics on ");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{metrics}/health")).send().await
            && r.status().as_u16() == 200
        {
            return (Proc(child), metrics);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the worker never became healthy");
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn store() -> scale0_state::Store {
    scale0_state::Store::connect(&redis_url())
        .await
        .expect("Redis is needed (infra/local/services.sh)")
}

async fn register(store: &scale0_state::Store, d: &str, url: &str, state: InstanceState) {
    store
        .put_instance(&InstanceRecord {
            id: format!("{d}-i1"),
            deployment: d.into(),
            pool: "gpu".into(),
            state,
            endpoint: Some(url.into()),
            launched_at: Utc::now(),
            ready_at: None,
            draining_since: None,
            failures: 0,
            reclaim_at: None,
        })
        .await
        .unwrap();
}

async fn cleanup_redis(d: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("scale0:{{{d}}}:*"))
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

async fn connect() -> Connection {
    Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("RabbitMQ is needed (infra/local/services.sh)")
}

async fn delete_queue(conn: &Connection, q: &str) {
    let ch = conn.create_channel().await.unwrap();
    let _ = ch
        .queue_delete(q.into(), QueueDeleteOptions::default())
        .await;
}

/// A responder's two channels: a consumer on `queue` (declared with `args`, bound to
/// `exchange` by its name if one is given, prefetch 1024) and a channel publishing
/// with confirms.
async fn responder_channels(
    conn: &Connection,
    queue: &str,
    args: FieldTable,
    exchange: Option<&str>,
) -> (lapin::Consumer, Channel) {
    let input = conn.create_channel().await.unwrap();
    let output = conn.create_channel().await.unwrap();
    output
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    input
        .queue_declare(queue.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    if let Some(exchange) = exchange {
        input
            .queue_bind(
                queue.into(),
                exchange.into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    input
        .basic_qos(1024, BasicQosOptions::default())
        .await
        .unwrap();
    let consumer = input
        .basic_consume(
            queue.into(),
            "responder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (consumer, output)
}

/// The baseline: a pipelined lapin RPC responder with publisher confirms that acks
/// each request after its reply is confirmed.
async fn plain_responder(conn: &Connection, queue: &str) -> tokio::task::JoinHandle<()> {
    let (mut consumer, output) = responder_channels(conn, queue, FieldTable::default(), None).await;
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let Some(reply_to) = d.properties.reply_to().clone() else {
                continue;
            };
            let mut props = BasicProperties::default();
            if let Some(c) = d.properties.correlation_id() {
                props = props.with_correlation_id(c.clone());
            }
            let confirm = output
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    br#"{"ok":true}"#,
                    props,
                )
                .await;
            tokio::spawn(async move {
                if let Ok(c) = confirm
                    && c.await.is_ok()
                {
                    let _ = d.acker.ack(BasicAckOptions::default()).await;
                }
            });
        }
    })
}

/// The plain responder plus what the design asks of every request, and nothing else:
/// the contract's broker side (a queue with the request queues' arguments behind
/// `scale0.requests`, replies with the status headers, mandatory) and its I/O (take a
/// slot lease in Redis and claim the `message_id` in the same script, POST the body to
/// the instance over keep-alive, reply with a confirm, then release the lease, keep
/// the reply and mark its address answered in one script, and ack — the same `Store`
/// calls and HTTP client as the worker). Its rate is the most any
/// worker built to this design reaches on this machine; worker / this is the worker's
/// own overhead.
async fn floor_responder(
    conn: &Connection,
    queue: &str,
    instance_url: &str,
) -> tokio::task::JoinHandle<()> {
    let (mut consumer, output) = responder_channels(
        conn,
        queue,
        request_queue_arguments(&BrokerSettings::default()),
        Some(REQUESTS_EXCHANGE),
    )
    .await;
    let config = Config::load(&deployment_toml(queue, "")).unwrap();
    let spec = Arc::new(config.deployments[0].clone());
    let store = Arc::new(store().await);
    let http = InstanceClient::new(Duration::from_secs(5));
    let url: hyper::Uri = format!("{instance_url}/v1/completions").parse().unwrap();
    let lease_key = queue.to_string();
    // Diagnostic: BENCH_FLOOR_IO=http leaves Redis out (the instance call only).
    let redis = std::env::var("BENCH_FLOOR_IO").map_or(true, |v| v != "http");
    tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(Ok(d)) = consumer.next().await {
            seq += 1;
            let (spec, store, http, url, output, key) = (
                spec.clone(),
                store.clone(),
                http.clone(),
                url.clone(),
                output.clone(),
                lease_key.clone(),
            );
            tokio::spawn(async move {
                let token = seq.to_string();
                let now = Utc::now().timestamp_millis();
                // The worker's own request reading and, below, reply properties.
                let (req, envelope) = request::parse(
                    &spec,
                    d.properties.clone(),
                    d.data.clone(),
                    false,
                    now,
                    i64::MAX,
                )
                .expect("the load's requests are valid");
                let addresses = [envelope.reply.field()];
                let request = req.message_id.as_deref().map(|id| RequestRef {
                    message_id: id,
                    claim: &token,
                    addresses: &addresses,
                });
                if redis {
                    let leased = store
                        .lease_for(
                            &key,
                            "i1",
                            1024,
                            &token,
                            now,
                            now + 30_000,
                            request.map(|r| (r, Duration::from_secs(10))),
                        )
                        .await
                        .map(|l| l.outcome);
                    assert_eq!(
                        leased.ok(),
                        Some(Leased::Granted),
                        "the floor responder's lease"
                    );
                }
                let answer = http
                    .post(
                        &url,
                        "application/json",
                        req.body.clone(),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                let reply = Reply {
                    status: ReplyStatus::Ok,
                    body: answer.body,
                    content_type: answer.content_type,
                    reason: None,
                    instance: Some("i1".into()),
                    queue_ms: Some(0),
                    cold_start: false,
                    retry_after: None,
                };
                let confirm = output
                    .basic_publish(
                        "".into(),
                        envelope.reply.queue.clone(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        &reply.body,
                        reply.properties(&envelope.reply, req.message_id.as_deref()),
                    )
                    .await;
                let confirmed = match confirm {
                    Ok(c) => c.await.is_ok(),
                    Err(_) => false,
                };
                if redis {
                    let kept = reply.encode();
                    let ending = request.map(|request| Ending {
                        request,
                        reply: Some(&kept),
                        answered: &addresses,
                        ttl: Duration::from_secs(60),
                    });
                    store
                        .finish_request(&key, Some(("i1", &token)), ending)
                        .await
                        .unwrap();
                }
                if confirmed {
                    let _ = d.acker.ack(BasicAckOptions::default()).await;
                }
            });
        }
    })
}

/// Send `n` requests keeping `window` outstanding; returns the elapsed time and each
/// round trip.
async fn load(
    conn: &Connection,
    exchange: &str,
    routing_key: &str,
    n: usize,
    window: usize,
) -> (Duration, Vec<Duration>) {
    let ch = conn.create_channel().await.unwrap();
    let replies = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .name()
        .clone();
    let mut consumer = ch
        .basic_consume(
            replies.clone(),
            "load".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let permits = Arc::new(Semaphore::new(window));
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let body = br#"{"prompt":"hello there","max_tokens":1}"#;
    let start = Instant::now();
    let reader = {
        let (permits, sent) = (permits.clone(), sent.clone());
        tokio::spawn(async move {
            let mut rtts = Vec::with_capacity(n);
            while rtts.len() < n {
                let Some(Ok(d)) = consumer.next().await else {
                    break;
                };
                let id: u64 = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| c.as_str().parse().ok())
                    .unwrap_or(u64::MAX);
                if let Some(t) = sent.lock().await.remove(&id) {
                    rtts.push(t.elapsed());
                    permits.add_permits(1);
                }
                // Every reply must be `ok` (the plain responder sets no status).
                if let Some(AMQPValue::LongString(status)) = d
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(headers::STATUS))
                {
                    assert_eq!(status.as_bytes(), b"ok", "a reply that is not ok");
                }
            }
            rtts
        })
    };
    let deadline = Utc::now().timestamp_millis() + 600_000;
    for i in 0..n as u64 {
        permits.acquire().await.unwrap().forget();
        let mut h = FieldTable::default();
        h.insert(headers::DEADLINE.into(), AMQPValue::LongLongInt(deadline));
        let props = BasicProperties::default()
            .with_reply_to(replies.clone())
            .with_correlation_id(i.to_string().into())
            .with_message_id(format!("{routing_key}-{i}-{}", start.elapsed().as_nanos()).into())
            .with_content_type("application/json".into())
            .with_headers(h);
        sent.lock().await.insert(i, Instant::now());
        // No confirms on this channel: the returned confirm resolves at once.
        drop(
            ch.basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap(),
        );
    }
    let rtts = tokio::time::timeout(Duration::from_secs(300), reader)
        .await
        .expect("replies within 5 minutes")
        .unwrap();
    assert_eq!(rtts.len(), n, "every request answered");
    (start.elapsed(), rtts)
}

fn pid_of(name: &str) -> Option<u32> {
    let out = Command::new("pgrep").args(["-o", name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    scale0_core::percentile::of_sorted(sorted, p).expect("percentile of no samples")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const POOL: &str = r#"
[[deployments.pools]]
name = "gpu"
max_instances = 1
slots = 256
price_per_hour_usd = 1.0
boot_time = "3s"
"#;

fn deployment_toml(d: &str, extra: &str) -> String {
    format!(
        "[[deployments]]\nname = \"{d}\"\nrequest_deadline = \"10m\"\nexpected_service_time = \"1ms\"\n{extra}\n{POOL}"
    )
}

/// A deployment with one ready instant instance and a worker consuming its queue.
struct Warm {
    deployment: String,
    instance: Proc,
    instance_url: String,
    worker: Proc,
}

async fn warm_setup(instance_bin: &Path, tag: &str) -> Warm {
    let d = format!("bench-{tag}-{}", std::process::id());
    let config = write_config(&d, &deployment_toml(&d, "max_held_requests = 20000"));
    let (instance, url) = start_instance(
        instance_bin,
        &[
            "--slots",
            "256",
            "--prefill-tokens-per-sec",
            "0",
            "--decode-tokens-per-sec",
            "0",
        ],
    );
    let store = store().await;
    register(&store, &d, &url, InstanceState::Ready).await;
    let (worker, _metrics) = start_worker(&config, &[]).await;
    Warm {
        deployment: d,
        instance,
        instance_url: url,
        worker,
    }
}

async fn throughput(instance_bin: &Path) {
    const ROUNDS: usize = 5;
    const N: usize = 20_000;
    println!(
        "## throughput ({ROUNDS} rounds × 20,000 requests per path, 256 outstanding, instant instance)"
    );
    println!("(floor: the plain responder plus the design's broker contract and per-request I/O)");
    let conn = connect().await;
    let plain_q = format!("bench-plain-{}", std::process::id());
    let responder = plain_responder(&conn, &plain_q).await;
    let warm = warm_setup(instance_bin, "tp").await;
    let d = warm.deployment.clone();
    let floor_q = format!("bench-floor-{}", std::process::id());
    let floor = floor_responder(&conn, &floor_q, &warm.instance_url).await;
    let procs = [
        ("rabbitmq", pid_of("beam.smp")),
        ("redis", pid_of("redis-server")),
        ("worker", Some(warm.worker.pid())),
        ("instance", Some(warm.instance.pid())),
        ("bench", Some(std::process::id())),
    ];
    let paths = [
        ("plain", "", plain_q.as_str()),
        ("floor", REQUESTS_EXCHANGE, floor_q.as_str()),
        ("worker", REQUESTS_EXCHANGE, d.as_str()),
    ];
    for (_, exchange, key) in paths {
        load(&conn, exchange, key, 2_000, 256).await;
    }
    // runs[path][round]
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); paths.len()];
    for round in 0..ROUNDS {
        let mut line = format!("round {round}:");
        for (i, (name, exchange, key)) in paths.iter().enumerate() {
            let run = Run::measure(&conn, exchange, key, N, &procs).await;
            line += &format!(" {name} {:.0}/s ({:.0} µs CPU);", run.rate, run.cpu());
            runs[i].push(run);
        }
        println!("{line}");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rate = |i: usize| mean(&runs[i].iter().map(|r| r.rate).collect::<Vec<_>>());
    let cpu = |i: usize, p: usize| mean(&runs[i].iter().map(|r| r.cpu_us[p]).collect::<Vec<_>>());
    let total = |i: usize| (0..procs.len()).map(|p| cpu(i, p)).sum::<f64>();
    println!("\nCPU µs per request, mean of the rounds:");
    println!(
        "| process | {} |",
        paths.map(|(name, _, _)| name).join(" | ")
    );
    for (p, (proc_name, _)) in procs.iter().enumerate() {
        let cells: Vec<String> = (0..paths.len())
            .map(|i| format!("{:.0}", cpu(i, p)))
            .collect();
        println!("| {proc_name} | {} |", cells.join(" | "));
    }
    let totals: Vec<String> = (0..paths.len())
        .map(|i| format!("{:.0}", total(i)))
        .collect();
    println!("| total | {} |", totals.join(" | "));
    println!(
        "mean: plain {:.0}/s, floor {:.0}/s, worker {:.0}/s; worker/plain {:.2} (goal ≥ 0.8), \
         floor/plain {:.2}, worker/floor {:.2}; by CPU per request: \
         worker/plain {:.2}, floor/plain {:.2}, worker/floor {:.2}\n",
        rate(0),
        rate(1),
        rate(2),
        rate(2) / rate(0),
        rate(1) / rate(0),
        rate(2) / rate(1),
        total(0) / total(2),
        total(0) / total(1),
        total(1) / total(2),
    );
    responder.abort();
    floor.abort();
    delete_queue(&conn, &plain_q).await;
    delete_queue(&conn, &floor_q).await;
    cleanup_redis(&floor_q).await;
    delete_queue(&conn, &format!("scale0.{d}")).await;
    cleanup_redis(&d).await;
}

/// One path's round: its rate and the CPU each process spent per request.
#[derive(Debug, Clone)]
struct Run {
    rate: f64,
    cpu_us: Vec<f64>,
}

impl Run {
    async fn measure(
        conn: &Connection,
        exchange: &str,
        key: &str,
        n: usize,
        procs: &[(&str, Option<u32>)],
    ) -> Run {
        let before: Vec<f64> = procs.iter().map(|(_, p)| p.map_or(0.0, cpu_secs)).collect();
        let (t, _) = load(conn, exchange, key, n, 256).await;
        let cpu_us = procs
            .iter()
            .zip(before)
            .map(|((_, p), b)| (p.map_or(0.0, cpu_secs) - b) / n as f64 * 1e6)
            .collect();
        Run {
            rate: n as f64 / t.as_secs_f64(),
            cpu_us,
        }
    }

    fn cpu(&self) -> f64 {
        self.cpu_us.iter().sum()
    }
}

async fn latency(instance_bin: &Path) {
    println!("## warm latency (one request at a time, 3,000 each, alternating blocks)");
    let conn = connect().await;
    let plain_q = format!("bench-plain-lat-{}", std::process::id());
    let responder = plain_responder(&conn, &plain_q).await;
    let warm = warm_setup(instance_bin, "lat").await;
    let d = warm.deployment.clone();
    load(&conn, "", &plain_q, 300, 1).await;
    load(&conn, REQUESTS_EXCHANGE, &d, 300, 1).await;
    let (mut plain, mut worker) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        plain.extend(load(&conn, "", &plain_q, 500, 1).await.1);
        worker.extend(load(&conn, REQUESTS_EXCHANGE, &d, 500, 1).await.1);
    }
    plain.sort();
    worker.sort();
    for (name, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
        let (a, b) = (percentile(&plain, p), percentile(&worker, p));
        println!(
            "{name}: plain {:.3} ms, worker {:.3} ms, added {:.3} ms",
            ms(a),
            ms(b),
            ms(b) - ms(a)
        );
    }
    println!("(goal: added p50 ≤ 1 ms, p99 ≤ 5 ms)\n");
    responder.abort();
    delete_queue(&conn, &plain_q).await;
    delete_queue(&conn, &format!("scale0.{d}")).await;
    cleanup_redis(&d).await;
}

async fn tap_control(conn: &Connection, d: &str) -> (Channel, lapin::Consumer) {
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
    ch.queue_bind(
        q.name().clone(),
        CONTROL_EXCHANGE.into(),
        format!("{d}.activation").as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "tap".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (ch, consumer)
}

async fn cold(instance_bin: &Path) {
    let n = 50_000;
    println!("## {n} requests held through one cold start (3 s boot)");
    let d = format!("bench-cold-{}", std::process::id());
    let config = write_config(&d, &deployment_toml(&d, "max_held_requests = 60000"));
    let (worker, _) = start_worker(&config, &[]).await;
    let conn = connect().await;
    let (_tap_ch, mut tap) = tap_control(&conn, &d).await;
    let store = store().await;

    let start = Instant::now();
    let publisher = {
        let conn = connect().await;
        let d = d.clone();
        tokio::spawn(async move { load(&conn, REQUESTS_EXCHANGE, &d, n, n).await })
    };
    // The provider's part: launch on the activation event.
    tokio::time::timeout(Duration::from_secs(10), tap.next())
        .await
        .expect("an activation event")
        .unwrap()
        .unwrap();
    let activation = start.elapsed();
    let (_instance, url) = start_instance(
        instance_bin,
        &[
            "--boot-delay",
            "3s",
            "--slots",
            "256",
            "--prefill-tokens-per-sec",
            "0",
            "--decode-tokens-per-sec",
            "0",
        ],
    );
    register(&store, &d, &url, InstanceState::Booting).await;
    let (elapsed, rtts) = publisher.await.unwrap();
    let rss = peak_rss_mb(worker.pid());
    let mut sorted = rtts.clone();
    sorted.sort();
    println!(
        "all {} answered in {:.1} s (activation after {:.0} ms); round trip p50 {:.2} s, max {:.2} s",
        rtts.len(),
        elapsed.as_secs_f64(),
        ms(activation),
        percentile(&sorted, 0.5).as_secs_f64(),
        sorted.last().unwrap().as_secs_f64()
    );
    println!("worker peak RSS (VmHWM): {rss:.1} MB (goal ≤ 256 MB)\n");
    drop(worker);
    delete_queue(&conn, &format!("scale0.{d}")).await;
    cleanup_redis(&d).await;
}

async fn activation() {
    let samples = 200;
    println!("## first request at zero → activation event ({samples} samples)");
    let d = format!("bench-act-{}", std::process::id());
    // Boot 60 s against a 1 s deadline: each request is shed at once after its
    // activation, so every sample starts again from zero.
    let toml = format!(
        "[[deployments]]\nname = \"{d}\"\nexpected_service_time = \"100ms\"\n[[deployments.pools]]\nname = \"gpu\"\nmax_instances = 1\nslots = 4\nprice_per_hour_usd = 1.0\nboot_time = \"60s\"\n"
    );
    let config = write_config(&d, &toml);
    let (_worker, _) = start_worker(&config, &["--activation-interval", "20ms"]).await;
    let conn = connect().await;
    let (_tap_ch, mut tap) = tap_control(&conn, &d).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let replies = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .name()
        .clone();
    let mut lat = Vec::new();
    for i in 0..samples + 10 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let mut h = FieldTable::default();
        h.insert(
            headers::DEADLINE.into(),
            AMQPValue::LongLongInt(Utc::now().timestamp_millis() + 1000),
        );
        let props = BasicProperties::default()
            .with_reply_to(replies.clone())
            .with_correlation_id(i.to_string().into())
            .with_headers(h);
        let t0 = Instant::now();
        ch.basic_publish(
            REQUESTS_EXCHANGE.into(),
            d.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            props,
        )
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), tap.next())
            .await
            .expect("an activation event")
            .unwrap()
            .unwrap();
        if i >= 10 {
            lat.push(t0.elapsed());
        }
    }
    lat.sort();
    println!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (goal p99 ≤ 20 ms)\n",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    delete_queue(&conn, &format!("scale0.{d}")).await;
    cleanup_redis(&d).await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let instance_bin = instance_binary();
        if want("throughput") {
            throughput(&instance_bin).await;
        }
        if want("latency") {
            latency(&instance_bin).await;
        }
        if want("cold") {
            cold(&instance_bin).await;
        }
        if want("activation") {
            activation().await;
        }
    });
}
