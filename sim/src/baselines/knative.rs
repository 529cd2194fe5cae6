//! The Knative Pod Autoscaler (KPA).
//!
//! Sources: knative/serving `pkg/autoscaler/scaling/autoscaler.go` (`Scale`),
//! `pkg/reconciler/autoscaling/kpa/scaler.go` (`handleScaleToZero`) and the defaults in
//! `config/core/configmaps/autoscaler.yaml`: `stable-window` 60 s,
//! `panic-window-percentage` 10 (6 s), `panic-threshold-percentage` 200,
//! `max-scale-up-rate` 1000, `max-scale-down-rate` 2, `scale-to-zero-grace-period` 30 s,
//! `container-concurrency-target-percentage` 70, a 2 s tick.
//!
//! Each tick: observed stable and panic concurrency are the averages of requests in the
//! system (queued at the activator or queue-proxy, or in service) over the two windows;
//! `readyPods = max(1, ready)`; desired stable and panic counts are
//! `ceil(observed / target)`, bounded below by `floor(readyPods / max-scale-down-rate)`
//! and above by `ceil(max-scale-up-rate × readyPods)`. Panic starts (or is extended)
//! when `ceil(panic / target) / readyPods ≥ 2`, ends a stable window after the last
//! breach, and while panicking the count never decreases. A desired count of zero is
//! applied once the activator has been in the request path for the scale-to-zero grace
//! period (`kpa/scaler.go`, `handleScaleToZero`: the grace is how long the activator
//! must have been in proxy mode, not an extra wait after the decision). The activator is
//! in the path whenever the excess burst capacity is negative (`autoscaler.go`:
//! `excessBCF = floor(readyPods × containerConcurrency − observedStable −
//! targetBurstCapacity)`), which with the default `target-burst-capacity` of 200 holds
//! for every fleet of these scenarios at low load, so scale to zero usually happens at
//! once. `scale-to-zero-pod-retention-period` (default 0) keeps the last pod that long
//! after the last non-zero decision. A request arriving at zero reaches the activator,
//! which reports it at once: the simulated KPA wakes on activation.
//!
//! `scale-down-delay` (default 0; Knative's docs advise it for slow-starting revisions)
//! holds scale-down decisions: the applied count is the maximum desired count over the
//! delay (`autoscaler.go`, `delayWindow`).
//!
//! Settings (each a key of the KPA configmap, in `snake_case`): `stable_window`,
//! `panic_window_percentage`, `panic_threshold_percentage`, `max_scale_up_rate`,
//! `max_scale_down_rate`, `scale_to_zero_grace_period`,
//! `scale_to_zero_pod_retention_period`, `scale_down_delay`, `target_burst_capacity`
//! (−1: the activator always in the path), `target_utilization`. Its frontier sweeps
//! `scale_down_delay` and `stable_window`.
//!
//! Here the target is `containerConcurrency × 70%` with `containerConcurrency = slots`.
//! The windows are averaged exactly (the integral of requests in the system), where
//! Knative averages one-second buckets reported by queue-proxies.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::VecDeque;

use super::{Ctx, WindowMax, durations, grid};
use crate::policy::{Autoscaler, Signals, WorkerEvents, resize, secs};
use crate::trace::{MICROS_PER_SEC, Micros};
use scale0_core::duration::HumanDuration;
use scale0_core::policy::{Decision, Observation};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnativeSettings {
    pub stable_window: HumanDuration,
    pub panic_window_percentage: f64,
    pub panic_threshold_percentage: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub scale_to_zero_grace_period: HumanDuration,
    pub scale_to_zero_pod_retention_period: HumanDuration,
    pub scale_down_delay: HumanDuration,
    pub target_burst_capacity: f64,
    pub target_utilization: Option<f64>,
}

impl Default for KnativeSettings {
    fn default() -> Self {
        KnativeSettings {
            stable_window: HumanDuration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace_period: HumanDuration::from_secs(30),
            scale_to_zero_pod_retention_period: HumanDuration::ZERO,
            scale_down_delay: HumanDuration::ZERO,
            target_burst_capacity: 200.0,
            target_utilization: None,
        }
    }
}

impl KnativeSettings {
    pub fn sweep() -> Vec<toml::Table> {
        grid(&[
            ("scale_down_delay", durations(&["0s", "1m", "5m", "15m"])),
            ("stable_window", durations(&["1m", "5m"])),
        ])
    }
}

#[derive(Debug)]
pub struct Knative {
    ctx: Ctx,
    stable_window: Micros,
    panic_window: Micros,
    panic_threshold: f64,
    max_scale_up_rate: f64,
    max_scale_down_rate: f64,
    grace: Micros,
    retention: Micros,
    scale_down_delay: Micros,
    target_burst_capacity: f64,
    panic_time: Option<Micros>,
    max_panic_pods: u32,
    /// Since when the activator has been in the request path.
    activator_since: Option<Micros>,
    last_nonzero: Option<Micros>,
    delay_window: WindowMax,
    /// (metric time, integral of requests in the system) at each call.
    history: VecDeque<(Micros, f64)>,
}

