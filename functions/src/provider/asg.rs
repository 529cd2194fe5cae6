//! The aws-asg provider: one EC2 Auto Scaling group per pool.
//!
//! - **launch by count**: [`Provider::ensure_count`] sets the group's desired capacity
//!   to the number of instances the registry holds for the pool (placeholders,
//!   booting, ready, draining). It is an absolute value computed from the registry
//!   after every commit, so a repeated or concurrent apply sets the same number. The
//!   group may have a lower `MaxSize` than the config's `max_instances`: the provider
//!   sets the maximum and reports how much it got, and the applier drops the
//!   placeholders that cannot launch and marks the pool unavailable (moto, like an
//!   older API, accepts a desired capacity above the maximum; we never send one).
//! - **targeted scale-in**: [`Provider::stop`] is `TerminateInstanceInAutoScalingGroup`
//!   with `ShouldDecrementDesiredCapacity`, called only after the instance drained.
//!   Lowering the desired capacity never picks an instance: the desired count is never
//!   set below the instances the registry knows. Groups should still set
//!   `NewInstancesProtectedFromScaleIn` so that nothing but the control plane chooses
//!   which instance goes.
//! - **observe**: `DescribeAutoScalingGroups` lists the group's instances for
//!   [`crate::apply::reconcile`].
//! - **lifecycle hooks**: [`AsgProvider::install_lifecycle_hooks`] puts the launching
//!   and terminating hooks (Terraform does the same); the lifecycle handler answers
//!   them with `CompleteLifecycleAction`.
//! - **errors** are mapped by [`super::classify`]: throttling, insufficient capacity and
//!   quota errors make the pool unavailable for `provider.unavailable_backoff`.
//!
//! An instance's endpoint comes from `provider.aws_asg.endpoint_template`: the default
//! `http://{instance_id}.{region}.compute.internal:8000` is the instance's
//! resource-based hostname, which resolves in the VPC when the subnets enable
//! resource-name DNS A records. That spares the control plane the EC2 API (and the
//! `aws-sdk-ec2` crate, whose build costs minutes and gigabytes).

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_autoscaling::types::LifecycleState;
use futures_util::future::BoxFuture;
use scale0_core::config::{AwsAsgSettings, Deployment, Pool};
use scale0_core::contract::InstanceRecord;
use scale0_state::lifecycle::PendingLifecycleAction;

use super::{
    Provider, ProviderError, ProviderErrorKind, ProviderInstance, ProviderResult, ProviderStatus,
    Started, classify,
};

/// See the module doc.
#[derive(Debug, Clone)]
pub struct AsgProvider {
    client: Client,
    settings: AwsAsgSettings,
    region: String,
}

/// A group as `DescribeAutoScalingGroups` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired: u32,
    pub instances: Vec<ProviderInstance>,
}

/// Turn an SDK error into a typed one. HTTP 5xx without a code is transient.
pub fn sdk_error<E>(operation: &str, e: SdkError<E>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let message = match e.message() {
        Some(m) => m.to_string(),
        // No code or message: an unparsable answer (moto's HTML 500 page) or a
        // transport failure. The status and the error's own words are enough.
        None if status.is_some() => "the service answered without an error document".into(),
        None => {
            let full = aws_sdk_autoscaling::error::DisplayErrorContext(&e).to_string();
            full.chars().take(300).collect()
        }
    };
    let mut kind = classify(code.as_deref(), &message);
    if kind == ProviderErrorKind::Fatal && status.is_some_and(|s| s >= 500) {
        kind = ProviderErrorKind::Transient;
    }
    if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
        kind = ProviderErrorKind::Transient;
    }
    let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    ProviderError::new(
        kind,
        format!(
            "{operation}: {}{message}{status}",
            code.map(|c| format!("{c}: ")).unwrap_or_default()
        ),
    )
}

fn status_of(state: Option<&LifecycleState>) -> ProviderStatus {
    let s = state.map(LifecycleState::as_str).unwrap_or_default();
    if s == "InService" {
        ProviderStatus::Running
    } else if s.starts_with("Pending") || s == "Warmed:Pending" {
        ProviderStatus::Starting
    } else {
        ProviderStatus::Leaving
    }
}

