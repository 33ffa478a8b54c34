//! DaemonSet (apps/v1) controller: one pod per eligible node (nodeSelector, required node
//! affinity, taints against the pod's tolerations plus the automatic daemon tolerations), each
//! pinned to its node by a `metadata.name` matchFields affinity and placed by the scheduler.
//! Extra pods on a node, pods on nodes that stopped fitting and finished pods are deleted
//! (failed ones with per-node back-off); templates are rolled out by RollingUpdate
//! (maxUnavailable) or OnDelete, tracked through ControllerRevisions; status carries the
//! counts `kubectl rollout status` reads.

pub mod placement;
mod update;

use crate::controllers::history::{self, Ensured, REVISION_LABEL};
use crate::expectations::Expectations;
use crate::informers::SharedInformers;
use crate::objects::{Selector, controller_reference, is_controlled_by, pod_available, pod_ready};
use crate::{Action, Context, Controller, Error, Registration};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use placement::{Fit, add_daemon_tolerations, node_fit, pin_to_node, target_node};
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{DeleteParams, Event, EventType, PatchType, Store, WorkQueue, object_key};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pod label with the DaemonSet template generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Annotation the API keeps the DaemonSet template generation in (apps/v1 has no field).
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// First and longest wait before replacing a failed daemon pod on the same node again.
const FAILED_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(15 * 60));

/// Keeps one pod of every DaemonSet on each node that should run it.
pub struct DaemonSetController {
    ctx: Context,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    /// Per `<ds key>/<node>`: when a failed pod was last replaced and the wait before the next.
    backoff: Mutex<HashMap<String, (Instant, Duration)>>,
}

/// Queues a DaemonSet on changes to it, its pods, and any node.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let sets: Store<DaemonSet> = informers.store();
    let expectations = Arc::new(Expectations::default());

    let (q, t) = (queue.clone(), expectations.clone());
    informers.on_event::<DaemonSet>(move |e| match e {
        Event::Added(ds) => q.add(object_key(&ds.metadata)),
        Event::Updated { old, new } => {
            let key = object_key(&new.metadata);
            if old.metadata.uid != new.metadata.uid {
                t.forget(&key);
            }
            q.add(key);
        }
        Event::Deleted(ds) => {
            let key = object_key(&ds.metadata);
            t.forget(&key);
            q.add(key);
        }
    });

    let (q, t, s) = (queue.clone(), expectations.clone(), sets.clone());
    informers.on_event::<Pod>(move |e| {
        let owner = |p: &Pod| {
            let key = crate::objects::controller_key(&p.metadata, "DaemonSet")?;
            let ds = s.get(&key)?;
            let uid = ds.metadata.uid.clone().unwrap_or_default();
            is_controlled_by(&p.metadata, &uid).then_some(key)
        };
        match e {
            Event::Added(pod) => {
                if let Some(key) = owner(pod) {
                    if pod.metadata.deletion_timestamp.is_some() {
                        t.pod_deletion_observed(&key, &object_key(&pod.metadata));
                    } else {
                        t.creation_observed(&key);
                    }
                    q.add(key);
                }
            }
            Event::Updated { old, new } => {
                if let Some(key) = owner(new) {
                    if new.metadata.deletion_timestamp.is_some() {
                        t.pod_deletion_observed(&key, &object_key(&new.metadata));
                    }
                    q.add(key);
                }
                if let Some(key) = owner(old) {
                    q.add(key);
                }
            }
            Event::Deleted(pod) => {
                if let Some(key) = owner(pod) {
                    t.pod_deletion_observed(&key, &object_key(&pod.metadata));
                    q.add(key);
                }
            }
        }
    });

    let (q, s) = (queue.clone(), sets.clone());
    informers.on_event::<Node>(move |e| {
        let relevant = match e {
            Event::Updated { old, new } => {
                old.metadata.labels != new.metadata.labels
                    || old.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints)
            }
            Event::Added(_) | Event::Deleted(_) => true,
        };
        if relevant {
            s.list().iter().for_each(|ds| q.add(object_key(&ds.metadata)));
        }
    });

    let controller = DaemonSetController {
        ctx: ctx.clone(),
        sets,
        pods: informers.store(),
        nodes: informers.store(),
        revisions: informers.store(),
        expectations,
        backoff: Mutex::default(),
    };
    Registration::new(Arc::new(controller), queue)
}

