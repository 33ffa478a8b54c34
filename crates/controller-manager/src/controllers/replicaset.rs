//! ReplicaSet (apps/v1) and ReplicationController (core/v1) controller: keeps `spec.replicas`
//! active pods from `spec.template` for every owner, adopting matching orphans and releasing
//! owned pods that stop matching, creating in slow-start batches and deleting the least useful
//! pods first, and reports the counts in status. One generic implementation serves both kinds
//! through [`ReplicaOwner`].

mod rank;
mod status;

use crate::expectations::Expectations;
use crate::informers::{Object, SharedInformers};
use crate::objects::{Selector, controller_of, controller_reference, pod_active};
use crate::{Action, Context, Controller, Error, Registration};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{ClientError, DeleteParams, Event, EventType, PatchType, Store, WorkQueue, object_key};
use serde_json::json;
use status::{ReplicaStatus, Spec};
use std::collections::HashSet;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// Most pods created or deleted for one owner in one sync (Kubernetes' BurstReplicas).
pub const BURST_REPLICAS: usize = 500;
/// Size of the first creation batch; each later batch doubles (Kubernetes' slowStartBatch).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// What the controller needs to know about a ReplicaSet or a ReplicationController.
pub trait ReplicaOwner: Object + Clone {
    /// The controller's `--controllers` name.
    const CONTROLLER: &'static str;
    /// Desired replicas (default 1).
    fn replicas(&self) -> i32;
    /// Seconds a pod must be Ready to count as available.
    fn min_ready_seconds(&self) -> i32;
    /// The pods this owner manages.
    fn selector(&self) -> Selector;
    /// The template new pods are made from.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status, serialized (both kinds share the field names).
    fn status_json(&self) -> Option<serde_json::Value>;
}

impl ReplicaOwner for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    fn selector(&self) -> Selector {
        Selector::new(self.spec.as_ref().map(|s| &s.selector))
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn status_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.status.as_ref()?).ok()
    }
}

impl ReplicaOwner for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }

    /// The map selector; an empty one means the template's labels, as the API defaults it.
    fn selector(&self) -> Selector {
        let spec = self.spec.as_ref();
        let own = spec.and_then(|s| s.selector.as_ref()).filter(|m| !m.is_empty());
        let from_template = || self.template().and_then(|t| t.metadata.as_ref()?.labels.as_ref());
        Selector::from_map(own.or_else(from_template).filter(|m| !m.is_empty()))
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn status_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.status.as_ref()?).ok()
    }
}

/// Keeps the pods of every `K` (ReplicaSet or ReplicationController).
pub struct ReplicaController<K> {
    ctx: Context,
    owners: Store<K>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    kind: PhantomData<fn() -> K>,
}

/// Registers the ReplicaSet controller.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    register_kind::<ReplicaSet>(ctx, informers)
}

/// Registers the ReplicationController controller.
pub fn register_rc(ctx: &Context, informers: &SharedInformers) -> Registration {
    register_kind::<ReplicationController>(ctx, informers)
}

fn register_kind<K: ReplicaOwner>(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let owners: Store<K> = informers.store();
    let expectations = Arc::new(Expectations::default());

    let (q, t) = (queue.clone(), expectations.clone());
    informers.on_event::<K>(move |e| match e {
        Event::Added(o) => q.add(object_key(o.metadata())),
        Event::Updated { old, new } => {
            let key = object_key(new.metadata());
            // Same name, new object: the old one's expectations no longer apply.
            if old.metadata().uid != new.metadata().uid {
                t.forget(&key);
            }
            q.add(key);
        }
        Event::Deleted(o) => {
            let key = object_key(o.metadata());
            t.forget(&key);
            q.add(key);
        }
    });

    let (q, t, o) = (queue.clone(), expectations.clone(), owners.clone());
    informers.on_event::<Pod>(move |e| on_pod_event(e, &o, &t, &q));

    let controller =
        ReplicaController::<K> { ctx: ctx.clone(), owners, pods: informers.store(), expectations, kind: PhantomData };
    Registration::new(Arc::new(controller), queue)
}

/// The key of the `K` a controller reference points at, if that exact object (uid) is cached.
fn resolve<K: ReplicaOwner>(owners: &Store<K>, namespace: &str, r: &OwnerReference) -> Option<String> {
    if r.kind != K::KIND {
        return None;
    }
    let key = format!("{namespace}/{}", r.name);
    let owner = owners.get(&key)?;
    (owner.metadata().uid.as_deref() == Some(r.uid.as_str())).then_some(key)
}

