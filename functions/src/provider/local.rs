//! The local provider: each instance is a `scale0-instance` process on this machine.
//!
//! - **start**: runs the model server with the pool's boot delay and slots and the
//!   deployment's paths (`--listen 127.0.0.1:0`, so the OS picks the port), in a
//!   process group of its own so a Ctrl-C to the control plane does not reach it,
//!   and reads `listening on http://…` from its stdout to learn the endpoint. The
//!   instance keeps the id of the placeholder it was started for.
//! - **a restart of the control plane** finds its instances again through the state
//!   directory: one `<deployment>/<id>.json` per instance with its pid, its start time
//!   in clock ticks since boot (`/proc/<pid>/stat` field 22, so a reused pid is not
//!   mistaken for it) and its endpoint. [`Provider::list`] returns those whose process
//!   is alive and removes the files of those that are not.
//! - **stop**: SIGTERM (the server finishes in-flight requests and exits), SIGKILL
//!   after `stop_timeout`.
//!
//! Linux only (it reads `/proc`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use scale0_core::config::{Deployment, LocalProviderSettings, Pool};
use scale0_core::contract::InstanceRecord;
use scale0_state::lifecycle::PendingLifecycleAction;
use serde::{Deserialize, Serialize};

use super::{
    Provider, ProviderError, ProviderErrorKind, ProviderInstance, ProviderResult, ProviderStatus,
    Started,
};

/// How long a starting model server may take to print its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the state directory remembers of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidFile {
    pub id: String,
    pub deployment: String,
    pub pool: String,
    pub pid: u32,
    /// Process start time, clock ticks after boot.
    pub start_ticks: u64,
    pub endpoint: String,
    pub launched_at: DateTime<Utc>,
    /// When the provider was asked to start it (the end of the activation path the
    /// end-to-end tests time).
    #[serde(default)]
    pub start_called_at: Option<DateTime<Utc>>,
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    settings: LocalProviderSettings,
    state_dir: PathBuf,
    command: PathBuf,
}

fn fatal(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Fatal, e.to_string())
}

