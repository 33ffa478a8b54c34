//! StatefulSet (apps/v1) controller: pods with stable ordinal identities `<set>-0..N-1`
//! (hostname, subdomain, identity labels) and stable storage (a PVC per volumeClaimTemplate
//! and ordinal, created before the pod and kept when it goes). OrderedReady creates one pod at
//! a time in ordinal order, each after the previous is Running and Ready, and removes from the
//! highest ordinal down; Parallel does both at once. RollingUpdate replaces pods from the
//! highest ordinal down to `partition`, one at a time, waiting for each to be Ready again;
//! OnDelete leaves that to the user. Revisions are ControllerRevisions; status carries what
//! `kubectl rollout status` reads.

pub mod identity;
pub mod retention;

use crate::controllers::daemonset::until_available;
use crate::controllers::history::{self, Ensured, REVISION_LABEL};
use crate::informers::SharedInformers;
use crate::objects::{Selector, controller_key, is_controlled_by, pod_available, pod_ready};
use crate::{Action, Context, Controller, Error, Registration};
use identity::{claims, new_pod, ordinal, revision_data, template_of};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{DeleteParams, Event, EventType, PatchType, Store, WorkQueue, object_key};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Keeps the ordinal pods and claims of every StatefulSet.
pub struct StatefulSetController {
    ctx: Context,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
}

/// Queues a StatefulSet when it or one of its pods changes.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<StatefulSet>(move |e| match e {
        Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s) => q.add(object_key(&s.metadata)),
    });
    let q = queue.clone();
    informers.on_event::<Pod>(move |e| {
        let (old, new) = match e {
            Event::Added(p) | Event::Deleted(p) => (None, p),
            Event::Updated { old, new } => (Some(old), new),
        };
        for pod in old.into_iter().chain([new]) {
            if let Some(key) = controller_key(&pod.metadata, "StatefulSet") {
                q.add(key);
            }
        }
    });
    let controller = StatefulSetController {
        ctx: ctx.clone(),
        sets: informers.store(),
        pods: informers.store(),
        claims: informers.store(),
        revisions: informers.store(),
    };
    Registration::new(Arc::new(controller), queue)
}

/// A revision by name with the template it holds.
#[derive(Clone)]
struct Revision {
    name: String,
    template: PodTemplateSpec,
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str)
}

/// Running, Ready, and Ready for minReadySeconds: a pod the next step may rely on.
fn healthy(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    phase(pod) == Some("Running") && pod_ready(pod) && !terminating(pod) && pod_available(pod, min_ready, now)
}

/// One sync's view of a set.
struct Plan<'a> {
    key: &'a str,
    set: &'a StatefulSet,
    /// Pods by ordinal.
    pods: &'a BTreeMap<i32, Arc<Pod>>,
    start: i32,
    replicas: i32,
    current: Revision,
    update: Revision,
    min_ready: i32,
    now: jiff::Timestamp,
}

impl Plan<'_> {
    fn strategy(&self) -> &str {
        let s = self.set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        s.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
    }

    /// Pods below the partition are (re)created at the current revision, the rest at the
    /// update revision.
    fn partition(&self) -> i32 {
        let s = self.set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        match s.and_then(|s| s.rolling_update.as_ref()) {
            Some(ru) => ru.partition.unwrap_or(0),
            None => self.set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0),
        }
    }

    fn monotonic(&self) -> bool {
        self.set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) != Some("Parallel")
    }

    fn revision_for(&self, ordinal: i32) -> &Revision {
        if self.strategy() == "RollingUpdate" && ordinal - self.start < self.partition() {
            &self.current
        } else {
            &self.update
        }
    }
}

