//! Spot events: EC2's two-minute interruption warning and its rebalance
//! recommendation, through EventBridge to the lifecycle function.
//!
//! Either event drains the instance at once, so it no longer counts as capacity, and
//! wakes the scaler in-process: the replacement is launched now, not at the next tick,
//! in the cheapest pool that can launch (the same Spot pool, another, or on-demand when
//! the Spot pools are short: a provider capacity error makes a pool unavailable and the
//! scaler decides again at once).
//!
//! A ready instance warned of its interruption keeps its reclaim time (the event's time
//! plus the two minutes) and goes on taking requests until 30 s before it
//! (`InstanceRecord::serves_until`), so it serves while its replacement boots. Anything
//! else drained here takes no new request (the worker sees the state within a snapshot,
//! 200 ms); requests in flight finish, or fail with the instance and are retried on
//! another before their deadline. *Changed from the issue*, which drains at once:
//! measured in the simulator, that cost up to 2.5 points of SLO when interruptions come
//! together (BENCHMARKS.md, "Cost controls in the simulator").
//!
//! A warning is also recorded against the pool (`scale0_state::spot`), which raises the
//! pool's effective price (`scale0_core::cost::spot`). A rebalance recommendation is a
//! risk signal, not a reclaim: it drains at once and is not counted (a warning for the
//! same instance often follows, and then counts once).
//!
//! Events of instances scale0 does not know are ignored; event ids are deduped.

use scale0_core::config::CapacityType;
use scale0_core::contract::InstanceState;

use crate::events::{SpotEvent, SpotKind};
use crate::lifecycle::LifecycleOutcome;
use crate::scaler::{DeploymentWake, run_deployment};
use crate::{Deps, HandlerError, Result};

pub async fn spot(e: SpotEvent, deps: &Deps) -> Result<LifecycleOutcome> {
    let now = deps.clock.now();
    let id = e.event.detail.instance_id.trim().to_string();
    let what = match e.kind {
        SpotKind::InterruptionWarning => "Spot interruption warning",
        SpotKind::RebalanceRecommendation => "rebalance recommendation",
    };
    if id.is_empty() {
        return Err(HandlerError::Malformed(format!(
            "{what} without detail.instance-id"
        )));
    }
    let mut found = None;
    for spec in &deps.config.deployments {
        if let Some(r) = deps.store.instance(&spec.name, &id).await? {
            found = Some((spec, r));
            break;
        }
    }
    let Some((spec, record)) = found else {
        return Ok(LifecycleOutcome::new(
            "ignored",
            format!("{what} for {id}, which is not a registered instance"),
        ));
    };
    let d = spec.name.as_str();
    let mut out = LifecycleOutcome {
        deployment: Some(d.into()),
        pool: Some(record.pool.clone()),
        instance: Some(id.clone()),
        ..LifecycleOutcome::new("noted", "")
    };
    if let Some(eid) = &e.event.id
        && !deps
            .store
            .first_sighting(d, &format!("spot:{eid}"), deps.settings.event_ttl)
            .await?
    {
        out.action = "duplicate".into();
        out.detail = format!("event {eid} was handled before");
        return Ok(out);
    }
    if e.kind == SpotKind::InterruptionWarning {
        deps.store
            .record_interruption(d, &record.pool, &id, now)
            .await?;
    }
    let spot_pool = spec
        .pools
        .iter()
        .any(|p| p.name == record.pool && p.capacity_type == CapacityType::Spot);
    if !spot_pool {
        tracing::warn!(deployment = d, instance = %id, pool = %record.pool, "{what} for an instance of a pool not configured as spot");
    }
    // A ready instance keeps serving until shortly before EC2 takes it; a booting or
    // unhealthy one serves nothing and just drains.
    let from = [
        InstanceState::Booting,
        InstanceState::Ready,
        InstanceState::Unhealthy,
    ];
    let drained = if e.kind == SpotKind::InterruptionWarning && record.state == InstanceState::Ready
    {
        let warned_at = e.event.time.unwrap_or(now);
        let reclaim_at = warned_at + scale0_core::cost::spot::NOTICE;
        deps.store
            .drain_for_reclaim(d, &id, &from, now, reclaim_at)
            .await?
    } else {
        deps.store
            .transition(d, &id, &from, InstanceState::Draining, now, None)
            .await?
    };
    tracing::warn!(deployment = d, instance = %id, pool = %record.pool, action = ?e.event.detail.instance_action, result = ?drained, "{what}: draining");
    out.action = "draining".into();
    out.detail = format!(
        "{what} for {id} (pool {}, was {}): draining, replacement decided now",
        record.pool, record.state
    );
    let wake = DeploymentWake::of(format!("{what} for {id}"));
    out.scaler = Some(run_deployment(deps, spec, wake, now).await?);
    Ok(out)
}
