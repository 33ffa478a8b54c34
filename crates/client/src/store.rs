//! The informer's in-memory cache: objects by `namespace/name` key, plus secondary indexes
//! (by namespace always, others such as by node name on request) kept in step on every change.

use crate::{Event, object_key};
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

/// The index every store has: objects by their namespace.
pub const NAMESPACE_INDEX: &str = "namespace";

/// The conventional name of the by-node index of pods ([`pod_node_name`]).
pub const NODE_NAME_INDEX: &str = "nodeName";

/// Index function for pods by `spec.nodeName` (unscheduled pods are not indexed).
pub fn pod_node_name(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()).into_iter().collect()
}

type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Inner<K> {
    objects: HashMap<String, Arc<K>>,
    index_fns: Vec<(&'static str, IndexFn<K>)>,
    /// index name -> indexed value -> keys.
    indexes: HashMap<&'static str, HashMap<String, HashSet<String>>>,
}

impl<K> Inner<K> {
    fn unindex(&mut self, key: &str, obj: &K) {
        for (name, f) in &self.index_fns {
            let Some(index) = self.indexes.get_mut(name) else { continue };
            for value in f(obj) {
                if let Some(keys) = index.get_mut(&value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        index.remove(&value);
                    }
                }
            }
        }
    }

    fn index(&mut self, key: &str, obj: &K) {
        for (name, f) in &self.index_fns {
            let index = self.indexes.entry(name).or_default();
            for value in f(obj) {
                index.entry(value).or_default().insert(key.to_string());
            }
        }
    }

    fn put(&mut self, key: String, obj: Arc<K>) -> Option<Arc<K>> {
        let old = self.objects.remove(&key);
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &obj);
        self.objects.insert(key, obj);
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.objects.remove(key);
        if let Some(old) = &old {
            self.unindex(key, old);
        }
        old
    }
}

/// A shared, indexed cache of objects of kind `K`; clones share the same cache.
pub struct Store<K> {
    inner: Arc<RwLock<Inner<K>>>,
    synced: Arc<watch::Sender<bool>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store { inner: self.inner.clone(), synced: self.synced.clone() }
    }
}

impl<K: Metadata<Ty = ObjectMeta> + Send + Sync + 'static> Default for Store<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Metadata<Ty = ObjectMeta> + Send + Sync + 'static> Store<K> {
    /// An empty store with the namespace index.
    pub fn new() -> Self {
        let store = Store {
            inner: Arc::new(RwLock::new(Inner {
                objects: HashMap::new(),
                index_fns: Vec::new(),
                indexes: HashMap::new(),
            })),
            synced: Arc::new(watch::channel(false).0),
        };
        store.add_index(NAMESPACE_INDEX, |o: &K| o.metadata().namespace.iter().cloned().collect());
        store
    }

    // A panic while holding the lock leaves the maps consistent (each change is applied
    // whole), so a poisoned lock is used as is.
    fn read(&self) -> RwLockReadGuard<'_, Inner<K>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<K>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an index: `f` gives the values an object is found under (e.g. its node name).
    /// Objects already cached are indexed at once.
    pub fn add_index(&self, name: &'static str, f: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) {
        let mut inner = self.write();
        let f: IndexFn<K> = Arc::new(f);
        let mut index: HashMap<String, HashSet<String>> = HashMap::new();
        for (key, obj) in &inner.objects {
            for value in f(obj) {
                index.entry(value).or_default().insert(key.clone());
            }
        }
        inner.index_fns.retain(|(n, _)| *n != name);
        inner.index_fns.push((name, f));
        inner.indexes.insert(name, index);
    }

