//! Always on at the trace's peak: the capacity a fixed fleet needs to never queue.
//!
//! The count is `⌈peak concurrency / slots⌉` of the zero-queueing concurrency profile
//! (the oracle computes it), ready from time 0 and billed for the whole window. It is
//! the provisioning a team without autoscaling would buy, and the upper end of the
//! cost axis.

use chrono::{DateTime, Utc};

use super::Ctx;
use crate::policy::{Autoscaler, Signals, Wakes, resize, secs};
use crate::trace::Micros;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug)]
pub struct AlwaysOn {
    ctx: Ctx,
    instances: u32,
}

impl AlwaysOn {
    pub fn new(ctx: Ctx, instances: u32) -> AlwaysOn {
        let max = ctx.spec.pools[ctx.pool].max_instances;
        AlwaysOn {
            instances: instances.max(1).min(max),
            ctx,
        }
    }
}

impl Autoscaler for AlwaysOn {
    fn name(&self) -> String {
        "always-on".into()
    }

    fn tick(&self) -> Micros {
        secs(3600.0)
    }

    fn wakes(&self) -> Wakes {
        Wakes {
            activation: false,
            pressure: None,
        }
    }

    fn initial_ready(&self) -> u32 {
        self.instances
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
