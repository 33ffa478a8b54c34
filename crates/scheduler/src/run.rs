//! The scheduler daemon: informers on nodes and pods feed the cache and the scheduling queue;
//! one loop takes pending pods in turn, picks a node, assumes the pod there at once and writes
//! the Binding in the background, so a burst of pods neither waits on the API server nor
//! over-commits a node. Pods that fit nowhere get PodScheduled=False and a FailedScheduling
//! Event, and wait for a cluster change.

use crate::algorithm::{EVENT_REASON_FAILED_SCHEDULING, EVENT_REASON_SCHEDULED, FitError, ScheduleOptions, schedule_with};
use crate::cache::SchedulerCache;
use crate::config::Config;
use crate::pod_info::PodInfo;
use crate::queue::{Attempt, SchedulingQueue};
use k8s_openapi::api::core::v1::{Node, Pod};
use rand::SeedableRng;
use rkube_client::{
    Client, ClientError, Event, EventRecorder, EventType, Informer, LeaderElectionConfig, LeaderElector, ListParams,
    PatchType, object_key,
};
use rkube_daemon::Readiness;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Bindings in flight at once.
const PARALLEL_BINDS: usize = 128;
/// How long an assumed pod waits for the informer to confirm its binding.
const ASSUMED_TTL: Duration = Duration::from_secs(30);

/// Why the scheduler stopped.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Talking to the API server failed, or leadership was lost.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The health endpoint could not listen.
    #[error("serving health endpoints on {address}: {source}")]
    Health {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Counters served on /metrics.
#[derive(Default)]
struct Metrics {
    scheduled: AtomicU64,
    unschedulable: AtomicU64,
    bind_errors: AtomicU64,
    algorithm_micros: AtomicU64,
    attempts: AtomicU64,
}

/// What the informer handlers, the scheduling loop and the binders share.
struct Scheduler {
    client: Client,
    scheduler_name: String,
    cache: Mutex<SchedulerCache>,
    queue: SchedulingQueue,
    recorder: EventRecorder,
    metrics: Arc<Metrics>,
    binds: Semaphore,
    options: ScheduleOptions,
}

impl Scheduler {
    fn cache(&self) -> MutexGuard<'_, SchedulerCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler");
        name == self.scheduler_name
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

/// Runs the scheduler until `cancel` fires; with leader election, only while leading.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), SchedulerError> {
    let identity = LeaderElectionConfig::default_identity();
    let client = config.api.client()?.with_field_manager("rkube-scheduler");
    let readiness = Readiness::default();
    let metrics = Arc::new(Metrics::default());
    if config.secure_port != 0 {
        let address = format!("{}:{}", config.bind_address, config.secure_port);
        let m = metrics.clone();
        rkube_daemon::serve_health(&address, readiness.clone(), move || metrics_text(&m), cancel.clone())
            .await
            .map_err(|source| SchedulerError::Health { address, source })?;
    }
    let scheduler = Arc::new(Scheduler {
        recorder: EventRecorder::new(&client, &config.scheduler_name, &identity),
        client: client.clone(),
        scheduler_name: config.scheduler_name.clone(),
        cache: Mutex::new(SchedulerCache::new(ASSUMED_TTL)),
        queue: SchedulingQueue::new(),
        metrics,
        binds: Semaphore::new(PARALLEL_BINDS),
        options: ScheduleOptions { percentage_of_nodes_to_score: config.percentage_of_nodes_to_score },
    });
    if !config.leader_elect {
        lead(scheduler, readiness, cancel).await;
        return Ok(());
    }
    let election = LeaderElectionConfig {
        lease_duration: config.leader_elect_lease_duration,
        renew_deadline: config.leader_elect_renew_deadline,
        retry_period: config.leader_elect_retry_period,
        ..LeaderElectionConfig::new(
            &config.leader_elect_resource_namespace,
            &config.leader_elect_resource_name,
            &identity,
        )
    };
    LeaderElector::new(&client, election).run(cancel, move |leading| lead(scheduler, readiness, leading)).await?;
    Ok(())
}

/// Schedules until `cancel` fires: starts the informers, waits for their first lists, then
/// runs the scheduling loop.
async fn lead(s: Arc<Scheduler>, readiness: Readiness, cancel: CancellationToken) {
    let mut nodes = Informer::new(s.client.api::<Node>(None), ListParams::default());
    let sched = s.clone();
    nodes.on_event(move |e| on_node_event(&sched, e));
    // Finished pods hold no resources, so they are not watched at all (as kube-scheduler does).
    let mut pods =
        Informer::new(s.client.api::<Pod>(None), ListParams::fields("status.phase!=Succeeded,status.phase!=Failed"));
    let sched = s.clone();
    pods.on_event(move |e| on_pod_event(&sched, e));
    let (node_store, pod_store) = (nodes.store(), pods.store());
    tokio::spawn(nodes.run(cancel.clone()));
    tokio::spawn(pods.run(cancel.clone()));
    tokio::select! {
        _ = async { node_store.wait_synced().await; pod_store.wait_synced().await } => {}
        _ = cancel.cancelled() => return,
    }
    tracing::info!(nodes = node_store.len(), pods = pod_store.len(), "caches synced; scheduling");
    readiness.set(true);
    tokio::spawn(expire_assumed(s.clone(), cancel.clone()));
    let stop = s.clone();
    let c = cancel.clone();
    tokio::spawn(async move {
        c.cancelled().await;
        stop.queue.shut_down();
    });
    let mut next_start = 0usize;
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    while let Some(attempt) = s.queue.pop().await {
        if let Some(pod) = pod_store.get(&attempt.key) {
            schedule_one(&s, &attempt, pod, &mut next_start, &mut rng);
        }
        s.queue.done(&attempt);
    }
    readiness.set(false);
}

fn on_node_event(s: &Scheduler, event: &Event<Node>) {
    match event {
        Event::Added(node) => {
            s.cache().add_node(node.clone());
            s.queue.move_all();
        }
        Event::Updated { old, new } => {
            s.cache().update_node(new.clone());
            // Heartbeats change only timestamps; only what filters read may make room.
            if node_scheduling_changed(old, new) {
                s.queue.move_all();
            }
        }
        Event::Deleted(node) => s.cache().remove_node(node.metadata.name.as_deref().unwrap_or_default()),
    }
}

/// Whether a node changed in a way the filters can see: labels, taints, unschedulable,
/// allocatable or its Ready condition.
fn node_scheduling_changed(old: &Node, new: &Node) -> bool {
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone()));
    let allocatable = |n: &Node| n.status.as_ref().map(|s| s.allocatable.clone());
    old.metadata.labels != new.metadata.labels
        || spec(old) != spec(new)
        || allocatable(old) != allocatable(new)
        || ready(old) != ready(new)
}

