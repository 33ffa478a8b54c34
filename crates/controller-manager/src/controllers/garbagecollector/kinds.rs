//! The kinds the garbage collector watches (those that have dependents, or own them), and typed
//! requests on each behind one object-safe trait, so the collector can read, patch and delete
//! an object knowing only its kind's index in the table.
//!
//! The table ([`Kinds`]) starts with the built-in kinds and grows while the collector runs, one
//! slot per custom resource (see [`super::custom`]). It is append-only so that the kind index a
//! graph node holds stays valid: a custom kind whose definition goes away keeps its slot,
//! marked gone (lookups by group and kind skip it), and the same resource defined again gets
//! that slot back.

use super::graph::KindInfo;
use crate::informers::{Object, SharedInformers};
use futures::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Node, PersistentVolumeClaim, Pod, ReplicationController, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{
    ApiResource, Client, ClientError, DeleteParams, DynamicObject, Event, EventRecorder, EventType, ListParams,
    PatchType,
};
use serde_json::Value;
use std::any::TypeId;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, RwLock};

/// What an informer saw happen to an object of one kind.
pub enum Change<'a> {
    /// The object exists in this state.
    Upsert(&'a ObjectMeta),
    /// The object is gone.
    Remove(&'a ObjectMeta),
}

/// Receives every change of one kind (from its informer's handler).
pub type Sink = Arc<dyn Fn(Change<'_>) + Send + Sync>;

/// Typed requests on one kind, reachable without naming the type.
pub trait Kind: Send + Sync {
    /// Group, kind, plural and scope.
    fn info(&self) -> KindInfo;

    /// Feeds every change of this kind, as the shared informers see it, to `sink`. Custom kinds
    /// have no shared informer: [`super::custom`] runs theirs and feeds the graph itself.
    fn watch(&self, informers: &SharedInformers, sink: Sink);

    /// A live read of the object's metadata; `None` when it does not exist.
    fn get<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, ClientError>>;

    /// Live metadata of every object of this kind in `namespace` ("" for all namespaces) that
    /// names `uid` among its owners.
    fn dependents_of<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, ClientError>>;

    /// A JSON merge patch of the object.
    fn patch<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ClientError>>;

    /// Deletes the object.
    fn delete<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        params: &'a DeleteParams,
    ) -> BoxFuture<'a, Result<(), ClientError>>;

    /// Records an Event about the object with this metadata.
    fn record(&self, recorder: &EventRecorder, meta: &ObjectMeta, event_type: EventType, reason: &str, message: &str);
}

struct Typed<K>(PhantomData<fn() -> K>);

/// Live metadata of every object `api` lists that names `uid` among its owners.
async fn owned_by<K>(api: rkube_client::Api<K>, uid: &str) -> Result<Vec<ObjectMeta>, ClientError>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .map(|o| o.metadata().clone())
        .filter(|m| m.owner_references.iter().flatten().any(|r| r.uid == uid))
        .collect())
}

fn api<K: Object>(client: &Client, namespace: &str) -> rkube_client::Api<K> {
    client.api::<K>((!namespace.is_empty()).then_some(namespace))
}

impl<K> Kind for Typed<K>
where
    K: Object + Default,
    K::Scope: 'static,
{
    fn info(&self) -> KindInfo {
        KindInfo {
            group: K::GROUP,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            namespaced: TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>(),
        }
    }

    fn watch(&self, informers: &SharedInformers, sink: Sink) {
        informers.on_event::<K>(move |e| match e {
            Event::Added(o) => sink(Change::Upsert(o.metadata())),
            Event::Updated { old, new } => {
                // A relist may show a new object where an unseen delete removed the old one.
                if old.metadata().uid != new.metadata().uid {
                    sink(Change::Remove(old.metadata()));
                }
                sink(Change::Upsert(new.metadata()));
            }
            Event::Deleted(o) => sink(Change::Remove(o.metadata())),
        });
    }

    fn get<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, ClientError>> {
        Box::pin(async move { Ok(api::<K>(client, namespace).get_opt(name).await?.map(|o| o.metadata().clone())) })
    }

    fn dependents_of<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, ClientError>> {
        let namespace = if self.info().namespaced { namespace } else { "" };
        Box::pin(owned_by(api::<K>(client, namespace), uid))
    }

    fn patch<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move { api::<K>(client, namespace).patch(name, PatchType::Merge, patch).await.map(|_| ()) })
    }

    fn delete<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        params: &'a DeleteParams,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move { api::<K>(client, namespace).delete(name, params).await })
    }

    fn record(&self, recorder: &EventRecorder, meta: &ObjectMeta, event_type: EventType, reason: &str, message: &str) {
        let mut object = K::default();
        *object.metadata_mut() = meta.clone();
        recorder.record(&object, event_type, reason, message);
    }
}