impl LocalProvider {
    pub fn new(settings: &LocalProviderSettings) -> Self {
        let state_dir = settings
            .state_dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("scale0-local"));
        LocalProvider {
            command: resolve_command(&settings.instance_command),
            settings: settings.clone(),
            state_dir,
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The model server binary this provider runs.
    pub fn command(&self) -> &Path {
        &self.command
    }

    fn dir(&self, deployment: &str) -> PathBuf {
        self.state_dir.join(deployment)
    }

    fn pid_path(&self, deployment: &str, id: &str) -> PathBuf {
        self.dir(deployment).join(format!("{id}.json"))
    }

    /// Every instance recorded for `deployment`, alive or not.
    pub fn pid_files(&self, deployment: &str) -> Vec<PidFile> {
        let Ok(entries) = std::fs::read_dir(self.dir(deployment)) else {
            return Vec::new();
        };
        let mut out: Vec<PidFile> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|raw| serde_json::from_slice(&raw).ok())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    async fn start_instance(
        &self,
        spec: &Deployment,
        pool: &Pool,
        id: &str,
        launched_at: DateTime<Utc>,
    ) -> ProviderResult<Started> {
        let start_called_at = Utc::now();
        let dir = self.dir(&spec.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| fatal(format!("cannot create {}: {e}", dir.display())))?;
        let out_path = dir.join(format!("{id}.out"));
        let log_path = dir.join(format!("{id}.log"));
        let out = std::fs::File::create(&out_path).map_err(fatal)?;
        let log = std::fs::File::create(&log_path).map_err(fatal)?;
        let mut cmd = tokio::process::Command::new(&self.command);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--id")
            .arg(id)
            .arg("--boot-delay")
            .arg(pool.boot_time.to_string())
            .arg("--slots")
            .arg(pool.slots.to_string())
            .arg("--readiness-path")
            .arg(&spec.readiness_path)
            .arg("--inference-path")
            .arg(&spec.inference_path)
            .args(&pool.instance_args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| {
            fatal(format!(
                "cannot run {} (set provider.local.instance_command): {e}",
                self.command.display()
            ))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| fatal("the instance exited at once"))?;
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        let endpoint = loop {
            if let Some(addr) = std::fs::read_to_string(&out_path).ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
            }) {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(fatal(format!(
                    "{} exited with {status} before listening: {}",
                    self.command.display(),
                    log.trim()
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = signal(pid, libc::SIGKILL);
                return Err(ProviderError::new(
                    ProviderErrorKind::Transient,
                    format!("{id} did not print its address within {LISTEN_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // Dropping the handle neither kills nor leaks the child: tokio reaps it in the
        // background if it exits while this process lives.
        drop(child);
        let start_ticks = proc_stat(pid).map(|s| s.start_ticks).unwrap_or_default();
        let record = PidFile {
            id: id.to_string(),
            deployment: spec.name.clone(),
            pool: pool.name.clone(),
            pid,
            start_ticks,
            endpoint: endpoint.clone(),
            launched_at,
            start_called_at: Some(start_called_at),
        };
        let path = self.pid_path(&spec.name, id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&record).map_err(fatal)?)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| fatal(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(instance = id, pid, %endpoint, "started local instance");
        Ok(Started {
            id: id.to_string(),
            endpoint: Some(endpoint),
        })
    }

    async fn stop_instance(&self, deployment: &str, id: &str) -> ProviderResult<()> {
        let path = self.pid_path(deployment, id);
        let Some(pf) = std::fs::read(&path)
            .ok()
            .and_then(|raw| serde_json::from_slice::<PidFile>(&raw).ok())
        else {
            return Ok(()); // never started here, or already stopped
        };
        if is_alive(&pf) {
            let _ = signal(pf.pid, libc::SIGTERM);
            let deadline = tokio::time::Instant::now() + self.settings.stop_timeout.0;
            while is_alive(&pf) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if is_alive(&pf) {
                tracing::warn!(
                    instance = id,
                    pid = pf.pid,
                    "no exit after SIGTERM; SIGKILL"
                );
                let _ = signal(pf.pid, libc::SIGKILL);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while is_alive(&pf) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        for ext in ["json", "out", "log"] {
            let _ = std::fs::remove_file(self.dir(deployment).join(format!("{id}.{ext}")));
        }
        tracing::info!(instance = id, pid = pf.pid, "stopped local instance");
        Ok(())
    }
}

/// A bare name is looked for next to the running binary (and its parent directory,
/// where cargo puts binaries when tests run from `deps/`), then on `PATH`.
fn resolve_command(command: &str) -> PathBuf {
    if command.contains('/') {
        return PathBuf::from(command);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(command);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(command)
}

/// The parts of `/proc/<pid>/stat` that identify a live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_ticks: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&raw)
}

/// Field 2 (the command) is in parentheses and may hold spaces, so fields are counted
/// after its closing parenthesis: state is field 3, start time field 22.
fn parse_stat(raw: &str) -> Option<ProcStat> {
    let rest = &raw[raw.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Alive and still the process that was started (not a zombie, not a reused pid).
pub fn is_alive(pf: &PidFile) -> bool {
    proc_stat(pf.pid).is_some_and(|s| {
        !matches!(s.state, 'Z' | 'X' | 'x')
            && (pf.start_ticks == 0 || s.start_ticks == pf.start_ticks)
    })
}

/// Send `sig` to process `pid` (also used by `scale0 local` for its worker processes).
/// Callers check the pid is still the process they mean (here: against its recorded
/// start time) before signalling it.
#[allow(unsafe_code)]
pub fn signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Provider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn launches_each(&self) -> bool {
        true
    }

    fn list<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
    ) -> BoxFuture<'a, ProviderResult<Vec<ProviderInstance>>> {
        let mut out = Vec::new();
        for pf in self.pid_files(&spec.name) {
            if pf.pool != pool.name {
                continue;
            }
            if is_alive(&pf) {
                out.push(ProviderInstance {
                    id: pf.id.clone(),
                    status: ProviderStatus::Running,
                    endpoint: Some(pf.endpoint.clone()),
                    launched_at: Some(pf.launched_at),
                });
            } else {
                tracing::info!(instance = %pf.id, pid = pf.pid, "local instance is gone");
                for ext in ["json", "out"] {
                    let _ =
                        std::fs::remove_file(self.dir(&spec.name).join(format!("{}.{ext}", pf.id)));
                }
            }
        }
        Box::pin(async move { Ok(out) })
    }

    fn start<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        placeholder: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<Option<Started>>> {
        Box::pin(async move {
            self.start_instance(spec, pool, &placeholder.id, placeholder.launched_at)
                .await
                .map(Some)
        })
    }

    fn ensure_count<'a>(
        &'a self,
        _spec: &'a Deployment,
        _pool: &'a Pool,
        wanted: u32,
    ) -> BoxFuture<'a, ProviderResult<u32>> {
        Box::pin(async move { Ok(wanted) })
    }

    fn stop<'a>(
        &'a self,
        spec: &'a Deployment,
        instance: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(self.stop_instance(&spec.name, &instance.id))
    }

    fn complete_lifecycle_action<'a>(
        &'a self,
        _action: &'a PendingLifecycleAction,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn endpoint_for(&self, _instance_id: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let raw = "4242 (scale0 inst) S 1 4242 4242 0 -1 4194560 300 0 0 0 1 2 0 0 20 0 3 0 987654 12345678 900";
        assert_eq!(
            parse_stat(raw),
            Some(ProcStat {
                state: 'S',
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let now = proc_stat(me).expect("own /proc entry");
        let pf = |start_ticks| PidFile {
            id: "x".into(),
            deployment: "d".into(),
            pool: "p".into(),
            pid: me,
            start_ticks,
            endpoint: String::new(),
            launched_at: Utc::now(),
            start_called_at: None,
        };
        assert!(is_alive(&pf(now.start_ticks)));
        assert!(!is_alive(&pf(now.start_ticks + 1)));
    }
}
