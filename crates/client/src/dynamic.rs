//! Untyped objects of resources known only at run time (those CustomResourceDefinitions add):
//! [`ApiResource`] names the resource, [`DynamicObject`] carries any object of it with typed
//! metadata, and [`crate::Client::dynamic`] gives the usual [`crate::Api`] on it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource, ResourceScope};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a resource is served and what its objects are called.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ApiResource {
    /// API group ("" for the core group).
    pub group: String,
    /// The version requests use, e.g. "v1".
    pub version: String,
    /// The kind of its objects, e.g. "Widget".
    pub kind: String,
    /// The plural resource name of its URLs, e.g. "widgets".
    pub plural: String,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

impl ApiResource {
    /// The `apiVersion` of its objects ("example.com/v1", or "v1" for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// The scope marker of [`DynamicObject`]: known only from its [`ApiResource`].
pub struct DynamicResourceScope {}
impl ResourceScope for DynamicResourceScope {}

/// Any object: apiVersion, kind and metadata typed, everything else as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicObject {
    /// `apiVersion`.
    #[serde(rename = "apiVersion", default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `kind`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `status`, ...).
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

impl DynamicObject {
    /// An empty object of `resource` named `name` (in `namespace` when given).
    pub fn new(resource: &ApiResource, namespace: Option<&str>, name: &str) -> DynamicObject {
        DynamicObject {
            api_version: resource.api_version(),
            kind: resource.kind.clone(),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            },
            data: Map::new(),
        }
    }
}

// The compile-time coordinates are empty on purpose: an `Api<DynamicObject>` takes its
// resource from the `ApiResource` given to `Client::dynamic`, never from these constants, and
// the impl exists only because `Metadata` (which informers and stores need) requires it.
impl Resource for DynamicObject {
    const API_VERSION: &'static str = "";
    const GROUP: &'static str = "";
    const KIND: &'static str = "";
    const VERSION: &'static str = "";
    const URL_PATH_SEGMENT: &'static str = "";
    type Scope = DynamicResourceScope;
}

impl Metadata for DynamicObject {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_field() {
        let input = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "shop", "uid": "u1"},
            "spec": {"size": 3}, "status": {"ready": true},
        });
        let obj: DynamicObject = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(obj.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(obj.data["spec"]["size"], 3);
        assert_eq!(serde_json::to_value(&obj).unwrap(), input);
        let res =
            ApiResource { group: "".into(), version: "v1".into(), kind: "ConfigMap".into(), ..Default::default() };
        assert_eq!(DynamicObject::new(&res, Some("ns"), "x").api_version, "v1");
    }
}
