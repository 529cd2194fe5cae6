//! The one configuration schema: deployments, their instance pools, the scaling policy,
//! scheduled actions, and the cost controls (budgets, service quotas, Spot and warm
//! pools).
//!
//! People write it in TOML; Lambda reads the same structure as JSON (Terraform renders
//! it with `jsonencode`). Loading ([`Config::load`]) is three steps, and every error of
//! steps 2 and 3 is reported at once, so a person fixes a broken file in one pass:
//!
//! 1. **Syntax**: the text (UTF-8, [`Config::load_bytes`] says where it is not) becomes
//!    a TOML or JSON tree. A syntax error stops here, with its line and column.
//! 2. **Schema**: the tree is read into the types below by [`crate::document::read`],
//!    which reports every unknown key, wrongly typed value and missing field, not only
//!    the first as serde alone would. The serde types stay the one schema.
//! 3. **Rules** ([`Config::validate`]): every semantic rule. Each [`FieldError`] names
//!    the field by a readable path such as `deployments[chat].pools[a10g].max_instances`.
//!
//! Time zones and schedule expressions stay strings in the schema and are checked in
//! step 3, each on its own, so a bad zone does not hide a bad expression.
//! [`Config::warnings`] lists what is valid but probably not meant (an `at()` that
//! already fired); it takes `now`, so the rules themselves never depend on the clock.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::document::{self, Node};
use crate::duration::HumanDuration;
use crate::schedule::{self, Schedule};

/// The whole file: one or more deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "deployments")]
    pub deployments: Vec<Deployment>,
    /// How the queue worker uses RabbitMQ. Optional; every field has a default.
    #[serde(default)]
    pub broker: BrokerSettings,
    /// Where instances come from: local processes or EC2 Auto Scaling groups. Optional;
    /// the default is `local`.
    #[serde(default)]
    pub provider: ProviderSettings,
    /// Spending limits over one or more deployments (`core::cost::budget` enforces them).
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Service quotas (in vCPUs) shared by the pools they cover, across deployments.
    #[serde(default)]
    pub quotas: Vec<Quota>,
}

/// A spending limit: over a period, the deployments in scope may not spend more than
/// `limit_usd` (a hard cap, enforced before every launch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// 1-64 of a-z 0-9 - _, unique among budgets.
    pub name: String,
    /// The deployments whose spend counts; absent means every deployment.
    #[serde(default)]
    pub deployments: Option<Vec<String>>,
    pub period: BudgetPeriod,
    /// The length of a rolling period; required for, and only for, `period = "rolling"`.
    #[serde(default)]
    pub window: Option<HumanDuration>,
    /// IANA zone in which daily and monthly periods begin at midnight.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    pub limit_usd: f64,
    /// Shares of the limit at which an alert is raised once per period, each in (0, 1].
    #[serde(default = "defaults::alert_thresholds")]
    pub alert_thresholds: Vec<f64>,
    /// What the deployments do when the cap blocks a launch.
    #[serde(default)]
    pub at_cap: AtCap,
}

impl Budget {
    /// Whether `deployment`'s spend counts against this budget.
    pub fn covers(&self, deployment: &str) -> bool {
        self.deployments
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == deployment))
    }
}

/// The period a budget's spend is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetPeriod {
    /// From midnight to midnight in the budget's time zone.
    Daily,
    /// From midnight of the 1st in the budget's time zone to the next 1st.
    Monthly,
    /// The last `window`, whatever the clock says.
    Rolling,
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetPeriod::Daily => "daily",
            BudgetPeriod::Monthly => "monthly",
            BudgetPeriod::Rolling => "rolling",
        })
    }
}

/// What a budget does to its deployments once it blocks a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AtCap {
    /// No launch that could take spend past the cap; what runs keeps serving until the
    /// cap itself forces it to stop.
    #[default]
    BlockScaleOut,
    /// As `block-scale-out`, and the deployments also drain down to their pools'
    /// `min_instances` for the rest of the period.
    ScaleToMin,
}

impl fmt::Display for AtCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AtCap::BlockScaleOut => "block-scale-out",
            AtCap::ScaleToMin => "scale-to-min",
        })
    }
}

/// An AWS service quota in vCPUs (e.g. `L-DB2E81BA`, "Running On-Demand G and VT
/// instances") and the pools, in any deployment, whose instances count against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// The Service Quotas code, `L-` and eight hex digits.
    pub code: String,
    /// 1-64 of a-z 0-9 - _, unique among quotas.
    pub name: String,
    /// The quota's value: vCPUs the covered pools may run together.
    pub vcpus: u32,
    /// `"<deployment>/<pool>"` of every pool it covers.
    pub pools: Vec<String>,
}

impl Quota {
    /// Whether `pool` of `deployment` counts against this quota.
    pub fn covers(&self, deployment: &str, pool: &str) -> bool {
        self.pools.iter().any(|p| {
            p.split_once('/')
                .is_some_and(|(d, name)| d == deployment && name == pool)
        })
    }
}

/// Which instance provider the control plane drives, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderSettings {
    /// `local` (`scale0-instance` processes on this machine) or `aws-asg` (one EC2
    /// Auto Scaling group per pool).
    pub kind: ProviderKind,
    pub local: LocalProviderSettings,
    pub aws_asg: AwsAsgSettings,
    /// How long a pool is skipped after the provider reports throttling, insufficient
    /// capacity or a quota error, so the next decisions launch in other pools.
    pub unavailable_backoff: HumanDuration,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            kind: ProviderKind::Local,
            local: LocalProviderSettings::default(),
            aws_asg: AwsAsgSettings::default(),
            unavailable_backoff: HumanDuration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Local,
    AwsAsg,
}

/// The local provider: each instance is a `scale0-instance` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalProviderSettings {
    /// Directory of the pid files and logs that let a restarted control plane find its
    /// running instances again. Default: `$TMPDIR/scale0-local` (`/tmp/scale0-local`).
    pub state_dir: Option<String>,
    /// The model server to run: a path, or a name looked up next to the running
    /// binary and then on `PATH`.
    pub instance_command: String,
    /// Time between SIGTERM and SIGKILL when stopping an instance.
    pub stop_timeout: HumanDuration,
}

impl Default for LocalProviderSettings {
    fn default() -> Self {
        LocalProviderSettings {
            state_dir: None,
            instance_command: "scale0-instance".into(),
            stop_timeout: HumanDuration::from_secs(10),
        }
    }
}

/// The aws-asg provider: one EC2 Auto Scaling group per pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsAsgSettings {
    /// AWS region; default: the SDK's (the `AWS_REGION` Lambda sets).
    pub region: Option<String>,
    /// An instance's base URL, from `{instance_id}` and `{region}`. The default relies
    /// on resource-based hostnames with DNS A records enabled on the pools' subnets.
    pub endpoint_template: String,
}

impl Default for AwsAsgSettings {
    fn default() -> Self {
        AwsAsgSettings {
            region: None,
            endpoint_template: "http://{instance_id}.{region}.compute.internal:8000".into(),
        }
    }
}

/// RabbitMQ settings of the queue worker. The broker's URL is not here: it comes from
/// the environment (`SCALE0_AMQP_URL`), so no secret lives in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    /// Declare request queues as quorum queues (replicated) instead of classic ones.
    /// Quorum queues on RabbitMQ before 4.0 have no `x-max-priority`; the worker still
    /// orders what it holds by priority.
    pub quorum_queues: bool,
    /// The broker's `consumer_timeout`: RabbitMQ closes a channel that holds a delivery
    /// unacked longer (30 minutes by default). Request deadlines must be shorter, and
    /// the worker answers any request it has held this long minus 30 s as `expired`.
    pub consumer_timeout: HumanDuration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            quorum_queues: false,
            consumer_timeout: HumanDuration::from_secs(30 * 60),
        }
    }
}

/// One model served from one queue, on one or more pools of instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Queue and routing key suffix (`scale0.<name>`) and Redis key prefix.
    pub name: String,
    /// Deadline for a request that carries none of its own (`expiration` or
    /// `x-scale0-deadline`).
    #[serde(default = "defaults::request_deadline")]
    pub request_deadline: HumanDuration,
    /// What one request costs an instance slot before measurements exist.
    #[serde(default = "defaults::expected_service_time")]
    pub expected_service_time: HumanDuration,
    /// Requests a worker holds unacked while no instance is ready; past it, it sheds.
    #[serde(default = "defaults::max_held_requests")]
    pub max_held_requests: u32,
    /// Largest request body forwarded to an instance.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u32,
    /// HTTP path that answers 200 when an instance can serve (vLLM and TGI `/health`,
    /// Triton `/v2/health/ready`).
    #[serde(default = "defaults::readiness_path")]
    pub readiness_path: String,
    /// HTTP path requests are POSTed to.
    #[serde(default = "defaults::inference_path")]
    pub inference_path: String,
    #[serde(default)]
    pub policy: Policy,
    /// The first this many instances of the deployment are on-demand, whatever Spot
    /// costs (EC2's `OnDemandBaseCapacity`): capacity that interruptions cannot take.
    #[serde(default)]
    pub on_demand_base: u32,
    pub pools: Vec<Pool>,
    #[serde(default)]
    pub schedules: Vec<ScheduledAction>,
}

