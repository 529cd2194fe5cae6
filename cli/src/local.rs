//! `scale0 local --config FILE`: the whole control plane on one machine, against the
//! local RabbitMQ and Redis.
//!
//! ```text
//!  supervisor ──▶ scale0-queue-worker × N   (child processes, restarted if they die)
//!  tick (every --tick) ──────────────┐
//!  consumer of scale0.control ───────┼──▶ scale0_functions::scaler ──▶ local provider
//!  schedule wake-ups ──▶ scheduler ──┘                                 (scale0-instance
//!                                                                       processes)
//! ```
//!
//! The functions' own handlers do the work, driven by local triggers instead of
//! EventBridge and Amazon MQ: the same code decides here as in Lambda. Workers run as
//! child processes, not tasks, so a worker can be killed (the chaos tests do) without
//! taking the control plane down; the supervisor starts a new one. Their JSON logs go
//! to `<state dir>/workers/worker-<n>.log`, their pids to `worker-<n>.pid`.
//!
//! Shutdown (Ctrl-C or SIGTERM) runs in order: stop the triggers; SIGTERM the workers,
//! which stop consuming, finish in-flight requests within their drain timeout and give
//! held requests back to the queue; then stop every instance of the configured
//! deployments and mark it terminated. Nothing is left running.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use lapin::ConnectionProperties;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use scale0_core::backoff::Backoff;
use scale0_core::config::{Config, ProviderKind};
use scale0_core::contract::{CONTROL_QUEUE, ControlEvent, DEAD_LETTER_EXCHANGE};
use scale0_core::cost::spot::NOTICE;
use scale0_core::duration::HumanDuration;
use scale0_functions::broker::AmqpQueueDepth;
use scale0_functions::events::{ScalerEvent, ScheduleInvocation, Wake};
use scale0_functions::provider::Provider;
use scale0_functions::provider::local::LocalProvider;
use scale0_functions::scaler::{DeploymentOutcome, scaler};
use scale0_functions::scheduler::scheduler;
use scale0_functions::{Deps, HandlerError, HandlerSettings};
use scale0_state::{Store, redact_url};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Default broker and Redis, overridden by `SCALE0_AMQP_URL` and `SCALE0_REDIS_URL`.
pub const DEFAULT_AMQP_URL: &str = scale0_queue_worker::DEFAULT_AMQP_URL;
pub const DEFAULT_REDIS_URL: &str = scale0_queue_worker::DEFAULT_REDIS_URL;
/// How long the CLI's RabbitMQ connections may take to open.
pub const AMQP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scale0 configuration (its `[provider]` must be `local`, the default).
    #[arg(long)]
    config: PathBuf,
    /// Queue worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How often the scaler runs on its own (as the EventBridge tick does in AWS).
    #[arg(long, default_value = "2s")]
    tick: HumanDuration,
    /// How long workers may take to finish in-flight requests at shutdown.
    #[arg(long, default_value = "30s")]
    drain_timeout: HumanDuration,
    /// A provider fault: every this long, reclaim one ready instance of a Spot pool as
    /// EC2 does — the documented "EC2 Spot Instance Interruption Warning" to the
    /// lifecycle handler, then the instance stopped after `--spot-notice`.
    #[arg(long)]
    spot_reclaim_every: Option<HumanDuration>,
    /// The notice between the warning and the reclaim (EC2 gives two minutes).
    #[arg(long, default_value = "2m")]
    spot_notice: HumanDuration,
}

/// Where a line of the stack's own timeline goes.
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything `LocalStack::start` needs.
#[derive(Clone)]
pub struct LocalOptions {
    pub config_path: PathBuf,
    pub config: Config,
    pub workers: usize,
    pub tick: Duration,
    pub drain_timeout: Duration,
    pub amqp_url: String,
    pub redis_url: String,
    /// Extra flags for every worker process.
    pub worker_args: Vec<String>,
    pub report: Reporter,
    /// Reclaim a ready Spot instance every `.0`, with `.1` of notice (a fault).
    pub spot_reclaim: Option<(Duration, Duration)>,
}

