//! Garbage collector: deletes objects whose owners are all gone, and carries out the
//! `foregroundDeletion` and `orphan` finalizers the API server adds for a delete with
//! propagationPolicy Foreground or Orphan, as Kubernetes' garbage collector does.
//!
//! An in-memory ownership graph ([`graph`]) is built from shared informers on every kind in
//! [`kinds`], and from dynamic informers on the resources of established
//! CustomResourceDefinitions ([`custom`]); its changes queue keys (`plural/namespace/name`,
//! `plural.group/namespace/name` for custom kinds). A key is reconciled as:
//! - an owner being deleted with `orphan`: its dependents lose their reference to it, then the
//!   finalizer is removed;
//! - an owner being deleted with `foregroundDeletion`: its dependents are queued (and so deleted),
//!   and once no dependent with `blockOwnerDeletion` remains the finalizer is removed;
//! - a dependent: its owners are classified as solid, dangling or waiting for their dependents'
//!   deletion. Anything but "solid per the cache" is decided on live reads of the dependent and
//!   of its owners, so a lagging cache never gets an object deleted.

pub mod custom;
pub mod graph;
pub mod kinds;

use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use graph::{FOREGROUND, Graph, KindInfo, Node, ORPHAN, group_of};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kinds::{Change, Kind, Kinds};
use rkube_client::{DeleteParams, EventType, WorkQueue};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

/// How many confirmed-absent owners are remembered before the memory is cleared.
const ABSENT_OWNERS: usize = 4096;

/// How soon a foreground deletion looks again when live lists show blocking dependents the
/// informers have not delivered yet.
const UNSEEN_DEPENDENTS_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Deletes dependents of deleted owners and runs the deletion finalizers.
pub struct GarbageCollector {
    ctx: Context,
    kinds: Arc<Kinds>,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue<String>,
    /// Owners a live read found absent, by `group/kind/namespace/name/uid`: a uid never comes
    /// back, so they need no second read.
    absent: Mutex<HashSet<String>>,
}

/// Watches every built-in kind of the table and every custom resource, keeping the graph and
/// queueing what its changes concern.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let graph = Arc::new(Mutex::new(Graph::default()));
    let kinds = Arc::new(Kinds::builtin());
    for (index, kind) in kinds.present() {
        let info = kind.info();
        let (graph, queue) = (graph.clone(), queue.clone());
        kind.watch(informers, Arc::new(move |change| apply(&graph, &queue, index, info, change, None)));
    }
    custom::watch(informers, ctx.client.clone(), kinds.clone(), graph.clone(), queue.clone());
    let controller =
        GarbageCollector { ctx: ctx.clone(), kinds, graph, queue: queue.clone(), absent: Mutex::default() };
    Registration::new(Arc::new(controller), queue)
}

/// Applies one change of an object of the kind at `index` to the graph and queues the keys it
/// concerns. `alive` is a custom kind's informer token: once it is cancelled the kind's nodes
/// are being removed, and a straggling event (checked under the graph lock) must not bring
/// one back.
fn apply(
    graph: &Mutex<Graph>,
    queue: &WorkQueue<String>,
    index: usize,
    info: KindInfo,
    change: Change<'_>,
    alive: Option<&CancellationToken>,
) {
    let keys = {
        let mut g = graph.lock().unwrap_or_else(|e| e.into_inner());
        if alive.is_some_and(CancellationToken::is_cancelled) {
            return;
        }
        match change {
            Change::Upsert(meta) => match Node::from_meta(index, info, meta) {
                Some(node) => g.upsert(node),
                None => Vec::new(),
            },
            Change::Remove(meta) => g.remove(meta.uid.as_deref().unwrap_or_default()),
        }
    };
    for key in keys {
        queue.add(key);
    }
}

/// How one ownerReference of a dependent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The owner exists and is not waiting for its dependents: the dependent stays.
    Solid,
    /// The owner is gone (or replaced by another object of the same name).
    Dangling,
    /// The owner is being deleted in foreground: its dependents go first.
    Waiting,
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        // Gone from the graph: its deletion queued whatever depended on it.
        let Some(node) = self.graph().by_key(key) else { return Ok(Action::Done) };
        if node.orphan {
            // The foreground finalizer, if also present, is looked at once this one is gone.
            self.orphan_dependents(&node).await?;
        } else if node.foreground {
            return self.delete_dependents(&node).await;
        } else if !node.deleting && !node.owners.is_empty() {
            self.attempt_to_delete(&node).await?;
        }
        Ok(Action::Done)
    }
}

