//! NetworkPolicy enforcement against a real API server and real nftables: a server pod and two
//! client pods emulated by network namespaces on one bridge (bridged traffic, as between the
//! pods of a node), Pod objects naming their IPs, and policies switched on and off.

mod support;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use rkube_client::PatchType;
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};
use support::*;

const NS: &str = "np";

/// Whether a TCP connection from namespace `ns` to `addr` is accepted (a dropped SYN shows as a
/// timeout after 500 ms).
fn reaches(ns: &str, addr: SocketAddr) -> bool {
    Net::in_ns(ns, move || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

/// Polls until each (client namespace, expected) pair holds for `addr`, or fails after 15 s.
async fn expect_reach(what: &str, addr: SocketAddr, cases: &[(&str, bool)], table: &str) {
    let started = Instant::now();
    loop {
        let mut wrong = Vec::new();
        for (ns, want) in cases {
            let (ns2, want) = (ns.to_string(), *want);
            if blocking(move || reaches(&ns2, addr)).await != want {
                wrong.push(format!("{ns} {}", if want { "blocked" } else { "reaches" }));
            }
        }
        if wrong.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let listing = sh_out(&["nft", "list", "table", "ip", table]).unwrap_or_else(|e| e);
            panic!("{what}: {wrong:?} after 15s; policy table:\n{listing}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pod(cp: &ControlPlane, name: &str, ip: Ipv4Addr, labels: Value) {
    let api = cp.client.api::<Pod>(Some(NS));
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox",
            "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}]}]},
    }))
    .unwrap();
    api.create(&p).await.expect("pod created");
    let status = json!({"status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}});
    api.patch_status(name, PatchType::Merge, &status).await.expect("pod IP set");
}

async fn apply_policy(cp: &ControlPlane, name: &str, spec: Value) {
    let api = cp.client.api::<NetworkPolicy>(Some(NS));
    let p: NetworkPolicy =
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS}, "spec": spec})).unwrap();
    match api.get_opt(name).await.unwrap() {
        Some(old) => {
            let mut p = p;
            p.metadata.resource_version = old.metadata.resource_version;
            api.update(&p).await.expect("policy updated");
        }
        None => {
            api.create(&p).await.expect("policy created");
        }
    }
}

async fn delete_policy(cp: &ControlPlane, name: &str) {
    cp.client.api::<NetworkPolicy>(Some(NS)).delete(name, &Default::default()).await.expect("policy deleted");
}

