//! The kinds the garbage collector watches (those that have dependents, or own them), and typed
//! requests on each behind one object-safe trait, so the collector can read, patch and delete
//! an object knowing only its kind's index in the table.

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
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{Client, ClientError, DeleteParams, Event, EventRecorder, EventType, ListParams, PatchType};
use serde_json::Value;
use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

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

    /// Feeds every change of this kind to `sink`.
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
        Box::pin(async move {
            let namespace = if self.info().namespaced { namespace } else { "" };
            let list = api::<K>(client, namespace).list(&ListParams::default()).await?;
            Ok(list
                .items
                .into_iter()
                .map(|o| o.metadata().clone())
                .filter(|m| m.owner_references.iter().flatten().any(|r| r.uid == uid))
                .collect())
        })
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

/// Every kind the collector watches; an index into this table identifies a kind.
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
}
