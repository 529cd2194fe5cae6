//! Control-plane function benchmarks (issue 5): `cargo bench -p scale0-functions`.
//!
//! 1. Scaler handler latency against local Redis: one control event for one
//!    deployment, end to end through the handler (dedupe, observe, the spend ledger,
//!    decide, ledger and fenced commits, apply with the fake provider), with 1 and
//!    with 100 deployments configured and stored, and with 100 deployments under 10
//!    budgets (two over every deployment, eight over a dozen each, all covering the
//!    one measured). Each deployment has four ready instances and a warm policy
//!    memory. Queue depth comes from the in-memory stand-in (the AMQP passive declare
//!    is timed separately). Goal: p99 ≤ 10 ms, budgets included (issue 15).
//!    And with 100 deployments, `predictive = "on"` and a cold-start budget, the
//!    measured one with a week of arrival bins in Redis (issue 12: the forecast, the
//!    learned keep-alive and the profile in the stored memory, on every call).
//! 2. A tick over all 100 deployments (one invocation, concurrent deployments).
//! 3. Binary start-up to first invocation handled: `scale0-scaler` started cold,
//!    again and again, against the test Runtime API server; the clock runs from spawn
//!    to the response arriving. Goal: ≤ 30 ms.
//! 4. Release binary sizes.
//!
//! Needs Redis and RabbitMQ (`infra/local/services.sh`). Leaves nothing behind: the
//! benchmark's deployments are deleted from Redis at the end.

#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use scale0_core::config::Config;
use scale0_core::contract::{
    ControlEvent, ControlEventKind, InstanceRecord, InstanceState, request_queue,
};
use scale0_functions::broker::{AmqpQueueDepth, FixedQueueDepth, QueueDepth};
use scale0_functions::events::{ScalerEvent, Wake};
use scale0_functions::provider::fake::FakeProvider;
use scale0_functions::{Clock, Deps, scaler};
use scale0_state::Store;

