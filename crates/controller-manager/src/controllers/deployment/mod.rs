//! Deployment controller: owns a Deployment's ReplicaSets, one per pod template (named
//! `<deployment>-<template hash>`), and moves replicas from the old ones to the new one as the
//! strategy says (RollingUpdate within maxSurge / maxUnavailable, or Recreate), keeps the
//! revision annotations and the history limit, and reports status and the Available /
//! Progressing conditions `kubectl rollout status` reads.
//!
//! This file has the controller, its event wiring, ReplicaSet adoption and the writes every
//! strategy shares; `sync` finds or creates the new ReplicaSet, scales proportionally and
//! prunes history, `rolling` and `recreate` are the two strategies, `status` the status.

mod recreate;
mod rolling;
mod status;
mod sync;

use crate::informers::SharedInformers;
use crate::objects::{Selector, controller_of};
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{Event, EventType, PatchType, Store, WorkQueue, object_key};
use serde_json::json;
use std::sync::Arc;

/// The Deployment revision a ReplicaSet (and the Deployment) carries.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells apart the ReplicaSets (and pods) of one Deployment's templates.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Runs Deployments: ReplicaSets per template, rollouts, history and status.
pub struct DeploymentController {
    ctx: Context,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
}

/// Queues a Deployment when it changes, when a ReplicaSet it owns (or could adopt) changes,
/// and, for Recreate, when one of its old pods goes away.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let deployments: Store<Deployment> = informers.store();
    let replica_sets: Store<ReplicaSet> = informers.store();

    let q = queue.clone();
    informers.on_event::<Deployment>(move |e| {
        let (Event::Added(d) | Event::Deleted(d) | Event::Updated { new: d, .. }) = e;
        q.add(object_key(&d.metadata));
    });

    let (q, ds) = (queue.clone(), deployments.clone());
    informers.on_event::<ReplicaSet>(move |e| match e {
        Event::Added(rs) => enqueue_for_replica_set(&q, &ds, rs, true),
        Event::Deleted(rs) => enqueue_for_replica_set(&q, &ds, rs, false),
        Event::Updated { old, new } => {
            // A changed controller reference: the previous owner has to let go of it too.
            if controller_of(&old.metadata).map(|r| &r.uid) != controller_of(&new.metadata).map(|r| &r.uid) {
                enqueue_for_replica_set(&q, &ds, old, false);
            }
            let labels_changed = old.metadata.labels != new.metadata.labels;
            enqueue_for_replica_set(&q, &ds, new, labels_changed || controller_of(&new.metadata).is_none());
        }
    });

    let (q, ds, rss) = (queue.clone(), deployments.clone(), replica_sets.clone());
    informers.on_event::<Pod>(move |e| {
        let pod = match e {
            Event::Deleted(pod) => pod,
            Event::Updated { old, new }
                if !crate::objects::pod_terminated(old) && crate::objects::pod_terminated(new) =>
            {
                new
            }
            _ => return,
        };
        // Only Recreate waits for old pods to be gone; their going is its signal.
        let Some(rs_key) = crate::objects::controller_key(&pod.metadata, "ReplicaSet") else { return };
        let Some(rs) = rss.get(&rs_key) else { return };
        let Some(d_key) = crate::objects::controller_key(&rs.metadata, "Deployment") else { return };
        if ds.get(&d_key).is_some_and(|d| is_recreate(&d)) {
            q.add(d_key);
        }
    });

    let controller = DeploymentController { ctx: ctx.clone(), deployments, replica_sets, pods: informers.store() };
    Registration::new(Arc::new(controller), queue)
}