/// Owners in the pod's namespace whose selector matches it (candidates to adopt an orphan).
fn matching_owners<K: ReplicaOwner>(owners: &Store<K>, pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    owners
        .by_index(NAMESPACE_INDEX, ns)
        .into_iter()
        .filter(|o| o.selector().matches(pod.metadata.labels.as_ref()))
        .map(|o| object_key(o.metadata()))
        .collect()
}

/// Pod changes: observe expectations and queue the owners affected (Kubernetes' add/update/
/// deletePod handlers).
fn on_pod_event<K: ReplicaOwner>(
    e: &Event<Pod>,
    owners: &Store<K>,
    expectations: &Expectations,
    queue: &WorkQueue<String>,
) {
    let ns = |p: &Pod| p.metadata.namespace.clone().unwrap_or_default();
    // A pod that is going (deletionTimestamp) or gone: one deletion observed.
    let gone = |pod: &Pod| {
        if let Some(key) = controller_of(&pod.metadata).and_then(|r| resolve(owners, &ns(pod), r)) {
            expectations.pod_deletion_observed(&key, &object_key(&pod.metadata));
            queue.add(key);
        }
    };
    match e {
        Event::Added(pod) => {
            if pod.metadata.deletion_timestamp.is_some() {
                return gone(pod);
            }
            if let Some(r) = controller_of(&pod.metadata) {
                if let Some(key) = resolve(owners, &ns(pod), r) {
                    expectations.creation_observed(&key);
                    queue.add(key);
                }
                return;
            }
            matching_owners(owners, pod).into_iter().for_each(|k| queue.add(k));
        }
        Event::Updated { old, new } => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return;
            }
            let labels_changed = old.metadata.labels != new.metadata.labels;
            if new.metadata.deletion_timestamp.is_some() {
                gone(new);
                if labels_changed {
                    gone(old);
                }
                return;
            }
            let (old_ref, new_ref) = (controller_of(&old.metadata), controller_of(&new.metadata));
            let ref_changed = old_ref != new_ref;
            if ref_changed && let Some(key) = old_ref.and_then(|r| resolve(owners, &ns(old), r)) {
                queue.add(key);
            }
            if let Some(r) = new_ref {
                if let Some(key) = resolve(owners, &ns(new), r) {
                    queue.add(key);
                }
                return;
            }
            if labels_changed || ref_changed {
                matching_owners(owners, new).into_iter().for_each(|k| queue.add(k));
            }
        }
        Event::Deleted(pod) => gone(pod),
    }
}

/// Runs `count` calls of `f` in batches of 1, 2, 4, ... (each batch concurrently), stopping
/// after the first batch with a failure, so a create that will fail for every pod (quota, an
/// invalid template) fails once rather than `count` times. Returns the successes and the
/// first error.
async fn slow_start<F, Fut>(count: usize, initial: usize, f: F) -> (usize, Option<Error>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let (mut remaining, mut successes) = (count, 0);
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        let results = join_all((0..batch).map(|_| f())).await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
        remaining -= batch;
        batch = remaining.min(2 * batch);
    }
    (successes, None)
}