const REDIS: &str = "redis://127.0.0.1:6379";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn config(names: &[String], budgets: usize, policy: &str) -> Config {
    let mut toml = String::new();
    for b in 0..budgets {
        // Two budgets over everything (a month in a zone, a rolling week); the others
        // over a dozen deployments each, every one including the measured (middle) one.
        let scope = if b < 2 {
            String::new()
        } else {
            let mid = names.len() / 2;
            let picked: Vec<String> = (0..12)
                .map(|k| format!("\"{}\"", names[(mid + k * 7) % names.len()]))
                .collect();
            format!("deployments = [{}]", picked.join(", "))
        };
        let period = match b {
            1 => "period = \"rolling\"\nwindow = \"7d\"",
            b if b % 2 == 0 => "period = \"monthly\"\ntime_zone = \"Europe/London\"",
            _ => "period = \"daily\"",
        };
        toml.push_str(&format!(
            "[[budgets]]\nname = \"budget-{b}\"\n{scope}\n{period}\nlimit_usd = 1000000.0\n"
        ));
    }
    for name in names {
        toml.push_str(&format!(
            r#"
[[deployments]]
name = "{name}"
[[deployments.pools]]
name = "a10g"
max_instances = 10
slots = 8
price_per_hour_usd = 1.0
boot_time = "90s"
[[deployments.pools]]
name = "l4"
max_instances = 10
slots = 4
price_per_hour_usd = 0.7
boot_time = "60s"
{policy}
"#
        ));
    }
    Config::load(&toml).expect("bench config")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    scale0_core::percentile::of_sorted(sorted, p).expect("percentile of no samples")
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn seed(store: &Store, names: &[String]) {
    let now = Utc::now();
    for name in names {
        for i in 0..4 {
            let r = InstanceRecord {
                id: format!("i-{i}"),
                deployment: name.clone(),
                pool: "a10g".into(),
                state: InstanceState::Ready,
                endpoint: Some(format!("http://10.0.0.{i}:8000")),
                launched_at: now - TimeDelta::seconds(600),
                ready_at: Some(now - TimeDelta::seconds(500)),
                draining_since: None,
                failures: 0,
                reclaim_at: None,
            };
            store.put_instance(&r).await.unwrap();
        }
    }
}

fn activation(deployment: &str, n: usize) -> ScalerEvent {
    ScalerEvent::ControlEvents(vec![ControlEvent {
        id: format!(
            "bench-{n}-{}",
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ),
        deployment: deployment.to_string(),
        at: Utc::now(),
        kind: ControlEventKind::Activation { held: 0 },
    }])
}

/// A week of arrivals for `deployment`, as the worker counts them: busy 08:00–20:00
/// UTC with a few requests per 10 s bin, quiet at night.
async fn seed_week(store: &Store, deployment: &str) {
    let now = Utc::now().timestamp();
    let bins = (now - 7 * 86_400..now)
        .step_by(10)
        .filter(|s| (8 * 3600..20 * 3600).contains(&s.rem_euclid(86_400)));
    for s in bins {
        let at = chrono::DateTime::from_timestamp(s, 0).unwrap();
        store
            .add_arrivals(deployment, at, (s / 10 % 5) as u64 + 1)
            .await
            .unwrap();
    }
}

/// With `history`, every deployment has `predictive = "on"` and a 1% cold-start
/// budget, and the measured one a week of arrivals in Redis.
async fn handler_latency(
    store: &Store,
    deployments: usize,
    budgets: usize,
    history: bool,
    iterations: usize,
) -> Vec<String> {
    let pid = std::process::id();
    let names: Vec<String> = (0..deployments)
        .map(|i| format!("bench-{pid}-{deployments}-{budgets}-{history}-{i}"))
        .collect();
    // The ledger in a namespace of its own, deleted at the end.
    let store = &store
        .clone()
        .with_ledger_namespace(&format!("bench-ledger-{pid}-{budgets}"));
    seed(store, &names).await;
    let queue = Arc::new(FixedQueueDepth::new());
    for n in &names {
        // 200 queued per deployment: 4 ready × 8 slots cover it; steady state.
        queue.set(&request_queue(n), 200);
    }
    let policy = if history {
        "[deployments.policy]\npredictive = \"on\"\ncold_start_budget = 0.01"
    } else {
        ""
    };
    let deps = Deps::new(
        config(&names, budgets, policy),
        store.clone(),
        Arc::new(FakeProvider::per_instance()),
        queue,
    )
    .with_clock(Clock::system());
    let target = names[deployments / 2].clone();
    if history {
        seed_week(store, &target).await;
    }
    // Warm up: policy memory fills its windows, connections are open.
    for n in 0..100 {
        scaler::scaler(activation(&target, n), &deps).await.unwrap();
    }
    let mut samples = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let event = activation(&target, 1000 + n);
        let t = Instant::now();
        let out = scaler::scaler(event, &deps).await.unwrap();
        samples.push(t.elapsed());
        assert!(!out.deployments[0].duplicate);
    }
    summary(
        &format!(
            "scaler handler, one control event, {deployments} deployment(s), {budgets} budget(s){}",
            if history {
                ", a week of history, predictive on"
            } else {
                ""
            }
        ),
        samples,
    );

    if deployments > 1 {
        let mut ticks = Vec::new();
        for n in 0..20 {
            let event = ScalerEvent::Wake(Wake {
                trigger: "tick".into(),
                id: Some(format!("tick-{n}")),
                ..Default::default()
            });
            let t = Instant::now();
            let out = scaler::scaler(event, &deps).await.unwrap();
            ticks.push(t.elapsed());
            assert_eq!(out.deployments.len(), deployments);
        }
        summary(
            &format!(
                "scaler handler, one wake of all {deployments} deployments, {budgets} budget(s)"
            ),
            ticks,
        );
    }
    store.forget_ledger().await.unwrap();
    names
}

