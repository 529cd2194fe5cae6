//! Always on: a fixed fleet, the provisioning a team without autoscaling would buy,
//! and the upper end of the cost axis.
//!
//! Its size is `instances` when set. Otherwise it is sized from what was known before
//! the scored window — never from the future: `⌈peak zero-wait concurrency / slots⌉`
//! over the scenario's `[slo] warmup` (the engine passes that peak in). A scenario with
//! neither cannot build it, and says so. The fleet is launched at time 0 and boots like
//! any other instance (billed from launch; with a warmup, the boot falls in it). Its
//! frontier sweeps the fleet size.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Ctx, grid};
use crate::policy::{Autoscaler, Signals, WorkerEvents, resize, secs};
use crate::trace::Micros;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlwaysOnSettings {
    pub instances: Option<u32>,
}

impl AlwaysOnSettings {
    /// Fleet sizes from one to the pool's maximum, roughly doubling.
    pub fn sweep(max_instances: u32) -> Vec<toml::Table> {
        let mut sizes = Vec::new();
        let mut n = 1u32;
        while n <= max_instances {
            sizes.push(toml::Value::Integer(i64::from(n)));
            n = (n + 1).max(n * 3 / 2);
        }
        grid(&[("instances", sizes)])
    }
}

#[derive(Debug)]
pub struct AlwaysOn {
    ctx: Ctx,
    instances: u32,
}

impl AlwaysOn {
    /// `warmup_peak`: instances the zero-wait profile needed at most during the warmup,
    /// if the scenario has one.
    pub fn new(
        ctx: Ctx,
        settings: AlwaysOnSettings,
        warmup_peak: Option<u32>,
    ) -> Result<AlwaysOn, String> {
        let instances = settings.instances.or(warmup_peak).ok_or_else(|| {
            "set `instances` ([baselines.always-on] or always-on{instances = N}) \
             or give the scenario an `[slo] warmup` to size it from"
                .to_string()
        })?;
        let max = ctx.spec.pools[ctx.pool].max_instances;
        Ok(AlwaysOn {
            instances: instances.clamp(1, max.max(1)),
            ctx,
        })
    }
}

impl Autoscaler for AlwaysOn {
    fn name(&self) -> String {
        self.ctx.label.clone()
    }

    fn tick(&self) -> Micros {
        secs(60.0)
    }

    fn worker_events(&self) -> WorkerEvents {
        WorkerEvents::NONE
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, _signals: &Signals) -> Decision {
        resize(
            &self.ctx.spec,
            self.ctx.pool,
            obs,
            now,
            self.instances,
            format!("always on: {} instances", self.instances),
        )
    }
}
