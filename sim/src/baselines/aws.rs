//! AWS target tracking on an Auto Scaling group, with the documented scale-from-zero
//! step policy.
//!
//! Sources: Application Auto Scaling and EC2 Auto Scaling user guides, "How target
//! tracking scaling works": the service creates and manages two CloudWatch alarms on the
//! metric, adds capacity in proportion to how far the metric is above the target, and
//! removes capacity more conservatively. The managed alarms use one-minute datapoints:
//! the high alarm fires on 3 consecutive datapoints above the target, the low alarm on 15
//! consecutive datapoints below 90% of it (as they appear in CloudWatch; AWS's issue
//! trackers quote "3 datapoints within 3 minutes" and "15 datapoints within 15 minutes",
//! e.g. aws/copilot-cli#4233, aws/containers-roadmap#638). Scale-in waits the default
//! 300 s cooldown after the previous scale-in. A per-instance metric cannot bring a group
//! up from zero; AWS's documented answer (SageMaker, "Scale an endpoint to zero
//! instances") is a step scaling policy on a `HasBacklogWithoutCapacity` alarm: one
//! one-minute datapoint with requests and no capacity adds one instance.
//!
//! The metric is the AWS "backlog per instance" pattern (EC2 Auto Scaling, "Scaling
//! based on Amazon SQS"): requests in the system averaged over the minute, over the
//! instances in service; the target is `target_utilization × slots`. Instances still
//! warming up are not in service (a missing datapoint, which breaks a run of
//! breaches) but count as capacity when sizing.
//!
//! Settings: `target_utilization`, `scale_in_cooldown`, `high_datapoints`,
//! `low_datapoints`. Its frontier sweeps the target (AWS's docs:
//! a lower target leaves headroom for slow-starting instances) and the scale-in
//! cooldown.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

use serde::Deserialize;

use super::{Ctx, durations, grid};
use crate::policy::{Autoscaler, Signals, WorkerEvents, resize, secs};
use crate::trace::{MICROS_PER_SEC, Micros};
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    pub target_utilization: Option<f64>,
    pub scale_in_cooldown: HumanDuration,
    pub high_datapoints: usize,
    pub low_datapoints: usize,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            target_utilization: None,
            scale_in_cooldown: HumanDuration::from_secs(300),
            high_datapoints: 3,
            low_datapoints: 15,
        }
    }
}

impl AwsSettings {
    pub fn sweep() -> Vec<toml::Table> {
        grid(&[
            (
                "target_utilization",
                [0.3, 0.5, 0.7, 0.9].map(toml::Value::Float).to_vec(),
            ),
            ("scale_in_cooldown", durations(&["1m", "5m"])),
        ])
    }
}

#[derive(Debug)]
pub struct AwsTargetTracking {
    ctx: Ctx,
    period: Micros,
    high_datapoints: usize,
    low_datapoints: usize,
    low_factor: f64,
    scale_in_cooldown: Micros,
    last_scale_in: Option<Micros>,
    /// Most recent datapoints (per in-service instance), newest last; `None` = missing.
    datapoints: VecDeque<Option<f64>>,
    last_integral: Option<(Micros, f64)>,
}

impl AwsTargetTracking {
    pub fn new(ctx: Ctx, s: AwsSettings) -> AwsTargetTracking {
        AwsTargetTracking {
            ctx: ctx.with_utilization(s.target_utilization),
            period: secs(60.0),
            high_datapoints: s.high_datapoints.max(1),
            low_datapoints: s.low_datapoints.max(1),
            low_factor: 0.9,
            scale_in_cooldown: s.scale_in_cooldown.0.as_micros() as Micros,
            last_scale_in: None,
            datapoints: VecDeque::new(),
            last_integral: None,
        }
    }

    fn all_recent(&self, n: usize, f: impl Fn(f64) -> bool) -> bool {
        self.datapoints.len() >= n
            && self
                .datapoints
                .iter()
                .rev()
                .take(n)
                .all(|d| d.is_some_and(&f))
    }
}

impl Autoscaler for AwsTargetTracking {
    fn name(&self) -> String {
        self.ctx.label.clone()
    }

    fn tick(&self) -> Micros {
        self.period
    }

    fn worker_events(&self) -> WorkerEvents {
        WorkerEvents::NONE
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision {
        let t = signals.metric_t;
        let (t0, i0) = self
            .last_integral
            .unwrap_or((t - self.period, signals.busy_integral));
        self.last_integral = Some((t, signals.busy_integral));
        let span = ((t - t0).max(1)) as f64 / MICROS_PER_SEC as f64;
        let avg_in_system = (signals.busy_integral - i0) / span;
        let ready = self.ctx.ready(obs);
        let capacity = self.ctx.capacity(obs);
        let datapoint = (ready > 0).then(|| avg_in_system / f64::from(ready));
        self.datapoints.push_back(datapoint);
        while self.datapoints.len() > self.low_datapoints.max(self.high_datapoints) {
            self.datapoints.pop_front();
        }
        let target = self.ctx.target;
        let spec = &self.ctx.spec;

        if capacity == 0 && avg_in_system > 0.0 {
            return resize(
                spec,
                self.ctx.pool,
                obs,
                now,
                1,
                "HasBacklogWithoutCapacity alarm: step +1".into(),
            );
        }
        if self.all_recent(self.high_datapoints, |v| v > target) {
            let latest = datapoint.unwrap_or(0.0);
            let desired = ((latest * f64::from(ready)) / target).ceil() as u32;
            if desired > capacity {
                return resize(
                    spec,
                    self.ctx.pool,
                    obs,
                    now,
                    desired,
                    format!(
                        "AlarmHigh: {latest:.2} per instance > {target:.1} for {} min → {desired}",
                        self.high_datapoints
                    ),
                );
            }
        }
        let cooled = self
            .last_scale_in
            .is_none_or(|s| signals.t - s >= self.scale_in_cooldown);
        if cooled && self.all_recent(self.low_datapoints, |v| v < self.low_factor * target) {
            let latest = datapoint.unwrap_or(0.0);
            let desired = ((latest * f64::from(ready)) / target).ceil() as u32;
            if desired < capacity {
                self.last_scale_in = Some(signals.t);
                // The low alarm stays in ALARM; its datapoints now describe the old size.
                return resize(
                    spec,
                    self.ctx.pool,
                    obs,
                    now,
                    desired,
                    format!(
                        "AlarmLow: {latest:.2} per instance < 90% of {target:.1} for {} min → {desired}",
                        self.low_datapoints
                    ),
                );
            }
        }
        resize(
            spec,
            self.ctx.pool,
            obs,
            now,
            capacity,
            "target tracking: no alarm".into(),
        )
    }
}
