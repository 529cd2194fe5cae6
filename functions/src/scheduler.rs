//! The scheduler handler: EventBridge Scheduler invokes it with the JSON input of a
//! scheduled action ([`ScheduleInvocation`]). The floor or ceiling the action sets is
//! not taken from the event: `decide` computes the active limits from the config and
//! the time, so a missed, late or repeated invocation changes nothing. The event only
//! wakes the scaler for the deployment — in-process, by calling
//! [`crate::scaler::run_deployment`] (this function links the same library), which
//! spares an `Invoke` of the scaler function and its IAM permission.

use serde::Serialize;
use serde_json::Value;

use crate::events::ScheduleInvocation;
use crate::scaler::{DeploymentOutcome, DeploymentWake, run_deployment};
use crate::{Deps, HandlerError, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleOutcome {
    pub deployment: String,
    pub action: String,
    pub scaler: DeploymentOutcome,
}

pub async fn scheduler(event: ScheduleInvocation, deps: &Deps) -> Result<ScheduleOutcome> {
    let spec = deps
        .config
        .deployment(&event.deployment)
        .ok_or_else(|| HandlerError::Unknown {
            what: "deployment",
            name: event.deployment.clone(),
        })?;
    if !spec.schedules.iter().any(|s| s.name == event.action) {
        return Err(HandlerError::Unknown {
            what: "scheduled action",
            name: format!("{}/{}", event.deployment, event.action),
        });
    }
    let wake = DeploymentWake {
        triggers: vec![format!("schedule {}", event.action)],
        event_ids: event
            .execution_id
            .iter()
            .map(|id| format!("schedule:{id}"))
            .collect(),
        ..Default::default()
    };
    let scaler = run_deployment(deps, spec, wake, deps.clock.now()).await?;
    Ok(ScheduleOutcome {
        deployment: event.deployment,
        action: event.action,
        scaler,
    })
}

pub async fn handle_json(event: Value, deps: &Deps) -> Result<ScheduleOutcome> {
    scheduler(ScheduleInvocation::from_value(event)?, deps).await
}