/// Queues the Deployment controlling `rs`; an orphan (when `orphans`) queues every Deployment
/// of its namespace whose selector matches, since one of them may adopt it.
fn enqueue_for_replica_set(q: &WorkQueue<String>, ds: &Store<Deployment>, rs: &ReplicaSet, orphans: bool) {
    match controller_of(&rs.metadata) {
        Some(owner) if owner.kind == "Deployment" => {
            if let Some(key) = crate::objects::controller_key(&rs.metadata, "Deployment")
                && ds.get(&key).is_some_and(|d| d.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            {
                q.add(key);
            }
        }
        Some(_) => {}
        None if orphans => {
            let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
            for d in ds.by_index(NAMESPACE_INDEX, ns) {
                let selector = d.spec.as_ref().map(|s| Selector::new(Some(&s.selector)));
                if selector.is_some_and(|s| !s.is_empty() && s.matches(rs.metadata.labels.as_ref())) {
                    q.add(object_key(&d.metadata));
                }
            }
        }
        None => {}
    }
}

/// The Deployment's desired replicas (1 when unset, as defaulting does).
fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the Deployment uses the Recreate strategy (anything else rolls).
fn is_recreate(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// Whether `spec.paused` is set.
fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// A ReplicaSet's `spec.replicas` (1 when unset, as defaulting does).
fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// A ReplicaSet's `status.replicas`: the pods it has now.
fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// A ReplicaSet's `status.availableReplicas`.
fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// A ReplicaSet's `status.readyReplicas`.
fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// The annotation `key` of `meta`, if set.
fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Replaces the ReplicaSet of the same name in `rss` with `rs` (or adds it).
fn replace(rss: &mut Vec<ReplicaSet>, rs: ReplicaSet) {
    match rss.iter_mut().find(|r| r.metadata.name == rs.metadata.name) {
        Some(slot) => *slot = rs,
        None => rss.push(rs),
    }
}

impl DeploymentController {
    /// The ReplicaSets `d` owns: its own ones that still match its selector, plus orphans
    /// that match (adopted here); its own ones that no longer match are released.
    async fn claim_replica_sets(&self, d: &Deployment, selector: &Selector) -> Result<Vec<ReplicaSet>, Error> {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let api = self.ctx.client.api::<ReplicaSet>(Some(ns));
        let mut owned = Vec::new();
        let mut adoption_checked = false;
        for rs in self.replica_sets.by_index(NAMESPACE_INDEX, ns) {
            let matches = selector.matches(rs.metadata.labels.as_ref());
            match controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push((*rs).clone());
                    } else if !deleting {
                        let mut released = (*rs).clone();
                        if let Some(refs) = released.metadata.owner_references.as_mut() {
                            refs.retain(|r| r.uid != uid);
                        }
                        match api.update(&released).await {
                            Ok(_) => {
                                let deployment = object_key(&d.metadata);
                                tracing::info!(%deployment, replicaset = ?rs.metadata.name, "released ReplicaSet")
                            }
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || deleting || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if !adoption_checked {
                        // The cache may trail a delete and re-create of the Deployment: adopt
                        // only for the one that exists now.
                        self.check_can_adopt(d).await?;
                        adoption_checked = true;
                    }
                    let mut adopted = (*rs).clone();
                    adopted.metadata.owner_references.get_or_insert_with(Vec::new).push(owner_ref(d));
                    match api.update(&adopted).await {
                        Ok(rs) => {
                            let deployment = object_key(&d.metadata);
                            tracing::info!(%deployment, replicaset = ?rs.metadata.name, "adopted ReplicaSet");
                            owned.push(rs);
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// Fails unless the Deployment the cache shows still exists with that uid and is not
    /// being deleted.
    async fn check_can_adopt(&self, d: &Deployment) -> Result<(), Error> {
        let ns = d.metadata.namespace.as_deref();
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let fresh = self.ctx.client.api::<Deployment>(ns).get(name).await?;
        if fresh.metadata.uid != d.metadata.uid {
            return Err(Error::Invalid(format!(
                "original Deployment {name} is gone: got uid {:?}, wanted {:?}",
                fresh.metadata.uid, d.metadata.uid
            )));
        }
        if fresh.metadata.deletion_timestamp.is_some() {
            return Err(Error::Invalid(format!("Deployment {name} is being deleted; not adopting")));
        }
        Ok(())
    }

    /// Scales `rs` to `to` (recording a ScalingReplicaSet event) and keeps its desired /
    /// max replicas annotations current; with `refresh` the annotations alone are written
    /// too. Returns the updated ReplicaSet when something was written.
    async fn scale_rs(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        to: i32,
        refresh: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let from = rs_replicas(rs);
        let max = desired(d) + rolling::max_surge(d);
        if from == to && !(refresh && sync::replicas_annotations_need_update(rs, desired(d), max)) {
            return Ok(None);
        }
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        sync::set_replicas_annotations(&mut copy, desired(d), max);
        let api = self.ctx.client.api::<ReplicaSet>(rs.metadata.namespace.as_deref());
        let updated = api.update(&copy).await?;
        if from != to {
            let direction = if from < to { "up" } else { "down" };
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            let message = format!("Scaled {direction} replica set {name} from {from} to {to}");
            tracing::info!(deployment = %object_key(&d.metadata), replicaset = name, from, to, "scaled ReplicaSet");
            self.ctx.recorder.record(d, EventType::Normal, "ScalingReplicaSet", &message);
        }
        Ok(Some(updated))
    }

    /// Scales `rs` to `to` and puts the result into `rss`; true when its size changed.
    async fn scale_in(
        &self,
        d: &Deployment,
        rss: &mut Vec<ReplicaSet>,
        rs: &ReplicaSet,
        to: i32,
    ) -> Result<bool, Error> {
        let changed = rs_replicas(rs) != to;
        match self.scale_rs(d, rs, to, false).await? {
            Some(updated) => {
                replace(rss, updated);
                Ok(changed)
            }
            None => Ok(false),
        }
    }

    /// Writes what this sync changed on the Deployment: the revision annotation (on the
    /// object itself) and the status (through the status subresource), each only if changed.
    async fn write_back(&self, orig: &Deployment, d: &Deployment) -> Result<(), Error> {
        let api = self.ctx.client.api::<Deployment>(d.metadata.namespace.as_deref());
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let mut latest = None;
        let revision = annotation(&d.metadata, REVISION_ANNOTATION);
        if revision.is_some() && revision != annotation(&orig.metadata, REVISION_ANNOTATION) {
            // A merge patch touches only this key, so a concurrent edit of the spec is kept.
            let patch = json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision}}});
            latest = Some(api.patch(name, PatchType::Merge, &patch).await?);
        }
        if status::comparable(&orig.status) != status::comparable(&d.status) {
            let mut obj = latest.unwrap_or_else(|| orig.clone());
            obj.status = d.status.clone();
            api.update_status(&obj).await?;
        }
        Ok(())
    }
}

/// The controller ownerReference of a ReplicaSet of `d`.
fn owner_ref(d: &Deployment) -> OwnerReference {
    crate::objects::controller_reference(d)
}

impl Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(orig) = self.deployments.get(key) else { return Ok(Action::Done) };
        let Some(spec) = orig.spec.as_ref() else { return Ok(Action::Done) };
        let mut d = (*orig).clone();
        let selector = Selector::new(Some(&spec.selector));
        if selector.is_empty() {
            // Kubernetes refuses to act on a Deployment that would select every pod.
            self.ctx.recorder.record(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation < d.metadata.generation {
                status.observed_generation = d.metadata.generation;
                self.write_back(&orig, &d).await?;
            }
            return Ok(Action::Done);
        }
        let mut rss = self.claim_replica_sets(&d, &selector).await?;
        let now = status::now();

        let action = if d.metadata.deletion_timestamp.is_some() {
            self.sync_status_only(&mut d, &mut rss).await?
        } else {
            status::check_paused_conditions(&mut d, now);
            if is_paused(&d) || self.is_scaling_event(&d, &rss) {
                self.sync(&mut d, &mut rss).await?
            } else if is_recreate(&d) {
                self.rollout_recreate(&mut d, &mut rss).await?
            } else {
                self.rollout_rolling(&mut d, &mut rss).await?
            }
        };
        self.write_back(&orig, &d).await?;
        Ok(action)
    }
}