impl LocalOptions {
    /// Options from a config file, the environment's URLs and defaults.
    pub fn from_file(path: &Path, report: Reporter) -> anyhow::Result<Self> {
        let config = match crate::load_config(&path.to_path_buf())? {
            Ok(c) => c,
            Err(e) => return Err(anyhow!("{}: {e}", path.display())),
        };
        Ok(LocalOptions {
            config_path: path.to_path_buf(),
            config,
            workers: 2,
            tick: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(30),
            amqp_url: std::env::var("SCALE0_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into()),
            redis_url: std::env::var("SCALE0_REDIS_URL")
                .unwrap_or_else(|_| DEFAULT_REDIS_URL.into()),
            worker_args: Vec::new(),
            report,
            spot_reclaim: None,
        })
    }
}

/// A running local control plane.
pub struct LocalStack {
    pub deps: Deps,
    pub store: Store,
    provider: Arc<LocalProvider>,
    stop: watch::Sender<bool>,
    triggers: Vec<JoinHandle<()>>,
    supervisors: Vec<JoinHandle<()>>,
    report: Reporter,
}

/// A binary that sits next to this one (cargo builds every binary into one
/// directory), or else one on `PATH`.
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let report: Reporter = Arc::new(move |line| {
        println!("{:>8.1}s  {line}", started.elapsed().as_secs_f64());
    });
    let mut options = LocalOptions::from_file(&args.config, report)?;
    options.workers = args.workers;
    options.tick = args.tick.0;
    options.drain_timeout = args.drain_timeout.0;
    options.spot_reclaim = args.spot_reclaim_every.map(|e| (e.0, args.spot_notice.0));
    tokio::runtime::Runtime::new()?.block_on(async move {
        let stack = LocalStack::start(options).await?;
        (stack.report)("running; Ctrl-C or SIGTERM stops everything");
        shutdown_signal().await;
        stack.stop().await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

impl LocalStack {
    pub async fn start(options: LocalOptions) -> anyhow::Result<LocalStack> {
        let config = &options.config;
        if config.provider.kind != ProviderKind::Local {
            return Err(anyhow!(
                "scale0 local runs the local provider; {} sets provider.kind = {:?}",
                options.config_path.display(),
                config.provider.kind
            ));
        }
        let store = Store::connect(&options.redis_url).await.with_context(|| {
            format!(
                "Redis at {} (start it with infra/local/services.sh)",
                redact_url(&options.redis_url)
            )
        })?;
        declare_topology(&options.amqp_url, config).await?;
        let provider = Arc::new(LocalProvider::new(&config.provider.local));
        let broker = Arc::new(AmqpQueueDepth::new(options.amqp_url.clone()));
        let deps = Deps::new(
            config.clone(),
            store.clone(),
            provider.clone(),
            broker.clone(),
        )
        .with_events(broker)
        .with_settings(HandlerSettings {
            // A decision at least every tick (and on every control event).
            decision_interval: options.tick,
            ..HandlerSettings::default()
        });
        let (stop, stopped) = watch::channel(false);
        let report = options.report.clone();
        report(&format!(
            "control plane up: {} deployment(s), {} worker(s), tick {}, instances from {}",
            config.deployments.len(),
            options.workers,
            HumanDuration::from(options.tick),
            provider.command().display()
        ));

        // Find what a previous run left, before the triggers start.
        let _ = run_scaler(&deps, wake("start", true), &report).await;

        let worker_dir = provider.state_dir().join("workers");
        std::fs::create_dir_all(&worker_dir)
            .with_context(|| format!("create {}", worker_dir.display()))?;
        let mut started = Vec::new();
        let supervisors = (0..options.workers)
            .map(|n| {
                let (first_start, started_rx) = oneshot::channel();
                started.push(started_rx);
                tokio::spawn(supervise_worker(
                    n,
                    options.clone(),
                    worker_dir.clone(),
                    stopped.clone(),
                    first_start,
                ))
            })
            .collect();
        // "Running" means every worker process has been started (its pid file written)
        // or has failed to start and said so.
        for s in started {
            let _ = s.await;
        }
        let mut triggers = vec![
            tokio::spawn(tick_loop(
                deps.clone(),
                options.tick,
                stopped.clone(),
                report.clone(),
            )),
            tokio::spawn(control_loop(
                deps.clone(),
                options.amqp_url.clone(),
                stopped.clone(),
                report.clone(),
            )),
            tokio::spawn(schedule_loop(deps.clone(), stopped.clone(), report.clone())),
        ];
        if let Some((every, notice)) = options.spot_reclaim {
            triggers.push(tokio::spawn(spot_reclaim_loop(
                deps.clone(),
                every,
                notice,
                stopped.clone(),
                report.clone(),
            )));
        }
        Ok(LocalStack {
            deps,
            store,
            provider,
            stop,
            triggers,
            supervisors,
            report,
        })
    }

    /// Stop triggers, then workers (held requests go back to the queue), then every
    /// instance.
    pub async fn stop(self) -> anyhow::Result<()> {
        (self.report)("shutting down: triggers, then workers, then instances");
        let _ = self.stop.send(true);
        for t in self.triggers {
            let _ = t.await;
        }
        for s in self.supervisors {
            let _ = s.await;
        }
        let now = Utc::now();
        let mut stopped = 0;
        for spec in &self.deps.config.deployments {
            let mut records = self.store.instances(&spec.name).await.unwrap_or_default();
            // Processes the registry does not know (it may have been lost with Redis).
            for pool in &spec.pools {
                for pi in self.provider.list(spec, pool).await.unwrap_or_default() {
                    if !records.iter().any(|r| r.id == pi.id) {
                        records.push(scale0_core::contract::InstanceRecord {
                            id: pi.id.clone(),
                            deployment: spec.name.clone(),
                            pool: pool.name.clone(),
                            state: scale0_core::contract::InstanceState::Ready,
                            endpoint: None,
                            launched_at: now,
                            ready_at: None,
                            draining_since: None,
                            failures: 0,
                            reclaim_at: None,
                        });
                    }
                }
            }
            for r in records
                .iter()
                .filter(|r| r.state != scale0_core::contract::InstanceState::Terminated)
            {
                if let Err(e) = self.provider.stop(spec, r).await {
                    (self.report)(&format!("could not stop {}: {e}", r.id));
                    continue;
                }
                let _ = self.store.mark_terminated(&spec.name, &r.id, now).await;
                stopped += 1;
            }
        }
        (self.report)(&format!("stopped {stopped} instance(s); bye"));
        Ok(())
    }
}

fn wake(trigger: &str, sweep: bool) -> ScalerEvent {
    ScalerEvent::Wake(Wake {
        deployments: Vec::new(),
        trigger: trigger.into(),
        id: None,
        sweep,
    })
}

/// One line per deployment whose decision changed something, or `None`.
pub fn describe(o: &DeploymentOutcome) -> Option<String> {
    let changed = !o.requested.is_empty() || !o.drained.is_empty() || !o.terminated.is_empty();
    if !changed {
        return None;
    }
    let targets: Vec<String> = o.targets.iter().map(|(p, n)| format!("{p}={n}")).collect();
    let mut parts = vec![format!(
        "{} [{}] target {}",
        o.deployment,
        o.trigger,
        targets.join(" ")
    )];
    if !o.requested.is_empty() {
        parts.push(format!("launch {}", o.requested.len()));
    }
    if !o.drained.is_empty() {
        parts.push(format!("drain {}", o.drained.join(",")));
    }
    if !o.terminated.is_empty() {
        parts.push(format!("stop {}", o.terminated.join(",")));
    }
    let why = o
        .reasons
        .iter()
        .find(|r| !r.starts_with("pool "))
        .or(o.reasons.first())
        .cloned()
        .unwrap_or_default();
    Some(format!("{} — {why}", parts.join("; ")))
}

async fn run_scaler(
    deps: &Deps,
    event: ScalerEvent,
    report: &Reporter,
) -> Result<(), HandlerError> {
    match scaler(event, deps).await {
        Ok(outcome) => {
            for line in outcome.deployments.iter().filter_map(describe) {
                report(&line);
            }
            if !outcome.rejected.is_empty() {
                report(&format!("control events skipped: {}", outcome.rejected));
            }
            Ok(())
        }
        Err(e) => {
            report(&format!("scaler: {e}"));
            Err(e)
        }
    }
}

/// The Spot fault: EC2's interruption warning for the oldest ready Spot instance,
/// through the same lifecycle handler as in AWS, then the instance stopped after the
/// notice whatever it is doing.
async fn spot_reclaim_loop(
    deps: Deps,
    every: Duration,
    notice: Duration,
    mut stop: watch::Receiver<bool>,
    report: Reporter,
) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = interval.tick() => {}
        }
        let mut victim = None;
        for spec in &deps.config.deployments {
            let spot: Vec<&str> = spec
                .pools
                .iter()
                .filter(|p| p.capacity_type == scale0_core::config::CapacityType::Spot)
                .map(|p| p.name.as_str())
                .collect();
            let Ok(records) = deps.store.instances(&spec.name).await else {
                continue;
            };
            if let Some(r) = records
                .into_iter()
                .filter(|r| {
                    r.state == scale0_core::contract::InstanceState::Ready
                        && spot.contains(&r.pool.as_str())
                })
                .min_by_key(|r| (r.launched_at, r.id.clone()))
            {
                victim = Some((spec.clone(), r));
                break;
            }
        }
        let Some((spec, record)) = victim else {
            continue;
        };
        n += 1;
        // EC2 reclaims two minutes after the warning's time; date the warning so that
        // its reclaim is when this fault reclaims (a shorter notice, for tests).
        let notice_delta = TimeDelta::from_std(notice).unwrap_or(NOTICE);
        let warned_at = Utc::now() - (NOTICE - notice_delta);
        let event = serde_json::json!({
            "version": "0",
            "id": format!("local-spot-{}-{n}", std::process::id()),
            "detail-type": "EC2 Spot Instance Interruption Warning",
            "source": "aws.ec2",
            "account": "000000000000",
            "time": warned_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "region": "local",
            "resources": [format!("arn:aws:ec2:local:000000000000:instance/{}", record.id)],
            "detail": {"instance-id": record.id, "instance-action": "terminate"}
        });
        match scale0_functions::lifecycle::handle_json(event, &deps).await {
            Ok(out) => report(&format!(
                "spot fault: interruption warning for {} ({}); reclaimed in {}",
                record.id,
                out.detail,
                HumanDuration::from(notice)
            )),
            Err(e) => report(&format!("spot fault: lifecycle handler: {e}")),
        }
        let deps = deps.clone();
        let report = report.clone();
        tokio::spawn(async move {
            tokio::time::sleep(notice).await;
            match deps.provider.stop(&spec, &record).await {
                Ok(()) => {
                    let _ = deps
                        .store
                        .mark_terminated(&spec.name, &record.id, Utc::now())
                        .await;
                    report(&format!("spot fault: {} reclaimed", record.id));
                }
                Err(e) => report(&format!("spot fault: reclaiming {}: {e}", record.id)),
            }
        });
    }
}