fn kind<K>() -> Arc<dyn Kind>
where
    K: Object + Default,
    K::Scope: 'static,
{
    Arc::new(Typed::<K>(PhantomData))
}

/// The built-in kinds the collector watches.
pub fn table() -> Vec<Arc<dyn Kind>> {
    vec![
        kind::<Pod>(),
        kind::<ReplicaSet>(),
        kind::<ReplicationController>(),
        kind::<Deployment>(),
        kind::<Job>(),
        kind::<CronJob>(),
        kind::<DaemonSet>(),
        kind::<StatefulSet>(),
        kind::<ControllerRevision>(),
        kind::<ConfigMap>(),
        kind::<Secret>(),
        kind::<Service>(),
        kind::<Endpoints>(),
        kind::<EndpointSlice>(),
        kind::<PersistentVolumeClaim>(),
        kind::<ServiceAccount>(),
        // What operators and charts commonly create next to a workload, owned by it.
        kind::<PodDisruptionBudget>(),
        kind::<HorizontalPodAutoscaler>(),
        kind::<Ingress>(),
        kind::<NetworkPolicy>(),
        kind::<Role>(),
        kind::<RoleBinding>(),
        // Mirror pods are owned by their Node.
        kind::<Node>(),
    ]
}

/// The index of the kind with this group and kind in `table`.
pub fn find(table: &[Arc<dyn Kind>], group: &str, kind: &str) -> Option<usize> {
    table.iter().position(|k| {
        let info = k.info();
        info.group == group && info.kind == kind
    })
}

struct Slot {
    kind: Arc<dyn Kind>,
    /// False once the kind's definition went away.
    present: bool,
}

/// Every kind the collector knows, built-in and custom; an index into it identifies a kind for
/// as long as the collector runs.
pub struct Kinds {
    slots: RwLock<Vec<Slot>>,
}

impl Kinds {
    /// The built-in kinds of [`table`].
    pub fn builtin() -> Kinds {
        Kinds { slots: RwLock::new(table().into_iter().map(|kind| Slot { kind, present: true }).collect()) }
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn slots_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Slot>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The kind at `index`, present or gone (a node being reconciled may outlive its kind).
    pub fn get(&self, index: usize) -> Option<Arc<dyn Kind>> {
        self.slots().get(index).map(|s| s.kind.clone())
    }

    /// The index of the present kind with this group and kind.
    pub fn find(&self, group: &str, kind: &str) -> Option<usize> {
        self.slots().iter().position(|s| {
            let info = s.kind.info();
            s.present && info.group == group && info.kind == kind
        })
    }

    /// Every present kind with its index.
    pub fn present(&self) -> Vec<(usize, Arc<dyn Kind>)> {
        self.slots().iter().enumerate().filter(|(_, s)| s.present).map(|(i, s)| (i, s.kind.clone())).collect()
    }

    /// Adds a kind (present) and returns its index.
    pub fn add(&self, kind: Arc<dyn Kind>) -> usize {
        let mut slots = self.slots_mut();
        slots.push(Slot { kind, present: true });
        slots.len() - 1
    }

    /// Marks the kind at `index` present again, or gone.
    pub fn set_present(&self, index: usize, present: bool) {
        if let Some(slot) = self.slots_mut().get_mut(index) {
            slot.present = present;
        }
    }

    /// Number of slots, gone ones included.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether the table has no slot.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }
}

/// A `&'static str` equal to `s`. KindInfo names are `'static` (the built-in ones are
/// constants); a custom kind's names are leaked once per distinct string, so a definition
/// that comes and goes costs nothing more.
pub fn intern(s: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(found) = names.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Requests on a custom resource, as [`DynamicObject`]s over the dynamic Api.
pub struct Dynamic {
    resource: ApiResource,
    info: KindInfo,
}

impl Dynamic {
    /// The kind of `resource`. Its work-queue keys start with `plural.group`, which no built-in
    /// plural (nor another group's) can equal.
    pub fn new(resource: ApiResource) -> Dynamic {
        let info = KindInfo {
            group: intern(&resource.group),
            kind: intern(&resource.kind),
            plural: intern(&format!("{}.{}", resource.plural, resource.group)),
            namespaced: resource.namespaced,
        };
        Dynamic { resource, info }
    }

    /// The resource this kind reads and writes.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    fn api(&self, client: &Client, namespace: &str) -> rkube_client::Api<DynamicObject> {
        client.dynamic(&self.resource, (!namespace.is_empty()).then_some(namespace))
    }
}

impl Kind for Dynamic {
    fn info(&self) -> KindInfo {
        self.info
    }

