//! Reading Kubernetes JSON objects leniently (absent fields read as Go zero values) and the
//! small formatting conventions shared by many printers: labels, selectors, quantities.

use serde_json::Value;

/// The value at a JSON pointer, treating `null` like an absent field (Go's nil).
pub(crate) fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

/// A string field, if present.
pub(crate) fn opt_str<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    at(v, pointer).and_then(Value::as_str)
}

/// A string field, "" when absent.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    opt_str(v, pointer).unwrap_or("")
}

/// An integer field, if present.
pub(crate) fn opt_int(v: &Value, pointer: &str) -> Option<i64> {
    at(v, pointer).and_then(Value::as_i64)
}

/// An integer field, 0 when absent.
pub(crate) fn int_at(v: &Value, pointer: &str) -> i64 {
    opt_int(v, pointer).unwrap_or(0)
}

/// A boolean field, if present.
pub(crate) fn opt_bool(v: &Value, pointer: &str) -> Option<bool> {
    at(v, pointer).and_then(Value::as_bool)
}

/// A boolean field, false when absent.
pub(crate) fn bool_at(v: &Value, pointer: &str) -> bool {
    opt_bool(v, pointer).unwrap_or(false)
}

/// An array field, empty when absent.
pub(crate) fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The number of entries of a map (or array) field, as an integer cell.
pub(crate) fn count(v: &Value, pointer: &str) -> i64 {
    let n = match at(v, pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    n as i64
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// Whether `metadata.deletionTimestamp` is set.
pub(crate) fn deleting(obj: &Value) -> bool {
    at(obj, "/metadata/deletionTimestamp").is_some()
}

/// An annotation value; annotation keys contain '/', so they are not reachable by pointer.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// The first non-empty string.
pub(crate) fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// `s`, or `fallback` when `s` is empty.
pub(crate) fn or(s: &str, fallback: &str) -> String {
    first_non_empty(s, fallback).to_string()
}

/// A resource quantity as `Quantity.String()` prints it. Quantities are stored in canonical
/// form already; an absent quantity is the zero quantity, "0".
pub(crate) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// A quantity that Go dereferences through a possibly nil pointer: nil prints "<nil>".
pub(crate) fn quantity_ptr(v: Option<&Value>) -> String {
    if v.is_none() { "<nil>".into() } else { quantity(v) }
}

/// An IntOrString as `String()` prints it.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `labels.FormatLabels`: "k1=v1,k2=v2" sorted by key, "<none>" when empty.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&String, &str)> = match map {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k, v.as_str().unwrap_or(""))).collect(),
        _ => Vec::new(),
    };
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A label selector rendered like `LabelSelectorAsSelector(sel).String()`: requirements sorted
/// by key, "k=v", "k in (a,b)", "k notin (a,b)", "k", "!k". Nil and empty selectors give "".
/// Err when the selector is malformed (unknown operator, wrong number of values).
pub(crate) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else { return Ok(String::new()) };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in list(sel, "/matchExpressions") {
        let key = str_at(expr, "/key");
        let mut values: Vec<&str> = list(expr, "/values").iter().filter_map(Value::as_str).collect();
        // Set-based operators print their values sorted, as the selector normalizes them.
        values.sort_unstable();
        let text = match (str_at(expr, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: like [`selector_string`] but "<none>" when it selects by
/// nothing and "<error>" when malformed.
pub(crate) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// `net.JoinHostPort`: brackets around IPv6 hosts.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The "a,b,c + 2 more..." summary used for long lists, "<unset>" when empty. `list` holds the
/// first `max` items and `total` counts them all.
pub(crate) fn list_with_more(list: &[String], total: usize, max: usize) -> String {
    let joined = list.join(",");
    if total > max {
        format!("{joined} + {} more...", total - max)
    } else if joined.is_empty() {
        "<unset>".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_sorted() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selectors() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"}
            ]
        });
        assert_eq!(selector_string(Some(&sel)).unwrap(), "app=web,!canary,env notin (prod),tier in (a,b),zone");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "k", "operator": "Near"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
    }

    #[test]
    fn host_ports_and_more() {
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
        let l = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(list_with_more(&l, 5, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&[], 0, 3), "<unset>");
    }
}