async fn tick_loop(deps: Deps, every: Duration, mut stop: watch::Receiver<bool>, report: Reporter) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = interval.tick() => {}
        }
        let _ = run_scaler(&deps, wake("tick", true), &report).await;
    }
}

/// Declare the worker's topology, so requests published before the first worker is up
/// are queued rather than dead-lettered as unroutable.
pub async fn declare_topology(url: &str, config: &Config) -> anyhow::Result<()> {
    let conn = scale0_connect::amqp(url, ConnectionProperties::default(), AMQP_CONNECT_TIMEOUT)
        .await
        .context("RabbitMQ (start it with infra/local/services.sh)")?;
    let channel = conn.create_channel().await?;
    let deployments: Vec<_> = config.deployments.iter().collect();
    scale0_queue_worker::broker::declare_topology(&channel, &config.broker, &deployments).await?;
    let _ = conn.close(200, "topology declared".into()).await;
    Ok(())
}

/// Reconnects and restarts: 200 ms doubling to 5 s.
fn restart_backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(5),
        u64::from(std::process::id()),
    )
}

/// Consume `scale0.control` and hand each batch to the scaler, acking only after it
/// handled the batch; reconnects with backoff.
async fn control_loop(deps: Deps, url: String, mut stop: watch::Receiver<bool>, report: Reporter) {
    let mut backoff = restart_backoff();
    loop {
        let result = tokio::select! {
            _ = stop.changed() => return,
            r = consume_control(&deps, &url, &report) => r,
        };
        let delay = backoff.next_delay();
        if let Err(e) = result {
            report(&format!(
                "control consumer: {e:#}; reconnecting in {}",
                HumanDuration::from(delay)
            ));
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn consume_control(deps: &Deps, url: &str, report: &Reporter) -> anyhow::Result<()> {
    let conn = scale0_connect::amqp(
        url,
        ConnectionProperties::default().with_connection_name("scale0-local control".into()),
        AMQP_CONNECT_TIMEOUT,
    )
    .await?;
    let channel = conn.create_channel().await?;
    channel.basic_qos(256, BasicQosOptions::default()).await?;
    // Dead letters of unreadable messages are published on it, with confirms.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            CONTROL_QUEUE.into(),
            "scale0-local".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(first) = consumer.next().await {
        // Whatever else is already here joins the batch, as Amazon MQ batches for Lambda.
        let mut batch = vec![first?];
        while batch.len() < 256 {
            match tokio::time::timeout(Duration::from_millis(2), consumer.next()).await {
                Ok(Some(d)) => batch.push(d?),
                _ => break,
            }
        }
        let mut events = Vec::new();
        for d in &batch {
            match read_control_event(d) {
                Ok(e) => events.push(e),
                Err(why) => {
                    dead_letter_control(&channel, d, &why).await?;
                    report(&format!("control message dead-lettered: {why}"));
                }
            }
        }
        let last = batch.last().map(|d| d.delivery_tag).unwrap_or_default();
        let result = if events.is_empty() {
            Ok(())
        } else {
            run_scaler(deps, ScalerEvent::ControlEvents(events), report).await
        };
        match result {
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                channel
                    .basic_nack(
                        last,
                        BasicNackOptions {
                            multiple: true,
                            requeue: true,
                        },
                    )
                    .await?;
            }
            // Handled, or never handleable (it was reported): either way, done.
            _ => {
                channel
                    .basic_ack(last, BasicAckOptions { multiple: true })
                    .await?;
            }
        }
    }
    Err(anyhow!("the broker closed the control consumer"))
}

/// A delivery on `scale0.control` as an event, or why it is not one.
fn read_control_event(d: &lapin::message::Delivery) -> Result<ControlEvent, String> {
    if let Some(why) = d
        .properties
        .headers()
        .as_ref()
        .and_then(scale0_queue_worker::request::undecodable)
    {
        return Err(why);
    }
    serde_json::from_slice::<ControlEvent>(&d.data).map_err(|e| format!("not a control event: {e}"))
}

/// Copy an unreadable control message to `scale0.dead` with its reason (confirmed), so
/// it is kept for a person and not redelivered to the scaler again.
async fn dead_letter_control(
    channel: &lapin::Channel,
    d: &lapin::message::Delivery,
    why: &str,
) -> anyhow::Result<()> {
    // Routing keys are `<deployment>.<type>`; an unreadable event names no other.
    let deployment = d
        .routing_key
        .as_str()
        .split_once('.')
        .map_or(d.routing_key.as_str(), |(name, _)| name);
    let properties =
        scale0_queue_worker::reply::dead_letter_properties(&d.properties, deployment, why);
    channel
        .basic_publish(
            DEAD_LETTER_EXCHANGE.into(),
            CONTROL_QUEUE.into(),
            BasicPublishOptions::default(),
            &d.data,
            properties,
        )
        .await?
        .await?;
    Ok(())
}

/// The lead time `decide()` uses for a deployment: the p90 of its pools' recent boots
/// (the configured boot time until there are some), so the wake-up and the decision
/// agree on when a rising floor must start.
async fn lead_time(store: &Store, spec: &scale0_core::config::Deployment) -> chrono::TimeDelta {
    let pools: Vec<&str> = spec.pools.iter().map(|p| p.name.as_str()).collect();
    let obs = scale0_core::policy::Observation {
        recent_boot_times: store
            .recent_boots(&spec.name, &pools)
            .await
            .unwrap_or_default(),
        ..Default::default()
    };
    spec.pools
        .iter()
        .map(|p| scale0_core::policy::boot_lead_time(spec, &obs, &p.name))
        .max()
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .unwrap_or_default()
}

/// A scheduler wake-up: when, which action, and the firing it is for.
struct ScheduledWake {
    at: DateTime<Utc>,
    deployment: String,
    action: String,
    firing: DateTime<Utc>,
}

/// The next instant something scheduled needs the scaler after `after`: a firing, or
/// a firing one boot lead time ahead (when the floor starts rising).
async fn next_wake(deps: &Deps, after: DateTime<Utc>) -> Option<ScheduledWake> {
    let mut best: Option<ScheduledWake> = None;
    for d in &deps.config.deployments {
        if d.schedules.is_empty() {
            continue;
        }
        let lead = lead_time(&deps.store, d).await;
        for a in &d.schedules {
            let Ok(s) = a.schedule() else { continue };
            let candidates = [
                s.next_after(after).map(|f| (f, f)),
                s.next_after(after + lead).map(|f| (f - lead, f)),
            ];
            for (at, firing) in candidates.into_iter().flatten() {
                if at > after && best.as_ref().is_none_or(|b| at < b.at) {
                    best = Some(ScheduledWake {
                        at,
                        deployment: d.name.clone(),
                        action: a.name.clone(),
                        firing,
                    });
                }
            }
        }
    }
    best
}

/// Invoke the scheduler at the schedules' firing times (and one lead time before),
/// as EventBridge Scheduler does in AWS. The floor itself is computed from the config
/// and the time, so these wake-ups only make the control plane act on time. The next
/// wake-up is recomputed at least every minute, as measured boot times move the lead.
async fn schedule_loop(deps: Deps, mut stop: watch::Receiver<bool>, report: Reporter) {
    let mut after = Utc::now();
    loop {
        let Some(w) = next_wake(&deps, after).await else {
            return;
        };
        let wait = (w.at - Utc::now()).to_std().unwrap_or_default();
        let recheck = Duration::from_secs(60);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait.min(recheck)) => {}
        }
        if wait > recheck {
            continue;
        }
        after = w.at;
        let kind = if w.at == w.firing { "firing" } else { "lead" };
        let invocation = ScheduleInvocation {
            deployment: w.deployment.clone(),
            action: w.action.clone(),
            execution_id: Some(format!(
                "local-{}-{}-{kind}",
                w.action,
                w.firing.timestamp()
            )),
            scheduled_time: Some(w.firing),
        };
        report(&format!(
            "schedule {} of {}: {kind} wake-up for {}",
            w.action, w.deployment, w.firing
        ));
        if let Err(e) = scheduler(invocation, &deps).await {
            report(&format!("scheduler: {e}"));
        }
    }
}