impl GarbageCollector {
    fn graph(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kind of `node`; an error only if the node's index is not in the table, which the
    /// append-only table rules out.
    fn kind(&self, node: &Node) -> Result<Arc<dyn Kind>, Error> {
        self.kinds.get(node.kind).ok_or_else(|| Error::Invalid(format!("{}: no kind at index {}", node.key, node.kind)))
    }

    /// The cached owner `reference` (made by an object in `namespace`) names, if the cache
    /// holds exactly that object.
    fn cached_owner(&self, reference: &OwnerReference, namespace: &str) -> Option<Arc<Node>> {
        self.graph().by_uid(&reference.uid).filter(|o| o.is_named_by(reference, namespace))
    }

    /// Decides a dependent's fate from its owners: stays, loses dangling references, or is
    /// deleted (with the propagation its owners' state calls for).
    async fn attempt_to_delete(&self, node: &Node) -> Result<(), Error> {
        // Every owner solid in the cache: nothing to do and no request made.
        let all_solid = node.owners.iter().all(|r| match self.cached_owner(r, &node.namespace) {
            Some(owner) => !owner.foreground,
            None => self.kinds.find(group_of(&r.api_version), &r.kind).is_none(),
        });
        if all_solid {
            return Ok(());
        }
        let kind = self.kind(node)?;
        let Some(latest) = kind.get(&self.ctx.client, &node.namespace, &node.name).await? else { return Ok(()) };
        if latest.uid.as_deref() != Some(node.uid.as_str()) || latest.deletion_timestamp.is_some() {
            return Ok(());
        }
        let references = latest.owner_references.clone().unwrap_or_default();
        if references.is_empty() {
            return Ok(());
        }
        let mut owners = Vec::with_capacity(references.len());
        for r in &references {
            let Some(state) = self.classify(node, &latest, r).await? else {
                // An owner reference that can never resolve; retrying would not help.
                return Ok(());
            };
            owners.push((r.uid.as_str(), state));
        }
        let dependents = self.graph().dependents(&node.uid);
        let policy = match decide(&owners, !dependents.is_empty(), &latest) {
            Decision::Keep => return Ok(()),
            Decision::DropReferences(drop) => {
                // Other owners keep it alive: only the references to the gone and the going drop.
                let kept: Vec<&OwnerReference> = references.iter().filter(|r| !drop.contains(r.uid.as_str())).collect();
                let patch = json!({"metadata": {"resourceVersion": latest.resource_version, "ownerReferences": kept}});
                tracing::info!(key = %node.key, removed = ?drop, "removing references to dangling and deleting owners");
                return ignore_not_found(kind.patch(&self.ctx.client, &node.namespace, &node.name, &patch).await);
            }
            Decision::Delete(policy) => policy,
        };
        if policy == "Foreground" && dependents.iter().any(|d| d.foreground) {
            // One of its dependents waiting for it while it waits for its owner may be a cycle
            // no one finishes: its own references stop blocking first.
            self.unblock_owner_references(node, &latest, &references).await?;
        }
        tracing::info!(key = %node.key, uid = %node.uid, policy, "deleting an object whose owners are gone or going");
        let params = DeleteParams {
            propagation_policy: Some(policy.to_string()),
            precondition_uid: Some(node.uid.clone()),
            ..Default::default()
        };
        match kind.delete(&self.ctx.client, &node.namespace, &node.name, &params).await {
            // Gone already, or another object under the name now (its own events cover it).
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            other => Ok(other?),
        }
    }

    /// Classifies one ownerReference of the dependent `node` (whose live metadata is
    /// `latest`); `None` when the reference is invalid and can never resolve.
    async fn classify(
        &self,
        node: &Node,
        latest: &ObjectMeta,
        reference: &OwnerReference,
    ) -> Result<Option<Owner>, Error> {
        let group = group_of(&reference.api_version);
        let Some(owner_kind) = self.kinds.find(group, &reference.kind).and_then(|i| self.kinds.get(i)) else {
            // A kind the collector cannot read: never delete on its account.
            tracing::debug!(key = %node.key, kind = %reference.kind, api_version = %reference.api_version, "owner of an unwatched kind counts as present");
            return Ok(Some(Owner::Solid));
        };
        if owner_kind.info().namespaced && node.namespace.is_empty() {
            let message = format!(
                "ownerRef [{}/{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                reference.api_version, reference.kind, reference.name, reference.uid
            );
            tracing::warn!(key = %node.key, %message, "cluster-scoped object refers to a namespaced owner");
            self.kind(node)?.record(
                &self.ctx.recorder,
                latest,
                EventType::Warning,
                "OwnerRefInvalidNamespace",
                &message,
            );
            return Ok(None);
        }
        if let Some(owner) = self.cached_owner(reference, &node.namespace) {
            return Ok(Some(if owner.foreground { Owner::Waiting } else { Owner::Solid }));
        }
        let namespace = if owner_kind.info().namespaced { node.namespace.as_str() } else { "" };
        let absent_key = format!("{group}/{}/{namespace}/{}/{}", reference.kind, reference.name, reference.uid);
        if self.absent().contains(&absent_key) {
            return Ok(Some(Owner::Dangling));
        }
        // Not in the cache: only a live read says whether it is really gone.
        let owner = owner_kind.get(&self.ctx.client, namespace, &reference.name).await?;
        match owner {
            Some(o) if o.uid.as_deref() == Some(reference.uid.as_str()) => {
                tracing::debug!(key = %node.key, owner = %reference.name, "owner not cached yet, but live");
                let waiting = o.deletion_timestamp.is_some() && has_finalizer(&o, FOREGROUND);
                Ok(Some(if waiting { Owner::Waiting } else { Owner::Solid }))
            }
            _ => {
                let mut absent = self.absent();
                if absent.len() >= ABSENT_OWNERS {
                    absent.clear();
                }
                absent.insert(absent_key);
                Ok(Some(Owner::Dangling))
            }
        }
    }

    fn absent(&self) -> MutexGuard<'_, HashSet<String>> {
        self.absent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets blockOwnerDeletion=false on every reference of the dependent.
    async fn unblock_owner_references(
        &self,
        node: &Node,
        latest: &ObjectMeta,
        references: &[OwnerReference],
    ) -> Result<(), Error> {
        let unblocked: Vec<OwnerReference> = references
            .iter()
            .map(|r| OwnerReference { block_owner_deletion: r.block_owner_deletion.map(|_| false), ..r.clone() })
            .collect();
        if unblocked == references {
            return Ok(());
        }
        tracing::info!(key = %node.key, "unblocking owner references to avoid a foreground deletion cycle");
        let patch = json!({"metadata": {"resourceVersion": latest.resource_version, "ownerReferences": unblocked}});
        ignore_not_found(self.kind(node)?.patch(&self.ctx.client, &node.namespace, &node.name, &patch).await)
    }

    /// Foreground deletion of `owner`: queues its dependents (each is then deleted as a
    /// dependent of an owner waiting for it) and removes the finalizer once none blocks.
    async fn delete_dependents(&self, owner: &Node) -> Result<Action, Error> {
        let dependents = self.graph().dependents(&owner.uid);
        let blocking = dependents.iter().filter(|d| d.blocks(&owner.uid)).count();
        for d in dependents.iter().filter(|d| !d.deleting) {
            self.queue.add(d.key.clone());
        }
        if blocking > 0 {
            tracing::debug!(key = %owner.key, blocking, "waiting for dependents to be deleted");
            return Ok(Action::Done);
        }
        // The informers of other kinds may not have shown dependents created just before the
        // owner's deletion yet: only live lists can say that none is left.
        let unseen = self
            .live_dependents(owner)
            .await?
            .iter()
            .filter(|(_, d)| {
                d.owner_references.iter().flatten().any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
            })
            .count();
        if unseen > 0 {
            tracing::debug!(key = %owner.key, unseen, "blocking dependents not cached yet");
            return Ok(Action::RequeueAfter(UNSEEN_DEPENDENTS_RETRY));
        }
        self.remove_finalizer(owner, FOREGROUND).await?;
        Ok(Action::Done)
    }

    /// Orphan deletion of `owner`: its dependents drop their reference to it, then the
    /// finalizer goes. Dependents are listed live, so none the cache has not shown yet is
    /// left with a reference that would get it collected.
    async fn orphan_dependents(&self, owner: &Node) -> Result<(), Error> {
        for (kind, d) in self.live_dependents(owner).await? {
            let Some(kind) = self.kinds.get(kind) else { continue };
            let (namespace, name) = (d.namespace.as_deref().unwrap_or_default(), d.name.as_deref().unwrap_or_default());
            let kept: Vec<&OwnerReference> =
                d.owner_references.iter().flatten().filter(|r| r.uid != owner.uid).collect();
            let kept = if kept.is_empty() { serde_json::Value::Null } else { json!(kept) };
            let patch = json!({"metadata": {"resourceVersion": d.resource_version, "ownerReferences": kept}});
            ignore_not_found(kind.patch(&self.ctx.client, namespace, name, &patch).await)?;
            tracing::info!(kind = kind.info().kind, namespace, name, owner = %owner.key, "orphaned dependent");
        }
        self.remove_finalizer(owner, ORPHAN).await
    }

    /// Every object that names `owner` among its owners, by kind index, read live: in the
    /// owner's namespace, or in all of them for a cluster-scoped owner.
    async fn live_dependents(&self, owner: &Node) -> Result<Vec<(usize, ObjectMeta)>, Error> {
        // A namespaced owner can only have dependents in its own namespace.
        let scoped = !owner.namespace.is_empty();
        let kinds = self.kinds.present();
        let lists = kinds.into_iter().filter(|(_, k)| !scoped || k.info().namespaced).map(|(index, k)| async move {
            let found = k.dependents_of(&self.ctx.client, &owner.namespace, &owner.uid).await?;
            Ok::<_, Error>(found.into_iter().map(move |m| (index, m)))
        });
        let mut all = Vec::new();
        for found in futures::future::try_join_all(lists).await? {
            all.extend(found);
        }
        Ok(all)
    }

    /// Removes `finalizer` from the live object of `node` (the API server finishes a deletion
    /// whose last finalizer goes).
    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), Error> {
        let kind = self.kind(node)?;
        let Some(latest) = kind.get(&self.ctx.client, &node.namespace, &node.name).await? else { return Ok(()) };
        if latest.uid.as_deref() != Some(node.uid.as_str()) || !has_finalizer(&latest, finalizer) {
            return Ok(());
        }
        let kept: Vec<&String> = latest.finalizers.iter().flatten().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {"resourceVersion": latest.resource_version, "finalizers": kept}});
        ignore_not_found(kind.patch(&self.ctx.client, &node.namespace, &node.name, &patch).await)?;
        tracing::info!(key = %node.key, finalizer, "removed finalizer");
        Ok(())
    }
}

