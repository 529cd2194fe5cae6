//! Making the provider match the registry.
//!
//! The registry in Redis is the control plane's intent: a committed decision has
//! already written its `requested` placeholders and marked its drains. Applying is
//! converging the provider towards it, computed from what the registry holds *now*
//! rather than from the decision's deltas, so a repeated apply, a concurrent one, or
//! one after a crash does the right thing:
//!
//! - **stop** each instance the decision terminates: a placeholder that never launched
//!   is just marked terminated; an instance with a pending terminating lifecycle action
//!   has the action completed (the group is already terminating it); any other is
//!   stopped through the provider. Stopping something already gone succeeds. An
//!   instance whose stop failed stays `draining`, and the next decision terminates it
//!   again.
//! - **launch** each pool's placeholders. A per-instance provider starts one instance
//!   per placeholder, after claiming it with a guarded `requested → booting` transition,
//!   so two applies never start one placeholder twice. A by-count provider gets the
//!   pool's registry count as its desired capacity (absolute, so repeating it is a
//!   no-op).
//! - **unavailable pools**: a typed provider error (throttling, insufficient capacity,
//!   quota, a missing group) marks the pool unavailable for
//!   `provider.unavailable_backoff` and drops its unlaunched placeholders, so the next
//!   decision, which the scaler runs at once, launches in another pool.
//!
//! [`reconcile`] goes the other way, on the tick: it registers instances the provider
//! runs but the registry does not know (a lifecycle event that never arrived, a
//! control plane restarted after Redis lost its data) and marks terminated the ones
//! that vanished (a crashed process, a reclaimed Spot instance).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use scale0_core::config::{Deployment, Pool};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_core::policy::Decision;
use scale0_state::registry::{Adopted, Transition};
use serde::Serialize;

use crate::provider::{ProviderError, ProviderStatus};
use crate::{Deps, Result};

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Instances started (per-instance providers).
    pub started: Vec<String>,
    /// Desired count set per pool (by-count providers).
    pub counts: BTreeMap<String, u32>,
    pub stopped: Vec<String>,
    /// Instances whose terminating lifecycle action was completed.
    pub lifecycle_completed: Vec<String>,
    /// Pools marked unavailable, with why.
    pub unavailable: BTreeMap<String, String>,
    /// Placeholders dropped because their pool cannot launch them.
    pub dropped: Vec<String>,
    /// Failures that leave things for the next run to finish.
    pub errors: Vec<String>,
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReconcileReport {
    /// Instances the provider runs that were registered (`id ← placeholder`).
    pub adopted: Vec<String>,
    /// Registered instances the provider no longer runs.
    pub gone: Vec<String>,
    /// Lifecycle actions completed on retry.
    pub lifecycle_completed: Vec<String>,
    pub purged: u32,
    pub errors: Vec<String>,
}

async fn mark_unavailable(
    deps: &Deps,
    spec: &Deployment,
    pool: &str,
    error: &ProviderError,
    now: DateTime<Utc>,
    report: &mut ApplyReport,
) -> Result<()> {
    let until = now + deps.config.provider.unavailable_backoff.delta();
    deps.store
        .set_pool_unavailable(&spec.name, pool, until)
        .await?;
    tracing::warn!(deployment = %spec.name, pool, %until, %error, "pool unavailable");
    report
        .unavailable
        .insert(pool.to_string(), error.to_string());
    Ok(())
}

