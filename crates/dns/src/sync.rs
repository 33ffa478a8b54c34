//! Feeds the [`Zone`] from informers on Services and EndpointSlices: every change queues the
//! Service it concerns, and a single task recomputes that Service's records from the caches.

use crate::Zone;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{Client, Event, Informer, ListParams, Store, object_key};
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Name of the EndpointSlice store's index by owning Service (`namespace/service`).
const SERVICE_INDEX: &str = "service";

/// The `namespace/service` key of the Service a slice belongs to.
fn slice_service_key(slice: &EndpointSlice) -> Option<String> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(format!("{}/{service}", slice.metadata.namespace.as_deref().unwrap_or("default")))
}

/// Keeps `zone` in step with the cluster's Services and EndpointSlices until `token` is
/// cancelled; marks it synced once both caches have been filled.
pub async fn sync_zone(client: &Client, zone: Zone, token: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let mut services = Informer::new(client.api::<Service>(None), ListParams::default());
    let mut slices = Informer::new(client.api::<EndpointSlice>(None), ListParams::default());
    let service_store = services.store();
    let slice_store = slices.store();
    slice_store.add_index(SERVICE_INDEX, |s: &EndpointSlice| slice_service_key(s).into_iter().collect());
    let t = tx.clone();
    services.on_event(move |e| {
        let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
        let _ = t.send(object_key(&s.metadata));
    });
    slices.on_event(move |e| {
        let keys = match e {
            Event::Added(s) | Event::Deleted(s) => [slice_service_key(s), None],
            // A slice relabelled to another Service changes both.
            Event::Updated { old, new } => [slice_service_key(old), slice_service_key(new)],
        };
        for key in keys.into_iter().flatten() {
            let _ = tx.send(key);
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(services.run(token.clone()));
    tasks.spawn(slices.run(token.clone()));
    tokio::select! {
        _ = async { service_store.wait_synced().await; slice_store.wait_synced().await } => {}
        _ = token.cancelled() => return,
    }
    // Everything the first lists brought, plus anything the zone held before (a resync).
    let mut all: BTreeSet<String> = service_store.keys().into_iter().collect();
    all.extend(zone.service_keys());
    for key in &all {
        rebuild(&zone, &service_store, &slice_store, key);
    }
    zone.mark_synced();
    tracing::info!(services = service_store.len(), slices = slice_store.len(), "cluster DNS zone synced");
    loop {
        let first = tokio::select! {
            key = rx.recv() => key,
            _ = token.cancelled() => break,
        };
        let Some(first) = first else { break };
        // Coalesce a burst (a rollout touches the same Service many times).
        let mut batch = BTreeSet::from([first]);
        while let Ok(key) = rx.try_recv() {
            batch.insert(key);
        }
        for key in &batch {
            rebuild(&zone, &service_store, &slice_store, key);
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Recomputes the records of the Service `key` from the caches.
fn rebuild(zone: &Zone, services: &Store<Service>, slices: &Store<EndpointSlice>, key: &str) {
    let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
    match services.get(key) {
        Some(service) => {
            let owned = slices.by_index(SERVICE_INDEX, key);
            zone.apply_service(&service, &owned);
            tracing::debug!(service = key, slices = owned.len(), "DNS records updated");
        }
        None => {
            zone.remove_service(namespace, name);
            tracing::debug!(service = key, "DNS records removed");
        }
    }
}
