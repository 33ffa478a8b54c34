//! Where a daemon pod belongs: the automatic tolerations DaemonSet pods get, the required node
//! affinity pinning a pod to its node, and whether a node should run (or keep running) the
//! pod by nodeName, nodeSelector, required node affinity and taints (Kubernetes'
//! `NodeShouldRunDaemonPod`).

use crate::controllers::nodelifecycle::taints::tolerates;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint,
    Toleration,
};
use std::collections::BTreeMap;

/// The field name matchFields pins a pod to its node with.
const NAME_FIELD: &str = "metadata.name";

/// Adds the tolerations Kubernetes gives every DaemonSet pod (node problems must not evict
/// or keep out a node's daemons), unless an identical one is already there.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
}

/// Replaces the required node affinity with one term selecting exactly `node` by name, as
/// Kubernetes does for DaemonSet pods (the controller already checked the user's terms).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// The node a daemon pod is for: its nodeName, else the node its affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else { return None };
    term.match_fields.as_ref()?.iter().find_map(|r| match (r.key.as_str(), r.operator.as_str(), r.values.as_deref()) {
        (NAME_FIELD, "In", Some([v])) => Some(v.clone()),
        _ => None,
    })
}

/// Whether a node should run a new daemon pod, and whether it may keep one it already has
/// (a node whose only unfitting taints are NoSchedule keeps its pods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A pod should be created here.
    pub should_run: bool,
    /// An existing pod may stay.
    pub should_continue: bool,
}

/// Kubernetes' NodeShouldRunDaemonPod for a pod with `spec` (tolerations already added).
pub fn node_fit(spec: &PodSpec, node: &Node) -> Fit {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let name_fits = spec.node_name.as_deref().is_none_or(|n| n.is_empty() || n == name);
    if !name_fits || !affinity_fits(spec, node) {
        return Fit { should_run: false, should_continue: false };
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated =
        |effects: &[&str]| taints.iter().any(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t));
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return Fit { should_run: false, should_continue: !untolerated(&["NoExecute"]) };
    }
    Fit { should_run: true, should_continue: true }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// nodeSelector and required node affinity (terms ORed; within a term everything ANDed).
fn affinity_fits(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(selector) = &spec.node_selector
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
    else {
        return true;
    };
    let name = node.metadata.name.clone().unwrap_or_default();
    required.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        // A term with no requirements selects nothing.
        (!exprs.is_empty() || !fields.is_empty())
            && exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key)))
            && fields.iter().all(|r| r.key == NAME_FIELD && requirement_matches(r, Some(&name)))
    })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(|v| number(v)), values) else { return false };
            let Some(bound) = number(bound) else { return false };
            if r.operator == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut s: PodSpec = serde_json::from_value(v).unwrap();
        add_daemon_tolerations(&mut s);
        s
    }

    #[test]
    fn selectors_affinity_and_taints_decide_the_fit() {
        let n = node(json!({"metadata": {"name": "n1", "labels": {"disk": "ssd", "cores": "8"}}}));
        let run = Fit { should_run: true, should_continue: true };
        let never = Fit { should_run: false, should_continue: false };
        assert_eq!(node_fit(&spec(json!({"containers": []})), &n), run);
        assert_eq!(node_fit(&spec(json!({"containers": [], "nodeSelector": {"disk": "hdd"}})), &n), never);
        let aff = |term: serde_json::Value| {
            spec(
                json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}}),
            )
        };
        assert_eq!(
            node_fit(&aff(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})), &n),
            run
        );
        assert_eq!(
            node_fit(&aff(json!({"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]})), &n),
            never
        );
        assert_eq!(
            node_fit(&aff(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]})), &n),
            never
        );
        assert_eq!(node_fit(&aff(json!({})), &n), never, "an empty term selects nothing");

        let tainted = |effect: &str| {
            node(
                json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "value": "v", "effect": effect}]}}),
            )
        };
        assert_eq!(
            node_fit(&spec(json!({"containers": []})), &tainted("NoSchedule")),
            Fit { should_run: false, should_continue: true }
        );
        assert_eq!(node_fit(&spec(json!({"containers": []})), &tainted("NoExecute")), never);
        assert_eq!(node_fit(&spec(json!({"containers": []})), &tainted("PreferNoSchedule")), run);
        let tolerant = spec(json!({"containers": [], "tolerations": [{"key": "k", "operator": "Exists"}]}));
        assert_eq!(node_fit(&tolerant, &tainted("NoExecute")), run);
        let unschedulable = node(
            json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(node_fit(&spec(json!({"containers": []})), &unschedulable), run, "daemon pods tolerate cordoning");
    }

    #[test]
    fn pods_are_pinned_to_their_node() {
        let mut s = spec(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}}),
        );
        pin_to_node(&mut s, "n7");
        let pod = Pod { spec: Some(s.clone()), ..Default::default() };
        assert_eq!(target_node(&pod).as_deref(), Some("n7"));
        let terms = &s
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        let before = s.tolerations.as_ref().map(Vec::len);
        let mut again = PodSpec { tolerations: s.tolerations.clone(), ..Default::default() };
        add_daemon_tolerations(&mut again);
        assert_eq!(again.tolerations.as_ref().map(Vec::len), before, "tolerations are not added twice");
    }
}