/// The template generation pods are labelled with: the API's annotation, else the
/// DaemonSet's generation (which only moves when the spec does).
fn template_generation(ds: &DaemonSet) -> String {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| ds.metadata.generation.unwrap_or(0).to_string())
}

/// Whether `pod` runs the current template (by revision hash or template generation).
fn pod_updated(pod: &Pod, hash: &str, generation: &str) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(REVISION_LABEL) == Some(hash) || label(TEMPLATE_GENERATION_LABEL) == Some(generation)
}

/// How long until a Ready pod has been Ready for `min_ready` seconds (at least a second).
pub(crate) fn until_available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> Duration {
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map_or(now.as_second(), |t| t.0.as_second());
    let left = since + i64::from(min_ready) - now.as_second();
    Duration::from_secs(u64::try_from(left).unwrap_or(0).max(1))
}

/// Oldest first (creation time, then name), the order Kubernetes keeps daemon pods in.
fn by_age(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let at = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (at(a), &a.metadata.name).cmp(&(at(b), &b.metadata.name))
    });
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// A DaemonSet's state for one sync: what it is, what it owns, and where.
struct Snapshot {
    key: String,
    ds: Arc<DaemonSet>,
    /// The template with the daemon tolerations, as pods get it (before the node pin).
    template: PodTemplateSpec,
    hash: String,
    /// Name of the current ControllerRevision.
    revision: String,
    generation: String,
    /// Owned pods by the node they are for.
    by_node: HashMap<String, Vec<Arc<Pod>>>,
    nodes: Vec<Arc<Node>>,
    /// Unscheduled owned pods whose node no longer exists.
    orphaned: Vec<Arc<Pod>>,
}

impl Snapshot {
    fn fit(&self, node: &Node) -> Fit {
        match &self.template.spec {
            Some(spec) => node_fit(spec, node),
            None => Fit { should_run: false, should_continue: false },
        }
    }
}

impl Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(ds) = self.sets.get(key) else {
            self.expectations.forget(key);
            self.backoff.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| !k.starts_with(&format!("{key}/")));
            return Ok(Action::Done);
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let selector = Selector::new(ds.spec.as_ref().map(|s| &s.selector));
        if selector.is_empty() {
            self.ctx.recorder.record(
                ds.as_ref(),
                EventType::Warning,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(Action::Done);
        }
        let Some((hash, revision)) = self.sync_history(&ds).await? else {
            // A hash collision: status.collisionCount was bumped; the update requeues us.
            return Ok(Action::Done);
        };
        let satisfied = self.expectations.satisfied(key);
        let snap = self.snapshot(key, ds, &selector, hash, revision);

        let mut requeue = None;
        if satisfied {
            let (changed, wait) = self.manage(&snap).await?;
            requeue = wait;
            let rolling =
                snap.ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|s| s.type_.as_deref())
                    != Some("OnDelete");
            if !changed && rolling {
                let doomed = update::old_pods_to_replace(&snap, jiff::Timestamp::now());
                self.sync_nodes(&snap, Vec::new(), doomed).await?;
            }
            self.prune_history(&snap).await?;
        }
        let available_wait = self.update_status(&snap).await?;
        Ok(match (requeue, available_wait) {
            (Some(a), Some(b)) => Action::RequeueAfter(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Action::RequeueAfter(a),
            (None, None) => Action::Done,
        })
    }
}

