//! Patch application: RFC 6902 JSON patch, RFC 7386 merge patch (both from the json-patch
//! crate), and Kubernetes' strategic merge patch, which merges lists of objects by key.

use rkube_api::ApiError;
use serde_json::{Map, Value};

/// The patch types of the `Content-Type` of a PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// application/json-patch+json.
    Json,
    /// application/merge-patch+json.
    Merge,
    /// application/strategic-merge-patch+json.
    Strategic,
}

impl PatchKind {
    /// Recognises a patch content type; server-side apply is not served yet (415).
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies a patch to `base`.
pub fn apply(kind: PatchKind, base: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = base.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::BadRequest(format!("the JSON patch is malformed: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| ApiError::Invalid {
                kind: base["kind"].as_str().unwrap_or_default().into(),
                group: String::new(),
                name: base.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().into(),
                causes: vec![rkube_api::FieldError { reason: "FieldValueInvalid", field: String::new(), message: e.to_string() }],
            })?;
        }
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest("a merge patch must be a JSON object".into()));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchKind::Strategic => {
            let Value::Object(p) = patch else {
                return Err(ApiError::BadRequest("a strategic merge patch must be a JSON object".into()));
            };
            doc = strategic_merge(base, p);
        }
    }
    Ok(doc)
}

/// The key that identifies list elements under `field` (Kubernetes' patchMergeKey), or None
/// when the list is replaced whole.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "addresses" => "type",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge by containerPort, Service ports by port.
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars that merge as sets rather than being replaced.
fn is_merged_scalar_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strategic_merge(base: &Value, patch: &Map<String, Value>) -> Value {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        return Value::Object(p);
    }
    let mut out = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (out.get_mut(field), pv) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match (out.get(key), pv) {
            (Some(bv @ Value::Object(_)), Value::Object(pm)) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(key);
                    continue;
                }
                strategic_merge(bv, pm)
            }
            (Some(Value::Array(bl)), Value::Array(pl)) => merge_list(key, bl, pl),
            (None, Value::Object(pm)) => strategic_merge(&Value::Null, pm),
            (None, Value::Array(pl)) => merge_list(key, &[], pl),
            _ => pv.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(field: &str, base: &[Value], patch: &[Value]) -> Value {
    if is_merged_scalar_list(field) {
        let mut out = base.to_vec();
        for v in patch {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        return Value::Array(out);
    }
    let Some(key) = merge_key(field, patch.first().or(base.first())) else {
        return Value::Array(patch.iter().filter(|v| v.get("$patch").is_none()).cloned().collect());
    };
    if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Value::Array(patch.iter().filter(|v| v.get("$patch").is_none()).cloned().collect());
    }
    let mut out: Vec<Value> = base.to_vec();
    for p in patch {
        let Some(pm) = p.as_object() else {
            out.push(p.clone());
            continue;
        };
        let id = pm.get(key);
        let pos = out.iter().position(|b| id.is_some() && b.get(key) == id);
        let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => out[i] = strategic_merge(&out[i], pm),
            (None, false) => out.push(strategic_merge(&Value::Null, pm)),
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_env_by_name() {
        let base = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}]}});
        let out = apply(PatchKind::Strategic, &base, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["image"], "a:2");
        assert_eq!(out["spec"]["containers"][0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(out["spec"]["containers"][1]["image"], "b:1");
        let merged = apply(PatchKind::Merge, &base, &patch).unwrap();
        assert_eq!(merged["spec"]["containers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn strategic_merge_directives() {
        let base = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}], "$setElementOrder/containers": [{"name": "b"}]}});
        let out = apply(PatchKind::Strategic, &base, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn json_patch_failures_are_errors_not_panics() {
        let base = json!({"metadata": {"name": "a"}});
        let ok = apply(PatchKind::Json, &base, &json!([{"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}])).unwrap();
        assert_eq!(ok["metadata"]["labels"]["k"], "v");
        assert_eq!(apply(PatchKind::Json, &base, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err().code(), 422);
        assert_eq!(apply(PatchKind::Json, &base, &json!({"op": "x"})).unwrap_err().code(), 400);
        assert_eq!(PatchKind::from_content_type("application/apply-patch+yaml").unwrap_err().code(), 415);
    }
}