/// Keep worker `n` running until told to stop; then SIGTERM it and wait for its drain.
async fn supervise_worker(
    n: usize,
    options: LocalOptions,
    dir: PathBuf,
    mut stop: watch::Receiver<bool>,
    first_start: oneshot::Sender<()>,
) {
    let mut first_start = Some(first_start);
    let bin = sibling_binary("scale0-queue-worker");
    let report = options.report.clone();
    let pid_path = dir.join(format!("worker-{n}.pid"));
    let mut backoff = restart_backoff();
    loop {
        if *stop.borrow() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("worker-{n}.log")));
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("--config")
            .arg(&options.config_path)
            // A scale0 local that dies without stopping its workers leaves none behind.
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .args(["--metrics-addr", "127.0.0.1:0", "--worker-id"])
            .arg(format!("local-{n}"))
            .arg("--drain-timeout")
            .arg(HumanDuration::from(options.drain_timeout).to_string())
            .args(&options.worker_args)
            .env("SCALE0_AMQP_URL", &options.amqp_url)
            .env("SCALE0_REDIS_URL", &options.redis_url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Ok(log) = log {
            cmd.stderr(log);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                report(&format!("cannot start worker {n} ({}): {e}", bin.display()));
                if let Some(s) = first_start.take() {
                    let _ = s.send(());
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        let pid = child.id().unwrap_or_default();
        let _ = std::fs::write(&pid_path, pid.to_string());
        if let Some(s) = first_start.take() {
            let _ = s.send(());
        }
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                report(&format!("worker {n} (pid {pid}) exited: {status}; restarting"));
                if started.elapsed() > Duration::from_secs(10) {
                    backoff.reset();
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            _ = stop.changed() => {
                let _ = scale0_functions::provider::local::signal(pid, libc::SIGTERM);
                let grace = options.drain_timeout + Duration::from_secs(5);
                if tokio::time::timeout(grace, child.wait()).await.is_err() {
                    report(&format!("worker {n} did not drain within {}; killing it", HumanDuration::from(grace)));
                    let _ = child.kill().await;
                }
                let _ = std::fs::remove_file(&pid_path);
                return;
            }
        }
    }
}
