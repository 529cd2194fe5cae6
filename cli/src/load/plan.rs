//! What to send and when: the requests of a scenario, a trace or a burst (pure).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use scale0_core::duration::HumanDuration;
use scale0_sim::{Scenario, TraceFormat, Workload};

use super::Args;

/// One request to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    /// When to send it, from the start of the run.
    pub at: Duration,
    pub service: Duration,
    pub priority: Option<u8>,
}

/// What to send, where.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub deployment: String,
    pub requests: Vec<Planned>,
    pub deadline: Option<Duration>,
    pub decode_rate: f64,
    pub reply_timeout: Duration,
    pub linger: Duration,
}

/// A scenario for a bare trace file: its requests, the command line's service time.
fn scenario_for_trace(
    path: &Path,
    format: Option<TraceFormat>,
    service: Duration,
) -> anyhow::Result<Scenario> {
    let path = std::fs::canonicalize(path)
        .with_context(|| format!("cannot read trace {}", path.display()))?;
    let mut text = format!(
        "name = \"load\"\n[trace]\npath = {}\n",
        toml::Value::String(path.display().to_string())
    );
    if let Some(f) = format {
        text.push_str(&format!("format = \"{}\"\n", f.name()));
    }
    text.push_str(&format!(
        "[service]\nmodel = \"fixed\"\nseconds = {}\n[deployment]\nname = \"load\"\n\
         [[deployment.pools]]\nname = \"p\"\nmax_instances = 1\nslots = 1\n\
         price_per_hour_usd = 1.0\nboot_time = \"1s\"\n",
        service.as_secs_f64()
    ));
    Scenario::from_toml_str(&text).map_err(|e| anyhow!("{e}"))
}

pub fn plan_from_args(args: &Args) -> anyhow::Result<LoadPlan> {
    let (requests, scenario_deployment, scenario_deadline) = if let Some(n) = args.burst {
        let spacing = if n > 1 {
            args.over.0 / (n as u32 - 1).max(1)
        } else {
            Duration::ZERO
        };
        let requests = (0..n)
            .map(|i| Planned {
                at: spacing * i as u32,
                service: args.service.0,
                priority: args.priority,
            })
            .collect();
        (requests, None, None)
    } else {
        let (mut scenario, dir) = match (&args.scenario, &args.trace) {
            (Some(path), _) => crate::simulate::load_scenario(path)?,
            (None, Some(trace)) => (
                scenario_for_trace(trace, args.format, args.service.0)?,
                PathBuf::new(),
            ),
            (None, None) => return Err(anyhow!("give --scenario, --trace or --burst")),
        };
        if let Some(c) = args.time_compression {
            scenario.transform.time_compression = c;
        }
        if let Some(t) = args.thinning {
            scenario.transform.thinning = t;
        }
        if let Some(d) = args.duration {
            // The window is in trace time; --duration is after compression.
            let trace_time = d.0.as_secs_f64() * scenario.transform.time_compression;
            scenario.transform.window_length =
                Some(HumanDuration(Duration::from_secs_f64(trace_time)));
        }
        if let Some(seed) = args.seed {
            scenario.seed = seed;
        }
        let trace = crate::simulate::load_trace(&scenario, &dir, None, &mut Default::default())?;
        let workload = Workload::new(&trace, &scenario).map_err(|e| anyhow!("{e}"))?;
        let requests = workload
            .requests()
            .map(|r| Planned {
                at: Duration::from_micros(r.at.max(0) as u64),
                service: Duration::from_micros(r.service.max(1) as u64),
                priority: args.priority.or(Some(r.priority)),
            })
            .collect();
        (
            requests,
            Some(scenario.deployment.name.clone()),
            scenario.requests.deadline.map(|d| d.0),
        )
    };
    let deployment = args
        .deployment
        .clone()
        .or(scenario_deployment)
        .ok_or_else(|| anyhow!("--deployment is required with --burst and --trace"))?;
    Ok(LoadPlan {
        deployment,
        requests,
        deadline: args.deadline.map(|d| d.0).or(scenario_deadline),
        decode_rate: args.decode_rate,
        reply_timeout: args.reply_timeout.0,
        linger: args.linger.0,
    })
}

pub(super) fn total_span(plan: &LoadPlan) -> Duration {
    plan.requests.last().map_or(Duration::ZERO, |r| r.at)
}