fn on_pod_event(s: &Scheduler, event: &Event<Pod>) {
    match event {
        Event::Added(pod) => on_pod_present(s, None, pod),
        Event::Updated { old, new } => on_pod_present(s, Some(old), new),
        Event::Deleted(pod) => {
            let key = object_key(&pod.metadata);
            if node_name(pod).is_some() {
                s.cache().remove_pod(&key);
                // Resources, ports or anti-affinity were freed on a node.
                s.queue.move_all();
            } else {
                s.queue.delete(&key);
            }
        }
    }
}

fn on_pod_present(s: &Scheduler, old: Option<&Arc<Pod>>, pod: &Arc<Pod>) {
    let key = object_key(&pod.metadata);
    if node_name(pod).is_some() {
        let newly_assigned = old.is_none_or(|o| node_name(o).is_none());
        {
            let mut cache = s.cache();
            if newly_assigned { cache.add_pod(pod.clone()) } else { cache.update_pod(pod.clone()) }
        }
        if newly_assigned {
            s.queue.delete(&key);
            s.queue.move_pod_affinity_waiters();
        }
        return;
    }
    if !s.responsible_for(pod) || pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    // The scheduler's own status writes (PodScheduled=False) come back as updates; only a
    // change to what scheduling reads is worth another attempt.
    let changed = old.is_none_or(|o| o.spec != pod.spec || o.metadata.labels != pod.metadata.labels);
    if changed {
        s.queue.add(&key);
    }
}

