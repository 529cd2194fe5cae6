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
//! counted as a duplicate, and a request with no reply by the end is missing.
//!
//! While it runs it samples the stack from Redis every 500 ms (held, in flight,
//! instances by state) for the timeline plot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use plotters::prelude::*;
use scale0_core::contract::{InstanceState, ReplyStatus};
use scale0_core::contract::{REQUESTS_EXCHANGE, headers};
use scale0_core::duration::HumanDuration;
use scale0_core::percentile;
use scale0_sim::{Scenario, TraceFormat, Workload};
use scale0_state::Store;
use serde::Serialize;

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

/// A point of the timeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub t_s: f64,
    /// Requests sent since the previous sample, per second.
    pub arrivals_per_s: f64,
    pub held: u64,
    pub in_flight: u64,
    pub booting: u32,
    pub ready: u32,
    pub draining: u32,
}

/// What the run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub deployment: String,
    pub sent: u64,
    /// First reply per request, by `x-scale0-status`.
    pub by_status: BTreeMap<String, u64>,
    /// How many first replies gave each `status: x-scale0-reason` (shed, expired,
    /// failed and rejected replies say why).
    pub reasons: BTreeMap<String, u64>,
    /// Replies beyond the first for the same request.
    pub duplicates: u64,
    /// Requests with no reply at all.
    pub missing: u64,
    /// First replies marked `x-scale0-cold-start: true`.
    pub cold_start_delayed: u64,
    /// Send → first reply, over answered requests.
    pub latency_ms: Percentiles,
    /// The worker's `x-scale0-queue-ms`, over requests that ran.
    pub queue_ms: Percentiles,
    /// Broker connections the producer had to re-open.
    pub reconnects: u64,
    pub wall_s: f64,
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| percentile::of_sorted(&v, p).unwrap_or_default();
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

impl LoadReport {
    pub fn count(&self, status: ReplyStatus) -> u64 {
        self.by_status
            .get(&status.to_string())
            .copied()
            .unwrap_or(0)
    }

    /// Requests that got a terminal reply.
    pub fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} requests to {} in {:.1} s: {} answered, {} missing, {} duplicate replies, {} reconnects\n",
            self.sent,
            self.deployment,
            self.wall_s,
            self.answered(),
            self.missing,
            self.duplicates,
            self.reconnects
        );
        out.push_str("  status      count\n");
        for (status, n) in &self.by_status {
            out.push_str(&format!("  {status:<10} {n:>6}\n"));
        }
        for (reason, n) in &self.reasons {
            out.push_str(&format!("    {n:>6} × {reason}\n"));
        }
        let pct = |x: u64| 100.0 * x as f64 / self.answered().max(1) as f64;
        out.push_str(&format!(
            "  delayed by a cold start: {} ({:.1}%)\n",
            self.cold_start_delayed,
            pct(self.cold_start_delayed)
        ));
        let l = &self.latency_ms;
        out.push_str(&format!(
            "  latency ms  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}\n",
            l.p50, l.p90, l.p99, l.max
        ));
        let q = &self.queue_ms;
        out.push_str(&format!(
            "  queue ms    p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}\n",
            q.p50, q.p90, q.p99, q.max
        ));
        out
    }
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

/// Per request: when it was first sent, and the replies it got.
#[derive(Debug, Default)]
struct Tracking {
    sent_at: Option<Instant>,
    confirmed: bool,
    first: Option<Reply>,
    extra: u64,
}

#[derive(Debug, Clone)]
struct Reply {
    status: String,
    reason: Option<String>,
    latency: Duration,
    cold_start: bool,
    queue_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Vec<Tracking>,
    answered: usize,
}

fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    let value = props.headers().as_ref()?.inner().get(name)?;
    Some(match value {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        other => format!("{other:?}"),
    })
}

