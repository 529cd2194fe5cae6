//! The local provider with real `scale0-instance` processes: start with the pool's boot
//! delay, ready through the health sweep, found again after a control-plane restart,
//! stopped with SIGTERM (SIGKILL when ignored), and replaced when they vanish.
//!
//! Needs `target/<profile>/scale0-instance`; a test builds it with cargo if missing.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scale0_core::config::LocalProviderSettings;
use scale0_core::contract::InstanceState;
use scale0_core::duration::HumanDuration;
use scale0_functions::provider::Provider;
use scale0_functions::provider::local::{LocalProvider, is_alive};
use scale0_functions::{Clock, scaler};
use serde_json::json;
use support::*;

/// The model server binary next to this test's (`target/<profile>/`).
fn instance_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = dir.join("scale0-instance");
    if !bin.is_file() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "scale0-instance"])
            .status()
            .expect("cargo");
        assert!(status.success(), "cannot build scale0-instance");
    }
    assert!(
        bin.is_file(),
        "scale0-instance not found at {}",
        bin.display()
    );
    bin
}

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scale0-test-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn local_config(d: &str, dir: &std::path::Path, command: &std::path::Path) -> String {
    let pool = one_pool(d, "").replace("boot_time = \"90s\"", "boot_time = \"300ms\"");
    format!(
        "{pool}\n[provider]\nkind = \"local\"\n[provider.local]\nstate_dir = \"{}\"\ninstance_command = \"{}\"\nstop_timeout = \"500ms\"\n",
        dir.display(),
        command.display()
    )
}

#[tokio::test]
async fn local_instances_boot_become_ready_survive_a_restart_and_stop() {
    let d = unique("local");
    let dir = state_dir(&d);
    let cfg = config(&local_config(&d, &dir, &instance_binary()));
    let provider = Arc::new(LocalProvider::new(&cfg.provider.local));
    let deps = deps(cfg.clone(), provider.clone(), depth(&d, 19))
        .await
        .with_clock(Clock::system());

    // A backlog: the scaler asks for one instance and the provider starts it.
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    let id = out.deployments[0].requested[0].clone();
    assert_eq!(out.deployments[0].applied[0].started, [id.as_str()]);
    let r = deps.store.instance(&d, &id).await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Booting);
    let endpoint = r.endpoint.clone().expect("endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    // Booting: the readiness path answers 503 for the 300 ms boot delay, then 200;
    // the tick's sweep marks it ready and records the boot.
    let mut ready = false;
    for n in 0..50 {
        let out = scaler::handle_json(json!({"wake": {"trigger": "tick", "sweep": true}}), &deps)
            .await
            .unwrap();
        if out.deployments[0].sweep.as_ref().unwrap().ready == [id.clone()] {
            ready = true;
            eprintln!("ready after {n} sweeps");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the instance never became ready");
    let boots = deps.store.recent_boots(&d, &["a10g"]).await.unwrap();
    assert!(boots["a10g"][0] >= Duration::from_millis(300), "{boots:?}");

    // A restarted control plane (a new provider) finds the instance again...
    let restarted = LocalProvider::new(&cfg.provider.local);
    let spec = cfg.deployment(&d).unwrap();
    let listed = restarted.list(spec, &spec.pools[0]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].endpoint.as_deref()),
        (id.as_str(), Some(endpoint.as_str()))
    );
    // ... even if Redis lost the registry: the tick's reconcile registers it again.
    deps.store.remove_instance(&d, &id).await.unwrap();
    let out = scaler::handle_json(json!({"wake": {"trigger": "tick", "sweep": true}}), &deps)
        .await
        .unwrap();
    assert_eq!(
        out.deployments[0].reconcile.as_ref().unwrap().adopted,
        [id.as_str()]
    );

    // Stop: SIGTERM, the server exits, the pid file goes.
    let pid_file = restarted.pid_files(&d).remove(0);
    assert!(is_alive(&pid_file));
    let record = deps.store.instance(&d, &id).await.unwrap().unwrap();
    restarted.stop(spec, &record).await.unwrap();
    assert!(!is_alive(&pid_file));
    assert!(restarted.pid_files(&d).is_empty());
    // Stopping it again is fine.
    restarted.stop(spec, &record).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_instance_that_ignores_sigterm_is_killed() {
    let d = unique("stubborn");
    let dir = state_dir(&d);
    std::fs::create_dir_all(&dir).unwrap();
    // A stand-in that announces an address and ignores SIGTERM (ignored signals stay
    // ignored across exec).
    let script = dir.join("stubborn.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ntrap '' TERM\necho 'listening on http://127.0.0.1:9'\nexec sleep 60\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let cfg = config(&local_config(&d, &dir, &script));
    let provider = LocalProvider::new(&LocalProviderSettings {
        stop_timeout: HumanDuration::from_millis(300),
        ..cfg.provider.local.clone()
    });
    let spec = cfg.deployment(&d).unwrap();
    let placeholder = record(&d, "a10g-g1-0", "a10g", InstanceState::Requested);
    let started = provider
        .start(spec, &spec.pools[0], &placeholder)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.endpoint.as_deref(), Some("http://127.0.0.1:9"));
    let pf = provider.pid_files(&d).remove(0);
    assert!(is_alive(&pf));
    let t = std::time::Instant::now();
    provider.stop(spec, &placeholder).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "waited for SIGTERM first"
    );
    assert!(!is_alive(&pf), "SIGKILL after the stop timeout");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_vanished_instance_is_marked_terminated_and_replaced() {
    let d = unique("vanish");
    let dir = state_dir(&d);
    let cfg = config(&local_config(&d, &dir, &instance_binary()));
    let provider = Arc::new(LocalProvider::new(&cfg.provider.local));
    let deps = deps(cfg.clone(), provider.clone(), depth(&d, 19))
        .await
        .with_clock(Clock::system());
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    let first = out.deployments[0].requested[0].clone();
    // The process dies (a crash, an OOM kill).
    let pf = provider.pid_files(&d).remove(0);
    std::process::Command::new("kill")
        .args(["-9", &pf.pid.to_string()])
        .status()
        .unwrap();
    for _ in 0..100 {
        if !is_alive(&pf) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = scaler::handle_json(json!({"wake": {"trigger": "tick", "sweep": true}}), &deps)
        .await
        .unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.reconcile.as_ref().unwrap().gone, [first.as_str()]);
    assert_eq!(run.requested.len(), 1, "replaced: {:?}", run.reasons);
    let second = run.requested[0].clone();
    assert_ne!(first, second);
    // Clean up the replacement.
    let spec = cfg.deployment(&d).unwrap();
    let record = deps.store.instance(&d, &second).await.unwrap().unwrap();
    provider.stop(spec, &record).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
