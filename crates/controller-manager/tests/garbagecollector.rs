//! The garbage collector against a real API server, with owners and dependents created
//! directly: background deletion of dependents whose owners are gone (and only the dangling
//! reference dropped when another owner lives), foreground deletion blocked by a dependent,
//! orphaning, dangling references to owners that never existed, live owners racing the
//! caches, and kubectl's three `--cascade` modes on a Deployment -> ReplicaSet -> Pod chain.
//! Custom resources (a Widget CRD defined while the collector runs) own and are owned the same
//! way, in background, foreground and orphan deletion.

mod common;

use common::Cluster;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata, Resource};
use rkube_client::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PatchType};
use serde_json::json;
use std::time::Duration;

const NS: &str = "default";

fn reference<K: Resource + Metadata<Ty = ObjectMeta>>(owner: &K, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.metadata().name.clone().unwrap_or_default(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

fn pod(name: &str, owners: Vec<OwnerReference>, finalizers: &[&str]) -> Pod {
    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("a valid Pod");
    p.metadata.owner_references = Some(owners);
    p.metadata.finalizers = (!finalizers.is_empty()).then(|| finalizers.iter().map(|f| f.to_string()).collect());
    p
}

async fn config_map(c: &Cluster, name: &str) -> ConfigMap {
    let cm = ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(NS.into()), ..Default::default() },
        ..Default::default()
    };
    c.api::<ConfigMap>(Some(NS)).create(&cm).await.expect("config map created")
}

async fn create_pod(c: &Cluster, name: &str, owners: Vec<OwnerReference>, finalizers: &[&str]) -> Pod {
    c.api::<Pod>(Some(NS)).create(&pod(name, owners, finalizers)).await.expect("pod created")
}

fn owner_uids(meta: &ObjectMeta) -> Vec<String> {
    meta.owner_references.iter().flatten().map(|r| r.uid.clone()).collect()
}

fn foreground() -> DeleteParams {
    DeleteParams { propagation_policy: Some("Foreground".into()), ..Default::default() }
}

