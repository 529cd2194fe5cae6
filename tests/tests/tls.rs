//! TLS for real: a private RabbitMQ node with only an AMQPS listener and a private
//! `redis-server` with only `--tls-port`, both with a server certificate from a CA
//! this test makes. `scale0 local` (the functions' handlers, and its queue-worker
//! processes), `scale0 load` and `scale0 status` run over `amqps://` and `rediss://`
//! with verification on, trusting the CA through `SCALE0_CA_BUNDLE`; with another CA,
//! or none, each refuses the endpoint with an error that names it, password redacted.
//! The shared broker on 5672 is not touched.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scale0_testkit::process::Reaper;
use scale0_testkit::rabbitmq::PrivateRabbit;
use scale0_testkit::redis::PrivateRedis;
use scale0_testkit::tls::Certificates;
use scale0_tests::{Stack, bin, load_with_env, scratch, status_count};

const PASSWORD: &str = "s3cret-redis";

#[test]
fn the_stack_runs_over_amqps_and_rediss_and_refuses_a_wrong_ca() {
    let dir = scratch("tls");
    let certs = Certificates::make(&dir.join("certs"));
    let redis = PrivateRedis::start_tls(&certs, PASSWORD);
    let rabbit = PrivateRabbit::start_tls(&dir.join("rabbit"), &certs);
    let (amqp_url, redis_url) = (rabbit.url(), redis.url());
    let ca = certs.ca.to_str().unwrap();
    let wrong_ca = certs.wrong_ca.to_str().unwrap();

    // The whole stack over TLS: a burst at zero is held, an instance launched, all
    // answered.
    let deployment = format!("e2e-tls-{}", std::process::id());
    let config = format!(
        r#"
[provider.local]
state_dir = "{state}"

[[deployments]]
name = "{deployment}"
request_deadline = "60s"
expected_service_time = "100ms"
[[deployments.pools]]
name = "gpu"
max_instances = 1
slots = 4
price_per_hour_usd = 1.0
boot_time = "1s"
"#,
        state = Stack::state_dir_for(&dir).display()
    );
    let mut stack = Stack::start_with_env(
        &dir,
        &config,
        &amqp_url,
        &redis_url,
        &["--tick", "1s", "--workers", "1"],
        &[("SCALE0_CA_BUNDLE", ca)],
    );
    let report = load_with_env(
        &dir,
        &["--deployment", &deployment, "--burst", "5"],
        &amqp_url,
        &redis_url,
        &[("SCALE0_CA_BUNDLE", ca)],
    );
    assert_eq!(
        status_count(&report, "ok"),
        5,
        "{report:#}\n{}",
        stack.log_text()
    );
    assert_eq!(report["missing"], 0);

    // The CLI reads Redis over TLS.
    let config_path = dir.join("scale0.toml");
    let status = |bundle: Option<&str>| {
        let mut cmd = Command::new(bin("scale0"));
        cmd.arg("status")
            .arg("--config")
            .arg(&config_path)
            .env("SCALE0_REDIS_URL", &redis_url)
            .env_remove("SCALE0_CA_BUNDLE");
        if let Some(b) = bundle {
            cmd.env("SCALE0_CA_BUNDLE", b);
        }
        let out = cmd.output().expect("run scale0 status");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = status(Some(ca));
    assert!(ok, "{out}");
    assert!(out.contains(&deployment), "{out}");
    assert_eq!(stack.stop(Duration::from_secs(60)), Some(0));

    // A wrong CA, or none: refused, naming the endpoint without its password.
    let redis_endpoint = format!("rediss://:***@localhost:{}", redis.port);
    for (bundle, hint) in [
        (
            Some(wrong_ca),
            format!("signed by neither a CA in SCALE0_CA_BUNDLE={wrong_ca} nor a public root"),
        ),
        (
            None,
            "set SCALE0_CA_BUNDLE to a PEM file of the CA that signed it".to_string(),
        ),
    ] {
        let (ok, out) = status(bundle);
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!("cannot connect to {redis_endpoint}")),
            "{out}"
        );
        assert!(out.contains(&hint), "{out}");
        assert!(!out.contains(PASSWORD), "{out}");
    }

    // The queue worker with the wrong CA keeps retrying, saying why: for Redis, and
    // (with a plain Redis) for RabbitMQ.
    let reaper = Reaper::new();
    let amqp_endpoint = format!("amqps://guest:***@localhost:{}/%2f", rabbit.port);
    let plain_redis = scale0_tests::shared_redis_url();
    for (redis, endpoint, what) in [
        (&redis_url, &redis_endpoint, "cannot connect to Redis"),
        (&plain_redis, &amqp_endpoint, "cannot connect to RabbitMQ"),
    ] {
        let mut worker = reaper
            .command(bin("scale0-queue-worker"))
            .arg("--config")
            .arg(&config_path)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("SCALE0_AMQP_URL", &amqp_url)
            .env("SCALE0_REDIS_URL", redis)
            .env("SCALE0_CA_BUNDLE", wrong_ca)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the worker");
        let lines = BufReader::new(worker.stderr.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let found = lines.map_while(Result::ok).find(|line| {
            seen.push(line.clone());
            Instant::now() > deadline || (line.contains(what) && line.contains(endpoint.as_str()))
        });
        let _ = worker.kill();
        let _ = worker.wait();
        let line = found.unwrap_or_default();
        assert!(
            line.contains(what) && line.contains(endpoint.as_str()),
            "{}",
            seen.join("\n")
        );
        assert!(line.contains("certificate"), "{line}");
        assert!(
            !line.contains("guest:guest") && !line.contains(PASSWORD),
            "{line}"
        );
    }
}
