//! A `redis-server` of the test's own, on a free port: plain, or TLS only.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::Reaper;
use crate::tls::Certificates;

/// Killed (with everything it held: it keeps nothing on disk) when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    tls: Option<(Certificates, String)>,
    child: Option<Child>,
    reaper: Reaper,
}

impl PrivateRedis {
    /// Plain TCP on 127.0.0.1.
    pub fn start() -> PrivateRedis {
        Self::launch(None)
    }

    /// TLS only (`--port 0 --tls-port`), with `certs`' server certificate and the
    /// password `password`. Debian's redis-server 7.0 is built with TLS.
    pub fn start_tls(certs: &Certificates, password: &str) -> PrivateRedis {
        Self::launch(Some((certs.clone(), password.to_string())))
    }

    fn launch(tls: Option<(Certificates, String)>) -> PrivateRedis {
        let mut r = PrivateRedis {
            port: crate::free_port(),
            tls,
            child: None,
            reaper: Reaper::new(),
        };
        r.spawn();
        r
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://:<password>@localhost:<port>`.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some((_, password)) => format!("rediss://:{password}@localhost:{}", self.port),
        }
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = self.reaper.command("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        let mut ping = self.reaper.command("redis-cli");
        ping.args(["-p", &port]);
        match &self.tls {
            None => {
                cmd.args(["--port", &port]);
            }
            Some((certs, password)) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&certs.server_cert)
                .arg("--tls-key-file")
                .arg(&certs.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&certs.ca)
                .args(["--requirepass", password]);
                ping.args(["--tls", "--cacert"]).arg(&certs.ca).args([
                    "-a",
                    password,
                    "--no-auth-warning",
                ]);
            }
        }
        ping.arg("ping");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (installed by infra/local/services.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let answer = ping.output();
            if answer.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("private redis-server on port {} did not answer", self.port);
    }

    /// Kill it (everything in it is lost) and start it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