/// Waits until the object `name` is gone.
async fn gone<K>(c: &Cluster, api: &Api<K>, name: &str)
where
    K: Resource + Metadata<Ty = ObjectMeta> + serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    c.eventually(20, &format!("{} {name} deleted", api.kind()), || async {
        api.get_opt(name).await.expect("get").is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletes_dependents_whose_owners_are_all_gone() {
    let c = Cluster::start("garbagecollector", &[]);
    let owner = config_map(&c, "owner").await;
    let other = config_map(&c, "other").await;
    create_pod(&c, "only-a", vec![reference(&owner, false)], &[]).await;
    create_pod(&c, "only-b", vec![reference(&owner, true)], &[]).await;
    create_pod(&c, "shared", vec![reference(&owner, false), reference(&other, false)], &[]).await;

    c.api::<ConfigMap>(Some(NS)).delete("owner", &DeleteParams::default()).await.unwrap();
    let pods = c.api::<Pod>(Some(NS));
    gone(&c, &pods, "only-a").await;
    gone(&c, &pods, "only-b").await;
    let shared = c
        .eventually(20, "shared pod keeps only the live owner", || async {
            let p = pods.get("shared").await.expect("the shared pod stays");
            (owner_uids(&p.metadata) == vec![other.metadata.uid.clone().unwrap()]).then_some(p)
        })
        .await;
    assert!(shared.metadata.deletion_timestamp.is_none());
}

/// Removes the test's `finalizer` from a pod (the collector may be editing its finalizers too).
async fn release_finalizer(c: &Cluster, pods: &rkube_client::Api<Pod>, name: &str, finalizer: &str) {
    c.eventually(20, "test finalizer removed", || async {
        let Some(p) = pods.get_opt(name).await.expect("get") else { return Some(()) };
        let kept: Vec<String> = p.metadata.finalizers.iter().flatten().filter(|f| *f != finalizer).cloned().collect();
        let patch = json!({"metadata": {"resourceVersion": p.metadata.resource_version, "finalizers": kept}});
        pods.patch(name, PatchType::Merge, &patch).await.ok().map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let c = Cluster::start("garbagecollector", &[]);
    let owner = config_map(&c, "owner").await;
    const HOLD: &str = "test.rkube.io/hold";
    create_pod(&c, "blocking", vec![reference(&owner, true)], &[]).await;
    create_pod(&c, "held", vec![reference(&owner, true)], &[HOLD]).await;
    create_pod(&c, "loose", vec![reference(&owner, false)], &[]).await;

    let cms = c.api::<ConfigMap>(Some(NS));
    cms.delete("owner", &foreground()).await.unwrap();
    let pods = c.api::<Pod>(Some(NS));
    // Every dependent is deleted, blocking or not.
    gone(&c, &pods, "blocking").await;
    gone(&c, &pods, "loose").await;
    let held = c
        .eventually(20, "held pod being deleted", || async {
            pods.get("held").await.ok().filter(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
    // The held dependent still blocks: the owner waits, marked for deletion.
    let waiting = cms.get("owner").await.expect("the owner waits for its blocking dependent");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(waiting.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion"), "{waiting:?}");
    assert!(held.metadata.finalizers.iter().flatten().any(|f| f == HOLD));

    release_finalizer(&c, &pods, "held", HOLD).await;
    gone(&c, &pods, "held").await;
    gone(&c, &cms, "owner").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let c = Cluster::start("garbagecollector", &[]);
    let owner = config_map(&c, "owner").await;
    let other = config_map(&c, "other").await;
    create_pod(&c, "alone", vec![reference(&owner, true)], &[]).await;
    create_pod(&c, "shared", vec![reference(&other, false), reference(&owner, true)], &[]).await;

    let cms = c.api::<ConfigMap>(Some(NS));
    cms.delete("owner", &DeleteParams { propagation_policy: Some("Orphan".into()), ..Default::default() })
        .await
        .unwrap();
    gone(&c, &cms, "owner").await;
    let pods = c.api::<Pod>(Some(NS));
    let alone = pods.get("alone").await.expect("orphaned pod stays");
    assert!(alone.metadata.owner_references.iter().flatten().next().is_none(), "{:?}", alone.metadata);
    assert!(alone.metadata.deletion_timestamp.is_none());
    let shared = pods.get("shared").await.expect("orphaned pod stays");
    assert_eq!(owner_uids(&shared.metadata), vec![other.metadata.uid.clone().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_owners_that_never_existed_are_collected() {
    let c = Cluster::start("garbagecollector", &[]);
    let real = config_map(&c, "real").await;
    let ghost = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-00000000dead".into(),
        ..Default::default()
    };
    // Right name, wrong uid: some earlier object of that name, not this one.
    let impostor = OwnerReference { uid: "00000000-0000-0000-0000-00000000beef".into(), ..reference(&real, false) };
    // A kind the collector cannot read is never taken as gone.
    let widget = OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        name: "w".into(),
        uid: "00000000-0000-0000-0000-0000000000aa".into(),
        ..Default::default()
    };
    create_pod(&c, "unknown-kind", vec![widget], &[]).await;
    create_pod(&c, "ghost-child", vec![ghost], &[]).await;
    create_pod(&c, "impostor-child", vec![impostor], &[]).await;
    let pods = c.api::<Pod>(Some(NS));
    gone(&c, &pods, "ghost-child").await;
    gone(&c, &pods, "impostor-child").await;
    assert!(pods.get_opt("unknown-kind").await.unwrap().is_some());
    assert!(c.api::<ConfigMap>(Some(NS)).get_opt("real").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_live_owners_are_never_deleted() {
    let c = Cluster::start("garbagecollector", &[]);
    // Each dependent is created right after its owner, so the collector's pod informer often
    // sees it before the config map informer sees the owner: only the live read saves it.
    let mut names: Vec<String> = (0..20).map(|i| format!("child-{i}")).collect();
    futures::future::join_all(names.iter().enumerate().map(|(i, name)| {
        let c = &c;
        async move {
            let owner = config_map(c, &format!("owner-{i}")).await;
            create_pod(c, name, vec![reference(&owner, true)], &[]).await;
        }
    }))
    .await;
    // A cluster-scoped owner of a namespaced dependent is looked up cluster-wide.
    let node = c.node("n1").await;
    create_pod(&c, "mirror", vec![reference(&node, false)], &[]).await;
    names.push("mirror".into());
    // A cluster-scoped dependent cannot have a namespaced owner: reported, not deleted.
    let owner = config_map(&c, "namespaced-owner").await;
    let mut bad: Node = serde_json::from_value(json!({"metadata": {"name": "n2"}})).unwrap();
    bad.metadata.owner_references = Some(vec![reference(&owner, false)]);
    c.api::<Node>(None).create(&bad).await.unwrap();

    // A dangling dependent created last: once it is gone, the collector has looked at the others.
    let sentinel = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "never".into(),
        uid: "00000000-0000-0000-0000-0000000000ff".into(),
        ..Default::default()
    };
    create_pod(&c, "sentinel", vec![sentinel], &[]).await;
    let pods = c.api::<Pod>(Some(NS));
    gone(&c, &pods, "sentinel").await;
    let events = c.api::<Event>(Some(NS));
    c.eventually(20, "OwnerRefInvalidNamespace event", || async {
        let list = events.list(&ListParams::default()).await.expect("events listed");
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("OwnerRefInvalidNamespace"))
    })
    .await;
    // Workers run in parallel: give the ones started before the sentinel's a moment to finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in &names {
        let p = pods.get_opt(name).await.unwrap().unwrap_or_else(|| panic!("{name} was deleted"));
        assert!(p.metadata.deletion_timestamp.is_none(), "{name} is being deleted");
    }
    assert!(c.api::<Node>(None).get_opt("n2").await.unwrap().is_some());
}

/// Creates Deployment `name` -> ReplicaSet `name-rs` -> two pods, each controller-owned.
async fn deployment_chain(c: &Cluster, name: &str) -> (Deployment, ReplicaSet) {
    let template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template},
    }))
    .unwrap();
    let deployment = c.api::<Deployment>(Some(NS)).create(&deployment).await.expect("deployment created");
    let mut rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-rs"), "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template},
    }))
    .unwrap();
    rs.metadata.owner_references =
        Some(vec![OwnerReference { controller: Some(true), ..reference(&deployment, true) }]);
    let rs = c.api::<ReplicaSet>(Some(NS)).create(&rs).await.expect("replica set created");
    for i in 0..2 {
        let owner = OwnerReference { controller: Some(true), ..reference(&rs, true) };
        create_pod(c, &format!("{name}-{i}"), vec![owner], &[]).await;
    }
    (deployment, rs)
}