impl DaemonSetController {
    /// Makes sure a ControllerRevision for the current template exists; returns its hash, or
    /// None after bumping collisionCount.
    async fn sync_history(&self, ds: &DaemonSet) -> Result<Option<(String, String)>, Error> {
        let template = ds.spec.as_ref().map(|s| &s.template);
        let template_json = serde_json::to_value(template).unwrap_or_default();
        let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = history::hash(&template_json, collisions);
        let mut patched = template_json;
        if let Some(obj) = patched.as_object_mut() {
            obj.insert("$patch".into(), json!("replace"));
        }
        let data = json!({"spec": {"template": patched}});
        let existing = history::owned(&self.revisions, ds);
        let labels = ds.spec.as_ref().and_then(|s| s.template.metadata.as_ref()?.labels.as_ref());
        match history::ensure(&self.ctx.client, ds, &existing, data, &hash, labels).await? {
            Ensured::Current(rev) => {
                let label = rev.metadata.labels.as_ref().and_then(|l| l.get(history::HASH_LABEL)).cloned();
                Ok(Some((label.unwrap_or(hash), rev.metadata.name.unwrap_or_default())))
            }
            Ensured::Collision => {
                let next = collisions.unwrap_or(0) + 1;
                let ns = ds.metadata.namespace.clone().unwrap_or_default();
                let name = ds.metadata.name.clone().unwrap_or_default();
                self.ctx
                    .client
                    .api::<DaemonSet>(Some(&ns))
                    .patch_status(&name, PatchType::Merge, &json!({"status": {"collisionCount": next}}))
                    .await?;
                tracing::info!(namespace = %ns, daemonset = %name, collision_count = next, "revision hash collision");
                Ok(None)
            }
        }
    }

    fn snapshot(&self, key: &str, ds: Arc<DaemonSet>, selector: &Selector, hash: String, revision: String) -> Snapshot {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let mut template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        if let Some(spec) = template.spec.as_mut() {
            add_daemon_tolerations(spec);
        }
        let nodes = self.nodes.list();
        let names: HashSet<&str> = nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        let mut orphaned = Vec::new();
        for pod in self.pods.by_index(NAMESPACE_INDEX, &ns) {
            if !is_controlled_by(&pod.metadata, &uid) || !selector.matches(pod.metadata.labels.as_ref()) {
                continue;
            }
            let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
            match target_node(&pod) {
                Some(node) if names.contains(node.as_str()) => by_node.entry(node).or_default().push(pod),
                // A bound pod of a vanished node is the pod garbage collector's.
                _ if !bound && pod.metadata.deletion_timestamp.is_none() => orphaned.push(pod),
                _ => {}
            }
        }
        by_node.values_mut().for_each(|pods| by_age(pods));
        let generation = template_generation(&ds);
        Snapshot { key: key.to_string(), ds, template, hash, revision, generation, by_node, nodes, orphaned }
    }

