//! Fixed keep-alive: what serverless platforms do by default.
//!
//! Source: Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020), §4: AWS Lambda
//! keeps an instance alive 10 minutes after its last execution (Azure Functions, 20).
//! An instance is started for a request that finds no free one, and stopped once it
//! has had no request for the keep-alive time.
//!
//! Requests are placed the way FaaS platforms place invocations: on a warm instance
//! that is already busy when it has a free slot ([`Dispatch::Packing`]), so the
//! instances a burst started go idle one by one and expire, instead of being kept warm
//! by a least-outstanding balancer that spreads every request over all of them.
//!
//! Settings: `ttl` (default 10 min, AWS Lambda's). Its frontier sweeps `ttl` from one
//! minute to an hour.
//!
//! Per instance: a ready instance with nothing in flight for `ttl` is stopped; one still
//! booting is never stopped (in a FaaS platform the request that caused a cold start
//! runs on the instance it started). The platform scales out per request: the policy
//! wakes on activation and whenever requests outnumber ready and booting slots, and
//! launches what ⌈requests in the system / slots⌉ asks beyond ready and booting
//! instances; it checks expiries every second.

use chrono::{DateTime, Utc};

use serde::Deserialize;

use super::{Ctx, durations, grid};
use crate::policy::{Autoscaler, Dispatch, Signals, WorkerEvents, explicit, secs};
use crate::trace::Micros;
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepAliveSettings {
    pub ttl: HumanDuration,
}

impl Default for KeepAliveSettings {
    fn default() -> Self {
        KeepAliveSettings {
            ttl: HumanDuration::from_secs(600),
        }
    }
}

impl KeepAliveSettings {
    pub fn sweep() -> Vec<toml::Table> {
        grid(&[(
            "ttl",
            durations(&["1m", "2m", "5m", "10m", "20m", "30m", "1h"]),
        )])
    }
}

#[derive(Debug)]
pub struct KeepAlive {
    ctx: Ctx,
    ttl: Micros,
}

impl KeepAlive {
    pub fn new(ctx: Ctx, settings: KeepAliveSettings) -> KeepAlive {
        KeepAlive {
            ctx,
            ttl: settings.ttl.0.as_micros() as Micros,
        }
    }
}

impl Autoscaler for KeepAlive {
    fn name(&self) -> String {
        self.ctx.label.clone()
    }

    fn tick(&self) -> Micros {
        secs(1.0)
    }

    fn worker_events(&self) -> WorkerEvents {
        WorkerEvents::PER_REQUEST
    }

    fn dispatch(&self) -> Dispatch {
        Dispatch::Packing
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