/// What becomes of a dependent, given how its owners stand.
#[derive(Debug, PartialEq, Eq)]
enum Decision<'a> {
    /// Every owner is solid.
    Keep,
    /// Some owner is solid: drop the references to these (dangling or waiting) owners.
    DropReferences(HashSet<&'a str>),
    /// No owner is solid: delete with this propagationPolicy.
    Delete(&'static str),
}

/// Kubernetes' rules: a dependent with a solid owner only loses its references to the others;
/// one without goes, in foreground when an owner waits for it and it has dependents of its
/// own (so the owner keeps waiting for them too), else as its own finalizers ask.
fn decide<'a>(owners: &[(&'a str, Owner)], has_dependents: bool, latest: &ObjectMeta) -> Decision<'a> {
    let with = |state: Owner| owners.iter().filter(move |(_, s)| *s == state).map(|(uid, _)| *uid);
    if with(Owner::Solid).next().is_some() {
        let drop: HashSet<&str> = with(Owner::Dangling).chain(with(Owner::Waiting)).collect();
        return if drop.is_empty() { Decision::Keep } else { Decision::DropReferences(drop) };
    }
    Decision::Delete(if with(Owner::Waiting).next().is_some() && has_dependents {
        "Foreground"
    } else if has_finalizer(latest, ORPHAN) {
        "Orphan"
    } else if has_finalizer(latest, FOREGROUND) {
        "Foreground"
    } else {
        "Background"
    })
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