    fn watch(&self, _informers: &SharedInformers, _sink: Sink) {}

    fn get<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectMeta>, ClientError>> {
        Box::pin(async move { Ok(self.api(client, namespace).get_opt(name).await?.map(|o| o.metadata)) })
    }

    fn dependents_of<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, ClientError>> {
        let namespace = if self.info.namespaced { namespace } else { "" };
        Box::pin(owned_by(self.api(client, namespace), uid))
    }

    fn patch<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        patch: &'a Value,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move { self.api(client, namespace).patch(name, PatchType::Merge, patch).await.map(|_| ()) })
    }

    fn delete<'a>(
        &'a self,
        client: &'a Client,
        namespace: &'a str,
        name: &'a str,
        params: &'a DeleteParams,
    ) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move { self.api(client, namespace).delete(name, params).await })
    }

    fn record(&self, recorder: &EventRecorder, meta: &ObjectMeta, event_type: EventType, reason: &str, message: &str) {
        recorder.record_about(&self.resource.api_version(), &self.resource.kind, meta, event_type, reason, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_scope_and_plural() {
        let t = table();
        let pod = t[find(&t, "", "Pod").unwrap()].info();
        assert_eq!((pod.plural, pod.namespaced), ("pods", true));
        let node = t[find(&t, "", "Node").unwrap()].info();
        assert_eq!((node.plural, node.namespaced), ("nodes", false));
        let rs = t[find(&t, "apps", "ReplicaSet").unwrap()].info();
        assert_eq!(rs.plural, "replicasets");
        assert!(find(&t, "extensions", "ReplicaSet").is_none());
        let mut plurals: Vec<_> = t.iter().map(|k| k.info().plural).collect();
        plurals.sort();
        plurals.dedup();
        assert_eq!(plurals.len(), t.len(), "plurals make unique work-queue keys");
    }

    #[test]
    fn custom_kinds_keep_their_index_while_gone() {
        let kinds = Kinds::builtin();
        let builtin = kinds.len();
        let resource = ApiResource {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
            namespaced: true,
        };
        let index = kinds.add(Arc::new(Dynamic::new(resource)));
        assert_eq!(index, builtin);
        assert_eq!(kinds.find("example.com", "Widget"), Some(index));
        assert_eq!(kinds.get(index).unwrap().info().plural, "widgets.example.com");
        kinds.set_present(index, false);
        assert_eq!(kinds.find("example.com", "Widget"), None);
        assert!(kinds.present().iter().all(|(i, _)| *i != index));
        assert_eq!(kinds.get(index).unwrap().info().kind, "Widget", "a gone kind keeps its slot");
        assert!(std::ptr::eq(intern("widgets.example.com"), kinds.get(index).unwrap().info().plural));
    }
}
