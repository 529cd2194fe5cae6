//! The trace-replay simulator: real traffic through the real `decide()`, against the
//! baselines and a clairvoyant lower bound.
//!
//! Every claim scale0 makes about cost and latency should be a number measured on real
//! traffic. This crate replays a trace through the same [`scale0_core::policy::decide`] the
//! Lambda functions run, fed the same [`scale0_core::policy::Observation`] and applying the
//! same [`scale0_core::policy::Decision`], with a simulated clock: instances boot (and are
//! billed while they do), serve a bounded number of requests at once, drain and stop;
//! requests queue by priority, expire at their deadline, or are shed by the worker's
//! rules. The same scenario under other policies, and the oracle, give the comparison.
//!
//! ```text
//! trace ──▶ workload (window, compression, copies, thinning, service times)
//!                │ the same request stream, regenerated per run
//!                ├──▶ oracle (lower bound on instance time for zero queueing)
//!                └──▶ engine ◀──▶ policy (scale0's decide(), or a baseline)
//!                        └──▶ PolicyReport (cost, SLO, waits, cold starts, series)
//! ```
//!
//! - [`trace`]: readers for the trace formats, by bytes (the CLI does the I/O).
//! - [`scenario`]: the scenario file schema, with the deployment config embedded.
//! - [`workload`]: trace + scenario → a deterministic stream of requests.
//! - [`engine`]: the discrete-event engine.
//! - [`policy`]: the [`Autoscaler`] interface and scale0's adapter.
//! - [`baselines`]: KEDA + HPA, Knative KPA, AWS target tracking, fixed keep-alive, the
//!   hybrid histogram policy, always-on.
//! - [`oracle`]: the clairvoyant bound and why it is one.
//! - [`metrics`], [`report`]: what a run measured, as a table and JSON.
//! - [`rng`]: the seeded PRNG; no clock is read and no global randomness is used, so
//!   the same scenario and seed give the same numbers on every run.

pub mod baselines;
pub mod engine;
pub mod metrics;
pub mod oracle;
pub mod policy;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod trace;
pub mod workload;

pub use engine::EngineParams;
pub use metrics::{PolicyReport, Series};
pub use oracle::OracleReport;
pub use policy::{Autoscaler, PolicyKind, Signals, Wakes};
pub use report::ScenarioReport;
pub use scenario::Scenario;
pub use trace::{Micros, Trace, TraceFormat};
pub use workload::{Request, Workload, WorkloadError};

/// Options of a run that are not part of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Points in the plotted time series.
    pub series_buckets: usize,
    /// Let scale0 skip ticks that provably change nothing (see [`policy::Scale0`]).
    pub skip_idle_ticks: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            series_buckets: 1500,
            skip_idle_ticks: true,
        }
    }
}

/// The policies a scenario asks for (all when it names none).
pub fn scenario_policies(scenario: &Scenario) -> Vec<PolicyKind> {
    match &scenario.policies {
        Some(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
        None => PolicyKind::all(),
    }
}

/// Build the policy `kind` for `scenario`. `peak_instances` sizes always-on.
pub fn build_policy(
    kind: PolicyKind,
    scenario: &Scenario,
    peak_instances: u32,
) -> Box<dyn Autoscaler> {
    let spec = &scenario.deployment;
    let ctx = || {
        baselines::Ctx::new(
            spec,
            scenario.reference_pool(),
            scenario.target_utilization(),
        )
    };
    match kind {
        PolicyKind::Scale0 { tick } => {
            let t = tick.unwrap_or(scenario.control.tick);
            Box::new(policy::Scale0::new(
                spec,
                t.0.as_micros() as Micros,
                kind.to_string(),
            ))
        }
        PolicyKind::Keda => Box::new(baselines::Keda::new(ctx())),
        PolicyKind::Knative => Box::new(baselines::Knative::new(ctx())),
        PolicyKind::AwsTargetTracking => Box::new(baselines::AwsTargetTracking::new(ctx())),
        PolicyKind::KeepAlive { ttl } => {
            Box::new(baselines::KeepAlive::new(ctx(), ttl, kind.to_string()))
        }
        PolicyKind::HybridHistogram => Box::new(baselines::HybridHistogram::new(ctx())),
        PolicyKind::AlwaysOn => Box::new(baselines::AlwaysOn::new(ctx(), peak_instances)),
    }
}

/// Engine parameters for `scenario` over `workload`.
pub fn engine_params(
    scenario: &Scenario,
    workload: &Workload,
    options: &RunOptions,
) -> EngineParams {
    let micros = |d: scale0_core::duration::HumanDuration| d.0.as_micros() as Micros;
    EngineParams {
        epoch: workload.epoch,
        horizon: workload.horizon,
        slo: micros(scenario.slo.max_wait),
        deadline: micros(scenario.deadline()),
        activation_latency: micros(scenario.control.activation_latency),
        metric_delay: micros(scenario.control.metric_delay),
        boot_spread: scenario.instances.boot_spread,
        seed: scenario.seed,
        reference_pool: scenario.reference_pool(),
        series_buckets: options.series_buckets,
        skip_idle_ticks: options.skip_idle_ticks,
    }
}

/// The oracle for a scenario's workload.
pub fn scenario_oracle(
    scenario: &Scenario,
    workload: &Workload,
    options: &RunOptions,
) -> OracleReport {
    let pool_index = scenario.reference_pool();
    let pool = &scenario.deployment.pools[pool_index];
    oracle::oracle(
        workload.requests(),
        pool.slots,
        scenario.min_boot(pool_index),
        pool.price_per_hour_usd,
        workload.horizon,
        options.series_buckets,
    )
}

/// Run one policy over a scenario.
pub fn run_policy(
    scenario: &Scenario,
    workload: &Workload,
    kind: PolicyKind,
    peak_instances: u32,
    options: &RunOptions,
    progress: &mut dyn FnMut(f64),
) -> PolicyReport {
    let mut policy = build_policy(kind, scenario, peak_instances);
    engine::run(
        &scenario.deployment,
        engine_params(scenario, workload, options),
        workload.requests(),
        policy.as_mut(),
        progress,
    )
}

/// Run the oracle and every policy of `kinds` over `scenario`. `progress` gets the
/// policy's name and its share done.
pub fn run_scenario(
    scenario: &Scenario,
    trace: &Trace,
    kinds: &[PolicyKind],
    options: &RunOptions,
    progress: &mut dyn FnMut(&str, f64),
) -> Result<ScenarioReport, WorkloadError> {
    let workload = Workload::new(trace, scenario)?;
    let oracle = scenario_oracle(scenario, &workload, options);
    let mut reports = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let name = kind.to_string();
        let mut report = run_policy(
            scenario,
            &workload,
            kind,
            oracle.peak_instances,
            options,
            &mut |f| progress(&name, f),
        );
        report.ratio_to_oracle = (oracle.cost_usd > 0.0).then(|| report.cost_usd / oracle.cost_usd);
        reports.push(report);
    }
    Ok(ScenarioReport::new(
        scenario, trace, &workload, oracle, reports,
    ))
}
