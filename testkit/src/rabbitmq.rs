//! A private RabbitMQ node with a TLS listener only, for the tests that need TLS.
//!
//! The broker on 5672 is everyone's and stays as it is: this node has its own name
//! (`scale0-test-<pid>-<port>@localhost`), AMQPS and distribution ports, config,
//! data and log directories, no plugins, and an empty env file instead of
//! `/etc/rabbitmq/rabbitmq-env.conf`. It takes about 11 s to start on two cores, so
//! a test should start one and use it for everything it checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::Reaper;
use crate::tls::Certificates;

/// Where Debian installs the server's own start script (the `/usr/sbin` wrapper
/// switches to the `rabbitmq` user, losing the environment that makes the node
/// private).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Stopped (with everything in it) when dropped.
#[derive(Debug)]
pub struct PrivateRabbit {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    reaper: Reaper,
}

impl PrivateRabbit {
    /// Start a node in `dir` whose only listener is AMQPS on a free port with
    /// `certs`' server certificate, and wait until it accepts connections.
    pub fn start_tls(dir: &Path, certs: &Certificates) -> PrivateRabbit {
        let port = crate::free_port();
        let dist_port = crate::free_port();
        std::fs::create_dir_all(dir).expect("a node directory");
        let file = |name: &str| dir.join(name);
        std::fs::write(
            file("rabbitmq.conf"),
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = {port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                certs.ca.display(),
                certs.server_cert.display(),
                certs.server_key.display()
            ),
        )
        .expect("write rabbitmq.conf");
        std::fs::write(file("enabled_plugins"), "[].\n").expect("write enabled_plugins");
        std::fs::write(file("rabbitmq-env.conf"), "").expect("write the env file");
        let reaper = Reaper::new();
        let node = format!("scale0-test-{}-{port}@localhost", std::process::id());
        let child = reaper
            .command(SERVER)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", file("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", file("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", file("mnesia"))
            .env("RABBITMQ_LOG_BASE", file("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", file("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", file("node.pid"))
            .env("ERL_CRASH_DUMP", file("erl_crash.dump"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .current_dir(dir)
            .stdout(std::fs::File::create(file("node.log")).expect("create node.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{SERVER} (RabbitMQ, from infra/local/services.sh): {e}"));
        let mut rabbit = PrivateRabbit {
            port,
            dir: dir.to_path_buf(),
            child: Some(child),
            reaper,
        };
        rabbit.wait_ready(certs);
        rabbit
    }

    /// `amqps://guest:guest@localhost:<port>/%2f` (guest may log in over loopback).
    pub fn url(&self) -> String {
        format!("amqps://guest:guest@localhost:{}/%2f", self.port)
    }

    /// Ready when a TLS handshake verifies against the CA and the broker speaks AMQP.
    fn wait_ready(&mut self, certs: &Certificates) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = self
                .reaper
                .command("openssl")
                .args(["s_client", "-connect", &format!("127.0.0.1:{}", self.port)])
                .arg("-CAfile")
                .arg(&certs.ca)
                .stdin(Stdio::null())
                .output();
            if out
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Verify return code: 0"))
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "the private RabbitMQ node exited ({status}):\n{}",
                    std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "the private RabbitMQ node did not listen on {} within 60 s:\n{}",
            self.port,
            std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
        );
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        // The reaper kills the node's script, its Erlang VM and the VM's helpers.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
