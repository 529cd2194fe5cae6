//! The lifecycle handler: EC2 Auto Scaling events and EC2 instance state changes,
//! turned into registry updates.
//!
//! | event (`detail-type`) | what happens |
//! | --- | --- |
//! | `EC2 Instance-launch Lifecycle Action` | the instance replaces a `requested` placeholder of its pool (or is added) as `booting`, with its endpoint; the action is completed (`CONTINUE`) at once — readiness is the health sweep's business, not the hook's |
//! | `EC2 Instance Launch Successful` | the same registration, for groups without a launching hook |
//! | `EC2 Instance Launch Unsuccessful` | the failure is classified; capacity, quota and throttling failures make the pool unavailable for the backoff; one placeholder of the pool is dropped and the scaler decides again at once, so the need is launched in another pool |
//! | `EC2 Instance-terminate Lifecycle Action` | **drain first**: the instance is marked `draining` (the worker stops dispatching to it); if nothing is in flight the action is completed at once, otherwise it is kept in Redis and completed when the scaler stops the instance (empty, or past `drain_timeout`) |
//! | `EC2 Instance Terminate Successful` | `terminated` |
//! | `EC2 Instance State-change Notification` (`aws.ec2`) | `shutting-down`, `terminated`, `stopping`, `stopped` → `terminated`; others are noted |
//! | `EC2 Spot Instance Interruption Warning`, `EC2 Instance Rebalance Recommendation` (`aws.ec2`) | [`crate::spot`]: drained at once, the warning recorded against the pool, the scaler run now for the replacement |
//!
//! A group is matched to its deployment and pool by name (`asg_name`, default
//! `scale0-<deployment>-<pool>`); events of other groups are ignored. Event ids are
//! deduped like the scaler's. A completion that fails (moto answers
//! `CompleteLifecycleAction` with HTTP 500) is kept with its error and retried by the
//! tick's reconcile; the hook's default result covers the rest.

use aws_lambda_events::autoscaling::AutoScalingEvent;
use chrono::{DateTime, Utc};
use scale0_core::config::{Deployment, Pool};
use scale0_core::contract::{InstanceRecord, InstanceState};
use scale0_state::lifecycle::PendingLifecycleAction;
use scale0_state::registry::{Adopted, Transition};
use serde::Serialize;
use serde_json::Value;

use crate::events::{InstanceStateChangeEvent, LifecycleEvent, detail_str};
use crate::provider::classify;
use crate::scaler::{DeploymentOutcome, DeploymentWake, run_deployment};
use crate::{Deps, HandlerError, Result};

/// What the lifecycle handler did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LifecycleOutcome {
    /// `adopted`, `draining`, `terminated`, `launch-failed`, `noted`, `ignored`,
    /// `duplicate`.
    pub action: String,
    pub detail: String,
    pub deployment: Option<String>,
    pub pool: Option<String>,
    pub instance: Option<String>,
    /// Whether a lifecycle action was completed now.
    pub lifecycle_completed: bool,
    /// Why completing it failed (it is kept and retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_error: Option<String>,
    /// The scaler run a launch failure triggered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaler: Option<DeploymentOutcome>,
}

impl LifecycleOutcome {
    pub(crate) fn new(action: &str, detail: impl Into<String>) -> Self {
        LifecycleOutcome {
            action: action.into(),
            detail: detail.into(),
            ..Default::default()
        }
    }
}

pub async fn handle_json(event: Value, deps: &Deps) -> Result<LifecycleOutcome> {
    lifecycle(LifecycleEvent::from_value(event)?, deps).await
}

pub async fn lifecycle(event: LifecycleEvent, deps: &Deps) -> Result<LifecycleOutcome> {
    match event {
        LifecycleEvent::AutoScaling(e) => auto_scaling(e, deps).await,
        LifecycleEvent::InstanceState(e) => instance_state(e, deps).await,
        LifecycleEvent::Spot(e) => crate::spot::spot(e, deps).await,
    }
}

/// The deployment and pool whose group is `group`.
pub fn find_group<'a>(deps: &'a Deps, group: &str) -> Option<(&'a Deployment, &'a Pool)> {
    deps.config.deployments.iter().find_map(|d| {
        d.pools
            .iter()
            .find(|p| p.asg_name(&d.name) == group)
            .map(|p| (d, p))
    })
}

fn required<'a>(e: &'a AutoScalingEvent, key: &str) -> Result<&'a str> {
    detail_str(e, key).filter(|v| !v.is_empty()).ok_or_else(|| {
        HandlerError::Malformed(format!(
            "{} event without detail.{key}",
            e.detail_type.as_deref().unwrap_or("Auto Scaling")
        ))
    })
}