fn table_exists(table: &str) -> bool {
    sh_out(&["nft", "list", "table", "ip", table]).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_isolate_pods_and_lift_when_removed() {
    let mut net = Net::new();
    let server_ip = net.endpoint(0, "server");
    let a_ip = net.endpoint(1, "a");
    let b_ip = net.endpoint(2, "b");
    let (a, b) = (net.endpoint_ns(1), net.endpoint_ns(2));
    let server = SocketAddr::from(SocketAddrV4::new(server_ip, SERVER_PORT));
    let cp = ControlPlane::start(&net);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    cp.client.api::<Namespace>(None).create(&ns).await.expect("namespace created");
    pod(&cp, "server", server_ip, json!({"app": "server"})).await;
    pod(&cp, "a", a_ip, json!({"app": "a"})).await;
    pod(&cp, "b", b_ip, json!({"app": "b"})).await;
    // A Service in front of the server: policies apply to the DNATed traffic too.
    let svc = cp.service("web", json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})).await;
    cp.slice(
        "web-1",
        "web",
        json!([{"name": "http", "port": SERVER_PORT, "protocol": "TCP"}]),
        json!([endpoint(server_ip, true, NODE)]),
    )
    .await;
    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&svc), 80));

    let table = format!("rkt-{}-netpol", net.id);
    let _guard = TableGuard(table.clone());
    let mut proxy = Proxy::start(&net, &cp, &[]).await;
    assert_eq!(rkube_proxy::netpol::table_name(&proxy.table), table);

    // No policy: everyone reaches the server, and there is no policy table at all.
    expect_reach("no policy", server, &[(&a, true), (&b, true)], &table).await;
    expect_reach("no policy, by Service", vip, &[(&a, true), (&b, true)], &table).await;
    assert!(!table_exists(&table), "no isolated pod, no table");

    // Deny all ingress to the server.
    let changed = Instant::now();
    apply_policy(&cp, "server", json!({"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]}))
        .await;
    let s = server_ip.to_string();
    let took = wait_table(&table, "the server's chain", move |t| t.contains(&format!("chain ingress-{s}"))).await;
    assert!(took < Duration::from_secs(2) && changed.elapsed() < Duration::from_secs(3), "took {took:?}");
    expect_reach("deny all", server, &[(&a, false), (&b, false)], &table).await;
    expect_reach("deny all, by Service", vip, &[(&a, false), (&b, false)], &table).await;
    // The node itself (kubelet probes) still reaches the pod: its traffic is not forwarded.
    let from_node = blocking(move || tcp_hello(server)).await;
    assert_eq!(from_node.expect("the node reaches an isolated pod").0, "server");
    // The server itself is not blocked from its own Service (hairpin through the bridge).
    expect_reach("the server to itself", vip, &[(&net.endpoint_ns(0), true)], &table).await;

    // Allow from app=a only (on the port, named as the server names it).
    apply_policy(
        &cp,
        "server",
        json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}], "ports": [{"port": "http", "protocol": "TCP"}]}]}),
    )
    .await;
    expect_reach("allow app=a", server, &[(&a, true), (&b, false)], &table).await;
    expect_reach("allow app=a, by Service", vip, &[(&a, true), (&b, false)], &table).await;
    // An allowed connection stays usable: replies pass.
    let greeting = Net::in_ns(&a, move || tcp_hello(server));
    assert_eq!(greeting.expect("a talks to the server").0, "server");

    // A label change on b makes it a peer; changing it back removes it again.
    let api = cp.client.api::<Pod>(Some(NS));
    api.patch("b", PatchType::Merge, &json!({"metadata": {"labels": {"app": "a"}}})).await.unwrap();
    expect_reach("b relabelled a", server, &[(&b, true)], &table).await;
    api.patch("b", PatchType::Merge, &json!({"metadata": {"labels": {"app": "b"}}})).await.unwrap();
    expect_reach("b relabelled back", server, &[(&b, false)], &table).await;

    // Namespace selector: pods of namespaces labelled team=x, combined with app=b.
    apply_policy(
        &cp,
        "server",
        json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {"matchLabels": {"app": "b"}}}]}]}),
    )
    .await;
    expect_reach("namespace not labelled yet", server, &[(&a, false), (&b, false)], &table).await;
    cp.client
        .api::<Namespace>(None)
        .patch(NS, PatchType::Merge, &json!({"metadata": {"labels": {"team": "x"}}}))
        .await
        .unwrap();
    expect_reach("namespace labelled", server, &[(&a, false), (&b, true)], &table).await;

    // Removing the policy restores traffic and removes the table.
    delete_policy(&cp, "server").await;
    expect_reach("policy removed", server, &[(&a, true), (&b, true)], &table).await;
    let t = table.clone();
    tokio::time::timeout(Duration::from_secs(10), async move {
        while table_exists(&t) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the table goes when nothing is isolated");

    // Egress: a may send nothing; b is unaffected.
    apply_policy(&cp, "a-out", json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]})).await;
    expect_reach("a egress denied", server, &[(&a, false), (&b, true)], &table).await;
    expect_reach("a egress denied, by Service", vip, &[(&a, false), (&b, true)], &table).await;
    // Egress allowed to app=server on a port range holding the server's port.
    apply_policy(
        &cp,
        "a-out",
        json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "server"}}}],
                "ports": [{"port": SERVER_PORT - 10, "endPort": SERVER_PORT + 10, "protocol": "TCP"}]}]}),
    )
    .await;
    expect_reach("a egress to the server", server, &[(&a, true)], &table).await;
    expect_reach("a egress elsewhere", SocketAddr::from((b_ip, SERVER_PORT)), &[(&a, false)], &table).await;

    // Restart: the rules stay while the proxy is down and are restored when the table was lost.
    apply_policy(&cp, "a-out", json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]})).await;
    expect_reach("a egress denied again", server, &[(&a, false)], &table).await;
    proxy.stop().await;
    expect_reach("proxy down", server, &[(&a, false), (&b, true)], &table).await;
    sh(&["nft", "delete", "table", "ip", &table]);
    expect_reach("table deleted", server, &[(&a, true)], &table).await;
    let _proxy = Proxy::start(&net, &cp, &[]).await;
    expect_reach("proxy restarted", server, &[(&a, false), (&b, true)], &table).await;
    delete_policy(&cp, "a-out").await;
    expect_reach("egress policy removed", server, &[(&a, true), (&b, true)], &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_false_enforces_nothing_and_removes_old_rules() {
    let mut net = Net::new();
    let server_ip = net.endpoint(0, "server");
    let a_ip = net.endpoint(1, "a");
    let a = net.endpoint_ns(1);
    let server = SocketAddr::from(SocketAddrV4::new(server_ip, SERVER_PORT));
    let cp = ControlPlane::start(&net);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    cp.client.api::<Namespace>(None).create(&ns).await.expect("namespace created");
    pod(&cp, "server", server_ip, json!({"app": "server"})).await;
    pod(&cp, "a", a_ip, json!({"app": "a"})).await;
    apply_policy(&cp, "deny", json!({"podSelector": {}})).await;
    let table = format!("rkt-{}-netpol", net.id);
    let _guard = TableGuard(table.clone());
    let mut proxy = Proxy::start(&net, &cp, &[]).await;
    expect_reach("deny all", server, &[(&a, false)], &table).await;
    proxy.stop().await;
    let _proxy = Proxy::start(&net, &cp, &["--network-policy=false"]).await;
    let t = table.clone();
    tokio::time::timeout(Duration::from_secs(10), async move {
        while table_exists(&t) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a disabled proxy removes the old policy table");
    expect_reach("not enforced", server, &[(&a, true)], &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_isolated_pod_reaches_the_node_dns_server_only_when_allowed() {
    let mut net = Net::new();
    let a_ip = net.endpoint(0, "a");
    let a = net.endpoint_ns(0);
    let cp = ControlPlane::start(&net);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    cp.client.api::<Namespace>(None).create(&ns).await.expect("namespace created");
    pod(&cp, "a", a_ip, json!({"app": "a"})).await;
    let dns_ip: Ipv4Addr = net.service_range.replace(".0/24", ".10").parse().unwrap();
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let (listen, node_ip, dns) = (format!("0.0.0.0:{port}"), net.node_ip().to_string(), dns_ip.to_string());
    let table = format!("rkt-{}-netpol", net.id);
    let _guard = TableGuard(table.clone());
    let _proxy = Proxy::start(
        &net,
        &cp,
        &[
            "--dns=true",
            "--cluster-dns-ip",
            &dns,
            "--dns-listen",
            &listen,
            "--dns-upstream",
            "none",
            "--node-ip",
            &node_ip,
        ],
    )
    .await;
    let server = SocketAddr::from((dns_ip, 53));
    let expect = |want: bool, what: &'static str| expect_dns(a.clone(), server, dns_ip, want, what, table.clone());
    expect(true, "not isolated").await;
    apply_policy(&cp, "deny-out", json!({"podSelector": {}, "policyTypes": ["Egress"]})).await;
    expect(false, "egress denied").await;
    // The usual Kubernetes policy that lets pods resolve names.
    apply_policy(
        &cp,
        "dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
    )
    .await;
    expect(true, "DNS allowed").await;
}

/// Polls until a query from namespace `ns` to `server` is answered with `ip` (`want`) or not.
async fn expect_dns(ns: String, server: SocketAddr, ip: Ipv4Addr, want: bool, what: &str, table: String) {
    let name = "kube-dns.kube-system.svc.cluster.local";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ns2 = ns.clone();
        let answered =
            blocking(move || Net::in_ns(&ns2, move || dns_a(server, name).is_ok_and(|ips| ips == [ip]))).await;
        if answered == want {
            return;
        }
        let listing = sh_out(&["nft", "list", "table", "ip", &table]).unwrap_or_else(|e| e);
        assert!(Instant::now() < deadline, "{what}: DNS answered = {answered}; table:\n{listing}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