impl Deployment {
    /// The pool called `name`, if it is configured.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Slots of an instance of pool `name`; an instance of a pool no longer configured
    /// counts as one.
    pub fn slots_of(&self, name: &str) -> u32 {
        self.pool(name).map_or(1, |p| p.slots)
    }
}

/// A group of identical instances (one EC2 Auto Scaling group, or local processes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// Informational for local pools; the launch template's type for AWS pools.
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub min_instances: u32,
    pub max_instances: u32,
    /// Requests one instance serves at once.
    pub slots: u32,
    pub price_per_hour_usd: f64,
    /// Expected time from launch to ready, used as the lead time until boots are measured.
    pub boot_time: HumanDuration,
    /// aws-asg provider: the pool's Auto Scaling group. Default
    /// `scale0-<deployment>-<pool>`.
    #[serde(default)]
    pub asg_name: Option<String>,
    /// Local provider: extra flags for `scale0-instance` (latency model, faults); the
    /// provider sets `--listen`, `--id`, `--boot-delay`, `--slots` and the paths itself.
    #[serde(default)]
    pub instance_args: Vec<String>,
    /// On-demand (the default) or Spot: reclaimable with two minutes' notice, cheaper.
    #[serde(default)]
    pub capacity_type: CapacityType,
    /// vCPUs of one instance, counted against the quotas that cover the pool; required
    /// for a pool a quota covers.
    #[serde(default)]
    pub vcpus_per_instance: Option<u32>,
    /// Stopped, pre-initialised instances kept ready to start (the EC2 Auto Scaling
    /// warm pool). On-demand pools only: AWS has no warm pool behind Spot.
    #[serde(default)]
    pub warm_pool_size: u32,
    /// Start → ready of a warm instance; required when `warm_pool_size` > 0, shorter
    /// than `boot_time`.
    #[serde(default)]
    pub warm_boot_time: Option<HumanDuration>,
    /// What one stopped warm instance costs per hour (its volumes); required when
    /// `warm_pool_size` > 0.
    #[serde(default)]
    pub warm_price_per_hour_usd: Option<f64>,
}

/// How a pool's instances are bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    #[default]
    OnDemand,
    /// Spare EC2 capacity: cheaper, reclaimed with a two-minute warning.
    Spot,
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
        })
    }
}

impl Pool {
    /// The Auto Scaling group of this pool of `deployment`.
    pub fn asg_name(&self, deployment: &str) -> String {
        self.asg_name
            .clone()
            .unwrap_or_else(|| format!("scale0-{deployment}-{}", self.name))
    }
}

/// Flags of `scale0-instance` the local provider sets itself.
pub const LOCAL_PROVIDER_FLAGS: [&str; 6] = [
    "--listen",
    "--id",
    "--boot-delay",
    "--slots",
    "--readiness-path",
    "--inference-path",
];

/// How a deployment scales. Defaults follow Knative's KPA where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Share of slots target tracking aims to keep busy, in (0, 1].
    pub target_utilization: f64,
    /// The longest a request should wait in the queue once capacity is ready: a backlog
    /// is sized to drain within this (never beyond the request deadline). Shorter buys
    /// more instances in a burst; the request deadline is what a request can bear.
    pub target_queue_wait: HumanDuration,
    /// Demand is averaged over this window in normal mode.
    pub stable_window: HumanDuration,
    /// The short window that detects a burst.
    pub panic_window: HumanDuration,
    /// Burst mode starts when short-window demand reaches this multiple of ready capacity.
    pub panic_threshold: f64,
    /// Scale-in uses the highest recommendation within this window.
    pub scale_down_stabilization: HumanDuration,
    /// At most divide capacity by this much per decision (Knative's max-scale-down-rate).
    pub max_scale_down_rate: f64,
    /// Idle time (no backlog, nothing in flight, no arrivals) before scaling to zero.
    pub scale_to_zero_grace: HumanDuration,
    /// Share of requests allowed to wait for a boot, in (0, 1), e.g. `0.01`. When set,
    /// the keep-alive after the last request is learned from the deployment's idle
    /// gaps (the shortest that would have kept this share over the history) and
    /// replaces `scale_to_zero_grace`, which stays the fallback until there is 6 h of
    /// history. Unset, the grace applies.
    pub cold_start_budget: Option<f64>,
    /// Pre-warming from the deployment's time-of-week profile: `off`, `forecast-only`
    /// (the decision says what it would hold and changes nothing) or `on`.
    pub predictive: Predictive,
    /// An instance not ready this long after launch is replaced.
    pub boot_timeout: HumanDuration,
    /// A draining instance is stopped at the latest this long after draining began.
    pub drain_timeout: HumanDuration,
    /// Consecutive failed health checks or dispatches before an instance is replaced.
    pub unhealthy_after_failures: u32,
    pub step_rules: Vec<StepRule>,
}

/// Whether the forecast pre-warms (`crate::policy` forecast step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Predictive {
    #[default]
    Off,
    /// Compute the forecast and say in the decision what it would hold; change nothing.
    ForecastOnly,
    On,
}

/// "add 2 if gpu_utilization > 0.75 for 5m", with a cooldown after it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRule {
    pub metric: Metric,
    /// The rule breaches while the metric is strictly above this value.
    pub above: f64,
    /// How long the breach must last before the rule fires.
    #[serde(rename = "for", default)]
    pub sustained_for: HumanDuration,
    /// Instances added on top of current capacity when the rule fires.
    pub add: u32,
    /// Time after firing before this rule can fire again.
    #[serde(default = "defaults::step_cooldown")]
    pub cooldown: HumanDuration,
}

/// Metrics step rules can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean GPU utilisation of ready instances, 0–1.
    GpuUtilization,
    /// 95th percentile request latency over the last minute, milliseconds.
    LatencyP95Ms,
    /// Requests waiting in the broker queue or held by workers.
    QueueDepth,
    /// Requests being served by instances.
    InFlight,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::GpuUtilization => "gpu_utilization",
            Metric::LatencyP95Ms => "latency_p95_ms",
            Metric::QueueDepth => "queue_depth",
            Metric::InFlight => "in_flight",
        })
    }
}

/// A scheduled action: when its expression fires, it sets the deployment's floor
/// and/or ceiling (total instances over all pools) until another action replaces them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledAction {
    pub name: String,
    /// `cron(...)`, `rate(...)` or `at(...)`, as EventBridge Scheduler writes them.
    pub expression: String,
    /// IANA time zone the expression is read in.
    #[serde(default = "defaults::time_zone")]
    pub time_zone: String,
    #[serde(default)]
    pub min_instances: Option<u32>,
    #[serde(default)]
    pub max_instances: Option<u32>,
    /// RFC 3339; no firing before it (EventBridge Scheduler's StartDate).
    #[serde(default)]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339; no firing after it (EndDate).
    #[serde(default)]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
}

impl ScheduledAction {
    /// The parsed schedule. Fails only for a config that did not pass validation.
    pub fn schedule(&self) -> Result<Schedule, crate::schedule::ScheduleError> {
        Ok(Schedule::parse(&self.expression, &self.time_zone)?.with_window(self.start, self.end))
    }
}

mod defaults {
    use crate::duration::HumanDuration;

    pub fn request_deadline() -> HumanDuration {
        HumanDuration::from_secs(300)
    }
    pub fn expected_service_time() -> HumanDuration {
        HumanDuration::from_secs(2)
    }
    pub fn max_held_requests() -> u32 {
        10_000
    }
    pub fn max_body_bytes() -> u32 {
        1 << 20
    }
    pub fn readiness_path() -> String {
        "/health".into()
    }
    pub fn inference_path() -> String {
        "/v1/completions".into()
    }
    pub fn step_cooldown() -> HumanDuration {
        HumanDuration::from_secs(300)
    }
    pub fn time_zone() -> String {
        "UTC".into()
    }
    pub fn alert_thresholds() -> Vec<f64> {
        vec![0.8, 1.0]
    }
}

