//! Label selectors (equality- and set-based) and field selectors, parsed from their query
//! string form and matched against objects or a cached index.

use crate::{ApiError, ResourceInfo};
use serde_json::Value;
use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`, or `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, or `key notin (a,b)`: also true when the key is absent.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str, whole: &str) -> Result<(), ApiError> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(()) } else { Err(bad(format!("unable to parse requirement: invalid label key {key:?} in selector {whole:?}"))) }
}

fn check_value(v: &str, whole: &str) -> Result<(), ApiError> {
    let valid = v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid { Ok(()) } else { Err(bad(format!("unable to parse requirement: invalid label value {v:?} in selector {whole:?}"))) }
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad(format!("found empty requirement in label selector {s:?}")));
            }
            let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
            if words.len() == 2 && (words[1].trim_start().starts_with("in") || words[1].trim_start().starts_with("notin")) {
                let key = words[0];
                let rest = words[1].trim_start();
                let (negate, rest) = match rest.strip_prefix("notin") {
                    Some(r) => (true, r),
                    None => (false, &rest[2..]),
                };
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad(format!("unable to parse requirement: expected a set of values in {part:?}")))?;
                check_key(key, s)?;
                let mut values = Vec::new();
                for v in inner.split(',') {
                    let v = v.trim();
                    check_value(v, s)?;
                    values.push(v.to_string());
                }
                reqs.push(if negate { LabelRequirement::NotIn(key.into(), values) } else { LabelRequirement::In(key.into(), values) });
            } else if let Some((k, v)) = part.split_once("!=") {
                let (k, v) = (k.trim(), v.trim());
                check_key(k, s)?;
                check_value(v, s)?;
                reqs.push(LabelRequirement::NotIn(k.into(), vec![v.into()]));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                let (k, v) = (k.trim(), v.trim());
                check_key(k, s)?;
                check_value(v, s)?;
                reqs.push(LabelRequirement::In(k.into(), vec![v.into()]));
            } else if let Some(k) = part.strip_prefix('!') {
                check_key(k.trim(), s)?;
                reqs.push(LabelRequirement::DoesNotExist(k.trim().into()));
            } else {
                check_key(part, s)?;
                reqs.push(LabelRequirement::Exists(part.into()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a metav1.LabelSelector object (matchLabels + matchExpressions).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelRequirement::In(k.clone(), vec![v.as_str().unwrap_or_default().to_string()]));
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> =
                e["values"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
            reqs.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => LabelRequirement::In(key, values),
                "NotIn" => LabelRequirement::NotIn(key, values),
                "Exists" => LabelRequirement::Exists(key),
                "DoesNotExist" => LabelRequirement::DoesNotExist(key),
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            });
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks every field against what the resource supports.
    pub fn parse(s: &str, res: &ResourceInfo) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in s.split(',') {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(bad(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if !selectable_fields(res).contains(&field) {
                return Err(bad(format!("field label not supported: {field}")));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these field values (as from [`field_values`]) satisfy every requirement.
    pub fn matches(&self, fields: &[(&'static str, String)]) -> bool {
        self.0.iter().all(|(f, equal, want)| {
            let have = fields.iter().find(|(name, _)| name == f).map(|(_, v)| v.as_str()).unwrap_or("");
            (have == want) == *equal
        })
    }

    /// The value required for `field` by an equality requirement, if any (used to route a
    /// watch on `spec.nodeName=x` to an index).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, equal, _)| f == field && *equal).map(|(_, _, v)| v.as_str())
    }
}

/// Fields of each kind that field selectors accept, besides metadata.name and
/// metadata.namespace.
pub fn selectable_fields(res: &ResourceInfo) -> &'static [&'static str] {
    match (res.group, res.kind) {
        ("", "Pod") => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "metadata.name",
            "metadata.namespace",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "Secret") => &["metadata.name", "metadata.namespace", "type"],
        ("", "Node") => &["metadata.name", "spec.unschedulable"],
        ("", "Namespace") => &["metadata.name", "status.phase"],
        ("", "ReplicationController") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("apps", "ReplicaSet") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("batch", "Job") => &["metadata.name", "metadata.namespace", "status.successful"],
        ("", "PersistentVolume") => &["metadata.name", "spec.storageClassName"],
        ("", "PersistentVolumeClaim") => &["metadata.name", "metadata.namespace", "spec.storageClassName"],
        _ if res.namespaced => &["metadata.name", "metadata.namespace"],
        _ => &["metadata.name"],
    }
}

fn lookup_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, seg| v.get(seg))
}

/// The selectable field values of one object, computed once when it enters the watch cache.
pub fn field_values(res: &ResourceInfo, obj: &Value) -> Vec<(&'static str, String)> {
    selectable_fields(res)
        .iter()
        .map(|f| {
            let v = match *f {
                // Kubernetes exposes the event source as its component.
                "source" => obj.pointer("/source/component"),
                f => lookup_path(obj, f),
            };
            let text = match v {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                // Unset booleans select as "false", as in Kubernetes.
                None if matches!(*f, "spec.unschedulable" | "spec.hostNetwork") => "false".to_string(),
                _ => String::new(),
            };
            (*f, text)
        })
        .collect()
}

/// The labels of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_and_set_based_selectors() {
        let sel = LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team").unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a"), ("legacy", "1")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "prod")])));
        let notin = LabelSelector::parse("env notin (prod)").unwrap();
        assert!(notin.matches(&labels(&[])));
        assert!(LabelSelector::parse("a=b=c").is_err());
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn selector_from_label_selector_object() {
        let sel = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]
        }))
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "dev")])));
    }

    #[test]
    fn field_selectors_check_supported_fields() {
        let pods = crate::registry::lookup("", "v1", "pods").unwrap();
        let sel = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", pods).unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(sel.matches(&field_values(pods, &pod)));
        assert_eq!(sel.required_value("spec.nodeName"), Some("n1"));
        let err = FieldSelector::parse("spec.bogus=1", pods).unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.bogus");
        let unsched = FieldSelector::parse("spec.nodeName=", pods).unwrap();
        assert!(unsched.matches(&field_values(pods, &json!({"spec": {}}))));
    }
}