/// Send the plan and collect the replies. Every request sent adds one to `sent_total`
/// (a caller sampling several runs shares one counter); with a `store`, the report
/// carries a timeline of the stack's state.
pub async fn run_load(
    plan: &LoadPlan,
    amqp_url: &str,
    store: Option<Store>,
    sent_total: Arc<AtomicU64>,
) -> anyhow::Result<LoadReport> {
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let reply_queue = format!("scale0.load.{run_id}");
    let shared = Arc::new(Mutex::new(Shared {
        requests: (0..plan.requests.len())
            .map(|_| Tracking::default())
            .collect(),
        ..Default::default()
    }));
    let start = Instant::now();
    let sampler =
        store.map(|s| Sampler::start(s, plan.deployment.clone(), sent_total.clone(), start));

    let mut next = 0usize;
    let mut resend = Vec::new();
    let mut reconnects = 0u64;
    let mut last_sent = Instant::now();
    loop {
        let session = Session::open(
            amqp_url,
            &reply_queue,
            shared.clone(),
            sent_total.clone(),
            start,
        )
        .await;
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                if start.elapsed() > plan.reply_timeout + total_span(plan) {
                    return Err(e.context("cannot reach RabbitMQ"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                reconnects += 1;
                continue;
            }
        };
        match session
            .drive(
                plan,
                &run_id,
                std::mem::take(&mut resend),
                &mut next,
                start,
                &mut last_sent,
            )
            .await
        {
            Ok(()) => break,
            Err(e) => {
                eprintln!("load: broker connection lost ({e:#}); reconnecting");
                reconnects += 1;
                // What the broker did not confirm (and nobody answered) is sent again
                // with the same message_id; the worker dedupes what it already ran.
                resend = unconfirmed(&shared, next);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    let mut report = summarize(plan, &shared, start, reconnects);
    if let Some(s) = sampler {
        report.timeline = s.finish().await;
    }
    Ok(report)
}

fn unconfirmed(shared: &Mutex<Shared>, next: usize) -> Vec<usize> {
    let g = shared.lock().unwrap_or_else(|p| p.into_inner());
    (0..next)
        .filter(|&i| !g.requests[i].confirmed && g.requests[i].first.is_none())
        .collect()
}

fn total_span(plan: &LoadPlan) -> Duration {
    plan.requests.last().map_or(Duration::ZERO, |r| r.at)
}

fn summarize(
    plan: &LoadPlan,
    shared: &Arc<Mutex<Shared>>,
    start: Instant,
    reconnects: u64,
) -> LoadReport {
    let g = shared.lock().unwrap_or_else(|p| p.into_inner());
    let mut report = LoadReport {
        deployment: plan.deployment.clone(),
        sent: g.requests.iter().filter(|t| t.sent_at.is_some()).count() as u64,
        reconnects,
        wall_s: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut queue = Vec::new();
    for t in &g.requests {
        report.duplicates += t.extra;
        match &t.first {
            None => report.missing += 1,
            Some(r) => {
                *report.by_status.entry(r.status.clone()).or_default() += 1;
                if let Some(reason) = &r.reason {
                    // Bounded: a run with many distinct reasons keeps the first ones.
                    let key = format!("{}: {reason}", r.status);
                    if report.reasons.len() < 20 || report.reasons.contains_key(&key) {
                        *report.reasons.entry(key).or_default() += 1;
                    }
                }
                report.cold_start_delayed += u64::from(r.cold_start);
                latencies.push(r.latency.as_secs_f64() * 1000.0);
                queue.extend(r.queue_ms);
            }
        }
    }
    report.latency_ms = Percentiles::of(latencies);
    report.queue_ms = Percentiles::of(queue);
    report
}

/// One broker connection: a confirm channel to publish on, a consumer of the replies.
struct Session {
    conn: Connection,
    publish: Channel,
    consumer: tokio::task::JoinHandle<anyhow::Result<()>>,
    shared: Arc<Mutex<Shared>>,
    sent_total: Arc<AtomicU64>,
    reply_queue: String,
}

impl Session {
    async fn open(
        url: &str,
        reply_queue: &str,
        shared: Arc<Mutex<Shared>>,
        sent_total: Arc<AtomicU64>,
        start: Instant,
    ) -> anyhow::Result<Session> {
        let conn = scale0_connect::amqp(
            url,
            ConnectionProperties::default().with_connection_name("scale0 load".into()),
            crate::local::AMQP_CONNECT_TIMEOUT,
        )
        .await?;
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let replies = conn.create_channel().await?;
        // Not exclusive and not auto-delete: it outlives a lost connection, and the
        // broker removes it ten minutes after its last use.
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(600_000));
        replies
            .queue_declare(reply_queue.into(), QueueDeclareOptions::default(), args)
            .await?;
        let mut consumer = replies
            .basic_consume(
                reply_queue.into(),
                "scale0-load".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tracked = shared.clone();
        let consumer = tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let d = delivery?;
                let index = d
                    .properties
                    .correlation_id()
                    .as_ref()
                    .and_then(|c| c.as_str().rsplit('-').next()?.parse::<usize>().ok());
                if let Some(i) = index {
                    let mut g = tracked.lock().unwrap_or_else(|p| p.into_inner());
                    let received = Instant::now();
                    let answered_before = g.answered;
                    if let Some(t) = g.requests.get_mut(i) {
                        if t.first.is_some() {
                            t.extra += 1;
                        } else {
                            let sent = t.sent_at.unwrap_or(start);
                            t.first = Some(Reply {
                                status: header_str(&d.properties, headers::STATUS)
                                    .unwrap_or_else(|| "(none)".into()),
                                reason: header_str(&d.properties, headers::REASON),
                                latency: received.saturating_duration_since(sent),
                                cold_start: header_str(&d.properties, headers::COLD_START)
                                    .as_deref()
                                    == Some("true"),
                                queue_ms: header_str(&d.properties, headers::QUEUE_MS)
                                    .and_then(|q| q.parse().ok()),
                            });
                            g.answered = answered_before + 1;
                        }
                    }
                }
                d.ack(BasicAckOptions::default()).await?;
            }
            Ok(())
        });
        Ok(Session {
            conn,
            publish,
            consumer,
            shared,
            sent_total,
            reply_queue: reply_queue.to_string(),
        })
    }

    /// Publish from `next` on, then wait for the replies. `Err` means the connection
    /// was lost and the caller should open a new session.
    async fn drive(
        self,
        plan: &LoadPlan,
        run_id: &str,
        resend: Vec<usize>,
        next: &mut usize,
        start: Instant,
        last_sent: &mut Instant,
    ) -> anyhow::Result<()> {
        let mut confirms = FuturesUnordered::new();
        let mut resend = resend.into_iter();
        loop {
            let i = match resend.next() {
                Some(i) => i,
                None if *next < plan.requests.len() => {
                    let i = *next;
                    *next += 1;
                    i
                }
                None => break,
            };
            let p = plan.requests[i];
            tokio::time::sleep_until((start + p.at).into()).await;
            let body = serde_json::json!({
                "model": plan.deployment,
                "prompt": "",
                "max_tokens": (p.service.as_secs_f64() * plan.decode_rate).ceil().max(1.0) as u64,
            });
            let id = format!("{run_id}-{i}");
            let mut headers = FieldTable::default();
            if let Some(d) = plan.deadline {
                let deadline_ms = chrono::Utc::now().timestamp_millis() + d.as_millis() as i64;
                headers.insert(
                    headers::DEADLINE.into(),
                    AMQPValue::LongLongInt(deadline_ms),
                );
            }
            let mut props = BasicProperties::default()
                .with_reply_to(ShortString::from(self.reply_queue.as_str()))
                .with_correlation_id(ShortString::from(id.as_str()))
                .with_message_id(ShortString::from(id.as_str()))
                .with_content_type("application/json".into())
                .with_headers(headers);
            if let Some(prio) = p.priority {
                props = props.with_priority(prio);
            }
            let payload = serde_json::to_vec(&body)?;
            let confirm = self
                .publish
                .basic_publish(
                    REQUESTS_EXCHANGE.into(),
                    plan.deployment.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    props,
                )
                .await?;
            {
                let mut g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                g.requests[i].sent_at.get_or_insert_with(Instant::now);
            }
            self.sent_total.fetch_add(1, Ordering::Relaxed);
            confirms.push(async move { (i, confirm.await) });
            *last_sent = Instant::now();
            // Keep the number of unconfirmed publishes bounded.
            while confirms.len() > 512 {
                self.settle(confirms.next().await)?;
            }
            while let Some(Some(c)) = futures_util::FutureExt::now_or_never(confirms.next()) {
                self.settle(Some(c))?;
            }
        }
        while let Some(c) = confirms.next().await {
            self.settle(Some(c))?;
        }

        // Wait for every reply, then linger for duplicates.
        let total = plan.requests.len();
        loop {
            if self.consumer.is_finished() {
                return Err(anyhow!("reply consumer stopped"));
            }
            if self
                .shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .answered
                >= total
            {
                break;
            }
            if last_sent.elapsed() > plan.reply_timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(plan.linger).await;
        if self.consumer.is_finished() {
            return Err(anyhow!("reply consumer stopped"));
        }
        self.consumer.abort();
        let _ = self.conn.close(200, "done".into()).await;
        Ok(())
    }

    fn settle(&self, c: Option<(usize, lapin::Result<lapin::Confirmation>)>) -> anyhow::Result<()> {
        let Some((i, result)) = c else { return Ok(()) };
        let confirmation = result?;
        if confirmation.is_ack() {
            self.shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .requests[i]
                .confirmed = true;
            Ok(())
        } else {
            Err(anyhow!("the broker refused request {i}"))
        }
    }
}

/// Samples the stack's state from Redis every 500 ms until finished.
pub struct Sampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Sample `deployment`; arrivals are read off `sent_total`; times count from `start`.
    pub fn start(
        store: Store,
        deployment: String,
        sent_total: Arc<AtomicU64>,
        start: Instant,
    ) -> Sampler {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(sample_loop(store, deployment, sent_total, start, stopped));
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

async fn sample_loop(
    store: Store,
    deployment: String,
    sent_total: Arc<AtomicU64>,
    start: Instant,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> Vec<Sample> {
    let every = Duration::from_millis(500);
    let mut last = Instant::now();
    let mut last_total = sent_total.load(Ordering::Relaxed);
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            _ = done.changed() => return samples,
            _ = tokio::time::sleep(every) => {}
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let total = sent_total.load(Ordering::Relaxed);
        let mut s = Sample {
            t_s: start.elapsed().as_secs_f64(),
            arrivals_per_s: (total - last_total) as f64 / last.elapsed().as_secs_f64().max(1e-3),
            ..Default::default()
        };
        last_total = total;
        last = Instant::now();
        // Redis may be restarting (the chaos tests do that): skip what cannot be read.
        if let Ok(held) = store
            .held(&deployment, now_ms, scale0_state::HELD_STALE_AFTER)
            .await
        {
            s.held = held;
        }
        if let Ok(records) = store.instances(&deployment).await {
            for r in &records {
                match r.state {
                    InstanceState::Requested | InstanceState::Booting => s.booting += 1,
                    InstanceState::Ready => s.ready += 1,
                    InstanceState::Draining | InstanceState::Unhealthy => s.draining += 1,
                    InstanceState::Terminated => {}
                }
            }
            let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
            if let Ok(counts) = store.in_flight(&deployment, &ids, now_ms).await {
                s.in_flight = counts.values().map(|&c| u64::from(c)).sum();
            }
        }
        samples.push(s);
    }
}

/// Arrivals, held and in-flight requests (top) and instances by state (bottom).
pub fn plot(title: &str, tl: &[Sample], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 700)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(380);
    let t_max = tl.last().map_or(1.0, |s| s.t_s).max(1.0);
    let y_top = tl
        .iter()
        .map(|s| s.arrivals_per_s.max(s.held as f64).max(s.in_flight as f64))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: arrivals/s, held and in flight"),
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..y_top * 1.1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| fail(&e))?;
    type Line = (&'static str, RGBColor, fn(&Sample) -> f64);
    let lines: [Line; 3] = [
        ("arrivals/s", RGBColor(120, 120, 120), |s| s.arrivals_per_s),
        ("held", RGBColor(220, 80, 60), |s| s.held as f64),
        ("in flight", RGBColor(60, 110, 200), |s| s.in_flight as f64),
    ];
    for (name, color, f) in lines {
        chart
            .draw_series(LineSeries::new(
                tl.iter().map(|s| (s.t_s, f(s))),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;

    let y_bottom = tl
        .iter()
        .map(|s| s.ready + s.booting + s.draining)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "instances: ready (blue), booting (orange), draining (grey), stacked",
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0u32..y_bottom + 1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| fail(&e))?;
    type Layer = (RGBColor, fn(&Sample) -> u32);
    let layers: [Layer; 3] = [
        (RGBColor(170, 170, 170), |s| {
            s.ready + s.booting + s.draining
        }),
        (RGBColor(240, 160, 60), |s| s.ready + s.booting),
        (RGBColor(70, 120, 200), |s| s.ready),
    ];
    for (color, f) in layers {
        chart
            .draw_series(AreaSeries::new(
                tl.iter().map(|s| (s.t_s, f(s))),
                0,
                color.mix(0.7),
            ))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
