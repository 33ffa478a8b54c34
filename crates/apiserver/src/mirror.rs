//! Typed in-memory copies of the few resources the API server itself decides with (RBAC
//! roles and bindings, for authorization on every request), kept in step by watching the
//! watch cache, so a decision never decodes JSON or waits on etcd.

use rkube_api::registry::ResourceInfo;
use rkube_storage::{EventType, WatchCache, WatchItem};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Turns a stored object's JSON into what a mirror keeps.
pub type Decode<T> = fn(&[u8]) -> Result<T, String>;

/// The objects of one resource by etcd key, decoded once.
pub struct Mirror<T> {
    prefix: String,
    objects: Arc<RwLock<BTreeMap<String, Arc<T>>>>,
    decode: Decode<T>,
}

impl<T> Clone for Mirror<T> {
    fn clone(&self) -> Self {
        Mirror { prefix: self.prefix.clone(), objects: self.objects.clone(), decode: self.decode }
    }
}

/// Decodes the stored JSON as `T`.
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

impl<T: DeserializeOwned + Send + Sync + 'static> Mirror<T> {
    /// Starts mirroring `res` from `cache`, decoded as `T`, until `cancel` fires.
    pub fn spawn(cache: Arc<WatchCache>, res: &'static ResourceInfo, cancel: CancellationToken) -> Mirror<T> {
        Mirror::spawn_with(cache, res, decode_json::<T>, cancel)
    }
}

impl<T: Send + Sync + 'static> Mirror<T> {
    /// Starts mirroring `res` from `cache`, each object turned into a `T` by `decode`.
    pub fn spawn_with(
        cache: Arc<WatchCache>,
        res: &'static ResourceInfo,
        decode: Decode<T>,
        cancel: CancellationToken,
    ) -> Mirror<T> {
        let mirror = Mirror { prefix: res.key_prefix(), objects: Arc::default(), decode };
        let task = mirror.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = task.follow(&cache) => {}
                    _ = cancel.cancelled() => return,
                }
                // The watcher ended (lagged, or the cache restarted): list again shortly.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        mirror
    }

    /// Replays the current objects into a fresh map (swapped in whole, so readers never see a
    /// half-filled one), then applies changes until the watcher ends.
    async fn follow(&self, cache: &WatchCache) {
        let mut watcher = match cache.watch(&self.prefix, 0, true) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(prefix = %self.prefix, error = %e, "cannot watch for the authorization mirror");
                return;
            }
        };
        let mut initial = Some(BTreeMap::new());
        while let Some(item) = watcher.recv().await {
            match item {
                Ok(WatchItem::Progress(_)) => {
                    if let Some(map) = initial.take() {
                        *self.objects.write().unwrap_or_else(|e| e.into_inner()) = map;
                    }
                }
                Ok(WatchItem::Event(event)) => {
                    let key = event.object.key.clone();
                    let decoded = match event.kind {
                        EventType::Deleted => None,
                        _ => match (self.decode)(&event.object.bytes) {
                            Ok(obj) => Some(Arc::new(obj)),
                            Err(e) => {
                                tracing::warn!(key, error = %e, "undecodable object left out of the authorization mirror");
                                None
                            }
                        },
                    };
                    let apply = |map: &mut BTreeMap<String, Arc<T>>| match decoded {
                        Some(obj) => map.insert(key, obj),
                        None => map.remove(&key),
                    };
                    match initial.as_mut() {
                        Some(map) => apply(map),
                        None => apply(&mut self.objects.write().unwrap_or_else(|e| e.into_inner())),
                    };
                }
                Err(e) => {
                    tracing::debug!(prefix = %self.prefix, error = %e, "authorization mirror watch ended");
                    return;
                }
            }
        }
    }

    /// Every object of the resource.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.objects.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// The objects of one namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        let start = format!("{}{namespace}/", self.prefix);
        let map = self.objects.read().unwrap_or_else(|e| e.into_inner());
        map.range(start.clone()..).take_while(|(k, _)| k.starts_with(&start)).map(|(_, v)| v.clone()).collect()
    }

    /// One object by namespace (None for cluster-scoped) and name.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<T>> {
        let key = match namespace {
            Some(ns) => format!("{}{ns}/{name}", self.prefix),
            None => format!("{}{name}", self.prefix),
        };
        self.objects.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }
}
