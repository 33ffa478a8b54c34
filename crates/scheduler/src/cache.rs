//! The scheduler's view of the cluster: nodes, the pods assigned (or assumed) to them, and the
//! indexes that keep pod (anti-)affinity cheap on large clusters.

use crate::hash::FastMap;
use crate::pod_info::{AffinityTerm, BIND_ALL_HOST_IP, HostPort, PodInfo};
use crate::resources::{Resources, node_allocatable};
use crate::selector::Operator;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an assumed pod waits for the informer to confirm its binding before the cache
/// drops it, unless the caller picks another TTL.
pub const DEFAULT_ASSUMED_POD_TTL: Duration = Duration::from_secs(30);

/// The weight an existing pod's *required* affinity term gives, when scoring, to nodes in a
/// domain where the incoming pod would satisfy it (Kubernetes' hardPodAffinityWeight default).
pub const HARD_POD_AFFINITY_WEIGHT: i32 = 1;

/// Why a cache operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Assume was asked for a pod the cache already accounts for.
    #[error("pod {0} is already in the scheduler cache")]
    PodAlreadyInCache(String),
    /// Assume was asked for a node the cache doesn't know.
    #[error("node {0} is not in the scheduler cache")]
    NodeNotFound(String),
    /// Forget was asked for a pod that isn't assumed (never was, or was already confirmed).
    #[error("pod {0} is not assumed")]
    PodNotAssumed(String),
}

/// The node's Ready condition, read once per node update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Ready is True.
    Ready,
    /// Ready is False, or the node hasn't reported it yet.
    NotReady,
    /// Ready is Unknown (the kubelet stopped reporting).
    Unknown,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// One node and what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node object.
    pub node: Arc<Node>,
    /// What the node offers (status.allocatable, else capacity).
    pub allocatable: Resources,
    /// The node's Ready condition.
    pub readiness: Readiness,
    /// Pods bound or assumed to the node, by "namespace/name".
    pub pods: HashMap<String, Arc<PodInfo>>,
    /// Sum of the pods' declared requests.
    pub requested: Resources,
    /// Sum of the pods' requests with scoring defaults.
    pub non_zero_requested: Resources,
    /// Host ports in use, with how many pods use each (so removing one pod of two that
    /// somehow share a port keeps it marked used).
    pub used_host_ports: HashMap<HostPort, u32>,
    /// Number of pods per controlling owner UID, for spreading replicas.
    pub owner_counts: FastMap<String, u32>,
    /// The node's zone (region and zone labels together), interned by the cache so spreading
    /// can count per zone without hashing strings; None without zone labels.
    pub zone: Option<u32>,
}

fn readiness(node: &Node) -> Readiness {
    let ready =
        node.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready.map(|c| c.status.as_str()) {
        Some("True") => Readiness::Ready,
        Some("Unknown") => Readiness::Unknown,
        _ => Readiness::NotReady,
    }
}

impl NodeInfo {
    fn new(node: Arc<Node>) -> NodeInfo {
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            allocatable: node_allocatable(&node),
            readiness: readiness(&node),
            node,
            pods: HashMap::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            used_host_ports: HashMap::new(),
            owner_counts: FastMap::default(),
            zone: None,
        }
    }

    /// A stand-in for a node the cache has pods for but no Node object.
    fn placeholder(name: &str) -> NodeInfo {
        NodeInfo::new(Arc::new(Node {
            metadata: ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() },
            ..Node::default()
        }))
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node_allocatable(&node);
        self.readiness = readiness(&node);
        self.node = node;
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// Whether binding `port` would clash with a port in use: the same protocol and port on
    /// the same IP, or on any IP when either side binds 0.0.0.0.
    pub fn host_port_conflicts(&self, port: &HostPort) -> bool {
        if self.used_host_ports.is_empty() {
            return false;
        }
        if port.ip == BIND_ALL_HOST_IP {
            return self.used_host_ports.keys().any(|u| u.port == port.port && u.protocol == port.protocol);
        }
        let mut probe = port.clone();
        if self.used_host_ports.contains_key(&probe) {
            return true;
        }
        probe.ip = BIND_ALL_HOST_IP.to_string();
        self.used_host_ports.contains_key(&probe)
    }

    fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested += p.requests;
        self.non_zero_requested += p.non_zero_requests;
        for hp in &p.host_ports {
            *self.used_host_ports.entry(hp.clone()).or_default() += 1;
        }
        if let Some(uid) = &p.owner_uid {
            *self.owner_counts.entry(uid.clone()).or_default() += 1;
        }
        self.pods.insert(p.key.clone(), p);
    }

    fn remove_pod(&mut self, key: &str) {
        let Some(p) = self.pods.remove(key) else {
            return;
        };
        self.requested -= p.requests;
        self.non_zero_requested -= p.non_zero_requests;
        for hp in &p.host_ports {
            decrement(&mut self.used_host_ports, hp);
        }
        if let Some(uid) = &p.owner_uid {
            decrement(&mut self.owner_counts, uid);
        }
    }
}

