//! The scheduling queue: pending pods waiting for an attempt (active), and pods that fit
//! nowhere parked until a node or pod change might make room (unschedulable). Parked pods
//! are moved back by cluster events, never by a timer, after their per-pod back-off
//! (1 s doubling to 10 s, Kubernetes' podInitialBackoff / podMaxBackoff).

use rkube_client::WorkQueue;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A parked pod: failed attempts so far, when the last one ended, and whether it has pod
/// affinity terms (only those can be helped by another pod appearing).
struct Parked {
    attempts: u32,
    last_attempt: Instant,
    wants_pod_affinity: bool,
}

#[derive(Default)]
struct State {
    unschedulable: HashMap<String, Parked>,
    /// Attempts per pod that has failed at least once (also while not parked).
    attempts: HashMap<String, u32>,
    /// Bumped by every move request: an attempt that started before a move and then failed
    /// goes back to active rather than sleeping through the change that might help it.
    move_cycle: u64,
}

/// Pending pods, keyed `namespace/name`.
pub struct SchedulingQueue {
    active: WorkQueue<String>,
    state: Mutex<State>,
}

/// A pod handed out for one scheduling attempt.
pub struct Attempt {
    /// The pod's key.
    pub key: String,
    move_cycle: u64,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> Self {
        SchedulingQueue {
            active: WorkQueue::with_backoff(INITIAL_BACKOFF, MAX_BACKOFF),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pending pod, or one whose spec changed: try it now.
    pub fn add(&self, key: &str) {
        self.lock().unschedulable.remove(key);
        self.active.add(key.to_string());
    }

    /// The pod is gone or scheduled: forget it (a stale entry in active is skipped by the
    /// worker, which finds no pending pod under the key).
    pub fn delete(&self, key: &str) {
        let mut s = self.lock();
        s.unschedulable.remove(key);
        s.attempts.remove(key);
    }

    /// Waits for the next pod to try; `None` after [`SchedulingQueue::shut_down`].
    pub async fn pop(&self) -> Option<Attempt> {
        let key = self.active.get().await?;
        let move_cycle = self.lock().move_cycle;
        Some(Attempt { key, move_cycle })
    }

    /// The attempt is over (whatever its outcome was recorded as).
    pub fn done(&self, attempt: &Attempt) {
        self.active.done(&attempt.key);
    }

    /// The pod fits nowhere: park it until a cluster change, unless one already happened
    /// during the attempt.
    pub fn unschedulable(&self, attempt: &Attempt, wants_pod_affinity: bool) {
        let mut s = self.lock();
        let attempts = {
            let n = s.attempts.entry(attempt.key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if s.move_cycle != attempt.move_cycle {
            drop(s);
            self.active.add_after(attempt.key.clone(), backoff(attempts));
            return;
        }
        s.unschedulable
            .insert(attempt.key.clone(), Parked { attempts, last_attempt: Instant::now(), wants_pod_affinity });
    }

    /// An error that is not the pod's fault (binding failed): retry after the back-off.
    pub fn retry(&self, key: &str) {
        self.lock().unschedulable.remove(key);
        self.active.add_rate_limited(key.to_string());
    }

    /// The pod was bound: clear its history.
    pub fn forget(&self, key: &str) {
        self.lock().attempts.remove(key);
        self.active.forget(&key.to_string());
    }

    /// A change that may make room for any parked pod (a node added or changed, a pod
    /// removed): every parked pod goes back to active once its back-off has passed.
    pub fn move_all(&self) {
        self.move_where(|_| true);
    }

    /// A pod was assigned somewhere: only pods with pod affinity terms can gain from it.
    pub fn move_pod_affinity_waiters(&self) {
        self.move_where(|p| p.wants_pod_affinity);
    }

    fn move_where(&self, pick: impl Fn(&Parked) -> bool) {
        let mut s = self.lock();
        s.move_cycle += 1;
        let keys: Vec<String> = s.unschedulable.iter().filter(|(_, p)| pick(p)).map(|(k, _)| k.clone()).collect();
        for key in keys {
            if let Some(p) = s.unschedulable.remove(&key) {
                let wait = backoff(p.attempts).saturating_sub(p.last_attempt.elapsed());
                self.active.add_after(key, wait);
            }
        }
    }

    /// Pods waiting for an attempt.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Pods parked as unschedulable.
    pub fn unschedulable_len(&self) -> usize {
        self.lock().unschedulable.len()
    }

    /// Whether the pod is parked.
    pub fn is_unschedulable(&self, key: &str) -> bool {
        self.lock().unschedulable.contains_key(key)
    }

    /// Ends [`SchedulingQueue::pop`] for the workers.
    pub fn shut_down(&self) {
        self.active.shut_down();
    }
}

/// 1 s, 2 s, 4 s, 8 s, then 10 s for the n-th failed attempt.
fn backoff(attempts: u32) -> Duration {
    INITIAL_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(10)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn parked_pods_wait_for_a_cluster_change_not_a_timer() {
        let q = SchedulingQueue::new();
        q.add("ns/a");
        let a = q.pop().await.unwrap();
        q.unschedulable(&a, false);
        q.done(&a);
        assert!(q.is_unschedulable("ns/a"));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(q.active_len(), 0, "no timer brings a parked pod back");
        q.move_all();
        let again = tokio::time::timeout(Duration::from_secs(2), q.pop()).await.expect("moved back to active");
        assert_eq!(again.unwrap().key, "ns/a");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_the_attempt_sends_the_pod_back() {
        let q = SchedulingQueue::new();
        q.add("ns/a");
        let a = q.pop().await.unwrap();
        q.move_all(); // a node arrived while the pod was being scheduled
        q.unschedulable(&a, false);
        q.done(&a);
        assert!(!q.is_unschedulable("ns/a"));
        let again = tokio::time::timeout(Duration::from_secs(2), q.pop()).await.expect("retried after its back-off");
        assert_eq!(again.unwrap().key, "ns/a");
    }

    #[tokio::test(start_paused = true)]
    async fn assigned_pods_only_wake_pod_affinity_waiters() {
        let q = SchedulingQueue::new();
        q.add("ns/plain");
        q.add("ns/affine");
        let p = q.pop().await.unwrap();
        let a = q.pop().await.unwrap();
        q.unschedulable(&p, false);
        q.unschedulable(&a, true);
        q.done(&p);
        q.done(&a);
        q.move_pod_affinity_waiters();
        assert!(q.is_unschedulable("ns/plain"));
        assert!(!q.is_unschedulable("ns/affine"));
    }

    #[tokio::test]
    async fn add_unparks_a_pod_whose_spec_changed() {
        let q = SchedulingQueue::new();
        q.add("ns/a");
        let a = q.pop().await.unwrap();
        q.unschedulable(&a, false);
        q.done(&a);
        q.add("ns/a");
        assert!(!q.is_unschedulable("ns/a"));
        assert_eq!(q.pop().await.unwrap().key, "ns/a");
    }
}