impl Knative {
    pub fn new(ctx: Ctx, s: KnativeSettings) -> Knative {
        let micros = |d: HumanDuration| d.0.as_micros() as Micros;
        let stable_window = micros(s.stable_window).max(1);
        Knative {
            ctx: ctx.with_utilization(s.target_utilization),
            stable_window,
            panic_window: ((stable_window as f64 * s.panic_window_percentage / 100.0) as Micros)
                .max(1),
            panic_threshold: s.panic_threshold_percentage / 100.0,
            max_scale_up_rate: s.max_scale_up_rate,
            max_scale_down_rate: s.max_scale_down_rate,
            grace: micros(s.scale_to_zero_grace_period),
            retention: micros(s.scale_to_zero_pod_retention_period),
            scale_down_delay: micros(s.scale_down_delay),
            target_burst_capacity: s.target_burst_capacity,
            panic_time: None,
            max_panic_pods: 0,
            activator_since: None,
            last_nonzero: None,
            delay_window: WindowMax::default(),
            history: VecDeque::new(),
        }
    }

    /// The integral at `t`, interpolated between recorded calls (0 before the start).
    fn integral_at(&self, t: Micros) -> f64 {
        if t <= 0 {
            return 0.0;
        }
        let mut prev = (0, 0.0);
        for &(s, v) in &self.history {
            if s >= t {
                let span = (s - prev.0) as f64;
                return if span <= 0.0 {
                    v
                } else {
                    prev.1 + (v - prev.1) * (t - prev.0) as f64 / span
                };
            }
            prev = (s, v);
        }
        prev.1
    }

    fn average(&self, now: Micros, integral: f64, window: Micros) -> f64 {
        let from = (now - window).max(0);
        let span = (now - from) as f64 / MICROS_PER_SEC as f64;
        if span <= 0.0 {
            0.0
        } else {
            (integral - self.integral_at(from)) / span
        }
    }
}

impl Autoscaler for Knative {
    fn name(&self) -> String {
        self.ctx.label.clone()
    }

    fn tick(&self) -> Micros {
        secs(2.0)
    }

    fn worker_events(&self) -> WorkerEvents {
        WorkerEvents {
            activation: Some(0),
            pressure: None,
        }
    }

    fn decide(&mut self, now: DateTime<Utc>, obs: &Observation, signals: &Signals) -> Decision {
        let t = signals.metric_t;
        self.history.push_back((t, signals.busy_integral));
        while self.history.len() > 2 && self.history[1].0 <= t - self.stable_window {
            self.history.pop_front();
        }
        let stable = self.average(t, signals.busy_integral, self.stable_window);
        let panic = self.average(t, signals.busy_integral, self.panic_window);
        let target = self.ctx.target;
        let ready = self.ctx.ready(obs);
        let ready_pods = f64::from(ready.max(1));
        let max_up = (self.max_scale_up_rate * ready_pods).ceil();
        let max_down = (ready_pods / self.max_scale_down_rate).floor();
        let dspc = (stable / target).ceil();
        let dppc = (panic / target).ceil();
        let desired_stable = dspc.max(max_down).min(max_up) as u32;
        let desired_panic = dppc.max(max_down).min(max_up) as u32;
        let over = dppc / ready_pods >= self.panic_threshold;
        let now_t = signals.t;
        if over {
            self.panic_time = Some(now_t);
        } else if self
            .panic_time
            .is_some_and(|p| p + self.stable_window < now_t)
        {
            self.panic_time = None;
            self.max_panic_pods = 0;
        }
        let mut desired = desired_stable;
        if self.panic_time.is_some() {
            desired = desired.max(desired_panic);
            if desired > self.max_panic_pods {
                self.max_panic_pods = desired;
            }
            desired = self.max_panic_pods;
        }
        if self.scale_down_delay > 0 {
            desired = self
                .delay_window
                .push(now_t, desired, self.scale_down_delay);
        }
        // The activator is in the path while the excess burst capacity is negative.
        let ebc =
            f64::from(ready) * f64::from(self.ctx.slots) - stable - self.target_burst_capacity;
        if self.target_burst_capacity < 0.0 || ebc < 0.0 {
            self.activator_since.get_or_insert(now_t);
        } else {
            self.activator_since = None;
        }
        let current = self.ctx.capacity(obs);
        let reason = format!(
            "KPA: stable {stable:.2}, panic {panic:.2}, target {target:.1}, ready {ready} → {desired}"
        );
        if desired == 0 && current > 0 {
            let proxied = self
                .activator_since
                .is_some_and(|since| now_t - since >= self.grace);
            let retained = self
                .last_nonzero
                .is_some_and(|t| now_t - t < self.retention);
            if !proxied || retained {
                return resize(
                    &self.ctx.spec,
                    self.ctx.pool,
                    obs,
                    now,
                    current,
                    format!(
                        "{reason}; zero once the activator has been in the path for the grace period"
                    ),
                );
            }
        }
        if desired > 0 {
            self.last_nonzero = Some(now_t);
        }
        resize(&self.ctx.spec, self.ctx.pool, obs, now, desired, reason)
    }
}
