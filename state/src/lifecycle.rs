//! Pending EC2 Auto Scaling lifecycle actions.
//!
//! When a group terminates an instance (a scale-in we asked for, a Spot interruption,
//! a rebalance), its terminating hook holds the instance in `Terminating:Wait` until
//! someone completes the action. The lifecycle handler marks the instance draining and
//! records the action here; whoever later stops the instance (the scaler's applier,
//! once the instance is empty or past its drain timeout) completes the action instead
//! of terminating it a second time. A hash per deployment: instance id → JSON.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::{Result, Store, json, keys, parse};

/// A lifecycle action waiting for its `CompleteLifecycleAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLifecycleAction {
    pub instance_id: String,
    pub asg_name: String,
    pub hook_name: String,
    pub token: String,
    /// `autoscaling:EC2_INSTANCE_TERMINATING` or `..._LAUNCHING`.
    pub transition: String,
    pub received_at: DateTime<Utc>,
    /// Why the last attempt to complete it failed, if one did.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Store {
    pub async fn put_lifecycle_action(
        &self,
        deployment: &str,
        action: &PendingLifecycleAction,
    ) -> Result<()> {
        let _: () = self
            .conn()
            .hset(
                keys::lifecycle(deployment),
                &action.instance_id,
                json(action),
            )
            .await?;
        Ok(())
    }

    pub async fn lifecycle_action(
        &self,
        deployment: &str,
        instance_id: &str,
    ) -> Result<Option<PendingLifecycleAction>> {
        let key = keys::lifecycle(deployment);
        let raw: Option<String> = self.conn().hget(&key, instance_id).await?;
        raw.map(|r| parse(&format!("{key}/{instance_id}"), &r))
            .transpose()
    }

    /// Every pending action of the deployment, by instance id.
    pub async fn lifecycle_actions(&self, deployment: &str) -> Result<Vec<PendingLifecycleAction>> {
        let key = keys::lifecycle(deployment);
        let all: Vec<(String, String)> = self.conn().hgetall(&key).await?;
        let mut out = all
            .iter()
            .map(|(id, raw)| parse(&format!("{key}/{id}"), raw))
            .collect::<Result<Vec<PendingLifecycleAction>>>()?;
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(out)
    }

    pub async fn remove_lifecycle_action(&self, deployment: &str, instance_id: &str) -> Result<()> {
        let _: () = self
            .conn()
            .hdel(keys::lifecycle(deployment), instance_id)
            .await?;
        Ok(())
    }
}
