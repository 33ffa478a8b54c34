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

    /// Polls `check` every 50 ms for up to 20 s.
    async fn eventually<T, Fut: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> Fut) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // Against a real API server and etcd: a CRD's resource read, written, watched and deleted
    // through the dynamic Api (REST), errors mapped as the typed Api maps them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn custom_resources_through_the_dynamic_api() {
        use crate::{Client, DeleteParams, Informer, ListParams, PatchType};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        use tokio_util::sync::CancellationToken;

        let etcd = rkube_testkit::Etcd::start().expect("etcd");
        let server = rkube_testkit::ApiServer::start(&etcd).expect("apiserver");
        let client = Client::new(&server.url()).expect("client");
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "gizmos.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "listKind": "GizmoList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                }}}],
            },
        }))
        .expect("a valid CRD");
        let crds = client.api::<CustomResourceDefinition>(None);
        crds.create(&crd).await.expect("CRD created");
        eventually("CRD established", || async {
            let conditions = crds.get("gizmos.example.com").await.ok()?.status?.conditions?;
            conditions.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
        })
        .await;
        let res = ApiResource {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Gizmo".into(),
            plural: "gizmos".into(),
            namespaced: true,
        };
        let gizmos = client.dynamic(&res, Some("default"));
        let cancel = CancellationToken::new();
        let informer = Informer::new(client.dynamic(&res, None), ListParams::default());
        let store = informer.store();
        tokio::spawn(informer.run(cancel.clone()));

        let mut g = DynamicObject::new(&res, Some("default"), "g1");
        g.data.insert("spec".into(), json!({"size": 1}));
        let created = gizmos.create(&g).await.expect("created");
        assert!(created.metadata.uid.is_some());
        assert_eq!((created.kind.as_str(), created.data["spec"]["size"].as_i64()), ("Gizmo", Some(1)));
        assert!(gizmos.create(&g).await.expect_err("a second create").is_already_exists());
        assert!(gizmos.get_opt("absent").await.expect("get").is_none());
        let listed = gizmos.list(&ListParams::default()).await.expect("listed");
        assert_eq!(listed.items.len(), 1);
        assert!(!listed.resource_version.is_empty());

        let patched = gizmos.patch("g1", PatchType::Merge, &json!({"spec": {"size": 5}})).await.expect("merge patched");
        assert_eq!(patched.data["spec"]["size"], 5);
        // The object as first created carries a stale resourceVersion now.
        assert!(gizmos.update(&created).await.expect_err("stale update").is_conflict());
        eventually("the informer sees the patch", || async {
            store.get("default/g1").filter(|o| o.data["spec"]["size"] == 5).map(|_| ())
        })
        .await;

        let wrong_uid = DeleteParams { precondition_uid: Some("not-the-uid".into()), ..Default::default() };
        assert!(gizmos.delete("g1", &wrong_uid).await.expect_err("precondition fails").is_conflict());
        gizmos.delete("g1", &DeleteParams::default()).await.expect("deleted");
        eventually("the informer sees the delete", || async { store.is_empty().then_some(()) }).await;
        assert!(gizmos.get("g1").await.expect_err("gone").is_not_found());

        // Built-in resources work through the same path (core group URLs).
        let config_maps = ApiResource {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
        };
        let cms = client.dynamic(&config_maps, Some("default"));
        let mut cm = DynamicObject::new(&config_maps, Some("default"), "cm");
        cm.data.insert("data".into(), json!({"k": "v"}));
        cms.create(&cm).await.expect("config map created");
        let typed = client.api::<k8s_openapi::api::core::v1::ConfigMap>(Some("default")).get("cm").await.expect("get");
        assert_eq!(typed.data.unwrap()["k"], "v");
        cancel.cancel();
    }
}
