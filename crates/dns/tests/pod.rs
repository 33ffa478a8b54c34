//! End to end on a real node: a kubelet on containerd runs a web pod behind a ClusterIP and a
//! headless Service (EndpointSlices from the real controller-manager), the DNS server listens
//! on the pod bridge's gateway, and a pod whose resolv.conf names it resolves short names
//! through its search path, the StatefulSet-style pod name and an outside name with busybox's
//! nslookup.

mod common;

use common::{data, fake_upstream, udp};
use hickory_server::proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use rkube_client::Client;
use rkube_dns::{DnsServer, Forwarder, Zone, ZoneSettings};
use rkube_testkit::{ApiServer, Daemon, Etcd, KubeletNode, images};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NODE: &str = "dns-node";

fn phase(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

/// The log file of container `main` of pod `name` under containerd's pod log dir.
fn container_log(logs_dir: &Path, name: &str) -> String {
    let prefix = format!("default_{name}_");
    let Ok(entries) = std::fs::read_dir(logs_dir) else { return String::new() };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            return std::fs::read_to_string(entry.path().join("main").join("0.log")).unwrap_or_default();
        }
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_resolves_services_through_its_search_path() {
    let etcd = Etcd::start().expect("etcd starts");
    let api = ApiServer::start(&etcd).expect("apiserver starts");
    let node = KubeletNode::start(&api, NODE, &["--log-level", "info"]).expect("kubelet starts");
    let controllers =
        Daemon::start("rkube-controller-manager", &api, &["--leader-elect=false"]).expect("controllers start");
    let client = Client::new(&api.url()).unwrap();
    let logs = || {
        format!("--- kubelet ---\n{}\n--- controller-manager ---\n{}", node.kubelet.log_tail(), controllers.log_tail())
    };
    rkube_testkit::eventually("node Ready", Duration::from_secs(60), &logs, || async {
        let n = client.api::<Node>(None).get_opt(NODE).await.ok()??;
        n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;

    let services = client.api::<Service>(Some("default"));
    let web: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
    .unwrap();
    let web_ip = services.create(&web).await.unwrap().spec.unwrap().cluster_ip.unwrap();
    let headless: Service = serde_json::from_value(json!({"metadata": {"name": "web-hl"}, "spec": {
        "clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]}}))
    .unwrap();
    services.create(&headless).await.unwrap();
    let pods = client.api::<Pod>(Some("default"));
    let backend: Pod =
        serde_json::from_value(json!({"metadata": {"name": "web-0", "labels": {"app": "web"}}, "spec": {
        "nodeName": NODE, "hostname": "web-0", "subdomain": "web-hl", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["httpd", "-f", "-p", "8080"]}]}}))
        .unwrap();
    pods.create(&backend).await.unwrap();
    let pod_ip = rkube_testkit::eventually("web-0 Running with an IP", Duration::from_secs(60), &logs, || async {
        let p = pods.get_opt("web-0").await.ok()??;
        (phase(&p) == "Running").then_some(())?;
        p.status?.pod_ip
    })
    .await;

    // The bridge exists now that a pod is attached: its gateway address is how pods reach the
    // host. Port 53, since resolv.conf cannot name another; the address is this test's own.
    let subnet = node.containerd().subnet().to_string();
    let gateway = subnet.replace(".0/24", ".1");
    let (upstream, _counts, _up) = fake_upstream().await;
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let zone = Zone::new(ZoneSettings::new("cluster.local", 30, 5).unwrap());
    let listen: SocketAddr = format!("{gateway}:53").parse().unwrap();
    let server = DnsServer::start(
        &[listen],
        zone.clone(),
        Forwarder::new(vec![upstream], Duration::from_secs(2)),
        token.clone(),
    )
    .await
    .expect("the DNS server binds the bridge gateway");
    tokio::spawn({
        let (client, token) = (client.clone(), token.clone());
        async move { rkube_dns::sync_zone(&client, zone, token).await }
    });
    let dns = server.local_addrs()[0];
    rkube_testkit::eventually(
        "web-0.web-hl in DNS (EndpointSlice from the controller)",
        Duration::from_secs(30),
        &logs,
        || async {
            let a = udp(dns, "web-0.web-hl.default.svc.cluster.local.", RecordType::A).await;
            (data(&a) == [pod_ip.as_str()]).then_some(())
        },
    )
    .await;

    // busybox's nslookup applies the search list only to names without a dot (glibc's ndots
    // rule is not its own), asks for every candidate at once and exits non-zero when any of
    // them is NXDOMAIN: judge by what it printed. Dotted short names (`web.default`) are
    // covered server-side in tests/dns.rs.
    let script = "for n in web web-hl web.default.svc.cluster.local web-0.web-hl.default.svc.cluster.local example.test; do \
                  echo \"== $n\"; nslookup -type=a $n; done; echo '== end'";
    let client_pod: Pod = serde_json::from_value(json!({"metadata": {"name": "dig"}, "spec": {
        "nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "dnsPolicy": "None", "dnsConfig": {"nameservers": [gateway],
            "searches": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            "options": [{"name": "ndots", "value": "5"}]},
        "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script]}]}}))
    .unwrap();
    pods.create(&client_pod).await.unwrap();
    let logs_dir = node.containerd().logs_dir();
    let done = rkube_testkit::eventually("the nslookup pod to finish", Duration::from_secs(60), &logs, || async {
        let p = pods.get_opt("dig").await.ok()??;
        matches!(phase(&p).as_str(), "Succeeded" | "Failed").then(|| phase(&p))
    })
    .await;
    let out = container_log(&logs_dir, "dig");
    assert_eq!(done, "Succeeded", "nslookup failed:\n{out}");
    // Each name resolved to the right address (busybox prints "Address: <ip>" per answer).
    let section = |name: &str| -> String {
        let start = out.find(&format!("== {name}\n")).map(|i| i + name.len() + 4).unwrap_or(out.len());
        let rest = &out[start..];
        rest[..rest.find("== ").unwrap_or(rest.len())].to_string()
    };
    for name in ["web", "web.default.svc.cluster.local"] {
        assert!(section(name).contains(&format!("Address: {web_ip}")), "{name} -> {web_ip}:\n{out}");
    }
    for name in ["web-hl", "web-0.web-hl.default.svc.cluster.local"] {
        assert!(section(name).contains(&format!("Address: {pod_ip}")), "{name} -> {pod_ip}:\n{out}");
    }
    // The short name went through the search path: its first candidate is the answer's name.
    assert!(section("web").contains("Name:\tweb.default.svc.cluster.local"), "search path:\n{out}");
    assert!(section("example.test").contains("Address: 192.0.2.1"), "example.test forwarded:\n{out}");
    token.cancel();
}