async fn amqp_depth() {
    let depth = AmqpQueueDepth::new(AMQP);
    let conn = lapin::Connection::connect(AMQP, Default::default())
        .await
        .expect("RabbitMQ");
    let ch = conn.create_channel().await.unwrap();
    let queue = format!("scale0.bench-{}", std::process::id());
    ch.queue_declare(
        queue.as_str().into(),
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    depth.depth(&queue).await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        depth.depth(&queue).await.unwrap();
        samples.push(t.elapsed());
    }
    summary("queue depth by AMQP passive declare (own channel)", samples);
    ch.queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
}

async fn startup() {
    let api = runtime_api::RuntimeApi::start().await;
    let name = format!("bench-{}-startup", std::process::id());
    let mut config = config(std::slice::from_ref(&name), 0, "");
    config.provider.local.state_dir = Some(
        std::env::temp_dir()
            .join("scale0-bench")
            .display()
            .to_string(),
    );
    let json = serde_json::to_string(&config).unwrap();
    let mut samples = Vec::new();
    for n in 0..20 {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_scale0-scaler"))
            .envs(runtime_api::lambda_env(&api, "scale0-scaler"))
            .env("SCALE0_CONFIG", &json)
            .env("SCALE0_REDIS_URL", REDIS)
            .env("SCALE0_AMQP_URL", AMQP)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut tick: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/eventbridge-scheduled-event.json"
        ))
        .unwrap();
        tick["id"] = serde_json::json!(format!("startup-{n}"));
        let id = api.invoke(tick);
        let answer = api
            .answer(&id, Duration::from_secs(30))
            .await
            .expect("answered");
        assert!(answer.ok, "{}", answer.body);
        samples.push(answer.at - started);
        child.kill().await.unwrap();
    }
    summary(
        "scale0-scaler start-up to first invocation handled (cold process)",
        samples,
    );
    let store = Store::connect(REDIS).await.unwrap();
    cleanup(&store, &[name]).await;
}

fn sizes() {
    for bin in [
        "scale0-scaler",
        "scale0-scheduler",
        "scale0-lifecycle",
        "scale0-budget",
    ] {
        let path = match bin {
            "scale0-scaler" => env!("CARGO_BIN_EXE_scale0-scaler"),
            "scale0-scheduler" => env!("CARGO_BIN_EXE_scale0-scheduler"),
            "scale0-lifecycle" => env!("CARGO_BIN_EXE_scale0-lifecycle"),
            _ => env!("CARGO_BIN_EXE_scale0-budget"),
        };
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let stripped = std::env::temp_dir().join(format!("{bin}.stripped"));
        let stripped_bytes = std::process::Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(path)
            .status()
            .ok()
            .filter(|s| s.success())
            .and_then(|_| std::fs::metadata(&stripped).ok())
            .map(|m| m.len());
        let _ = std::fs::remove_file(&stripped);
        println!(
            "{bin}: {:.1} MiB as built{}",
            bytes as f64 / 1048576.0,
            stripped_bytes
                .map(|b| format!(", {:.1} MiB stripped", b as f64 / 1048576.0))
                .unwrap_or_default()
        );
    }
}

async fn cleanup(store: &Store, names: &[String]) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for name in names {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("scale0:{{{name}}}:*"))
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let _: () = redis::cmd("SREM")
            .arg(scale0_state::keys::DEPLOYMENTS)
            .arg(name)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _ = store;
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::connect(REDIS)
            .await
            .expect("Redis at 127.0.0.1:6379");
        let one = handler_latency(&store, 1, 0, false, 2000).await;
        let hundred = handler_latency(&store, 100, 0, false, 2000).await;
        let budgeted = handler_latency(&store, 100, 10, false, 2000).await;
        let historied = handler_latency(&store, 100, 0, true, 2000).await;
        amqp_depth().await;
        startup().await;
        for names in [one, hundred, budgeted, historied] {
            cleanup(&store, &names).await;
        }
    });
    sizes();
}