fn decrement<K, Q, S>(map: &mut HashMap<K, u32, S>, key: &Q)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
    S: std::hash::BuildHasher,
{
    if let Some(c) = map.get_mut(key) {
        *c = c.saturating_sub(1);
        if *c == 0 {
            map.remove(key);
        }
    }
}

/// Pods of one namespace, indexed by label so that a term's selector finds its pods without
/// scanning the namespace.
#[derive(Debug, Default)]
struct NamespaceIndex {
    pods: HashMap<String, Arc<PodInfo>>,
    /// label key -> label value -> pod key -> pod.
    by_label: HashMap<String, LabelValues>,
}

#[derive(Debug, Default)]
struct LabelValues {
    pods: usize,
    values: HashMap<String, HashMap<String, Arc<PodInfo>>>,
}

impl NamespaceIndex {
    fn insert(&mut self, p: &Arc<PodInfo>) {
        for (k, v) in p.labels() {
            let lv = self.by_label.entry(k.clone()).or_default();
            if lv.values.entry(v.clone()).or_default().insert(p.key.clone(), p.clone()).is_none() {
                lv.pods += 1;
            }
        }
        self.pods.insert(p.key.clone(), p.clone());
    }

    fn remove(&mut self, p: &PodInfo) {
        for (k, v) in p.labels() {
            let Some(lv) = self.by_label.get_mut(k) else {
                continue;
            };
            if let Some(pods) = lv.values.get_mut(v) {
                if pods.remove(&p.key).is_some() {
                    lv.pods -= 1;
                }
                if pods.is_empty() {
                    lv.values.remove(v);
                }
            }
            if lv.values.is_empty() {
                self.by_label.remove(k);
            }
        }
        self.pods.remove(&p.key);
    }

    /// Calls `f` for each pod the term's selector matches.
    fn for_each_match(&self, term: &AffinityTerm, f: &mut impl FnMut(&PodInfo)) {
        let Some(reqs) = term.selector.requirements() else {
            return;
        };
        // Narrow by the requirement with the fewest candidate pods; In and Exists can only
        // hold for pods that carry the key, so the label index has all candidates.
        let mut best: Option<(usize, &crate::selector::Requirement)> = None;
        for r in reqs {
            let size = match r.operator {
                Operator::In => self
                    .by_label
                    .get(&r.key)
                    .map_or(0, |lv| r.values.iter().map(|v| lv.values.get(v).map_or(0, HashMap::len)).sum()),
                Operator::Exists => self.by_label.get(&r.key).map_or(0, |lv| lv.pods),
                Operator::NotIn | Operator::DoesNotExist => continue,
            };
            if best.is_none_or(|(s, _)| size < s) {
                best = Some((size, r));
            }
        }
        // A selector that is just the indexed requirement needs no re-check of candidates.
        let exact = reqs.len() == 1;
        let mut visit = |p: &Arc<PodInfo>| {
            if exact && best.is_some() || term.selector.matches(p.labels()) {
                f(p);
            }
        };
        match best {
            None => self.pods.values().for_each(visit),
            Some((0, _)) => {}
            Some((_, r)) => {
                let Some(lv) = self.by_label.get(&r.key) else {
                    return;
                };
                if r.operator == Operator::In {
                    for v in &r.values {
                        lv.values.get(v).into_iter().flat_map(HashMap::values).for_each(&mut visit);
                    }
                } else {
                    lv.values.values().flat_map(HashMap::values).for_each(visit);
                }
            }
        }
    }
}

