//! Pruning unknown fields and applying defaults, following only the structural part of a
//! schema (value validations never keep or default a field).

use serde_json::Value;

use super::{Additional, Node, child, index};

/// Fields every resource (the root and embedded resources) keeps whatever its schema says.
const RESOURCE_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Drops from `v` what `node` does not specify, recording the dropped fields' paths.
pub(super) fn prune(node: &Node, v: &mut Value, path: &str, resource: bool, pruned: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let p = child(path, &k);
                // metadata is ObjectMeta, pruned by the API machinery itself rather than by the CRD schema.
                if resource && k == "metadata" {
                    continue;
                }
                if let Some(prop) = node.properties.get(&k) {
                    if let Some(fv) = map.get_mut(&k) {
                        prune(prop, fv, &p, prop.embedded, pruned);
                    }
                    continue;
                }
                match &node.additional {
                    Some(Additional::Schema(a)) => {
                        if let Some(fv) = map.get_mut(&k) {
                            prune(a, fv, &p, a.embedded, pruned);
                        }
                    }
                    _ if node.preserve_unknown => {}
                    // A boolean additionalProperties has no schema to follow: like Kubernetes, keep
                    // scalar values but prune everything inside objects.
                    Some(Additional::Allowed(_)) => {
                        if let Some(fv) = map.get_mut(&k) {
                            prune_all(fv, &p, pruned);
                        }
                    }
                    _ if resource && RESOURCE_FIELDS.contains(&k.as_str()) => {}
                    _ => {
                        map.remove(&k);
                        pruned.push(p);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for (i, iv) in items.iter_mut().enumerate() {
                    prune(item, iv, &index(path, i), item.embedded, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Prunes `v` against no schema at all: every field of every object goes.
fn prune_all(v: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            pruned.extend(map.keys().map(|k| child(path, k)));
            map.clear();
        }
        Value::Array(items) => {
            for (i, iv) in items.iter_mut().enumerate() {
                prune_all(iv, &index(path, i), pruned);
            }
        }
        _ => {}
    }
}

/// Removes null values of fields whose schema is neither nullable nor defaulted, as Kubernetes
/// does before defaulting (a null there would otherwise fail validation for no good reason).
pub(super) fn drop_nulls(node: &Node, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if root && k == "metadata" {
                    continue;
                }
                let Some(field) = node.field(&k) else { continue };
                if map.get(&k).is_some_and(Value::is_null) {
                    if !field.nullable && field.default.is_none() {
                        map.remove(&k);
                    }
                } else if let Some(fv) = map.get_mut(&k) {
                    drop_nulls(field, fv, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for iv in items.iter_mut() {
                    drop_nulls(item, iv, false);
                }
            }
        }
        _ => {}
    }
}

/// Sets defaults of absent (or null, when not nullable) fields, then descends into every
/// present field: defaults inside an absent field only appear when a parent default creates it.
pub(super) fn default(node: &Node, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => {
            for (k, prop) in &node.properties {
                if root && k == "metadata" {
                    continue;
                }
                let Some(d) = &prop.default else { continue };
                match map.get(k) {
                    None => {
                        map.insert(k.clone(), d.clone());
                    }
                    Some(Value::Null) if !prop.nullable => {
                        map.insert(k.clone(), d.clone());
                    }
                    Some(_) => {}
                }
            }
            if let Some(Additional::Schema(a)) = &node.additional
                && let Some(d) = &a.default
                && !a.nullable
            {
                for (k, fv) in map.iter_mut() {
                    if fv.is_null() && !node.properties.contains_key(k) {
                        *fv = d.clone();
                    }
                }
            }
            for (k, fv) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(field) = node.field(k) {
                    default(field, fv, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = &node.items {
                for iv in items.iter_mut() {
                    if iv.is_null()
                        && !item.nullable
                        && let Some(d) = &item.default
                    {
                        *iv = d.clone();
                    }
                    default(item, iv, false);
                }
            }
        }
        _ => {}
    }
}
