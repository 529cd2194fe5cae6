//! Which instances to drain when a pool has more than its target.
//!
//! Fewest requests in flight first, so the drain finishes soonest and disturbs the
//! least work; among equals, instances not yet ready (as Kubernetes removes unready
//! pods first), then the most recently launched, then by id so the choice is
//! deterministic.

use std::cmp::Reverse;

use super::ObservedInstance;
use crate::contract::InstanceState;

pub(super) fn choose(capacity: &[&ObservedInstance], pool: &str, n: u32) -> Vec<String> {
    let mut candidates: Vec<&&ObservedInstance> =
        capacity.iter().filter(|i| i.record.pool == pool).collect();
    candidates.sort_by_key(|i| {
        (
            i.in_flight,
            i.record.state == InstanceState::Ready,
            Reverse(i.record.launched_at),
            i.record.id.as_str(),
        )
    });
    candidates
        .into_iter()
        .take(n as usize)
        .map(|i| i.record.id.clone())
        .collect()
}