/// Default `target_queue_wait`, seconds.
const TARGET_QUEUE_WAIT_DEFAULT_S: u64 = 10;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            target_utilization: 0.7,
            target_queue_wait: HumanDuration::from_secs(TARGET_QUEUE_WAIT_DEFAULT_S),
            stable_window: HumanDuration::from_secs(60),
            panic_window: HumanDuration::from_secs(6),
            panic_threshold: 2.0,
            scale_down_stabilization: HumanDuration::from_secs(300),
            max_scale_down_rate: 2.0,
            scale_to_zero_grace: HumanDuration::from_secs(300),
            cold_start_budget: None,
            predictive: Predictive::Off,
            boot_timeout: HumanDuration::from_secs(900),
            drain_timeout: HumanDuration::from_secs(120),
            unhealthy_after_failures: 3,
            step_rules: Vec::new(),
        }
    }
}

/// A config that could not be read at all: not UTF-8, not TOML or JSON. Everything
/// after that is a [`FieldError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// One broken rule, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// A readable path, e.g. `deployments[chat].pools[a10g].max_instances`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every rule a config breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Either kind of failure to load a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Not text, or not TOML or JSON: the first syntax error, with its position.
    #[error("cannot parse configuration: {0}")]
    Parse(#[from] ParseError),
    /// Every field at fault: unknown keys, wrong types, missing fields, broken rules.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
}

impl Config {
    /// Parse TOML and read it into the schema, without checking the rules.
    pub fn from_toml_str(s: &str) -> Result<Config, LoadError> {
        Config::read(Node::from_toml(s).map_err(|e| ParseError(e.0))?)
    }

    /// Parse JSON and read it into the schema, without checking the rules.
    pub fn from_json_str(s: &str) -> Result<Config, LoadError> {
        Config::read(Node::from_json(s).map_err(|e| ParseError(e.0))?)
    }

    fn read(tree: Node) -> Result<Config, LoadError> {
        match document::read::<Config>(&tree) {
            (Some(config), faults) if faults.is_empty() => Ok(config),
            (_, faults) => Err(ValidationErrors(faults).into()),
        }
    }

    /// Parse and validate, choosing the encoding by the first non-blank character
    /// (`{` is JSON, anything else TOML). Errors are every schema fault and every
    /// broken rule, except rules about a part that already has a schema fault (a
    /// deployment whose pool did not read is not also "without pools").
    pub fn load(s: &str) -> Result<Config, LoadError> {
        let tree = if s.trim_start().starts_with('{') {
            Node::from_json(s)
        } else {
            Node::from_toml(s)
        }
        .map_err(|e| ParseError(e.0))?;
        let (config, faults) = document::read::<Config>(&tree);
        let broken = match &config {
            Some(c) => c.validate().err().map(|e| e.0).unwrap_or_default(),
            None => Vec::new(),
        };
        match config {
            Some(config) if faults.is_empty() && broken.is_empty() => Ok(config),
            _ => {
                let mut errors = faults;
                let faulty: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
                errors.extend(
                    broken
                        .into_iter()
                        .filter(|e| !faulty.iter().any(|f| overlaps(&e.field, f))),
                );
                Err(ValidationErrors(errors).into())
            }
        }
    }

    /// [`Config::load`] of raw bytes: text that is not UTF-8 is refused with the
    /// position of the first bad byte.
    pub fn load_bytes(bytes: &[u8]) -> Result<Config, LoadError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let before = &bytes[..at];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let column = at
                - before
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            ParseError(format!(
                "not UTF-8: byte 0x{:02x} at line {line}, column {column} (byte offset {at})",
                bytes[at]
            ))
        })?;
        Config::load(text)
    }

    pub fn deployment(&self, name: &str) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.name == name)
    }

    /// What is valid but probably not meant, as of `now`: scheduled actions that will
    /// never fire again. An `at()` in the past (or an action whose `end` passed) keeps
    /// the floor or ceiling of its last firing in force for good, unless a later firing
    /// of another action replaces it. These are warnings, not errors: a config must not
    /// turn invalid as time passes (a Lambda cold start the day after an `at()` fired
    /// would refuse the config it has run on).
    pub fn warnings(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<FieldError> {
        let mut out = Vec::new();
        for d in &self.deployments {
            let schedules: Vec<(&ScheduledAction, Schedule)> = d
                .schedules
                .iter()
                .filter_map(|a| Some((a, a.schedule().ok()?)))
                .collect();
            for (action, s) in &schedules {
                if s.next_after(now).is_some() {
                    continue;
                }
                let field = format!(
                    "deployments[{}].schedules[{}].expression",
                    d.name, action.name
                );
                let sets = [
                    ("min_instances", action.min_instances),
                    ("max_instances", action.max_instances),
                ]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
                .collect::<Vec<_>>()
                .join(" and ");
                let Some(last) = s.latest_at_or_before(now) else {
                    out.push(FieldError {
                        field,
                        message: format!("never fires (as of {now}): its {sets} never applies"),
                    });
                    continue;
                };
                let replaced = schedules.iter().any(|(other, o)| {
                    other.name != action.name
                        && (o.next_after(now).is_some()
                            || o.latest_at_or_before(now).is_some_and(|t| t > last))
                });
                let lasts = if replaced {
                    "until a firing of another action replaces it"
                } else {
                    "for good: no other action fires after it"
                };
                out.push(FieldError {
                    field,
                    message: format!(
                        "fired for the last time at {last} and never fires again: its {sets} \
                         stays in force {lasts}"
                    ),
                });
            }
        }
        out
    }

    /// Check every rule and return all broken ones.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::default();
        if self.deployments.is_empty() {
            v.err("deployments", "at least one deployment is required");
        }
        let mut names = HashSet::new();
        for d in &self.deployments {
            let at = format!("deployments[{}]", d.name);
            if !names.insert(d.name.as_str()) {
                v.err(format!("{at}.name"), "duplicate deployment name");
            }
            validate_deployment(&mut v, &at, d);
        }
        validate_broker(&mut v, &self.broker, &self.deployments);
        validate_provider(&mut v, &self.provider, &self.deployments);
        validate_budgets(&mut v, &self.budgets, &self.deployments);
        validate_quotas(&mut v, &self.quotas, &self.deployments);
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(v.errors))
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn positive(&mut self, field: String, d: HumanDuration) {
        if d.is_zero() {
            self.err(field, "must be a positive duration, got 0s");
        }
    }

    fn positive_number(&mut self, field: String, x: f64) {
        if !(x.is_finite() && x > 0.0) {
            self.err(field, format!("must be a positive number, got {x}"));
        }
    }
}

/// Whether a broken rule at `rule` concerns the part where a schema fault at `fault`
/// is: the same top-level part (`deployments[chat]`, `broker`, `provider`), or a
/// parent of it (`deployments` when a deployment did not read).
fn overlaps(rule: &str, fault: &str) -> bool {
    let top = |p: &str| -> String {
        let end = p.find(['.', '[']).unwrap_or(p.len());
        let end = match p[end..].starts_with('[') {
            true => p[end..].find(']').map_or(p.len(), |c| end + c + 1),
            false => end,
        };
        p[..end].to_string()
    };
    top(rule) == top(fault) || fault.starts_with(rule)
}

/// Names become AMQP queue names and Redis key parts: keep them plain.
fn check_name(v: &mut Validator, field: String, name: &str) {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if name.is_empty() || name.len() > 64 || !ok_chars {
        v.err(
            field,
            format!("`{name}` must be 1-64 characters of a-z, 0-9, '-' or '_'"),
        );
    }
}