/// Runs the workspace's kubectl against the cluster; panics with its output on failure.
async fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let kubectl = std::env::var_os("KUBECTL")
        .filter(|k| !k.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl"));
    assert!(kubectl.exists(), "kubectl not found at {} (scripts/install-deps installs it)", kubectl.display());
    let kubeconfig = c.api.kubeconfig().expect("kubeconfig written");
    let cache = kubeconfig.with_file_name("kube-cache");
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.extend(["--request-timeout=30s".to_string()]);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(&args)
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .expect("kubectl task")
    .expect("kubectl runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kubectl failed\nstdout: {stdout}\nstderr: {stderr}\nlog:\n{}", c.cm.log_tail());
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_deployment_cascades() {
    let c = Cluster::start("garbagecollector", &[]);
    let (deployments, sets, pods) =
        (c.api::<Deployment>(Some(NS)), c.api::<ReplicaSet>(Some(NS)), c.api::<Pod>(Some(NS)));

    // Background (kubectl's default): the Deployment goes at once, then its descendants.
    deployment_chain(&c, "bg").await;
    kubectl(&c, &["delete", "deployment", "bg", "-n", NS]).await;
    gone(&c, &sets, "bg-rs").await;
    gone(&c, &pods, "bg-0").await;
    gone(&c, &pods, "bg-1").await;

    // Foreground: kubectl waits until the Deployment is gone, which is after its descendants.
    deployment_chain(&c, "fg").await;
    kubectl(&c, &["delete", "deployment", "fg", "-n", NS, "--cascade=foreground", "--timeout=30s"]).await;
    assert!(deployments.get_opt("fg").await.unwrap().is_none());
    assert!(sets.get_opt("fg-rs").await.unwrap().is_none(), "the ReplicaSet went before its Deployment");
    assert!(pods.get_opt("fg-0").await.unwrap().is_none(), "the pods went before the Deployment");
    assert!(pods.get_opt("fg-1").await.unwrap().is_none(), "the pods went before the Deployment");

    // Orphan: the ReplicaSet stays without an owner; its pods keep theirs.
    let (_, rs) = deployment_chain(&c, "or").await;
    kubectl(&c, &["delete", "deployment", "or", "-n", NS, "--cascade=orphan", "--timeout=30s"]).await;
    assert!(deployments.get_opt("or").await.unwrap().is_none());
    let orphan = sets.get("or-rs").await.expect("the ReplicaSet stays");
    assert!(owner_uids(&orphan.metadata).is_empty(), "{:?}", orphan.metadata.owner_references);
    for name in ["or-0", "or-1"] {
        let p = pods.get(name).await.expect("the pods stay");
        assert_eq!(owner_uids(&p.metadata), vec![rs.metadata.uid.clone().unwrap()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_other_kinds_are_collected_too() {
    let c = Cluster::start("garbagecollector", &[]);
    let owner = config_map(&c, "app").await;
    let owned = json!([reference(&owner, false)]);
    let meta = |name: &str| json!({"name": name, "namespace": NS, "ownerReferences": owned});
    let selector = json!({"matchLabels": {"app": "web"}});
    let pdbs = c.api::<PodDisruptionBudget>(Some(NS));
    let hpas = c.api::<HorizontalPodAutoscaler>(Some(NS));
    let ingresses = c.api::<Ingress>(Some(NS));
    let roles = c.api::<Role>(Some(NS));
    let bindings = c.api::<RoleBinding>(Some(NS));
    let policies = c.api::<NetworkPolicy>(Some(NS));
    policies
        .create(&serde_json::from_value(json!({"metadata": meta("netpol"), "spec": {"podSelector": selector}})).expect("policy"))
        .await
        .expect("policy created");
    pdbs.create(
        &serde_json::from_value(json!({"metadata": meta("pdb"), "spec": {"selector": selector, "minAvailable": 1}}))
            .expect("pdb"),
    )
    .await
    .expect("pdb created");
    hpas.create(&serde_json::from_value(json!({"metadata": meta("hpa"), "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}})).expect("hpa"))
        .await
        .expect("hpa created");
    ingresses
        .create(&serde_json::from_value(json!({"metadata": meta("ing"), "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})).expect("ingress"))
        .await
        .expect("ingress created");
    roles
        .create(&serde_json::from_value(json!({"metadata": meta("role"), "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})).expect("role"))
        .await
        .expect("role created");
    bindings
        .create(&serde_json::from_value(json!({"metadata": meta("binding"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role"}, "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]})).expect("binding"))
        .await
        .expect("binding created");

    c.api::<ConfigMap>(Some(NS)).delete("app", &DeleteParams::default()).await.unwrap();
    gone(&c, &pdbs, "pdb").await;
    gone(&c, &hpas, "hpa").await;
    gone(&c, &ingresses, "ing").await;
    gone(&c, &roles, "role").await;
    gone(&c, &bindings, "binding").await;
    gone(&c, &policies, "netpol").await;
}

/// The Widget resource the tests define.
fn widget_resource() -> ApiResource {
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
        namespaced: true,
    }
}

/// Defines Widgets (after the collector started, so it must pick the definition up at run
/// time), waits until the definition is Established, and returns requests on Widgets.
async fn define_widgets(c: &Cluster) -> Api<DynamicObject> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                }}},
            }],
        },
    }))
    .expect("a valid CRD");
    let crds = c.api::<CustomResourceDefinition>(None);
    crds.create(&crd).await.expect("CRD created");
    c.eventually(20, "Widget CRD established", || async {
        let crd = crds.get("widgets.example.com").await.ok()?;
        let conditions = crd.status?.conditions?;
        conditions.iter().any(|c| c.type_ == "Established" && c.status == "True").then_some(())
    })
    .await;
    c.client.dynamic(&widget_resource(), Some(NS))
}

async fn create_widget(widgets: &Api<DynamicObject>, name: &str, owners: Vec<OwnerReference>) -> DynamicObject {
    let mut w = DynamicObject::new(&widget_resource(), Some(NS), name);
    w.metadata.owner_references = (!owners.is_empty()).then_some(owners);
    w.data.insert("spec".into(), json!({"size": 1}));
    widgets.create(&w).await.expect("widget created")
}

fn widget_reference(w: &DynamicObject, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        name: w.metadata.name.clone().unwrap_or_default(),
        uid: w.metadata.uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

async fn owned_config_map(c: &Cluster, name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            owner_references: Some(owners),
            ..Default::default()
        },
        ..Default::default()
    };
    c.api::<ConfigMap>(Some(NS)).create(&cm).await.expect("config map created")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_a_deleted_custom_object_are_collected() {
    let c = Cluster::start("garbagecollector", &[]);
    let widgets = define_widgets(&c).await;
    let doomed = create_widget(&widgets, "doomed", vec![]).await;
    let live = create_widget(&widgets, "live", vec![]).await;
    owned_config_map(&c, "of-doomed", vec![widget_reference(&doomed, false)]).await;
    owned_config_map(&c, "of-both", vec![widget_reference(&doomed, false), widget_reference(&live, false)]).await;
    let cms = c.api::<ConfigMap>(Some(NS));

    widgets.delete("doomed", &DeleteParams::default()).await.expect("widget deleted");
    gone(&c, &widgets, "doomed").await;
    gone(&c, &cms, "of-doomed").await;
    // The live Widget keeps its dependent, which only loses the reference to the gone one.
    let both = c
        .eventually(20, "config map keeps only the live Widget", || async {
            let cm = cms.get("of-both").await.expect("the config map with a live owner stays");
            (owner_uids(&cm.metadata) == vec![live.metadata.uid.clone().unwrap()]).then_some(cm)
        })
        .await;
    assert!(both.metadata.deletion_timestamp.is_none());
    assert!(widgets.get_opt("live").await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_owned_by_a_deleted_object_are_collected() {
    let c = Cluster::start("garbagecollector", &[]);
    let widgets = define_widgets(&c).await;
    let owner = config_map(&c, "owner").await;
    let kept = config_map(&c, "kept").await;
    create_widget(&widgets, "owned", vec![reference(&owner, false)]).await;
    create_widget(&widgets, "owned-by-kept", vec![reference(&kept, false)]).await;

    c.api::<ConfigMap>(Some(NS)).delete("owner", &DeleteParams::default()).await.expect("owner deleted");
    gone(&c, &widgets, "owned").await;
    let w = widgets.get("owned-by-kept").await.expect("a Widget whose owner lives stays");
    assert!(w.metadata.deletion_timestamp.is_none());
    assert_eq!(owner_uids(&w.metadata), vec![kept.metadata.uid.clone().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_of_a_custom_object_waits_for_its_blocking_dependent() {
    let c = Cluster::start("garbagecollector", &[]);
    let widgets = define_widgets(&c).await;
    let owner = create_widget(&widgets, "owner", vec![]).await;
    const HOLD: &str = "test.rkube.io/hold";
    create_pod(&c, "held", vec![widget_reference(&owner, true)], &[HOLD]).await;

    widgets.delete("owner", &foreground()).await.expect("foreground delete accepted");
    let pods = c.api::<Pod>(Some(NS));
    let held = c
        .eventually(20, "held pod being deleted by the collector", || async {
            pods.get("held").await.ok().filter(|p| p.metadata.deletion_timestamp.is_some())
        })
        .await;
    assert!(held.metadata.finalizers.iter().flatten().any(|f| f == HOLD));
    // The dependent still blocks: the Widget waits, marked for deletion.
    let waiting = widgets.get("owner").await.expect("the Widget waits for its blocking dependent");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(waiting.metadata.finalizers.iter().flatten().any(|f| f == "foregroundDeletion"), "{waiting:?}");

    release_finalizer(&c, &pods, "held", HOLD).await;
    gone(&c, &pods, "held").await;
    gone(&c, &widgets, "owner").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_of_a_custom_object_keeps_its_dependents() {
    let c = Cluster::start("garbagecollector", &[]);
    let widgets = define_widgets(&c).await;
    let owner = create_widget(&widgets, "owner", vec![]).await;
    let other = config_map(&c, "other").await;
    owned_config_map(&c, "alone", vec![widget_reference(&owner, true)]).await;
    owned_config_map(&c, "shared", vec![reference(&other, false), widget_reference(&owner, false)]).await;

    let orphan = DeleteParams { propagation_policy: Some("Orphan".into()), ..Default::default() };
    widgets.delete("owner", &orphan).await.expect("orphan delete accepted");
    gone(&c, &widgets, "owner").await;
    let cms = c.api::<ConfigMap>(Some(NS));
    let alone = cms.get("alone").await.expect("the orphaned config map stays");
    assert!(owner_uids(&alone.metadata).is_empty(), "{:?}", alone.metadata);
    assert!(alone.metadata.deletion_timestamp.is_none());
    let shared = cms.get("shared").await.expect("the orphaned config map stays");
    assert_eq!(owner_uids(&shared.metadata), vec![other.metadata.uid.clone().unwrap()]);
}
