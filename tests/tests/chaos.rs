//! Chaos: requests flow through the whole stack while a fault script SIGKILLs queue
//! workers, SIGKILLs instance processes, closes every broker connection of the stack's
//! vhost (`rabbitmqctl close_connection`) and SIGKILLs and restarts Redis (which runs
//! with an append-only file fsynced on every write, so the registry, leases, claims and
//! done records it acknowledged survive it). At the producer, every request must get exactly one
//! terminal reply — `ok`, `shed`, `expired`, `failed`, or an instance's own non-2xx answer passed
//! on when the attempts run out — none missing and none twice.
//!
//! `make test` runs 1,000 requests with at least three faults of each kind;
//! `make test-long` sets `SCALE0_CHAOS_REQUESTS=10000`.

use std::time::{Duration, Instant};

use scale0_tests::{PrivateRedis, Stack, Vhost, load, scratch, signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillWorker,
    KillInstance,
    CloseConnections,
    RestartRedis,
}

const FAULTS: [Fault; 4] = [
    Fault::KillWorker,
    Fault::KillInstance,
    Fault::CloseConnections,
    Fault::RestartRedis,
];

#[test]
fn every_request_gets_exactly_one_terminal_reply_under_faults() {
    let requests: u64 = std::env::var("SCALE0_CHAOS_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // About 33 requests a second, at least 30 s: room for three rounds of faults.
    let over = Duration::from_secs((requests / 33).max(30));
    let vhost = Vhost::create("chaos");
    let mut redis = PrivateRedis::start_persistent();
    let dir = scratch("chaos");
    let deployment = format!("e2e-chaos-{}", std::process::id());
    let config = format!(
        r#"
[provider.local]
state_dir = "{state}"
stop_timeout = "2s"

[[deployments]]
name = "{deployment}"
request_deadline = "90s"
expected_service_time = "100ms"
[deployments.policy]
stable_window = "5s"
panic_window = "1s"
scale_down_stabilization = "20s"
scale_to_zero_grace = "30s"
drain_timeout = "10s"
boot_timeout = "30s"
unhealthy_after_failures = 2
[[deployments.pools]]
name = "gpu"
min_instances = 1
max_instances = 4
slots = 8
price_per_hour_usd = 1.0
boot_time = "1s"
"#,
        state = Stack::state_dir_for(&dir).display()
    );
    let stack = Stack::start(
        &dir,
        &config,
        &vhost.url,
        &redis.url(),
        &["--tick", "1s", "--workers", "2"],
    );

    let producer = {
        let (dir, amqp, redis_url, deployment) = (
            dir.clone(),
            vhost.url.clone(),
            redis.url(),
            deployment.clone(),
        );
        let over = format!("{}s", over.as_secs());
        let n = requests.to_string();
        std::thread::spawn(move || {
            load(
                &dir,
                &[
                    "--deployment",
                    &deployment,
                    "--burst",
                    &n,
                    "--over",
                    &over,
                    "--service",
                    "100ms",
                    "--reply-timeout",
                    "3m",
                    "--linger",
                    "3s",
                ],
                &amqp,
                &redis_url,
            )
        })
    };

    // The fault script: one fault every `over / 16` (four rounds of the four kinds
    // while requests flow), until the producer is done and three of each happened.
    let mut applied = [0u32; 4];
    let gap = over / 16;
    let started = Instant::now();
    let mut round = 0usize;
    while !producer.is_finished() || applied.iter().any(|&n| n < 3) {
        std::thread::sleep(gap);
        let kind = FAULTS[round % 4];
        let hit = match kind {
            Fault::KillWorker => stack
                .worker_pids()
                .first()
                .is_some_and(|&p| signal(p, "KILL")),
            Fault::KillInstance => stack
                .instance_pids(&deployment)
                .first()
                .is_some_and(|&p| signal(p, "KILL")),
            Fault::CloseConnections => vhost.close_connections() > 0,
            Fault::RestartRedis => {
                redis.restart();
                true
            }
        };
        if hit {
            applied[round % 4] += 1;
            println!("{:>6.1}s fault: {kind:?}", started.elapsed().as_secs_f64());
        }
        round += 1;
        assert!(
            started.elapsed() < over * 4,
            "faults could not be applied: {applied:?}"
        );
    }
    let report = producer.join().expect("the producer thread");
    let mut summary = report.clone();
    summary.as_object_mut().map(|r| r.remove("timeline"));
    println!("{summary:#}");
    println!("faults applied (worker, instance, connections, redis): {applied:?}");

    assert!(
        applied.iter().all(|&n| n >= 3),
        "at least three faults of each kind: {applied:?}"
    );
    assert_eq!(report["sent"], requests, "{report:#}");
    assert_eq!(
        report["missing"], 0,
        "every request got a reply: {report:#}"
    );
    assert_eq!(
        report["duplicates"], 0,
        "no request got a second reply: {report:#}"
    );
    // Every status of the reply contract ends a request: scale0's own (`ok`, `shed`,
    // `expired`, `failed`, `rejected`) and an instance's non-2xx answer, passed on by
    // its HTTP status when the attempts run out (`ReplyStatus::Http`). Nothing else may
    // come first.
    let by_status = report["by_status"].as_object().expect("by_status");
    let of_the_contract = |s: &str| {
        ["ok", "shed", "expired", "failed", "rejected"].contains(&s)
            || s.parse::<u16>()
                .is_ok_and(|code| (300..600).contains(&code))
    };
    let terminal: u64 = by_status
        .iter()
        .filter(|(s, _)| of_the_contract(s))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        terminal, requests,
        "only statuses of the reply contract as first replies: {by_status:?}"
    );
    // The stack kept serving through it all.
    assert!(
        by_status.get("ok").and_then(|v| v.as_u64()).unwrap_or(0) > requests / 2,
        "{by_status:?}"
    );
    drop(stack);
}
