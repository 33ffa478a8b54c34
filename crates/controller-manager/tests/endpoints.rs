//! The Endpoints and EndpointSlice controllers against a real API server: pods selected by a
//! Service show up with their readiness and per-pod resolved ports, and follow readiness
//! changes, deletions and selector changes; selector-less Services are left alone.

mod common;

use common::Cluster;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{DeleteParams, ListParams};
use serde_json::json;
use std::collections::BTreeMap;

const NS: &str = "default";

fn pod(name: &str, app: &str, http_port: i32) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "ports": [{"name": "http", "containerPort": http_port, "protocol": "TCP"}]}]},
    }))
    .expect("a valid Pod")
}

fn service(name: &str, selector: Option<serde_json::Value>, headless: bool) -> Service {
    let mut spec = json!({"ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]});
    if let Some(s) = selector {
        spec["selector"] = s;
    }
    if headless {
        spec["clusterIP"] = json!("None");
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"tier": "frontend"}},
        "spec": spec,
    }))
    .expect("a valid Service")
}

/// (ip, port) pairs of the ready and of the not-ready addresses.
type Addresses = (Vec<(String, i32)>, Vec<(String, i32)>);

fn addresses(ep: &Endpoints) -> Addresses {
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for s in ep.subsets.iter().flatten() {
        for p in s.ports.iter().flatten() {
            ready.extend(s.addresses.iter().flatten().map(|a| (a.ip.clone(), p.port)));
            not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| (a.ip.clone(), p.port)));
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn pairs(v: &[(&str, i32)]) -> Vec<(String, i32)> {
    v.iter().map(|(ip, p)| (ip.to_string(), *p)).collect()
}

/// pod name -> (ready, serving, terminating, ports) over all of a Service's slices.
type SliceView = BTreeMap<String, (bool, bool, bool, Vec<i32>)>;

async fn slices_of(c: &Cluster, service: &str) -> (Vec<EndpointSlice>, SliceView) {
    let params = ListParams::labels(&format!("kubernetes.io/service-name={service}"));
    let slices = c.api::<EndpointSlice>(Some(NS)).list(&params).await.expect("slices listed").items;
    let mut view = SliceView::new();
    for s in &slices {
        let ports: Vec<i32> = s.ports.iter().flatten().filter_map(|p| p.port).collect();
        for e in &s.endpoints {
            let name = e.target_ref.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
            let c = e.conditions.clone().unwrap_or_default();
            let flag = |b: Option<bool>| b == Some(true);
            view.insert(name, (flag(c.ready), flag(c.serving), flag(c.terminating), ports.clone()));
        }
    }
    (slices, view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_the_selected_pods() {
    let c = Cluster::start("endpoint,endpointslice", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let a = pods.create(&pod("a", "web", 8080)).await.unwrap();
    let b = pods.create(&pod("b", "web", 9090)).await.unwrap();
    let p3 = pods.create(&pod("c", "web", 8080)).await.unwrap();
    let svc = c.api::<Service>(Some(NS)).create(&service("web", Some(json!({"app": "web"})), false)).await.unwrap();
    c.set_pod_running_ip(&a, "10.244.1.1", true).await;
    c.set_pod_running_ip(&b, "10.244.1.2", true).await;
    c.set_pod_running_ip(&p3, "10.244.1.3", false).await;

    // The named targetPort resolves per pod: a and c serve 8080, b serves 9090.
    let endpoints = c.api::<Endpoints>(Some(NS));
    let want: Addresses = (pairs(&[("10.244.1.1", 8080), ("10.244.1.2", 9090)]), pairs(&[("10.244.1.3", 8080)]));
    let ep = c
        .eventually(20, "Endpoints with 2 ready and 1 not-ready address", || async {
            endpoints.get_opt("web").await.unwrap().filter(|ep| addresses(ep) == want)
        })
        .await;
    let labels = ep.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("tier").map(String::as_str), Some("frontend"), "the Service's labels are copied");
    assert!(
        ep.metadata.annotations.unwrap_or_default().contains_key("endpoints.kubernetes.io/last-change-trigger-time")
    );
    let subset = ep.subsets.iter().flatten().find(|s| s.addresses.iter().flatten().any(|a| a.ip == "10.244.1.1"));
    let address = subset.and_then(|s| s.addresses.as_ref()).map(|a| a[0].clone()).unwrap();
    let target = address.target_ref.unwrap();
    assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("a")));
    assert_eq!(target.uid, a.metadata.uid);

    let (slices, view) = c
        .eventually(20, "slices with the three pods", || async {
            let (slices, view) = slices_of(&c, "web").await;
            (view.len() == 3).then_some((slices, view))
        })
        .await;
    assert_eq!(view["a"], (true, true, false, vec![8080]));
    assert_eq!(view["b"], (true, true, false, vec![9090]));
    assert_eq!(view["c"], (false, false, false, vec![8080]));
    assert_eq!(slices.len(), 2, "one slice per port set");
    for s in &slices {
        assert_eq!(s.address_type, "IPv4");
        assert!(s.metadata.name.as_deref().unwrap_or_default().starts_with("web-"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", svc.metadata.uid.as_deref().unwrap(), Some(true))
        );
    }

    // A pod turning unready moves within about a second.
    c.set_pod_running_ip(&a, "10.244.1.1", false).await;
    let want: Addresses = (pairs(&[("10.244.1.2", 9090)]), pairs(&[("10.244.1.1", 8080), ("10.244.1.3", 8080)]));
    c.eventually(2, "a not ready in Endpoints", || async {
        endpoints.get_opt("web").await.unwrap().filter(|ep| addresses(ep) == want)
    })
    .await;
    c.eventually(2, "a not ready in its slice", || async {
        let (_, view) = slices_of(&c, "web").await;
        (view.get("a") == Some(&(false, false, false, vec![8080]))).then_some(())
    })
    .await;

    // A deleted pod disappears, and so does its now empty slice.
    pods.delete("b", &DeleteParams::default()).await.unwrap();
    let want: Addresses = (vec![], pairs(&[("10.244.1.1", 8080), ("10.244.1.3", 8080)]));
    c.eventually(5, "b gone from Endpoints", || async {
        endpoints.get_opt("web").await.unwrap().filter(|ep| addresses(ep) == want)
    })
    .await;
    c.eventually(5, "b's slice gone", || async {
        let (slices, view) = slices_of(&c, "web").await;
        (slices.len() == 1 && !view.contains_key("b")).then_some(())
    })
    .await;

    // A new selector selects other pods.
    let d = pods.create(&pod("d", "api", 7070)).await.unwrap();
    c.set_pod_running_ip(&d, "10.244.1.4", true).await;
    let services = c.api::<Service>(Some(NS));
    let mut changed = services.get("web").await.unwrap();
    changed.spec.as_mut().unwrap().selector = Some(BTreeMap::from([("app".to_string(), "api".to_string())]));
    services.update(&changed).await.unwrap();
    let want: Addresses = (pairs(&[("10.244.1.4", 7070)]), vec![]);
    c.eventually(5, "Endpoints follow the new selector", || async {
        endpoints.get_opt("web").await.unwrap().filter(|ep| addresses(ep) == want)
    })
    .await;
    c.eventually(5, "slices follow the new selector", || async {
        let (slices, view) = slices_of(&c, "web").await;
        let only_d = view.keys().eq(["d"]) && view["d"] == (true, true, false, vec![7070]);
        (slices.len() == 1 && only_d).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectorless_services_are_left_alone_and_deleted_services_lose_their_endpoints() {
    let c = Cluster::start("endpoint,endpointslice", &[]);
    let services = c.api::<Service>(Some(NS));
    let endpoints = c.api::<Endpoints>(Some(NS));
    // A Service without a selector, whose Endpoints its user writes.
    services.create(&service("external", None, false)).await.unwrap();
    let manual: Endpoints = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external", "namespace": NS},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432, "protocol": "TCP"}]}],
    }))
    .unwrap();
    let created = endpoints.create(&manual).await.unwrap();

    // A headless Service with a selector, created after: once its endpoints exist, the
    // controllers have long seen the selector-less one.
    let pods = c.api::<Pod>(Some(NS));
    let mut p = pod("db-0", "db", 5432);
    let spec = p.spec.as_mut().unwrap();
    spec.hostname = Some("db-0".into());
    spec.subdomain = Some("db".into());
    let p = pods.create(&p).await.unwrap();
    c.set_pod_running_ip(&p, "10.244.2.1", true).await;
    services.create(&service("db", Some(json!({"app": "db"})), true)).await.unwrap();
    let ep = c
        .eventually(20, "headless Service endpoints", || async {
            endpoints.get_opt("db").await.unwrap().filter(|ep| addresses(ep).0 == pairs(&[("10.244.2.1", 5432)]))
        })
        .await;
    assert!(ep.metadata.labels.unwrap_or_default().contains_key("service.kubernetes.io/headless"));
    let address = &ep.subsets.unwrap()[0].addresses.clone().unwrap()[0];
    assert_eq!(address.hostname.as_deref(), Some("db-0"), "hostname when the subdomain names the Service");
    c.eventually(20, "headless Service slice", || async {
        let (_, view) = slices_of(&c, "db").await;
        view.contains_key("db-0").then_some(())
    })
    .await;

    // A terminating pod (held by a finalizer) leaves Endpoints but stays in its slice,
    // flagged terminating and no longer ready, though still serving.
    let mut held = pod("db-1", "db", 5432);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    let held = pods.create(&held).await.unwrap();
    c.set_pod_running_ip(&held, "10.244.2.2", true).await;
    c.eventually(10, "both db pods listed", || async {
        let (_, view) = slices_of(&c, "db").await;
        (view.get("db-1") == Some(&(true, true, false, vec![5432]))).then_some(())
    })
    .await;
    pods.delete("db-1", &DeleteParams::default()).await.unwrap();
    c.eventually(10, "terminating pod flagged in its slice", || async {
        let (_, view) = slices_of(&c, "db").await;
        (view.get("db-1") == Some(&(false, true, true, vec![5432]))).then_some(())
    })
    .await;
    c.eventually(10, "terminating pod gone from Endpoints", || async {
        let ep = endpoints.get("db").await.unwrap();
        (addresses(&ep) == (pairs(&[("10.244.2.1", 5432)]), vec![])).then_some(())
    })
    .await;

    let now = endpoints.get("external").await.unwrap();
    assert_eq!(now.subsets, manual.subsets, "user-managed Endpoints untouched");
    assert_eq!(now.metadata.resource_version, created.metadata.resource_version, "not even rewritten");
    assert!(slices_of(&c, "external").await.0.is_empty(), "no slices for a Service without a selector");

    // Deleting the Service deletes its Endpoints and slices.
    services.delete("db", &DeleteParams::default()).await.unwrap();
    c.eventually(10, "Endpoints of the deleted Service gone", || async {
        endpoints.get_opt("db").await.unwrap().is_none().then_some(())
    })
    .await;
    c.eventually(10, "slices of the deleted Service gone", || async {
        slices_of(&c, "db").await.0.is_empty().then_some(())
    })
    .await;
}
