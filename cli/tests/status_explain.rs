//! `scale0 status` and `scale0 explain` against a real Redis (`SCALE0_REDIS_URL`,
//! default `redis://127.0.0.1:6379`), run as a user runs them.

use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use scale0_core::config::Config;
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::{PolicyMemory, decide};
use scale0_state::Store;
use scale0_state::decisions::ObservedSummary;

fn redis_url() -> String {
    std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn scale0(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scale0"))
        .args(args)
        .env("SCALE0_REDIS_URL", redis_url())
        .output()
        .expect("run scale0");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn store() -> Store {
    Store::connect_with_timeout(&redis_url(), Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "this test needs Redis at {} (infra/local/services.sh): {e}",
                redis_url()
            )
        })
}

/// A deployment with one ready and one booting instance, a backlog, and two decisions.
async fn seed(d: &str) {
    let store = store().await;
    let toml = format!(
        "[[deployments]]\nname = \"{d}\"\n[[deployments.pools]]\nname = \"a10g\"\nmax_instances = 2\nslots = 8\nprice_per_hour_usd = 1.0\nboot_time = \"90s\"\n"
    );
    let spec = Config::load(&toml).unwrap().deployments.remove(0);
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let ready = InstanceRecord {
        id: "i-ready".into(),
        deployment: d.into(),
        pool: "a10g".into(),
        state: InstanceState::Ready,
        endpoint: Some("http://10.0.0.1:8000".into()),
        launched_at: t0,
        ready_at: Some(t0),
        draining_since: None,
        failures: 0,
        reclaim_at: None,
    };
    store.put_instance(&ready).await.unwrap();
    let now_ms = Utc::now().timestamp_millis();
    store.report_held(d, "w1", 6, now_ms).await.unwrap();
    let mut memory = PolicyMemory::default();
    for (n, (trigger, depth)) in [("tick", 10u64), ("activation", 5000)]
        .into_iter()
        .enumerate()
    {
        let snap = store.load_policy(d).await.unwrap();
        let obs = store.observe(&spec, t0, depth).await.unwrap();
        let decision = decide(
            t0 + chrono::TimeDelta::seconds(n as i64),
            &spec,
            &obs,
            &memory,
        );
        memory = decision.memory.clone();
        store
            .commit_decision_observed(
                snap.generation,
                &decision,
                Some(&ObservedSummary::new(trigger, &obs)),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn status_and_explain_read_the_state_store() {
    let d = format!(
        "t-cli-{}-{}",
        std::process::id(),
        Utc::now().timestamp_subsec_nanos()
    );
    seed(&d).await;

    let (code, out, err) = scale0(&["status", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("{d}  generation 2, last decision")),
        "{out}"
    );
    assert!(out.contains("activation)"), "{out}");
    assert!(
        out.contains("queued 5000 (at the last decision), held 6, in flight 0"),
        "{out}"
    );
    // 5000 queued needs more than max 2: a cap, which workers shed by.
    assert!(out.contains("cap: 2 of "), "{out}");

    let (code, json, _) = scale0(&["status", "--json", &d]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let s = &v[0];
    assert_eq!(s["generation"], 2);
    assert_eq!(s["pools"]["a10g"]["desired"], 2);
    assert_eq!(s["pools"]["a10g"]["actual"], 2);
    assert_eq!(s["pools"]["a10g"]["states"]["ready"], 1);
    assert_eq!(s["pools"]["a10g"]["states"]["requested"], 1);
    assert_eq!(s["held"], 6);

    let (code, out, err) = scale0(&["explain", &d, "-n", "5"]);
    assert_eq!(code, 0, "{err}");
    let first = out.find("#2 ").expect(&out);
    let second = out.find("#1 ").expect(&out);
    assert!(first < second, "newest first: {out}");
    assert!(out.contains("[activation] queued 5000, held 6"), "{out}");
    assert!(
        out.contains("a10g 2 (ready 1, booting 0, draining 0) +1"),
        "{out}"
    );
    assert!(out.contains("    - "), "reasons are listed: {out}");

    let (code, json, _) = scale0(&["explain", "--json", "-n", "1", &d]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["observed"]["trigger"], "activation");

    let (code, _, err) = scale0(&["explain", "no-such-deployment"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no decisions logged for deployment `no-such-deployment`"),
        "{err}"
    );
    let (code, _, err) = scale0(&["status", "--redis-url", "redis://127.0.0.1:1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot reach Redis at redis://127.0.0.1:1"),
        "{err}"
    );
}

/// Spend per request and per 1,000 tokens over the last 24 hours: the ledger's bill of
/// an instance that ran two hours at $1/h, over the 40 requests and 20,000 tokens the
/// workers counted.
#[tokio::test]
async fn status_shows_the_last_days_spend_per_request_and_per_token() {
    let d = format!(
        "t-cpr-{}-{}",
        std::process::id(),
        Utc::now().timestamp_subsec_nanos()
    );
    let store = store().await;
    let toml = format!(
        "[[deployments]]\nname = \"{d}\"\n[[deployments.pools]]\nname = \"a10g\"\nmax_instances = 1\nslots = 8\nprice_per_hour_usd = 1.0\nboot_time = \"90s\"\n"
    );
    let config = Config::load(&toml).unwrap();
    let spec = config.deployments[0].clone();
    let now = Utc::now();
    let launched = now - chrono::TimeDelta::hours(2);
    store
        .put_instance(&InstanceRecord {
            id: "i-1".into(),
            deployment: d.clone(),
            pool: "a10g".into(),
            state: InstanceState::Ready,
            endpoint: None,
            launched_at: launched,
            ready_at: Some(launched),
            draining_since: None,
            failures: 0,
            reclaim_at: None,
        })
        .await
        .unwrap();
    for minute in 0..40 {
        let at = now - chrono::TimeDelta::minutes(90 - minute);
        store.add_arrivals(&d, at, 1).await.unwrap();
        store.add_tokens(&d, at, 500).await.unwrap();
    }
    // One scaler-like round bills the instance into the ledger.
    let snapshot = store.ledger_snapshot(&config, &spec, now).await.unwrap();
    let obs = store.observe(&spec, now, 0).await.unwrap();
    let decision = decide(now, &spec, &obs, &PolicyMemory::default());
    store.commit_ledger(&snapshot, &decision).await.unwrap();

    let (code, out, err) = scale0(&["status", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "  last 24 h: $2.00 for 40 requests, $0.0500 per request; 20000 tokens, $0.1000 per 1,000"
        ),
        "{out}"
    );
    let (_, json, _) = scale0(&["status", "--json", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["last_24h"]["requests"], 40);
    let per = v[0]["last_24h"]["usd_per_request"].as_f64().unwrap();
    assert!((per - 0.05).abs() < 1e-3, "{per}");
    assert_eq!(v[0]["last_24h"]["tokens"], 20_000);
}

#[tokio::test]
async fn explain_shows_what_the_forecast_expected() {
    let d = format!(
        "t-cli-forecast-{}-{}",
        std::process::id(),
        Utc::now().timestamp_subsec_nanos()
    );
    let store = store().await;
    let toml = format!(
        "[[deployments]]\nname = \"{d}\"\n[deployments.policy]\npredictive = \"forecast-only\"\n[[deployments.pools]]\nname = \"a10g\"\nmax_instances = 2\nslots = 8\nprice_per_hour_usd = 1.0\nboot_time = \"90s\"\n"
    );
    let spec = Config::load(&toml).unwrap().deployments.remove(0);
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    // Yesterday, one request per 10 s from t0 + 2 min for an hour, as the worker counts.
    let start = t0 - chrono::TimeDelta::days(1) + chrono::TimeDelta::minutes(2);
    for i in 0..360 {
        let at = start + chrono::TimeDelta::seconds(i * 10);
        store.add_arrivals(&d, at, 1).await.unwrap();
    }
    let mut obs = store.observe(&spec, t0, 0).await.unwrap();
    obs.arrival_bins = store
        .arrivals(&d, t0 - chrono::TimeDelta::days(8), t0)
        .await
        .unwrap();
    let decision = decide(t0, &spec, &obs, &PolicyMemory::default());
    let snap = store.load_policy(&d).await.unwrap();
    store
        .commit_decision_observed(
            snap.generation,
            &decision,
            Some(&ObservedSummary::new("tick", &obs)),
        )
        .await
        .unwrap();

    let (code, out, err) = scale0(&["explain", &d, "-n", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("forecast-only: 27.0 requests expected in the 5m after a boot lead of 1m30s")
            && out.contains("would pre-warm"),
        "{out}"
    );
    let (_, json, _) = scale0(&["explain", "--json", "-n", "1", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["decision"]["forecast"]["applied"], false);
    // `scale0 status` says it on a line of its own, and exports it in `--json`.
    let (code, out, err) = scale0(&["status", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "  forecast: 27.0 requests expected 12:01:30 – 12:06:30 UTC, forecast-only, would pre-warm"
        ),
        "{out}"
    );
    let (_, json, _) = scale0(&["status", "--json", &d]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["last_decision"]["forecast"]["expected_requests"], 27.0);
    store.forget_deployment(&d).await.unwrap();
}
