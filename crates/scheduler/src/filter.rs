//! Filters: one function per Kubernetes filter plugin, each telling whether a pod may go to a
//! node and, if not, why, in the words Kubernetes uses.

use crate::cache::{NodeInfo, Readiness, SchedulerCache};
use crate::hash::{FastMap, FastSet};
use crate::pod_info::PodInfo;
use crate::selector::node_selector_term_matches;
use k8s_openapi::api::core::v1::Toleration;
use std::borrow::Cow;

/// NodeUnschedulable: the node is cordoned.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// The node's Ready condition isn't True.
pub const ERR_REASON_NOT_READY: &str = "node(s) were not ready";
/// NodeName: the pod names another node.
pub const ERR_REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// NodeAffinity: nodeSelector or required node affinity doesn't match.
pub const ERR_REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// NodePorts: a requested host port is taken.
pub const ERR_REASON_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// InterPodAffinity: the pod's required affinity isn't satisfied.
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// InterPodAffinity: the pod's required anti-affinity isn't satisfied.
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// InterPodAffinity: an existing pod's required anti-affinity rejects the pod.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// NodeResourcesFit: the node already has as many pods as it allows.
pub const ERR_REASON_TOO_MANY_PODS: &str = "Too many pods";

/// The taint a cordoned node is treated as having.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The taint Kubernetes puts on nodes whose Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint Kubernetes puts on nodes whose Ready condition is Unknown.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// One reason a node was rejected; most are static strings, taint reasons are formatted.
pub type Reason = Cow<'static, str>;

/// Why a node can't take a pod (NodeResourcesFit may give several reasons at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unschedulable(pub Vec<Reason>);

impl Unschedulable {
    fn one(reason: impl Into<Reason>) -> Unschedulable {
        Unschedulable(vec![reason.into()])
    }
}

/// The outcome of one filter for one node.
pub type FilterResult = Result<(), Unschedulable>;

/// Whether a toleration tolerates the taint `key=value:effect`. An empty toleration key (with
/// Exists) matches every key, an empty effect every effect.
pub fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => t.value.as_deref().unwrap_or_default() == value,
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn tolerations_tolerate(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| tolerates(t, key, value, effect))
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let cordoned = node.node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if cordoned && !tolerations_tolerate(tolerations(pod), TAINT_NODE_UNSCHEDULABLE, "", "NoSchedule") {
        return Err(Unschedulable::one(ERR_REASON_UNSCHEDULABLE));
    }
    Ok(())
}

/// Node readiness. Kubernetes' node lifecycle controller taints a node that isn't Ready and
/// TaintToleration keeps pods off it; rkube has no such controller yet, so the scheduler reads
/// the condition itself, honouring tolerations of those taints (as DaemonSet pods have).
pub fn node_ready(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let taint = match node.readiness {
        Readiness::Ready => return Ok(()),
        Readiness::NotReady => TAINT_NODE_NOT_READY,
        Readiness::Unknown => TAINT_NODE_UNREACHABLE,
    };
    if tolerations_tolerate(tolerations(pod), taint, "", "NoSchedule") {
        return Ok(());
    }
    Err(Unschedulable::one(ERR_REASON_NOT_READY))
}

/// NodeName: a pod that already names a node fits only that node.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if !pod.node_name.is_empty() && pod.node_name != node.name {
        return Err(Unschedulable::one(ERR_REASON_NODE_NAME));
    }
    Ok(())
}

/// TaintToleration: every NoSchedule/NoExecute taint must be tolerated; the first one that
/// isn't is named in the reason.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let tolerations = tolerations(pod);
    for t in taints {
        if t.effect != "NoSchedule" && t.effect != "NoExecute" {
            continue;
        }
        let value = t.value.as_deref().unwrap_or_default();
        if !tolerations_tolerate(tolerations, &t.key, value, &t.effect) {
            return Err(Unschedulable::one(format!("node(s) had untolerated taint {{{}: {}}}", t.key, value)));
        }
    }
    Ok(())
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity (terms ORed).
pub fn matches_node_selector_and_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    match required {
        None => true,
        Some(r) => r.node_selector_terms.iter().any(|t| node_selector_term_matches(t, labels, &node.name)),
    }
}

/// NodeAffinity: `spec.nodeSelector` and required node affinity.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if matches_node_selector_and_affinity(pod, node) {
        Ok(())
    } else {
        Err(Unschedulable::one(ERR_REASON_NODE_AFFINITY))
    }
}

/// NodePorts: none of the pod's host ports may be in use on the node.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if pod.host_ports.iter().any(|p| node.host_port_conflicts(p)) {
        return Err(Unschedulable::one(ERR_REASON_NODE_PORTS));
    }
    Ok(())
}

/// NodeResourcesFit: the pod's requests must fit in what the node has left, and the node must
/// allow one more pod. Every resource that doesn't fit is a reason of its own.
pub fn node_resources_fit(pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    let (req, alloc, used) = (&pod.requests, &node.allocatable, &node.requested);
    let mut reasons = Vec::new();
    if used.pods.saturating_add(1) > alloc.pods {
        reasons.push(Reason::Borrowed(ERR_REASON_TOO_MANY_PODS));
    }
    let short = |want: i64, have: i64, in_use: i64| want > 0 && want > have.saturating_sub(in_use);
    if short(req.milli_cpu, alloc.milli_cpu, used.milli_cpu) {
        reasons.push(Reason::Borrowed("Insufficient cpu"));
    }
    if short(req.memory, alloc.memory, used.memory) {
        reasons.push(Reason::Borrowed("Insufficient memory"));
    }
    if short(req.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage) {
        reasons.push(Reason::Borrowed("Insufficient ephemeral-storage"));
    }
    if reasons.is_empty() { Ok(()) } else { Err(Unschedulable(reasons)) }
}