fn validate_deployment(v: &mut Validator, at: &str, d: &Deployment) {
    check_name(v, format!("{at}.name"), &d.name);
    v.positive(format!("{at}.request_deadline"), d.request_deadline);
    v.positive(
        format!("{at}.expected_service_time"),
        d.expected_service_time,
    );
    if d.expected_service_time >= d.request_deadline && !d.request_deadline.is_zero() {
        v.err(
            format!("{at}.expected_service_time"),
            format!(
                "{} must be shorter than request_deadline {}",
                d.expected_service_time, d.request_deadline
            ),
        );
    }
    if d.max_held_requests == 0 {
        v.err(format!("{at}.max_held_requests"), "must be at least 1");
    }
    if d.max_body_bytes == 0 {
        v.err(format!("{at}.max_body_bytes"), "must be at least 1");
    }
    for (field, path) in [
        ("readiness_path", &d.readiness_path),
        ("inference_path", &d.inference_path),
    ] {
        if !path.starts_with('/') {
            v.err(
                format!("{at}.{field}"),
                format!("`{path}` must start with '/'"),
            );
        }
    }

    validate_policy(v, &format!("{at}.policy"), &d.policy);

    if d.pools.is_empty() {
        v.err(format!("{at}.pools"), "at least one pool is required");
    }
    let mut pool_names = HashSet::new();
    for p in &d.pools {
        let pat = format!("{at}.pools[{}]", p.name);
        check_name(v, format!("{pat}.name"), &p.name);
        if !pool_names.insert(p.name.as_str()) {
            v.err(format!("{pat}.name"), "duplicate pool name");
        }
        if p.max_instances == 0 {
            v.err(format!("{pat}.max_instances"), "must be at least 1");
        }
        if p.min_instances > p.max_instances {
            v.err(
                format!("{pat}.min_instances"),
                format!(
                    "min_instances {} is greater than max_instances {}",
                    p.min_instances, p.max_instances
                ),
            );
        }
        if p.slots == 0 {
            v.err(format!("{pat}.slots"), "must be at least 1, got 0");
        }
        v.positive_number(format!("{pat}.price_per_hour_usd"), p.price_per_hour_usd);
        v.positive(format!("{pat}.boot_time"), p.boot_time);
        if p.boot_time > d.policy.boot_timeout {
            v.err(
                format!("{pat}.boot_time"),
                format!(
                    "{} exceeds policy.boot_timeout {}: every boot would be replaced",
                    p.boot_time, d.policy.boot_timeout
                ),
            );
        }
        validate_pool_costs(v, &pat, p);
    }
    let on_demand_max: u64 = d
        .pools
        .iter()
        .filter(|p| p.capacity_type == CapacityType::OnDemand)
        .map(|p| u64::from(p.max_instances))
        .sum();
    if u64::from(d.on_demand_base) > on_demand_max {
        v.err(
            format!("{at}.on_demand_base"),
            format!(
                "{} exceeds the on-demand pools' total max_instances {on_demand_max}",
                d.on_demand_base
            ),
        );
    }

    let max_total: u64 = d.pools.iter().map(|p| u64::from(p.max_instances)).sum();
    let mut action_names = HashSet::new();
    for s in &d.schedules {
        let sat = format!("{at}.schedules[{}]", s.name);
        if s.name.is_empty() {
            v.err(format!("{sat}.name"), "must not be empty");
        }
        if !action_names.insert(s.name.as_str()) {
            v.err(format!("{sat}.name"), "duplicate scheduled action name");
        }
        // The zone and the expression are checked apart, so one does not hide the other.
        let zone = schedule::parse_time_zone(&s.time_zone);
        if let Err(e) = &zone {
            v.err(format!("{sat}.time_zone"), e.to_string());
        }
        match schedule::parse_expression(&s.expression) {
            Err(e) => v.err(format!("{sat}.expression"), e.to_string()),
            // With both valid, what needs the two together (an `at()` in a DST gap).
            Ok(_) if zone.is_ok() => {
                if let Err(e) = s.schedule() {
                    v.err(format!("{sat}.expression"), e.to_string());
                }
            }
            Ok(_) => {}
        }
        match (s.min_instances, s.max_instances) {
            (None, None) => v.err(sat.clone(), "sets neither min_instances nor max_instances"),
            (Some(lo), Some(hi)) if lo > hi => v.err(
                format!("{sat}.min_instances"),
                format!("min_instances {lo} is greater than max_instances {hi}"),
            ),
            _ => {}
        }
        if let Some(lo) = s.min_instances
            && u64::from(lo) > max_total
        {
            v.err(
                format!("{sat}.min_instances"),
                format!("floor {lo} exceeds the pools' total max_instances {max_total}"),
            );
        }
        if let (Some(start), Some(end)) = (s.start, s.end)
            && start >= end
        {
            v.err(
                format!("{sat}.end"),
                format!("{end} is not after start {start}"),
            );
        }
    }
}

/// Spot, warm pool and vCPU fields of one pool.
fn validate_pool_costs(v: &mut Validator, pat: &str, p: &Pool) {
    if p.vcpus_per_instance == Some(0) {
        v.err(
            format!("{pat}.vcpus_per_instance"),
            "must be at least 1, got 0",
        );
    }
    if p.warm_pool_size == 0 {
        for (field, given) in [
            ("warm_boot_time", p.warm_boot_time.is_some()),
            (
                "warm_price_per_hour_usd",
                p.warm_price_per_hour_usd.is_some(),
            ),
        ] {
            if given {
                v.err(
                    format!("{pat}.{field}"),
                    "applies only to a pool with warm_pool_size > 0",
                );
            }
        }
        return;
    }
    if p.capacity_type == CapacityType::Spot {
        v.err(
            format!("{pat}.warm_pool_size"),
            "a warm pool needs an on-demand pool: EC2 Auto Scaling cannot keep a warm pool \
             behind Spot instances (pair an on-demand pool's warm pool with Spot pools)",
        );
    }
    if p.warm_pool_size > p.max_instances {
        v.err(
            format!("{pat}.warm_pool_size"),
            format!(
                "{} exceeds max_instances {}: a warm instance starts into the pool",
                p.warm_pool_size, p.max_instances
            ),
        );
    }
    match p.warm_boot_time {
        None => v.err(
            format!("{pat}.warm_boot_time"),
            "is required when warm_pool_size > 0",
        ),
        Some(warm) if warm.is_zero() => v.positive(format!("{pat}.warm_boot_time"), warm),
        Some(warm) if warm >= p.boot_time => v.err(
            format!("{pat}.warm_boot_time"),
            format!("{warm} must be shorter than boot_time {}", p.boot_time),
        ),
        Some(_) => {}
    }
    match p.warm_price_per_hour_usd {
        None => v.err(
            format!("{pat}.warm_price_per_hour_usd"),
            "is required when warm_pool_size > 0 (what a stopped instance's volumes cost)",
        ),
        Some(price) if !(price.is_finite() && price >= 0.0) => v.err(
            format!("{pat}.warm_price_per_hour_usd"),
            format!("must be a number ≥ 0, got {price}"),
        ),
        Some(price) if price >= p.price_per_hour_usd => v.err(
            format!("{pat}.warm_price_per_hour_usd"),
            format!(
                "{price} must be less than price_per_hour_usd {} (a stopped instance \
                 costs less than a running one)",
                p.price_per_hour_usd
            ),
        ),
        Some(_) => {}
    }
}

/// The shortest and longest rolling budget window. The ledger keeps spend in
/// 15-minute buckets (so an hour is the shortest window it measures well) for 32
/// days (the longest month, plus a day).
pub const MIN_ROLLING_WINDOW: HumanDuration = HumanDuration::from_secs(3600);
pub const MAX_ROLLING_WINDOW: HumanDuration = HumanDuration::from_secs(31 * 86_400);

fn validate_budgets(v: &mut Validator, budgets: &[Budget], deployments: &[Deployment]) {
    let mut names = HashSet::new();
    for b in budgets {
        let at = format!("budgets[{}]", b.name);
        check_name(v, format!("{at}.name"), &b.name);
        if !names.insert(b.name.as_str()) {
            v.err(format!("{at}.name"), "duplicate budget name");
        }
        if let Some(scope) = &b.deployments {
            if scope.is_empty() {
                v.err(
                    format!("{at}.deployments"),
                    "names no deployment (leave it out to cover every deployment)",
                );
            }
            let mut seen = HashSet::new();
            for name in scope {
                if !deployments.iter().any(|d| &d.name == name) {
                    v.err(
                        format!("{at}.deployments"),
                        format!("`{name}` is not a configured deployment"),
                    );
                } else if !seen.insert(name.as_str()) {
                    v.err(
                        format!("{at}.deployments"),
                        format!("`{name}` is listed twice"),
                    );
                }
            }
        }
        match (b.period, b.window) {
            (BudgetPeriod::Rolling, None) => v.err(
                format!("{at}.window"),
                "is required when period = \"rolling\" (e.g. window = \"7d\")",
            ),
            (BudgetPeriod::Rolling, Some(w))
                if w < MIN_ROLLING_WINDOW || w > MAX_ROLLING_WINDOW =>
            {
                v.err(
                    format!("{at}.window"),
                    format!("{w} must be between {MIN_ROLLING_WINDOW} and {MAX_ROLLING_WINDOW}"),
                )
            }
            (BudgetPeriod::Daily | BudgetPeriod::Monthly, Some(_)) => v.err(
                format!("{at}.window"),
                format!(
                    "applies only to period = \"rolling\" (a {} period is fixed by the calendar)",
                    b.period
                ),
            ),
            _ => {}
        }
        if b.time_zone.parse::<chrono_tz::Tz>().is_err() {
            v.err(
                format!("{at}.time_zone"),
                format!("unknown IANA time zone `{}`", b.time_zone),
            );
        }
        v.positive_number(format!("{at}.limit_usd"), b.limit_usd);
        let mut seen: Vec<f64> = Vec::new();
        for &t in &b.alert_thresholds {
            if !(t.is_finite() && t > 0.0 && t <= 1.0) {
                v.err(
                    format!("{at}.alert_thresholds"),
                    format!("{t} must be a share of the limit in (0, 1]"),
                );
            } else if seen.contains(&t) {
                v.err(
                    format!("{at}.alert_thresholds"),
                    format!("{t} is listed twice"),
                );
            }
            seen.push(t);
        }
    }
}

