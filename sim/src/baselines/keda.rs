//! KEDA's RabbitMQ scaler (`mode: QueueLength`) with the Kubernetes HPA underneath.
//!
//! Sources:
//! - KEDA ScaledObject spec (keda.sh/docs/latest/reference/scaledobject-spec):
//!   `pollingInterval: 30`, `cooldownPeriod: 300`, `minReplicaCount: 0`; with zero
//!   replicas KEDA itself activates the target (0 → 1) when the trigger is active, and
//!   after `cooldownPeriod` without activity scales it back to 0; between 1 and N the HPA
//!   decides (keda.sh "Scaling Deployments"; kedacore/keda
//!   `pkg/scaling/executor/scale_scaledobjects.go`).
//! - KEDA RabbitMQ scaler (keda.sh/docs/latest/scalers/rabbitmq-queue): `value` is the
//!   target queue length per replica, `activationValue` defaults to 0 (active when the
//!   queue is longer than 0). Over the management API (`protocol: http`) the queue length
//!   counts ready and unacknowledged messages; over AMQP only ready ones. The scale0
//!   worker keeps every request it holds or runs unacked, so an AMQP count would be
//!   near zero; the simulated KEDA reads the HTTP count: waiting + in flight. DESIGN.md
//!   records that the management API's queue stats lag about 5 s: an extra metric delay.
//! - Kubernetes HPA (kubernetes.io "Horizontal Pod Autoscaling";
//!   kubernetes/kubernetes `pkg/controller/podautoscaler/replica_calculator.go`,
//!   `GetExternalPerPodMetricReplicas`, and `horizontal.go`): every 15 s
//!   (`--horizontal-pod-autoscaler-sync-period`), for an external metric with an
//!   `AverageValue` target, `ratio = metric / (target × replicas)`; outside the 0.1
//!   tolerance the proposal is `ceil(metric / target)`, else the current count. Default
//!   behaviour: scale-up stabilization 0 s and at most +100% or +4 pods per 15 s
//!   (whichever is more); scale-down stabilization 300 s (the highest proposal of the
//!   window) and at most −100% per 15 s; `minReplicas` 1 under KEDA.
//!
//! The target is `target_utilization × slots` requests per replica, the same
//! utilisation the other policies aim for.
//!
//! Settings: `polling_interval`, `cooldown_period`, `sync_period`, `tolerance`,
//! `scale_down_stabilization`, `metric_delay` (the management API's lag),
//! `target_utilization`. Its frontier sweeps `cooldown_period` (KEDA's docs: raise it
//! for workloads that are slow to start) and `polling_interval`.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

use serde::Deserialize;

use super::{Ctx, durations, grid};
use crate::policy::{Autoscaler, Signals, WorkerEvents, resize};
use crate::trace::Micros;
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KedaSettings {
    pub polling_interval: HumanDuration,
    pub cooldown_period: HumanDuration,
    pub sync_period: HumanDuration,
    pub tolerance: f64,
    pub scale_down_stabilization: HumanDuration,
    pub metric_delay: HumanDuration,
    pub target_utilization: Option<f64>,
}

impl Default for KedaSettings {
    fn default() -> Self {
        KedaSettings {
            polling_interval: HumanDuration::from_secs(30),
            cooldown_period: HumanDuration::from_secs(300),
            sync_period: HumanDuration::from_secs(15),
            tolerance: 0.1,
            scale_down_stabilization: HumanDuration::from_secs(300),
            metric_delay: HumanDuration::from_secs(5),
            target_utilization: None,
        }
    }
}

impl KedaSettings {
    pub fn sweep() -> Vec<toml::Table> {
        grid(&[
            ("cooldown_period", durations(&["1m", "5m", "15m"])),
            ("polling_interval", durations(&["5s", "30s"])),
        ])
    }
}

#[derive(Debug)]
pub struct Keda {
    ctx: Ctx,
    polling: Micros,
    cooldown: Micros,
    sync: Micros,
    tolerance: f64,
    down_window: Micros,
    metric_delay: Micros,
    next_poll: Micros,
    next_sync: Micros,
    last_active: Option<Micros>,
    /// HPA proposals within the scale-down stabilization window.
    recommendations: VecDeque<(Micros, u32)>,
    /// HPA scale events (time, change) within the rate-limit period.
    events: VecDeque<(Micros, i64)>,
}

