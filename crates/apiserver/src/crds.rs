//! CustomResourceDefinitions in the API server: keeps the served custom resources in step with
//! the stored definitions (Kubernetes' naming and establishing controllers, with their status
//! conditions), and deletes a definition's objects before the definition itself goes (the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer).

use crate::meta::name_of;
use crate::objects::{DeleteOptions, Part, Registry, WriteOptions};
use rkube_api::custom::{self, CLEANUP_FINALIZER};
use rkube_api::{ApiError, ResourceInfo, registry};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a terminating definition's objects are looked at again while they are deleted.
const CLEANUP_RETRY: Duration = Duration::from_secs(1);

fn definitions() -> &'static ResourceInfo {
    registry::lookup(custom::GROUP, "v1", "customresourcedefinitions").expect("CRDs are served")
}

/// Every stored CustomResourceDefinition, from the watch cache.
fn stored(registry: &Registry) -> Vec<Value> {
    let page = registry.cache.list(&definitions().key_prefix(), None, 0, &|_| true);
    page.items.iter().filter_map(|o| serde_json::from_slice::<Value>(&o.bytes).ok()).collect()
}

/// Follows every change of a definition until shutdown, and retries while some definition
/// is being deleted or a pass failed.
pub fn spawn(registry: Registry, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let mut watcher = match registry.cache.watch(&definitions().key_prefix(), 0, false) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch CustomResourceDefinitions; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(CLEANUP_RETRY) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            loop {
                let again = reconcile(&registry).await;
                tokio::select! {
                    item = watcher.recv() => match item {
                        Some(Ok(_)) => {}
                        // Lagged or ended: a fresh watch, after one more pass.
                        Some(Err(_)) | None => break,
                    },
                    _ = tokio::time::sleep(CLEANUP_RETRY), if again => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    });
}

/// One pass: status conditions written where they changed, the established definitions
/// served, the objects of terminating ones deleted. Returns whether another pass is needed.
pub async fn reconcile(registry: &Registry) -> bool {
    let mut again = false;
    let crds = stored(registry);
    let now = crate::meta::now();
    // Each definition with the status it should have. Its resource is served before that
    // status is written, so a client that sees Established=True is never answered 404.
    let wanted: Vec<(Value, Vec<Value>)> = crds
        .iter()
        .map(|crd| {
            let others: Vec<Value> = crds.iter().filter(|o| name_of(o) != name_of(crd)).cloned().collect();
            let mut next = crd.clone();
            next["status"] = custom::status_for(crd, &others, &now);
            (next, others)
        })
        .collect();
    let established: Vec<Value> =
        wanted.iter().map(|(c, _)| c).filter(|c| custom::is_established(c)).cloned().collect();
    custom::install(&established);
    for ((next, others), crd) in wanted.iter().zip(&crds) {
        if crd.get("status") == next.get("status") {
            continue;
        }
        let name = name_of(crd).to_string();
        let written = registry
            .write(definitions(), None, &name, Part::Status, &WriteOptions::default(), |old| {
                let mut new = old.clone();
                new["status"] = custom::status_for(old, others, &now);
                Ok(new)
            })
            .await;
        match written {
            Ok(_) => tracing::info!(crd = %name, "CustomResourceDefinition status updated"),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(crd = %name, error = %e, "cannot update CustomResourceDefinition status");
                again = true;
            }
        }
    }
    for crd in crds.iter().filter(|c| c.pointer("/metadata/deletionTimestamp").is_some()) {
        again = true;
        if let Err(e) = clean_up(registry, crd).await {
            tracing::warn!(crd = %name_of(crd), error = %e, "deleting a CustomResourceDefinition's objects failed; will retry");
        }
    }
    again
}

/// Deletes the objects of a terminating definition; once none is left, removes the cleanup
/// finalizer so the definition goes.
async fn clean_up(registry: &Registry, crd: &Value) -> Result<(), ApiError> {
    let holds = crd
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
    if !holds {
        return Ok(());
    }
    let name = name_of(crd).to_string();
    if let Some(res) = custom::definition_storage(&name) {
        // Objects written a moment before the delete must not escape it.
        registry.cache.consistent_revision().await.map_err(|e| crate::error::storage_error(definitions(), &name, e))?;
        let page = registry.cache.list(&res.key_prefix(), None, 0, &|_| true);
        if !page.items.is_empty() {
            for item in page.items {
                let obj: Value = serde_json::from_slice(&item.bytes).unwrap_or_default();
                if obj.pointer("/metadata/deletionTimestamp").is_some() {
                    continue;
                }
                let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str);
                match registry.delete(res, namespace, name_of(&obj), &DeleteOptions::default()).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
    let removed = registry
        .write(definitions(), None, &name, Part::Main, &WriteOptions::default(), |old| {
            let mut new = old.clone();
            let kept: Vec<Value> = old
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter(|f| *f != CLEANUP_FINALIZER).cloned().collect())
                .unwrap_or_default();
            new["metadata"]["finalizers"] = json!(kept);
            Ok(new)
        })
        .await;
    match removed {
        Ok(_) | Err(ApiError::NotFound { .. }) => {
            tracing::info!(crd = %name, "CustomResourceDefinition's objects deleted; releasing it");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