/// What InterPodAffinity needs to know about the whole cluster before it can judge single
/// nodes, computed once per scheduling attempt (Kubernetes' PreFilter). Topology values
/// borrow from the cache's node labels.
#[derive(Debug, Default)]
pub struct InterPodAffinityState<'a> {
    /// Per required affinity term of the pod: topology values (of the term's key) holding a
    /// pod that matches all the pod's affinity terms.
    affinity: Vec<FastSet<&'a str>>,
    /// Whether any such pod exists anywhere.
    affinity_matched: bool,
    /// Whether the pod matches its own affinity terms (first pod of a self-affine group).
    self_affine: bool,
    /// Per required anti-affinity term of the pod: topology values holding a matching pod.
    anti_affinity: Vec<FastSet<&'a str>>,
    /// Topology key -> values where an existing pod's anti-affinity excludes the pod.
    existing_anti_affinity: FastMap<&'a str, FastSet<&'a str>>,
}

impl<'a> InterPodAffinityState<'a> {
    /// Gathers the topology domains the pod's required terms and existing pods' required
    /// anti-affinity care about. Cost is proportional to the distinct anti-affinity terms in
    /// the cluster plus the pods the pod's own terms select, not to all pods.
    pub fn new(pod: &PodInfo, cache: &'a SchedulerCache) -> InterPodAffinityState<'a> {
        let mut s = InterPodAffinityState::default();
        let value_of = |node_name: &str, key: &str| -> Option<&'a str> {
            cache.node(node_name).and_then(|n| n.labels().get(key)).map(String::as_str)
        };
        for (term, group) in cache.anti_affinity_terms() {
            if !term.matches(&pod.namespace, pod.labels()) {
                continue;
            }
            // The pod matches `term`; if it also carries it, the term's own selector (walked
            // below) finds every carrier it selects, leaving only the foreign ones.
            let carriers = if pod.required_anti_affinity.contains(term) { &group.foreign } else { &group.nodes };
            if carriers.is_empty() {
                continue;
            }
            let values = s.existing_anti_affinity.entry(term.topology_key.as_str()).or_default();
            values.reserve(carriers.len());
            for node_name in carriers.keys() {
                if let Some(v) = value_of(node_name, &term.topology_key) {
                    values.insert(v);
                }
            }
        }
        for term in &pod.required_anti_affinity {
            let mut values = FastSet::default();
            cache.for_each_pod_matching(term, |p| {
                if let Some(v) = value_of(&p.node_name, &term.topology_key) {
                    values.insert(v);
                }
            });
            s.anti_affinity.push(values);
        }
        let terms = &pod.required_affinity;
        if let Some(first) = terms.first() {
            s.affinity = vec![FastSet::default(); terms.len()];
            cache.for_each_pod_matching(first, |p| {
                if !terms[1..].iter().all(|t| t.matches(&p.namespace, p.labels())) {
                    return;
                }
                for (i, t) in terms.iter().enumerate() {
                    if let Some(v) = value_of(&p.node_name, &t.topology_key) {
                        s.affinity[i].insert(v);
                        s.affinity_matched = true;
                    }
                }
            });
            s.self_affine = terms.iter().all(|t| t.matches(&pod.namespace, pod.labels()));
        }
        s
    }

    /// Whether the filter can pass every node without looking (the common case).
    pub fn is_empty(&self) -> bool {
        self.affinity.is_empty() && self.anti_affinity.is_empty() && self.existing_anti_affinity.is_empty()
    }
}

/// InterPodAffinity (required terms): the pod's affinity must find its pods in the node's
/// domain, its anti-affinity must not, and no existing pod's anti-affinity may exclude it.
pub fn inter_pod_affinity(state: &InterPodAffinityState<'_>, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    if state.is_empty() {
        return Ok(());
    }
    let labels = node.labels();
    if !pod.required_affinity.is_empty() {
        let mut all_found = true;
        for (term, values) in pod.required_affinity.iter().zip(&state.affinity) {
            match labels.get(&term.topology_key) {
                Some(v) => all_found &= values.contains(v.as_str()),
                None => return Err(Unschedulable::one(ERR_REASON_AFFINITY)),
            }
        }
        if !all_found && (state.affinity_matched || !state.self_affine) {
            return Err(Unschedulable::one(ERR_REASON_AFFINITY));
        }
    }
    for (term, values) in pod.required_anti_affinity.iter().zip(&state.anti_affinity) {
        if labels.get(&term.topology_key).is_some_and(|v| values.contains(v.as_str())) {
            return Err(Unschedulable::one(ERR_REASON_ANTI_AFFINITY));
        }
    }
    for (key, values) in &state.existing_anti_affinity {
        if labels.get(*key).is_some_and(|v| values.contains(v.as_str())) {
            return Err(Unschedulable::one(ERR_REASON_EXISTING_ANTI_AFFINITY));
        }
    }
    Ok(())
}

/// Runs the filters in Kubernetes' default order and stops at the first that rejects the
/// node, so each node contributes the reasons of one plugin.
pub fn run_filters(state: &InterPodAffinityState<'_>, pod: &PodInfo, node: &NodeInfo) -> FilterResult {
    node_unschedulable(pod, node)?;
    node_ready(pod, node)?;
    node_name(pod, node)?;
    taint_toleration(pod, node)?;
    node_affinity(pod, node)?;
    node_ports(pod, node)?;
    node_resources_fit(pod, node)?;
    inter_pod_affinity(state, pod, node)
}

#[cfg(test)]
mod tests;