impl AsgProvider {
    /// `sdk` carries region, credentials, endpoint and retry settings (tests point it
    /// at moto with retries off).
    pub fn new(sdk: &aws_config::SdkConfig, settings: &AwsAsgSettings) -> Self {
        let region = settings
            .region
            .clone()
            .or_else(|| sdk.region().map(ToString::to_string))
            .unwrap_or_else(|| "us-east-1".into());
        let mut conf = aws_sdk_autoscaling::config::Builder::from(sdk);
        if let Some(r) = &settings.region {
            conf = conf.region(aws_sdk_autoscaling::config::Region::new(r.clone()));
        }
        AsgProvider {
            client: Client::from_conf(conf.build()),
            settings: settings.clone(),
            region,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn describe(&self, group: &str) -> ProviderResult<GroupView> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeAutoScalingGroups", e))?;
        let g = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(group))
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    format!("Auto Scaling group {group} not found"),
                )
            })?;
        let n = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
        Ok(GroupView {
            name: group.to_string(),
            min_size: n(g.min_size()),
            max_size: n(g.max_size()),
            desired: n(g.desired_capacity()),
            instances: g
                .instances()
                .iter()
                .filter_map(|i| {
                    let id = i.instance_id()?.to_string();
                    Some(ProviderInstance {
                        endpoint: Some(self.endpoint(&id)),
                        status: status_of(i.lifecycle_state()),
                        id,
                        launched_at: None,
                    })
                })
                .collect(),
        })
    }

    fn endpoint(&self, instance_id: &str) -> String {
        self.settings
            .endpoint_template
            .replace("{instance_id}", instance_id)
            .replace("{region}", &self.region)
    }

    /// Put the pool's launching and terminating hooks: the terminating hook holds an
    /// instance `drain_timeout` plus a minute so it can drain; both default to
    /// `CONTINUE` if the control plane never answers.
    pub async fn install_lifecycle_hooks(
        &self,
        spec: &Deployment,
        pool: &Pool,
    ) -> ProviderResult<()> {
        let group = pool.asg_name(&spec.name);
        let drain = spec.policy.drain_timeout.0.as_secs() as i32 + 60;
        for (name, transition, heartbeat) in [
            (
                "scale0-launching",
                "autoscaling:EC2_INSTANCE_LAUNCHING",
                300,
            ),
            (
                "scale0-terminating",
                "autoscaling:EC2_INSTANCE_TERMINATING",
                drain,
            ),
        ] {
            self.client
                .put_lifecycle_hook()
                .auto_scaling_group_name(&group)
                .lifecycle_hook_name(name)
                .lifecycle_transition(transition)
                .heartbeat_timeout(heartbeat)
                .default_result("CONTINUE")
                .send()
                .await
                .map_err(|e| sdk_error("PutLifecycleHook", e))?;
        }
        Ok(())
    }

    async fn set_count(&self, group: &str, wanted: u32) -> ProviderResult<u32> {
        let view = self.describe(group).await?;
        let target = wanted.clamp(view.min_size, view.max_size.max(view.min_size));
        if view.desired != target {
            self.client
                .set_desired_capacity()
                .auto_scaling_group_name(group)
                .desired_capacity(target as i32)
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| sdk_error("SetDesiredCapacity", e))?;
            tracing::info!(
                group,
                from = view.desired,
                to = target,
                "set desired capacity"
            );
        }
        Ok(target.min(wanted))
    }

    async fn terminate(&self, instance_id: &str) -> ProviderResult<()> {
        let sent = self
            .client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await;
        match sent.map_err(|e| sdk_error("TerminateInstanceInAutoScalingGroup", e)) {
            Ok(_) => Ok(()),
            // Already gone: the goal is reached. AWS says so with a ValidationError;
            // moto with a bare 500, so ask which instances the groups still have.
            Err(e) if e.kind == ProviderErrorKind::NotFound => Ok(()),
            Err(e) if !self.in_a_group(instance_id).await.unwrap_or(true) => {
                tracing::info!(instance_id, error = %e, "instance already left its group");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether a group still holds the instance, other than on its way out.
    async fn in_a_group(&self, instance_id: &str) -> ProviderResult<bool> {
        let out = self
            .client
            .describe_auto_scaling_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeAutoScalingInstances", e))?;
        Ok(out.auto_scaling_instances().iter().any(|i| {
            i.instance_id() == Some(instance_id)
                && !i
                    .lifecycle_state()
                    .is_some_and(|s| s.starts_with("Terminat"))
        }))
    }

    async fn complete(&self, a: &PendingLifecycleAction) -> ProviderResult<()> {
        self.client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&a.asg_name)
            .lifecycle_hook_name(&a.hook_name)
            .lifecycle_action_token(&a.token)
            .instance_id(&a.instance_id)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| sdk_error("CompleteLifecycleAction", e))?;
        Ok(())
    }
}

impl Provider for AsgProvider {
    fn kind(&self) -> &'static str {
        "aws-asg"
    }

    fn launches_each(&self) -> bool {
        false
    }

    fn list<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
    ) -> BoxFuture<'a, ProviderResult<Vec<ProviderInstance>>> {
        Box::pin(async move { Ok(self.describe(&pool.asg_name(&spec.name)).await?.instances) })
    }

    fn start<'a>(
        &'a self,
        _spec: &'a Deployment,
        _pool: &'a Pool,
        _placeholder: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<Option<Started>>> {
        Box::pin(async { Ok(None) })
    }

    fn ensure_count<'a>(
        &'a self,
        spec: &'a Deployment,
        pool: &'a Pool,
        wanted: u32,
    ) -> BoxFuture<'a, ProviderResult<u32>> {
        Box::pin(async move { self.set_count(&pool.asg_name(&spec.name), wanted).await })
    }

    fn stop<'a>(
        &'a self,
        _spec: &'a Deployment,
        instance: &'a InstanceRecord,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(self.terminate(&instance.id))
    }

    fn complete_lifecycle_action<'a>(
        &'a self,
        action: &'a PendingLifecycleAction,
    ) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(self.complete(action))
    }

    fn endpoint_for(&self, instance_id: &str) -> Option<String> {
        Some(self.endpoint(instance_id))
    }
}