impl Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(set) = self.sets.get(key) else { return Ok(Action::Done) };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let spec = set.spec.clone().unwrap_or_default();
        let selector = Selector::new(Some(&spec.selector));
        let Some(update) = self.sync_history(&set).await? else { return Ok(Action::Done) };
        let revisions = history::owned(&self.revisions, set.as_ref());
        let current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            .and_then(|name| revisions.iter().find(|r| r.metadata.name.as_deref() == Some(name)))
            .and_then(|r| {
                let template = template_of(&r.data.as_ref()?.0)?;
                Some(Revision { name: r.metadata.name.clone()?, template })
            })
            .unwrap_or_else(|| update.clone());

        let ns = set.metadata.namespace.clone().unwrap_or_default();
        let set_name = set.metadata.name.clone().unwrap_or_default();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let pods: BTreeMap<i32, Arc<Pod>> = self
            .pods
            .by_index(NAMESPACE_INDEX, &ns)
            .into_iter()
            .filter(|p| is_controlled_by(&p.metadata, &uid) && selector.matches(p.metadata.labels.as_ref()))
            .filter_map(|p| Some((ordinal(&set_name, p.metadata.name.as_deref()?)?, p)))
            .collect();
        let plan = Plan {
            key,
            set: set.as_ref(),
            pods: &pods,
            start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
            replicas: spec.replicas.unwrap_or(1),
            current,
            update,
            min_ready: spec.min_ready_seconds.unwrap_or(0),
            now: jiff::Timestamp::now(),
        };
        let synced = self.sync_pods(&plan).await;
        let wait = self.update_status(&plan).await?;
        synced?;
        let mut live: HashSet<String> = pods.values().filter_map(|p| revision_of(p).map(String::from)).collect();
        live.insert(plan.current.name.clone());
        self.prune_history(&plan, &revisions, &live).await?;
        Ok(wait.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl StatefulSetController {
    /// Makes sure the revision of the current template exists; None after a hash collision
    /// (collisionCount bumped, the status update requeues the set).
    async fn sync_history(&self, set: &StatefulSet) -> Result<Option<Revision>, Error> {
        let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let data = revision_data(&template);
        let collisions = set.status.as_ref().and_then(|s| s.collision_count);
        let hash = history::hash(&data, collisions);
        let existing = history::owned(&self.revisions, set);
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        match history::ensure(&self.ctx.client, set, &existing, data, &hash, labels).await? {
            Ensured::Current(rev) => Ok(Some(Revision { name: rev.metadata.name.unwrap_or_default(), template })),
            Ensured::Collision => {
                let next = collisions.unwrap_or(0) + 1;
                let ns = set.metadata.namespace.clone().unwrap_or_default();
                let name = set.metadata.name.clone().unwrap_or_default();
                self.ctx
                    .client
                    .api::<StatefulSet>(Some(&ns))
                    .patch_status(&name, PatchType::Merge, &json!({"status": {"collisionCount": next}}))
                    .await?;
                tracing::info!(namespace = %ns, statefulset = %name, collision_count = next, "revision hash collision");
                Ok(None)
            }
        }
    }

    /// Kubernetes' updateStatefulSet: create missing and replace finished replicas, then
    /// remove condemned pods (highest ordinal first), then roll the update (highest first).
    /// In OrderedReady mode every step waits for the one before to be healthy.
    async fn sync_pods(&self, plan: &Plan<'_>) -> Result<(), Error> {
        let monotonic = plan.monotonic();
        let end = plan.start + plan.replicas.max(0);
        for ord in plan.start..end {
            match plan.pods.get(&ord) {
                None => {
                    let revision = plan.revision_for(ord);
                    self.create(plan, ord, revision).await?;
                    if monotonic {
                        return Ok(());
                    }
                }
                Some(pod) if terminating(pod) => {
                    if monotonic {
                        return Ok(());
                    }
                }
                Some(pod) if matches!(phase(pod), Some("Failed" | "Succeeded")) => {
                    // Recreated once it is gone.
                    self.delete(plan, pod).await?;
                    if monotonic {
                        return Ok(());
                    }
                }
                Some(pod) => {
                    self.update_claim_owners(plan, ord, pod, false).await?;
                    if monotonic && !healthy(pod, plan.min_ready, plan.now) {
                        tracing::debug!(
                            statefulset = plan.key,
                            ordinal = ord,
                            "waiting for pod to be Running and Ready"
                        );
                        return Ok(());
                    }
                }
            }
        }

        let condemned: Vec<(i32, &Arc<Pod>)> =
            plan.pods.iter().filter(|(o, _)| **o < plan.start || **o >= end).map(|(o, p)| (*o, p)).collect();
        let first_unhealthy =
            condemned.iter().find(|(_, p)| !healthy(p, plan.min_ready, plan.now)).map(|(_, p)| p.metadata.uid.clone());
        for (ord, pod) in condemned.into_iter().rev() {
            if terminating(pod) {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            if monotonic && !healthy(pod, plan.min_ready, plan.now) && Some(pod.metadata.uid.clone()) != first_unhealthy
            {
                return Ok(());
            }
            self.update_claim_owners(plan, ord, pod, true).await?;
            self.delete(plan, pod).await?;
            if monotonic {
                return Ok(());
            }
        }

        if plan.strategy() != "RollingUpdate" {
            return Ok(());
        }
        let floor = plan.start + plan.partition().max(0);
        for ord in (floor..end).rev() {
            let Some(pod) = plan.pods.get(&ord) else { continue };
            if revision_of(pod) != Some(plan.update.name.as_str()) && !terminating(pod) {
                tracing::info!(statefulset = plan.key, ordinal = ord, revision = %plan.update.name, "replacing pod for update");
                return self.delete(plan, pod).await;
            }
            if !healthy(pod, plan.min_ready, plan.now) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Creates pod `ord` at `revision`, its claims first.
    async fn create(&self, plan: &Plan<'_>, ord: i32, revision: &Revision) -> Result<(), Error> {
        let ns = plan.set.metadata.namespace.clone().unwrap_or_default();
        let set_name = plan.set.metadata.name.clone().unwrap_or_default();
        let pod = new_pod(plan.set, &revision.template, &revision.name, ord);
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let claims_api = self.ctx.client.api::<PersistentVolumeClaim>(Some(&ns));
        for mut claim in claims(plan.set, ord) {
            if let Some(refs) = retention::owner_refs(&claim, plan.set, None, false) {
                claim.metadata.owner_references = Some(refs);
            }
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            if let Some(existing) = self.claims.get(&format!("{ns}/{claim_name}")) {
                if existing.metadata.deletion_timestamp.is_some() {
                    return Err(Error::Invalid(format!("pvc {claim_name} is being deleted")));
                }
                continue;
            }
            match claims_api.create(&claim).await {
                Ok(_) => self.ctx.recorder.record(
                    plan.set,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success"),
                ),
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    self.ctx.recorder.record(
                        plan.set,
                        EventType::Warning,
                        "FailedCreate",
                        &format!(
                            "create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                        ),
                    );
                    return Err(e.into());
                }
            }
        }
        match self.ctx.client.api::<Pod>(Some(&ns)).create(&pod).await {
            Ok(_) => {
                tracing::info!(statefulset = plan.key, pod = %pod_name, revision = %revision.name, "created pod");
                self.ctx.recorder.record(
                    plan.set,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
                );
                Ok(())
            }
            // The cache trails our own create.
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => {
                self.ctx.recorder.record(
                    plan.set,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }

    /// Gives the claims of pod `ord` the owners the retention policy asks for
    /// (`scaled_down`: the pod is condemned and about to be deleted).
    async fn update_claim_owners(&self, plan: &Plan<'_>, ord: i32, pod: &Pod, scaled_down: bool) -> Result<(), Error> {
        let ns = plan.set.metadata.namespace.clone().unwrap_or_default();
        let api = self.ctx.client.api::<PersistentVolumeClaim>(Some(&ns));
        for wanted in claims(plan.set, ord) {
            let name = wanted.metadata.name.clone().unwrap_or_default();
            let Some(claim) = self.claims.get(&format!("{ns}/{name}")) else { continue };
            let Some(refs) = retention::owner_refs(&claim, plan.set, Some(pod), scaled_down) else { continue };
            // The resourceVersion makes this a compare-and-swap on the claim's owners.
            let patch =
                json!({"metadata": {"ownerReferences": refs, "resourceVersion": claim.metadata.resource_version}});
            match api.patch(&name, PatchType::Merge, &patch).await {
                Ok(_) => tracing::debug!(statefulset = plan.key, claim = %name, scaled_down, "claim owners updated"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes exactly this pod (uid precondition, so a stale cache never deletes its
    /// successor of the same name).
    async fn delete(&self, plan: &Plan<'_>, pod: &Pod) -> Result<(), Error> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let set_name = plan.set.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
        match self.ctx.client.api::<Pod>(Some(&ns)).delete(&name, &params).await {
            Ok(()) => {
                tracing::info!(statefulset = plan.key, pod = %name, "deleted pod");
                self.ctx.recorder.record(
                    plan.set,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("delete Pod {name} in StatefulSet {set_name} successful"),
                );
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => {
                self.ctx.recorder.record(
                    plan.set,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("delete Pod {name} in StatefulSet {set_name} failed error: {e}"),
                );
                Err(e.into())
            }
        }
    }

    /// Status from the cached pods, written when it changed. Returns when a Ready pod turns
    /// available, to look again then.
    async fn update_status(&self, plan: &Plan<'_>) -> Result<Option<Duration>, Error> {
        let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
        let mut wait: Option<Duration> = None;
        for pod in plan.pods.values() {
            replicas += 1;
            if phase(pod) == Some("Running") && pod_ready(pod) {
                ready += 1;
                if pod_available(pod, plan.min_ready, plan.now) {
                    available += 1;
                } else {
                    let left = until_available(pod, plan.min_ready, plan.now);
                    wait = Some(wait.map_or(left, |w| w.min(left)));
                }
            }
            if !terminating(pod) {
                let rev = revision_of(pod);
                if rev == Some(plan.current.name.as_str()) {
                    current += 1;
                }
                if rev == Some(plan.update.name.as_str()) {
                    updated += 1;
                }
            }
        }
        let mut current_revision = plan.current.name.clone();
        // A finished rollout: the update revision becomes the current one.
        if plan.strategy() == "RollingUpdate" && updated == replicas && ready == replicas {
            current_revision = plan.update.name.clone();
            current = updated;
        }
        let old = plan.set.status.clone().unwrap_or_default();
        let generation = plan.set.metadata.generation;
        let same = old.replicas == replicas
            && old.ready_replicas.unwrap_or(0) == ready
            && old.available_replicas.unwrap_or(0) == available
            && old.current_replicas.unwrap_or(0) == current
            && old.updated_replicas.unwrap_or(0) == updated
            && old.current_revision.as_deref() == Some(current_revision.as_str())
            && old.update_revision.as_deref() == Some(plan.update.name.as_str())
            && old.observed_generation == generation;
        if same {
            return Ok(wait);
        }
        let patch = json!({"status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": plan.update.name,
            "observedGeneration": generation,
            "collisionCount": old.collision_count.unwrap_or(0),
        }});
        let ns = plan.set.metadata.namespace.clone().unwrap_or_default();
        let name = plan.set.metadata.name.clone().unwrap_or_default();
        match self.ctx.client.api::<StatefulSet>(Some(&ns)).patch_status(&name, PatchType::Merge, &patch).await {
            Ok(_) => {
                tracing::debug!(statefulset = plan.key, replicas, ready, updated, "status updated");
                Ok(wait)
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes revisions beyond revisionHistoryLimit no pod runs, keeping the current and
    /// update revisions.
    async fn prune_history(
        &self,
        plan: &Plan<'_>,
        revisions: &[Arc<ControllerRevision>],
        live: &HashSet<String>,
    ) -> Result<(), Error> {
        let limit = plan.set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
        if revisions.len() <= usize::try_from(limit).unwrap_or(0) + 2 {
            return Ok(());
        }
        // `prune` spares revisions by hash label; map the live revision names to hashes.
        let live_hashes: HashSet<String> = revisions
            .iter()
            .filter(|r| r.metadata.name.as_ref().is_some_and(|n| live.contains(n)))
            .filter_map(|r| r.metadata.labels.as_ref()?.get(history::HASH_LABEL).cloned())
            .collect();
        history::prune(&self.ctx.client, revisions, &plan.update.name, &live_hashes, limit).await
    }
}
