//! `scale0`: the command line. One module per command; `main` only parses arguments
//! and dispatches. Commands that read a clock or touch the network do so here, at the
//! edge; the logic they drive lives in the library crates.

mod bench;
mod config_cmd;
mod demo;
mod explain;
mod load;
mod local;
mod package_lambdas;
mod schedules;
mod simulate;
mod status;
mod terraform_vars;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "scale0",
    version,
    about = "Scale-to-zero control plane for GPU inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        command: config_cmd::ConfigCommand,
    },
    /// List the upcoming firings of every scheduled action, in local time and UTC.
    Schedules(schedules::Args),
    /// Replay a trace scenario through scale0's policy, the baselines and two lower bounds.
    Simulate(simulate::Args),
    /// Benchmarks that update their section of BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Deployments as the control plane holds them in Redis: instances by state,
    /// desired and actual, queued and held, caps, the last decision.
    Status(status::Args),
    /// The last decisions of a deployment, with their reasons.
    Explain(explain::Args),
    /// The whole control plane on this machine: queue workers, the functions' handlers
    /// on local triggers, and scale0-instance processes.
    Local(local::Args),
    /// Replay a trace or a burst against the live stack and report every reply.
    Load(load::Args),
    /// A scripted two-minute story on this machine: cold start, scale-out, scale to
    /// zero, a scheduled floor, shedding. Exits 0 only if everything happened.
    Demo(demo::Args),
    /// Render a configuration into the Terraform modules' inputs (JSON, with the
    /// configuration's sha256), or --check a rendered file against it.
    TerraformVars(terraform_vars::Args),
    /// Zip the built Lambda binaries into the packages Terraform deploys
    /// (scale0-<function>.zip, `bootstrap` at the root); `make lambda-zips` runs it.
    PackageLambdas(package_lambdas::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Config { command } => config_cmd::run(command),
        Command::Schedules(args) => schedules::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Bench { command } => bench::run(command),
        Command::Status(args) => status::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Local(args) => local::run(args),
        Command::Load(args) => load::run(args),
        Command::Demo(args) => demo::run(args),
        Command::TerraformVars(args) => terraform_vars::run(args),
        Command::PackageLambdas(args) => package_lambdas::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Read and validate a config file (TOML, or JSON when it starts with `{`), and print
/// its warnings as of now (an `at()` that already fired) on stderr. Bytes that are not
/// UTF-8 are a configuration error with a position, like any other.
pub fn load_config(
    path: &PathBuf,
) -> anyhow::Result<Result<scale0_core::config::Config, scale0_core::config::LoadError>> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let loaded = scale0_core::config::Config::load_bytes(&bytes);
    if let Ok(config) = &loaded {
        for w in config.warnings(chrono::Utc::now()) {
            eprintln!("{}: warning: {w}", path.display());
        }
    }
    Ok(loaded)
}
