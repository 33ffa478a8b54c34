//! Expectations, as Kubernetes' controllers keep them: after a controller creates or deletes
//! N pods for an owner, it waits until its informer has seen those N changes before it
//! computes the owner's diff again, so a watch that lags never makes it create twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expectations older than this are given up on (a lost event must not block an owner forever).
const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy)]
struct Pending {
    adds: i64,
    dels: i64,
    since: Instant,
}

/// Outstanding creations and deletions per owner key.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> T) -> T {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records that `adds` creations and `dels` deletions are about to be issued for `key`.
    pub fn expect(&self, key: &str, adds: i64, dels: i64) {
        self.with(|m| {
            m.insert(key.to_string(), Pending { adds, dels, since: Instant::now() });
        });
    }

    /// An informer saw one of `key`'s creations (or a creation failed and will never be seen).
    pub fn creation_observed(&self, key: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.adds -= 1;
            }
        });
    }

    /// An informer saw one of `key`'s deletions (or a deletion failed).
    pub fn deletion_observed(&self, key: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key) {
                p.dels -= 1;
            }
        });
    }

    /// True when `key` has nothing outstanding (or its expectations expired), so its state
    /// may be recomputed from the caches.
    pub fn satisfied(&self, key: &str) -> bool {
        self.with(|m| match m.get(key) {
            None => true,
            Some(p) => (p.adds <= 0 && p.dels <= 0) || p.since.elapsed() > TTL,
        })
    }

    /// Drops `key`'s expectations (its owner was deleted).
    pub fn forget(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_every_expected_change_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, 1);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        e.deletion_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.creation_observed("ns/other");
        assert!(e.satisfied("ns/other"), "observations without expectations are ignored");
        e.expect("ns/rs", 1, 0);
        e.forget("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
