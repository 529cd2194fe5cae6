//! Scenario files: a trace, how to transform it, the service and instance models, the
//! SLO, the control loop, and the deployment config scale0 runs with.
//!
//! A scenario is TOML (`bench/scenarios/*.toml`); `[deployment]` is exactly one
//! `[[deployments]]` entry of the deployment config (`core::config::Deployment`), so the
//! policy that is benchmarked is configured the way a user configures it. The pools of
//! that deployment are the instance model (slots, price, boot time); `[instances]` only
//! adds how real boots vary around the configured `boot_time`.
//!
//! `trace.path` is resolved against the directory of the scenario file (as Cargo resolves
//! `path` dependencies), so a scenario runs from any working directory. Parsing here is
//! pure: the CLI reads the files.
//!
//! ```toml
//! name = "azure-code-2023-1x-boot90"
//! seed = 1
//! [trace]
//! path = "../../../shared/traces/azure-llm-code-2023.csv"
//! [transform]            # all optional
//! rate_multiplier = 5.0
//! [service]
//! model = "tokens"       # or "lognormal", "exponential", "fixed"
//! prefill_ms_per_token = 0.2
//! decode_ms_per_token = 25.0
//! [slo]
//! max_wait = "5s"
//! [control]              # all optional
//! tick = "60s"
//! [deployment]
//! name = "code"
//! [[deployment.pools]]
//! name = "a10g"
//! max_instances = 50
//! slots = 8
//! price_per_hour_usd = 1.006
//! boot_time = "90s"
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::baselines;
use crate::policy::Family;
use crate::trace::{Micros, TraceFormat};
use scale0_core::config::{Budget, CapacityType, Config, Deployment, Quota};
use scale0_core::duration::HumanDuration;

/// One benchmark scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Every random draw (thinning, placement in bins, service and boot times,
    /// priorities) derives from this.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    pub trace: TraceSpec,
    #[serde(default)]
    pub transform: Transform,
    pub service: ServiceModel,
    #[serde(default)]
    pub instances: InstanceModel,
    pub slo: Slo,
    #[serde(default)]
    pub requests: RequestModel,
    #[serde(default)]
    pub control: ControlLoop,
    #[serde(default)]
    pub baselines: BaselineParams,
    /// Policies to run (default: all). See [`super::PolicyKind`] for the names.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    pub deployment: Deployment,
    /// Budgets over the deployment, as in the deployment config (`[[budgets]]`);
    /// `decide()` enforces them in the run (`crate::spend`).
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Service quotas covering its pools (`[[quotas]]`, pools named `"<deployment>/<pool>"`).
    #[serde(default)]
    pub quotas: Vec<Quota>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSpec {
    /// Relative to the scenario file's directory.
    pub path: String,
    /// Detected from the content when absent.
    #[serde(default)]
    pub format: Option<TraceFormat>,
    /// Wall-clock instant of the trace's first bin, for traces that do not say
    /// (the NASA counts start at 1995-07-01T04:00:00Z). Matters to scheduled actions.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// Bin width of a count series (`counts`: default 1 s).
    #[serde(default)]
    pub bin: Option<HumanDuration>,
}

/// Applied in this order: window (in trace time), compression, rate multiplier, thinning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transform {
    /// Offset of the window into the trace.
    pub window_start: HumanDuration,
    /// Length of the window (default: to the end of the trace).
    pub window_length: Option<HumanDuration>,
    /// Divide every time by this (2.0 replays an hour in 30 minutes at twice the rate).
    pub time_compression: f64,
    /// Each request becomes `floor(m)` requests, plus one more with probability
    /// `m - floor(m)`. In request traces the copies are moved by a uniform offset within
    /// ±`copy_jitter`/2 so they do not arrive in lockstep; in count series they are
    /// spread over the bin like every other arrival.
    pub rate_multiplier: f64,
    pub copy_jitter: HumanDuration,
    /// Keep each request with this probability (after the multiplier).
    pub thinning: f64,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            window_start: HumanDuration::ZERO,
            window_length: None,
            time_compression: 1.0,
            rate_multiplier: 1.0,
            copy_jitter: HumanDuration::from_secs(60),
            thinning: 1.0,
        }
    }
}