/// Apply a committed decision. See the module doc.
pub async fn apply(
    deps: &Deps,
    spec: &Deployment,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<ApplyReport> {
    let mut report = ApplyReport::default();
    let stops = join_all(
        decision
            .terminate
            .iter()
            .map(|id| stop_one(deps, spec, id, now)),
    )
    .await;
    for stop in stops {
        match stop? {
            StopResult::Nothing => {}
            StopResult::Stopped(id) => report.stopped.push(id),
            StopResult::Completed(id) => report.lifecycle_completed.push(id),
            StopResult::Failed(e) => report.errors.push(e),
        }
    }
    for pool in &spec.pools {
        launch_pool(deps, spec, pool, now, &mut report).await?;
    }
    Ok(report)
}

enum StopResult {
    Nothing,
    Stopped(String),
    Completed(String),
    Failed(String),
}

async fn stop_one(
    deps: &Deps,
    spec: &Deployment,
    id: &str,
    now: DateTime<Utc>,
) -> Result<StopResult> {
    let d = spec.name.as_str();
    let Some(record) = deps.store.instance(d, id).await? else {
        return Ok(StopResult::Nothing);
    };
    match record.state {
        InstanceState::Terminated => return Ok(StopResult::Nothing),
        InstanceState::Requested => {
            // Never launched: for a by-count provider the next count leaves it out.
            deps.store.mark_terminated(d, id, now).await?;
            return Ok(StopResult::Stopped(id.to_string()));
        }
        _ => {}
    }
    let action = deps.store.lifecycle_action(d, id).await?;
    if let Some(mut action) = action.filter(|a| a.transition.ends_with("TERMINATING")) {
        return match deps.provider.complete_lifecycle_action(&action).await {
            Ok(()) => {
                deps.store.remove_lifecycle_action(d, id).await?;
                deps.store.mark_terminated(d, id, now).await?;
                Ok(StopResult::Completed(id.to_string()))
            }
            Err(e) => {
                action.last_error = Some(e.to_string());
                deps.store.put_lifecycle_action(d, &action).await?;
                Ok(StopResult::Failed(format!(
                    "complete lifecycle action of {id}: {e}"
                )))
            }
        };
    }
    match deps.provider.stop(spec, &record).await {
        Ok(()) => {
            deps.store.mark_terminated(d, id, now).await?;
            // A launching action still waiting for completion is moot now.
            deps.store.remove_lifecycle_action(d, id).await?;
            Ok(StopResult::Stopped(id.to_string()))
        }
        Err(e) => Ok(StopResult::Failed(format!("stop {id}: {e}"))),
    }
}

async fn launch_pool(
    deps: &Deps,
    spec: &Deployment,
    pool: &Pool,
    now: DateTime<Utc>,
    report: &mut ApplyReport,
) -> Result<()> {
    let d = spec.name.as_str();
    let in_pool = |all: Vec<InstanceRecord>| -> Vec<InstanceRecord> {
        all.into_iter().filter(|r| r.pool == pool.name).collect()
    };
    let records = in_pool(deps.store.instances(d).await?);
    let placeholders: Vec<&InstanceRecord> = records
        .iter()
        .filter(|r| r.state == InstanceState::Requested)
        .collect();

    if deps.provider.launches_each() && !placeholders.is_empty() {
        let results = join_all(
            placeholders
                .iter()
                .map(|ph| start_one(deps, spec, pool, ph, now)),
        )
        .await;
        let mut failure: Option<ProviderError> = None;
        for r in results {
            match r? {
                Some(Ok(id)) => report.started.push(id),
                Some(Err((id, e))) => {
                    report.errors.push(format!("start {id}: {e}"));
                    report.dropped.push(id);
                    if e.kind.makes_pool_unavailable() {
                        failure = Some(e);
                    }
                }
                None => {}
            }
        }
        if let Some(e) = failure {
            mark_unavailable(deps, spec, &pool.name, &e, now, report).await?;
        }
    }

    // The group runs every instance the registry has for the pool that is not gone,
    // except those the group is already terminating (a pending terminating lifecycle
    // action): the group no longer counts them, and counting them would start a
    // second replacement for each.
    let records = in_pool(deps.store.instances(d).await?);
    let leaving: BTreeSet<String> = deps
        .store
        .lifecycle_actions(d)
        .await?
        .into_iter()
        .filter(|a| a.transition.ends_with("TERMINATING"))
        .map(|a| a.instance_id)
        .collect();
    let wanted = records
        .iter()
        .filter(|r| r.state != InstanceState::Terminated && !leaving.contains(&r.id))
        .count() as u32;
    match deps.provider.ensure_count(spec, pool, wanted).await {
        Ok(granted) => {
            if !deps.provider.launches_each() {
                report.counts.insert(pool.name.clone(), granted);
            }
            if granted < wanted {
                let short = wanted - granted;
                let e = ProviderError::new(
                    crate::provider::ProviderErrorKind::Quota,
                    format!(
                        "the group's max size allows {granted} of the {wanted} instances wanted"
                    ),
                );
                drop_placeholders(deps, spec, &records, short as usize, now, report).await?;
                mark_unavailable(deps, spec, &pool.name, &e, now, report).await?;
            }
        }
        Err(e) => {
            report
                .errors
                .push(format!("set count of {} to {wanted}: {e}", pool.name));
            if e.kind.makes_pool_unavailable() {
                drop_placeholders(deps, spec, &records, usize::MAX, now, report).await?;
                mark_unavailable(deps, spec, &pool.name, &e, now, report).await?;
            }
        }
    }
    Ok(())
}

/// Claim a placeholder and start its instance. `None` when another run claimed it.
async fn start_one(
    deps: &Deps,
    spec: &Deployment,
    pool: &Pool,
    placeholder: &InstanceRecord,
    now: DateTime<Utc>,
) -> Result<Option<std::result::Result<String, (String, ProviderError)>>> {
    let d = spec.name.as_str();
    let claimed = deps
        .store
        .transition(
            d,
            &placeholder.id,
            &[InstanceState::Requested],
            InstanceState::Booting,
            now,
            None,
        )
        .await?;
    if !matches!(claimed, Transition::Applied(_)) {
        return Ok(None);
    }
    match deps.provider.start(spec, pool, placeholder).await {
        Ok(Some(started)) => {
            deps.store
                .transition(
                    d,
                    &placeholder.id,
                    &[InstanceState::Booting],
                    InstanceState::Booting,
                    now,
                    started.endpoint.as_deref(),
                )
                .await?;
            Ok(Some(Ok(started.id)))
        }
        Ok(None) => Ok(Some(Ok(placeholder.id.clone()))),
        Err(e) => {
            deps.store.mark_terminated(d, &placeholder.id, now).await?;
            Ok(Some(Err((placeholder.id.clone(), e))))
        }
    }
}

/// Mark up to `n` unlaunched placeholders (newest first) terminated.
async fn drop_placeholders(
    deps: &Deps,
    spec: &Deployment,
    records: &[InstanceRecord],
    n: usize,
    now: DateTime<Utc>,
    report: &mut ApplyReport,
) -> Result<()> {
    let mut placeholders: Vec<&InstanceRecord> = records
        .iter()
        .filter(|r| r.state == InstanceState::Requested)
        .collect();
    placeholders.sort_by(|a, b| b.launched_at.cmp(&a.launched_at).then(b.id.cmp(&a.id)));
    for ph in placeholders.into_iter().take(n) {
        if let Transition::Applied(_) = deps.store.mark_terminated(&spec.name, &ph.id, now).await? {
            report.dropped.push(ph.id.clone());
        }
    }
    Ok(())
}

/// Bring the registry in line with what the provider runs. See the module doc.
pub async fn reconcile(
    deps: &Deps,
    spec: &Deployment,
    now: DateTime<Utc>,
) -> Result<ReconcileReport> {
    let d = spec.name.as_str();
    let mut report = ReconcileReport::default();
    let registry = deps.store.instances(d).await?;
    for pool in &spec.pools {
        let listed = match deps.provider.list(spec, pool).await {
            Ok(l) => l,
            Err(e) => {
                report.errors.push(format!("list {}: {e}", pool.name));
                continue;
            }
        };
        let known: BTreeSet<&str> = registry.iter().map(|r| r.id.as_str()).collect();
        for pi in &listed {
            if pi.status == ProviderStatus::Leaving || known.contains(pi.id.as_str()) {
                continue;
            }
            let record = InstanceRecord {
                id: pi.id.clone(),
                deployment: d.to_string(),
                pool: pool.name.clone(),
                state: InstanceState::Booting,
                endpoint: pi.endpoint.clone(),
                launched_at: pi.launched_at.unwrap_or(now),
                ready_at: None,
                draining_since: None,
                failures: 0,
                reclaim_at: None,
            };
            match deps.store.adopt_instance(&record).await? {
                Adopted::Replaced { placeholder, .. } => {
                    report.adopted.push(format!("{} ← {placeholder}", pi.id));
                }
                Adopted::Added(_) => report.adopted.push(pi.id.clone()),
                Adopted::Existing(_) => {}
            }
        }
        let running: BTreeSet<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        for r in registry.iter().filter(|r| r.pool == pool.name) {
            // A claimed record without an endpoint may be starting right now in
            // another run; boot timeout takes care of it if that run died.
            let started = r.endpoint.is_some();
            if started
                && !matches!(
                    r.state,
                    InstanceState::Requested | InstanceState::Terminated
                )
                && !running.contains(r.id.as_str())
                && let Transition::Applied(_) = deps.store.mark_terminated(d, &r.id, now).await?
            {
                tracing::warn!(deployment = d, instance = %r.id, "instance vanished from the provider");
                report.gone.push(r.id.clone());
            }
        }
    }
    // Lifecycle actions whose completion failed earlier: launching ones are retried
    // here; terminating ones when their instance is stopped, or here once it is gone.
    let registry = deps.store.instances(d).await?;
    for action in deps.store.lifecycle_actions(d).await? {
        let gone = registry
            .iter()
            .find(|r| r.id == action.instance_id)
            .is_none_or(|r| r.state == InstanceState::Terminated);
        if action.transition.ends_with("LAUNCHING") || gone {
            match deps.provider.complete_lifecycle_action(&action).await {
                Ok(()) => {
                    deps.store
                        .remove_lifecycle_action(d, &action.instance_id)
                        .await?;
                    report.lifecycle_completed.push(action.instance_id.clone());
                }
                Err(e) => report.errors.push(format!(
                    "complete lifecycle action of {}: {e}",
                    action.instance_id
                )),
            }
        }
    }
    report.purged = deps
        .store
        .purge_terminated(
            d,
            now - chrono::TimeDelta::from_std(deps.settings.keep_terminated).unwrap_or_default(),
        )
        .await?;
    Ok(report)
}
