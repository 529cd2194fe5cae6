//! A `redis-server` of the test's own, on a free port: plain, persistent, or TLS only.
//!
//! Persistent means an append-only file fsynced on every write (`--appendfsync
//! always`), so a SIGKILL loses nothing Redis acknowledged. With `everysec` (the
//! local stack's setting, where a lost second is an acceptable risk) Redis may
//! acknowledge a write up to two seconds before it reaches the file while an fsync is
//! slow; the chaos test, which SIGKILLs Redis under load, saw exactly that as a
//! request answered twice (1 of 1,000: its `done` record was acknowledged, then lost).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::Reaper;
use crate::tls::Certificates;

/// Killed when dropped, with its data directory if it has one.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    tls: Option<(Certificates, String)>,
    /// The append-only file's directory, when it keeps one.
    dir: Option<PathBuf>,
    child: Option<Child>,
    reaper: Reaper,
}

impl PrivateRedis {
    /// Plain TCP on 127.0.0.1.
    /// Plain TCP on 127.0.0.1; keeps nothing on disk.
    pub fn start() -> PrivateRedis {
        Self::launch(None, false)
    }

    /// Plain TCP, with an append-only file fsynced on every write: [`restart`]
    /// (SIGKILL) keeps everything it acknowledged.
    ///
    /// [`restart`]: PrivateRedis::restart
    pub fn start_persistent() -> PrivateRedis {
        Self::launch(None, true)
    }

    /// TLS only (`--port 0 --tls-port`), with `certs`' server certificate and the
    /// password `password`. Debian's redis-server 7.0 is built with TLS.
    pub fn start_tls(certs: &Certificates, password: &str) -> PrivateRedis {
        Self::launch(Some((certs.clone(), password.to_string())), false)
    }

    fn launch(tls: Option<(Certificates, String)>, persistent: bool) -> PrivateRedis {
        let port = crate::free_port();
        let mut r = PrivateRedis {
            port,
            tls,
            dir: persistent.then(|| crate::scratch(&format!("redis-{port}"))),
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
        cmd.args(["--bind", "127.0.0.1", "--save", ""]);
        match &self.dir {
            None => cmd.args(["--appendonly", "no"]),
            Some(dir) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
        };
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

    /// SIGKILL it and start it again on the same port: a persistent one reloads its
    /// append-only file, any other comes back empty.
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
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
