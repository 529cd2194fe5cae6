//! The health sweep, run by the scaler on every tick before it observes.
//!
//! It probes the readiness path of every instance that has an endpoint and is booting
//! or ready:
//!
//! - a booting instance that answers 200 becomes `ready` ([`Store::mark_ready`], which
//!   also records the boot duration for the pre-warm lead time). The queue worker may
//!   mark instances ready too, through the same guarded transition; whichever applies
//!   it records the boot, once.
//! - a ready instance that fails (no answer within the probe timeout, or not 200)
//!   gets one more consecutive failure in the registry; `decide` replaces it after
//!   `unhealthy_after_failures`. A ready instance that answers 200 ends its run of
//!   failures ("consecutive failed health checks or dispatches": a success of either
//!   kind ends the run; the worker reports repeated dispatch failures with an
//!   `instance-failed` control event, which marks the instance unhealthy directly).
//!
//! Boot timeouts need no probe: `decide` replaces instances booting longer than
//! `boot_timeout` from the registry alone.
//!
//! [`Store::mark_ready`]: scale0_state::Store::mark_ready

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use scale0_core::config::Deployment;
use scale0_core::contract::InstanceState;
use scale0_state::registry::Transition;
use serde::Serialize;

use crate::{Deps, Result};

/// What a sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub probed: u32,
    /// Booting instances that answered and are now ready.
    pub ready: Vec<String>,
    /// Ready instances that failed, with their consecutive failures.
    pub failed: Vec<(String, u32)>,
    /// Ready instances whose run of failures ended.
    pub recovered: Vec<String>,
}

/// Whether `url` answers 200 within `timeout`.
pub async fn probe(http: &reqwest::Client, url: &str, timeout: std::time::Duration) -> bool {
    matches!(
        http.get(url).timeout(timeout).send().await,
        Ok(r) if r.status() == reqwest::StatusCode::OK
    )
}

pub async fn sweep(deps: &Deps, spec: &Deployment, now: DateTime<Utc>) -> Result<SweepReport> {
    let d = spec.name.as_str();
    let targets: Vec<_> = deps
        .store
        .instances(d)
        .await?
        .into_iter()
        .filter(|r| matches!(r.state, InstanceState::Booting | InstanceState::Ready))
        .filter_map(|r| {
            let url = format!(
                "{}{}",
                r.endpoint.as_deref()?.trim_end_matches('/'),
                spec.readiness_path
            );
            Some((r, url))
        })
        .collect();
    let results = join_all(
        targets
            .iter()
            .map(|(_, url)| probe(&deps.http, url, deps.settings.probe_timeout)),
    )
    .await;

    let mut report = SweepReport {
        probed: targets.len() as u32,
        ..Default::default()
    };
    for ((record, _), ok) in targets.iter().zip(results) {
        match (record.state, ok) {
            (InstanceState::Booting, true) => {
                if let Transition::Applied(_) =
                    deps.store.mark_ready(d, &record.id, now, None).await?
                {
                    tracing::info!(deployment = d, instance = %record.id, "ready");
                    report.ready.push(record.id.clone());
                }
            }
            (InstanceState::Ready, true) if record.failures > 0 => {
                deps.store.clear_failures(d, &record.id).await?;
                report.recovered.push(record.id.clone());
            }
            (InstanceState::Ready, false) => {
                if let Some(r) = deps.store.record_failure(d, &record.id).await? {
                    tracing::warn!(deployment = d, instance = %r.id, failures = r.failures, "readiness probe failed");
                    report.failed.push((r.id, r.failures));
                }
            }
            _ => {}
        }
    }
    Ok(report)
}
