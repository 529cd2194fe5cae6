//! A Python `pika` producer, as an outside client would be, sends requests through
//! RabbitMQ's direct reply-to and reads the replies; half its requests carry their
//! deadline as a `datetime` (an AMQP timestamp, in seconds), which must not expire them
//! at once. Needs RabbitMQ, Redis and the
//! test virtualenv (`infra/local/python-env.sh` creates it with pika).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use scale0_core::contract::InstanceState;

fn python() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(repo.join("infra/local/python-env.sh"))
        .output()
        .expect("run infra/local/python-env.sh (Python 3 with venv is needed)");
    assert!(
        out.status.success(),
        "infra/local/python-env.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let venv = String::from_utf8(out.stdout).unwrap().trim().to_string();
    format!("{venv}/bin/python")
}

#[tokio::test]
async fn a_pika_producer_gets_one_reply_per_request() {
    let d = unique("pika");
    let config = config(
        &d,
        "",
        r#"slots = 4
        boot_time = "30s""#,
    );
    let store = store().await;
    let instance = start_instance(&["--slots", "4", "--decode-tokens-per-sec", "1000"]);
    register(&store, &d, "i-1", &instance.url, InstanceState::Ready).await;
    let worker = TestWorker::start(config, |_| {}).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pika_client.py");
    let (python, url, d2) = (python(), amqp_url(), d.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([script.to_str().unwrap(), &url, &d2, "12"])
            .output()
            .expect("run the pika client")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pika client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 12);
    for r in &replies {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["headers"]["x-scale0-instance"], "i-1");
        let body: serde_json::Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["usage"]["completion_tokens"], 4);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    worker.stop().await;
    cleanup(&d).await;
}
