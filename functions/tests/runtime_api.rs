//! The function binaries driven through a real Lambda Runtime API round trip: each
//! binary runs as Lambda would run it (`AWS_LAMBDA_RUNTIME_API` and the function
//! environment), against the small Runtime API server in `support/runtime_api.rs`
//! (cargo-lambda's emulator would do, but takes ~16 minutes to build on two cores).
//! Needs Redis and RabbitMQ like the handler tests.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::runtime_api::{RuntimeApi, lambda_env};
use support::*;

fn local_config_json(d: &str, extra: &str) -> String {
    let dir = std::env::temp_dir().join(format!("scale0-test-{d}"));
    let toml = format!(
        "{}\n[provider]\nkind = \"local\"\n[provider.local]\nstate_dir = \"{}\"\n",
        one_pool(d, extra),
        dir.display()
    );
    serde_json::to_string(&config(&toml)).unwrap()
}

fn function(binary: &str, api: &RuntimeApi, config_json: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.envs(lambda_env(api, "scale0-test"))
        .env("SCALE0_REDIS_URL", redis_url())
        .env("SCALE0_AMQP_URL", amqp_url())
        .env("RUST_LOG", "info")
        .env_remove("SCALE0_CONFIG")
        .env_remove("SCALE0_CONFIG_SSM_PARAMETER")
        .env_remove("SCALE0_CONFIG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(c) = config_json {
        cmd.env("SCALE0_CONFIG", c);
    }
    cmd
}

#[tokio::test]
async fn the_scaler_binary_answers_through_the_lambda_runtime_api() {
    // Fail early and clearly without the services.
    store().await;
    amqp().await;
    let d = unique("lambda");
    let api = RuntimeApi::start().await;
    let started = Instant::now();
    let child = function(
        env!("CARGO_BIN_EXE_scale0-scaler"),
        &api,
        Some(&local_config_json(&d, "")),
    )
    .spawn()
    .unwrap();

    let id = api.invoke(tick("rt-1"));
    let answer = api
        .answer(&id, Duration::from_secs(30))
        .await
        .expect("the scaler answered the tick");
    eprintln!(
        "start-up to first invocation handled: {:?}",
        answer.at - started
    );
    assert!(answer.ok, "{}", answer.body);
    assert_eq!(answer.body["deployments"][0]["deployment"], json!(d));
    assert_eq!(answer.body["deployments"][0]["trigger"], json!("tick"));

    // A malformed event is answered on the error endpoint with a clear message.
    let id = api.invoke(json!({"hello": "world"}));
    let answer = api.answer(&id, Duration::from_secs(10)).await.unwrap();
    assert!(!answer.ok);
    assert_eq!(answer.body["errorType"], json!("MalformedEvent"));
    let message = answer.body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("not an EventBridge, CloudWatch alarm or Amazon MQ event"),
        "{message}"
    );

    // The function keeps serving after an error.
    let id = api.invoke(tick("rt-2"));
    assert!(api.answer(&id, Duration::from_secs(10)).await.unwrap().ok);

    let mut child = child;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty(),
        "no logs; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(logs.contains("\"scaler run\""), "{logs}");
}

#[tokio::test]
async fn the_scheduler_and_lifecycle_binaries_answer_their_events() {
    store().await;
    let d = unique("lambda2");
    let schedules = r#"
        [[deployments.schedules]]
        name = "office-hours"
        expression = "cron(0 9 ? * MON-FRI *)"
        time_zone = "Europe/London"
        min_instances = 0
    "#;
    let config_json = local_config_json(&d, schedules);
    let api = RuntimeApi::start().await;
    let _scheduler = function(
        env!("CARGO_BIN_EXE_scale0-scheduler"),
        &api,
        Some(&config_json),
    )
    .spawn()
    .unwrap();
    let mut event = fixture("scheduler-invocation.json");
    event["deployment"] = json!(d);
    let id = api.invoke(event);
    let answer = api.answer(&id, Duration::from_secs(30)).await.unwrap();
    assert!(answer.ok, "{}", answer.body);
    assert_eq!(
        answer.body["scaler"]["trigger"],
        json!("schedule office-hours")
    );

    let api = RuntimeApi::start().await;
    let _lifecycle = function(
        env!("CARGO_BIN_EXE_scale0-lifecycle"),
        &api,
        Some(&config_json),
    )
    .spawn()
    .unwrap();
    let id = api.invoke(fixture("autoscaling-terminate-lifecycle-action.json"));
    let answer = api.answer(&id, Duration::from_secs(30)).await.unwrap();
    assert!(answer.ok, "{}", answer.body);
    assert_eq!(answer.body["action"], json!("ignored"));
}

