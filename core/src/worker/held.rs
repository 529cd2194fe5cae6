//! The requests a deployment holds, in the two orders the worker needs: dispatch
//! order (highest priority first, then oldest) and deadline order.
//!
//! Shedding takes from the other end of dispatch order: lowest priority first, and the
//! newest within a priority (the oldest have waited longest and are nearest service).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::contract::MAX_PRIORITY;

/// Position in dispatch order: priority (higher first), then arrival sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    priority: Reverse<u8>,
    seq: u64,
}

impl Key {
    pub fn new(priority: u8, seq: u64) -> Self {
        Key {
            priority: Reverse(priority.min(MAX_PRIORITY)),
            seq,
        }
    }

    pub fn priority(&self) -> u8 {
        self.priority.0
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[derive(Debug)]
struct Entry<T> {
    deadline: DateTime<Utc>,
    item: T,
}

/// Held items with their deadlines.
#[derive(Debug)]
pub struct HeldQueue<T> {
    order: BTreeMap<Key, Entry<T>>,
    deadlines: BTreeSet<(DateTime<Utc>, Key)>,
    per_priority: [usize; MAX_PRIORITY as usize + 1],
}

impl<T> Default for HeldQueue<T> {
    fn default() -> Self {
        HeldQueue {
            order: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            per_priority: [0; MAX_PRIORITY as usize + 1],
        }
    }
}

impl<T> HeldQueue<T> {
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn insert(&mut self, key: Key, deadline: DateTime<Utc>, item: T) {
        if let Some(old) = self.order.insert(key, Entry { deadline, item }) {
            self.deadlines.remove(&(old.deadline, key));
        } else {
            self.per_priority[key.priority() as usize] += 1;
        }
        self.deadlines.insert((deadline, key));
    }

    /// How many held items would be served before a new arrival of `priority`: every
    /// one of the same or higher priority (a new arrival is the newest of its priority).
    pub fn ahead_of_new(&self, priority: u8) -> usize {
        self.per_priority[priority.min(MAX_PRIORITY) as usize..]
            .iter()
            .sum()
    }

    fn take(&mut self, key: Key) -> Option<T> {
        let entry = self.order.remove(&key)?;
        self.deadlines.remove(&(entry.deadline, key));
        self.per_priority[key.priority() as usize] -= 1;
        Some(entry.item)
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.order.get_mut(&key).map(|e| &mut e.item)
    }

    /// The next to dispatch, without taking it.
    pub fn peek_next(&self) -> Option<(Key, &T)> {
        self.order.iter().next().map(|(k, e)| (*k, &e.item))
    }

    /// Take the next to dispatch.
    pub fn pop_next(&mut self) -> Option<(Key, T)> {
        let key = *self.order.keys().next()?;
        self.take(key).map(|t| (key, t))
    }

    /// Take the first to shed: lowest priority, newest.
    pub fn pop_lowest(&mut self) -> Option<(Key, T)> {
        let key = *self.order.keys().next_back()?;
        self.take(key).map(|t| (key, t))
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        self.take(key)
    }

    /// The earliest deadline held.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines.iter().next().map(|(d, _)| *d)
    }

    /// Take every item whose deadline is at or before `now`, earliest first.
    pub fn pop_expired(&mut self, now: DateTime<Utc>) -> Vec<(Key, T)> {
        let mut out = Vec::new();
        while let Some(&(deadline, key)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            if let Some(item) = self.take(key) {
                out.push((key, item));
            }
        }
        out
    }

    /// Items in dispatch order with their deadlines.
    pub fn iter(&self) -> impl Iterator<Item = (Key, DateTime<Utc>, &T)> {
        self.order.iter().map(|(k, e)| (*k, e.deadline, &e.item))
    }

    /// Take every item for which `pred` holds.
    pub fn drain_where(&mut self, mut pred: impl FnMut(&T) -> bool) -> Vec<(Key, T)> {
        let keys: Vec<Key> = self
            .order
            .iter()
            .filter(|(_, e)| pred(&e.item))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.take(k).map(|t| (k, t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn dispatch_and_shed_orders() {
        let t0 = DateTime::UNIX_EPOCH;
        let mut q = HeldQueue::default();
        // (priority, seq): the arrival order.
        for (p, seq) in [(0, 1), (5, 2), (5, 3), (9, 4), (0, 5)] {
            q.insert(Key::new(p, seq), t0 + TimeDelta::seconds(60), seq);
        }
        assert_eq!(q.ahead_of_new(5), 3);
        assert_eq!(q.ahead_of_new(0), 5);
        assert_eq!(q.ahead_of_new(12), 1, "priorities above 9 count as 9");
        // Highest priority first, oldest first within one.
        assert_eq!(q.pop_next().unwrap().1, 4);
        assert_eq!(q.pop_next().unwrap().1, 2);
        // Shedding: lowest priority, newest first.
        assert_eq!(q.pop_lowest().unwrap().1, 5);
        assert_eq!(q.pop_lowest().unwrap().1, 1);
        assert_eq!(q.len(), 1);
        assert_eq!(q.ahead_of_new(0), 1);
    }

    #[test]
    fn deadlines_come_out_in_time_order() {
        let t0 = DateTime::UNIX_EPOCH;
        let mut q = HeldQueue::default();
        q.insert(Key::new(9, 1), t0 + TimeDelta::seconds(3), "late");
        q.insert(Key::new(0, 2), t0 + TimeDelta::seconds(1), "early");
        q.insert(Key::new(5, 3), t0 + TimeDelta::seconds(2), "middle");
        assert_eq!(q.next_deadline(), Some(t0 + TimeDelta::seconds(1)));
        let gone: Vec<_> = q
            .pop_expired(t0 + TimeDelta::seconds(2))
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(gone, ["early", "middle"]);
        assert_eq!(q.next_deadline(), Some(t0 + TimeDelta::seconds(3)));
        // Re-inserting a key replaces its deadline.
        q.insert(Key::new(9, 1), t0 + TimeDelta::seconds(9), "later");
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(t0 + TimeDelta::seconds(9)));
        assert!(q.pop_expired(t0 + TimeDelta::seconds(5)).is_empty());
        let taken = q.drain_where(|s| *s == "later");
        assert_eq!(taken.len(), 1);
        assert!(q.is_empty() && q.next_deadline().is_none());
    }
}