    /// Creates pods on nodes that should run one and have none; deletes pods where they do
    /// not belong, extra pods and finished pods. Returns whether it changed anything, and
    /// when to look again for a failed pod still in back-off.
    async fn manage(&self, snap: &Snapshot) -> Result<(bool, Option<Duration>), Error> {
        let mut create = Vec::new();
        let mut delete: Vec<Arc<Pod>> = snap.orphaned.clone();
        let mut wait: Option<Duration> = None;
        let now = Instant::now();
        for node in &snap.nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let fit = snap.fit(node);
            let pods = snap.by_node.get(&name).map(Vec::as_slice).unwrap_or_default();
            if fit.should_run && pods.is_empty() {
                create.push(name);
            } else if fit.should_continue {
                let mut running = Vec::new();
                for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                    match phase(pod) {
                        Some("Failed") => {
                            let backoff_key = format!("{}/{name}", snap.key);
                            if let Some(left) = self.in_backoff(&backoff_key, now) {
                                wait = Some(wait.map_or(left, |w| w.min(left)));
                                continue;
                            }
                            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                            self.ctx.recorder.record(
                                snap.ds.as_ref(),
                                EventType::Warning,
                                "FailedDaemonPod",
                                &format!(
                                    "Found failed daemon pod {}/{pod_name} on node {name}, will try to kill it",
                                    pod.metadata.namespace.as_deref().unwrap_or_default()
                                ),
                            );
                            delete.push(pod.clone());
                        }
                        Some("Succeeded") => delete.push(pod.clone()),
                        _ => running.push(pod.clone()),
                    }
                }
                // With no surge, one pod per node: keep the oldest.
                delete.extend(running.into_iter().skip(1));
            } else {
                delete.extend(pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).cloned());
            }
        }
        let changed = !create.is_empty() || !delete.is_empty();
        self.sync_nodes(snap, create, delete).await?;
        Ok((changed, wait))
    }

    /// Remaining back-off for replacing a failed pod at `key`, or None after recording a
    /// replacement now (the wait doubles each time, up to 15 minutes).
    fn in_backoff(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        match backoff.get(key).copied() {
            Some((last, delay)) if now < last + delay => Some(last + delay - now),
            Some((_, delay)) => {
                backoff.insert(key.to_string(), (now, (delay * 2).min(FAILED_BACKOFF.1)));
                None
            }
            None => {
                backoff.insert(key.to_string(), (now, FAILED_BACKOFF.0));
                None
            }
        }
    }

    /// Creates a pod for each node in `create` and deletes `delete`, under expectations.
    async fn sync_nodes(&self, snap: &Snapshot, create: Vec<String>, delete: Vec<Arc<Pod>>) -> Result<(), Error> {
        if create.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let deleting: HashSet<String> = delete.iter().map(|p| object_key(&p.metadata)).collect();
        self.expectations.expect_deletions(&snap.key, create.len() as i64, deleting);
        let ns = snap.ds.metadata.namespace.clone().unwrap_or_default();
        let pods = self.ctx.client.api::<Pod>(Some(&ns));
        let mut first_error: Option<Error> = None;

        // Slow start: batches of 1, 2, 4, ... so a create that fails for all fails once.
        let (mut batch, mut rest) = (1usize, create.as_slice());
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let results = join_all(now.iter().map(|node| {
                let pod = self.new_pod(snap, node);
                let pods = pods.clone();
                async move { (node, pods.create(&pod).await) }
            }))
            .await;
            for (node, r) in results {
                match r {
                    Ok(p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        tracing::info!(daemonset = %snap.key, pod = %name, node = %node, "created daemon pod");
                        self.ctx.recorder.record(
                            snap.ds.as_ref(),
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        self.expectations.creation_observed(&snap.key);
                        self.ctx.recorder.record(
                            snap.ds.as_ref(),
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                        );
                        first_error.get_or_insert(e.into());
                    }
                }
            }
            if first_error.is_some() {
                // The rest will not be created now: stop expecting them.
                later.iter().for_each(|_| self.expectations.creation_observed(&snap.key));
                break;
            }
            rest = later;
            batch *= 2;
        }

        let results = join_all(delete.iter().map(|pod| {
            let pods = pods.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let r = pods.delete(&name, &DeleteParams::default()).await;
                (pod, name, r)
            }
        }))
        .await;
        for (pod, name, r) in results {
            match r {
                Ok(()) => {
                    tracing::info!(daemonset = %snap.key, pod = %name, "deleted daemon pod");
                    self.ctx.recorder.record(
                        snap.ds.as_ref(),
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    );
                }
                Err(e) => {
                    self.expectations.pod_deletion_observed(&snap.key, &object_key(&pod.metadata));
                    if !e.is_not_found() {
                        self.ctx.recorder.record(
                            snap.ds.as_ref(),
                            EventType::Warning,
                            "FailedDelete",
                            &format!("Error deleting: {e}"),
                        );
                        first_error.get_or_insert(e.into());
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The daemon pod for `node`: the template with the daemon tolerations, pinned to the
    /// node, labelled with the revision hash and template generation.
    fn new_pod(&self, snap: &Snapshot, node: &str) -> Pod {
        let meta = snap.template.metadata.clone().unwrap_or_default();
        let mut labels: BTreeMap<String, String> = meta.labels.unwrap_or_default();
        labels.insert(REVISION_LABEL.into(), snap.hash.clone());
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), snap.generation.clone());
        let mut spec = snap.template.spec.clone().unwrap_or_default();
        pin_to_node(&mut spec, node);
        Pod {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", snap.ds.metadata.name.as_deref().unwrap_or_default())),
                namespace: snap.ds.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: meta.annotations,
                finalizers: meta.finalizers,
                owner_references: Some(vec![controller_reference(snap.ds.as_ref())]),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    /// Deletes revisions beyond revisionHistoryLimit that no live pod runs.
    async fn prune_history(&self, snap: &Snapshot) -> Result<(), Error> {
        let limit = snap.ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
        let revisions = history::owned(&self.revisions, snap.ds.as_ref());
        if revisions.len() <= usize::try_from(limit).unwrap_or(0) + 1 {
            return Ok(());
        }
        let live: HashSet<String> = snap
            .by_node
            .values()
            .flatten()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_LABEL).cloned())
            .collect();
        history::prune(&self.ctx.client, &revisions, &snap.revision, &live, limit).await
    }

    /// Computes status from the caches and writes it if it changed; returns when a Ready pod
    /// becomes available (minReadySeconds), to look again then.
    async fn update_status(&self, snap: &Snapshot) -> Result<Option<Duration>, Error> {
        let min_ready = snap.ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
        let now = jiff::Timestamp::now();
        let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) = (0, 0, 0, 0, 0, 0);
        let mut wait: Option<Duration> = None;
        for node in &snap.nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let fit = snap.fit(node);
            if fit.should_run {
                desired += 1;
            }
            let Some(pod) = snap.by_node.get(&name).and_then(|p| p.first()) else { continue };
            if !fit.should_run {
                misscheduled += 1;
                continue;
            }
            current += 1;
            if pod_ready(pod) {
                ready += 1;
                if pod_available(pod, min_ready, now) {
                    available += 1;
                } else {
                    let left = until_available(pod, min_ready, now);
                    wait = Some(wait.map_or(left, |w| w.min(left)));
                }
            }
            if pod_updated(pod, &snap.hash, &snap.generation) {
                updated += 1;
            }
        }
        let old = snap.ds.status.clone().unwrap_or_default();
        let new = DaemonSetStatus {
            desired_number_scheduled: desired,
            current_number_scheduled: current,
            number_misscheduled: misscheduled,
            number_ready: ready,
            number_available: Some(available),
            number_unavailable: Some(desired - available),
            updated_number_scheduled: Some(updated),
            observed_generation: snap.ds.metadata.generation,
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
        };
        let same = old.desired_number_scheduled == new.desired_number_scheduled
            && old.current_number_scheduled == new.current_number_scheduled
            && old.number_misscheduled == new.number_misscheduled
            && old.number_ready == new.number_ready
            && old.number_available.unwrap_or(0) == available
            && old.number_unavailable.unwrap_or(0) == desired - available
            && old.updated_number_scheduled.unwrap_or(0) == updated
            && old.observed_generation == new.observed_generation;
        if !same {
            let ns = snap.ds.metadata.namespace.clone().unwrap_or_default();
            let name = snap.ds.metadata.name.clone().unwrap_or_default();
            let patch = json!({"status": {
                "desiredNumberScheduled": desired,
                "currentNumberScheduled": current,
                "numberMisscheduled": misscheduled,
                "numberReady": ready,
                "numberAvailable": available,
                "numberUnavailable": desired - available,
                "updatedNumberScheduled": updated,
                "observedGeneration": new.observed_generation,
            }});
            match self.ctx.client.api::<DaemonSet>(Some(&ns)).patch_status(&name, PatchType::Merge, &patch).await {
                Ok(_) => {
                    tracing::debug!(daemonset = %snap.key, desired, current, ready, available, updated, "status updated")
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(wait)
    }
}
