//! The trace-replay simulator: real traffic through the real `decide()`, against the
//! baselines and a clairvoyant lower bound.
//!
//! Every claim scale0 makes about cost and latency should be a number measured on real
//! traffic. This crate replays a trace through the same [`scale0_core::policy::decide`] the
//! Lambda functions run, fed the same [`scale0_core::policy::Observation`] and applying the
//! same [`scale0_core::policy::Decision`], with a simulated clock: instances boot (and are
//! billed while they do), serve a bounded number of requests at once, drain and stop;
//! requests queue by priority, expire at their deadline, or are shed by the worker's
//! rules. The same scenario under other policies, and two lower bounds, give the comparison.
//!
//! ```text
//! trace ──▶ workload (window, compression, copies, thinning, service times)
//!                │ the same request stream, regenerated per run
//!                ├──▶ bounds (zero wait; every request within the SLO)
//!                └──▶ engine ◀──▶ policy (scale0's decide(), or a baseline at a setting)
//!                        └──▶ PolicyReport ──▶ frontiers (each baseline's best settings)
//! ```
//!
//! - [`trace`]: readers for the trace formats, by bytes (the CLI does the I/O).
//! - [`scenario`]: the scenario file schema, with the deployment config embedded.
//! - [`workload`]: trace + scenario → a deterministic stream of requests.
//! - [`engine`]: the discrete-event engine (Spot interruptions included).
//! - [`spend`]: the ledger's bill of a run: what `decide()` sees of each budget, and
//!   whether its cap held.
//! - [`policy`]: the [`Autoscaler`] interface, the policy names, scale0's adapter.
//! - [`baselines`]: KEDA + HPA, Knative KPA, AWS target tracking, fixed keep-alive, the
//!   hybrid histogram policy, always-on — each with its documented settings and sweep.
//! - [`bounds`]: the two lower bounds and why they are bounds.
//! - [`frontier`]: Pareto sets of the baselines' sweeps, and domination.
//! - [`metrics`], [`report`]: what a run measured, as tables and JSON.
//! - [`rng`]: the seeded PRNG; no clock is read and no global randomness is used, so
//!   the same scenario and seed give the same numbers on every run.

pub mod baselines;
pub mod bounds;
pub mod engine;
pub mod frontier;
pub mod metrics;
pub mod policy;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod spend;
pub mod trace;
pub mod workload;

pub use bounds::Bounds;
pub use engine::EngineParams;
pub use frontier::{Frontier, Point};
pub use metrics::{PolicyReport, PoolUsage, Series};
pub use policy::{Autoscaler, Family, PolicyKind, Signals, WorkerEvents};
pub use report::ScenarioReport;
pub use scenario::Scenario;
pub use spend::BudgetUse;
pub use trace::{Micros, Trace, TraceFormat};
pub use workload::{Request, Workload, WorkloadError};

/// Options of a run that are not part of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Points in the plotted time series.
    pub series_buckets: usize,
    /// Let scale0 skip ticks that provably change nothing (see [`policy::Scale0`]).
    pub skip_idle_ticks: bool,
    /// Run every baseline family of the scenario over its sweep, for its frontier.
    pub frontiers: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            series_buckets: 1500,
            skip_idle_ticks: true,
            frontiers: false,
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

fn micros(d: scale0_core::duration::HumanDuration) -> Micros {
    d.0.as_micros() as Micros
}