/// One scheduling attempt for the pending pod `pod`.
fn schedule_one(
    s: &Arc<Scheduler>,
    attempt: &Attempt,
    pod: Arc<Pod>,
    next_start: &mut usize,
    rng: &mut rand::rngs::SmallRng,
) {
    if node_name(&pod).is_some() || pod.metadata.deletion_timestamp.is_some() || !s.responsible_for(&pod) {
        return;
    }
    let info = PodInfo::new(pod.clone());
    let started = Instant::now();
    let outcome = {
        let mut cache = s.cache();
        let outcome = schedule_with(&info, &cache, next_start, rng, &s.options);
        if let Ok(result) = &outcome
            && let Err(e) = cache.assume_pod(&info, &result.node_name, Instant::now())
        {
            tracing::warn!(pod = %attempt.key, error = %e, "assuming the pod failed");
            drop(cache);
            s.queue.retry(&attempt.key);
            return;
        }
        outcome
    };
    s.metrics.attempts.fetch_add(1, Ordering::Relaxed);
    s.metrics.algorithm_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    match outcome {
        Ok(result) => {
            tracing::debug!(pod = %attempt.key, node = %result.node_name, evaluated = result.evaluated, feasible = result.feasible, "assumed");
            let message = result.event_message(&info);
            tokio::spawn(bind(s.clone(), pod, attempt.key.clone(), result.node_name, message));
        }
        Err(fit) => {
            s.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
            tracing::info!(pod = %attempt.key, reason = %fit, "unschedulable");
            s.queue.unschedulable(attempt, info.has_pod_affinity_terms());
            s.recorder.record(pod.as_ref(), EventType::Warning, EVENT_REASON_FAILED_SCHEDULING, &fit.message());
            tokio::spawn(mark_unschedulable(s.clone(), pod, fit));
        }
    }
}

/// Writes the Binding of an assumed pod; on failure the assumption is undone.
async fn bind(s: Arc<Scheduler>, pod: Arc<Pod>, key: String, node: String, message: String) {
    let Ok(_permit) = s.binds.acquire().await else { return };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match s.client.api::<Pod>(Some(&namespace)).create_subresource(&name, "binding", &binding).await {
        Ok(_) => {
            s.cache().finish_binding(&key, Instant::now());
            s.queue.forget(&key);
            s.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
            s.recorder.record(pod.as_ref(), EventType::Normal, EVENT_REASON_SCHEDULED, &message);
        }
        Err(e) => {
            s.metrics.bind_errors.fetch_add(1, Ordering::Relaxed);
            let _ = s.cache().forget_pod(&key);
            // Deleted, or bound meanwhile (the informer will say so): nothing to retry.
            if e.is_not_found() || e.is_conflict() {
                tracing::info!(pod = %key, error = %e, "binding not needed any more");
            } else {
                tracing::warn!(pod = %key, node = %node, error = %e, "binding failed; retrying");
                s.queue.retry(&key);
            }
        }
    }
}

/// Sets PodScheduled=False with the reason the pod fits nowhere, unless it already says so.
async fn mark_unschedulable(s: Arc<Scheduler>, pod: Arc<Pod>, fit: FitError) {
    let message = fit.message();
    let current = pod
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message.as_str())) {
        return;
    }
    let condition = fit.condition(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
    // PodCondition's list is merged by `type`, so this replaces only PodScheduled.
    let patch = json!({"status": {"conditions": [condition]}});
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Err(e) = s.client.api::<Pod>(Some(namespace)).patch_status(name, PatchType::StrategicMerge, &patch).await
        && !e.is_not_found()
    {
        tracing::warn!(pod = %name, error = %e, "updating PodScheduled failed");
    }
}

/// Drops assumed pods whose binding was never confirmed, so their room is not held forever.
async fn expire_assumed(s: Arc<Scheduler>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let expired = s.cache().cleanup_expired_assumed(Instant::now());
        if !expired.is_empty() {
            tracing::warn!(pods = ?expired, "assumed pods expired without confirmation");
            for key in &expired {
                s.queue.retry(key);
            }
        }
    }
}

fn metrics_text(m: &Metrics) -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "# TYPE scheduler_schedule_attempts_total counter\n\
         scheduler_schedule_attempts_total{{result=\"scheduled\"}} {}\n\
         scheduler_schedule_attempts_total{{result=\"unschedulable\"}} {}\n\
         scheduler_schedule_attempts_total{{result=\"error\"}} {}\n\
         # TYPE scheduler_scheduling_algorithm_duration_seconds summary\n\
         scheduler_scheduling_algorithm_duration_seconds_sum {}\n\
         scheduler_scheduling_algorithm_duration_seconds_count {}\n",
        get(&m.scheduled),
        get(&m.unschedulable),
        get(&m.bind_errors),
        get(&m.algorithm_micros) as f64 / 1e6,
        get(&m.attempts),
    )
}