    /// The object with this `namespace/name` key.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.read().objects.get(key).cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().objects.values().cloned().collect()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<String> {
        self.read().objects.keys().cloned().collect()
    }

    /// The objects an index lists under `value`.
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let inner = self.read();
        let Some(keys) = inner.indexes.get(index).and_then(|i| i.get(value)) else { return Vec::new() };
        keys.iter().filter_map(|k| inner.objects.get(k).cloned()).collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the first list has been loaded.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Inserts or replaces an object; returns the previous one.
    pub fn insert(&self, obj: Arc<K>) -> Option<Arc<K>> {
        let key = object_key(obj.metadata());
        self.write().put(key, obj)
    }

    /// Removes the object with this key; returns it.
    pub fn remove(&self, key: &str) -> Option<Arc<K>> {
        self.write().remove(key)
    }

    /// Replaces the whole content with a fresh list; returns what changed.
    pub(crate) fn replace(&self, items: Vec<K>) -> Vec<Event<K>> {
        let mut changes = Vec::new();
        {
            let mut inner = self.write();
            let mut fresh: HashSet<String> = HashSet::with_capacity(items.len());
            for obj in items {
                let key = object_key(obj.metadata());
                fresh.insert(key.clone());
                let new = Arc::new(obj);
                let unchanged = inner.objects.get(&key).is_some_and(|old| {
                    old.metadata().resource_version.is_some()
                        && old.metadata().resource_version == new.metadata().resource_version
                });
                if unchanged {
                    continue;
                }
                changes.push(match inner.put(key, new.clone()) {
                    Some(old) => Event::Updated { old, new },
                    None => Event::Added(new),
                });
            }
            let gone: Vec<String> = inner.objects.keys().filter(|k| !fresh.contains(*k)).cloned().collect();
            changes.extend(gone.iter().filter_map(|key| inner.remove(key)).map(Event::Deleted));
        }
        self.synced.send_replace(true);
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str, node: &str, rv: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.metadata.name = Some(name.into());
        p.metadata.resource_version = Some(rv.into());
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec { node_name: Some(node.into()), ..Default::default() });
        p
    }

    #[test]
    fn indexes_follow_updates_and_removals() {
        let store = Store::<Pod>::new();
        store.add_index(NODE_NAME_INDEX, pod_node_name);
        store.insert(Arc::new(pod("a", "p1", "n1", "1")));
        store.insert(Arc::new(pod("b", "p2", "n1", "2")));
        assert_eq!(store.by_index(NODE_NAME_INDEX, "n1").len(), 2);
        assert_eq!(store.by_index(NAMESPACE_INDEX, "a").len(), 1);
        store.insert(Arc::new(pod("a", "p1", "n2", "3")));
        assert_eq!(store.by_index(NODE_NAME_INDEX, "n1").len(), 1);
        assert_eq!(store.by_index(NODE_NAME_INDEX, "n2").len(), 1);
        store.remove("b/p2");
        assert!(store.by_index(NODE_NAME_INDEX, "n1").is_empty());
        assert!(store.by_index(NAMESPACE_INDEX, "b").is_empty());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn index_added_late_covers_existing_objects() {
        let store = Store::<Pod>::new();
        store.insert(Arc::new(pod("a", "p1", "n1", "1")));
        store.add_index(NODE_NAME_INDEX, pod_node_name);
        assert_eq!(store.by_index(NODE_NAME_INDEX, "n1").len(), 1);
    }

    #[test]
    fn replace_reports_only_changes() {
        let store = Store::<Pod>::new();
        assert!(!store.is_synced());
        store.replace(vec![pod("a", "p1", "n1", "1"), pod("a", "p2", "n1", "1")]);
        assert!(store.is_synced());
        let changes = store.replace(vec![pod("a", "p1", "n1", "1"), pod("a", "p3", "n1", "5")]);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(&changes[0], Event::Added(p) if p.metadata.name.as_deref() == Some("p3")));
        assert!(matches!(&changes[1], Event::Deleted(p) if p.metadata.name.as_deref() == Some("p2")));
        let mut keys = store.keys();
        keys.sort();
        assert_eq!(keys, vec!["a/p1", "a/p3"]);
    }
}
