//! Label selectors of pod (anti-)affinity terms and node selector terms of node affinity,
//! evaluated against label maps.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// An operator of a label selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement of a label selector; values are sorted and deduplicated so that equal
/// selectors compare and hash equal (the cache groups identical affinity terms).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label is tested.
    pub operator: Operator,
    /// The values for In/NotIn.
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, normalising the value list.
    pub fn new(key: impl Into<String>, operator: Operator, mut values: Vec<String>) -> Self {
        values.sort();
        values.dedup();
        Requirement { key: key.into(), operator, values }
    }

    /// Whether these labels satisfy the requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self.operator {
            Operator::In => labels.get(&self.key).is_some_and(|v| self.values.binary_search(v).is_ok()),
            Operator::NotIn => labels.get(&self.key).is_none_or(|v| self.values.binary_search(v).is_err()),
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
        }
    }
}

/// A parsed label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// Selects nothing: what a missing (null) selector, or an invalid one, means in an
    /// affinity term.
    Nothing,
    /// Selects labels that satisfy every requirement (none: everything).
    All(Vec<Requirement>),
}

impl Selector {
    /// Parses a metav1.LabelSelector: matchLabels and matchExpressions, ANDed. An unknown
    /// operator makes the whole selector select nothing, as Kubernetes' conversion error does.
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Selector {
        let Some(sel) = sel else {
            return Selector::Nothing;
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::new(k.clone(), Operator::In, vec![v.clone()]));
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" if !values.is_empty() => Operator::In,
                "NotIn" if !values.is_empty() => Operator::NotIn,
                "Exists" if values.is_empty() => Operator::Exists,
                "DoesNotExist" if values.is_empty() => Operator::DoesNotExist,
                _ => return Selector::Nothing,
            };
            reqs.push(Requirement::new(e.key.clone(), op, values));
        }
        reqs.sort();
        reqs.dedup();
        Selector::All(reqs)
    }

    /// Adds a requirement (used for matchLabelKeys / mismatchLabelKeys); no-op on Nothing.
    pub fn push(&mut self, req: Requirement) {
        if let Selector::All(reqs) = self {
            reqs.push(req);
            reqs.sort();
            reqs.dedup();
        }
    }

    /// Whether these labels are selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// The requirements, or None for a selector that selects nothing.
    pub fn requirements(&self) -> Option<&[Requirement]> {
        match self {
            Selector::Nothing => None,
            Selector::All(r) => Some(r),
        }
    }
}

/// Whether a node label requirement of node affinity holds. Gt/Lt compare integers; a label
/// or value that isn't an integer fails the requirement (Kubernetes rejects the term).
fn node_requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else { return false };
            let (Some(l), Ok(bound)) = (label.and_then(|l| l.parse::<i64>().ok()), bound.parse::<i64>()) else {
                return false;
            };
            if op == "Gt" { l > bound } else { l < bound }
        }
        _ => false,
    }
}

/// Whether a field requirement holds; only `metadata.name` with In/NotIn is valid.
fn node_field_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => values.iter().all(|v| v != node_name),
        _ => false,
    }
}

/// Whether a node selector term matches a node: all its matchExpressions and matchFields hold.
/// A term with neither matches no node.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| node_requirement_matches(r, labels)) && fields.iter().all(|r| node_field_matches(r, node_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(v: serde_json::Value) -> Selector {
        let s: LabelSelector = serde_json::from_value(v).unwrap();
        Selector::from_label_selector(Some(&s))
    }

    #[test]
    fn label_selector_operators() {
        let s = sel(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        }));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("team", "x")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "be"), ("team", "x"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "fe"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "mid"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("team", "x"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("team", "x"), ("legacy", "")])));
    }

    #[test]
    fn null_selector_matches_nothing_and_empty_matches_everything() {
        assert!(!Selector::from_label_selector(None).matches(&labels(&[])));
        assert!(sel(json!({})).matches(&labels(&[("a", "b")])));
        assert_eq!(sel(json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})), Selector::Nothing);
    }

    #[test]
    fn equal_selectors_compare_equal() {
        let a = sel(json!({"matchLabels": {"a": "1", "b": "2"}}));
        let b = sel(json!({"matchExpressions": [
            {"key": "b", "operator": "In", "values": ["2"]},
            {"key": "a", "operator": "In", "values": ["1", "1"]},
        ]}));
        assert_eq!(a, b);
    }

    fn term(v: serde_json::Value) -> NodeSelectorTerm {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn node_selector_operators() {
        let l = labels(&[("zone", "a"), ("cores", "8"), ("gpu", "")]);
        let ok = |t| node_selector_term_matches(&term(t), &l, "n1");
        assert!(ok(json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["b"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]})));
        assert!(ok(json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["16"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "zone", "operator": "Lt", "values": ["16"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["x"]}]})));
        assert!(!ok(json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["1", "2"]}]})));
        // ANDed within a term.
        assert!(!ok(json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "cores", "operator": "Gt", "values": ["10"]},
        ]})));
        assert!(ok(json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})));
        assert!(!ok(json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})));
        assert!(!ok(json!({})));
    }
}