#[tokio::test]
async fn a_function_without_configuration_stops_with_a_clear_message() {
    let api = RuntimeApi::start().await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        function(env!("CARGO_BIN_EXE_scale0-scheduler"), &api, None).output(),
    )
    .await
    .expect("exits")
    .unwrap();
    assert!(!out.status.success());
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("no configuration: set SCALE0_CONFIG"),
        "{logs}"
    );

    let out = function(
        env!("CARGO_BIN_EXE_scale0-scheduler"),
        &api,
        Some("{\"deployments\": []}"),
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.contains("at least one deployment is required"),
        "{logs}"
    );
}

#[tokio::test]
async fn payloads_that_are_not_json_are_malformed_events_in_every_binary() {
    store().await;
    amqp().await;
    let d = unique("rawpayload");
    let config_json = local_config_json(&d, "");
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated",
            br#"{"source": "aws.events", "detail-ty"#.to_vec(),
        ),
        ("empty", Vec::new()),
        ("not UTF-8", b"\xff\xfe\x00{}".to_vec()),
        (
            "not UTF-8 in a string",
            b"{\"source\": \"aws.\xff\"}".to_vec(),
        ),
        ("10,000 nested arrays", deep_arrays.into_bytes()),
        ("10,000 nested objects", deep_objects.into_bytes()),
    ];
    for binary in [
        env!("CARGO_BIN_EXE_scale0-scaler"),
        env!("CARGO_BIN_EXE_scale0-scheduler"),
        env!("CARGO_BIN_EXE_scale0-lifecycle"),
    ] {
        let api = RuntimeApi::start().await;
        // At TRACE, lambda_runtime 1.5 logs each payload as UTF-8 and stops the runtime
        // on one that is not: the function must answer all the same.
        let mut child = function(binary, &api, Some(&config_json))
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        for (name, body) in &payloads {
            let id = api.invoke_raw(body.clone());
            let answer = api
                .answer(&id, Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("{binary}: no answer to the {name} payload"));
            assert!(!answer.ok, "{binary} {name}: {}", answer.body);
            assert_eq!(
                answer.body["errorType"],
                json!("MalformedEvent"),
                "{binary} {name}: {}",
                answer.body
            );
            let message = answer.body["errorMessage"].as_str().unwrap_or_default();
            assert!(
                message.contains("the payload is not JSON"),
                "{binary} {name}: {message}"
            );
        }
        // Still serving: a JSON event of the wrong kind gets its own clear answer.
        let id = api.invoke(json!({"hello": "world"}));
        let answer = api.answer(&id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(answer.body["errorType"], json!("MalformedEvent"));
        assert!(
            !answer.body["errorMessage"]
                .as_str()
                .unwrap()
                .contains("not JSON")
        );
        assert!(child.try_wait().unwrap().is_none(), "{binary} exited");
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn a_batch_of_100000_undecodable_control_messages_gives_one_bounded_error() {
    store().await;
    amqp().await;
    let d = unique("bigbatch");
    let api = RuntimeApi::start().await;
    let child = function(
        env!("CARGO_BIN_EXE_scale0-scaler"),
        &api,
        Some(&local_config_json(&d, "")),
    )
    .spawn()
    .unwrap();
    // The Amazon MQ event as text (a JSON tree of 100,000 messages would take the test
    // hundreds of megabytes): every message's data is base64 of `not json`.
    let message = r#"{"basicProperties":{"contentType":"application/json","deliveryMode":1,"priority":0,"bodySize":8},"redelivered":false,"data":"bm90IGpzb24="}"#;
    let messages = vec![message; 100_000].join(",");
    let event = format!(
        r#"{{"eventSource":"aws:rmq","eventSourceArn":"arn:aws:mq:us-east-1:123456789012:broker:b:b-1","rmqMessagesByQueue":{{"scale0.control::/":[{messages}]}}}}"#
    );
    let id = api.invoke_raw(event.into_bytes());
    let answer = api.answer(&id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(answer.body["errorType"], json!("MalformedEvent"));
    let error = answer.body["errorMessage"].as_str().unwrap();
    assert!(error.len() < 2_000, "{} bytes: {error}", error.len());
    assert!(
        error.contains("100000 rejected (not a control event: 100000)"),
        "{error}"
    );

    let mut child = child;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    let lines = logs.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines < 10, "{lines} log lines");
    assert!(logs.len() < 10_000, "{} bytes of logs", logs.len());
}
