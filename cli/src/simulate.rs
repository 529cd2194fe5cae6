//! `scale0 simulate --scenario FILE`: replay a trace through scale0's `decide()` and the
//! baselines, print the comparison table, and write the JSON and an SVG plot.
//!
//! The simulation itself is `scale0_sim` (pure); this module does the edges: reading
//! the scenario and the trace, a progress bar on stderr for runs longer than a couple of
//! seconds, and the plot (plotters, SVG backend only: no system libraries).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plotters::prelude::*;
use scale0_sim::trace::{self, ReadOptions};
use scale0_sim::{
    self as sim, PolicyKind, RunOptions, Scenario, ScenarioReport, Series, Trace, TraceFormat,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario file (TOML); its `trace.path` is relative to the file.
    #[arg(long)]
    scenario: PathBuf,
    /// Policies to run (repeatable; default: the scenario's list, or all). Names:
    /// scale0, scale0@<tick>, keda, knative, aws-target-tracking, keep-alive,
    /// keep-alive@<ttl>, hybrid-histogram, always-on; a baseline may carry settings as
    /// an inline TOML table: 'knative{scale_down_delay="5m"}'.
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Also run each baseline over its sweep and print its frontier (the settings no
    /// other setting beats on both cost and SLO), and whether one dominates scale0.
    #[arg(long)]
    frontiers: bool,
    /// Trace format, when detection from the content is not wanted.
    #[arg(long)]
    format: Option<TraceFormat>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for `<scenario>.json` and `<scenario>.svg`.
    #[arg(long, default_value = "out/sim")]
    out: PathBuf,
    /// Skip the plot.
    #[arg(long)]
    no_plot: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut scenario, dir) = load_scenario(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let kinds = policies(&scenario, &args.policies)?;
    let trace = load_trace(&scenario, &dir, args.format, &mut TraceCache::default())?;
    let options = RunOptions {
        frontiers: args.frontiers,
        ..RunOptions::default()
    };
    let report = run_with_progress(&scenario, &trace, &kinds, &options)?;
    println!("{}\n", report.summary());
    print!("{}", report.markdown_table());
    if args.frontiers {
        println!("\n{}", report.markdown_frontiers());
        for p in report
            .policies
            .iter()
            .filter(|p| p.policy.starts_with("scale0"))
        {
            println!("{}", verdict(&report, &p.policy));
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let json = args.out.join(format!("{}.json", scenario.name));
    std::fs::write(&json, report.to_json() + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("\nJSON: {}", json.display());
    if !args.no_plot {
        let svg = args.out.join(format!("{}.svg", scenario.name));
        plot(&report, &svg)?;
        println!("plot: {}", svg.display());
        if args.frontiers {
            let svg = args.out.join(format!("{}-frontiers.svg", scenario.name));
            plot_frontiers(&report, &svg)?;
            println!("frontier plot: {}", svg.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Read and validate a scenario; also returns the directory its paths are relative to.
pub fn load_scenario(path: &Path) -> anyhow::Result<(Scenario, PathBuf)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let scenario =
        Scenario::from_toml_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((scenario, dir))
}

/// The policies to run: the command line's, else the scenario's, else all.
pub fn policies(scenario: &Scenario, names: &[String]) -> anyhow::Result<Vec<PolicyKind>> {
    if names.is_empty() {
        return Ok(sim::scenario_policies(scenario));
    }
    names
        .iter()
        .map(|n| n.parse::<PolicyKind>().map_err(|e| anyhow!(e)))
        .collect()
}

/// Traces already read, by (path, format, bin): the suite reuses each several times.
#[derive(Default)]
pub struct TraceCache {
    traces: HashMap<(PathBuf, Option<TraceFormat>, Option<i64>), Arc<Trace>>,
}

/// Read the scenario's trace (relative to `dir`).
pub fn load_trace(
    scenario: &Scenario,
    dir: &Path,
    format: Option<TraceFormat>,
    cache: &mut TraceCache,
) -> anyhow::Result<Arc<Trace>> {
    let path = dir.join(&scenario.trace.path);
    let format = format.or(scenario.trace.format);
    let bin = scenario.trace.bin.map(|b| b.0.as_micros() as i64);
    let key = (path.clone(), format, bin);
    if let Some(t) = cache.traces.get(&key) {
        return Ok(Arc::clone(t));
    }
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read trace {} (trace.path is relative to the scenario file)",
            path.display()
        )
    })?;
    let t = trace::parse(
        &bytes,
        &path.display().to_string(),
        format,
        ReadOptions { bin },
    )?;
    let t = Arc::new(t);
    cache.traces.insert(key, Arc::clone(&t));
    Ok(t)
}

/// A progress bar that appears only once a run has taken more than two seconds.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    shown: bool,
}

impl Progress {
    pub fn new(len: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos:>3}% {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            started: Instant::now(),
            shown: false,
        }
    }

    pub fn update(&mut self, prefix: &str, pos: u64, msg: &str) {
        if !self.shown && self.started.elapsed() > Duration::from_secs(2) {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        if self.shown {
            self.bar.set_prefix(prefix.to_string());
            self.bar.set_message(msg.to_string());
            self.bar.set_position(pos);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Run a scenario with a progress bar over its policies.
pub fn run_with_progress(
    scenario: &Scenario,
    trace: &Trace,
    kinds: &[PolicyKind],
    options: &RunOptions,
) -> anyhow::Result<ScenarioReport> {
    let mut progress = Progress::new(100);
    let report = sim::run_scenario(scenario, trace, kinds, options, &mut |i, n, name, done| {
        let share = (i as f64 + done) / n.max(1) as f64;
        progress.update(&scenario.name, (100.0 * share) as u64, name);
    })?;
    progress.finish();
    Ok(report)
}

/// Whether any frontier point dominates `policy`, in one line.
pub fn verdict(report: &ScenarioReport, policy: &str) -> String {
    let by = report.dominating(policy);
    if by.is_empty() {
        format!("{policy}: not dominated by any frontier point")
    } else {
        let names: Vec<String> = by.iter().map(|p| format!("`{}`", p.policy)).collect();
        format!("{policy}: dominated by {}", names.join(", "))
    }
}

/// Demand against ready and booting capacity over time: one panel for the zero-wait
/// bound's levels, one per policy, sharing the time axis.
pub fn plot(report: &ScenarioReport, path: &Path) -> anyhow::Result<()> {
    let panels = report.policies.len() + 1;
    let root = SVGBackend::new(path, (1200, 60 + 200 * panels as u32)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (title, body) = root.split_vertically(50);
    title
        .titled(
            &format!(
                "{}: requests in the system (line) vs ready (blue) and booting (orange) slots; own y scale per panel",
                report.scenario
            ),
            ("sans-serif", 18),
        )
        .map_err(|e| fail(&e))?;
    let areas = body.split_evenly((panels, 1));
    let hours = report.horizon_hours.max(1e-6);
    let mut all: Vec<(String, &Series)> = vec![(
        format!(
            "zero-wait bound: {:.1} GPU-h (${:.2}); within-SLO bound ${:.2}",
            report.bounds.zero_wait_instance_seconds / 3600.0,
            report.bounds.zero_wait_cost_usd,
            report.bounds.within_slo_cost_usd
        ),
        &report.bounds.series,
    )];
    for p in &report.policies {
        all.push((
            format!(
                "{}: {:.1} GPU-h (${:.2}), SLO met {:.1}%, p99 wait {:.1} s",
                p.policy,
                p.gpu_hours,
                p.cost_usd,
                p.slo_attainment * 100.0,
                p.wait_p99_s
            ),
            &p.series,
        ));
    }
    let blue = RGBColor(70, 120, 200);
    let orange = RGBColor(240, 160, 60);
    for (area, (caption, series)) in areas.iter().zip(&all) {
        // Each panel has its own scale: one policy's queue spike would flatten the rest.
        let y_max = (0..series.demand.len())
            .map(|i| series.demand[i].max(series.ready_slots[i] + series.booting_slots[i]))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..hours, 0u32..y_max + 1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("hours")
            .y_desc("slots")
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| fail(&e))?;
        let t: Vec<f64> = series.hours().collect();
        let stacked = t
            .iter()
            .zip(series.ready_slots.iter().zip(&series.booting_slots))
            .map(|(&x, (&r, &b))| (x, r + b));
        chart
            .draw_series(AreaSeries::new(stacked, 0, orange.mix(0.6)))
            .map_err(|e| fail(&e))?;
        let ready = t.iter().zip(&series.ready_slots).map(|(&x, &r)| (x, r));
        chart
            .draw_series(AreaSeries::new(ready, 0, blue.mix(0.6)))
            .map_err(|e| fail(&e))?;
        let demand = t.iter().zip(&series.demand).map(|(&x, &d)| (x, d));
        chart
            .draw_series(LineSeries::new(demand, BLACK.stroke_width(1)))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Cost against the share within the SLO: each baseline's frontier as a line, every
/// policy run at its given setting as a point, scale0 highlighted, the two bounds as
/// vertical lines.
pub fn plot_frontiers(report: &ScenarioReport, path: &Path) -> anyhow::Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let points = report
        .frontiers
        .iter()
        .flat_map(|f| f.points.iter().map(|p| (p.cost_usd, p.slo_attainment)))
        .chain(
            report
                .policies
                .iter()
                .map(|p| (p.cost_usd, p.slo_attainment)),
        );
    let (mut x_max, mut y_min) = (report.bounds.zero_wait_cost_usd, 1.0f64);
    for (c, s) in points {
        x_max = x_max.max(c);
        y_min = y_min.min(s);
    }
    let y_min = (y_min * 100.0 - 2.0).max(0.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: cost against share within the SLO (wait ≤ {} s)",
                report.scenario, report.slo_max_wait_s
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max * 1.05, y_min..100.5f64)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("cost, USD")
        .y_desc("% of requests within the SLO")
        .draw()
        .map_err(|e| fail(&e))?;
    for (bound, label) in [
        (report.bounds.within_slo_cost_usd, "bound: all within SLO"),
        (report.bounds.zero_wait_cost_usd, "bound: zero wait"),
    ] {
        chart
            .draw_series(LineSeries::new(
                [(bound, y_min), (bound, 100.5)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    }
    for (i, f) in report.frontiers.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = f
            .points
            .iter()
            .map(|p| (p.cost_usd, p.slo_attainment * 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(format!("{} frontier", f.family))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    for p in &report.policies {
        let at = (p.cost_usd, p.slo_attainment * 100.0);
        let scale0 = p.policy.starts_with("scale0");
        let color = if scale0 { RED } else { BLACK };
        chart
            .draw_series([EmptyElement::at(at)
                + Cross::new((0, 0), if scale0 { 7 } else { 4 }, color.stroke_width(2))
                + Text::new(p.policy.clone(), (6, -12), ("sans-serif", 12))])
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
