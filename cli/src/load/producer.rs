//! The producer: publishes with confirms to its own reply queue, republishes what the
//! broker did not confirm after a reconnect, and accounts for every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use scale0_core::contract::{REQUESTS_EXCHANGE, headers};
use scale0_queue_worker::reply::ReplyHeaders;
use scale0_state::Store;

use super::plan::{LoadPlan, total_span};
use super::report::{LoadReport, Percentiles};
use super::sampler::Sampler;

/// Per request: when it was first sent, and the replies it got.
#[derive(Debug, Default)]
struct Tracking {
    sent_at: Option<Instant>,
    confirmed: bool,
    first: Option<Reply>,
    extra: u64,
    /// Redeliveries of a reply already recorded (its ack was lost with the connection).
    redelivered: u64,
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
        report.redelivered += t.redelivered;
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
                            // A reply recorded whose ack was lost with the connection
                            // comes back redelivered: the same message, not a second
                            // reply.
                            if d.redelivered {
                                t.redelivered += 1;
                            } else {
                                t.extra += 1;
                            }
                        } else {
                            let sent = t.sent_at.unwrap_or(start);
                            let h = ReplyHeaders::read(&d.properties);
                            t.first = Some(Reply {
                                status: h.status.unwrap_or_else(|| "(none)".into()),
                                reason: h.reason,
                                latency: received.saturating_duration_since(sent),
                                cold_start: h.cold_start,
                                queue_ms: h.queue_ms.map(|q| q as f64),
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