/// The form of a Service Quotas code: `L-` and eight upper-case hex digits.
fn is_quota_code(code: &str) -> bool {
    code.strip_prefix("L-").is_some_and(|hex| {
        hex.len() == 8
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    })
}

fn validate_quotas(v: &mut Validator, quotas: &[Quota], deployments: &[Deployment]) {
    let mut names = HashSet::new();
    for q in quotas {
        let at = format!("quotas[{}]", q.name);
        check_name(v, format!("{at}.name"), &q.name);
        if !names.insert(q.name.as_str()) {
            v.err(format!("{at}.name"), "duplicate quota name");
        }
        if !is_quota_code(&q.code) {
            v.err(
                format!("{at}.code"),
                format!(
                    "`{}` is not a Service Quotas code (`L-` and 8 hex digits, e.g. L-DB2E81BA)",
                    q.code
                ),
            );
        }
        if q.vcpus == 0 {
            v.err(format!("{at}.vcpus"), "must be at least 1, got 0");
        }
        if q.pools.is_empty() {
            v.err(
                format!("{at}.pools"),
                "must name at least one \"<deployment>/<pool>\"",
            );
        }
        let mut seen = HashSet::new();
        for entry in &q.pools {
            let Some((dname, pname)) = entry.split_once('/') else {
                v.err(
                    format!("{at}.pools"),
                    format!("`{entry}` must be \"<deployment>/<pool>\""),
                );
                continue;
            };
            let Some(pool) = deployments
                .iter()
                .find(|d| d.name == dname)
                .and_then(|d| d.pools.iter().find(|p| p.name == pname))
            else {
                v.err(
                    format!("{at}.pools"),
                    format!("`{entry}`: no pool `{pname}` in a deployment `{dname}`"),
                );
                continue;
            };
            if !seen.insert(entry.as_str()) {
                v.err(format!("{at}.pools"), format!("`{entry}` is listed twice"));
            }
            if pool.vcpus_per_instance.is_none() {
                v.err(
                    format!("deployments[{dname}].pools[{pname}].vcpus_per_instance"),
                    format!("is required: quota {} covers this pool", q.name),
                );
            }
        }
    }
}

fn validate_broker(v: &mut Validator, b: &BrokerSettings, deployments: &[Deployment]) {
    // The worker keeps 30 s of the consumer timeout to answer before the broker acts.
    if b.consumer_timeout < HumanDuration::from_secs(60) {
        v.err(
            "broker.consumer_timeout",
            format!("{} must be at least 1m", b.consumer_timeout),
        );
        return;
    }
    for d in deployments {
        if d.request_deadline.0 + std::time::Duration::from_secs(30) > b.consumer_timeout.0 {
            v.err(
                format!("deployments[{}].request_deadline", d.name),
                format!(
                    "{} must be at least 30s shorter than broker.consumer_timeout {} \
                     (RabbitMQ closes a channel that holds a delivery unacked longer)",
                    d.request_deadline, b.consumer_timeout
                ),
            );
        }
    }
}

fn validate_provider(v: &mut Validator, p: &ProviderSettings, deployments: &[Deployment]) {
    v.positive("provider.unavailable_backoff".into(), p.unavailable_backoff);
    v.positive("provider.local.stop_timeout".into(), p.local.stop_timeout);
    if p.local.instance_command.trim().is_empty() {
        v.err("provider.local.instance_command", "must not be empty");
    }
    if p.local
        .state_dir
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        v.err("provider.local.state_dir", "must not be empty when given");
    }
    let t = &p.aws_asg.endpoint_template;
    // Readiness probes and dispatch speak plain HTTP to instances inside the VPC.
    if !t.starts_with("http://") || !t.contains("{instance_id}") {
        v.err(
            "provider.aws_asg.endpoint_template",
            format!("`{t}` must start with http:// and contain {{instance_id}}"),
        );
    }
    // The lifecycle handler finds a pool by its group's name, so names must be unique.
    let mut groups = HashSet::new();
    for d in deployments {
        for pool in &d.pools {
            let at = format!("deployments[{}].pools[{}]", d.name, pool.name);
            let group = pool.asg_name(&d.name);
            let ok_chars = group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
            if group.is_empty() || group.len() > 255 || !ok_chars {
                v.err(
                    format!("{at}.asg_name"),
                    format!("`{group}` must be 1-255 characters of A-Z, a-z, 0-9 and -_.:/"),
                );
            }
            if !groups.insert(group.clone()) {
                v.err(
                    format!("{at}.asg_name"),
                    format!("Auto Scaling group `{group}` is used by another pool"),
                );
            }
            for arg in &pool.instance_args {
                let flag = arg.split('=').next().unwrap_or_default();
                if LOCAL_PROVIDER_FLAGS.contains(&flag) {
                    v.err(
                        format!("{at}.instance_args"),
                        format!("`{flag}` is set by the local provider from the pool's settings"),
                    );
                }
            }
        }
    }
}