/// Existing pods that share one affinity term, counted per node. Pods of one workload carry
/// identical terms, so this stays small even with thousands of such pods.
#[derive(Debug, Default, Clone)]
pub struct TermGroup {
    /// Node name -> number of pods on it carrying the term.
    pub nodes: FastMap<String, u32>,
    /// The subset of those pods that the term doesn't select itself (e.g. a web pod keeping
    /// away from db pods). A pod whose own required anti-affinity includes this very term
    /// already finds the self-selected carriers through the term's selector, so it only needs
    /// to look at these.
    pub foreign: FastMap<String, u32>,
}

fn group_add(group: &mut TermGroup, node: &str, selects_itself: bool) {
    *group.nodes.entry(node.to_string()).or_default() += 1;
    if !selects_itself {
        *group.foreign.entry(node.to_string()).or_default() += 1;
    }
}

fn group_remove<K: std::hash::Hash + Eq>(
    groups: &mut HashMap<K, TermGroup>,
    key: &K,
    node: &str,
    selects_itself: bool,
) {
    if let Some(g) = groups.get_mut(key) {
        decrement(&mut g.nodes, node);
        if !selects_itself {
            decrement(&mut g.foreign, node);
        }
        if g.nodes.is_empty() {
            groups.remove(key);
        }
    }
}

/// Nodes and assigned pods as the scheduler sees them, including pods it has assumed onto a
/// node but whose binding the informer hasn't confirmed yet.
#[derive(Debug)]
pub struct SchedulerCache {
    nodes: Vec<NodeInfo>,
    node_index: FastMap<String, usize>,
    /// Zone key (region + zone) -> id; ids are never reused, zones are few.
    zone_ids: HashMap<String, u32>,
    /// Nodes that pods are accounted to but that the cache has no Node for (deleted while
    /// pods were still on them, or not yet seen). They aren't scheduled onto; they keep the
    /// pods' accounting until the pods go or the node (re)appears.
    detached: HashMap<String, NodeInfo>,
    pods: HashMap<String, Arc<PodInfo>>,
    /// Assumed pod key -> when to give up waiting for confirmation.
    assumed: HashMap<String, Instant>,
    assumed_ttl: Duration,
    namespaces: HashMap<String, NamespaceIndex>,
    /// Required anti-affinity terms of assigned pods.
    anti_affinity: HashMap<AffinityTerm, TermGroup>,
    /// Terms of assigned pods that make the incoming pod score higher (positive weight) or
    /// lower (negative) in their domain: required affinity, preferred affinity and anti-affinity.
    scoring_terms: HashMap<(AffinityTerm, i32), TermGroup>,
}

impl Default for SchedulerCache {
    fn default() -> Self {
        SchedulerCache::new(DEFAULT_ASSUMED_POD_TTL)
    }
}

impl SchedulerCache {
    /// An empty cache whose assumed pods expire `assumed_ttl` after assume/finish_binding.
    pub fn new(assumed_ttl: Duration) -> SchedulerCache {
        SchedulerCache {
            nodes: Vec::new(),
            node_index: FastMap::default(),
            zone_ids: HashMap::new(),
            detached: HashMap::new(),
            pods: HashMap::new(),
            assumed: HashMap::new(),
            assumed_ttl,
            namespaces: HashMap::new(),
            anti_affinity: HashMap::new(),
            scoring_terms: HashMap::new(),
        }
    }

    // ---- nodes ----

    /// Adds a node, or updates it if known. Pods already accounted to that name stay.
    pub fn add_node(&mut self, node: impl Into<Arc<Node>>) {
        let node = node.into();
        let name = node.metadata.name.clone().unwrap_or_default();
        let zone = self.zone_id(&node);
        if let Some(&i) = self.node_index.get(&name) {
            self.nodes[i].set_node(node);
            self.nodes[i].zone = zone;
            return;
        }
        let mut info = match self.detached.remove(&name) {
            Some(mut d) => {
                d.set_node(node);
                d
            }
            None => NodeInfo::new(node),
        };
        info.zone = zone;
        self.node_index.insert(name, self.nodes.len());
        self.nodes.push(info);
    }

