//! `scale0 explain DEPLOYMENT`: the last N decisions from the decision log, newest
//! first, each with what it saw, what it decided and every reason it gave.

use std::process::ExitCode;

use scale0_state::decisions::LoggedDecision;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub deployment: String,
    /// How many decisions to show.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub last: usize,
    #[arg(
        long,
        env = "SCALE0_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Print JSON (the logged decisions as stored).
    #[arg(long)]
    pub json: bool,
}

pub fn render(logged: &LoggedDecision) -> String {
    use std::fmt::Write;
    let d = &logged.decision;
    let mut out = String::new();
    let _ = write!(
        out,
        "#{}  {}",
        logged.generation,
        d.at.format("%Y-%m-%d %H:%M:%S%.3f UTC")
    );
    if let Some(o) = &logged.observed {
        let _ = write!(
            out,
            "  [{}] queued {}, held {}, in flight {}",
            o.trigger, o.queue_depth, o.held, o.in_flight
        );
        if let Some(g) = o.gpu_utilization {
            let _ = write!(out, ", gpu {:.0}%", g * 100.0);
        }
    }
    out.push('\n');
    let pools: Vec<String> = d
        .pools
        .iter()
        .map(|p| {
            let mut s = format!(
                "{} {} (ready {}, booting {}, draining {})",
                p.pool, p.target, p.ready, p.booting, p.draining
            );
            if p.launch > 0 {
                let _ = write!(s, " +{}", p.launch);
            }
            s
        })
        .collect();
    let _ = writeln!(
        out,
        "    demand {:.1} → {}",
        d.demand,
        if pools.is_empty() {
            "no pools".into()
        } else {
            pools.join("; ")
        }
    );
    if !d.drain.is_empty() {
        let _ = writeln!(out, "    drain {}", d.drain.join(", "));
    }
    if !d.terminate.is_empty() {
        let _ = writeln!(out, "    stop {}", d.terminate.join(", "));
    }
    if let Some(cap) = &d.cap {
        let _ = writeln!(
            out,
            "    cap {} of {} needed: {}",
            cap.max_instances, cap.needed_instances, cap.reason
        );
    }
    for r in &d.reasons {
        let _ = writeln!(out, "    - {r}");
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::status::runtime()?.block_on(async {
        let store = crate::status::connect(&args.redis_url).await?;
        let logged = store.recent_decisions(&args.deployment, args.last).await?;
        if args.json {
            let v: Vec<serde_json::Value> = logged
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "generation": l.generation,
                        "decision": l.decision,
                        "observed": l.observed,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        if logged.is_empty() {
            eprintln!(
                "no decisions logged for deployment `{}` (is the name right? `scale0 status` lists them)",
                args.deployment
            );
            return Ok(ExitCode::from(1));
        }
        let text: Vec<String> = logged.iter().map(render).collect();
        print!("{}", text.join("\n"));
        Ok(ExitCode::SUCCESS)
    })
}
