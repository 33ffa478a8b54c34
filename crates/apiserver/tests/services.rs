//! Service ClusterIP and NodePort allocation against a real etcd and API server.

mod common;

use common::Cluster;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::Ipv4Addr;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("ports").is_none() {
        spec["ports"] = json!([{"port": 80, "protocol": "TCP"}]);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn ip_of(body: &Value) -> Ipv4Addr {
    body["spec"]["clusterIP"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no clusterIP in {body}"))
}

fn in_default_range(ip: Ipv4Addr) -> bool {
    let n = u32::from(ip);
    let net = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    n & 0xfff0_0000 == net && n != net && n != net + 1 && n != (net | 0x000f_ffff)
}

#[tokio::test]
async fn cluster_ips_are_allocated_checked_and_released() {
    let c = Cluster::start();
    let r = c.post(SVCS, &service("auto", json!({}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(in_default_range(ip_of(&r.body)), "{}", r.body);
    assert_eq!(r.body["spec"]["clusterIPs"], json!([r.body["spec"]["clusterIP"]]));
    assert_eq!(r.body["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(r.body["spec"]["ipFamilyPolicy"], "SingleStack");

    let r = c.post(SVCS, &service("fixed", json!({"clusterIP": "10.96.0.5"}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.body["spec"]["clusterIP"], "10.96.0.5");

    let r = c.post(SVCS, &service("dup", json!({"clusterIP": "10.96.0.5"}))).await;
    assert_eq!(r.code, 422, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap_or_default();
    let want = r#"spec.clusterIPs: Invalid value: ["10.96.0.5"]: failed to allocate IP 10.96.0.5: "#;
    assert!(msg.contains(&format!("{want}provided IP is already allocated")), "{msg}");

    let r = c.post(SVCS, &service("far", json!({"clusterIP": "192.168.0.5"}))).await;
    assert_eq!(r.code, 422, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"), "{msg}");

    let r = c.post(SVCS, &service("headless", json!({"clusterIP": "None"}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.body["spec"]["clusterIP"], "None");

    let r = c.post(SVCS, &service("ext", json!({"type": "ExternalName", "externalName": "example.com"}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(r.body["spec"].get("clusterIP").is_none(), "{}", r.body);

    // A PUT without clusterIP keeps the allocated one.
    let r =
        c.put(&format!("{SVCS}/fixed"), &service("fixed", json!({"ports": [{"port": 81, "protocol": "TCP"}]}))).await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["clusterIP"], "10.96.0.5");

    // Deleting releases the IP: another Service may take it.
    assert_eq!(c.delete(&format!("{SVCS}/fixed")).await.code, 200);
    let r = c.post(SVCS, &service("again", json!({"clusterIP": "10.96.0.5"}))).await;
    assert_eq!(r.code, 201, "{}", r.body);

    // Allocation keys are not served as objects of any listed resource.
    let r = c.get("/api/v1/services").await;
    let names: Vec<&str> =
        r.body["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert!(names.contains(&"again") && !names.contains(&"fixed"), "{names:?}");
}

#[tokio::test]
async fn concurrent_creates_get_distinct_ips() {
    let c = Cluster::start();
    // Polled together, so the creates overlap on the server.
    let bodies: Vec<Value> = (0..50).map(|i| service(&format!("s{i}"), json!({}))).collect();
    let replies = futures::future::join_all(bodies.iter().map(|b| c.post(SVCS, b))).await;
    let mut ips = HashSet::new();
    for r in replies {
        assert_eq!(r.code, 201, "{}", r.body);
        let ip = ip_of(&r.body);
        assert!(in_default_range(ip));
        assert!(ips.insert(ip), "{ip} allocated twice");
    }
    assert_eq!(ips.len(), 50);
}

#[tokio::test]
async fn node_ports_are_allocated_and_released() {
    let c = Cluster::start();
    let ports = json!([{"name": "a", "port": 80, "protocol": "TCP"}, {"name": "b", "port": 81, "protocol": "TCP"}]);
    let spec = json!({"type": "NodePort", "ports": ports});
    let r = c.post(SVCS, &service("np", spec)).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let ports: Vec<i64> =
        r.body["spec"]["ports"].as_array().unwrap().iter().filter_map(|p| p["nodePort"].as_i64()).collect();
    assert_eq!(ports.len(), 2, "{}", r.body);
    assert!(ports.iter().all(|p| (30000..=32767).contains(p)) && ports[0] != ports[1], "{ports:?}");
    assert!(in_default_range(ip_of(&r.body)));

    let r =
        c.post(SVCS, &service("fixed", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let r =
        c.post(SVCS, &service("dup", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))).await;
    assert_eq!(r.code, 422, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"), "{msg}");

    // Turning the Service into ClusterIP releases its node port.
    let r = c
        .patch(&format!("{SVCS}/fixed"), "application/merge-patch+json", &json!({"spec": {"type": "ClusterIP"}}))
        .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(r.body["spec"]["ports"][0].get("nodePort").is_none(), "{}", r.body);
    let r =
        c.post(SVCS, &service("dup", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    // And deleting does too.
    assert_eq!(c.delete(&format!("{SVCS}/dup")).await.code, 200);
    let r =
        c.post(SVCS, &service("third", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
}

#[tokio::test]
async fn kubernetes_service_exists_and_allocations_survive_a_restart() {
    let mut c = Cluster::start();
    let r = c.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(r.body["spec"]["ports"][0]["port"], 443);
    assert_eq!(r.body["spec"]["ports"][0]["name"], "https");
    assert_eq!(r.body["spec"]["ports"][0]["targetPort"], c.api.port());
    let r = c.get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["subsets"][0]["addresses"][0]["ip"], "127.0.0.1");
    assert_eq!(r.body["subsets"][0]["ports"][0]["port"], c.api.port());
    let r = c.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.body["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(r.body["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(r.body["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(r.body["ports"][0]["port"], c.api.port());

    let mut ips = HashSet::new();
    for i in 0..10 {
        let r = c.post(SVCS, &service(&format!("before{i}"), json!({}))).await;
        assert_eq!(r.code, 201, "{}", r.body);
        ips.insert(ip_of(&r.body));
    }
    c.restart_api();
    let r = c.get(&format!("{SVCS}/kubernetes")).await;
    assert_eq!(r.body["spec"]["clusterIP"], "10.96.0.1");
    let r = c.post(SVCS, &service("taken", json!({"clusterIP": ips.iter().next().unwrap().to_string()}))).await;
    assert_eq!(r.code, 422, "{}", r.body);
    for i in 0..10 {
        let r = c.post(SVCS, &service(&format!("after{i}"), json!({}))).await;
        assert_eq!(r.code, 201, "{}", r.body);
        assert!(ips.insert(ip_of(&r.body)), "duplicate IP after restart: {}", r.body);
    }
}

#[tokio::test]
async fn a_full_range_answers_range_is_full() {
    let etcd = rkube_testkit::Etcd::start().expect("etcd starts");
    let api = rkube_testkit::ApiServer::start_with(&etcd, &["--service-cluster-ip-range", "10.0.0.0/29"])
        .expect("apiserver starts");
    let c = Cluster { api, etcd, http: reqwest::Client::new() };
    // .0 is the network, .7 the broadcast and .1 the kubernetes Service's: five are left.
    let mut ips = HashSet::new();
    for i in 0..5 {
        let r = c.post(SVCS, &service(&format!("s{i}"), json!({}))).await;
        assert_eq!(r.code, 201, "{}", r.body);
        let ip = ip_of(&r.body);
        assert!((2..=6).contains(&ip.octets()[3]), "{ip}");
        ips.insert(ip);
    }
    assert_eq!(ips.len(), 5);
    let r = c.post(SVCS, &service("full", json!({}))).await;
    assert_eq!(r.code, 500, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap_or_default().contains("range is full"), "{}", r.body);
    assert_eq!(c.delete(&format!("{SVCS}/s3")).await.code, 200);
    let r = c.post(SVCS, &service("full", json!({}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
}

#[tokio::test]
async fn dynamic_allocation_keeps_off_the_static_band_until_the_rest_is_full() {
    let etcd = rkube_testkit::Etcd::start().expect("etcd starts");
    let api = rkube_testkit::ApiServer::start_with(
        &etcd,
        &["--service-cluster-ip-range", "10.0.0.0/27", "--service-node-port-range", "30000-30099"],
    )
    .expect("apiserver starts");
    let c = Cluster { api, etcd, http: reqwest::Client::new() };
    // A /27 has 30 usable addresses: .1-.16 are the static band (.1 the kubernetes Service's),
    // .17-.30 the 14 handed out first.
    for i in 0..14 {
        let r = c.post(SVCS, &service(&format!("s{i}"), json!({"type": "NodePort"}))).await;
        assert_eq!(r.code, 201, "{}", r.body);
        let ip = ip_of(&r.body);
        assert!((17..=30).contains(&ip.octets()[3]), "s{i} got {ip}, in the static band");
        // Node ports 30000-30099: the first 16 are the static band.
        let port = r.body["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or_default();
        assert!((30016..=30099).contains(&port), "s{i} got node port {port}, in the static band");
    }
    // A user may still pick an address of the static band, such as a cluster DNS IP.
    let dns = c.post(SVCS, &service("dns", json!({"clusterIP": "10.0.0.10"}))).await;
    assert_eq!((dns.code, ip_of(&dns.body)), (201, Ipv4Addr::new(10, 0, 0, 10)), "{}", dns.body);
    // With the upper band full, dynamic allocation falls back to the static band.
    let r = c.post(SVCS, &service("overflow", json!({}))).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let ip = ip_of(&r.body);
    assert!((2..=16).contains(&ip.octets()[3]) && ip.octets()[3] != 10, "{ip}");
}