async fn auto_scaling(e: AutoScalingEvent, deps: &Deps) -> Result<LifecycleOutcome> {
    let now = deps.clock.now();
    let detail_type = e.detail_type.clone().unwrap_or_default();
    let group = required(&e, "AutoScalingGroupName")?;
    const HANDLED: [&str; 5] = [
        "EC2 Instance-launch Lifecycle Action",
        "EC2 Instance-terminate Lifecycle Action",
        "EC2 Instance Launch Successful",
        "EC2 Instance Launch Unsuccessful",
        "EC2 Instance Terminate Successful",
    ];
    if !HANDLED.contains(&detail_type.as_str()) {
        return Ok(LifecycleOutcome::new(
            "ignored",
            format!("`{detail_type}` events need no action"),
        ));
    }
    // Every handled kind names its instance; check before touching any state.
    let instance = required(&e, "EC2InstanceId")?.to_string();
    let is_action = detail_type.ends_with("Lifecycle Action");
    let (hook, token) = if is_action {
        (
            required(&e, "LifecycleHookName")?.to_string(),
            required(&e, "LifecycleActionToken")?.to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    let Some((spec, pool)) = find_group(deps, group) else {
        return Ok(LifecycleOutcome::new(
            "ignored",
            format!("Auto Scaling group {group} is not a scale0 pool"),
        ));
    };
    let d = spec.name.as_str();
    if let Some(id) = &e.id
        && !deps
            .store
            .first_sighting(d, &format!("asg:{id}"), deps.settings.event_ttl)
            .await?
    {
        return Ok(LifecycleOutcome {
            deployment: Some(d.into()),
            instance: Some(instance),
            ..LifecycleOutcome::new("duplicate", format!("event {id} was handled before"))
        });
    }
    let result = async {
        let mut out = match detail_type.as_str() {
            "EC2 Instance-launch Lifecycle Action" | "EC2 Instance Launch Successful" => {
                let mut out = adopt(deps, spec, pool, &instance, e.time).await?;
                if is_action {
                    let action = PendingLifecycleAction {
                        instance_id: instance.clone(),
                        asg_name: group.to_string(),
                        hook_name: hook.clone(),
                        token: token.clone(),
                        transition: "autoscaling:EC2_INSTANCE_LAUNCHING".into(),
                        received_at: now,
                        last_error: None,
                    };
                    complete(deps, d, action, &mut out).await?;
                }
                out
            }
            "EC2 Instance-terminate Lifecycle Action" => {
                let action = PendingLifecycleAction {
                    instance_id: instance.clone(),
                    asg_name: group.to_string(),
                    hook_name: hook.clone(),
                    token: token.clone(),
                    transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
                    received_at: now,
                    last_error: None,
                };
                terminating(deps, spec, action, now).await?
            }
            "EC2 Instance Launch Unsuccessful" => launch_failed(deps, spec, pool, &e, now).await?,
            _ => {
                // Terminate Successful
                deps.store.mark_terminated(d, &instance, now).await?;
                deps.store.remove_lifecycle_action(d, &instance).await?;
                LifecycleOutcome::new("terminated", format!("{group} terminated {instance}"))
            }
        };
        out.deployment = Some(d.into());
        out.pool = Some(pool.name.clone());
        out.instance.get_or_insert(instance.clone());
        Ok(out)
    }
    .await;
    if result.is_err()
        && let Some(id) = &e.id
    {
        let _ = deps.store.forget_event(d, &format!("asg:{id}")).await;
    }
    result
}

async fn adopt(
    deps: &Deps,
    spec: &Deployment,
    pool: &Pool,
    instance: &str,
    at: DateTime<Utc>,
) -> Result<LifecycleOutcome> {
    let record = InstanceRecord {
        id: instance.to_string(),
        deployment: spec.name.clone(),
        pool: pool.name.clone(),
        state: InstanceState::Booting,
        endpoint: deps.provider.endpoint_for(instance),
        launched_at: at,
        ready_at: None,
        draining_since: None,
        failures: 0,
        reclaim_at: None,
    };
    Ok(match deps.store.adopt_instance(&record).await? {
        Adopted::Replaced { placeholder, .. } => LifecycleOutcome::new(
            "adopted",
            format!("{instance} replaces placeholder {placeholder}"),
        ),
        Adopted::Added(_) => LifecycleOutcome::new(
            "adopted",
            format!(
                "{instance} added (no placeholder was waiting in pool {})",
                pool.name
            ),
        ),
        Adopted::Existing(r) => LifecycleOutcome::new(
            "noted",
            format!("{instance} already registered ({})", r.state),
        ),
    })
}

/// Complete `action` now; on failure keep it, with the error, for a retry.
async fn complete(
    deps: &Deps,
    deployment: &str,
    mut action: PendingLifecycleAction,
    out: &mut LifecycleOutcome,
) -> Result<()> {
    match deps.provider.complete_lifecycle_action(&action).await {
        Ok(()) => {
            deps.store
                .remove_lifecycle_action(deployment, &action.instance_id)
                .await?;
            out.lifecycle_completed = true;
        }
        Err(e) => {
            tracing::warn!(deployment, instance = %action.instance_id, error = %e, "cannot complete lifecycle action; kept for retry");
            action.last_error = Some(e.to_string());
            out.lifecycle_error = Some(e.to_string());
            deps.store.put_lifecycle_action(deployment, &action).await?;
        }
    }
    Ok(())
}

async fn terminating(
    deps: &Deps,
    spec: &Deployment,
    action: PendingLifecycleAction,
    now: DateTime<Utc>,
) -> Result<LifecycleOutcome> {
    let d = spec.name.as_str();
    let id = action.instance_id.clone();
    let record = deps.store.instance(d, &id).await?;
    let serving = matches!(
        record.as_ref().map(|r| r.state),
        Some(
            InstanceState::Booting
                | InstanceState::Ready
                | InstanceState::Unhealthy
                | InstanceState::Draining
        )
    );
    if serving {
        deps.store
            .transition(
                d,
                &id,
                &[
                    InstanceState::Booting,
                    InstanceState::Ready,
                    InstanceState::Unhealthy,
                ],
                InstanceState::Draining,
                now,
                None,
            )
            .await?;
        let in_flight = deps
            .store
            .in_flight(d, &[id.as_str()], now.timestamp_millis())
            .await?
            .get(&id)
            .copied()
            .unwrap_or(0);
        if in_flight > 0 {
            deps.store.put_lifecycle_action(d, &action).await?;
            return Ok(LifecycleOutcome::new(
                "draining",
                format!(
                    "{id} draining with {in_flight} in flight; its lifecycle action completes \
                     when it is empty or after drain timeout {}",
                    spec.policy.drain_timeout
                ),
            ));
        }
    }
    let mut out = LifecycleOutcome::new(
        "terminated",
        if serving {
            format!("{id} had nothing in flight: terminating now")
        } else {
            format!("{id} was not serving: terminating now")
        },
    );
    complete(deps, d, action, &mut out).await?;
    if record.is_some() {
        deps.store.mark_terminated(d, &id, now).await?;
    }
    Ok(out)
}

async fn launch_failed(
    deps: &Deps,
    spec: &Deployment,
    pool: &Pool,
    e: &AutoScalingEvent,
    now: DateTime<Utc>,
) -> Result<LifecycleOutcome> {
    let d = spec.name.as_str();
    let message = detail_str(e, "StatusMessage")
        .or_else(|| detail_str(e, "Cause"))
        .unwrap_or_default();
    let kind = classify(detail_str(e, "StatusCode"), message);
    let mut out = LifecycleOutcome::new(
        "launch-failed",
        format!("launch in pool {} failed ({kind}): {message}", pool.name),
    );
    if kind.makes_pool_unavailable() {
        let until = now + deps.config.provider.unavailable_backoff.delta();
        deps.store
            .set_pool_unavailable(d, &pool.name, until)
            .await?;
    }
    // The failed launch was for one of the pool's placeholders: drop one, so the
    // next decision sees the need uncovered.
    let mut placeholders: Vec<InstanceRecord> = deps
        .store
        .instances(d)
        .await?
        .into_iter()
        .filter(|r| r.pool == pool.name && r.state == InstanceState::Requested)
        .collect();
    placeholders.sort_by(|a, b| a.launched_at.cmp(&b.launched_at).then(a.id.cmp(&b.id)));
    if let Some(ph) = placeholders.first()
        && let Transition::Applied(_) = deps.store.mark_terminated(d, &ph.id, now).await?
    {
        out.detail
            .push_str(&format!("; dropped placeholder {}", ph.id));
    }
    let wake = DeploymentWake::of(format!("launch failed in pool {}", pool.name));
    out.scaler = Some(run_deployment(deps, spec, wake, now).await?);
    Ok(out)
}

async fn instance_state(e: InstanceStateChangeEvent, deps: &Deps) -> Result<LifecycleOutcome> {
    let now = deps.clock.now();
    let id = e.detail.instance_id.clone();
    let state = e.detail.state.clone();
    if id.is_empty() {
        return Err(HandlerError::Malformed(
            "EC2 instance state-change notification without detail.instance-id".into(),
        ));
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
            format!("{id} is not a registered instance"),
        ));
    };
    let d = spec.name.as_str();
    if let Some(eid) = &e.id
        && !deps
            .store
            .first_sighting(d, &format!("ec2:{eid}"), deps.settings.event_ttl)
            .await?
    {
        return Ok(LifecycleOutcome {
            deployment: Some(d.into()),
            instance: Some(id),
            ..LifecycleOutcome::new("duplicate", format!("event {eid} was handled before"))
        });
    }
    let mut out = match state.as_str() {
        "shutting-down" | "terminated" | "stopping" | "stopped" => {
            deps.store.mark_terminated(d, &id, now).await?;
            deps.store.remove_lifecycle_action(d, &id).await?;
            LifecycleOutcome::new("terminated", format!("{id} is {state}"))
        }
        _ => LifecycleOutcome::new(
            "noted",
            format!("{id} is {state} (registry: {})", record.state),
        ),
    };
    out.deployment = Some(d.into());
    out.pool = Some(record.pool);
    out.instance = Some(id);
    Ok(out)
}