fn validate_policy(v: &mut Validator, at: &str, p: &Policy) {
    let u = p.target_utilization;
    if !(u.is_finite() && u > 0.0 && u <= 1.0) {
        v.err(
            format!("{at}.target_utilization"),
            format!("{u} must be in (0, 1]"),
        );
    }
    for (field, d) in [
        ("target_queue_wait", p.target_queue_wait),
        ("stable_window", p.stable_window),
        ("panic_window", p.panic_window),
        ("boot_timeout", p.boot_timeout),
        ("drain_timeout", p.drain_timeout),
    ] {
        v.positive(format!("{at}.{field}"), d);
    }
    if p.panic_window > p.stable_window {
        v.err(
            format!("{at}.panic_window"),
            format!(
                "{} must not exceed stable_window {}",
                p.panic_window, p.stable_window
            ),
        );
    }
    if let Some(b) = p.cold_start_budget
        && !(b.is_finite() && b > 0.0 && b < 1.0)
    {
        v.err(
            format!("{at}.cold_start_budget"),
            format!("{b} must be in (0, 1)"),
        );
    }
    if !(p.panic_threshold.is_finite() && p.panic_threshold > 1.0) {
        v.err(
            format!("{at}.panic_threshold"),
            format!("{} must be greater than 1.0", p.panic_threshold),
        );
    }
    if !(p.max_scale_down_rate.is_finite() && p.max_scale_down_rate > 1.0) {
        v.err(
            format!("{at}.max_scale_down_rate"),
            format!("{} must be greater than 1.0", p.max_scale_down_rate),
        );
    }
    if p.unhealthy_after_failures == 0 {
        v.err(
            format!("{at}.unhealthy_after_failures"),
            "must be at least 1",
        );
    }
    for (i, r) in p.step_rules.iter().enumerate() {
        let rat = format!("{at}.step_rules[{i}]");
        if !r.above.is_finite() {
            v.err(
                format!("{rat}.above"),
                format!("{} is not a finite number", r.above),
            );
        }
        if r.metric == Metric::GpuUtilization && !(0.0..1.0).contains(&r.above) {
            v.err(
                format!("{rat}.above"),
                format!("{} must be in [0, 1) for gpu_utilization", r.above),
            );
        }
        if r.add == 0 {
            v.err(format!("{rat}.add"), "must be at least 1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_is_valid() {
        let c = Config::load(include_str!("../../examples/local.toml")).unwrap();
        assert_eq!(c.deployments.len(), 2);
        assert!(c.deployments.iter().all(|d| d.pools.len() == 2));
        let office: Vec<_> = c.deployments[0]
            .schedules
            .iter()
            .map(|s| (s.expression.as_str(), s.time_zone.as_str(), s.min_instances))
            .collect();
        assert_eq!(
            office,
            [
                ("cron(0 9 ? * MON-FRI *)", "Europe/London", Some(2)),
                ("cron(0 18 ? * MON-FRI *)", "Europe/London", Some(0)),
            ]
        );
    }

    #[test]
    fn the_shipped_aws_example_is_valid() {
        let c = Config::load(include_str!("../../examples/aws.toml")).unwrap();
        assert_eq!(c.provider.kind, ProviderKind::AwsAsg);
        assert_eq!(c.budgets.len(), 2);
        assert_eq!(c.quotas.len(), 2);
        let chat = c.deployment("chat").unwrap();
        assert_eq!(chat.on_demand_base, 1);
        let warm: Vec<_> = chat
            .pools
            .iter()
            .filter(|p| p.warm_pool_size > 0)
            .map(|p| (p.name.as_str(), p.capacity_type))
            .collect();
        assert_eq!(warm, [("a10g-on-demand", CapacityType::OnDemand)]);
    }

    const MINIMAL: &str = r#"
        [[deployments]]
        name = "chat"
        [[deployments.pools]]
        name = "a10g"
        max_instances = 4
        slots = 8
        price_per_hour_usd = 1.0
        boot_time = "90s"
    "#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::load(MINIMAL).unwrap();
        let d = &c.deployments[0];
        assert_eq!(d.request_deadline, HumanDuration::from_secs(300));
        assert_eq!(d.policy, Policy::default());
        assert_eq!(d.pools[0].min_instances, 0);
    }

    #[test]
    fn json_and_toml_are_one_schema() {
        let from_toml = Config::load(MINIMAL).unwrap();
        let json = serde_json::to_string(&from_toml).unwrap();
        assert_eq!(Config::load(&json).unwrap(), from_toml);
        let toml_again = toml::to_string(&from_toml).unwrap();
        assert_eq!(Config::load(&toml_again).unwrap(), from_toml);
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let toml_err = Config::from_toml_str(&MINIMAL.replace("slots = 8", "slots = 8\nslot = 2"))
            .unwrap_err()
            .to_string();
        assert!(
            toml_err.contains("deployments[chat].pools[a10g].slot: unknown field `slot`"),
            "{toml_err}"
        );
        let json = r#"{"deployments":[{"name":"a","pools":[],"polcy":{}}]}"#;
        let json_err = Config::from_json_str(json).unwrap_err().to_string();
        assert!(
            json_err.contains("deployments[a].polcy: unknown field `polcy`"),
            "{json_err}"
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = |edit: &dyn Fn(&mut Deployment)| {
            let mut c = Config::from_toml_str(MINIMAL).unwrap();
            edit(&mut c.deployments[0]);
            c.validate().unwrap_err().0
        };
        type Edit = Box<dyn Fn(&mut Deployment)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "min > max",
                Box::new(|d| d.pools[0].min_instances = 9),
                "deployments[chat].pools[a10g].min_instances",
            ),
            (
                "zero slots",
                Box::new(|d| d.pools[0].slots = 0),
                "deployments[chat].pools[a10g].slots",
            ),
            (
                "negative price",
                Box::new(|d| d.pools[0].price_per_hour_usd = -1.0),
                "deployments[chat].pools[a10g].price_per_hour_usd",
            ),
            (
                "nan price",
                Box::new(|d| d.pools[0].price_per_hour_usd = f64::NAN),
                "deployments[chat].pools[a10g].price_per_hour_usd",
            ),
            (
                "zero boot",
                Box::new(|d| d.pools[0].boot_time = HumanDuration::ZERO),
                "deployments[chat].pools[a10g].boot_time",
            ),
            (
                "utilisation 0",
                Box::new(|d| d.policy.target_utilization = 0.0),
                "deployments[chat].policy.target_utilization",
            ),
            (
                "utilisation above 1",
                Box::new(|d| d.policy.target_utilization = 1.5),
                "deployments[chat].policy.target_utilization",
            ),
            (
                "zero drain",
                Box::new(|d| d.policy.drain_timeout = HumanDuration::ZERO),
                "deployments[chat].policy.drain_timeout",
            ),
            (
                "bad name",
                Box::new(|d| d.name = "Chat Bot".into()),
                "deployments[Chat Bot].name",
            ),
            (
                "no pools",
                Box::new(|d| d.pools.clear()),
                "deployments[chat].pools",
            ),
            (
                "dup pool",
                Box::new(|d| d.pools.push(d.pools[0].clone())),
                "deployments[chat].pools[a10g].name",
            ),
            (
                "scale-down rate",
                Box::new(|d| d.policy.max_scale_down_rate = 1.0),
                "deployments[chat].policy.max_scale_down_rate",
            ),
            (
                "cold-start budget",
                Box::new(|d| d.policy.cold_start_budget = Some(1.0)),
                "deployments[chat].policy.cold_start_budget",
            ),
            (
                "panic window",
                Box::new(|d| d.policy.panic_window = HumanDuration::from_secs(600)),
                "deployments[chat].policy.panic_window",
            ),
            (
                "relative path",
                Box::new(|d| d.readiness_path = "health".into()),
                "deployments[chat].readiness_path",
            ),
        ];
        for (name, edit, field) in cases {
            let errors = bad(&*edit);
            assert!(
                errors.iter().any(|e| e.field == field),
                "{name}: expected an error on {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn broker_settings_default_and_bound_the_deadline() {
        let c = Config::load(MINIMAL).unwrap();
        assert_eq!(c.broker, BrokerSettings::default());
        let quorum = Config::load(&format!("{MINIMAL}\n[broker]\nquorum_queues = true\n")).unwrap();
        assert!(quorum.broker.quorum_queues);
        let long = MINIMAL.replace(
            "name = \"chat\"",
            "name = \"chat\"\nrequest_deadline = \"45m\"",
        );
        let Err(LoadError::Invalid(ValidationErrors(errors))) = Config::load(&long) else {
            panic!("a deadline over the consumer timeout must be refused");
        };
        assert_eq!(errors[0].field, "deployments[chat].request_deadline");
        assert!(
            errors[0].message.contains("consumer_timeout 30m"),
            "{}",
            errors[0]
        );
        let raised = format!("{long}\n[broker]\nconsumer_timeout = \"1h\"\n");
        assert!(Config::load(&raised).is_ok());
        let tiny = format!("{MINIMAL}\n[broker]\nconsumer_timeout = \"10s\"\n");
        let Err(LoadError::Invalid(ValidationErrors(errors))) = Config::load(&tiny) else {
            panic!("a consumer timeout under a minute must be refused");
        };
        assert_eq!(errors[0].field, "broker.consumer_timeout");
        assert!(Config::from_toml_str(&format!("{MINIMAL}\n[broker]\nquorum = true\n")).is_err());
    }

    #[test]
    fn provider_settings_default_and_name_their_fields() {
        let c = Config::load(MINIMAL).unwrap();
        assert_eq!(c.provider.kind, ProviderKind::Local);
        assert_eq!(
            c.deployments[0].pools[0].asg_name("chat"),
            "scale0-chat-a10g"
        );
        let aws = format!(
            "{}\n[provider]\nkind = \"aws-asg\"\nunavailable_backoff = \"2m\"\n\
             [provider.aws_asg]\nregion = \"eu-west-1\"\n",
            MINIMAL.replace(
                "boot_time = \"90s\"",
                "boot_time = \"90s\"\nasg_name = \"gpu-a\""
            )
        );
        let c = Config::load(&aws).unwrap();
        assert_eq!(c.provider.kind, ProviderKind::AwsAsg);
        assert_eq!(c.provider.aws_asg.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.deployments[0].pools[0].asg_name("chat"), "gpu-a");

        let cases = [
            (
                "[provider]\nunavailable_backoff = \"0s\"",
                "provider.unavailable_backoff",
            ),
            (
                "[provider.aws_asg]\nendpoint_template = \"10.0.0.1:8000\"",
                "provider.aws_asg.endpoint_template",
            ),
            (
                "[provider.local]\ninstance_command = \" \"",
                "provider.local.instance_command",
            ),
        ];
        for (extra, field) in cases {
            let Err(LoadError::Invalid(ValidationErrors(errors))) =
                Config::load(&format!("{MINIMAL}\n{extra}\n"))
            else {
                panic!("{extra} must be refused");
            };
            assert_eq!(errors[0].field, field, "{errors:?}");
        }
        let flags = MINIMAL.replace(
            "boot_time = \"90s\"",
            "boot_time = \"90s\"\ninstance_args = [\"--slots=2\"]",
        );
        let Err(LoadError::Invalid(ValidationErrors(errors))) = Config::load(&flags) else {
            panic!("a flag the provider sets must be refused");
        };
        assert_eq!(
            errors[0].field,
            "deployments[chat].pools[a10g].instance_args"
        );
        assert!(
            Config::from_toml_str(&format!("{MINIMAL}\n[provider]\nkind = \"k8s\"\n")).is_err()
        );
    }

    /// Two deployments, a Spot pool with an on-demand pool holding a warm pool, a
    /// budget and a quota: every cost-control field the schema has.
    const COSTED: &str = r#"
        [[budgets]]
        name = "gpu-monthly"
        deployments = ["chat"]
        period = "monthly"
        time_zone = "Europe/London"
        limit_usd = 500.0
        alert_thresholds = [0.5, 0.8, 1.0]
        at_cap = "block-scale-out"

        [[budgets]]
        name = "weekly"
        period = "rolling"
        window = "7d"
        limit_usd = 2000.0
        at_cap = "scale-to-min"

        [[quotas]]
        code = "L-DB2E81BA"
        name = "running-on-demand-g-vt"
        vcpus = 64
        pools = ["chat/a10g-on-demand"]

        [[deployments]]
        name = "chat"
        on_demand_base = 1
        [[deployments.pools]]
        name = "a10g-spot"
        capacity_type = "spot"
        max_instances = 8
        slots = 8
        price_per_hour_usd = 0.45
        boot_time = "90s"
        [[deployments.pools]]
        name = "a10g-on-demand"
        vcpus_per_instance = 4
        max_instances = 4
        slots = 8
        price_per_hour_usd = 1.01
        boot_time = "90s"
        warm_pool_size = 1
        warm_boot_time = "30s"
        warm_price_per_hour_usd = 0.01

        [[deployments]]
        name = "embed"
        [[deployments.pools]]
        name = "l4"
        max_instances = 4
        slots = 16
        price_per_hour_usd = 0.80
        boot_time = "60s"
    "#;

    #[test]
    fn cost_controls_parse_with_their_defaults() {
        let c = Config::load(COSTED).unwrap();
        let [monthly, weekly] = &c.budgets[..] else {
            panic!("two budgets")
        };
        assert_eq!(monthly.period, BudgetPeriod::Monthly);
        assert!(monthly.covers("chat") && !monthly.covers("embed"));
        assert_eq!(weekly.time_zone, "UTC");
        assert_eq!(weekly.alert_thresholds, [0.8, 1.0]);
        assert_eq!(weekly.window, Some(HumanDuration::from_secs(7 * 86_400)));
        assert!(weekly.covers("chat") && weekly.covers("embed"));
        assert_eq!(weekly.at_cap, AtCap::ScaleToMin);
        assert!(c.quotas[0].covers("chat", "a10g-on-demand"));
        assert!(!c.quotas[0].covers("chat", "a10g-spot"));
        let chat = &c.deployments[0];
        assert_eq!(chat.on_demand_base, 1);
        assert_eq!(chat.pools[0].capacity_type, CapacityType::Spot);
        assert_eq!(chat.pools[1].capacity_type, CapacityType::OnDemand);
        assert_eq!(
            chat.pools[1].warm_boot_time,
            Some(HumanDuration::from_secs(30))
        );
        let embed = &c.deployments[1];
        assert_eq!(embed.on_demand_base, 0);
        assert_eq!(embed.pools[0].warm_pool_size, 0);
        assert_eq!(embed.pools[0].vcpus_per_instance, None);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(Config::load(&json).unwrap(), c);
        let toml_again = toml::to_string(&c).unwrap();
        assert_eq!(Config::load(&toml_again).unwrap(), c);
        // A config without cost controls has none.
        let plain = Config::load(MINIMAL).unwrap();
        assert!(plain.budgets.is_empty() && plain.quotas.is_empty());
    }

    /// Each case edits the costed config (`from` → `to`, once) and names the field the
    /// rejection must name.
    #[test]
    fn malformed_cost_controls_are_rejected_naming_the_field() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "budget name",
                "name = \"gpu-monthly\"",
                "name = \"GPU monthly\"",
                "budgets[GPU monthly].name",
            ),
            (
                "duplicate budget",
                "name = \"weekly\"",
                "name = \"gpu-monthly\"",
                "budgets[gpu-monthly].name",
            ),
            (
                "unknown deployment in scope",
                "deployments = [\"chat\"]",
                "deployments = [\"chat\", \"caht\"]",
                "budgets[gpu-monthly].deployments",
            ),
            (
                "empty scope",
                "deployments = [\"chat\"]",
                "deployments = []",
                "budgets[gpu-monthly].deployments",
            ),
            (
                "deployment listed twice",
                "deployments = [\"chat\"]",
                "deployments = [\"chat\", \"chat\"]",
                "budgets[gpu-monthly].deployments",
            ),
            (
                "rolling without window",
                "window = \"7d\"",
                "",
                "budgets[weekly].window",
            ),
            (
                "window on a calendar period",
                "period = \"monthly\"",
                "period = \"monthly\"\nwindow = \"30d\"",
                "budgets[gpu-monthly].window",
            ),
            (
                "window too short",
                "window = \"7d\"",
                "window = \"10m\"",
                "budgets[weekly].window",
            ),
            (
                "window too long",
                "window = \"7d\"",
                "window = \"40d\"",
                "budgets[weekly].window",
            ),
            (
                "unknown time zone",
                "Europe/London",
                "Europe/Londn",
                "budgets[gpu-monthly].time_zone",
            ),
            (
                "zero limit",
                "limit_usd = 500.0",
                "limit_usd = 0.0",
                "budgets[gpu-monthly].limit_usd",
            ),
            (
                "negative limit",
                "limit_usd = 500.0",
                "limit_usd = -5.0",
                "budgets[gpu-monthly].limit_usd",
            ),
            (
                "threshold above 1",
                "[0.5, 0.8, 1.0]",
                "[0.5, 1.2]",
                "budgets[gpu-monthly].alert_thresholds",
            ),
            (
                "threshold 0",
                "[0.5, 0.8, 1.0]",
                "[0.0, 1.0]",
                "budgets[gpu-monthly].alert_thresholds",
            ),
            (
                "threshold twice",
                "[0.5, 0.8, 1.0]",
                "[0.5, 0.5]",
                "budgets[gpu-monthly].alert_thresholds",
            ),
            (
                "quota code",
                "L-DB2E81BA",
                "DB2E81BA",
                "quotas[running-on-demand-g-vt].code",
            ),
            (
                "quota code lower case",
                "L-DB2E81BA",
                "L-db2e81ba",
                "quotas[running-on-demand-g-vt].code",
            ),
            (
                "quota name",
                "name = \"running-on-demand-g-vt\"",
                "name = \"\"",
                "quotas[].name",
            ),
            (
                "zero vcpus",
                "vcpus = 64",
                "vcpus = 0",
                "quotas[running-on-demand-g-vt].vcpus",
            ),
            (
                "no pools",
                "pools = [\"chat/a10g-on-demand\"]",
                "pools = []",
                "quotas[running-on-demand-g-vt].pools",
            ),
            (
                "pool without deployment",
                "pools = [\"chat/a10g-on-demand\"]",
                "pools = [\"a10g-on-demand\"]",
                "quotas[running-on-demand-g-vt].pools",
            ),
            (
                "unknown pool",
                "pools = [\"chat/a10g-on-demand\"]",
                "pools = [\"chat/h100\"]",
                "quotas[running-on-demand-g-vt].pools",
            ),
            (
                "covered pool without vcpus",
                "pools = [\"chat/a10g-on-demand\"]",
                "pools = [\"chat/a10g-on-demand\", \"embed/l4\"]",
                "deployments[embed].pools[l4].vcpus_per_instance",
            ),
            (
                "zero vcpus per instance",
                "vcpus_per_instance = 4",
                "vcpus_per_instance = 0",
                "deployments[chat].pools[a10g-on-demand].vcpus_per_instance",
            ),
            (
                "warm pool on spot",
                "capacity_type = \"spot\"",
                "capacity_type = \"spot\"\nwarm_pool_size = 1\nwarm_boot_time = \"30s\"\n\
                 warm_price_per_hour_usd = 0.01",
                "deployments[chat].pools[a10g-spot].warm_pool_size",
            ),
            (
                "warm pool over max",
                "warm_pool_size = 1",
                "warm_pool_size = 5",
                "deployments[chat].pools[a10g-on-demand].warm_pool_size",
            ),
            (
                "warm boot missing",
                "warm_boot_time = \"30s\"",
                "",
                "deployments[chat].pools[a10g-on-demand].warm_boot_time",
            ),
            (
                "warm boot not shorter",
                "warm_boot_time = \"30s\"",
                "warm_boot_time = \"90s\"",
                "deployments[chat].pools[a10g-on-demand].warm_boot_time",
            ),
            (
                "warm boot zero",
                "warm_boot_time = \"30s\"",
                "warm_boot_time = \"0s\"",
                "deployments[chat].pools[a10g-on-demand].warm_boot_time",
            ),
            (
                "warm price missing",
                "warm_price_per_hour_usd = 0.01",
                "",
                "deployments[chat].pools[a10g-on-demand].warm_price_per_hour_usd",
            ),
            (
                "warm price negative",
                "warm_price_per_hour_usd = 0.01",
                "warm_price_per_hour_usd = -0.01",
                "deployments[chat].pools[a10g-on-demand].warm_price_per_hour_usd",
            ),
            (
                "warm price above running",
                "warm_price_per_hour_usd = 0.01",
                "warm_price_per_hour_usd = 2.0",
                "deployments[chat].pools[a10g-on-demand].warm_price_per_hour_usd",
            ),
            (
                "warm fields without a warm pool",
                "warm_pool_size = 1",
                "warm_pool_size = 0",
                "deployments[chat].pools[a10g-on-demand].warm_boot_time",
            ),
            (
                "on-demand base over the on-demand pools",
                "on_demand_base = 1",
                "on_demand_base = 5",
                "deployments[chat].on_demand_base",
            ),
        ];
        for (name, from, to, field) in cases {
            assert_eq!(
                COSTED.matches(from).count(),
                1,
                "{name}: `{from}` must occur once"
            );
            let edited = COSTED.replacen(from, to, 1);
            let Err(LoadError::Invalid(ValidationErrors(errors))) = Config::load(&edited) else {
                panic!("{name}: must be rejected");
            };
            assert!(
                errors.iter().any(|e| e.field == *field),
                "{name}: expected an error on {field}, got {errors:?}"
            );
        }
    }

    #[test]
    fn malformed_cost_enums_and_keys_fail_to_parse_naming_them() {
        let cases = [
            ("period = \"monthly\"", "period = \"weekly\"", "weekly"),
            ("at_cap = \"block-scale-out\"", "at_cap = \"stop\"", "stop"),
            (
                "capacity_type = \"spot\"",
                "capacity_type = \"Spot\"",
                "Spot",
            ),
            ("vcpus = 64", "vcpus = 64\nvcpu = 4", "unknown field `vcpu`"),
            ("limit_usd = 500.0", "limit_usd = \"500\"", "limit_usd"),
        ];
        for (from, to, named) in cases {
            let err = Config::from_toml_str(&COSTED.replacen(from, to, 1))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{to}: {err}");
        }
    }

    #[test]
    fn every_error_is_collected() {
        let broken = r#"
            [[deployments]]
            name = "chat"
            [[deployments.pools]]
            name = "a10g"
            min_instances = 5
            max_instances = 2
            slots = 0
            price_per_hour_usd = 1.0
            boot_time = "90s"
            [[deployments.schedules]]
            name = "open"
            expression = "cron(0 9 ? * MOX-FRI *)"
            time_zone = "Europe/London"
            min_instances = 1
            [[deployments.schedules]]
            name = "close"
            expression = "cron(0 18 ? * MON-FRI *)"
            time_zone = "Europe/Londn"
            min_instances = 0
        "#;
        let Err(LoadError::Invalid(ValidationErrors(errors))) = Config::load(broken) else {
            panic!("expected validation errors");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "deployments[chat].pools[a10g].min_instances",
                "deployments[chat].pools[a10g].slots",
                "deployments[chat].schedules[open].expression",
                "deployments[chat].schedules[close].time_zone",
            ]
        );
    }

    fn load_errors(text: &str) -> Vec<String> {
        match Config::load(text) {
            Err(LoadError::Invalid(ValidationErrors(errors))) => {
                errors.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn every_schema_fault_is_reported_at_once_with_the_rules_of_sound_parts() {
        let broken = r#"
            [[deployments]]
            name = "chat"
            request_deadline = 300
            max_held_requests = -1
            colour = "blue"
            [deployments.policy]
            target_utilization = "high"
            panic_threshold = 0.5
            [[deployments.pools]]
            name = "a10g"
            max_instances = "four"
            slots = 8
            price_per_hour_usd = 1.0
            boot_time = "90s"
            [[deployments.pools]]
            name = "l4"
            slots = 2
            price_per_hour_usd = 0.5
            boot_time = "1x"

            [[deployments]]
            name = "batch"
            [[deployments.pools]]
            name = "a10g"
            max_instances = 2
            slots = 0
            price_per_hour_usd = 1.0
            boot_time = "90s"

            [broker]
            quorum = true
        "#;
        let errors = load_errors(broken);
        let expected = [
            "broker.quorum: unknown field `quorum`",
            "deployments[chat].colour: unknown field `colour`",
            "deployments[chat].max_held_requests: invalid value: integer `-1`, expected u32",
            "deployments[chat].policy.target_utilization: invalid type: string \"high\", expected f64",
            "deployments[chat].pools[a10g].max_instances: invalid type: string \"four\", expected u32",
            "deployments[chat].pools[l4].boot_time: invalid duration `1x`",
            "deployments[chat].pools[l4].max_instances: required field is missing",
            "deployments[chat].request_deadline: invalid type: integer `300`",
            // A rule of a sound deployment is checked too...
            "deployments[batch].pools[a10g].slots: must be at least 1, got 0",
        ];
        for e in expected {
            assert!(
                errors.iter().any(|got| got.starts_with(e)),
                "missing `{e}` in:\n{}",
                errors.join("\n")
            );
        }
        // ...but not the rules of a part that did not read (panic_threshold 0.5 is
        // wrong, but chat's policy is reported for its schema fault only).
        assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
    }

    #[test]
    fn json_reports_every_fault_too() {
        let json = r#"{"deployments": [{"name": "chat", "pools": [{"name": "a10g",
            "max_instances": 2, "slots": "8", "price_per_hour_usd": null, "boot_time": "90s"}],
            "policy": {"step_rules": [{"metric": "gpu_temp", "above": 0.5, "add": 1}]}}],
            "provider": {"kind": "k8s"}}"#;
        let errors = load_errors(json);
        for e in [
            "deployments[chat].pools[a10g].slots: invalid type: string \"8\", expected u32",
            "deployments[chat].pools[a10g].price_per_hour_usd: invalid type: null, expected f64",
            "deployments[chat].policy.step_rules[0].metric: unknown variant `gpu_temp`",
            "provider.kind: unknown variant `k8s`, expected `local` or `aws-asg`",
        ] {
            assert!(
                errors.iter().any(|got| got.starts_with(e)),
                "missing `{e}` in:\n{}",
                errors.join("\n")
            );
        }
    }

    #[test]
    fn a_bad_time_zone_does_not_hide_a_bad_expression() {
        for expression in [
            "cron(0 9 ? * MOX-FRI *)",
            "rate(5 hour)",
            "at(2026-13-01T00:00:00)",
        ] {
            let text = format!(
                "{MINIMAL}\n[[deployments.schedules]]\nname = \"s\"\nexpression = \"{expression}\"\n\
                 time_zone = \"Europe/Londn\"\nmin_instances = 1\n"
            );
            let errors = load_errors(&text);
            assert_eq!(errors.len(), 2, "{expression}: {}", errors.join("\n"));
            assert!(errors[0].starts_with(
                "deployments[chat].schedules[s].time_zone: unknown IANA time zone `Europe/Londn`"
            ));
            assert!(
                errors[1].starts_with(&format!(
                    "deployments[chat].schedules[s].expression: {expression}: at character"
                )),
                "{}",
                errors[1]
            );
        }
    }

    #[test]
    fn an_at_in_the_past_is_a_warning_naming_the_field() {
        use chrono::TimeZone;
        let at = |expression: &str, min: u32| {
            format!(
                "\n[[deployments.schedules]]\nname = \"{min}\"\nexpression = \"{expression}\"\nmin_instances = {min}\n"
            )
        };
        let now = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        // A past at() is valid (a config must not expire), and warned about.
        let past = Config::load(&format!("{MINIMAL}{}", at("at(2026-01-01T00:00:00)", 2))).unwrap();
        let warnings = past.warnings(now);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].field,
            "deployments[chat].schedules[2].expression"
        );
        assert!(
            warnings[0]
                .message
                .contains("fired for the last time at 2026-01-01 00:00:00 UTC")
                && warnings[0]
                    .message
                    .contains("min_instances 2 stays in force for good"),
            "{}",
            warnings[0]
        );
        // Replaced by a later action: still warned, with what happens.
        let replaced = Config::load(&format!(
            "{MINIMAL}{}{}",
            at("at(2026-01-01T00:00:00)", 2),
            at("cron(0 9 * * ? *)", 1)
        ))
        .unwrap();
        let warnings = replaced.warnings(now);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .message
                .contains("until a firing of another action replaces it")
        );
        // A future at() and a cron that fires again: no warning.
        let future =
            Config::load(&format!("{MINIMAL}{}", at("at(2027-01-01T00:00:00)", 2))).unwrap();
        assert!(future.warnings(now).is_empty());
        // An action that never fires at all.
        let never = Config::load(&format!("{MINIMAL}{}", at("cron(0 0 30 2 ? *)", 1))).unwrap();
        assert!(never.warnings(now)[0].message.starts_with("never fires"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_with_their_position() {
        let mut bytes = MINIMAL.as_bytes().to_vec();
        let at = MINIMAL.find("a10g").unwrap();
        bytes[at] = 0xff;
        let Err(LoadError::Parse(ParseError(message))) = Config::load_bytes(&bytes) else {
            panic!("non-UTF-8 bytes must be refused");
        };
        assert_eq!(
            message,
            "not UTF-8: byte 0xff at line 5, column 17 (byte offset 93)"
        );
        assert!(Config::load_bytes(MINIMAL.as_bytes()).is_ok());
    }
}
