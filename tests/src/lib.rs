//! # scale0-tests
//!
//! End-to-end tests of the whole stack as a user runs it: `scale0 local` as a real
//! process (with its queue-worker child processes and the `scale0-instance` processes
//! of the local provider), `scale0 load` as the producer, real RabbitMQ and Redis.
//!
//! This library is the harness the tests in `tests/tests/` share:
//!
//! - [`bin`]: the workspace's binaries, next to the test executable (`make test` and
//!   `cargo test --workspace` build them all first);
//! - [`Vhost`]: a RabbitMQ virtual host per test, so two stacks never consume each
//!   other's control events, and connections can be closed for one test only;
//! - [`PrivateRedis`], [`scratch`], [`free_port`]: re-exported from `scale0-testkit`,
//!   the harness every crate's tests share;
//! - [`Stack`]: `scale0 local` in a directory of its own, stopped with SIGTERM;
//! - [`load`]: `scale0 load --json`, returning its report;
//! - [`activation_trials`]: first request at zero → the provider's start call, timed
//!   (the activation test and `cargo bench -p scale0-tests --bench activation`).
//!
//! Tests that need RabbitMQ or Redis fail with a message naming the missing service.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use scale0_testkit::redis::PrivateRedis;
pub use scale0_testkit::{free_port, scratch};
use serde_json::Value;

/// A binary of the workspace, next to the running test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (`make test` does, or \
         `cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// Run a command to completion; panic with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rabbitmqctl(args: &[&str]) -> String {
    run(Command::new("rabbitmqctl").arg("-q").args(args))
}

/// A RabbitMQ virtual host, deleted when dropped.
#[derive(Debug)]
pub struct Vhost {
    pub name: String,
    /// `amqp://guest:guest@127.0.0.1:5672/<vhost>`
    pub url: String,
}

impl Vhost {
    pub fn create(prefix: &str) -> Vhost {
        let name = format!("scale0-e2e-{prefix}-{}", std::process::id());
        assert!(
            std::net::TcpStream::connect("127.0.0.1:5672").is_ok(),
            "RabbitMQ is not answering on 127.0.0.1:5672: run infra/local/services.sh"
        );
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &name])
            .output();
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let url = format!("amqp://guest:guest@127.0.0.1:5672/{name}");
        Vhost { name, url }
    }

    /// Close every client connection to this vhost; returns how many.
    pub fn close_connections(&self) -> usize {
        // The plain listing: its pids are the form `close_connection` takes (the JSON
        // formatter prints `#PID<…>`, which it refuses).
        let listing = rabbitmqctl(&["list_connections", "pid", "vhost", "--no-table-headers"]);
        let mut closed = 0;
        for pid in listing.lines().filter_map(|line| {
            let (pid, vhost) = line.split_once('\t')?;
            (vhost.trim() == self.name).then_some(pid.trim())
        }) {
            let ok = Command::new("rabbitmqctl")
                .args(["-q", "close_connection", pid, "scale0 chaos test"])
                .output()
                .is_ok_and(|o| o.status.success());
            closed += usize::from(ok);
        }
        closed
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
    }
}

/// The shared Redis every test may use (distinct deployment names keep them apart).
pub fn shared_redis_url() -> String {
    assert!(
        std::net::TcpStream::connect("127.0.0.1:6379").is_ok(),
        "Redis is not answering on 127.0.0.1:6379: run infra/local/services.sh"
    );
    "redis://127.0.0.1:6379".into()
}

