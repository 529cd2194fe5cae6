//! Two background loops per deployment.
//!
//! **Watcher** (every `refresh_interval`, 200 ms by default): reads the registry, the
//! live leases and the cap from Redis, probes the readiness path of every booting
//! instance that has an endpoint, and hands the actor a [`Snapshot`]. A probe answering
//! 200 moves the instance to `ready` in the registry (`Store::mark_ready`, a guarded
//! transition: of several workers and the scaler's health sweep probing, one applies
//! it and records the boot time) and the actor dispatches to it in the same step. So dispatch starts within one refresh interval plus a probe
//! round trip of the readiness path first answering 200, whoever launched the instance.
//!
//! **Reporter** (every `report_interval`, 1 s): writes this worker's held count,
//! arrivals and request samples to Redis and reads the queue depth with a passive
//! declare. What fails to be written is kept for the next round.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use scale0_core::contract::{InstanceRecord, InstanceState, request_queue};
use scale0_state::registry::Transition;

use crate::deployment::{Ctx, Msg, Snapshot};
use crate::instance_client::endpoint_uri;

pub async fn watch(ctx: Arc<Ctx>) {
    let interval = ctx.shared.settings.refresh_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        ticker.tick().await;
        match read(&ctx, round.is_multiple_of(5)).await {
            Ok(snapshot) => {
                if ctx.inbox.send(Msg::Snapshot(Box::new(snapshot))).is_err() {
                    return;
                }
            }
            Err(e) => {
                ctx.shared.metrics.redis_errors.inc();
                tracing::warn!(deployment = %ctx.spec.name, error = %e, "cannot read the registry; keeping the last view");
            }
        }
        round += 1;
    }
}

async fn read(ctx: &Ctx, slow: bool) -> scale0_state::Result<Snapshot> {
    let store = &ctx.shared.store;
    let d = ctx.spec.name.as_str();
    let mut instances: Vec<InstanceRecord> = store
        .instances(d)
        .await?
        .into_iter()
        .filter(|r| r.state != InstanceState::Terminated)
        .collect();

    // Probe booting instances; the first 200 makes them ready.
    let probes = instances
        .iter()
        .enumerate()
        .filter(|(_, r)| r.state.is_booting())
        .filter_map(|(i, r)| r.endpoint.clone().map(|e| (i, e)))
        .map(|(i, endpoint)| async move { (i, probe(ctx, &endpoint).await) });
    let results = futures_util::future::join_all(probes).await;
    for (i, ready) in results {
        if !ready {
            continue;
        }
        let r = &instances[i];
        let now = Utc::now();
        match store.mark_ready(d, &r.id, now, None).await? {
            Transition::Applied(updated) => {
                let took = (now - updated.launched_at).to_std().unwrap_or_default();
                tracing::info!(deployment = d, instance = %updated.id, boot_s = took.as_secs_f64(), "instance ready");
                instances[i] = updated;
            }
            Transition::Refused(current) => instances[i] = current,
            Transition::NotFound => {}
        }
    }

    let ids: Vec<&str> = instances.iter().map(|r| r.id.as_str()).collect();
    let now_ms = Utc::now().timestamp_millis();
    let in_flight = store.in_flight(d, &ids, now_ms).await?;
    let cap = store.cap(d).await?;
    let (mean_service_time, held_all_workers) = if slow {
        (
            store.mean_service_time(d).await?,
            Some(
                store
                    .held(d, now_ms, scale0_state::HELD_STALE_AFTER)
                    .await?,
            ),
        )
    } else {
        (None, None)
    };
    Ok(Snapshot {
        instances,
        in_flight,
        cap,
        mean_service_time,
        held_all_workers,
    })
}

async fn probe(ctx: &Ctx, endpoint: &str) -> bool {
    let Ok(uri) = endpoint_uri(endpoint, &ctx.spec.readiness_path) else {
        return false;
    };
    matches!(
        ctx.shared
            .http
            .get(&uri, ctx.shared.settings.probe_timeout)
            .await,
        Ok(200)
    )
}

pub async fn report(ctx: Arc<Ctx>) {
    let mut ticker = tokio::time::interval(ctx.shared.settings.report_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        report_once(&ctx).await;
    }
}

/// One round of reports; also called once more on shutdown.
pub async fn report_once(ctx: &Ctx) {
    let store = &ctx.shared.store;
    let d = ctx.spec.name.as_str();
    let now = Utc::now();
    let mut failed = false;

    let held = ctx.held_now.load(Ordering::Relaxed);
    failed |= store
        .report_held(
            d,
            &ctx.shared.settings.worker_id,
            held,
            now.timestamp_millis(),
        )
        .await
        .is_err();

    let arrivals = ctx.unflushed_arrivals.swap(0, Ordering::Relaxed);
    if arrivals > 0 && store.add_arrivals(d, now, arrivals).await.is_err() {
        ctx.unflushed_arrivals
            .fetch_add(arrivals, Ordering::Relaxed);
        failed = true;
    }

    let tokens = ctx.unflushed_tokens.swap(0, Ordering::Relaxed);
    if tokens > 0 && store.add_tokens(d, now, tokens).await.is_err() {
        ctx.unflushed_tokens.fetch_add(tokens, Ordering::Relaxed);
        failed = true;
    }

    let samples = std::mem::take(
        &mut *ctx
            .unflushed_samples
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    if store.record_requests(d, &samples).await.is_err() {
        failed = true;
    }
    if failed {
        ctx.shared.metrics.redis_errors.inc();
    }

    if let Some(live) = ctx.shared.broker.current() {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        if let Ok(Ok(q)) = tokio::time::timeout(
            Duration::from_secs(2),
            live.admin.queue_declare(
                request_queue(d).as_str().into(),
                passive,
                FieldTable::default(),
            ),
        )
        .await
        {
            ctx.metrics.queue_depth.set(i64::from(q.message_count()));
        }
    }
}