/// A pod made from `template` for `owner` (Kubernetes' GetPodFromTemplate).
fn pod_from_template<K: ReplicaOwner>(owner: &K, template: &PodTemplateSpec) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let name = owner.metadata().name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: owner.metadata().namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_reference(owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

impl<K: ReplicaOwner> Controller for ReplicaController<K> {
    fn name(&self) -> &'static str {
        K::CONTROLLER
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(owner) = self.owners.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        // Dependents of an owner being deleted are the garbage collector's business.
        if owner.metadata().deletion_timestamp.is_some() {
            self.expectations.forget(key);
            return Ok(Action::Done);
        }
        // Checked before the pods are read, as Kubernetes does: a pod observed in between is
        // then already in the cache when the diff is computed.
        let needs_sync = self.expectations.satisfied(key);
        let namespace = owner.metadata().namespace.clone().unwrap_or_default();
        let active: Vec<Arc<Pod>> =
            self.pods.by_index(NAMESPACE_INDEX, &namespace).into_iter().filter(|p| pod_active(p)).collect();
        let pods = self.claim(&owner, active).await?;

        let managed = if needs_sync { self.manage(key, &owner, &pods).await } else { Ok(()) };
        let message = managed.as_ref().err().map(|e| e.to_string());

        let now = jiff::Timestamp::now();
        let template_labels = owner.template().and_then(|t| t.metadata.as_ref()?.labels.as_ref());
        let spec = Spec {
            replicas: owner.replicas(),
            min_ready_seconds: owner.min_ready_seconds(),
            template_labels,
            generation: owner.metadata().generation.unwrap_or(0),
        };
        let old = ReplicaStatus::from_object_status(owner.status_json());
        let outcome = match &message {
            Some(m) => Err(m.as_str()),
            None => Ok(()),
        };
        let new = status::compute(&old, &spec, &pods, outcome, now);
        if new != old {
            let name = owner.metadata().name.clone().unwrap_or_default();
            let api = self.ctx.client.api::<K>(Some(&namespace));
            match api.patch_status(&name, PatchType::Merge, &new.to_patch()).await {
                Ok(_) => tracing::debug!(
                    kind = K::KIND,
                    key,
                    replicas = new.replicas,
                    ready = new.ready_replicas,
                    available = new.available_replicas,
                    "status updated"
                ),
                Err(e) if e.is_not_found() => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
        }
        managed?;
        Ok(match status::next_availability(&pods, spec.min_ready_seconds, now) {
            Some(after) => Action::RequeueAfter(after),
            None => Action::Done,
        })
    }
}

impl<K: ReplicaOwner> ReplicaController<K> {
    /// Kubernetes' ClaimPods: keeps the owned pods that still match, adopts matching orphans
    /// and releases owned pods that no longer match. Returns the pods the owner now controls.
    async fn claim(&self, owner: &K, active: Vec<Arc<Pod>>) -> Result<Vec<Arc<Pod>>, Error> {
        let uid = owner.metadata().uid.clone().unwrap_or_default();
        let selector = owner.selector();
        let mut owned = Vec::new();
        let mut orphans = Vec::new();
        for pod in active {
            let matches = selector.matches(pod.metadata.labels.as_ref());
            match controller_of(&pod.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(pod);
                    } else {
                        self.release(owner, &pod).await?;
                    }
                }
                Some(_) => {}
                None if matches => orphans.push(pod),
                None => {}
            }
        }
        if orphans.is_empty() || !self.can_adopt(owner).await? {
            return Ok(owned);
        }
        for pod in orphans {
            if let Some(adopted) = self.adopt(owner, &pod).await? {
                owned.push(Arc::new(adopted));
            }
        }
        Ok(owned)
    }

    /// Adoption needs the live owner, not the cache: one being deleted (or replaced under the
    /// same name) must not take pods the garbage collector is about to handle.
    async fn can_adopt(&self, owner: &K) -> Result<bool, Error> {
        let meta = owner.metadata();
        let api = self.ctx.client.api::<K>(meta.namespace.as_deref());
        let live = api.get_opt(meta.name.as_deref().unwrap_or_default()).await?;
        Ok(live.is_some_and(|l| l.metadata().uid == meta.uid && l.metadata().deletion_timestamp.is_none()))
    }

    /// Adds the controller reference to an orphan; the resourceVersion in the patch makes it
    /// fail if the pod changed since it was read (another controller may be adopting it).
    async fn adopt(&self, owner: &K, pod: &Pod) -> Result<Option<Pod>, Error> {
        let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
        refs.push(controller_reference(owner));
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        match self.patch_pod(pod, &patch).await {
            Ok(p) => {
                tracing::info!(kind = K::KIND, owner = ?owner.metadata().name, pod = ?pod.metadata.name, "adopted pod");
                Ok(Some(p))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the owner's reference from a pod that no longer matches its selector.
    async fn release(&self, owner: &K, pod: &Pod) -> Result<(), Error> {
        let uid = owner.metadata().uid.clone().unwrap_or_default();
        let refs: Vec<_> = pod.metadata.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
        let refs = if refs.is_empty() { serde_json::Value::Null } else { json!(refs) };
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        match self.patch_pod(pod, &patch).await {
            Ok(_) => {
                tracing::info!(kind = K::KIND, owner = ?owner.metadata().name, pod = ?pod.metadata.name, "released pod");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn patch_pod(&self, pod: &Pod, patch: &serde_json::Value) -> Result<Pod, ClientError> {
        let api = self.ctx.client.api::<Pod>(pod.metadata.namespace.as_deref());
        api.patch(pod.metadata.name.as_deref().unwrap_or_default(), PatchType::Merge, patch).await
    }

    /// Kubernetes' manageReplicas: creates or deletes (at most [`BURST_REPLICAS`]) pods so
    /// the owner has `replicas` active ones, recording expectations first.
    async fn manage(&self, key: &str, owner: &K, pods: &[Arc<Pod>]) -> Result<(), Error> {
        let want = usize::try_from(owner.replicas().max(0)).unwrap_or(0);
        if pods.len() < want {
            let count = (want - pods.len()).min(BURST_REPLICAS);
            let Some(template) = owner.template() else {
                return Err(Error::Invalid(format!("{} {key} has no pod template", K::KIND)));
            };
            let pod = pod_from_template(owner, template);
            self.expectations.expect(key, count as i64, 0);
            let (created, err) = slow_start(count, SLOW_START_INITIAL_BATCH, || self.create(owner, &pod)).await;
            // Creations never made are never observed.
            for _ in created..count {
                self.expectations.creation_observed(key);
            }
            tracing::info!(kind = K::KIND, key, want, have = pods.len(), created, "created pods");
            return err.map_or(Ok(()), Err);
        }
        if pods.len() > want {
            let count = (pods.len() - want).min(BURST_REPLICAS);
            let mut ranked = pods.to_vec();
            rank::order_for_deletion(&mut ranked, &self.related_pods(owner), jiff::Timestamp::now());
            let victims = &ranked[..count];
            self.expectations.expect_deletions(key, 0, victims.iter().map(|p| object_key(&p.metadata)).collect());
            let results = join_all(victims.iter().map(|p| self.delete(key, owner, p))).await;
            tracing::info!(kind = K::KIND, key, want, have = pods.len(), deleting = count, "deleted pods");
            return results.into_iter().find_map(Result::err).map_or(Ok(()), Err);
        }
        Ok(())
    }

    async fn create(&self, owner: &K, pod: &Pod) -> Result<(), Error> {
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            let e = Error::Invalid("unable to create pods, no labels".into());
            self.ctx.recorder.record(owner, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
            return Err(e);
        }
        let api = self.ctx.client.api::<Pod>(pod.metadata.namespace.as_deref());
        match api.create(pod).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                self.ctx.recorder.record(owner, EventType::Normal, "SuccessfulCreate", &format!("Created pod: {name}"));
                Ok(())
            }
            // A terminating namespace takes no new pods; that is not the owner's failure.
            Err(e) if e.code() == Some(403) && e.to_string().contains("being terminated") => Ok(()),
            Err(e) => {
                self.ctx.recorder.record(owner, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"));
                Err(e.into())
            }
        }
    }

    async fn delete(&self, key: &str, owner: &K, pod: &Pod) -> Result<(), Error> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api = self.ctx.client.api::<Pod>(pod.metadata.namespace.as_deref());
        // The uid precondition keeps a new pod that reused the name safe.
        let params = DeleteParams { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
        match api.delete(name, &params).await {
            Ok(()) => {
                self.ctx.recorder.record(owner, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}"));
                Ok(())
            }
            Err(e) => {
                // This deletion will never be observed.
                self.expectations.pod_deletion_observed(key, &object_key(&pod.metadata));
                if e.is_not_found() || e.is_conflict() {
                    return Ok(());
                }
                self.ctx.recorder.record(owner, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"));
                Err(e.into())
            }
        }
    }

    /// Pods of every owner that shares this owner's controller (e.g. all ReplicaSets of a
    /// Deployment), to spread a scale-down across nodes; none when the owner has no controller.
    fn related_pods(&self, owner: &K) -> Vec<Arc<Pod>> {
        let Some(parent) = controller_of(owner.metadata()) else { return Vec::new() };
        let namespace = owner.metadata().namespace.as_deref().unwrap_or_default();
        let siblings: HashSet<String> = self
            .owners
            .by_index(NAMESPACE_INDEX, namespace)
            .into_iter()
            .filter(|o| controller_of(o.metadata()).is_some_and(|r| r.uid == parent.uid))
            .filter_map(|o| o.metadata().uid.clone())
            .collect();
        self.pods
            .by_index(NAMESPACE_INDEX, namespace)
            .into_iter()
            .filter(|p| controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_the_first_failing_batch() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(30, 1, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!((ok, err.is_none(), calls.load(Ordering::SeqCst)), (30, true, 30));

        // Batches 1, 2, 4, 8: the 10th call fails, so the batch of 8 finishes and nothing more runs.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(30, 1, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 9 { Err(Error::Invalid("quota".into())) } else { Ok(()) }
        })
        .await;
        assert_eq!((ok, err.is_some(), calls.load(Ordering::SeqCst)), (14, true, 15));
    }
}
