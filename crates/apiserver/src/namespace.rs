//! Namespace termination: once a Namespace has a deletionTimestamp, delete everything in it,
//! then release its `kubernetes` finalizer so the Namespace itself goes. Kubernetes runs this
//! in the controller-manager; rkube runs it beside storage in the API server so that
//! `kubectl delete namespace` completes on a cluster of API server + etcd alone.

use crate::meta::{meta_str, name_of};
use crate::objects::{DeleteOptions, Outcome, Part, Registry, WriteOptions};
use rkube_api::{ApiError, ResourceInfo, registry};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

fn namespaces() -> &'static ResourceInfo {
    registry::lookup("", "v1", "namespaces").expect("namespaces are served")
}

/// `PUT /api/v1/namespaces/{name}/finalize`: replaces spec.finalizers only.
pub async fn finalize(registry: &Registry, name: &str, body: Value) -> Result<Outcome, ApiError> {
    let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
    registry
        .write(namespaces(), None, name, Part::Main, &WriteOptions::default(), move |old| {
            let mut new = old.clone();
            new["spec"]["finalizers"] = finalizers.clone();
            Ok(new)
        })
        .await
}

/// Runs the namespace finalizer until shutdown: woken by deletes through `rx`, and at start
/// for namespaces left terminating by an earlier run.
pub fn spawn(registry: Registry, mut rx: UnboundedReceiver<String>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut pending: HashSet<String> = terminating(&registry);
        let mut delay = Duration::from_millis(200);
        loop {
            let mut progress = false;
            for ns in pending.clone() {
                match drain(&registry, &ns).await {
                    Ok(true) => {
                        pending.remove(&ns);
                        registry.terminating.lock().unwrap_or_else(|e| e.into_inner()).remove(&ns);
                        progress = true;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(namespace = %ns, error = %e, "namespace cleanup failed; will retry"),
                }
            }
            delay = if progress { Duration::from_millis(200) } else { (delay * 2).min(Duration::from_secs(10)) };
            tokio::select! {
                Some(ns) = rx.recv() => { pending.insert(ns); delay = Duration::from_millis(200); }
                _ = tokio::time::sleep(delay), if !pending.is_empty() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}

fn terminating(registry: &Registry) -> HashSet<String> {
    let page = registry.cache.list(&namespaces().key_prefix(), None, 0, &|_| true);
    page.items
        .iter()
        .filter_map(|o| serde_json::from_slice::<Value>(&o.bytes).ok())
        .filter(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
        .map(|ns| name_of(&ns).to_string())
        .collect()
}

/// Deletes the namespace's content; when nothing is left, releases the finalizer. Returns
/// whether the namespace is done.
async fn drain(registry: &Registry, ns: &str) -> Result<bool, ApiError> {
    // The cache must have seen every write that completed before the namespace was deleted,
    // or an object created a moment earlier would survive its namespace.
    registry.cache.consistent_revision().await.map_err(|e| crate::error::storage_error(namespaces(), ns, e))?;
    let mut remaining = 0usize;
    let mut seen_storage = HashSet::new();
    for res in registry::served().into_iter().filter(|r| r.namespaced) {
        if !seen_storage.insert(res.key_prefix()) {
            continue;
        }
        let page = registry.cache.list(&res.namespace_prefix(Some(ns)), None, 0, &|_| true);
        for item in page.items {
            remaining += 1;
            let obj: Value = serde_json::from_slice(&item.bytes).unwrap_or_default();
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            match registry.delete(res, Some(ns), name_of(&obj), &DeleteOptions::default()).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    let res = namespaces();
    let current = match registry.get(res, None, ns).await {
        Ok(v) => v,
        Err(ApiError::NotFound { .. }) => return Ok(true),
        Err(e) => return Err(e),
    };
    if meta_str(&current, "deletionTimestamp").is_none() {
        return Ok(true);
    }
    let outcome = registry
        .write(res, None, ns, Part::Main, &WriteOptions::default(), |old| {
            let mut new = old.clone();
            let kept: Vec<Value> = old
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .map(|f| f.iter().filter(|f| *f != "kubernetes").cloned().collect())
                .unwrap_or_default();
            new["spec"]["finalizers"] = json!(kept);
            Ok(new)
        })
        .await;
    match outcome {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}
