//! When a held request is answered 429 instead of waiting: over `max_held_requests`
//! (lowest priority and newest first), or when the wait estimate of its place in
//! dispatch order exceeds what is left of its deadline; and the `retry-after` it is
//! told. The estimate itself is `crate::admission`'s.

use chrono::{DateTime, Utc};

use super::Machine;
use crate::admission::{self, Estimator, ShedReason};

impl<P> Machine<P> {
    /// Requests this worker holds or works on: what a shed request is told to wait
    /// out (`retry-after`).
    pub(super) fn backlog(&self) -> u64 {
        self.held.len() as u64 + self.working.len() as u64
    }

    pub(super) fn enforce_limit(&mut self, now: DateTime<Utc>) {
        let limit = self.rules.spec.max_held_requests;
        let over = admission::over_limit(self.held.len(), limit);
        if over == 0 {
            return;
        }
        let retry = self.estimator(now).retry_after(self.backlog());
        for _ in 0..over {
            if let Some((_, job)) = self.held.pop_lowest() {
                self.shed(job, ShedReason::HeldLimit { limit }, retry);
            }
        }
    }

    pub(super) fn cap_reason(&self) -> Option<&str> {
        self.cap.as_ref().map(|c| c.reason.as_str())
    }

    pub(super) fn estimator(&self, now: DateTime<Utc>) -> Estimator {
        let mine = self.held.len() as f64;
        let all = self.held_all_workers as f64;
        let share = if all > mine && mine > 0.0 {
            mine / all
        } else {
            1.0
        };
        Estimator::new(
            &self
                .view
                .capacity(self.cap.as_ref(), share, self.service_time, now),
        )
    }

    /// Re-check every held request against its deadline, in dispatch order.
    pub(super) fn shed_by_wait(&mut self, now: DateTime<Utc>) {
        if self.held.is_empty() || !self.snapshot_seen {
            return;
        }
        let estimator = self.estimator(now);
        let base = self.working.len() as u64;
        let mut doomed = Vec::new();
        for (rank, (key, deadline, _)) in self.held.iter().enumerate() {
            let remaining = (deadline - now).to_std().unwrap_or_default();
            if remaining.is_zero() {
                // Its deadline passed: it is answered `expired` (advance), not shed.
                continue;
            }
            if let Some(reason) = estimator.shed(base + rank as u64, remaining, self.cap_reason()) {
                doomed.push((key, reason));
            }
        }
        if doomed.is_empty() {
            return;
        }
        let retry = estimator.retry_after(self.held.len() as u64 + base);
        for (key, reason) in doomed {
            if let Some(job) = self.held.remove(key) {
                self.shed(job, reason, retry);
            }
        }
    }
}