/// Send a signal with kill(1).
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// `scale0 local` in `dir`, with its own config and state directory.
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Stack {
    /// Start `scale0 local` for `config` (which must set `provider.local.state_dir` to
    /// [`Stack::state_dir_for`]`(dir)`), and wait until it is running.
    pub fn start(
        dir: &Path,
        config: &str,
        amqp_url: &str,
        redis_url: &str,
        extra: &[&str],
    ) -> Stack {
        Self::start_with_env(dir, config, amqp_url, redis_url, extra, &[])
    }

    /// [`Stack::start`] with more environment (`SCALE0_CA_BUNDLE`).
    pub fn start_with_env(
        dir: &Path,
        config: &str,
        amqp_url: &str,
        redis_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Stack {
        let config_path = dir.join("scale0.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let log = dir.join("local.log");
        let child = Command::new(bin("scale0"))
            .arg("local")
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .env("SCALE0_AMQP_URL", amqp_url)
            .env("SCALE0_REDIS_URL", redis_url)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("create the log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scale0 local");
        let stack = Stack {
            dir: dir.to_path_buf(),
            state_dir: Self::state_dir_for(dir),
            log,
            child: Some(child),
        };
        stack.wait_for_log("running;", Duration::from_secs(30));
        stack
    }

    /// The pid of `scale0 local`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn state_dir_for(dir: &Path) -> PathBuf {
        dir.join("state")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "`{needle}` not in the scale0 local log within {within:?}:\n{}",
            self.log_text()
        );
    }

    /// Pids of the queue-worker processes, from their pid files.
    pub fn worker_pids(&self) -> Vec<u32> {
        pid_files(&self.state_dir.join("workers"), "pid")
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
            .collect()
    }

    /// The local provider's pid files of one deployment, parsed.
    pub fn instance_files(&self, deployment: &str) -> Vec<Value> {
        pid_files(&self.state_dir.join(deployment), "json")
            .iter()
            .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
            .collect()
    }

    /// Pids of a deployment's instance processes that are alive.
    pub fn instance_pids(&self, deployment: &str) -> Vec<u32> {
        self.instance_files(deployment)
            .iter()
            .filter_map(|v| v["pid"].as_u64().map(|p| p as u32))
            .filter(|&p| alive(p))
            .collect()
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn stop(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "scale0 local did not stop within {within:?}:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pid_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default()
}

/// `scale0 load <args> --json <file>` against `amqp_url`; returns the report.
pub fn load(dir: &Path, args: &[&str], amqp_url: &str, redis_url: &str) -> Value {
    load_with_env(dir, args, amqp_url, redis_url, &[])
}

/// [`load`] with more environment.
pub fn load_with_env(
    dir: &Path,
    args: &[&str],
    amqp_url: &str,
    redis_url: &str,
    env: &[(&str, &str)],
) -> Value {
    let json = dir.join(format!(
        "load-{}.json",
        chrono::Utc::now().timestamp_millis()
    ));
    let mut child = Command::new(bin("scale0"))
        .arg("load")
        .args(args)
        .arg("--json")
        .arg(&json)
        .env("SCALE0_AMQP_URL", amqp_url)
        .env("SCALE0_REDIS_URL", redis_url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scale0 load");
    let _ = child.wait();
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let raw = std::fs::read(&json)
        .unwrap_or_else(|e| panic!("scale0 load wrote no report ({e}):\n{out}"));
    serde_json::from_slice(&raw).expect("a JSON report")
}

/// A report's count of first replies with `status`.
pub fn status_count(report: &Value, status: &str) -> u64 {
    report["by_status"][status].as_u64().unwrap_or(0)
}

/// Publish one request (no body to speak of) to `deployment` and return when it was
/// handed to the broker.
async fn publish_one(
    channel: &lapin::Channel,
    deployment: &str,
    reply_to: &str,
) -> chrono::DateTime<chrono::Utc> {
    use lapin::BasicProperties;
    use lapin::options::BasicPublishOptions;
    use lapin::types::{AMQPValue, FieldTable, ShortString};
    let mut headers = FieldTable::default();
    let deadline = chrono::Utc::now().timestamp_millis() + 3_000;
    headers.insert("x-scale0-deadline".into(), AMQPValue::LongLongInt(deadline));
    let props = BasicProperties::default()
        .with_reply_to(ShortString::from(reply_to))
        .with_message_id(ShortString::from(format!("act-{deployment}")))
        .with_headers(headers);
    let at = chrono::Utc::now();
    channel
        .basic_publish(
            "scale0.requests".into(),
            deployment.into(),
            BasicPublishOptions::default(),
            br#"{"prompt":"","max_tokens":1}"#,
            props,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    at
}

/// `n` trials of the activation path, each on a deployment of its own that is at zero:
/// publish one request, and measure until the local provider is asked to start an
/// instance (`start_called_at` in its pid file). The tick is a minute, so only the
/// worker's activation event can explain a launch within it. Returns milliseconds.
pub fn activation_trials(n: usize, name: &str) -> Vec<f64> {
    let vhost = Vhost::create(name);
    let redis = shared_redis_url();
    let dir = scratch(name);
    let prefix = format!("act-{}", std::process::id());
    let mut config = format!(
        "[provider.local]\nstate_dir = \"{}\"\n",
        Stack::state_dir_for(&dir).display()
    );
    for i in 0..n {
        config.push_str(&format!(
            r#"
[[deployments]]
name = "{prefix}-{i}"
request_deadline = "60s"
[deployments.policy]
scale_to_zero_grace = "1h"
[[deployments.pools]]
name = "gpu"
max_instances = 1
slots = 1
price_per_hour_usd = 1.0
boot_time = "5m"
"#
        ));
    }
    let mut stack = Stack::start(
        &dir,
        &config,
        &vhost.url,
        &redis,
        &["--tick", "60s", "--workers", "1"],
    );
    // The worker declares its queues when it connects: wait for its first report.
    std::thread::sleep(Duration::from_secs(2));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let latencies = runtime.block_on(async {
        let conn = lapin::Connection::connect(&vhost.url, lapin::ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("a channel");
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let replies = format!("{prefix}.replies");
        channel
            .queue_declare(
                replies.as_str().into(),
                Default::default(),
                Default::default(),
            )
            .await
            .expect("a reply queue");
        let mut out = Vec::new();
        for i in 0..n {
            let deployment = format!("{prefix}-{i}");
            let sent = publish_one(&channel, &deployment, &replies).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            let called = loop {
                let called = stack
                    .instance_files(&deployment)
                    .iter()
                    .find_map(|v| v["start_called_at"].as_str().map(str::to_string));
                if let Some(c) = called {
                    break chrono::DateTime::parse_from_rfc3339(&c).expect("a timestamp");
                }
                assert!(
                    Instant::now() < deadline,
                    "no launch for {deployment}:\n{}",
                    stack.log_text()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            out.push(
                (called.with_timezone(&chrono::Utc) - sent)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0,
            );
        }
        out
    });
    assert_eq!(stack.stop(Duration::from_secs(60)), Some(0));
    latencies
}

/// The value at percentile `p` (0–1) of `v`.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    scale0_core::percentile::of_sorted(&v, p).expect("percentile of no samples")
}
