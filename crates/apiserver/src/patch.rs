//! Patch application: RFC 6902 JSON patch, RFC 7386 merge patch (both from the json-patch
//! crate), and Kubernetes' strategic merge patch, which merges lists of objects by key.

use rkube_api::ApiError;
use rkube_openapi::Node;
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
    /// application/apply-patch+yaml: server-side apply, handled by the field manager.
    Apply,
}

impl PatchKind {
    /// Recognises a patch content type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {other:?})"
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
            let root = rkube_openapi::structure()
                .root(base["apiVersion"].as_str().unwrap_or(""), base["kind"].as_str().unwrap_or(""));
            doc = strategic_merge(root, base, p);
        }
        PatchKind::Apply => return Err(ApiError::Internal("apply patches go through the field manager".into())),
    }
    Ok(doc)
}

/// How a list merges under strategic merge patch, from the type's
/// x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key.
enum ListMerge<'a> {
    /// Replaced whole (the default).
    Replace,
    /// Scalars merged as a set.
    Set,
    /// Objects merged by the value of this key.
    ByKey(&'a str),
}

fn list_merge<'a>(node: Option<Node<'a>>) -> ListMerge<'a> {
    let Some(node) = node else { return ListMerge::Replace };
    if !node.patch_strategy().is_some_and(|s| s.split(',').any(|p| p == "merge")) {
        return ListMerge::Replace;
    }
    match node.patch_merge_key() {
        Some(key) => ListMerge::ByKey(key),
        None => ListMerge::Set,
    }
}

fn strategic_merge(node: Option<Node<'_>>, base: &Value, patch: &Map<String, Value>) -> Value {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        return Value::Object(p);
    }
    let mut out = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // retainKeys: fields of the object the patch does not list are cleared (volume sources,
    // deployment strategies), so switching one union member for another works.
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        out.retain(|k, _| keep.iter().any(|r| r.as_str() == Some(k.as_str())));
    }
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
        let child = node.and_then(|n| n.field(key));
        let merged = match (out.get(key), pv) {
            (Some(bv @ Value::Object(_)), Value::Object(pm)) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.remove(key);
                    continue;
                }
                strategic_merge(child, bv, pm)
            }
            (Some(Value::Array(bl)), Value::Array(pl)) => merge_list(child, bl, pl),
            (None, Value::Object(pm)) => strategic_merge(child, &Value::Null, pm),
            (None, Value::Array(pl)) => merge_list(child, &[], pl),
            _ => pv.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

fn merge_list(node: Option<Node<'_>>, base: &[Value], patch: &[Value]) -> Value {
    let without_directives = || Value::Array(patch.iter().filter(|v| v.get("$patch").is_none()).cloned().collect());
    let key = match list_merge(node) {
        ListMerge::Replace => return without_directives(),
        ListMerge::Set => {
            let mut out = base.to_vec();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return Value::Array(out);
        }
        ListMerge::ByKey(key) => key,
    };
    if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return without_directives();
    }
    let item = node.and_then(|n| n.item());
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
            (Some(i), false) => out[i] = strategic_merge(item, &out[i], pm),
            (None, false) => out.push(strategic_merge(item, &Value::Null, pm)),
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
        let base = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
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
        let base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}], "$setElementOrder/containers": [{"name": "b"}]}});
        let out = apply(PatchKind::Strategic, &base, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn strategic_merge_follows_the_type() {
        // Service ports merge by port; container ports by containerPort; args are replaced.
        let svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let out = apply(PatchKind::Strategic, &svc, &json!({"spec": {"ports": [{"port": 443, "name": "tls"}]}})).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "http"}, {"port": 443, "name": "tls"}]));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "a", "args": ["x", "y"], "ports": [{"containerPort": 80}]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"], "ports": [{"containerPort": 81}]}]}}}});
        let out = apply(PatchKind::Strategic, &deploy, &patch).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["z"]));
        assert_eq!(c["ports"].as_array().unwrap().len(), 2);
        // retainKeys on the deployment strategy: switching to Recreate drops rollingUpdate.
        let with_strategy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = apply(PatchKind::Strategic, &with_strategy, &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn json_patch_failures_are_errors_not_panics() {
        let base = json!({"metadata": {"name": "a"}});
        let ok = apply(PatchKind::Json, &base, &json!([{"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}])).unwrap();
        assert_eq!(ok["metadata"]["labels"]["k"], "v");
        assert_eq!(apply(PatchKind::Json, &base, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err().code(), 422);
        assert_eq!(apply(PatchKind::Json, &base, &json!({"op": "x"})).unwrap_err().code(), 400);
        assert_eq!(PatchKind::from_content_type("application/apply-patch+yaml").unwrap(), PatchKind::Apply);
        assert_eq!(PatchKind::from_content_type("application/apply-patch+cbor").unwrap_err().code(), 415);
    }
}
