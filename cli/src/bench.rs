//! `scale0 bench <what>`: benchmarks that write their own section of BENCHMARKS.md.
//!
//! - `scale0 bench policies`: every scenario of `bench/scenarios/` against every policy
//!   (each baseline at its defaults and over its sweep) and the bounds; tables per
//!   scenario, the commit, the date, the machine and a paragraph computed from the
//!   numbers on where scale0 stands.
//! - `scale0 bench sim-speed`: the whole NASA trace replayed with scale0's policy; time
//!   and peak memory.
//!
//! Each command replaces only its own `## ` section of BENCHMARKS.md (creating the file
//! or the section when missing), so other benchmarks can live beside them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, anyhow};
use scale0_sim::{self as sim, PolicyKind, RunOptions, Scenario, ScenarioReport};

use crate::simulate::{self, TraceCache};

pub const POLICIES_SECTION: &str = "## Policy benchmark (scale0 bench policies)";
pub const SPEED_SECTION: &str = "## Simulator speed";

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Run every scenario in bench/scenarios against every policy, its frontier and the bounds, and
    /// update the policy benchmark section of BENCHMARKS.md.
    Policies(PoliciesArgs),
    /// Replay the whole NASA trace with scale0's policy; report time and peak memory.
    SimSpeed(SpeedArgs),
    /// The scaler handler's time per deployment run against Redis, with many
    /// deployments and budgets (and without budgets, for the difference).
    BudgetCheck(BudgetCheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct BudgetCheckArgs {
    #[arg(
        long,
        env = "SCALE0_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    #[arg(long, default_value_t = 100)]
    deployments: usize,
    #[arg(long, default_value_t = 10)]
    budgets: usize,
    /// Timed scaler runs (round-robin over the deployments) per configuration.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
}

#[derive(Debug, clap::Args)]
pub struct PoliciesArgs {
    /// Directory of scenario files.
    #[arg(long, default_value = "bench/scenarios")]
    scenarios: PathBuf,
    /// Only scenarios whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Directory for each scenario's JSON and SVG plot.
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    /// The file whose section is replaced.
    #[arg(long, default_value = "BENCHMARKS.md")]
    benchmarks: PathBuf,
    /// Print the section instead of writing it.
    #[arg(long)]
    no_write: bool,
    /// Scenarios run at once (each is single-threaded).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[arg(long)]
    no_plot: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpeedArgs {
    /// The NASA per-second count trace.
    #[arg(long, default_value = "../shared/traces/nasa-http-1995-per-second.txt")]
    trace: PathBuf,
    /// scale0's control tick for the replay.
    #[arg(long, default_value = "5s")]
    tick: String,
    /// Replays; the table reports the fastest and the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the section into this file.
    #[arg(long, default_value = "BENCHMARKS.md")]
    benchmarks: PathBuf,
    #[arg(long)]
    write: bool,
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Policies(args) => policies(args),
        BenchCommand::SimSpeed(args) => speed(args),
        BenchCommand::BudgetCheck(args) => budget_check(args),
    }
}

fn policies(args: PoliciesArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let load_at_start = load();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.scenarios)
        .with_context(|| format!("cannot list {}", args.scenarios.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut scenarios: Vec<(Scenario, PathBuf)> = Vec::new();
    for f in &files {
        let (s, dir) = simulate::load_scenario(f)?;
        if args
            .filter
            .as_ref()
            .is_none_or(|needle| s.name.contains(needle.as_str()))
        {
            scenarios.push((s, dir));
        }
    }
    if scenarios.is_empty() {
        return Err(anyhow!("no scenarios in {}", args.scenarios.display()));
    }
    let mut cache = TraceCache::default();
    let traces = scenarios
        .iter()
        .map(|(s, dir)| simulate::load_trace(s, dir, None, &mut cache))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let options = RunOptions {
        series_buckets: 800,
        frontiers: true,
        ..RunOptions::default()
    };
    // Every (scenario, run) is one job: the frontiers make a scenario dozens of runs,
    // and the weekly traces would otherwise keep one core busy alone at the end.
    let prepared = scenarios
        .iter()
        .zip(&traces)
        .map(|((s, _), t)| sim::Prepared::new(s, t, options))
        .collect::<Result<Vec<_>, _>>()?;
    let plans: Vec<Vec<sim::PlannedRun>> = prepared
        .iter()
        .map(|p| p.runs(&sim::scenario_policies(p.scenario)))
        .collect();
    let queue: Vec<(usize, usize)> = plans
        .iter()
        .enumerate()
        .flat_map(|(i, plan)| (0..plan.len()).map(move |j| (i, j)))
        .collect();
    type Slot = Option<(Result<sim::PolicyReport, String>, f64)>;
    let results: Mutex<Vec<Vec<Slot>>> =
        Mutex::new(plans.iter().map(|p| vec![None; p.len()]).collect());
    let next = AtomicUsize::new(0);
    let jobs = args.jobs.clamp(1, queue.len().max(1));
    let total = queue.len();
    let work = || -> anyhow::Result<()> {
        loop {
            let k = next.fetch_add(1, Ordering::SeqCst);
            let Some(&(i, j)) = queue.get(k) else {
                return Ok(());
            };
            let t0 = Instant::now();
            let report = prepared[i].run(&plans[i][j].kind, &mut |_| {});
            let secs = t0.elapsed().as_secs_f64();
            if (k + 1).is_multiple_of(50) || k + 1 == total {
                eprintln!("[{}/{total}] runs", k + 1);
            }
            results.lock().map_err(|_| anyhow!("a worker panicked"))?[i][j] = Some((report, secs));
        }
    };
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..jobs).map(|_| s.spawn(work)).collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("a benchmark worker panicked"))??;
        }
        Ok(())
    })?;
    let mut reports = Vec::new();
    for ((p, plan), slots) in prepared
        .iter()
        .zip(plans)
        .zip(results.into_inner().map_err(|_| anyhow!("poisoned"))?)
    {
        let mut secs = 0.0;
        let runs = plan
            .into_iter()
            .zip(slots)
            .filter_map(|(planned, slot)| {
                slot.map(|(r, t)| {
                    secs += t;
                    (planned, r)
                })
            })
            .collect();
        let report = p.report(runs);
        let json = args.out.join(format!("{}.json", report.scenario));
        std::fs::write(&json, report.to_json() + "\n")
            .with_context(|| format!("cannot write {}", json.display()))?;
        if !args.no_plot {
            simulate::plot(&report, &args.out.join(format!("{}.svg", report.scenario)))?;
            simulate::plot_frontiers(
                &report,
                &args.out.join(format!("{}-frontiers.svg", report.scenario)),
            )?;
        }
        reports.push((report, secs));
    }
    let results = reports;
    let runtime = started.elapsed().as_secs_f64();
    let section = policies_section(&results, runtime, jobs, &args, &load_at_start);
    if args.no_write {
        println!("{section}");
    } else {
        replace_section(&args.benchmarks, POLICIES_SECTION, &section)?;
        println!(
            "{} scenarios in {runtime:.0} s; wrote {} ({POLICIES_SECTION})",
            results.len(),
            args.benchmarks.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The section: provenance, assumptions, the assessment, then one table per scenario.
fn policies_section(
    results: &[(ScenarioReport, f64)],
    runtime: f64,
    jobs: usize,
    args: &PoliciesArgs,
    load: &str,
) -> String {
    let mut s = format!("{POLICIES_SECTION}\n\n");
    s.push_str(&format!(
        "Command: `cargo run --release -p scale0 -- bench policies{}` (scenarios: `{}/*.toml`; JSON and SVG plots of \
         demand against ready and booting capacity per policy go to `{}/`). {} ({load}); commit {}; {}. \
         Suite runtime: {runtime:.0} s for {} scenarios and {} runs (frontiers included){}.\n\n",
        if jobs > 1 { format!(" --jobs {jobs}") } else { String::new() },
        args.scenarios.display(),
        args.out.display(),
        machine(),
        commit(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        results.len(),
        results
            .iter()
            .map(|(r, _)| r.policies.len() + r.frontiers.iter().map(|f| f.runs).sum::<usize>())
            .sum::<usize>(),
        if jobs > 1 { format!(", {jobs} at a time") } else { String::new() },
    ));
    s.push_str(
        "How to read it. Cost is billed from launch (boots are paid) to stop over the scenario's scored window \
         (after its `warmup`, if any). *SLO met* is the share of all scored requests that started within the \
         scenario's maximum wait (shed and expired requests miss it); *p99 wait* is over served requests; \
         *cold-start delayed* counts requests served by an instance that became ready after they arrived. Two \
         lower bounds (`sim/src/bounds.rs` proves them): *all within SLO* for any policy that starts every request \
         within the maximum wait, *zero wait* for one that never queues; both take the cheapest and fastest of \
         the deployment's pools. *× SLO bound* is the column to compare a policy's cost with. Each baseline runs \
         at its documented defaults (the table rows) and over a sweep of its main knobs; its *frontier* is the set \
         of settings no other setting beats on both cost and SLO. scale0 is *dominated* when a frontier point is at \
         most as costly and at least as good. Every policy runs behind the queue worker's own state machine \
         (`core::worker`: holding, deadlines, `core::admission` shedding at arrival and at each registry read); \
         reactive policies dispatch by its power of two choices on outstanding requests, keep-alive policies \
         pack requests onto the busiest warm instance as FaaS platforms do. scale0 runs its real `decide()` on the \
         scenario's control loop (a 60 s EventBridge tick at a phase drawn from the seed, plus the worker's \
         activation and pressure events, rate-limited to one per 5 s and 10 s), `scale0@5s` the same with a 5 s tick. Service times come from token \
         counts (Azure 2023: 0.2 ms per prompt token, 25 ms per generated token, an 8B model on one A10G) or, \
         for count traces, a log-normal of the same mean (1.1 s, σ 0.75 fitted to those token-derived times); \
         one instance is a g5.xlarge at $1.006/h with 8 slots.\n\n",
    );
    s.push_str(&assessment(results));
    s.push('\n');
    for (r, secs) in results {
        s.push_str(&format!("### {}\n\n", r.scenario));
        if !r.description.is_empty() {
            s.push_str(&format!("{}\n\n", r.description));
        }
        s.push_str(&format!(
            "{} (seed {}, ran in {secs:.1} s)\n\n",
            r.summary(),
            r.seed
        ));
        s.push_str(&r.markdown_table());
        s.push('\n');
        s.push_str(&r.markdown_frontiers());
        s.push('\n');
        for p in r.policies.iter().filter(|p| p.policy.starts_with("scale0")) {
            s.push_str(&format!("{}\n\n", simulate::verdict(r, &p.policy)));
        }
    }
    s
}

/// A paragraph computed from the results: where scale0 stands, good or bad. Every
/// sentence is derived from the numbers; the explanations are printed only when the
/// numbers show the behaviour they explain.
fn assessment(results: &[(ScenarioReport, f64)]) -> String {
    let reports: Vec<&ScenarioReport> = results.iter().map(|(r, _)| r).collect();
    let mine = |r: &ScenarioReport| r.policies.iter().find(|p| p.policy == "scale0").cloned();
    let with_scale0: Vec<(&ScenarioReport, sim::PolicyReport)> = reports
        .iter()
        .filter_map(|r| mine(r).map(|m| (*r, m)))
        .collect();
    let n = with_scale0.len();
    if n == 0 {
        return "No scenario ran scale0's policy.\n".into();
    }
    let mut p =
        String::from("**Where scale0 stands** (generated from the tables below on every run). ");

    // Cost against the bounds.
    for (label, ratio) in [
        (
            "the within-SLO bound",
            (|m: &sim::PolicyReport| m.ratio_to_slo_bound) as fn(&sim::PolicyReport) -> Option<f64>,
        ),
        ("the zero-wait bound", |m: &sim::PolicyReport| {
            m.ratio_to_zero_wait
        }),
    ] {
        let mut ratios: Vec<(f64, &str)> = with_scale0
            .iter()
            .filter_map(|(r, m)| ratio(m).map(|x| (x, r.scenario.as_str())))
            .collect();
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some(lo), Some(hi)) = (ratios.first(), ratios.last()) {
            let median = ratios[ratios.len() / 2].0;
            p.push_str(&format!(
                "scale0 costs {:.2}× to {:.2}× {label} (median {median:.2}×; lowest on {}, highest on {}). ",
                lo.0, hi.0, lo.1, hi.1
            ));
        }
    }

    // Pareto: does any frontier point, or any baseline at its defaults, dominate it?
    let mut by_frontier = Vec::new();
    let mut by_default = Vec::new();
    for (r, m) in &with_scale0 {
        let by = r.dominating(&m.policy);
        if !by.is_empty() {
            let names: Vec<String> = by.iter().map(|q| format!("`{}`", q.policy)).collect();
            by_frontier.push(format!("{} (by {})", r.scenario, names.join(", ")));
        }
        let me = sim::Point::of(m);
        let defaults: Vec<&str> = r
            .policies
            .iter()
            .filter(|q| !q.policy.starts_with("scale0") && sim::Point::of(q).dominates(&me))
            .map(|q| q.policy.as_str())
            .collect();
        if !defaults.is_empty() {
            by_default.push(format!("{} (by {})", r.scenario, defaults.join(", ")));
        }
    }
    for (what, list) in [
        ("no baseline at its defaults dominates scale0", &by_default),
        (
            "no point of any baseline's frontier dominates scale0",
            &by_frontier,
        ),
    ] {
        p.push_str(&format!("In {} of {n} scenarios {what}", n - list.len()));
        if list.is_empty() {
            p.push_str(". ");
        } else {
            p.push_str(&format!("; in {}: {}. ", list.len(), list.join("; ")));
        }
    }

    // Head to head with each baseline.
    let mut names: Vec<String> = Vec::new();
    for (r, _) in &with_scale0 {
        for q in &r.policies {
            if !q.policy.starts_with("scale0") && !names.contains(&q.policy) {
                names.push(q.policy.clone());
            }
        }
    }
    let pairs: Vec<String> = names
        .iter()
        .map(|name| {
            let (mut both, mut cheaper, mut better) = (0, 0, 0);
            for (r, m) in &with_scale0 {
                if let Some(q) = r.policies.iter().find(|q| &q.policy == name) {
                    both += 1;
                    cheaper += usize::from(m.cost_usd < q.cost_usd);
                    better += usize::from(m.slo_attainment > q.slo_attainment);
                }
            }
            format!("{name} {cheaper}/{both} cheaper, {better}/{both} higher SLO")
        })
        .collect();
    if !pairs.is_empty() {
        p.push_str(&format!(
            "Against each baseline, scale0 is: {}. ",
            pairs.join("; ")
        ));
    }

    // Bursts: cheaper than zero-queueing, at the price of waits.
    let bursty: Vec<String> = with_scale0
        .iter()
        .filter(|(r, m)| {
            // Misses well beyond those a cold start explains.
            let misses = 1.0 - m.slo_attainment;
            misses - m.cold_start_share() > 0.05
                && m.wait_p99_s > 3.0 * r.slo_max_wait_s
                && m.ratio_to_zero_wait.is_some_and(|x| x < 1.1)
        })
        .map(|(r, m)| {
            format!(
                "{} ({:.1}% within {} s, p99 wait {:.0} s)",
                r.scenario,
                m.slo_attainment * 100.0,
                r.slo_max_wait_s,
                m.wait_p99_s
            )
        })
        .collect();
    if !bursty.is_empty() {
        p.push_str(&format!(
            "Where it is cheap it often buys that with waiting beyond cold starts: {}. Once capacity is ready `decide()` launches \
             for a backlog only what the ready slots leave undrained after a boot lead, and a backlog at zero first waits \
             a boot; its tracking has no notion of the SLO. ",
            bursty.join(", "),
        ));
    }

    // Dense but bursty: paying for capacity that comes after the burst.
    let sparse_below = SPARSE_REQUESTS_PER_HOUR;
    let per_hour = |r: &ScenarioReport| r.requests as f64 / r.horizon_hours.max(1e-9);
    let costly_bursts: Vec<String> = with_scale0
        .iter()
        .filter(|(r, m)| {
            per_hour(r) >= sparse_below && m.ratio_to_zero_wait.is_some_and(|x| x > 1.5)
        })
        .map(|(r, m)| {
            format!(
                "{} ({:.2}× the zero-wait bound, {:.1}% within the SLO, {} launches)",
                r.scenario,
                m.ratio_to_zero_wait.unwrap_or(0.0),
                m.slo_attainment * 100.0,
                m.launches
            )
        })
        .collect();
    if !costly_bursts.is_empty() {
        p.push_str(&format!(
            "In bursts with long boots it pays for capacity that arrives late: {}. A backlog at zero asks for enough \
             instances to drain it within target_queue_wait once they are ready; when the boot is longer than the burst, \
             they are ready after it and idle until the stabilization window lets them go. ",
            costly_bursts.join(", ")
        ));
    }

    // Sparse streams: paying for idle time.
    let sparse: Vec<String> = with_scale0
        .iter()
        .filter(|(r, m)| {
            per_hour(r) < sparse_below && m.ratio_to_zero_wait.is_some_and(|x| x > 1.5)
        })
        .map(|(r, m)| {
            format!(
                "{} ({:.2}× the zero-wait bound, {:.1}% within the SLO)",
                r.scenario,
                m.ratio_to_zero_wait.unwrap_or(0.0),
                m.slo_attainment * 100.0
            )
        })
        .collect();
    if !sparse.is_empty() {
        p.push_str(&format!(
            "On sparse streams it pays for idle instances: {}. There it waits out scale_to_zero_grace after the last \
             request and scales in only once the stabilization window holds no demand ({}), longer than Knative's 90 s \
             and shorter than a 10-minute keep-alive, and every request after a scale-in still pays a full boot unless \
             the time-of-week forecast pre-warms for it (`predictive = \"on\"`); with a cold_start_budget the \
             keep-alive is learned from the deployment's idle gaps instead. ",
            sparse.join(", "),
            with_scale0[0].0.scale0_settings
        ));
    }
    p.push_str(
        "The bounds are not policies: they know each arrival a boot ahead. Sparse streams are where \
         scale-to-zero pays and where every reactive policy's cold starts show; the SLO column there is mostly the share \
         of requests that found a warm instance.\n",
    );
    p
}

fn speed(args: SpeedArgs) -> anyhow::Result<ExitCode> {
    let tick: scale0_core::duration::HumanDuration =
        args.tick.parse().map_err(|e| anyhow!("--tick: {e}"))?;
    let load_at_start = load();
    let mut scenario = Scenario::from_toml_str(SPEED_SCENARIO)
        .map_err(|e| anyhow!("built-in speed scenario: {e}"))?;
    scenario.trace.path = args.trace.display().to_string();
    let kind = PolicyKind::scale0(Some(tick));
    let mut parse_times = Vec::new();
    let mut replay_times = Vec::new();
    let mut last = None;
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        let trace =
            simulate::load_trace(&scenario, Path::new(""), None, &mut TraceCache::default())?;
        let parsed = t0.elapsed().as_secs_f64();
        let prepared = sim::Prepared::new(&scenario, &trace, RunOptions::default())?;
        let t1 = Instant::now();
        let report = prepared.run(&kind, &mut |_| {}).map_err(|e| anyhow!(e))?;
        replay_times.push(t1.elapsed().as_secs_f64());
        parse_times.push(parsed);
        last = Some(report);
    }
    let report = last.expect("at least one run");
    let rss = peak_rss_mib();
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let (parse, replay) = (sorted(&parse_times), sorted(&replay_times));
    let med = |v: &[f64]| v[v.len() / 2];
    println!(
        "NASA trace, {} requests, scale0@{tick}: read+parse {:.3} s, replay {:.3} s (fastest of {}; median {:.3} s), {} decisions, peak RSS {}",
        report.requests,
        parse[0],
        replay[0],
        replay.len(),
        med(&replay),
        report.decisions,
        rss.map_or("unknown".into(), |m| format!("{m:.0} MiB")),
    );
    let section = format!(
        "{SPEED_SECTION}\n\n\
         Command: `cargo run --release -p scale0 -- bench sim-speed --write` (the built-in scenario in `cli/src/bench.rs`: \
         the whole NASA-HTTP trace, {} requests over 58.6 days, scale0's `decide()` every {tick} plus the worker's events, \
         8-slot instances, log-normal service times; the suite's scenarios tick every 60 s, so this is the harder case). \
         Single-threaded. {} ({load_at_start}); commit {}; {}. Peak RSS is the process's high-water mark, the figure \
         `/usr/bin/time -v` reports as maximum resident set size.\n\n\
         | figure | result | goal |\n| --- | ---: | --- |\n\
         | read and parse the 10 MB trace | {:.3} s | |\n\
         | replay (workload generation + engine + {} decisions), fastest of {} | {:.3} s | ≤ 3 s |\n\
         | replay, median | {:.3} s | |\n\
         | peak RSS (VmHWM) | {} | |\n",
        report.requests,
        machine(),
        commit(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        parse[0],
        report.decisions,
        replay.len(),
        replay[0],
        med(&replay),
        rss.map_or("unknown".into(), |m| format!("{m:.0} MiB")),
    );
    if args.write {
        replace_section(&args.benchmarks, SPEED_SECTION, &section)?;
        println!("wrote {} ({SPEED_SECTION})", args.benchmarks.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Below this many requests an hour a scenario is a sparse stream: idle gaps, not
/// bursts, decide what scale-to-zero costs.
const SPARSE_REQUESTS_PER_HOUR: f64 = 1000.0;

const SPEED_SCENARIO: &str = r#"
name = "nasa-full-speed"
description = "The whole NASA-HTTP trace with scale0's policy"
[trace]
path = "set by the command"
format = "counts"
start = "1995-07-01T04:00:00Z"
[service]
model = "lognormal"
mean_seconds = 1.1
sigma = 0.75
[slo]
max_wait = "5s"
[deployment]
name = "nasa"
request_deadline = "10m"
expected_service_time = "1s"
[[deployment.pools]]
name = "a10g"
instance_type = "g5.xlarge"
max_instances = 100
slots = 8
price_per_hour_usd = 1.006
boot_time = "90s"
"#;

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The 1-minute load average (others' work on a shared machine shows in wall times).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            l.split_whitespace()
                .next()
                .map(|x| format!("load average {x} at the start"))
        })
        .unwrap_or_else(|| "load average unknown".into())
}

/// "2 cores, <CPU model>".
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("Machine: {cores} cores, {model}")
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Replace the `## ` section titled `heading` (up to the next `## ` heading) with
/// `section`, or append it; create the file with its title when missing.
pub fn replace_section(path: &Path, heading: &str, section: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# scale0 benchmarks\n".to_string(),
        Err(e) => return Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    let new = splice_section(&old, heading, section);
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}

fn splice_section(old: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    let lines: Vec<&str> = old.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == heading) else {
        return format!("{}\n\n{section}", old.trim_end());
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut out = lines[..start].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&section);
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

/// A config of `n` deployments (one pool each) and `budgets`
/// budgets: budget `i` covers the deployments whose index is `i` modulo `budgets`,
/// and the last covers every deployment.
fn budget_check_config(prefix: &str, n: usize, budgets: usize) -> String {
    let mut toml = String::new();
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for b in 0..budgets {
        let scope = if b + 1 == budgets {
            String::new()
        } else {
            let list: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| i % budgets.max(1) == b)
                .map(|(_, n)| format!("\"{n}\""))
                .collect();
            format!("deployments = [{}]", list.join(", "))
        };
        toml.push_str(&format!(
            "[[budgets]]\nname = \"b{b}\"\n{scope}\nperiod = \"daily\"\nlimit_usd = 100000.0\n\n"
        ));
    }
    for name in &names {
        toml.push_str(&format!(
            "[[deployments]]\nname = \"{name}\"\n[[deployments.pools]]\nname = \"gpu\"\n\
             max_instances = 4\nslots = 4\nprice_per_hour_usd = 1.0\nboot_time = \"60s\"\n\n"
        ));
    }
    toml
}

fn budget_check(args: BudgetCheckArgs) -> anyhow::Result<ExitCode> {
    use scale0_functions::broker::FixedQueueDepth;
    use scale0_functions::events::{ScalerEvent, Wake};
    use scale0_functions::provider::fake::FakeProvider;
    use std::sync::Arc;

    let rt = crate::status::runtime()?;
    rt.block_on(async {
        let mut lines = Vec::new();
        for budgets in [0, args.budgets] {
            let prefix = format!("bench-budget-{}-{budgets}", std::process::id());
            let config = scale0_core::config::Config::load(&budget_check_config(
                &prefix,
                args.deployments,
                budgets,
            ))
            .map_err(|e| anyhow!("bench config: {e}"))?;
            let store = crate::status::connect(&args.redis_url)
                .await?
                .with_ledger_namespace(&format!("{prefix}-ledger"));
            let queue = FixedQueueDepth::new();
            for d in &config.deployments {
                queue.set(&scale0_core::contract::request_queue(&d.name), 6);
            }
            let names: Vec<String> = config.deployments.iter().map(|d| d.name.clone()).collect();
            let deps = scale0_functions::Deps::new(
                config,
                store.clone(),
                Arc::new(FakeProvider::by_count()),
                Arc::new(queue),
            );
            let wake = |d: &str| {
                ScalerEvent::Wake(Wake {
                    deployments: vec![d.to_string()],
                    trigger: "bench".into(),
                    id: None,
                    sweep: false,
                })
            };
            // Every deployment decides once (launches, commitments published), then the
            // timed runs.
            for d in &names {
                scale0_functions::scaler::scaler(wake(d), &deps).await?;
            }
            let mut ms = Vec::with_capacity(args.runs);
            for i in 0..args.runs {
                let t = Instant::now();
                scale0_functions::scaler::scaler(wake(&names[i % names.len()]), &deps).await?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            let pct = |p: f64| scale0_core::percentile::of_sorted(&ms, p).unwrap_or(0.0);
            lines.push(format!(
                "| {} | {budgets} | {} | {:.2} | {:.2} | {:.2} |",
                args.deployments,
                args.runs,
                pct(0.5),
                pct(0.99),
                ms.last().copied().unwrap_or(0.0)
            ));
            store.forget_ledger().await?;
            for d in &names {
                store.forget_deployment(d).await?;
            }
        }
        println!("| deployments | budgets | runs | p50 ms | p99 ms | max ms |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for l in lines {
            println!("{l}");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_only_its_section() {
        let old = "# scale0 benchmarks\n\nintro\n\n## Decision core\n\nkeep me\n\n## Simulator speed\n\nold figures\n\n## Worker\n\nkeep me too\n";
        let new = splice_section(old, SPEED_SECTION, "## Simulator speed\n\nnew figures\n");
        assert_eq!(
            new,
            "# scale0 benchmarks\n\nintro\n\n## Decision core\n\nkeep me\n\n## Simulator speed\n\nnew figures\n\n## Worker\n\nkeep me too\n"
        );
        let appended = splice_section(
            "# scale0 benchmarks\n",
            POLICIES_SECTION,
            &format!("{POLICIES_SECTION}\n\nx\n"),
        );
        assert_eq!(
            appended,
            format!("# scale0 benchmarks\n\n{POLICIES_SECTION}\n\nx\n")
        );
    }
}
