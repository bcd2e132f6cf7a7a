//! The resources found named like a runner's whose running job the
//! coordinator shows as another runner's: remembered by (runner, resource
//! id) for the process lifetime, so that each is warned about once and
//! neither read back (its `job.json`, up to several MiB) nor looked up at
//! the coordinator again at every reconciliation pass. Bounded: beyond
//! [`CAPACITY`] entries the oldest is forgotten (it is then identified
//! once more, at worst).

use std::collections::{HashSet, VecDeque};

/// Most resources remembered.
pub(super) const CAPACITY: usize = 10_000;

/// (runner index, resource id).
type Key = (usize, String);

/// An insertion-ordered set of at most `capacity` keys.
#[derive(Debug)]
pub(super) struct NotOurs {
    order: VecDeque<Key>,
    keys: HashSet<Key>,
    capacity: usize,
}

impl Default for NotOurs {
    fn default() -> Self {
        NotOurs::with_capacity(CAPACITY)
    }
}

impl NotOurs {
    /// An empty set keeping at most `capacity` keys (at least one).
    pub(super) fn with_capacity(capacity: usize) -> Self {
        NotOurs {
            order: VecDeque::new(),
            keys: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers resource `id` of runner `runner`; true when it was not
    /// known. The oldest key is forgotten when the set is full.
    pub(super) fn insert(&mut self, runner: usize, id: &str) -> bool {
        let key = (runner, id.to_string());
        if self.keys.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
        self.keys.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// Whether resource `id` of runner `runner` is remembered.
    pub(super) fn contains(&self, runner: usize, id: &str) -> bool {
        self.keys.contains(&(runner, id.to_string()))
    }

    /// How many resources are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_once_per_runner_and_forgets_the_oldest_beyond_its_capacity() {
        let mut s = NotOurs::with_capacity(2);
        assert!(s.insert(0, "app_1"));
        assert!(!s.insert(0, "app_1"));
        assert!(s.insert(1, "app_1"), "another runner's key");
        assert!(s.contains(0, "app_1") && s.contains(1, "app_1"));
        assert!(s.insert(0, "app_2"));
        assert_eq!(s.len(), 2);
        assert!(!s.contains(0, "app_1"), "the oldest is forgotten");
        assert!(s.contains(1, "app_1") && s.contains(0, "app_2"));
        assert_eq!(NotOurs::default().capacity, CAPACITY);
    }
}
