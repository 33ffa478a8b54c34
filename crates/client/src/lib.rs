//! The client side of rkube's gRPC resource service, written once for every daemon: typed
//! requests on k8s-openapi types ([`Api`]), informers that keep a local cache in step with the
//! API server ([`Informer`], [`Store`]), untyped access to resources known only at run time
//! ([`Client::dynamic`], [`DynamicObject`]), a rate-limited [`WorkQueue`] of keys, Lease-based
//! [`LeaderElector`], an [`EventRecorder`], and kubeconfig loading.

mod backoff;
pub mod client;
pub mod dynamic;
pub mod error;
pub mod informer;
pub mod kubeconfig;
pub mod leader;
pub mod recorder;
mod rest;
pub mod store;
pub mod workqueue;

pub use backoff::Backoff;
pub use client::{Api, Client, DeleteParams, ListParams, ObjectList, PatchType, WatchEvent};
pub use dynamic::{ApiResource, DynamicObject};
pub use error::ClientError;
pub use informer::{Event, Informer};
pub use kubeconfig::Kubeconfig;
pub use leader::{LeaderElectionConfig, LeaderElector};
pub use recorder::{EventRecorder, EventType};
pub use store::Store;
pub use workqueue::WorkQueue;

/// Result of client calls.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The `namespace/name` key Kubernetes' caches and queues use (`name` for cluster-scoped objects).
pub fn object_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        _ => meta.name.clone().unwrap_or_default(),
    }
}
