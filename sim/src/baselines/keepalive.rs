//! Fixed keep-alive: what serverless platforms do by default.
//!
//! Source: Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020), §4: AWS Lambda
//! keeps an instance alive 10 minutes after its last execution (Azure Functions, 20).
//! An instance is started for a request that finds no free one, and stopped once it
//! has had no request for the keep-alive time.
//!
//! Per instance: a ready instance with nothing in flight for `ttl` is stopped; one still
//! booting is never stopped (in a FaaS platform the request that caused a cold start
//! runs on the instance it started). The platform scales out per request: the policy
//! wakes on activation and whenever requests outnumber ready and booting slots, and
//! launches what ⌈requests in the system / slots⌉ asks beyond ready and booting
//! instances; it checks expiries every second.

use chrono::{DateTime, Utc};

use super::Ctx;
use crate::policy::{Autoscaler, Signals, Wakes, explicit, secs};
use crate::trace::Micros;
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug)]
pub struct KeepAlive {
    ctx: Ctx,
    ttl: Micros,
    label: String,
}

impl KeepAlive {
    pub fn new(ctx: Ctx, ttl: HumanDuration, label: String) -> KeepAlive {
        KeepAlive {
            ctx,
            ttl: ttl.0.as_micros() as Micros,
            label,
        }
    }
}

impl Autoscaler for KeepAlive {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn tick(&self) -> Micros {
        secs(1.0)
    }

    fn wakes(&self) -> Wakes {
        Wakes {
            activation: true,
            pressure: Some(1.0),
        }
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision {
        let need = self
            .ctx
            .needed(signals.peak_in_system.max(signals.in_system));
        let expired = self.ctx.idle_for(obs, signals, self.ttl);
        let remaining = self.ctx.capacity(obs) - expired.len() as u32;
        let launch = need.saturating_sub(remaining);
        let reason = format!(
            "keep-alive {}: {} idle past it, need {need}",
            HumanDuration::from(std::time::Duration::from_micros(self.ttl as u64)),
            expired.len()
        );
        explicit(
            &self.ctx.spec,
            self.ctx.pool,
            obs,
            now,
            launch,
            expired,
            reason,
        )
    }
}
