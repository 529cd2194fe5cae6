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
//! applied only after the scale-to-zero grace period (the revision is marked inactive,
//! the activator put in the path, and the grace waited); until then the current scale
//! stays. A request arriving at zero reaches the activator, which reports it at once:
//! the simulated KPA wakes on activation.
//!
//! Here the target is `containerConcurrency × 70%` with `containerConcurrency = slots`.
//! The windows are averaged exactly (the integral of requests in the system), where
//! Knative averages one-second buckets reported by queue-proxies.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;

use super::Ctx;
use crate::policy::{Autoscaler, Signals, Wakes, resize, secs};
use crate::trace::{MICROS_PER_SEC, Micros};
use scale0_core::policy::{Decision, Observation};

#[derive(Debug)]
pub struct Knative {
    ctx: Ctx,
    stable_window: Micros,
    panic_window: Micros,
    panic_threshold: f64,
    max_scale_up_rate: f64,
    max_scale_down_rate: f64,
    grace: Micros,
    panic_time: Option<Micros>,
    max_panic_pods: u32,
    zero_since: Option<Micros>,
    /// (metric time, integral of requests in the system) at each call.
    history: VecDeque<(Micros, f64)>,
}

impl Knative {
    pub fn new(ctx: Ctx) -> Knative {
        Knative {
            ctx,
            stable_window: secs(60.0),
            panic_window: secs(6.0),
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            grace: secs(30.0),
            panic_time: None,
            max_panic_pods: 0,
            zero_since: None,
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
        "knative".into()
    }

    fn tick(&self) -> Micros {
        secs(2.0)
    }

    fn wakes(&self) -> Wakes {
        Wakes {
            activation: true,
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
        let current = self.ctx.capacity(obs);
        let reason = format!(
            "KPA: stable {stable:.2}, panic {panic:.2}, target {target:.1}, ready {ready} → {desired}"
        );
        if desired == 0 {
            let since = *self.zero_since.get_or_insert(now_t);
            if now_t - since < self.grace {
                return resize(
                    &self.ctx.spec,
                    self.ctx.pool,
                    obs,
                    now,
                    current,
                    format!("{reason}; zero after the grace period"),
                );
            }
        } else {
            self.zero_since = None;
        }
        resize(&self.ctx.spec, self.ctx.pool, obs, now, desired, reason)
    }
}
