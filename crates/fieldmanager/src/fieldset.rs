//! Sets of field paths, stored as a trie keyed by fieldsV1 path elements.
//!
//! The trie is the fieldsV1 document itself in typed form: every node knows whether its own
//! path is in the set (rendered as `".": {}` when it also has children) and holds its children
//! keyed by the canonical element string (`f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`). Keeping
//! the rendered strings as keys makes rendering trivial and the order identical to the one a
//! JSON object with sorted keys gives, so re-encoding an unchanged set is byte-identical.

use crate::error::FieldManagerError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A set of field paths in Kubernetes' fieldsV1 form.
///
/// Parse one from a managedFields entry with [`FieldSet::from_fields_v1`], render it back
/// with [`FieldSet::to_fields_v1`]; [`FieldSet::paths`] lists the members the way conflict
/// messages print them (`.spec.replicas`, `.spec.containers[name="nginx"].image`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Whether the path leading to this node is itself in the set.
    member: bool,
    /// Sub-paths, by canonical element string. Never holds an empty non-member node.
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Parses a fieldsV1 document (`{"f:metadata":{"f:labels":{"f:app":{}}}}`).
    ///
    /// Element keys are canonicalised (`k:` keys sorted by name, compact JSON), so sets that
    /// differ only in spelling compare equal.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldManagerError> {
        parse_node(value).map_err(FieldManagerError::InvalidManagedFields)
    }

    /// Renders the set as a fieldsV1 document.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        // A member with sub-paths says so with "."; a bare member is just `{}`.
        if self.member && !self.children.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            out.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(out)
    }

    /// Whether the set has no member at all.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// The members, printed as Kubernetes prints field paths, in the order it lists them
    /// (at each level the members first, then the deeper paths).
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_member(&mut Vec::new(), &mut |path| out.push(display_path(path)));
        out
    }

    /// Whether this node's own path is in the set.
    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    /// The sub-paths below this node, by element string.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    /// Adds one path.
    pub(crate) fn insert<S: AsRef<str>>(&mut self, path: &[S]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.as_ref().to_string()).or_default();
        }
        node.member = true;
    }

    /// Whether this exact path is a member.
    #[cfg(test)]
    pub(crate) fn contains<S: AsRef<str>>(&self, path: &[S]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element.as_ref()) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    /// Adds every member of `other`.
    pub(crate) fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, theirs) in &other.children {
            self.children.entry(key.clone()).or_default().union_with(theirs);
        }
    }

    /// Removes every member of `other` (exact paths: removing a path keeps its sub-paths).
    pub(crate) fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (key, theirs) in &other.children {
            if let Some(mine) = self.children.get_mut(key) {
                mine.subtract(theirs);
                if mine.is_empty() {
                    self.children.remove(key);
                }
            }
        }
    }

    /// The members in both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (key, mine) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = mine.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// The members of `self` not in `other`.
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.subtract(other);
        out
    }

    /// Removes one exact path and everything below it.
    pub(crate) fn remove_subtree<S: AsRef<str>>(&mut self, path: &[S]) {
        let Some((first, rest)) = path.split_first() else {
            *self = FieldSet::default();
            return;
        };
        if let Some(child) = self.children.get_mut(first.as_ref()) {
            child.remove_subtree(rest);
            if child.is_empty() {
                self.children.remove(first.as_ref());
            }
        }
    }

    /// Removes this node's own membership, keeping its sub-paths.
    pub(crate) fn remove_member<S: AsRef<str>>(&mut self, path: &[S]) {
        let mut single = FieldSet::default();
        single.insert(path);
        self.subtract(&single);
    }

    /// Calls `f` with every member path, in Kubernetes' listing order.
    pub(crate) fn for_each_member<'s>(&'s self, prefix: &mut Vec<&'s str>, f: &mut impl FnMut(&[&str])) {
        for (key, child) in &self.children {
            if child.member {
                prefix.push(key);
                f(prefix);
                prefix.pop();
            }
        }
        for (key, child) in &self.children {
            if !child.children.is_empty() {
                prefix.push(key);
                child.for_each_member(prefix, f);
                prefix.pop();
            }
        }
    }
}

/// Parses one fieldsV1 node: `{}` is a leaf member, otherwise `"."` marks membership.
fn parse_node(value: &Value) -> Result<FieldSet, String> {
    let Value::Object(map) = value else {
        return Err(format!("expected an object in fieldsV1, got {value}"));
    };
    let mut node = FieldSet::default();
    for (key, child) in map {
        if key == "." {
            if !matches!(child, Value::Object(m) if m.is_empty()) {
                return Err(format!("the \".\" entry must be empty, got {child}"));
            }
            node.member = true;
            continue;
        }
        let element = Element::parse(key)?.render();
        let mut parsed = parse_node(child)?;
        if parsed.children.is_empty() {
            // `{}` (or `{".":{}}`) names the element itself.
            parsed.member = true;
        }
        node.children.entry(element).or_default().union_with(&parsed);
    }
    Ok(node)
}

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Element {
    /// A struct field or a map key: `f:<name>`.
    Field(String),
    /// A list-map item, by its key fields: `k:{"name":"x"}`.
    Key(Map<String, Value>),
    /// A set item, by value: `v:<json>`.
    Value(Value),
    /// A list item by position: `i:<n>` (only in sets other servers wrote).
    Index(usize),
}

