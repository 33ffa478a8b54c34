//! rkube-proxy against a real API server and real nftables: Services routed to servers in
//! network namespaces, measured by who answers and which client address they see.

mod support;

use k8s_openapi::api::core::v1::Service;
use rkube_client::PatchType;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};
use support::*;

fn http_port() -> serde_json::Value {
    json!([{"name": "http", "port": SERVER_PORT, "protocol": "TCP"}])
}

/// Who answers `n` connections to `addr` from the host, with counts.
async fn responders(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    blocking(move || {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let (name, _) = tcp_hello(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
            *seen.entry(name).or_insert(0) += 1;
        }
        seen
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_reaches_every_ready_endpoint_and_follows_changes_within_a_second() {
    let mut net = Net::new();
    let ips: Vec<_> = (0..4).map(|i| net.endpoint(i, &format!("ep{i}"))).collect();
    let cp = ControlPlane::start(&net);
    let svc = cp
        .service("web", json!({"ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}))
        .await;
    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&svc), 80));
    // ep3 is not ready and never may be chosen.
    let eps = json!([
        endpoint(ips[0], true, NODE),
        endpoint(ips[1], true, NODE),
        endpoint(ips[2], true, "node-b"),
        endpoint(ips[3], false, NODE)
    ]);
    cp.slice("web-1", "web", http_port(), eps).await;
    let proxy = Proxy::start(&net, &cp, &[]).await;
    proxy.wait_rules("three endpoints", |t| t.contains("numgen random mod 3 0 meta l4proto tcp dnat")).await;

    let seen = responders(vip, 90).await;
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["ep0", "ep1", "ep2"], "from the host: {seen:?}");
    // Random spread: each of three gets a fair share of 90 (expected 30; below 10 is
    // astronomically unlikely unless the spread is broken).
    assert!(seen.values().all(|n| *n >= 10), "uneven spread {seen:?}");

    // From the outside client (prerouting, routed) and from a pod on the same bridge
    // (prerouting through bridge netfilter).
    for ns in [net.client_ns(), net.endpoint_ns(3)] {
        let seen: BTreeSet<String> =
            Net::in_ns(&ns, move || (0..40).map(|_| tcp_hello(vip).unwrap_or_else(|e| panic!("{e}")).0).collect());
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["ep0", "ep1", "ep2"], "from {ns}");
    }

    // ep0 turns unready: the rules drop it within a second, and nobody reaches it any more.
    let changed = Instant::now();
    let eps = json!([
        endpoint(ips[0], false, NODE),
        endpoint(ips[1], true, NODE),
        endpoint(ips[2], true, "node-b"),
        endpoint(ips[3], false, NODE)
    ]);
    cp.slice("web-1", "web", http_port(), eps).await;
    let ep0 = ips[0].to_string();
    proxy
        .wait_rules("ep0 gone", move |t| {
            t.contains("numgen random mod 2 0 meta l4proto tcp dnat") && !t.contains(&format!("dnat to {ep0}:"))
        })
        .await;
    let took = changed.elapsed();
    assert!(took < Duration::from_secs(1), "endpoint change took {took:?} to reach the rules");
    let seen = responders(vip, 40).await;
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["ep1", "ep2"]);

    // ep3 becomes ready: added as quickly.
    let changed = Instant::now();
    let eps = json!([endpoint(ips[1], true, NODE), endpoint(ips[2], true, "node-b"), endpoint(ips[3], true, NODE)]);
    cp.slice("web-1", "web", http_port(), eps).await;
    let ep3 = ips[3].to_string();
    proxy.wait_rules("ep3 added", move |t| t.contains(&format!("dnat to {ep3}:"))).await;
    assert!(changed.elapsed() < Duration::from_secs(1), "took {:?}", changed.elapsed());
    let seen = responders(vip, 60).await;
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["ep1", "ep2", "ep3"]);

    // Deleting the Service removes its rules and leaves the table otherwise intact.
    cp.client
        .api::<k8s_openapi::api::core::v1::Service>(Some("default"))
        .delete("web", &Default::default())
        .await
        .unwrap();
    let vip_ip = cluster_ip(&svc).to_string();
    proxy.wait_rules("service gone", move |t| !t.contains(&format!("{vip_ip} . tcp . 80"))).await;
    assert!(!proxy.listing().contains("default/web/"), "{}", proxy.listing());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_services_and_named_target_ports() {
    let mut net = Net::new();
    let a = net.endpoint(0, "udp-a");
    let b = net.endpoint(1, "udp-b");
    let cp = ControlPlane::start(&net);
    let svc = cp
        .service("dns", json!({"ports": [{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}]}))
        .await;
    cp.slice(
        "dns-1",
        "dns",
        json!([{"name": "dns", "port": SERVER_PORT, "protocol": "UDP"}]),
        json!([endpoint(a, true, NODE), endpoint(b, true, NODE)]),
    )
    .await;
    let proxy = Proxy::start(&net, &cp, &[]).await;
    proxy.wait_rules("udp endpoints", |t| t.contains("meta l4proto udp dnat to")).await;
    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&svc), 53));
    let seen: BTreeSet<String> =
        blocking(move || (0..40).map(|_| udp_hello(vip).unwrap_or_else(|e| panic!("udp {vip}: {e}")).0).collect())
            .await;
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["udp-a", "udp-b"]);
    // A TCP connection to the UDP-only Service port is not routed.
    let tcp = blocking(move || tcp_hello(vip)).await;
    assert!(tcp.is_err(), "TCP to a UDP Service port must not reach an endpoint: {tcp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_without_endpoints_reject_at_once() {
    let net = Net::new();
    let cp = ControlPlane::start(&net);
    let tcp = cp.service("empty", json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]})).await;
    let udp = cp.service("empty-udp", json!({"ports": [{"port": 53, "protocol": "UDP"}]})).await;
    let proxy = Proxy::start(&net, &cp, &[]).await;
    let vip = cluster_ip(&tcp).to_string();
    proxy
        .wait_rules("no-endpoint entries", move |t| t.contains(&format!("{vip} . tcp . 80 : goto reject-chain")))
        .await;

    for (what, addr) in [
        ("cluster IP from the host", SocketAddr::from(SocketAddrV4::new(cluster_ip(&tcp), 80))),
        ("node port from the host", SocketAddr::from(SocketAddrV4::new(net.node_ip(), node_port(&tcp)))),
    ] {
        let started = Instant::now();
        let err = blocking(move || tcp_hello(addr)).await.expect_err("no endpoint answers");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{what}: {err}");
        assert!(started.elapsed() < Duration::from_millis(500), "{what}: refused only after {:?}", started.elapsed());
    }
    // The same from outside: through the forward and input hooks.
    let (vip, np) = (
        SocketAddr::from(SocketAddrV4::new(cluster_ip(&tcp), 80)),
        SocketAddr::from(SocketAddrV4::new(net.node_ip(), node_port(&tcp))),
    );
    let errors = Net::in_ns(&net.client_ns(), move || [tcp_hello(vip).map(|_| ()), tcp_hello(np).map(|_| ())]);
    for e in errors {
        assert_eq!(e.expect_err("refused").kind(), std::io::ErrorKind::ConnectionRefused);
    }
    // UDP: ICMP port unreachable, which a connected socket reports as refused.
    let uvip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&udp), 53));
    let started = Instant::now();
    let err = Net::in_ns(&net.client_ns(), move || udp_hello(uvip)).expect_err("no endpoint answers");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));
    // From the node itself the rejected datagram fails its send() with EPERM, at once.
    let err = blocking(move || udp_hello(uvip)).await.expect_err("no endpoint answers");
    assert!(
        matches!(err.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::PermissionDenied),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_external_ips_and_external_traffic_policy_local() {
    let mut net = Net::new();
    let local = net.endpoint(0, "local");
    let remote = net.endpoint(1, "remote");
    let cp = ControlPlane::start(&net);
    let external_ip = net.ip(100);
    let cluster = cp
        .service(
            "cluster",
            json!({"type": "NodePort", "externalIPs": [external_ip.to_string()], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        )
        .await;
    let local_svc = cp
        .service("local", json!({"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}))
        .await;
    let internal = cp
        .service(
            "internal",
            json!({"internalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        )
        .await;
    let lb = cp
        .service("lb", json!({"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}))
        .await;
    let lb_ip = net.ip(101);
    cp.client
        .api::<Service>(Some("default"))
        .patch_status(
            "lb",
            PatchType::Merge,
            &json!({"status": {"loadBalancer": {"ingress": [{"ip": lb_ip.to_string()}]}}}),
        )
        .await
        .expect("load-balancer status");
    let eps = json!([endpoint(local, true, NODE), endpoint(remote, true, "node-b")]);
    for name in ["cluster", "local", "internal", "lb"] {
        cp.slice(&format!("{name}-1"), name, http_port(), eps.clone()).await;
    }
    let proxy = Proxy::start(&net, &cp, &[]).await;
    let lb_key = format!("{lb_ip} . tcp . 80");
    proxy
        .wait_rules("all services", move |t| {
            t.contains("ext-default/local/")
                && t.contains("ext-default/cluster/")
                && t.contains("local-default/internal/")
                && t.contains(&lb_key)
        })
        .await;
    assert!(node_port(&lb) >= 30000);

    // internalTrafficPolicy Local: the cluster IP reaches only this node's endpoint.
    let internal_vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&internal), 80));
    assert_eq!(responders(internal_vip, 20).await.keys().collect::<Vec<_>>(), ["local"]);

    let node_ip = net.node_ip();
    let (np_cluster, np_local) = (node_port(&cluster), node_port(&local_svc));
    let (client_ip, gateway) = (net.client_ip().to_string(), net.ip(1).to_string());
    let results = Net::in_ns(&net.client_ns(), move || {
        let mut cluster = BTreeSet::new();
        let mut local = BTreeSet::new();
        let mut external = BTreeSet::new();
        for _ in 0..40 {
            cluster.insert(tcp_hello(SocketAddr::from((node_ip, np_cluster))).expect("node port answers"));
            local.insert(tcp_hello(SocketAddr::from((node_ip, np_local))).expect("local node port answers"));
            external.insert(tcp_hello(SocketAddr::from((external_ip, 80))).expect("external IP answers").0);
            external.insert(tcp_hello(SocketAddr::from((lb_ip, 80))).expect("load-balancer IP answers").0);
        }
        (cluster, local, external)
    });
    let (cluster_seen, local_seen, external_seen) = results;
    // Cluster policy: every endpoint, the client masqueraded to the node's bridge address.
    let names: BTreeSet<&str> = cluster_seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["local", "remote"]);
    assert!(cluster_seen.iter().all(|(_, peer)| *peer == gateway), "masqueraded: {cluster_seen:?}");
    // Local policy: only this node's endpoint, and the client's own address preserved.
    assert_eq!(local_seen.into_iter().collect::<Vec<_>>(), [("local".to_string(), client_ip)]);
    assert_eq!(external_seen.into_iter().collect::<Vec<_>>(), ["local", "remote"]);

    // The node itself reaching the Local node port counts as cluster traffic: any endpoint.
    let from_host: BTreeSet<String> = blocking(move || {
        (0..40).map(|_| tcp_hello(SocketAddr::from((node_ip, np_local))).expect("answers").0).collect()
    })
    .await;
    assert_eq!(from_host.into_iter().collect::<Vec<_>>(), ["local", "remote"]);

    // Without a local endpoint, outside traffic to the Local node port is dropped (not sent
    // to another node, not rejected), while the cluster IP still works.
    cp.slice("local-1", "local", http_port(), json!([endpoint(remote, true, "node-b")])).await;
    proxy.wait_rules("no local endpoint", |t| !t.contains("local-default/local/")).await;
    let err = Net::in_ns(&net.client_ns(), move || tcp_hello(SocketAddr::from((node_ip, np_local))).map(|_| ()));
    assert_eq!(err.expect_err("dropped").kind(), std::io::ErrorKind::TimedOut);
    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&local_svc), 80));
    assert_eq!(blocking(move || tcp_hello(vip)).await.expect("cluster IP works").0, "remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_session_affinity_sticks() {
    let mut net = Net::new();
    let ips: Vec<_> = (0..3).map(|i| net.endpoint(i, &format!("ep{i}"))).collect();
    let cp = ControlPlane::start(&net);
    let sticky = cp
        .service(
            "sticky",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        )
        .await;
    let eps: Vec<_> = ips.iter().map(|ip| endpoint(*ip, true, NODE)).collect();
    cp.slice("sticky-1", "sticky", http_port(), json!(eps)).await;
    let proxy = Proxy::start(&net, &cp, &[]).await;
    proxy.wait_rules("affinity sets", |t| t.contains("set affinity-60-default/sticky/")).await;

    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&sticky), 80));
    let from_host = responders(vip, 30).await;
    assert_eq!(from_host.len(), 1, "one client, one endpoint: {from_host:?}");
    let from_client: BTreeSet<String> =
        Net::in_ns(&net.client_ns(), move || (0..30).map(|_| tcp_hello(vip).expect("answers").0).collect());
    assert_eq!(from_client.len(), 1, "{from_client:?}");

    // An unrelated change (another Service) rewrites nothing of this one: affinity survives.
    let other = cp.service("other", json!({"ports": [{"port": 81, "protocol": "TCP"}]})).await;
    let other_ip = cluster_ip(&other).to_string();
    proxy.wait_rules("other service", move |t| t.contains(&other_ip)).await;
    let again = responders(vip, 10).await;
    assert_eq!(again.keys().collect::<Vec<_>>(), from_host.keys().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reaching_itself_through_its_service_is_masqueraded() {
    let mut net = Net::new();
    let me = net.endpoint(0, "self");
    let cp = ControlPlane::start(&net);
    let svc = cp.service("hairpin", json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})).await;
    cp.slice("hairpin-1", "hairpin", http_port(), json!([endpoint(me, true, NODE)])).await;
    let proxy = Proxy::start(&net, &cp, &[]).await;
    let me_text = me.to_string();
    proxy.wait_rules("endpoint", move |t| t.contains(&format!("dnat to {me_text}:"))).await;
    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&svc), 80));
    let (name, peer) = Net::in_ns(&net.endpoint_ns(0), move || tcp_hello(vip)).expect("hairpin connection works");
    assert_eq!(name, "self");
    // The reply must come back through the node: the source is the bridge address, not the
    // pod's own (which would make the pod answer itself directly, past the DNAT).
    assert_eq!(peer, net.ip(1).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_proxy_restores_rules_and_established_connections_survive() {
    let mut net = Net::new();
    let a = net.endpoint(0, "a");
    let b = net.endpoint(1, "b");
    let cp = ControlPlane::start(&net);
    let svc = cp.service("web", json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})).await;
    cp.slice("web-1", "web", http_port(), json!([endpoint(a, true, NODE)])).await;
    let mut flags = Proxy::flags(&net, &cp);
    flags.retain(|f| f != "--master" && *f != cp.api.url());
    flags.extend(["--sync-period".to_string(), "1s".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let table = format!("rkt-{}", net.id);
    // Declared first, so dropped after the daemon is killed.
    let _guard = TableGuard(table.clone());
    // The real binary, killed with SIGKILL as a crash would.
    let mut daemon = rkube_testkit::Daemon::start("rkube-proxy", &cp.api, &flags).expect("rkube-proxy starts");
    let a_text = a.to_string();
    wait_table(&table, "endpoint a", move |t| t.contains(&format!("dnat to {a_text}:"))).await;

    let vip = SocketAddr::from(SocketAddrV4::new(cluster_ip(&svc), 80));
    let session = blocking(move || {
        let mut s = Session::open(vip).expect("connects");
        assert_eq!(s.ping().expect("echo"), "a");
        s
    })
    .await;
    daemon.kill();
    // Dead proxy: the rules stay, so new and old connections still work.
    let (session, fresh) = blocking(move || {
        let mut s = session;
        assert_eq!(s.ping().expect("echo while the proxy is down"), "a");
        (s, tcp_hello(vip).expect("new connection while the proxy is down").0)
    })
    .await;
    assert_eq!(fresh, "a");

    // A change while it is down is applied by the full sync at start, and the open
    // connection is not disturbed by it.
    cp.slice("web-1", "web", http_port(), json!([endpoint(a, true, NODE), endpoint(b, true, NODE)])).await;
    daemon.restart().expect("restarts");
    let b_text = b.to_string();
    let took = wait_table(&table, "endpoint b after restart", move |t| t.contains(&format!("dnat to {b_text}:"))).await;
    let names = responders(vip, 40).await;
    assert_eq!(
        names.keys().cloned().collect::<Vec<_>>(),
        ["a", "b"],
        "after restart ({took:?}): {}",
        daemon.log_tail()
    );
    let mut session = session;
    let echoed = blocking(move || session.ping()).await.expect("the connection survived the restart");
    assert_eq!(echoed, "a");

    // The table deleted by hand is recreated by the next periodic sync.
    sh(&["nft", "delete", "table", "ip", &table]);
    let took = wait_table(&table, "table recreated", |t| t.contains("chain nat-prerouting")).await;
    assert!(took < Duration::from_secs(5), "recreated after {took:?}");
    assert_eq!(responders(vip, 20).await.len(), 2);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_dns_service_is_created_and_routed_to_this_nodes_dns_server() {
    // The node IP on another interface than the pods' bridge: a pod's answer must still come
    // from it (the server binds it rather than the wildcard).
    cluster_dns(|net| net.node_ip()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_works_when_the_node_queries_from_the_dns_servers_own_address() {
    // The bridge's address is also the node's source towards Service IPs (the test routes them
    // into the bridge): its own queries are DNATed to its own address, the hairpin case of a
    // host-network endpoint.
    cluster_dns(|net| net.ip(1)).await;
}

/// Cluster DNS with the server on `node_ip(net)`.
async fn cluster_dns(node_ip: impl Fn(&Net) -> std::net::Ipv4Addr) {
    let mut net = Net::new();
    net.endpoint(0, "pod");
    let cp = ControlPlane::start(&net);
    let web = cp.service("web", json!({"ports": [{"port": 80, "protocol": "TCP"}]})).await;
    let dns_ip = net.service_range.replace(".0/24", ".10");
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let listen = format!("0.0.0.0:{port}");
    let node_ip = node_ip(&net).to_string();
    let proxy = Proxy::start(
        &net,
        &cp,
        &[
            "--dns=true",
            "--cluster-dns-ip",
            &dns_ip,
            "--dns-listen",
            &listen,
            "--dns-upstream",
            "none",
            "--node-ip",
            &node_ip,
        ],
    )
    .await;

    // The Service exists with the wanted IP and no selector, and both ports go to this node.
    let target = format!("dnat to {node_ip}:{port}");
    proxy
        .wait_rules("DNS routed", move |t| {
            t.contains(&format!("meta l4proto udp {target}")) && t.contains(&format!("meta l4proto tcp {target}"))
        })
        .await;
    let svc = cp.client.api::<k8s_openapi::api::core::v1::Service>(Some("kube-system")).get("kube-dns").await.unwrap();
    assert_eq!(cluster_ip(&svc).to_string(), dns_ip);
    assert!(svc.spec.as_ref().unwrap().selector.is_none());

    // A pod-like client outside asks the Service IP; the answer comes from the informer cache.
    let server = SocketAddr::from((dns_ip.parse::<std::net::Ipv4Addr>().unwrap(), 53));
    let want = cluster_ip(&web);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = Net::in_ns(&net.client_ns(), move || dns_a(server, "web.default.svc.cluster.local"));
        match got {
            Ok(ips) if ips == [want] => break,
            other if Instant::now() > deadline => panic!("no answer {want} via {server}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // From a pod on the bridge and from the node itself (output hook).
    let from_pod = Net::in_ns(&net.endpoint_ns(0), move || dns_a(server, "web.default.svc.cluster.local"));
    assert_eq!(from_pod.expect("a pod gets an answer"), [want]);
    assert_eq!(blocking(move || dns_a(server, "web.default.svc.cluster.local")).await.unwrap(), [want]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_answer_on_every_local_address_but_loopback_by_default() {
    let mut net = Net::new();
    let ep = net.endpoint(0, "ep");
    let cp = ControlPlane::start(&net);
    // A node port of its own: without --nodeport-addresses the rules match every local
    // address, so two tests must not pick the same one.
    let np = 30000 + (std::process::id() % 2700) as u16;
    cp.service(
        "np",
        json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": np, "protocol": "TCP"}]}),
    )
    .await;
    cp.slice("np-1", "np", http_port(), json!([endpoint(ep, true, NODE)])).await;
    let mut flags = Proxy::flags(&net, &cp);
    let at = flags.iter().position(|f| f == "--nodeport-addresses").expect("flag present");
    flags.drain(at..at + 2);
    let proxy = Proxy::start_with(flags).await;
    proxy.wait_rules("node port", move |t| t.contains(&format!("tcp . {np} : goto ext-default/np/"))).await;
    assert!(proxy.listing().contains("fib daddr type local ip daddr != 127.0.0.0/8"));

    // The outside client on the node's address, a pod on the bridge's address.
    let (node_ip, bridge_ip) = (net.node_ip(), net.ip(1));
    let from_client = Net::in_ns(&net.client_ns(), move || tcp_hello(SocketAddr::from((node_ip, np))));
    assert_eq!(from_client.expect("node address answers").0, "ep");
    let from_pod = Net::in_ns(&net.endpoint_ns(0), move || tcp_hello(SocketAddr::from((bridge_ip, np))));
    assert_eq!(from_pod.expect("bridge address answers").0, "ep");
    // Loopback is left alone (a DNAT from 127.0.0.1 could not leave the node).
    let err = blocking(move || tcp_hello(SocketAddr::from(([127, 0, 0, 1], np)))).await.expect_err("not routed");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}
