//! Processes a test starts, all reaped.
//!
//! A process started with [`Reaper::command`] carries [`OWNER_ENV`] in its
//! environment, and its descendants inherit it, so the reaper finds every one of
//! them in `/proc` — also the ones that were orphaned (a `scale0-instance` whose
//! `scale0 local` was SIGKILLed runs on under init, in a process group of its own).
//! Dropping the [`Reaper`] kills them all; unwinding from a failed assertion drops it
//! too. The variable names the test process, so when a test process dies before its
//! reapers drop, the next [`Reaper::new`] in any test kills what it left behind.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `<test process id>-<reaper number>`, in every process a reaper starts.
pub const OWNER_ENV: &str = "SCALE0_TESTKIT_OWNER";

/// Kills every process it started, and their descendants, when dropped.
#[derive(Debug)]
pub struct Reaper {
    token: String,
}

impl Reaper {
    pub fn new() -> Reaper {
        static N: AtomicU32 = AtomicU32::new(0);
        reap_orphans_of_dead_tests();
        Reaper {
            token: format!(
                "{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// A command whose process, and everything it starts, this reaper will kill.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env(OWNER_ENV, &self.token);
        cmd
    }

    /// The same, for tokio.
    pub fn tokio_command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env(OWNER_ENV, &self.token).kill_on_drop(true);
        cmd
    }

    /// Pids of the live processes this reaper owns.
    pub fn pids(&self) -> Vec<u32> {
        owned_by(|token| token == self.token)
    }
}

impl Default for Reaper {
    fn default() -> Self {
        Reaper::new()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        kill_all(|token| token == self.token);
    }
}

/// SIGKILL every owned process until none is left (a dying parent may still be
/// starting a child), within a few seconds.
fn kill_all(owned: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = owned_by(&owned);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reap_orphans_of_dead_tests() {
    kill_all(|token| {
        let owner = token.split('-').next().and_then(|p| p.parse::<u32>().ok());
        owner.is_some_and(|p| !alive(p))
    });
}

/// Live (not zombie) processes whose environment holds an owner token `owned` accepts.
fn owned_by(owned: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let prefix = format!("{OWNER_ENV}=");
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0).any(|var| {
                    std::str::from_utf8(var)
                        .ok()
                        .and_then(|v| v.strip_prefix(&prefix))
                        .is_some_and(&owned)
                })
            })
        })
        .collect()
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Send a signal with kill(1).
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}