/// How long a request occupies an instance slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceModel {
    /// `overhead + prefill × input tokens + decode × output tokens` (needs a trace with
    /// token counts). Each request in its own slot: continuous batching without
    /// interference, which flatters nobody in particular.
    Tokens {
        prefill_ms_per_token: f64,
        decode_ms_per_token: f64,
        #[serde(default)]
        overhead_ms: f64,
    },
    Fixed {
        seconds: f64,
    },
    Exponential {
        mean_seconds: f64,
    },
    /// Log-normal with the given mean and log-space standard deviation.
    Lognormal {
        mean_seconds: f64,
        sigma: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceModel {
    /// Boots take the pool's `boot_time` × U(1 − spread, 1 + spread); 0 = exactly.
    pub boot_spread: f64,
    /// Spot interruptions of instances of `capacity_type = "spot"` pools: a Poisson
    /// process at this rate per instance-hour, from launch (EC2 can reclaim a booting
    /// instance too). 0 = never.
    pub interruptions_per_instance_hour: f64,
    /// From the interruption warning to the reclaim (EC2 gives two minutes).
    pub interruption_notice: HumanDuration,
    /// Chance that an interruption also takes each other running instance of the same
    /// pool at the same instant (EC2 reclaims capacity of a pool, not one machine).
    pub interruption_correlation: f64,
}

impl Default for InstanceModel {
    fn default() -> Self {
        InstanceModel {
            boot_spread: 0.0,
            interruptions_per_instance_hour: 0.0,
            interruption_notice: HumanDuration::from_secs(120),
            interruption_correlation: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// A request meets the SLO when it waits at most this long for a slot.
    pub max_wait: HumanDuration,
    /// Every policy runs through this first part of the window, but requests arriving
    /// in it are not scored and instance time is billed from its end: a trace that
    /// starts at full rate is judged on its steady part. Zero (the default) measures
    /// the start from zero.
    #[serde(default)]
    pub warmup: HumanDuration,
    /// Waits longer than this are counted apart (`waited_longer` in the report): a
    /// request that waited out a cold boot rather than a warm start.
    #[serde(default = "defaults::long_wait")]
    pub long_wait: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RequestModel {
    /// A request not started by then is answered `expired` (default: the deployment's
    /// `request_deadline`).
    pub deadline: Option<HumanDuration>,
    /// Shares of requests at priorities above 0; the rest are priority 0.
    pub priorities: Vec<PriorityShare>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityShare {
    pub priority: u8,
    pub share: f64,
}

/// How often the control plane decides, and how late it sees things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlLoop {
    /// scale0's periodic decision (the EventBridge tick; its minimum rate is 1 minute).
    pub tick: HumanDuration,
    /// When the first periodic tick comes after the start, below one tick. Every
    /// policy decides once at time 0, then on its ticks from this phase on. Default:
    /// drawn from the seed, so the result of one run is one draw of the phase, as it
    /// is in production, and not tuned to a lucky alignment of ticks and bursts.
    pub tick_phase: Option<HumanDuration>,
    /// From a worker control event (activation, pressure) to the decision it triggers.
    pub activation_latency: HumanDuration,
    /// The worker sends at most one `activation` per deployment in this interval.
    pub activation_interval: HumanDuration,
    /// The worker sends at most one `pressure` per deployment in this interval.
    pub pressure_interval: HumanDuration,
    /// Age of the queue depth and in-flight counts a decision sees.
    pub metric_delay: HumanDuration,
}

impl Default for ControlLoop {
    fn default() -> Self {
        ControlLoop {
            tick: HumanDuration::from_secs(60),
            tick_phase: None,
            activation_latency: HumanDuration::from_secs(1),
            activation_interval: HumanDuration::from_secs(5),
            pressure_interval: HumanDuration::from_secs(10),
            metric_delay: HumanDuration::ZERO,
        }
    }
}

/// Settings of the baselines: one table per family (`[baselines.knative]`, keys as in
/// each family's settings in [`crate::baselines`]), and a shared target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineParams {
    /// Per-instance target of KEDA, Knative and AWS as a share of slots (default: the
    /// deployment's `policy.target_utilization`, so every reactive policy aims at the
    /// same utilisation and only the algorithms differ).
    pub target_utilization: Option<f64>,
    pub keda: toml::Table,
    pub knative: toml::Table,
    #[serde(rename = "aws-target-tracking")]
    pub aws_target_tracking: toml::Table,
    #[serde(rename = "keep-alive")]
    pub keep_alive: toml::Table,
    #[serde(rename = "hybrid-histogram")]
    pub hybrid_histogram: toml::Table,
    #[serde(rename = "always-on")]
    pub always_on: toml::Table,
}

impl BaselineParams {
    pub fn table(&self, family: Family) -> &toml::Table {
        match family {
            Family::Keda => &self.keda,
            Family::Knative => &self.knative,
            Family::AwsTargetTracking => &self.aws_target_tracking,
            Family::KeepAlive => &self.keep_alive,
            Family::HybridHistogram => &self.hybrid_histogram,
            Family::AlwaysOn => &self.always_on,
        }
    }
}

mod defaults {
    use scale0_core::duration::HumanDuration;

    pub fn seed() -> u64 {
        1
    }

    pub fn long_wait() -> HumanDuration {
        HumanDuration::from_secs(30)
    }
}

/// A scenario that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError(pub Vec<String>);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl Scenario {
    /// Parse and validate a scenario (TOML).
    pub fn from_toml_str(s: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(s)
            .map_err(|e| ScenarioError(vec![e.to_string().trim_end().to_string()]))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Every broken rule, each naming its field.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, msg: String| {
            if !ok {
                errors.push(msg);
            }
        };
        let t = &self.transform;
        check(
            t.time_compression.is_finite() && t.time_compression > 0.0,
            format!(
                "transform.time_compression: {} must be positive",
                t.time_compression
            ),
        );
        check(
            t.rate_multiplier.is_finite() && t.rate_multiplier > 0.0,
            format!(
                "transform.rate_multiplier: {} must be positive",
                t.rate_multiplier
            ),
        );
        check(
            t.thinning.is_finite() && t.thinning > 0.0 && t.thinning <= 1.0,
            format!("transform.thinning: {} must be in (0, 1]", t.thinning),
        );
        if let Some(len) = t.window_length {
            check(
                !len.is_zero(),
                "transform.window_length: must be positive".into(),
            );
        }
        if let Some(bin) = self.trace.bin {
            check(!bin.is_zero(), "trace.bin: must be positive".into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match &self.service {
            ServiceModel::Tokens {
                prefill_ms_per_token,
                decode_ms_per_token,
                overhead_ms,
            } => {
                check(
                    prefill_ms_per_token.is_finite()
                        && *prefill_ms_per_token >= 0.0
                        && decode_ms_per_token.is_finite()
                        && *decode_ms_per_token >= 0.0,
                    "service: token rates must be non-negative".into(),
                );
                check(
                    overhead_ms.is_finite() && *overhead_ms >= 0.0,
                    "service.overhead_ms: must be non-negative".into(),
                );
                check(
                    *prefill_ms_per_token + *decode_ms_per_token > 0.0 || *overhead_ms > 0.0,
                    "service: every request would take no time".into(),
                );
            }
            ServiceModel::Fixed { seconds } => check(
                positive(*seconds),
                format!("service.seconds: {seconds} must be positive"),
            ),
            ServiceModel::Exponential { mean_seconds } => check(
                positive(*mean_seconds),
                format!("service.mean_seconds: {mean_seconds} must be positive"),
            ),
            ServiceModel::Lognormal {
                mean_seconds,
                sigma,
            } => {
                check(
                    positive(*mean_seconds),
                    format!("service.mean_seconds: {mean_seconds} must be positive"),
                );
                check(
                    sigma.is_finite() && *sigma >= 0.0,
                    format!("service.sigma: {sigma} must be non-negative"),
                );
            }
        }
        let spread = self.instances.boot_spread;
        check(
            (0.0..1.0).contains(&spread),
            format!("instances.boot_spread: {spread} must be in [0, 1)"),
        );
        let rate = self.instances.interruptions_per_instance_hour;
        check(
            rate.is_finite() && rate >= 0.0,
            format!("instances.interruptions_per_instance_hour: {rate} must be non-negative"),
        );
        check(
            rate == 0.0
                || self
                    .deployment
                    .pools
                    .iter()
                    .any(|p| p.capacity_type == CapacityType::Spot),
            "instances.interruptions_per_instance_hour: only Spot pools are interrupted, \
             and the deployment has none (set a pool's capacity_type = \"spot\")"
                .into(),
        );
        check(
            !self.instances.interruption_notice.is_zero(),
            "instances.interruption_notice: must be positive".into(),
        );
        let corr = self.instances.interruption_correlation;
        check(
            (0.0..=1.0).contains(&corr),
            format!("instances.interruption_correlation: {corr} must be in [0, 1]"),
        );
        check(
            !self.control.tick.is_zero(),
            "control.tick: must be positive".into(),
        );
        if let Some(d) = self.requests.deadline {
            check(!d.is_zero(), "requests.deadline: must be positive".into());
        }
        let total_share: f64 = self.requests.priorities.iter().map(|p| p.share).sum();
        check(
            self.requests
                .priorities
                .iter()
                .all(|p| p.priority <= 9 && p.share.is_finite() && p.share >= 0.0)
                && total_share <= 1.0 + 1e-9,
            "requests.priorities: priorities are 0-9 and shares non-negative, summing to at most 1"
                .into(),
        );
        if let Some(u) = self.baselines.target_utilization {
            check(
                u.is_finite() && u > 0.0 && u <= 1.0,
                format!("baselines.target_utilization: {u} must be in (0, 1]"),
            );
        }
        for family in Family::ALL {
            let settings = baselines::check_settings(family, self.baselines.table(family));
            check(settings.is_ok(), settings.err().unwrap_or_default());
        }
        if let Some(phase) = self.control.tick_phase {
            check(
                phase < self.control.tick,
                format!("control.tick_phase: {phase} must be shorter than control.tick"),
            );
        }
        if let Some(names) = &self.policies {
            for n in names {
                match n.parse::<super::PolicyKind>() {
                    Err(e) => errors.push(format!("policies: {e}")),
                    Ok(super::PolicyKind::Scale0 { policy, .. }) if !policy.is_empty() => {
                        if let Err(e) =
                            super::policy::with_policy_settings(&self.deployment, &policy)
                        {
                            errors.push(format!("policies: `{n}`: {e}"));
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
        // Through the schema rather than a struct literal, so settings added to `Config`
        // later take their defaults here too.
        let wrapped = serde_json::json!({
            "deployments": [&self.deployment],
            "budgets": &self.budgets,
            "quotas": &self.quotas,
        });
        match serde_json::from_value::<Config>(wrapped) {
            Ok(config) => {
                if let Err(e) = config.validate() {
                    errors.extend(e.0.iter().map(|f| f.to_string()));
                }
            }
            Err(e) => errors.push(format!("deployment: {e}")),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError(errors))
        }
    }

    /// The deadline requests carry.
    pub fn deadline(&self) -> HumanDuration {
        self.requests
            .deadline
            .unwrap_or(self.deployment.request_deadline)
    }

    pub fn target_utilization(&self) -> f64 {
        self.baselines
            .target_utilization
            .unwrap_or(self.deployment.policy.target_utilization)
    }

    /// The pool baselines use: the cheapest per slot (first on ties).
    pub fn reference_pool(&self) -> usize {
        let pools = &self.deployment.pools;
        (0..pools.len())
            .min_by(|&a, &b| {
                let per = |i: usize| pools[i].price_per_hour_usd / f64::from(pools[i].slots);
                per(a).total_cmp(&per(b)).then(a.cmp(&b))
            })
            .unwrap_or(0)
    }

    pub fn warmup(&self) -> Micros {
        self.slo.warmup.0.as_micros() as Micros
    }

    /// The shortest boot any instance of `pool` can have.
    pub fn min_boot(&self, pool: usize) -> Micros {
        let boot = self.deployment.pools[pool].boot_time.0.as_micros() as f64;
        (boot * (1.0 - self.instances.boot_spread)).floor() as Micros
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"
        name = "tiny"
        [trace]
        path = "t.csv"
        [service]
        model = "fixed"
        seconds = 1.0
        [slo]
        max_wait = "1s"
        [deployment]
        name = "d"
        [[deployment.pools]]
        name = "p"
        max_instances = 4
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s"
    "#;

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::from_toml_str(MINIMAL).unwrap();
        assert_eq!(s.seed, 1);
        assert_eq!(s.transform, Transform::default());
        assert_eq!(s.control.tick, HumanDuration::from_secs(60));
        assert_eq!(s.deadline(), HumanDuration::from_secs(300));
        assert_eq!(s.target_utilization(), 0.7);
        assert_eq!(s.min_boot(0), 10_000_000);
    }

    #[test]
    fn errors_name_fields() {
        let bad = MINIMAL
            .replace("seconds = 1.0", "seconds = -1.0")
            .replace("slots = 2", "slots = 0");
        let e = Scenario::from_toml_str(&bad).unwrap_err().to_string();
        assert!(e.contains("service.seconds"), "{e}");
        assert!(e.contains("deployments[d].pools[p].slots"), "{e}");
        let unknown = MINIMAL.replace("[slo]", "[slo]\nmax_wiat = \"1s\"");
        assert!(
            Scenario::from_toml_str(&unknown)
                .unwrap_err()
                .to_string()
                .contains("max_wiat")
        );
        let policy = format!("policies = [\"scale0\", \"magic\"]\n{MINIMAL}");
        assert!(
            Scenario::from_toml_str(&policy)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