impl Element {
    /// Parses an element string (`f:`, `k:`, `v:` or `i:` prefixed).
    pub(crate) fn parse(s: &str) -> Result<Element, String> {
        if let Some(name) = s.strip_prefix("f:") {
            return Ok(Element::Field(name.to_string()));
        }
        if let Some(json) = s.strip_prefix("k:") {
            return match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(keys)) if !keys.is_empty() && keys.values().all(is_scalar) => Ok(Element::Key(keys)),
                _ => Err(format!("invalid key element {s:?}: expected a JSON object of scalar key fields")),
            };
        }
        if let Some(json) = s.strip_prefix("v:") {
            return serde_json::from_str(json).map(Element::Value).map_err(|e| format!("invalid value element {s:?}: {e}"));
        }
        if let Some(index) = s.strip_prefix("i:") {
            return index.parse().map(Element::Index).map_err(|_| format!("invalid index element {s:?}"));
        }
        Err(format!("unknown path element {s:?}"))
    }

    /// The canonical element string.
    pub(crate) fn render(&self) -> String {
        match self {
            Element::Field(name) => format!("f:{name}"),
            Element::Key(keys) => {
                let mut out = String::from("k:");
                write_object(&mut out, keys);
                out
            }
            Element::Value(value) => format!("v:{}", canonical_json(value)),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    /// How Kubernetes prints the element inside a field path.
    fn display(&self) -> String {
        match self {
            Element::Field(name) => format!(".{name}"),
            Element::Key(keys) => {
                let mut sorted: Vec<_> = keys.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let parts: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={}", canonical_json(v))).collect();
                format!("[{}]", parts.join(","))
            }
            Element::Value(value) => format!("[={}]", canonical_json(value)),
            Element::Index(i) => format!("[{i}]"),
        }
    }
}

/// Prints a path of element strings as Kubernetes does (`.spec.containers[name="a"].image`).
pub(crate) fn display_path<S: AsRef<str>>(path: &[S]) -> String {
    path.iter()
        .map(|e| match Element::parse(e.as_ref()) {
            Ok(element) => element.display(),
            Err(_) => e.as_ref().to_string(),
        })
        .collect()
}

/// Whether a JSON value can be a list-map key value.
pub(crate) fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Compact JSON with object keys sorted, whatever order the map keeps (serde_json's
/// `preserve_order` may be on in some builds), so element strings are canonical.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => write_object(out, map),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        // Scalars: serde_json's own rendering (quoting and number formatting).
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json(out, &Value::String(key.clone()));
        out.push(':');
        write_json(out, &map[key]);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `kubectl apply --server-side` of an nginx Deployment records.
    fn deployment_fields() -> Value {
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                    }}}
                }
            }
        })
    }

    #[test]
    fn round_trips_kubernetes_shapes() {
        for doc in [
            deployment_fields(),
            json!({"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:finalizers": {".": {}, "v:\"a\"": {}}}}),
            json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}}),
            json!({}),
        ] {
            let set = FieldSet::from_fields_v1(&doc).unwrap();
            assert_eq!(set.to_fields_v1(), doc);
        }
    }

    #[test]
    fn canonicalises_keys_and_lists_paths() {
        let set = FieldSet::from_fields_v1(&json!({
            "f:spec": {"f:ports": {"k:{\"protocol\":\"TCP\",  \"containerPort\":80}": {"f:name": {}}}, "f:replicas": {}}
        }))
        .unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {"f:name": {}}}, "f:replicas": {}}})
        );
        assert_eq!(set.paths(), vec![".spec.replicas", ".spec.ports[containerPort=80,protocol=\"TCP\"].name"]);
        let set = FieldSet::from_fields_v1(&deployment_fields()).unwrap();
        assert_eq!(
            set.paths(),
            vec![
                ".metadata.labels.app",
                ".spec.replicas",
                ".spec.selector",
                ".spec.template.metadata.labels.app",
                ".spec.template.spec.containers[name=\"nginx\"]",
                ".spec.template.spec.containers[name=\"nginx\"].image",
                ".spec.template.spec.containers[name=\"nginx\"].name",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]",
                ".spec.template.spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
            ]
        );
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in [
            json!([]),
            json!({"x:foo": {}}),
            json!({"f:a": 1}),
            json!({".": {"f:a": {}}}),
            json!({"k:[1]": {}}),
            json!({"k:{}": {}}),
            json!({"k:{\"a\":{}}": {}}),
            json!({"v:nope": {}}),
            json!({"i:-1": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_operations() {
        let mut a = FieldSet::new();
        a.insert(&["f:spec", "f:replicas"]);
        a.insert(&["f:spec", "f:paused"]);
        let mut b = FieldSet::new();
        b.insert(&["f:spec", "f:replicas"]);
        b.insert(&["f:metadata"]);
        assert_eq!(a.intersection(&b).paths(), vec![".spec.replicas"]);
        assert_eq!(a.difference(&b).paths(), vec![".spec.paused"]);
        let mut u = a.clone();
        u.union_with(&b);
        assert_eq!(u.paths(), vec![".metadata", ".spec.paused", ".spec.replicas"]);
        assert!(u.contains(&["f:metadata"]));
        assert!(!u.contains(&["f:spec"]));
        u.remove_subtree(&["f:spec"]);
        assert_eq!(u.paths(), vec![".metadata"]);
        u.remove_member(&["f:metadata"]);
        assert!(u.is_empty());
        assert_eq!(u.to_fields_v1(), json!({}));
    }
}
