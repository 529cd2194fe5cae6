//! `scale0 schedules FILE [--from RFC3339] [--count N]`: the next firings of every
//! scheduled action, merged in time order, with local and UTC times and what each
//! firing sets.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

#[derive(Debug, clap::Args)]
pub struct Args {
    file: PathBuf,
    /// Start of the listing (default: now).
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// Firings per action.
    #[arg(long, default_value_t = 5)]
    count: usize,
}

struct Firing {
    at: DateTime<Utc>,
    line: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match crate::load_config(&args.file)? {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            return Ok(ExitCode::from(crate::config_cmd::INVALID));
        }
    };
    let from = args.from.unwrap_or_else(Utc::now);
    let mut firings = Vec::new();
    for d in &config.deployments {
        for action in &d.schedules {
            let schedule = action.schedule()?;
            let sets = match (action.min_instances, action.max_instances) {
                (Some(lo), Some(hi)) => format!("min={lo} max={hi}"),
                (Some(lo), None) => format!("min={lo}"),
                (None, Some(hi)) => format!("max={hi}"),
                (None, None) => String::new(),
            };
            for at in schedule.upcoming(from, args.count) {
                let local = at.with_timezone(&schedule.time_zone());
                firings.push(Firing {
                    at,
                    line: format!(
                        "{}  {:<17}  {}  {:<12} {:<28} {}",
                        local.format("%a %Y-%m-%d %H:%M %Z"),
                        format!("({})", action.time_zone),
                        at.format("%Y-%m-%dT%H:%M:%SZ"),
                        d.name,
                        action.name,
                        sets
                    ),
                });
            }
        }
    }
    if firings.is_empty() {
        println!("no scheduled actions fire after {}", from.to_rfc3339());
        return Ok(ExitCode::SUCCESS);
    }
    firings.sort_by_key(|f| f.at);
    println!(
        "upcoming firings after {} ({} per action):",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        args.count
    );
    for f in firings {
        println!("  {}", f.line);
    }
    Ok(ExitCode::SUCCESS)
}