impl Keda {
    pub fn new(ctx: Ctx, s: KedaSettings) -> Keda {
        let micros = |d: HumanDuration| (d.0.as_micros() as Micros).max(1);
        Keda {
            ctx: ctx.with_utilization(s.target_utilization),
            polling: micros(s.polling_interval),
            cooldown: micros(s.cooldown_period),
            sync: micros(s.sync_period),
            tolerance: s.tolerance,
            down_window: micros(s.scale_down_stabilization),
            metric_delay: s.metric_delay.0.as_micros() as Micros,
            next_poll: 0,
            next_sync: 0,
            last_active: None,
            recommendations: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// One HPA sync: the replica count it sets.
    fn hpa(&mut self, t: Micros, metric: f64, current: u32) -> u32 {
        let target = self.ctx.target;
        let ratio = metric / (target * f64::from(current));
        let proposal = if (ratio - 1.0).abs() > self.tolerance {
            (metric / target).ceil() as u32
        } else {
            current
        };

        // Stabilization: up takes the proposal (window 0 s), down the window's maximum.
        self.recommendations.push_back((t, proposal));
        while self
            .recommendations
            .front()
            .is_some_and(|&(s, _)| s <= t - self.down_window)
        {
            self.recommendations.pop_front();
        }
        let down = self
            .recommendations
            .iter()
            .map(|&(_, r)| r)
            .max()
            .unwrap_or(proposal);
        let mut desired = current;
        if desired < proposal {
            desired = proposal;
        }
        if desired > down {
            desired = down;
        }

        // Rate limits over the last 15 s.
        while self
            .events
            .front()
            .is_some_and(|&(s, _)| s <= t - self.sync)
        {
            self.events.pop_front();
        }
        if desired > current {
            let added: i64 = self.events.iter().filter(|e| e.1 > 0).map(|e| e.1).sum();
            let start = i64::from(current) - added;
            let limit = (start + 4).max((start as f64 * 2.0).ceil() as i64);
            desired = desired.min(limit.max(i64::from(current)) as u32);
        }
        // Scale-down allows −100% per period: no limit above minReplicas.
        let max = self.ctx.spec.pools[self.ctx.pool].max_instances;
        desired = desired.clamp(1, max.max(1));
        if desired != current {
            self.events
                .push_back((t, i64::from(desired) - i64::from(current)));
        }
        desired
    }
}

impl Autoscaler for Keda {
    fn name(&self) -> String {
        self.ctx.label.clone()
    }

    /// The HPA's sync and KEDA's polling both land on multiples of this.
    fn tick(&self) -> Micros {
        gcd(self.sync, self.polling)
    }

    fn worker_events(&self) -> WorkerEvents {
        WorkerEvents::NONE
    }

    fn extra_metric_delay(&self) -> Micros {
        self.metric_delay
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision {
        let t = signals.t;
        let metric = (obs.queue_depth + obs.held + obs.in_flight) as f64;
        let current = self.ctx.capacity(obs);
        let spec = &self.ctx.spec;
        // Each loop runs on its own period, from the first call on.
        let poll = t >= self.next_poll;
        if poll {
            self.next_poll = t + self.polling;
        }
        let sync = t >= self.next_sync;
        if sync {
            self.next_sync = t + self.sync;
        }
        if poll {
            let active = metric > 0.0;
            if active {
                self.last_active = Some(t);
            }
            if current == 0 && active {
                return resize(
                    spec,
                    self.ctx.pool,
                    obs,
                    now,
                    1,
                    format!("KEDA: queue length {metric} > 0, activating 0 → 1"),
                );
            }
            if !active && current > 0 && self.last_active.is_none_or(|la| t - la >= self.cooldown) {
                self.recommendations.clear();
                self.events.clear();
                return resize(
                    spec,
                    self.ctx.pool,
                    obs,
                    now,
                    0,
                    format!("KEDA: inactive for cooldownPeriod, {current} → 0"),
                );
            }
        }
        if current == 0 || !sync {
            // The HPA does not scale a target at zero replicas, and syncs on its own
            // period.
            return resize(
                spec,
                self.ctx.pool,
                obs,
                now,
                current,
                "HPA: no sync now".into(),
            );
        }
        let desired = self.hpa(t, metric, current);
        resize(
            &self.ctx.spec,
            self.ctx.pool,
            obs,
            now,
            desired,
            format!("HPA: queue length {metric} over {current} replicas → {desired}"),
        )
    }
}

fn gcd(a: Micros, b: Micros) -> Micros {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}