fn ignore_not_found(result: Result<(), rkube_client::ClientError>) -> Result<(), Error> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta { finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()), ..Default::default() }
    }

    #[test]
    fn a_solid_owner_keeps_the_dependent_and_drops_the_other_references() {
        let m = meta(&[]);
        assert_eq!(decide(&[("a", Owner::Solid)], false, &m), Decision::Keep);
        let d = decide(&[("a", Owner::Solid), ("b", Owner::Dangling), ("c", Owner::Waiting)], true, &m);
        assert_eq!(d, Decision::DropReferences(["b", "c"].into_iter().collect()));
    }

    #[test]
    fn without_a_solid_owner_the_dependent_goes_with_the_right_propagation() {
        let plain = meta(&[]);
        assert_eq!(decide(&[("a", Owner::Dangling)], true, &plain), Decision::Delete("Background"));
        assert_eq!(decide(&[("a", Owner::Waiting)], false, &plain), Decision::Delete("Background"));
        assert_eq!(
            decide(&[("a", Owner::Waiting), ("b", Owner::Dangling)], true, &plain),
            Decision::Delete("Foreground")
        );
        assert_eq!(decide(&[("a", Owner::Dangling)], false, &meta(&[ORPHAN])), Decision::Delete("Orphan"));
        assert_eq!(decide(&[("a", Owner::Dangling)], false, &meta(&[FOREGROUND])), Decision::Delete("Foreground"));
    }
}
