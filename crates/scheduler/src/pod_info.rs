//! A pod together with everything the scheduler derives from it, computed once per pod version
//! instead of once per node.

use crate::resources::{Resources, pod_requests};
use crate::selector::{Operator, Requirement, Selector};
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The cache key of a pod, "namespace/name".
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Which namespaces an affinity term looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespaces {
    /// Every namespace (an empty `namespaceSelector: {}`).
    All,
    /// These namespaces, sorted.
    Only(Vec<String>),
}

/// A pod (anti-)affinity term, resolved against the pod that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AffinityTerm {
    /// The namespaces whose pods the term considers.
    pub namespaces: Namespaces,
    /// Which pods the term is about.
    pub selector: Selector,
    /// The node label whose value defines a topology domain (e.g. kubernetes.io/hostname).
    pub topology_key: String,
}

fn is_empty_selector(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

impl AffinityTerm {
    /// Resolves an API term for a pod in `namespace` with `labels`.
    ///
    /// rkube's scheduler doesn't watch Namespaces, so a non-empty `namespaceSelector` can't be
    /// evaluated: it is ignored, meaning the term covers the listed `namespaces`, or the pod's
    /// own namespace when none are listed. An empty `namespaceSelector: {}` selects all
    /// namespaces, as in Kubernetes. `matchLabelKeys`/`mismatchLabelKeys` are merged into the
    /// selector using the pod's own label values.
    pub fn from_api(term: &PodAffinityTerm, namespace: &str, labels: &BTreeMap<String, String>) -> AffinityTerm {
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let namespaces = if term.namespace_selector.as_ref().is_some_and(is_empty_selector) {
            Namespaces::All
        } else if listed.is_empty() {
            Namespaces::Only(vec![namespace.to_string()])
        } else {
            let mut v = listed.to_vec();
            v.sort();
            v.dedup();
            Namespaces::Only(v)
        };
        let mut selector = Selector::from_label_selector(term.label_selector.as_ref());
        if term.label_selector.is_some() {
            for key in term.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(key) {
                    selector.push(Requirement::new(key.clone(), Operator::In, vec![v.clone()]));
                }
            }
            for key in term.mismatch_label_keys.iter().flatten() {
                if let Some(v) = labels.get(key) {
                    selector.push(Requirement::new(key.clone(), Operator::NotIn, vec![v.clone()]));
                }
            }
        }
        AffinityTerm { namespaces, selector, topology_key: term.topology_key.clone() }
    }

    /// Whether the term considers pods of this namespace.
    pub fn covers_namespace(&self, namespace: &str) -> bool {
        match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Only(v) => v.iter().any(|n| n == namespace),
        }
    }

    /// Whether a pod with this namespace and labels is one the term is about.
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.covers_namespace(namespace) && self.selector.matches(labels)
    }
}

/// A preferred (anti-)affinity term with its weight (1..=100).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WeightedAffinityTerm {
    /// The term.
    pub term: AffinityTerm,
    /// How much a match is worth when scoring.
    pub weight: i32,
}

/// A host port a pod's container binds, normalised like Kubernetes (empty protocol is TCP,
/// empty host IP is 0.0.0.0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The host IP, 0.0.0.0 meaning all.
    pub ip: String,
    /// The port.
    pub port: i32,
}

/// The wildcard host IP: a port bound on it conflicts with the same port on any IP.
pub const BIND_ALL_HOST_IP: &str = "0.0.0.0";

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// A pod with its precomputed scheduling facts.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod object.
    pub pod: Arc<Pod>,
    /// "namespace/name".
    pub key: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The node the pod is bound or assumed to; empty while unscheduled.
    pub node_name: String,
    /// Declared requests (NodeResourcesFit).
    pub requests: Resources,
    /// Requests with the 100m/200Mi defaults for missing ones (scoring).
    pub non_zero_requests: Resources,
    /// UID of the controlling owner (ownerReference with controller: true), for spreading.
    pub owner_uid: Option<String>,
    /// Host ports of containers and sidecar init containers.
    pub host_ports: Vec<HostPort>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms.
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    /// Preferred pod anti-affinity terms.
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

fn required_terms(
    terms: Option<&Vec<PodAffinityTerm>>,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<AffinityTerm> {
    terms.into_iter().flatten().map(|t| AffinityTerm::from_api(t, ns, labels)).collect()
}

fn preferred_terms(
    terms: Option<&Vec<WeightedPodAffinityTerm>>,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<WeightedAffinityTerm> {
    terms
        .into_iter()
        .flatten()
        .filter(|t| t.weight != 0)
        .map(|t| WeightedAffinityTerm {
            term: AffinityTerm::from_api(&t.pod_affinity_term, ns, labels),
            weight: t.weight,
        })
        .collect()
}

impl PodInfo {
    /// Derives the scheduling facts of a pod.
    pub fn new(pod: impl Into<Arc<Pod>>) -> PodInfo {
        let pod: Arc<Pod> = pod.into();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS);
        let reqs = pod_requests(&pod);
        let spec = pod.spec.as_ref();
        let owner_uid =
            pod.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone());
        let mut host_ports = Vec::new();
        if let Some(spec) = spec {
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                for p in c.ports.iter().flatten() {
                    let Some(port) = p.host_port.filter(|p| *p > 0) else {
                        continue;
                    };
                    let protocol = p.protocol.as_deref().filter(|s| !s.is_empty()).unwrap_or("TCP").to_string();
                    let ip = p.host_ip.as_deref().filter(|s| !s.is_empty()).unwrap_or(BIND_ALL_HOST_IP).to_string();
                    host_ports.push(HostPort { protocol, ip, port });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        PodInfo {
            key: pod_key(&pod),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            requests: reqs.requests,
            non_zero_requests: reqs.non_zero,
            owner_uid,
            host_ports,
            required_affinity: required_terms(
                pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
                &namespace,
                labels,
            ),
            required_anti_affinity: required_terms(
                paa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref()),
                &namespace,
                labels,
            ),
            preferred_affinity: preferred_terms(
                pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
                &namespace,
                labels,
            ),
            preferred_anti_affinity: preferred_terms(
                paa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
                &namespace,
                labels,
            ),
            namespace,
            pod,
        }
    }

    /// The same pod, placed on `node_name` (what assuming a pod records).
    pub fn with_node(&self, node_name: &str) -> PodInfo {
        PodInfo { node_name: node_name.to_string(), ..self.clone() }
    }

    /// The pod's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// Whether the pod has finished (phase Succeeded or Failed) and so holds no resources.
    pub fn is_terminal(&self) -> bool {
        matches!(self.pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
    }

    /// Whether the pod has any pod affinity or anti-affinity term of its own.
    pub fn has_pod_affinity_terms(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}
