//! ServiceAccount controller: every active namespace has a `default` ServiceAccount; one that
//! is deleted is created again.

use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{Event, Store, WorkQueue};
use std::sync::Arc;

/// The account every namespace gets.
pub const DEFAULT: &str = "default";

/// Keeps the `default` ServiceAccount in every namespace.
pub struct ServiceAccountController {
    ctx: Context,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
}

/// Queues a namespace when it appears, and when its `default` account is deleted.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<Namespace>(move |e| {
        if let Event::Added(ns) | Event::Updated { new: ns, .. } = e {
            q.add(ns.metadata.name.clone().unwrap_or_default());
        }
    });
    let q = queue.clone();
    informers.on_event::<ServiceAccount>(move |e| {
        if let Event::Deleted(sa) = e
            && sa.metadata.name.as_deref() == Some(DEFAULT)
        {
            q.add(sa.metadata.namespace.clone().unwrap_or_default());
        }
    });
    let controller =
        ServiceAccountController { ctx: ctx.clone(), namespaces: informers.store(), accounts: informers.store() };
    Registration::new(Arc::new(controller), queue)
}

impl Controller for ServiceAccountController {
    fn name(&self) -> &'static str {
        "serviceaccount"
    }

    async fn reconcile(&self, namespace: &str) -> Result<Action, Error> {
        let Some(ns) = self.namespaces.get(namespace) else { return Ok(Action::Done) };
        let terminating = ns.metadata.deletion_timestamp.is_some()
            || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
        if terminating || self.accounts.get(&format!("{namespace}/{DEFAULT}")).is_some() {
            return Ok(Action::Done);
        }
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.ctx.client.api::<ServiceAccount>(Some(namespace)).create(&account).await {
            Ok(_) => tracing::info!(namespace, "created the default ServiceAccount"),
            // The cache trailed a create; or the namespace is going away.
            Err(e) if e.is_already_exists() || e.code() == Some(403) || e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::Done)
    }
}