/// Build the policy `kind` for `scenario`. `warmup_peak` (instances the zero-wait
/// profile of the warmup needed) sizes always-on when it has no `instances`.
pub fn build_policy(
    kind: &PolicyKind,
    scenario: &Scenario,
    warmup_peak: Option<u32>,
) -> Result<Box<dyn Autoscaler>, String> {
    let spec = &scenario.deployment;
    let label = kind.to_string();
    let (family, overrides) = match kind {
        PolicyKind::Scale0 { tick, policy } => {
            let c = &scenario.control;
            let tuned = policy::with_policy_settings(spec, policy)?;
            return Ok(Box::new(policy::Scale0::new(
                &tuned,
                micros(tick.unwrap_or(c.tick)),
                micros(c.activation_interval),
                micros(c.pressure_interval),
                label,
            )));
        }
        PolicyKind::Baseline { family, overrides } => (family, overrides),
    };
    let ctx = baselines::Ctx::new(
        spec,
        scenario.reference_pool(),
        scenario.target_utilization(),
        label,
    );
    let table = scenario.baselines.table(*family);
    macro_rules! settings {
        () => {
            baselines::settings(*family, table, overrides)?
        };
    }
    Ok(match family {
        Family::Keda => Box::new(baselines::Keda::new(ctx, settings!())),
        Family::Knative => Box::new(baselines::Knative::new(ctx, settings!())),
        Family::AwsTargetTracking => Box::new(baselines::AwsTargetTracking::new(ctx, settings!())),
        Family::KeepAlive => Box::new(baselines::KeepAlive::new(ctx, settings!())),
        Family::HybridHistogram => Box::new(baselines::HybridHistogram::new(ctx, settings!())),
        Family::AlwaysOn => Box::new(baselines::AlwaysOn::new(ctx, settings!(), warmup_peak)?),
    })
}

/// A scenario's workload with what every run of it shares: the bounds, and the
/// warmup's peak.
#[derive(Debug)]
pub struct Prepared<'a> {
    pub scenario: &'a Scenario,
    pub trace: &'a Trace,
    pub workload: Workload<'a>,
    pub bounds: Bounds,
    pub warmup_peak: Option<u32>,
    pub options: RunOptions,
}

/// One run a scenario asks for: a policy, and whether it is only a frontier point.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub kind: PolicyKind,
    pub sweep_only: bool,
}

