//! Expectations, as Kubernetes' controllers keep them: after a controller creates or deletes
//! N pods for an owner, it waits until its informer has seen those N changes before it
//! computes the owner's diff again, so a watch that lags never makes it create twice.
//! Deletions can be tracked by pod key, as Kubernetes' UID-tracking expectations do, so a pod
//! seen twice going away (deletionTimestamp set, then removed) counts once.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expectations older than this are given up on (a lost event must not block an owner forever).
const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Pending {
    adds: i64,
    dels: i64,
    /// The pods whose deletions are awaited, when deletions are tracked by key.
    deleting: HashSet<String>,
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
            m.insert(key.to_string(), Pending { adds, dels, deleting: HashSet::new(), since: Instant::now() });
        });
    }

    /// Records `adds` creations and the deletions of exactly these pods (by key) for `key`;
    /// observe those with [`Expectations::pod_deletion_observed`].
    pub fn expect_deletions(&self, key: &str, adds: i64, pods: HashSet<String>) {
        self.with(|m| {
            let dels = i64::try_from(pods.len()).unwrap_or(i64::MAX);
            m.insert(key.to_string(), Pending { adds, dels, deleting: pods, since: Instant::now() });
        });
    }

    /// An informer saw `pod` going away; it counts only if its deletion was awaited and not
    /// seen before.
    pub fn pod_deletion_observed(&self, key: &str, pod: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(key)
                && p.deleting.remove(pod)
            {
                p.dels -= 1;
            }
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

    #[test]
    fn a_pod_going_away_counts_once() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", 0, HashSet::from(["ns/a".to_string(), "ns/b".to_string()]));
        e.pod_deletion_observed("ns/rs", "ns/a");
        e.pod_deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"), "a second sighting of the same pod is not another deletion");
        e.pod_deletion_observed("ns/rs", "ns/c");
        assert!(!e.satisfied("ns/rs"), "a pod whose deletion was not awaited does not count");
        e.pod_deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }
}
