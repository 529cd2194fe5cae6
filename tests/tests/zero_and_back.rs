//! Scale from zero and back to zero with real processes: `scale0 local`, its queue
//! workers and `scale0-instance` processes, real RabbitMQ (a vhost of the test's own)
//! and Redis. Then a clean shutdown that leaves no process behind.

use std::time::{Duration, Instant};

use scale0_tests::{Stack, Vhost, alive, load, scratch, shared_redis_url, status_count};

#[test]
fn scales_from_zero_and_back_to_zero_then_stops_cleanly() {
    let vhost = Vhost::create("zero");
    let redis = shared_redis_url();
    let dir = scratch("zero");
    let deployment = format!("e2e-zero-{}", std::process::id());
    let config = format!(
        r#"
[provider.local]
state_dir = "{state}"

[[deployments]]
name = "{deployment}"
request_deadline = "60s"
expected_service_time = "200ms"
[deployments.policy]
stable_window = "4s"
panic_window = "1s"
scale_down_stabilization = "4s"
scale_to_zero_grace = "4s"
drain_timeout = "10s"
boot_timeout = "1m"
[[deployments.pools]]
name = "gpu"
max_instances = 3
slots = 4
price_per_hour_usd = 1.0
boot_time = "2s"
"#,
        state = Stack::state_dir_for(&dir).display()
    );
    let mut stack = Stack::start(
        &dir,
        &config,
        &vhost.url,
        &redis,
        &["--tick", "1s", "--workers", "2"],
    );
    let workers = stack.worker_pids();
    assert_eq!(workers.len(), 2, "two worker processes: {workers:?}");

    // At zero: a burst of 30 is held through a 2 s boot and answered.
    assert!(
        stack.instance_pids(&deployment).is_empty(),
        "starts at zero"
    );
    let report = load(
        &dir,
        &[
            "--deployment",
            &deployment,
            "--burst",
            "30",
            "--service",
            "200ms",
        ],
        &vhost.url,
        &redis,
    );
    assert_eq!(status_count(&report, "ok"), 30, "{report:#}");
    assert_eq!(report["missing"], 0);
    assert_eq!(report["duplicates"], 0);
    assert!(
        report["cold_start_delayed"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    let launched = stack.instance_files(&deployment);
    assert!(!launched.is_empty(), "instance processes were launched");

    // Idle: drained and stopped, back to zero processes.
    let idle = Instant::now();
    while !stack.instance_pids(&deployment).is_empty() {
        assert!(
            idle.elapsed() < Duration::from_secs(60),
            "still running after 60 s idle:\n{}",
            stack.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = stack.log_text();
    assert!(log.contains("scaling to zero"), "{log}");

    // A second request at zero starts it again, then a clean stop leaves nothing.
    let again = load(
        &dir,
        &["--deployment", &deployment, "--burst", "1"],
        &vhost.url,
        &redis,
    );
    assert_eq!(status_count(&again, "ok"), 1, "{again:#}");
    let running = stack.instance_pids(&deployment);
    assert!(!running.is_empty());
    assert_eq!(stack.stop(Duration::from_secs(60)), Some(0), "clean exit");
    for pid in workers.iter().chain(&running) {
        assert!(!alive(*pid), "process {pid} outlived scale0 local");
    }
    assert!(stack.instance_pids(&deployment).is_empty());
}
