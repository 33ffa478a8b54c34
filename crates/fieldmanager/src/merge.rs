//! Merging an applied configuration into the live object, and removing fields by path.

use crate::error::FieldManagerError;
use crate::fieldset::{Element, FieldSet};
use crate::schema::{Indexed, Kind, Schema, json_eq, key_default};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// `live` with `config` merged in: config values win; objects merge field by field, list-maps
/// item by item (by key), sets by value; everything else is replaced. A `null` in the config
/// removes the field (what it means once the object is decoded into a typed struct; a live
/// `null` is left as it is), and
/// values equal to live ones keep live's spelling, so a no-op apply is byte-identical.
pub(crate) fn merge(live: &Value, config: &Value, schema: Schema<'_>) -> Result<Value, FieldManagerError> {
    merge_value(Some(live), config, schema, &mut Vec::new())
}

fn merge_value(live: Option<&Value>, config: &Value, schema: Schema<'_>, path: &mut Vec<String>) -> Result<Value, FieldManagerError> {
    let kind = schema.kind(config);
    match (kind, config) {
        (Kind::Fields, Value::Object(fields)) => {
            let mut out = match live {
                Some(live @ Value::Object(m)) if matches!(schema.kind(live), Kind::Fields) => m.clone(),
                _ => Map::new(),
            };
            for (name, value) in fields {
                if value.is_null() {
                    // A live null stays (it is the same value); anything else goes.
                    if out.get(name).is_some_and(|v| !v.is_null()) {
                        out.remove(name);
                    }
                    continue;
                }
                path.push(format!("f:{name}"));
                let merged = merge_value(out.get(name), value, schema.field(name), path)?;
                path.pop();
                out.insert(name.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Kind::ListMap(_) | Kind::ListSet, _) => {
            let applied = Indexed::config(config, &kind, path)?;
            // A live list that can't be keyed (or isn't a list) is replaced.
            let live_items = live
                .filter(|l| l.is_array())
                .and_then(|l| Indexed::new(l, &kind).ok())
                .map(|i| i.items)
                .unwrap_or_default();
            let merged = merge_items(&live_items, &applied.items, |element, live_item, item| {
                path.push(element.to_string());
                let merged = merge_value(live_item, item, schema.item(), path);
                path.pop();
                merged
            })?;
            Ok(Value::Array(merged))
        }
        _ => Ok(match live {
            Some(live) if json_eq(live, config) => live.clone(),
            _ => config.clone(),
        }),
    }
}

/// Merges keyed list items, keeping the applied items in the config's order and each
/// live-only item after the item it followed in the live list.
fn merge_items<'v>(
    live: &[(String, &'v Value)],
    applied: &[(String, &'v Value)],
    mut merge: impl FnMut(&str, Option<&'v Value>, &'v Value) -> Result<Value, FieldManagerError>,
) -> Result<Vec<Value>, FieldManagerError> {
    let applied_at: HashMap<&str, usize> = applied.iter().enumerate().map(|(i, (e, _))| (e.as_str(), i)).collect();
    let mut live_by_key: HashMap<&str, &'v Value> = HashMap::new();
    for (element, item) in live {
        live_by_key.entry(element.as_str()).or_insert(item);
    }
    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let mut next = 0;
    let mut emit_until = |end: usize, out: &mut Vec<Value>, next: &mut usize| -> Result<(), FieldManagerError> {
        while *next < end {
            let (element, item) = &applied[*next];
            out.push(merge(element, live_by_key.get(element.as_str()).copied(), item)?);
            *next += 1;
        }
        Ok(())
    };
    let mut done = HashSet::new();
    for (element, item) in live {
        match applied_at.get(element.as_str()) {
            None => out.push((*item).clone()),
            // Emit the applied items up to this one (those new to the list go before it);
            // a live duplicate of an applied key is replaced by the one merged item.
            Some(&at) => {
                if done.insert(element.as_str()) && next <= at {
                    emit_until(at + 1, &mut out, &mut next)?;
                }
            }
        }
    }
    emit_until(applied.len(), &mut out, &mut next)?;
    Ok(out)
}

/// Removes every member of `set` from `value` (a member path goes with everything inside
/// it). Objects and lists left empty by the removal go too, as they would once the object
/// is decoded into its typed form. Returns whether anything was removed.
pub(crate) fn remove(value: &mut Value, set: &FieldSet) -> bool {
    let mut changed = false;
    match value {
        Value::Object(fields) => {
            for (element, sub) in set.children() {
                let Some(name) = element.strip_prefix("f:") else { continue };
                if sub.is_member() {
                    changed |= fields.remove(name).is_some();
                } else if let Some(child) = fields.get_mut(name)
                    && remove(child, sub)
                {
                    changed = true;
                    if is_empty_container(child) {
                        fields.remove(name);
                    }
                }
            }
        }
        Value::Array(items) => {
            for (element, sub) in set.children() {
                let Ok(element) = Element::parse(element) else { continue };
                if sub.is_member() {
                    let before = items.len();
                    let mut index = 0;
                    items.retain(|item| {
                        let keep = !matches_element(item, index, &element);
                        index += 1;
                        keep
                    });
                    changed |= items.len() != before;
                } else {
                    for (index, item) in items.iter_mut().enumerate() {
                        if matches_element(item, index, &element) {
                            changed |= remove(item, sub);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    changed
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether the list item at `index` is the one `element` names.
fn matches_element(item: &Value, index: usize, element: &Element) -> bool {
    match element {
        Element::Key(keys) => keys.iter().all(|(name, want)| match item.get(name).filter(|v| !v.is_null()) {
            Some(have) => json_eq(have, want),
            None => key_default(name).is_some_and(|d| json_eq(&d, want)),
        }),
        Element::Value(want) => json_eq(item, want),
        Element::Index(i) => *i == index,
        Element::Field(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn merges_containers_by_name_and_ports_by_key() {
        let live = pod(json!({"containers": [
            {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
             "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}]},
            {"name": "sidecar", "image": "side:1"}
        ]}));
        let config = pod(json!({"containers": [
            {"name": "init-like", "image": "new:1"},
            {"name": "app", "image": "app:2", "ports": [{"containerPort": 80, "name": "http"}]}
        ]}));
        let merged = merge(&live, &config, Schema::of(&live, None)).unwrap();
        assert_eq!(
            merged["spec"]["containers"],
            json!([
                {"name": "init-like", "image": "new:1"},
                {"name": "app", "image": "app:2", "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]},
                {"name": "sidecar", "image": "side:1"}
            ])
        );
    }

    #[test]
    fn nulls_remove_and_equal_values_keep_live_spelling() {
        let live = pod(json!({"replicas": 3.0, "nodeName": "n1", "hostname": null, "tolerations": [{"key": "a"}]}));
        let config = pod(json!({"replicas": 3, "nodeName": null, "hostname": null, "subdomain": null, "tolerations": [{"key": "b"}]}));
        let merged = merge(&live, &config, Schema::of(&live, None)).unwrap();
        assert_eq!(merged["spec"], json!({"replicas": 3.0, "hostname": null, "tolerations": [{"key": "b"}]}));
    }

    #[test]
    fn removes_paths_and_emptied_parents() {
        let mut obj = pod(json!({"containers": [
            {"name": "a", "ports": [{"containerPort": 80}]},
            {"name": "b"}
        ]}));
        obj["metadata"]["labels"] = json!({"x": "1"});
        let set = FieldSet::from_fields_v1(&json!({
            "f:metadata": {"f:labels": {"f:x": {}}},
            "f:spec": {"f:containers": {
                "k:{\"name\":\"a\"}": {"f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}}},
                "k:{\"name\":\"b\"}": {}
            }}
        }))
        .unwrap();
        assert!(remove(&mut obj, &set));
        assert_eq!(obj, pod(json!({"containers": [{"name": "a"}]})));
        assert!(!remove(&mut obj, &set));
    }
}
