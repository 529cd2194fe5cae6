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

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

use super::Ctx;
use crate::policy::{Autoscaler, Signals, Wakes, resize, secs};
use crate::trace::Micros;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug)]
pub struct Keda {
    ctx: Ctx,
    polling: Micros,
    cooldown: Micros,
    sync: Micros,
    tolerance: f64,
    down_window: Micros,
    last_active: Option<Micros>,
    /// HPA proposals within the scale-down stabilization window.
    recommendations: VecDeque<(Micros, u32)>,
    /// HPA scale events (time, change) within the rate-limit period.
    events: VecDeque<(Micros, i64)>,
}

impl Keda {
    pub fn new(ctx: Ctx) -> Keda {
        Keda {
            ctx,
            polling: secs(30.0),
            cooldown: secs(300.0),
            sync: secs(15.0),
            tolerance: 0.1,
            down_window: secs(300.0),
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
        "keda".into()
    }

    fn tick(&self) -> Micros {
        self.sync
    }

    fn wakes(&self) -> Wakes {
        Wakes {
            activation: false,
            pressure: None,
        }
    }

    fn extra_metric_delay(&self) -> Micros {
        secs(5.0)
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision {
        let t = signals.t;
        let metric = (obs.queue_depth + obs.held + obs.in_flight) as f64;
        let current = self.ctx.capacity(obs);
        let spec = &self.ctx.spec;
        if t % self.polling == 0 {
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
        if current == 0 {
            // The HPA does not scale a target at zero replicas.
            return resize(
                spec,
                self.ctx.pool,
                obs,
                now,
                0,
                "HPA: target at zero".into(),
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
