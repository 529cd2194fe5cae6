//! A Spot instance warned of its interruption while ready, against real RabbitMQ,
//! Redis and `scale0-instance`: the worker keeps dispatching to it until 30 s before
//! its reclaim (`InstanceRecord::serves_until`), and not after.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::*;
use scale0_core::contract::InstanceState;

/// Register a ready instance, then drain it as the Spot event handler does for a
/// warning, with EC2's reclaim `reclaim_in` from now.
async fn warned(store: &scale0_state::Store, d: &str, url: &str, reclaim_in: TimeDelta) {
    register(store, d, "i-spot", url, InstanceState::Booting).await;
    let now = Utc::now();
    store
        .transition(d, "i-spot", &[], InstanceState::Ready, now, None)
        .await
        .unwrap();
    store
        .drain_for_reclaim(d, "i-spot", &[InstanceState::Ready], now, now + reclaim_in)
        .await
        .unwrap();
    let r = store.instance(d, "i-spot").await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Draining);
}

#[tokio::test]
async fn a_warned_instance_takes_requests_until_shortly_before_its_reclaim() {
    let store = store().await;
    let pool = r#"slots = 4
        boot_time = "30s""#;
    let client = Client::new(&amqp_url(), &unique("replies")).await;

    // Reclaimed in two minutes: it serves for 90 s more.
    let d = unique("warned");
    let cfg = config(&d, "", pool);
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "0"]);
    warned(&store, &d, &instance.url, TimeDelta::minutes(2)).await;
    let worker = TestWorker::start(cfg, |_| {}).await;
    client.request(&d, "r1", &completion(10), |p| p).await;
    let got = client.replies(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, "ok", "{:?}", got[0].headers);
    assert_eq!(instance.stats().await["served"], 1);
    worker.stop().await;

    // Reclaimed in 20 s: within the 30 s margin, so nothing more starts on it. Nothing
    // else is ready or can boot within the 2 s deadline: the request is shed.
    let d = unique("reclaimed");
    let cfg = config(&d, "", pool);
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "0"]);
    warned(&store, &d, &instance.url, TimeDelta::seconds(20)).await;
    let worker = TestWorker::start(cfg, |_| {}).await;
    client
        .request(&d, "r2", &completion(10), |p| {
            p.with_headers(deadline_in(2000))
        })
        .await;
    let got = client.replies(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_ne!(got[0].status, "ok", "{:?}", got[0].headers);
    assert_eq!(instance.stats().await["served"], 0);
    worker.stop().await;
}