impl<'a> Prepared<'a> {
    pub fn new(
        scenario: &'a Scenario,
        trace: &'a Trace,
        options: RunOptions,
    ) -> Result<Prepared<'a>, WorkloadError> {
        let workload = Workload::new(trace, scenario)?;
        let model = bounds::BoundModel::of_pools(
            &scenario.deployment.pools,
            scenario.instances.boot_spread,
        );
        let window = bounds::Window {
            start: scenario.warmup().min(workload.horizon),
            end: workload.horizon,
            max_wait: micros(scenario.slo.max_wait),
        };
        let bounds = bounds::bounds(
            || workload.requests(),
            &model,
            window,
            options.series_buckets,
        );
        let pool = &scenario.deployment.pools[scenario.reference_pool()];
        let warmup_peak = (window.start > 0)
            .then(|| bounds::peak_before(workload.requests(), window.start, pool.slots));
        Ok(Prepared {
            scenario,
            trace,
            workload,
            bounds,
            warmup_peak,
            options,
        })
    }

    /// The runs for `kinds`: each as given, and with frontiers every point of the
    /// sweep of each baseline family among them.
    pub fn runs(&self, kinds: &[PolicyKind]) -> Vec<PlannedRun> {
        let mut runs: Vec<PlannedRun> = kinds
            .iter()
            .map(|k| PlannedRun {
                kind: k.clone(),
                sweep_only: false,
            })
            .collect();
        if self.options.frontiers {
            let mut families: Vec<Family> = kinds.iter().filter_map(PolicyKind::family).collect();
            families.sort();
            families.dedup();
            for family in families {
                let points = baselines::sweep(
                    family,
                    &self.scenario.deployment,
                    self.scenario.reference_pool(),
                );
                for overrides in points {
                    let kind = PolicyKind::Baseline { family, overrides };
                    if !runs.iter().any(|r| r.kind == kind) {
                        runs.push(PlannedRun {
                            kind,
                            sweep_only: true,
                        });
                    }
                }
            }
        }
        runs
    }

    /// Run one policy.
    pub fn run(
        &self,
        kind: &PolicyKind,
        progress: &mut dyn FnMut(f64),
    ) -> Result<PolicyReport, String> {
        let mut policy = build_policy(kind, self.scenario, self.warmup_peak)?;
        let mut report = engine::run(
            &self.scenario.deployment,
            self.engine_params(),
            self.workload.requests(),
            policy.as_mut(),
            progress,
        );
        let ratio = |bound: f64| (bound > 0.0).then(|| report.cost_usd / bound);
        report.ratio_to_slo_bound = ratio(self.bounds.within_slo_cost_usd);
        report.ratio_to_zero_wait = ratio(self.bounds.zero_wait_cost_usd);
        Ok(report)
    }

    fn engine_params(&self) -> EngineParams {
        let scenario = self.scenario;
        let c = &scenario.control;
        let tick = micros(c.tick).max(1);
        let tick_phase = match c.tick_phase {
            Some(phase) => micros(phase),
            None => {
                let mut rng = rng::stream(scenario.seed, rng::Stream::TickPhase);
                (rng.next_f64() * tick as f64) as Micros
            }
        };
        EngineParams {
            epoch: self.workload.epoch,
            horizon: self.workload.horizon,
            slo: micros(scenario.slo.max_wait),
            long_wait: micros(scenario.slo.long_wait),
            deadline: micros(scenario.deadline()),
            activation_latency: micros(c.activation_latency),
            metric_delay: micros(c.metric_delay),
            boot_spread: scenario.instances.boot_spread,
            seed: scenario.seed,
            warmup: scenario.warmup().min(self.workload.horizon),
            tick_phase,
            series_buckets: self.options.series_buckets,
            skip_idle_ticks: self.options.skip_idle_ticks,
            interruptions: engine::InterruptionModel {
                rate_per_instance_hour: scenario.instances.interruptions_per_instance_hour,
                notice: micros(scenario.instances.interruption_notice),
                correlation: scenario.instances.interruption_correlation,
            },
            budgets: scenario
                .budgets
                .iter()
                .filter(|b| b.covers(&scenario.deployment.name))
                .cloned()
                .collect(),
            quotas: scenario
                .quotas
                .iter()
                .filter(|q| {
                    let d = &scenario.deployment;
                    d.pools.iter().any(|p| q.covers(&d.name, &p.name))
                })
                .cloned()
                .collect(),
        }
    }

    /// The report of `runs` (in the order [`Prepared::runs`] gave them; a run that
    /// could not be built is `Err` with the reason, and is listed as skipped).
    pub fn report(&self, runs: Vec<(PlannedRun, Result<PolicyReport, String>)>) -> ScenarioReport {
        let mut policies = Vec::new();
        let mut skipped = Vec::new();
        let mut sweeps: Vec<(Family, Vec<Point>)> = Vec::new();
        for (planned, result) in runs {
            match result {
                Ok(report) => {
                    if let Some(family) = planned.kind.family()
                        && self.options.frontiers
                    {
                        match sweeps.iter_mut().find(|(f, _)| *f == family) {
                            Some((_, points)) => points.push(Point::of(&report)),
                            None => sweeps.push((family, vec![Point::of(&report)])),
                        }
                    }
                    if !planned.sweep_only {
                        policies.push(report);
                    }
                }
                Err(reason) => {
                    if !planned.sweep_only {
                        skipped.push(format!("{}: {reason}", planned.kind));
                    }
                }
            }
        }
        let frontiers = sweeps
            .iter()
            .map(|(family, points)| Frontier::of(family.name(), points))
            .collect();
        ScenarioReport::new(self, policies, frontiers, skipped)
    }
}

/// Run every policy of `kinds` over `scenario` (and their sweeps, with frontiers), one
/// after another. `progress` gets the run's index, the number of runs, the policy's
/// name and its share done.
pub fn run_scenario(
    scenario: &Scenario,
    trace: &Trace,
    kinds: &[PolicyKind],
    options: &RunOptions,
    progress: &mut dyn FnMut(usize, usize, &str, f64),
) -> Result<ScenarioReport, WorkloadError> {
    let prepared = Prepared::new(scenario, trace, *options)?;
    let planned = prepared.runs(kinds);
    let total = planned.len();
    let mut results = Vec::with_capacity(total);
    for (i, run) in planned.into_iter().enumerate() {
        let name = run.kind.to_string();
        let result = prepared.run(&run.kind, &mut |f| progress(i, total, &name, f));
        results.push((run, result));
    }
    Ok(prepared.report(results))
}
