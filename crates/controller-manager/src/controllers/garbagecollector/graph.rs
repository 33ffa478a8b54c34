//! The collector's in-memory ownership graph, built from informer events: every watched object
//! by uid with its ownerReferences and deletion state, and for every owner uid (present or not)
//! the dependents that name it. Applying a change answers which work-queue keys it concerns, so
//! informer handlers stay cheap and the graph alone decides what to look at again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Finalizer that makes the garbage collector delete an object's dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer that makes the garbage collector orphan an object's dependents first.
pub const ORPHAN: &str = "orphan";

/// The kind of a node, as the kind table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// API group ("" for core).
    pub group: &'static str,
    /// Kind, e.g. "Pod".
    pub kind: &'static str,
    /// Plural resource name, the first segment of work-queue keys.
    pub plural: &'static str,
    /// Whether objects of the kind live in a namespace.
    pub namespaced: bool,
}

/// One object of the graph: identity, owners and the deletion state the collector acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index of the node's kind in the kind table.
    pub kind: usize,
    /// The node's kind.
    pub info: KindInfo,
    /// Work-queue key: `plural/namespace/name`, or `plural/name` for cluster scope.
    pub key: String,
    /// Namespace ("" for cluster scope).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
    /// metadata.ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// deletionTimestamp is set.
    pub deleting: bool,
    /// Being deleted with the `foregroundDeletion` finalizer: its dependents go first.
    pub foreground: bool,
    /// Being deleted with the `orphan` finalizer: its dependents lose their reference first.
    pub orphan: bool,
}

/// The work-queue key of an object of `info`'s kind.
pub fn key_of(info: &KindInfo, namespace: &str, name: &str) -> String {
    if namespace.is_empty() { format!("{}/{name}", info.plural) } else { format!("{}/{namespace}/{name}", info.plural) }
}

impl Node {
    /// The node of an object of kind `kind` (index) / `info`; `None` for an object without uid.
    pub fn from_meta(kind: usize, info: KindInfo, meta: &ObjectMeta) -> Option<Node> {
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let deleting = meta.deletion_timestamp.is_some();
        let has = |f: &str| meta.finalizers.as_ref().is_some_and(|fs| fs.iter().any(|x| x == f));
        Some(Node {
            kind,
            info,
            key: key_of(&info, &namespace, &name),
            foreground: deleting && has(FOREGROUND),
            orphan: deleting && has(ORPHAN),
            deleting,
            owners: meta.owner_references.clone().unwrap_or_default(),
            namespace,
            name,
            uid,
        })
    }

    /// This node's reference to the owner with `uid`, if any.
    pub fn reference_to(&self, uid: &str) -> Option<&OwnerReference> {
        self.owners.iter().find(|r| r.uid == uid)
    }

    /// Whether this node holds up the foreground deletion of the owner with `uid`.
    pub fn blocks(&self, uid: &str) -> bool {
        self.reference_to(uid).is_some_and(|r| r.block_owner_deletion == Some(true))
    }

    /// Whether `reference` (made by an object in `namespace`) names this node: uid, group,
    /// kind and name agree, and a namespaced owner lives in the dependent's namespace.
    pub fn is_named_by(&self, reference: &OwnerReference, namespace: &str) -> bool {
        let expected_namespace = if self.info.namespaced { namespace } else { "" };
        self.uid == reference.uid
            && self.info.kind == reference.kind
            && self.info.group == group_of(&reference.api_version)
            && self.name == reference.name
            && self.namespace == expected_namespace
    }
}

