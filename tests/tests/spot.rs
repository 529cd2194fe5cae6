//! A Spot interruption during load with real processes: `scale0 local` with its Spot
//! fault (`--spot-reclaim-every`: the documented interruption warning through the
//! lifecycle handler, then the instance stopped after the notice), queue workers,
//! `scale0-instance` processes, RabbitMQ and Redis. No request is lost: the warned
//! instance drains at once, its replacement is launched in the same call, and what it
//! was serving finishes within the notice.

use scale0_tests::{Stack, Vhost, load, scratch, shared_redis_url, status_count};

#[test]
fn spot_interruptions_during_load_lose_no_request() {
    let vhost = Vhost::create("spot");
    let redis = shared_redis_url();
    let dir = scratch("spot");
    let deployment = format!("e2e-spot-{}", std::process::id());
    let config = format!(
        r#"
[provider.local]
state_dir = "{state}"

[[deployments]]
name = "{deployment}"
request_deadline = "60s"
expected_service_time = "300ms"
[deployments.policy]
drain_timeout = "10s"
boot_timeout = "1m"
[[deployments.pools]]
name = "spot"
capacity_type = "spot"
max_instances = 4
slots = 4
price_per_hour_usd = 0.35
boot_time = "1s"
[[deployments.pools]]
name = "on-demand"
max_instances = 4
slots = 4
price_per_hour_usd = 1.0
boot_time = "1s"
"#,
        state = Stack::state_dir_for(&dir).display()
    );
    let mut stack = Stack::start(
        &dir,
        &config,
        &vhost.url,
        &redis,
        &[
            "--tick",
            "1s",
            "--workers",
            "2",
            "--spot-reclaim-every",
            "5s",
            "--spot-notice",
            "2s",
        ],
    );
    // 20 requests a second for 20 s, 300 ms each: about two Spot instances busy, and
    // one reclaimed every 5 s.
    let report = load(
        &dir,
        &[
            "--deployment",
            &deployment,
            "--burst",
            "400",
            "--over",
            "20s",
            "--service",
            "300ms",
        ],
        &vhost.url,
        &redis,
    );
    let log = stack.log_text();
    let reclaimed = log
        .lines()
        .filter(|l| l.contains("spot fault: ") && l.ends_with(" reclaimed"))
        .count();
    assert!(
        reclaimed >= 2,
        "fewer than two Spot instances reclaimed during the load:\n{log}"
    );
    assert_eq!(status_count(&report, "ok"), 400, "{report:#}\n{log}");
    assert_eq!(report["missing"], 0, "{report:#}");
    assert_eq!(report["duplicates"], 0, "{report:#}");
    assert_eq!(stack.stop(std::time::Duration::from_secs(60)), Some(0));
}
