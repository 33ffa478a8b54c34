//! The controller loop every controller runs on: keys go into a rate-limited work queue (from
//! informer handlers), workers take them one at a time and call `reconcile(key)`, which reads
//! the informers' caches, computes, writes, and says whether to look again later. Failures
//! are retried with per-key exponential back-off; success clears it.

use crate::Error;
use rkube_client::WorkQueue;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What to do with a key after a successful reconcile.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until the next change arrives through an informer.
    Done,
    /// Look again after this long even if nothing changes (a deadline, a timer, a
    /// minReadySeconds wait).
    RequeueAfter(Duration),
}

/// One controller: brings the object behind a key to its desired state.
pub trait Controller: Send + Sync + 'static {
    /// Name in logs, metrics and `--controllers`, e.g. "replicaset".
    fn name(&self) -> &'static str;

    /// Reconciles the object with this key (`namespace/name`, or `name` for cluster-scoped
    /// objects). Must be idempotent: it may run again for the same state at any time.
    fn reconcile(&self, key: &str) -> impl Future<Output = Result<Action, Error>> + Send;
}

type Runner = Box<
    dyn FnOnce(usize, Arc<ControllerMetrics>, CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send,
>;

/// A controller ready to start: its queue (already fed by informer handlers) and workers.
pub struct Registration {
    /// The controller's name.
    pub name: &'static str,
    /// Its work queue.
    pub queue: WorkQueue<String>,
    runner: Runner,
}

impl Registration {
    /// Wraps a controller and the queue its informer handlers feed.
    pub fn new<C: Controller>(controller: Arc<C>, queue: WorkQueue<String>) -> Registration {
        let name = controller.name();
        let q = queue.clone();
        let runner: Runner =
            Box::new(move |workers, metrics, cancel| Box::pin(run_workers(controller, q, workers, metrics, cancel)));
        Registration { name, queue, runner }
    }

    /// Starts `workers` workers; they stop when `cancel` fires.
    pub fn start(
        self,
        workers: usize,
        metrics: Arc<ControllerMetrics>,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn((self.runner)(workers, metrics, cancel))
    }
}

async fn run_workers<C: Controller>(
    controller: Arc<C>,
    queue: WorkQueue<String>,
    workers: usize,
    metrics: Arc<ControllerMetrics>,
    cancel: CancellationToken,
) {
    let stopper = queue.clone();
    tokio::spawn(async move {
        cancel.cancelled().await;
        stopper.shut_down();
    });
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (controller, queue, metrics) = (controller.clone(), queue.clone(), metrics.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                process(controller.as_ref(), &queue, &metrics, key).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn process<C: Controller>(controller: &C, queue: &WorkQueue<String>, metrics: &ControllerMetrics, key: String) {
    let started = Instant::now();
    let span = tracing::debug_span!("reconcile", controller = controller.name(), key = %key);
    let outcome = {
        let _enter = span.enter();
        controller.reconcile(&key)
    }
    .await;
    metrics.observe(started.elapsed(), outcome.is_ok());
    match outcome {
        Ok(Action::Done) => queue.forget(&key),
        Ok(Action::RequeueAfter(after)) => {
            queue.forget(&key);
            queue.add_after(key.clone(), after);
        }
        Err(e) => {
            let retries = queue.requeues(&key);
            if e.is_conflict() {
                tracing::debug!(controller = controller.name(), key = %key, error = %e, "conflict; retrying");
            } else {
                tracing::warn!(controller = controller.name(), key = %key, retries, error = %e, "reconcile failed; retrying");
            }
            queue.add_rate_limited(key.clone());
        }
    }
    queue.done(&key);
}

/// Counters of one controller, served on /metrics.
pub struct ControllerMetrics {
    name: &'static str,
    queue: WorkQueue<String>,
    ok: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl ControllerMetrics {
    fn observe(&self, took: Duration, ok: bool) {
        if ok { &self.ok } else { &self.errors }.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Every controller's counters.
#[derive(Default)]
pub struct Metrics {
    controllers: Mutex<Vec<Arc<ControllerMetrics>>>,
}

impl Metrics {
    /// Counters for a controller and its queue.
    pub fn register(&self, name: &'static str, queue: WorkQueue<String>) -> Arc<ControllerMetrics> {
        let m = Arc::new(ControllerMetrics {
            name,
            queue,
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            micros: AtomicU64::new(0),
        });
        self.controllers.lock().unwrap_or_else(|e| e.into_inner()).push(m.clone());
        m
    }

    /// Prometheus text: queue depth, reconciles by result, reconcile time.
    pub fn text(&self) -> String {
        let controllers = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# TYPE workqueue_depth gauge\n# TYPE controller_reconcile_total counter\n# TYPE controller_reconcile_time_seconds summary\n",
        );
        for c in controllers.iter() {
            let (ok, errors) = (c.ok.load(Ordering::Relaxed), c.errors.load(Ordering::Relaxed));
            let _ = writeln!(out, "workqueue_depth{{name=\"{}\"}} {}", c.name, c.queue.len());
            let _ = writeln!(out, "controller_reconcile_total{{controller=\"{}\",result=\"success\"}} {ok}", c.name);
            let _ = writeln!(out, "controller_reconcile_total{{controller=\"{}\",result=\"error\"}} {errors}", c.name);
            let secs = c.micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "controller_reconcile_time_seconds_sum{{controller=\"{}\"}} {secs}", c.name);
            let _ =
                writeln!(out, "controller_reconcile_time_seconds_count{{controller=\"{}\"}} {}", c.name, ok + errors);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Flaky {
        calls: AtomicUsize,
    }

    impl Controller for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn reconcile(&self, key: &str) -> Result<Action, Error> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            match (key, n) {
                ("fail-twice", 0 | 1) => Err(Error::Invalid("not yet".into())),
                _ => Ok(Action::Done),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff_and_counted() {
        let controller = Arc::new(Flaky { calls: AtomicUsize::new(0) });
        let queue = WorkQueue::with_backoff(Duration::from_millis(10), Duration::from_secs(1));
        let metrics = Metrics::default();
        let m = metrics.register("flaky", queue.clone());
        let cancel = CancellationToken::new();
        let reg = Registration::new(controller.clone(), queue.clone());
        let handle = reg.start(2, m, cancel.clone());
        queue.add("fail-twice".to_string());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(controller.calls.load(Ordering::SeqCst), 3);
        assert_eq!(queue.requeues(&"fail-twice".to_string()), 0, "success forgets the failures");
        let text = metrics.text();
        assert!(text.contains("controller_reconcile_total{controller=\"flaky\",result=\"error\"} 2"), "{text}");
        assert!(text.contains("controller_reconcile_total{controller=\"flaky\",result=\"success\"} 1"), "{text}");
        cancel.cancel();
        handle.await.unwrap();
    }
}
