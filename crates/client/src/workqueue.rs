//! A work queue of keys, as controllers use it: an item queued many times before a worker
//! takes it is processed once; an item being processed is never handed to a second worker
//! (if it is queued meanwhile, it comes back after `done`); failed items come back after a
//! per-item exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

struct State<T> {
    queue: VecDeque<T>,
    /// Items waiting to be processed (queued, or re-queued while processing).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Consecutive failures per item, for the back-off.
    failures: HashMap<T, u32>,
    /// Items waiting out a delay, and when they become ready.
    delayed: HashMap<T, Instant>,
    shutting_down: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    base_delay: Duration,
    max_delay: Duration,
}

/// A deduplicating, rate-limited queue of work items; clones share the queue.
pub struct WorkQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue { shared: self.shared.clone() }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// A queue whose per-item back-off starts at 5 ms and doubles up to 1000 s (client-go's
    /// defaults).
    pub fn new() -> Self {
        Self::with_backoff(Duration::from_millis(5), Duration::from_secs(1000))
    }

    /// A queue with the given per-item back-off bounds.
    pub fn with_backoff(base_delay: Duration, max_delay: Duration) -> Self {
        WorkQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    failures: HashMap::new(),
                    delayed: HashMap::new(),
                    shutting_down: false,
                }),
                notify: Notify::new(),
                base_delay,
                max_delay,
            }),
        }
    }

    // Every change under the lock is complete before it is released, so a poisoned lock
    // still guards consistent state.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut s = self.lock();
        if s.shutting_down || s.dirty.contains(&item) {
            return;
        }
        s.dirty.insert(item.clone());
        if !s.processing.contains(&item) {
            s.queue.push_back(item);
            drop(s);
            self.shared.notify.notify_one();
        }
    }

    /// Queues `item` after `delay`; an earlier pending delay for the same item wins.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let ready = Instant::now() + delay;
        {
            let mut s = self.lock();
            if s.shutting_down || s.delayed.get(&item).is_some_and(|at| *at <= ready) {
                return;
            }
            s.delayed.insert(item.clone(), ready);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(ready).await;
            let due = {
                let mut s = queue.lock();
                let due = s.delayed.get(&item) == Some(&ready);
                if due {
                    s.delayed.remove(&item);
                }
                due
            };
            if due {
                queue.add(item);
            }
        });
    }

    /// Queues `item` after its back-off: base delay × 2^(failures so far), capped.
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            let exp = (*n).min(30);
            *n += 1;
            self.shared.base_delay.saturating_mul(1u32 << exp).min(self.shared.max_delay)
        };
        self.add_after(item, delay);
    }

    /// Clears `item`'s failure count, after it was processed successfully.
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// How many times `item` has been re-queued by [`WorkQueue::add_rate_limited`] since the
    /// last [`WorkQueue::forget`].
    pub fn requeues(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// Waits for the next item; `None` once the queue is shut down and drained. The caller
    /// owns the item until it calls [`WorkQueue::done`].
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = {
                let mut s = self.lock();
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    return Some(item);
                }
                if s.shutting_down {
                    return None;
                }
                // Registered before the lock is released, so no wake-up is lost in between.
                self.shared.notify.notified()
            };
            notified.await;
        }
    }

    /// Marks `item` processed; if it was queued again meanwhile, it goes back in line now.
    pub fn done(&self, item: &T) {
        let mut s = self.lock();
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.shared.notify.notify_one();
        }
    }

    /// Items waiting to be handed out.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// True when no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops accepting items; workers get `None` once the queue is drained.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.shared.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_waiting_items() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn item_in_processing_is_not_handed_out_twice() {
        let q = WorkQueue::new();
        q.add("a");
        let item = q.get().await.unwrap();
        q.add("a");
        q.add("a");
        assert!(q.is_empty(), "a second worker must not get the item in processing");
        let second = tokio::time::timeout(Duration::from_millis(50), q.get()).await;
        assert!(second.is_err(), "get must wait while the only item is processing");
        q.done(&item);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, Some("a"));
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_items_back_off_exponentially_until_forgotten() {
        let q = WorkQueue::with_backoff(Duration::from_millis(10), Duration::from_millis(50));
        let start = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..4 {
            q.add_rate_limited("k");
            let t = Instant::now();
            let item = q.get().await.unwrap();
            waits.push((Instant::now() - t).as_millis());
            q.done(&item);
        }
        assert_eq!(waits, vec![10, 20, 40, 50], "doubling, capped at the maximum");
        assert_eq!(q.requeues(&"k"), 4);
        q.forget(&"k");
        q.add_rate_limited("k");
        let t = Instant::now();
        q.get().await.unwrap();
        assert_eq!((Instant::now() - t).as_millis(), 10);
        assert!(Instant::now() - start >= Duration::from_millis(130));
    }

    #[tokio::test(start_paused = true)]
    async fn earlier_delay_wins() {
        let q = WorkQueue::new();
        q.add_after("k", Duration::from_secs(10));
        q.add_after("k", Duration::from_secs(1));
        q.add_after("k", Duration::from_secs(5));
        let t = Instant::now();
        q.get().await.unwrap();
        assert_eq!((Instant::now() - t).as_secs(), 1);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(q.is_empty(), "the later delays were dropped");
    }

    #[tokio::test]
    async fn shut_down_wakes_waiting_workers() {
        let q: WorkQueue<u32> = WorkQueue::new();
        let worker = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.shut_down();
        assert_eq!(worker.await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_workers_never_share_a_key() {
        let q = WorkQueue::new();
        let active = Arc::new(Mutex::new(HashSet::new()));
        let processed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, active, processed) = (q.clone(), active.clone(), processed.clone());
            workers.push(tokio::spawn(async move {
                while let Some(k) = q.get().await {
                    assert!(active.lock().unwrap().insert(k), "key {k} handed to two workers");
                    tokio::task::yield_now().await;
                    active.lock().unwrap().remove(&k);
                    processed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    q.done(&k);
                }
            }));
        }
        for i in 0..2000u32 {
            q.add(i % 7);
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        while !q.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.shut_down();
        for w in workers {
            w.await.unwrap();
        }
        assert!(processed.load(std::sync::atomic::Ordering::Relaxed) >= 7);
    }
}
