//! `scale0 load`: a producer that replays traffic against the live stack and reports
//! what every request got back.
//!
//! Traffic is a simulator scenario (`--scenario`: its trace, transform and service
//! model), a bare trace file (`--trace`, any format the simulator reads), or a
//! synthetic burst (`--burst N [--over D]`). `--time-compression`, `--thinning` and
//! `--duration` adjust the first two. Each request asks the model server for work that
//! takes its service time: an OpenAI completions body whose `max_tokens` is the service
//! time × `--decode-rate` (the stand-in instance's decode rate, 100 tokens/s by default).
//!
//! The producer behaves as a careful client should under faults: replies come to a
//! named queue of its own (not direct reply-to, which dies with the connection), it
//! publishes with confirms and republishes what the broker did not confirm after a
//! reconnect, and it acks a reply only after recording it. So every request is
//! accounted for: the first reply is its terminal outcome, any further reply is
//! counted as a duplicate (not a redelivery of a reply already recorded, whose ack was
//! lost with the connection), and a request with no reply by the end is missing.
//!
//! While it runs it samples the stack from Redis every 500 ms (held, in flight,
//! instances by state) for the timeline plot.
//!
//! One module per concern: [`plan`] turns the arguments into requests (pure),
//! [`producer`] sends them and collects the replies, [`sampler`] reads the stack's
//! state from Redis, [`report`] summarises and prints, [`plot`] draws the timeline.

mod plan;
mod plot;
mod producer;
mod report;
mod sampler;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use scale0_core::duration::HumanDuration;
use scale0_sim::TraceFormat;
use scale0_state::Store;

use plan::plan_from_args;
pub use plan::{LoadPlan, Planned};
pub use plot::plot;
pub use producer::run_load;
pub use report::LoadReport;
pub use sampler::Sampler;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Deployment to send to (default: the scenario's deployment name).
    #[arg(long)]
    pub deployment: Option<String>,
    /// A simulator scenario: trace, transform, service model, deadline, priorities.
    #[arg(long, conflicts_with_all = ["trace", "burst"])]
    pub scenario: Option<PathBuf>,
    /// A trace file in any format the simulator reads.
    #[arg(long, conflicts_with = "burst")]
    pub trace: Option<PathBuf>,
    /// The trace's format, when detection is not enough.
    #[arg(long, requires = "trace")]
    pub format: Option<TraceFormat>,
    /// N requests at once (or spread evenly over `--over`).
    #[arg(long)]
    pub burst: Option<u64>,
    #[arg(long, default_value = "0s", requires = "burst")]
    pub over: HumanDuration,
    /// Divide trace time by this (60 replays an hour in a minute).
    #[arg(long)]
    pub time_compression: Option<f64>,
    /// Keep each trace request with this probability.
    #[arg(long)]
    pub thinning: Option<f64>,
    /// Replay only this much of the trace (after compression).
    #[arg(long)]
    pub duration: Option<HumanDuration>,
    /// Service time of burst requests, and of trace requests without a scenario's model.
    #[arg(long, default_value = "200ms")]
    pub service: HumanDuration,
    /// Deadline given to every request (`x-scale0-deadline`); default: the deployment's.
    #[arg(long)]
    pub deadline: Option<HumanDuration>,
    /// Priority of every request (0-9); default: the scenario's mix, or none.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Tokens per second the model server decodes (sizes `max_tokens`).
    #[arg(long, default_value_t = 100.0)]
    pub decode_rate: f64,
    /// Seed for thinning and arrival spreading.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Give up on replies this long after the last request was sent.
    #[arg(long, default_value = "2m")]
    pub reply_timeout: HumanDuration,
    /// Keep listening this long after every request has a reply, to count duplicates.
    #[arg(long, default_value = "1s")]
    pub linger: HumanDuration,
    /// Write the report (with the timeline) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the timeline plot (SVG) here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = plan_from_args(&args)?;
    let amqp_url =
        std::env::var("SCALE0_AMQP_URL").unwrap_or_else(|_| crate::local::DEFAULT_AMQP_URL.into());
    let redis_url = std::env::var("SCALE0_REDIS_URL")
        .unwrap_or_else(|_| crate::local::DEFAULT_REDIS_URL.into());
    let report = tokio::runtime::Runtime::new()?.block_on(async {
        let store = Store::connect(&redis_url).await.ok();
        eprintln!(
            "sending {} requests to {} over {:.1} s",
            plan.requests.len(),
            plan.deployment,
            plan.requests.last().map_or(0.0, |r| r.at.as_secs_f64())
        );
        run_load(&plan, &amqp_url, store, Arc::default()).await
    })?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot(&report.deployment, &report.timeline, path)?;
        println!("timeline plot: {}", path.display());
    }
    Ok(if report.missing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
