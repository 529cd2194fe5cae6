//! `scale0-queue-worker`: parse flags and environment, log JSON, connect to Redis
//! (retrying), and run the worker until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use scale0_core::config::Config;
use scale0_core::duration::HumanDuration;
use scale0_queue_worker::{DEFAULT_AMQP_URL, DEFAULT_REDIS_URL, WorkerSettings};

#[derive(Debug, Parser)]
#[command(
    name = "scale0-queue-worker",
    version,
    about = "Holds requests through cold starts, dispatches them to GPU instances, replies, sheds"
)]
struct Args {
    /// The scale0 configuration (TOML or JSON).
    #[arg(long, env = "SCALE0_CONFIG")]
    config: PathBuf,
    /// Serve only this deployment (repeatable); default: every deployment.
    #[arg(long = "deployment")]
    deployments: Vec<String>,
    /// Where /metrics and /health listen (port 0 picks one; the address is printed on
    /// stdout as `metrics on http://<addr>`).
    #[arg(long, env = "SCALE0_METRICS_ADDR", default_value = "0.0.0.0:9464")]
    metrics_addr: SocketAddr,
    /// Unique name of this worker process (default `<hostname>-<pid>`).
    #[arg(long, env = "SCALE0_WORKER_ID")]
    worker_id: Option<String>,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "30s")]
    drain_timeout: HumanDuration,
    /// At most one activation event per deployment per interval, across workers.
    #[arg(long, default_value = "5s")]
    activation_interval: HumanDuration,
    /// Attempts per request (first try plus retries on other instances).
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Slot leases last this long, renewed while their request runs; a worker that
    /// dies gives its instances' slots back within it.
    #[arg(long, default_value = "10s")]
    lease_ttl: HumanDuration,
    /// Registry reads and readiness probes of booting instances.
    #[arg(long, default_value = "200ms")]
    refresh_interval: HumanDuration,
    /// Shut down (as on SIGTERM) once the process PID is no longer this one's parent:
    /// a supervisor that dies without stopping its workers (`scale0 local` killed)
    /// leaves none behind. PID is the supervisor's own (a value read here could already
    /// be init's, if it died first).
    #[arg(long, value_name = "PID")]
    parent_pid: Option<u32>,
}

async fn shutdown_signal(parent: Option<u32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    let orphaned = async {
        let Some(parent) = parent else {
            return std::future::pending().await;
        };
        // A process whose parent exits is re-parented (to init or a subreaper).
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        _ = orphaned => tracing::warn!(parent, "the parent process exited; shutting down"),
    }
}

fn main() {
    // One tokio thread by default: the worker is I/O-bound, and on few cores a second
    // scheduler thread mostly adds cross-thread wake-ups (measured in BENCHMARKS.md).
    let threads: usize = std::env::var("SCALE0_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    runtime.expect("a tokio runtime").block_on(async_main());
}

async fn async_main() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            // lapin warns of every returned message with its body as decimal bytes; the
            // worker logs an unroutable reply itself, with the request's ids.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lapin=warn,lapin::returned_messages=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main().await {
        tracing::error!(error = %e, "scale0-queue-worker stopped");
        std::process::exit(1);
    }
}

async fn real_main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.config.display()))?;
    let config =
        Config::load(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.config.display()))?;
    let amqp_url = std::env::var("SCALE0_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
    let redis_url = std::env::var("SCALE0_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into());

    let mut settings = WorkerSettings::new(amqp_url);
    if let Some(id) = args.worker_id {
        settings.worker_id = id;
    }
    settings.deployments = args.deployments;
    settings.metrics_addr = Some(args.metrics_addr);
    settings.drain_timeout = args.drain_timeout.0;
    settings.activation_interval = args.activation_interval.0;
    settings.max_attempts = args.max_attempts.max(1);
    settings.refresh_interval = args.refresh_interval.0.max(Duration::from_millis(10));
    settings.lease_ttl = args.lease_ttl.0.max(Duration::from_millis(300));

    // Redis may come up after the worker: retry with backoff, as for RabbitMQ.
    let mut backoff = scale0_core::backoff::Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(5),
        u64::from(std::process::id()),
    );
    let store = loop {
        match scale0_state::Store::connect(&redis_url).await {
            Ok(s) => break s,
            Err(e) if e.is_retryable() => {
                let delay = backoff.next_delay();
                tracing::warn!(url = %scale0_state::redact_url(&redis_url), error = %e, retry_in_ms = delay.as_millis() as u64, "cannot connect to Redis");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    };

    let worker = scale0_queue_worker::Worker::start(settings, Arc::new(config), store).await?;
    if let Some(addr) = worker.metrics_addr() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "metrics on http://{addr}");
        let _ = out.flush();
        tracing::info!(%addr, "metrics and health listening");
    }
    worker.run(shutdown_signal(args.parent_pid)).await?;
    Ok(())
}
