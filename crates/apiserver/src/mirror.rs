//! Typed in-memory copies of the few resources the API server itself decides with (RBAC
//! roles and bindings, for authorization on every request), kept in step by watching the
//! watch cache, so a decision never decodes JSON or waits on etcd.

use rkube_api::registry::ResourceInfo;
use rkube_storage::{EventType, WatchCache, WatchItem};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Turns a stored object's JSON into what a mirror keeps.
pub type Decode<T> = fn(&[u8]) -> Result<T, String>;

/// The value a mirror indexes its objects by (e.g. a pod's node), for [`Mirror::indexed`].
pub type Index<T> = fn(&T) -> String;

/// The objects of one resource by etcd key, decoded once.
pub struct Mirror<T> {
    prefix: String,
    objects: Arc<RwLock<Objects<T>>>,
    decode: Decode<T>,
    index: Option<Index<T>>,
}

impl<T> Clone for Mirror<T> {
    fn clone(&self) -> Self {
        Mirror { prefix: self.prefix.clone(), objects: self.objects.clone(), decode: self.decode, index: self.index }
    }
}

/// The mirrored objects by key, and (with an index) their keys by indexed value.
struct Objects<T> {
    by_key: BTreeMap<String, Arc<T>>,
    by_index: BTreeSet<(String, String)>,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects { by_key: BTreeMap::new(), by_index: BTreeSet::new() }
    }
}

impl<T> Objects<T> {
    /// Puts `obj` at `key` (None removes it), keeping the index in step.
    fn set(&mut self, key: String, obj: Option<Arc<T>>, index: Option<Index<T>>) {
        let old = match obj {
            Some(obj) => {
                if let Some(index) = index {
                    self.by_index.insert((index(&obj), key.clone()));
                }
                self.by_key.insert(key.clone(), obj)
            }
            None => self.by_key.remove(&key),
        };
        if let (Some(old), Some(index)) = (old, index) {
            let was = index(&old);
            if self.by_key.get(&key).is_none_or(|now| index(now) != was) {
                self.by_index.remove(&(was, key));
            }
        }
    }
}

/// Decodes the stored JSON as `T`.
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

impl<T: DeserializeOwned + Send + Sync + 'static> Mirror<T> {
    /// Starts mirroring `res` from `cache`, decoded as `T`, until `cancel` fires.
    pub fn spawn(cache: Arc<WatchCache>, res: &'static ResourceInfo, cancel: CancellationToken) -> Mirror<T> {
        Mirror::spawn_with(cache, res, decode_json::<T>, None, cancel)
    }
}

impl<T: Send + Sync + 'static> Mirror<T> {
    /// Starts mirroring `res` from `cache`, each object turned into a `T` by `decode`, and
    /// indexed by `index` when given.
    pub fn spawn_with(
        cache: Arc<WatchCache>,
        res: &'static ResourceInfo,
        decode: Decode<T>,
        index: Option<Index<T>>,
        cancel: CancellationToken,
    ) -> Mirror<T> {
        let mirror = Mirror { prefix: res.key_prefix(), objects: Arc::default(), decode, index };
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
        let mut initial = Some(Objects::default());
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
                    match initial.as_mut() {
                        Some(objects) => objects.set(key, decoded, self.index),
                        None => self.objects.write().unwrap_or_else(|e| e.into_inner()).set(key, decoded, self.index),
                    }
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
        self.objects.read().unwrap_or_else(|e| e.into_inner()).by_key.values().cloned().collect()
    }

    /// The objects whose index value is `value` (none without an index).
    pub fn indexed(&self, value: &str) -> Vec<Arc<T>> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .by_index
            .range((value.to_string(), String::new())..)
            .take_while(|(v, _)| v == value)
            .filter_map(|(_, key)| objects.by_key.get(key).cloned())
            .collect()
    }

    /// The objects of one namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<T>> {
        let start = format!("{}{namespace}/", self.prefix);
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .by_key
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One object by namespace (None for cluster-scoped) and name.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<T>> {
        let key = match namespace {
            Some(ns) => format!("{}{ns}/{name}", self.prefix),
            None => format!("{}{name}", self.prefix),
        };
        self.objects.read().unwrap_or_else(|e| e.into_inner()).by_key.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_of(pod: &(&'static str, &'static str)) -> String {
        pod.1.to_string()
    }

    #[test]
    fn the_index_follows_inserts_moves_and_deletes() {
        let mut objects = Objects::default();
        let index = Some(node_of as Index<(&str, &str)>);
        fn names(o: &Objects<(&'static str, &'static str)>, node: &str) -> Vec<&'static str> {
            o.by_index.iter().filter(|(n, _)| n == node).map(|(_, k)| o.by_key[k].0).collect()
        }
        objects.set("a".into(), Some(Arc::new(("a", "n1"))), index);
        objects.set("b".into(), Some(Arc::new(("b", "n1"))), index);
        assert_eq!(names(&objects, "n1"), ["a", "b"]);
        objects.set("a".into(), Some(Arc::new(("a", "n1"))), index);
        assert_eq!(names(&objects, "n1"), ["a", "b"], "an update on the same node keeps the entry");
        objects.set("b".into(), Some(Arc::new(("b", "n2"))), index);
        assert_eq!((names(&objects, "n1"), names(&objects, "n2")), (vec!["a"], vec!["b"]));
        objects.set("a".into(), None, index);
        assert!(names(&objects, "n1").is_empty());
        assert_eq!(objects.by_index.len(), 1);
    }
}