/// The group of an apiVersion ("apps/v1" -> "apps", "v1" -> "").
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Objects by uid and the reverse ownerReference edges.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Arc<Node>>,
    keys: HashMap<String, String>,
    /// Owner uid -> uids of the objects referring to it; kept while any reference remains,
    /// whether or not the owner is (still) known.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// The node with this work-queue key.
    pub fn by_key(&self, key: &str) -> Option<Arc<Node>> {
        self.nodes.get(self.keys.get(key)?).cloned()
    }

    /// The node with this uid.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<Node>> {
        self.nodes.get(uid).cloned()
    }

    /// The known objects referring to the owner with `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<Arc<Node>> {
        let Some(uids) = self.dependents.get(uid) else { return Vec::new() };
        uids.iter().filter_map(|u| self.nodes.get(u).cloned()).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Records the current state of an object; returns the keys to reconcile because of it.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut queue = Vec::new();
        // Another object under the same key: the previous one was deleted unseen.
        if let Some(old_uid) = self.keys.get(&node.key).filter(|u| **u != node.uid).cloned() {
            queue.extend(self.remove(&old_uid));
        }
        let prev = self.nodes.get(&node.uid).cloned();
        let owners_changed = prev.as_ref().is_none_or(|p| p.owners != node.owners);
        let state_changed = prev
            .as_ref()
            .is_none_or(|p| (p.deleting, p.foreground, p.orphan) != (node.deleting, node.foreground, node.orphan));
        if !owners_changed && !state_changed {
            // A status or spec change: nothing the collector decides on moved.
            return queue;
        }
        if let Some(p) = &prev {
            self.unlink(p);
        }
        for r in &node.owners {
            self.dependents.entry(r.uid.clone()).or_default().insert(node.uid.clone());
        }
        if !node.owners.is_empty() || node.foreground || node.orphan {
            queue.push(node.key.clone());
        }
        if state_changed && node.foreground {
            // Its dependents must now be deleted (in foreground) before it goes.
            queue.extend(self.dependents(&node.uid).iter().map(|d| d.key.clone()));
        }
        // Owners waiting on their dependents look again: this one may no longer block them.
        let owner_uids: HashSet<&str> =
            prev.iter().flat_map(|p| p.owners.iter()).chain(node.owners.iter()).map(|r| r.uid.as_str()).collect();
        queue.extend(self.waiting_owners(owner_uids));
        self.keys.insert(node.key.clone(), node.uid.clone());
        self.nodes.insert(node.uid.clone(), Arc::new(node));
        queue
    }

    /// Forgets a deleted object; returns the keys to reconcile because of it: its dependents
    /// (their reference may now dangle) and the owners waiting for it to go.
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else { return Vec::new() };
        if self.keys.get(&node.key).is_some_and(|u| u == uid) {
            self.keys.remove(&node.key);
        }
        self.unlink(&node);
        let mut queue: Vec<String> = self.dependents(uid).iter().map(|d| d.key.clone()).collect();
        queue.extend(self.waiting_owners(node.owners.iter().map(|r| r.uid.as_str()).collect()));
        queue
    }

    /// Forgets every object of the kind at `kind` (its definition went away); returns the keys
    /// their removals concern, as [`Graph::remove`] does for each.
    pub fn remove_kind(&mut self, kind: usize) -> Vec<String> {
        let uids: Vec<String> = self.nodes.values().filter(|n| n.kind == kind).map(|n| n.uid.clone()).collect();
        let mut queue = Vec::new();
        for uid in uids {
            queue.extend(self.remove(&uid));
        }
        queue.retain(|k| self.keys.contains_key(k));
        queue
    }

    /// The keys of the objects naming an owner of `group`/`kind`: they look again when that
    /// kind becomes known, since until then such an owner counted as present unseen.
    pub fn referring_to(&self, group: &str, kind: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.owners.iter().any(|r| r.kind == kind && group_of(&r.api_version) == group))
            .map(|n| n.key.clone())
            .collect()
    }

    fn unlink(&mut self, node: &Node) {
        for r in &node.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
    }

    fn waiting_owners(&self, uids: HashSet<&str>) -> Vec<String> {
        uids.into_iter()
            .filter_map(|u| self.nodes.get(u))
            .filter(|o| o.foreground || o.orphan)
            .map(|o| o.key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const CM: KindInfo = KindInfo { group: "", kind: "ConfigMap", plural: "configmaps", namespaced: true };
    const POD: KindInfo = KindInfo { group: "", kind: "Pod", plural: "pods", namespaced: true };
    const NODE: KindInfo = KindInfo { group: "", kind: "Node", plural: "nodes", namespaced: false };

    fn reference(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn node(info: KindInfo, ns: &str, name: &str, uid: &str, owners: Vec<OwnerReference>) -> Node {
        let meta = ObjectMeta {
            namespace: (!ns.is_empty()).then(|| ns.to_string()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            owner_references: Some(owners),
            ..Default::default()
        };
        Node::from_meta(0, info, &meta).unwrap()
    }

    fn deleting(n: Node, finalizer: &str) -> Node {
        let meta = ObjectMeta {
            namespace: Some(n.namespace.clone()),
            name: Some(n.name.clone()),
            uid: Some(n.uid.clone()),
            owner_references: Some(n.owners.clone()),
            deletion_timestamp: Some(Time(jiff::Timestamp::now())),
            finalizers: Some(vec![finalizer.to_string()]),
            ..Default::default()
        };
        Node::from_meta(0, n.info, &meta).unwrap()
    }

    #[test]
    fn keys_and_groups() {
        assert_eq!(key_of(&POD, "ns", "p"), "pods/ns/p");
        assert_eq!(key_of(&NODE, "", "n1"), "nodes/n1");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
    }

    #[test]
    fn dependents_are_indexed_by_owner_uid_even_before_the_owner_is_known() {
        let mut g = Graph::default();
        let q = g.upsert(node(POD, "ns", "p1", "p1", vec![reference("ConfigMap", "cm", "cm-uid", true)]));
        assert_eq!(q, vec!["pods/ns/p1".to_string()]);
        assert_eq!(g.dependents("cm-uid").len(), 1);
        // An owner without owners of its own is not queued.
        assert!(g.upsert(node(CM, "ns", "cm", "cm-uid", vec![])).is_empty());
        // Removing the owner queues its dependents.
        assert_eq!(g.remove("cm-uid"), vec!["pods/ns/p1".to_string()]);
        assert_eq!(g.dependents("cm-uid").len(), 1, "the dependent still names the owner");
        g.remove("p1");
        assert!(g.dependents("cm-uid").is_empty());
        assert!(g.is_empty());
    }

    #[test]
    fn unchanged_ownership_queues_nothing() {
        let mut g = Graph::default();
        let p = node(POD, "ns", "p1", "p1", vec![reference("ConfigMap", "cm", "cm-uid", false)]);
        g.upsert(p.clone());
        assert!(g.upsert(p).is_empty());
    }

    #[test]
    fn foreground_deletion_queues_dependents_and_their_changes_queue_the_owner() {
        let mut g = Graph::default();
        g.upsert(node(CM, "ns", "cm", "cm-uid", vec![]));
        g.upsert(node(POD, "ns", "p1", "p1", vec![reference("ConfigMap", "cm", "cm-uid", true)]));
        let mut q = g.upsert(deleting(node(CM, "ns", "cm", "cm-uid", vec![]), FOREGROUND));
        q.sort();
        assert_eq!(q, vec!["configmaps/ns/cm".to_string(), "pods/ns/p1".to_string()]);
        let owner = g.by_key("configmaps/ns/cm").unwrap();
        assert!(owner.foreground && !owner.orphan);
        assert!(g.dependents("cm-uid")[0].blocks("cm-uid"));
        // The dependent going queues the waiting owner.
        assert_eq!(g.remove("p1"), vec!["configmaps/ns/cm".to_string()]);
    }

    #[test]
    fn a_new_object_under_an_old_key_replaces_the_old_one() {
        let mut g = Graph::default();
        g.upsert(node(CM, "ns", "cm", "old", vec![]));
        g.upsert(node(POD, "ns", "p1", "p1", vec![reference("ConfigMap", "cm", "old", false)]));
        let q = g.upsert(node(CM, "ns", "cm", "new", vec![]));
        assert_eq!(q, vec!["pods/ns/p1".to_string()]);
        assert!(g.by_uid("old").is_none());
        assert_eq!(g.by_key("configmaps/ns/cm").unwrap().uid, "new");
    }

    #[test]
    fn a_kind_leaves_with_all_its_nodes_and_queues_their_dependents() {
        let mut g = Graph::default();
        let widget = KindInfo { group: "example.com", kind: "Widget", plural: "widgets.example.com", namespaced: true };
        let meta = ObjectMeta {
            namespace: Some("ns".into()),
            name: Some("w".into()),
            uid: Some("w-uid".into()),
            ..Default::default()
        };
        g.upsert(Node::from_meta(7, widget, &meta).unwrap());
        let owned = OwnerReference {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            ..reference("", "w", "w-uid", false)
        };
        g.upsert(node(CM, "ns", "cm", "cm-uid", vec![owned]));
        assert_eq!(g.referring_to("example.com", "Widget"), vec!["configmaps/ns/cm".to_string()]);
        assert!(g.referring_to("", "Widget").is_empty());
        assert_eq!(g.remove_kind(7), vec!["configmaps/ns/cm".to_string()]);
        assert!(g.by_key("widgets.example.com/ns/w").is_none());
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn owners_are_matched_by_uid_kind_name_and_namespace() {
        let owner = node(CM, "ns", "cm", "cm-uid", vec![]);
        assert!(owner.is_named_by(&reference("ConfigMap", "cm", "cm-uid", false), "ns"));
        assert!(!owner.is_named_by(&reference("ConfigMap", "cm", "cm-uid", false), "other"));
        assert!(!owner.is_named_by(&reference("Secret", "cm", "cm-uid", false), "ns"));
        assert!(!owner.is_named_by(&reference("ConfigMap", "x", "cm-uid", false), "ns"));
        let n = node(NODE, "", "n1", "n-uid", vec![]);
        assert!(n.is_named_by(&reference("Node", "n1", "n-uid", false), "ns"));
    }
}
