//! Samples the stack's state from Redis every 500 ms, for the timeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scale0_core::contract::InstanceState;
use scale0_state::Store;
use serde::Serialize;

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
