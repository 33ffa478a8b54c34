//! The pre-rendered OpenAPI documents the API server serves under `/openapi/v2` and `/openapi/v3`.

use crate::catalog;
use crate::hash::content_hash;
use crate::paths::{self, Defs, PathItem};
use crate::schemas;
use crate::{v2, v3};
use rkube_api::{ResourceInfo, registry};

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Pre-rendered OpenAPI documents for every served group/version.
pub struct Documents {
    /// Kept for documents rendered later (custom resources), which reuse the meta definitions.
    catalog: catalog::Catalog,
    v2: Vec<u8>,
    v3_root: Vec<u8>,
    /// Per group version ("api/v1", "apis/apps/v1"): the document and its hash.
    v3: BTreeMap<String, (Vec<u8>, String)>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("v2_bytes", &self.v2.len())
            .field("v3", &self.v3.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Documents {
    /// Renders every document from `rkube_api::registry` and the k8s-openapi schemas.
    pub fn build() -> Documents {
        let catalog = catalog::build();
        let mut everything: Vec<PathItem> = Vec::new();
        let mut v3 = BTreeMap::new();
        let mut root = Map::new();
        for (group, versions) in registry::groups() {
            for version in versions {
                let items: Vec<PathItem> = registry::in_group_version(group, version)
                    .flat_map(|res| {
                        let (object, list) = catalog.of(res);
                        paths::resource_paths(res, &Defs { object, list })
                    })
                    .collect();
                let bytes = v3::group_version(&catalog, &items).to_string().into_bytes();
                let hash = content_hash(&bytes);
                let key = v3::key(group, version);
                root.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
                v3.insert(key, (bytes, hash));
                everything.extend(items);
            }
        }
        let v3_root = json!({"paths": Value::Object(root)}).to_string().into_bytes();
        let v2 = v2::document(&catalog, &everything).to_string().into_bytes();
        Documents { catalog, v2, v3_root, v3 }
    }

    /// The v3 document of one group version of custom resources, with its content hash:
    /// `resources` pairs each served resource with its CRD version's openAPIV3Schema. The
    /// object and list kinds are named as Kubernetes names them (`com.example.v1.Widget`), and
    /// metadata refers to the same ObjectMeta definition the built-in documents use.
    pub fn custom_group_version(&self, resources: &[(&ResourceInfo, &Value)]) -> (Vec<u8>, String) {
        let mut custom: BTreeMap<String, Value> = BTreeMap::new();
        let mut items: Vec<PathItem> = Vec::new();
        for (res, schema) in resources {
            let reversed: Vec<&str> = res.group.split('.').rev().collect();
            let object = format!("{}.{}.{}", reversed.join("."), res.version, res.kind);
            let list = format!("{object}List");
            let gvk = |kind: &str| json!([{"group": res.group, "version": res.version, "kind": kind}]);
            let mut def = match schema {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            let props = def.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(props) = props {
                props.insert("apiVersion".into(), json!({"type": "string", "description": API_VERSION_DOC}));
                props.insert("kind".into(), json!({"type": "string", "description": KIND_DOC}));
                props.insert(
                    "metadata".into(),
                    json!({"$ref": format!("{}{}", schemas::REF_PREFIX, schemas::OBJECT_META), "description": METADATA_DOC}),
                );
            }
            def.insert("x-kubernetes-group-version-kind".into(), gvk(res.kind));
            let mut list_def = schemas::list_schema(&object, res.kind);
            list_def["x-kubernetes-group-version-kind"] = gvk(&res.list_kind());
            items.extend(paths::resource_paths(res, &Defs { object: &object, list: &list }));
            custom.insert(object, Value::Object(def));
            custom.insert(list, list_def);
        }
        let roots = v3::referenced(&items)
            .chain([schemas::OBJECT_META])
            .filter(|n| !custom.contains_key(*n))
            .map(String::from)
            .collect::<Vec<_>>();
        let mut definitions = custom.clone();
        for name in catalog::reachable(roots.iter().map(String::as_str), &self.catalog.definitions) {
            if let Some(def) = self.catalog.definitions.get(&name) {
                definitions.insert(name, def.clone());
            }
        }
        let bytes = v3::document(&definitions, &items).to_string().into_bytes();
        let hash = content_hash(&bytes);
        (bytes, hash)
    }

    /// The v3 root with `extra` group versions added (their paths and hashes).
    pub fn v3_root_with(&self, extra: &[(String, String)]) -> Vec<u8> {
        let mut root: Value = serde_json::from_slice(&self.v3_root).unwrap_or_else(|_| json!({"paths": {}}));
        for (key, hash) in extra {
            root["paths"][key] = json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")});
        }
        root.to_string().into_bytes()
    }

    /// `GET /openapi/v2` (Accept: application/json).
    pub fn v2_json(&self) -> &[u8] {
        &self.v2
    }

    /// `GET /openapi/v3`: the group versions with the URL (including `?hash=`) of each document.
    pub fn v3_root_json(&self) -> &[u8] {
        &self.v3_root
    }

    /// `GET /openapi/v3/<path>` for a path like "api/v1" or "apis/apps/v1": the document and its hash.
    pub fn v3_group_version(&self, path: &str) -> Option<(&[u8], &str)> {
        let path = path.trim_matches('/');
        self.v3.get(path).map(|(bytes, hash)| (bytes.as_slice(), hash.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn docs() -> &'static Documents {
        static DOCS: OnceLock<Documents> = OnceLock::new();
        DOCS.get_or_init(|| {
            let start = std::time::Instant::now();
            let docs = Documents::build();
            eprintln!("Documents::build took {:?}", start.elapsed());
            docs
        })
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    /// Every `$ref` under `value` names a key of `defs` (after `prefix`).
    fn assert_refs_resolve(value: &Value, prefix: &str, defs: &Map<String, Value>, doc: &str) {
        match value {
            Value::Object(map) => {
                // JSONSchemaProps (CRDs) has a property named `$ref`: its schema is no reference.
                if let Some(r) = map.get("$ref").filter(|r| r.is_string()) {
                    let name = r.as_str().and_then(|r| r.strip_prefix(prefix));
                    assert!(name.is_some_and(|n| defs.contains_key(n)), "{doc}: dangling {r}");
                }
                map.values().for_each(|v| assert_refs_resolve(v, prefix, defs, doc));
            }
            Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(v, prefix, defs, doc)),
            _ => {}
        }
    }

    #[test]
    fn configmap_patch_declares_field_validation() {
        let (bytes, _) = docs().v3_group_version("api/v1").unwrap();
        let doc = parse(bytes);
        assert_eq!(doc["openapi"], "3.0.0");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().unwrap();
        for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(params.iter().any(|p| p["name"] == name && p["in"] == "query"), "{name}");
        }
        let content = patch["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("application/strategic-merge-patch+json"));
        let cm = &doc["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "ConfigMap"}]));
        assert!(cm["description"].as_str().is_some_and(|d| !d.is_empty()));
    }

    #[test]
    fn every_operation_is_labelled() {
        for key in docs().v3.keys() {
            let doc = parse(docs().v3_group_version(key).unwrap().0);
            for (path, item) in doc["paths"].as_object().unwrap() {
                for (method, op) in item.as_object().unwrap() {
                    if method == "parameters" {
                        continue;
                    }
                    assert!(op["x-kubernetes-group-version-kind"]["kind"].is_string(), "{path} {method}");
                    assert!(op["x-kubernetes-action"].is_string(), "{path} {method}");
                    assert!(op["operationId"].is_string(), "{path} {method}");
                    if matches!(method.as_str(), "put" | "patch" | "post") {
                        let params = op["parameters"].as_array().unwrap();
                        assert!(params.iter().any(|p| p["name"] == "fieldValidation"), "{path} {method}");
                    }
                }
            }
        }
    }

    #[test]
    fn references_resolve() {
        for key in docs().v3.keys() {
            let doc = parse(docs().v3_group_version(key).unwrap().0);
            let defs = doc["components"]["schemas"].as_object().unwrap();
            assert_refs_resolve(&doc, "#/components/schemas/", defs, key);
        }
        let v2 = parse(docs().v2_json());
        assert_eq!(v2["swagger"], "2.0");
        let defs = v2["definitions"].as_object().unwrap();
        assert!(defs.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert_refs_resolve(&v2, "#/definitions/", defs, "v2");
        let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    }

    #[test]
    fn apps_has_deployment_with_extensions() {
        let (bytes, hash) = docs().v3_group_version("apis/apps/v1").unwrap();
        assert_eq!(hash, content_hash(bytes));
        let doc = parse(bytes);
        let schemas = &doc["components"]["schemas"];
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        // A described reference becomes allOf in v3.
        assert_eq!(
            d["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"], "atomic");
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert!(schemas["io.k8s.api.autoscaling.v1.Scale"].is_object());
        assert!(schemas["io.k8s.api.apps.v1.DeploymentList"].is_object());
        // Only what the group version reaches.
        assert!(schemas.get("io.k8s.api.core.v1.ConfigMap").is_none());
        assert!(docs().v3_group_version("apis/nope/v1").is_none());
    }

    #[test]
    fn root_lists_every_group_version() {
        let root = parse(docs().v3_root_json());
        let paths = root["paths"].as_object().unwrap();
        let mut expected = 0;
        for (group, versions) in registry::groups() {
            for version in versions {
                expected += 1;
                let key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
                let (_, hash) = docs().v3_group_version(&key).unwrap();
                assert_eq!(paths[&key]["serverRelativeURL"], format!("/openapi/v3/{key}?hash={hash}"));
            }
        }
        assert_eq!(paths.len(), expected);
    }
}
