//! Root CA certificate publisher: every active namespace has the ConfigMap `kube-root-ca.crt`
//! whose `ca.crt` is the cluster CA (`--root-ca-file`), so pods can verify the API server
//! (the ServiceAccount admission projects it into their token volume). A ConfigMap that is
//! edited is put back, one that is deleted is created again. Without `--root-ca-file` the
//! controller does not run.

use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{Event, Store, WorkQueue};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ConfigMap's name in every namespace.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// The key holding the PEM bundle.
pub const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "The CA bundle of the cluster, to verify the API server through its in-cluster \
     endpoints (the kubernetes Service, kubernetes.default.svc).";

/// Keeps `kube-root-ca.crt` in every namespace.
pub struct RootCaCertPublisher {
    ctx: Context,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
    /// The PEM bundle, or why `--root-ca-file` could not be read.
    ca: Result<String, String>,
}

/// Whether the controller can run: only with `--root-ca-file`.
pub fn configured(ctx: &Context) -> bool {
    ctx.config.root_ca_file.is_some()
}

/// Queues a namespace when it appears or changes, and when its `kube-root-ca.crt` changes or
/// goes away.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<Namespace>(move |e| {
        if let Event::Added(ns) | Event::Updated { new: ns, .. } = e {
            q.add(ns.metadata.name.clone().unwrap_or_default());
        }
    });
    let q = queue.clone();
    informers.on_event::<ConfigMap>(move |e| {
        let (Event::Added(cm) | Event::Deleted(cm) | Event::Updated { new: cm, .. }) = e;
        if cm.metadata.name.as_deref() == Some(CONFIG_MAP) {
            q.add(cm.metadata.namespace.clone().unwrap_or_default());
        }
    });
    let ca = match &ctx.config.root_ca_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--root-ca-file {}: {e}", path.display())),
        None => Err("--root-ca-file is not set".to_string()),
    };
    if let Err(e) = &ca {
        tracing::error!(error = %e, "the root CA cannot be published");
    }
    let controller =
        RootCaCertPublisher { ctx: ctx.clone(), namespaces: informers.store(), config_maps: informers.store(), ca };
    Registration::new(Arc::new(controller), queue)
}

impl Controller for RootCaCertPublisher {
    fn name(&self) -> &'static str {
        "root-ca-cert-publisher"
    }

    async fn reconcile(&self, namespace: &str) -> Result<Action, Error> {
        let ca = self.ca.as_ref().map_err(|e| Error::Invalid(e.clone()))?;
        let Some(ns) = self.namespaces.get(namespace) else { return Ok(Action::Done) };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating {
            return Ok(Action::Done);
        }
        let data = BTreeMap::from([(KEY.to_string(), ca.clone())]);
        let api = self.ctx.client.api::<ConfigMap>(Some(namespace));
        match self.config_maps.get(&format!("{namespace}/{CONFIG_MAP}")) {
            Some(cm) if cm.data.as_ref() == Some(&data) => Ok(Action::Done),
            Some(cm) => {
                // Only the data is ours; labels and annotations someone added stay.
                let mut updated = (*cm).clone();
                updated.data = Some(data);
                updated.binary_data = None;
                match api.update(&updated).await {
                    Ok(_) => tracing::info!(namespace, "restored the root CA ConfigMap"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Action::Done)
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(CONFIG_MAP.into()),
                        namespace: Some(namespace.into()),
                        annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into())])),
                        ..Default::default()
                    },
                    data: Some(data),
                    ..Default::default()
                };
                match api.create(&cm).await {
                    Ok(_) => tracing::info!(namespace, "published the root CA ConfigMap"),
                    // The cache trailed a create; or the namespace is going away.
                    Err(e) if e.is_already_exists() || e.code() == Some(403) || e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Action::Done)
            }
        }
    }
}