    /// Interns the node's zone key, Kubernetes' "region:\x00:zone" from the topology labels
    /// (falling back to the deprecated failure-domain.beta ones).
    fn zone_id(&mut self, node: &Node) -> Option<u32> {
        let labels = node.metadata.labels.as_ref()?;
        let first = |keys: [&str; 2]| keys.iter().find_map(|k| labels.get(*k)).map_or("", String::as_str);
        let region = first(["topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"]);
        let zone = first(["topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"]);
        if region.is_empty() && zone.is_empty() {
            return None;
        }
        let key = format!("{region}:\x00:{zone}");
        let next = u32::try_from(self.zone_ids.len()).unwrap_or(u32::MAX);
        Some(*self.zone_ids.entry(key).or_insert(next))
    }

    /// Same as [`SchedulerCache::add_node`]: informer updates carry the whole object.
    pub fn update_node(&mut self, node: impl Into<Arc<Node>>) {
        self.add_node(node);
    }

    /// Removes a node. Pods still accounted to it stay in the cache (off the schedulable set)
    /// until they are removed themselves.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.node_index.remove(name) else {
            return;
        };
        let info = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.node_index.insert(moved.name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.detached.insert(info.name.clone(), info);
        }
    }

    /// The schedulable nodes, in a stable order (changed only by removals).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// A schedulable node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    /// Number of schedulable nodes.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    // ---- pods ----

    /// Handles an informer add of a pod. Pods without spec.nodeName aren't placed (unless
    /// assumed, which stays); a pod that is assumed is confirmed (moved if it landed on
    /// another node) without being counted twice; finished pods are dropped since they hold
    /// no resources.
    pub fn add_pod(&mut self, pod: impl Into<Arc<Pod>>) {
        let info = PodInfo::new(pod);
        let key = info.key.clone();
        if info.is_terminal() {
            self.remove_pod(&key);
            return;
        }
        if info.node_name.is_empty() {
            if !self.assumed.contains_key(&key) {
                self.unaccount(&key);
            }
            return;
        }
        self.assumed.remove(&key);
        self.unaccount(&key);
        self.account(Arc::new(info));
    }

    /// Handles an informer update of a pod; same rules as [`SchedulerCache::add_pod`].
    pub fn update_pod(&mut self, pod: impl Into<Arc<Pod>>) {
        self.add_pod(pod);
    }

    /// Handles an informer delete of the pod with this "namespace/name" key, assumed or not.
    pub fn remove_pod(&mut self, key: &str) {
        self.assumed.remove(key);
        self.unaccount(key);
    }

    /// Accounts `pod` on `node_name` right away, before its Binding is written, so the next
    /// pods see the node's resources, ports and affinity as taken. The assumption expires
    /// after the TTL unless the informer confirms it (or [`SchedulerCache::finish_binding`]
    /// restarts the clock); [`SchedulerCache::forget_pod`] undoes it if binding fails.
    pub fn assume_pod(&mut self, pod: &PodInfo, node_name: &str, now: Instant) -> Result<(), CacheError> {
        if self.pods.contains_key(&pod.key) {
            return Err(CacheError::PodAlreadyInCache(pod.key.clone()));
        }
        if !self.node_index.contains_key(node_name) {
            return Err(CacheError::NodeNotFound(node_name.to_string()));
        }
        self.assumed.insert(pod.key.clone(), now + self.assumed_ttl);
        self.account(Arc::new(pod.with_node(node_name)));
        Ok(())
    }

    /// Restarts an assumed pod's expiry clock once its Binding was written, so a slow bind
    /// call doesn't eat into the time the informer has to deliver the confirmation.
    pub fn finish_binding(&mut self, key: &str, now: Instant) {
        if let Some(deadline) = self.assumed.get_mut(key) {
            *deadline = now + self.assumed_ttl;
        }
    }

    /// Undoes an assume whose binding failed.
    pub fn forget_pod(&mut self, key: &str) -> Result<(), CacheError> {
        if self.assumed.remove(key).is_none() {
            return Err(CacheError::PodNotAssumed(key.to_string()));
        }
        self.unaccount(key);
        Ok(())
    }

    /// Drops assumed pods whose confirmation never came by `now`; returns their keys.
    pub fn cleanup_expired_assumed(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self.assumed.iter().filter(|(_, d)| **d <= now).map(|(k, _)| k.clone()).collect();
        for key in &expired {
            self.assumed.remove(key);
            self.unaccount(key);
        }
        expired
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains_key(key)
    }

    /// A pod the cache accounts for (bound or assumed), by key.
    pub fn pod(&self, key: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(key)
    }

    /// Number of pods accounted for, assumed ones included.
    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }

    fn node_mut_or_detached(&mut self, name: &str) -> &mut NodeInfo {
        match self.node_index.get(name) {
            Some(&i) => &mut self.nodes[i],
            None => self.detached.entry(name.to_string()).or_insert_with(|| NodeInfo::placeholder(name)),
        }
    }

    fn account(&mut self, p: Arc<PodInfo>) {
        let node = p.node_name.clone();
        self.node_mut_or_detached(&node).add_pod(p.clone());
        self.namespaces.entry(p.namespace.clone()).or_default().insert(&p);
        for t in &p.required_anti_affinity {
            let own = t.matches(&p.namespace, p.labels());
            group_add(self.anti_affinity.entry(t.clone()).or_default(), &node, own);
        }
        let scoring = p
            .required_affinity
            .iter()
            .map(|t| (t, HARD_POD_AFFINITY_WEIGHT))
            .chain(p.preferred_affinity.iter().map(|w| (&w.term, w.weight)))
            .chain(p.preferred_anti_affinity.iter().map(|w| (&w.term, -w.weight)));
        for (t, w) in scoring {
            group_add(self.scoring_terms.entry((t.clone(), w)).or_default(), &node, true);
        }
        self.pods.insert(p.key.clone(), p);
    }

    fn unaccount(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let p = self.pods.remove(key)?;
        let node = p.node_name.as_str();
        if let Some(&i) = self.node_index.get(node) {
            self.nodes[i].remove_pod(key);
        } else if let Some(d) = self.detached.get_mut(node) {
            d.remove_pod(key);
            if d.pods.is_empty() {
                self.detached.remove(node);
            }
        }
        if let Some(ns) = self.namespaces.get_mut(&p.namespace) {
            ns.remove(&p);
            if ns.pods.is_empty() {
                self.namespaces.remove(&p.namespace);
            }
        }
        for t in &p.required_anti_affinity {
            let own = t.matches(&p.namespace, p.labels());
            group_remove(&mut self.anti_affinity, t, node, own);
        }
        for t in &p.required_affinity {
            group_remove(&mut self.scoring_terms, &(t.clone(), HARD_POD_AFFINITY_WEIGHT), node, true);
        }
        for w in &p.preferred_affinity {
            group_remove(&mut self.scoring_terms, &(w.term.clone(), w.weight), node, true);
        }
        for w in &p.preferred_anti_affinity {
            group_remove(&mut self.scoring_terms, &(w.term.clone(), -w.weight), node, true);
        }
        Some(p)
    }

    // ---- affinity lookups ----

    /// Calls `f` for every accounted pod (on any node, detached ones included) that `term`
    /// selects, using the per-namespace label index.
    pub fn for_each_pod_matching(&self, term: &AffinityTerm, mut f: impl FnMut(&PodInfo)) {
        match &term.namespaces {
            crate::pod_info::Namespaces::All => {
                for ns in self.namespaces.values() {
                    ns.for_each_match(term, &mut f);
                }
            }
            crate::pod_info::Namespaces::Only(list) => {
                for n in list {
                    if let Some(ns) = self.namespaces.get(n) {
                        ns.for_each_match(term, &mut f);
                    }
                }
            }
        }
    }

    /// Required anti-affinity terms of assigned pods, each with where its pods are.
    pub fn anti_affinity_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &TermGroup)> {
        self.anti_affinity.iter()
    }

    /// Scoring-relevant terms of assigned pods with their signed weights and where their
    /// pods are.
    pub fn scoring_terms(&self) -> impl Iterator<Item = (&AffinityTerm, i32, &TermGroup)> {
        self.scoring_terms.iter().map(|((t, w), g)| (t, *w, g))
    }
}

#[cfg(test)]
mod tests;
