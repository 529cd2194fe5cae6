//! `scale0-instance` as a process: boot delay, readiness paths, the latency model, the
//! slot limit and each injected fault. Needs nothing but the binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scale0-instance"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scale0-instance");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, base }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn status(c: &reqwest::Client, url: String) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

async fn complete(c: &reqwest::Client, s: &Server, body: &str) -> reqwest::Response {
    c.post(format!("{}/v1/completions", s.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn boots_then_serves_completions() {
    let s = start(&["--boot-delay", "600ms", "--decode-tokens-per-sec", "100"]);
    let c = client();
    let t0 = Instant::now();
    assert_eq!(status(&c, format!("{}/health", s.base)).await, 503);
    assert_eq!(complete(&c, &s, "{}").await.status().as_u16(), 503);
    while status(&c, format!("{}/health", s.base)).await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t0.elapsed() >= Duration::from_millis(550));

    // 10 tokens at 100/s: about 100 ms.
    let t = Instant::now();
    let r = complete(&c, &s, r#"{"prompt":"say something","max_tokens":10}"#).await;
    let took = t.elapsed();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["completion_tokens"], 10);
    assert_eq!(v["usage"]["prompt_tokens"], 4); // 14 chars / 4, rounded up
    assert!(took >= Duration::from_millis(95), "{took:?}");

    let bad = complete(&c, &s, "not json").await;
    assert_eq!(bad.status().as_u16(), 400);
    let stats: serde_json::Value = c
        .get(format!("{}/stats", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["served"], 1);
}

#[tokio::test]
async fn a_slow_boot_adds_to_the_boot_delay() {
    let s = start(&["--boot-delay", "200ms", "--slow-boot", "500ms"]);
    let c = client();
    let t0 = Instant::now();
    while status(&c, format!("{}/health", s.base)).await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn triton_style_readiness_path() {
    let s = start(&["--readiness-path", "/v2/health/ready"]);
    let c = client();
    assert_eq!(status(&c, format!("{}/v2/health/ready", s.base)).await, 200);
    assert_eq!(status(&c, format!("{}/health", s.base)).await, 404);
}

#[tokio::test]
async fn the_slot_limit_rejects_or_queues() {
    let body = r#"{"prompt":"x","max_tokens":20}"#; // 200 ms at 100 tokens/s
    let reject = start(&["--slots", "2"]);
    let c = client();
    let codes = futures(&c, &reject, body, 3).await;
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 1, "{codes:?}");

    let queue = start(&["--slots", "2", "--when-full", "queue"]);
    let t = Instant::now();
    let codes = futures(&c, &queue, body, 3).await;
    assert_eq!(codes, [200, 200, 200]);
    assert!(
        t.elapsed() >= Duration::from_millis(390),
        "the third waited"
    );
    let stats: serde_json::Value = c
        .get(format!("{}/stats", queue.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["max_in_flight"], 2);
}

async fn futures(c: &reqwest::Client, s: &Server, body: &str, n: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, url, body) = (
            c.clone(),
            format!("{}/v1/completions", s.base),
            body.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out.sort_unstable();
    out
}

#[tokio::test]
async fn injected_faults() {
    let c = client();
    let failing = start(&["--fail-rate", "1", "--decode-tokens-per-sec", "0"]);
    assert_eq!(complete(&c, &failing, "{}").await.status().as_u16(), 500);

    let hanging = start(&["--hang-rate", "1", "--decode-tokens-per-sec", "0"]);
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = short
        .post(format!("{}/v1/completions", hanging.base))
        .body("{}")
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());

    let never = start(&["--never-ready"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(status(&c, format!("{}/health", never.base)).await, 503);

    let mut crashing = start(&["--crash-after", "2", "--decode-tokens-per-sec", "0"]);
    assert_eq!(complete(&c, &crashing, "{}").await.status().as_u16(), 200);
    assert_eq!(complete(&c, &crashing, "{}").await.status().as_u16(), 200);
    let third = c
        .post(format!("{}/v1/completions", crashing.base))
        .body("{}")
        .send()
        .await;
    assert!(
        third.is_err(),
        "the third request must find the process gone"
    );
    let code = crashing.child.wait().unwrap().code();
    assert_eq!(code, Some(3));
}
