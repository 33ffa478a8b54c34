//! rkube-proxy end to end with real pods: a Deployment run by rkube-kubelet on containerd
//! behind a NodePort Service, EndpointSlices written by the controller-manager, the proxy
//! binary with cluster DNS. Pods reach the Service by ClusterIP and by name, the host reaches
//! it by ClusterIP and node port, and scaling down shows in the rules.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use rkube_client::{Client, PatchType};
use rkube_testkit::{ApiServer, Daemon, Etcd, KubeletNode, images};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

const NODE_NAME: &str = "proxy-e2e";

/// A plain HTTP GET of `/` by IP; the body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or_default().trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_a_deployment_by_cluster_ip_and_name_and_the_host_by_node_port() {
    let (n, hi, lo) = unique_slot();
    let range = format!("10.{}.{lo}.0/24", 160 + hi);
    let dns_ip = format!("10.{}.{lo}.10", 160 + hi);
    let etcd = Etcd::start().expect("etcd");
    let api = ApiServer::start_with(&etcd, &["--service-cluster-ip-range", &range]).expect("apiserver");
    let client = Client::new(&api.url()).unwrap();
    let node = KubeletNode::start(&api, NODE_NAME, &["--cluster-dns", &dns_ip]).expect("kubelet");
    let controllers =
        Daemon::start("rkube-controller-manager", &api, &["--leader-elect=false"]).expect("controller-manager");
    let subnet = node.containerd().subnet().to_string();
    let gateway: Ipv4Addr = subnet.replace(".0/24", ".1").parse().unwrap();
    let table = format!("rkt-{}-{n}", std::process::id());
    let dns_port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let _guard = TableGuard(table.clone());
    let proxy = Daemon::start(
        "rkube-proxy",
        &api,
        &[
            "--nftables-table",
            &table,
            "--hostname-override",
            NODE_NAME,
            "--cluster-cidr",
            &subnet,
            "--nodeport-addresses",
            &format!("{gateway}/32"),
            "--cluster-dns-ip",
            &dns_ip,
            "--dns-listen",
            &format!("0.0.0.0:{dns_port}"),
            "--dns-upstream",
            "none",
            "--min-sync-period",
            "50ms",
        ],
    )
    .expect("rkube-proxy");
    let logs = || {
        format!(
            "--- proxy ---\n{}\n--- kubelet ---\n{}\n--- controllers ---\n{}\n--- table ---\n{}",
            proxy.log_tail(),
            node.kubelet.log_tail(),
            controllers.log_tail(),
            sh_out(&["nft", "list", "table", "ip", &table]).unwrap_or_default()
        )
    };
    rkube_testkit::eventually("node Ready", Duration::from_secs(60), logs, || async {
        let n = client.api::<Node>(None).get_opt(NODE_NAME).await.ok()??;
        n.status?.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;

    // Three web pods, each answering with its own name.
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "nodeName": NODE_NAME, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "httpd", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}
    }))
    .unwrap();
    client.api::<Deployment>(Some("default")).create(&deployment).await.expect("deployment");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    }))
    .unwrap();
    let svc = client.api::<Service>(Some("default")).create(&svc).await.expect("service");
    let vip = SocketAddr::from((cluster_ip(&svc), 80));
    let node_port_addr = SocketAddr::from((gateway, node_port(&svc)));

    let chain = "cluster-default/web/tcp/80";
    let three = rkube_testkit::eventually("three endpoints in the rules", Duration::from_secs(90), logs, || async {
        let listing = sh_out(&["nft", "list", "chain", "ip", &table, chain]).ok()?;
        (listing.matches("dnat to").count() == 3).then_some(())
    });
    three.await;

    // The host: every replica by cluster IP and by node port.
    let (by_ip, by_port) = blocking(move || {
        let mut a = BTreeSet::new();
        let mut b = BTreeSet::new();
        for _ in 0..60 {
            a.insert(http_get(vip).expect("cluster IP answers"));
            b.insert(http_get(node_port_addr).expect("node port answers"));
        }
        (a, b)
    })
    .await;
    assert_eq!(by_ip.len(), 3, "{by_ip:?}");
    assert_eq!(by_port, by_ip);

    // A pod: by cluster IP, then by DNS name through the cluster DNS Service.
    let script = format!(
        "for i in $(seq 1 40); do echo got=$(wget -q -O - http://{}/); done; nslookup web.default.svc.cluster.local; echo done; sleep 3600",
        vip.ip()
    );
    let client_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {"nodeName": NODE_NAME, "terminationGracePeriodSeconds": 0, "containers": [{"name": "c",
            "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}]}
    }))
    .unwrap();
    client.api::<Pod>(Some("default")).create(&client_pod).await.expect("client pod");
    let output = rkube_testkit::eventually("the client pod's output", Duration::from_secs(60), logs, || async {
        let (code, body) = api.get("/api/v1/namespaces/default/pods/client/log").ok()?;
        (code == 200 && body.contains("\ndone")).then_some(body)
    })
    .await;
    let seen: BTreeSet<&str> = output.lines().filter_map(|l| l.strip_prefix("got=")).collect();
    let expected: BTreeSet<&str> = by_ip.iter().map(String::as_str).collect();
    assert_eq!(seen, expected, "a pod reaches every replica by cluster IP:\n{output}");
    let answer = output.split("Name:").nth(1).unwrap_or_default();
    assert!(
        answer.contains(&vip.ip().to_string()),
        "web.default.svc.cluster.local resolves to {}:\n{output}",
        vip.ip()
    );

    // Scaling down to one replica shows in the rules, and only it answers.
    client
        .api::<Deployment>(Some("default"))
        .patch("web", PatchType::Merge, &json!({"spec": {"replicas": 1}}))
        .await
        .expect("scale");
    rkube_testkit::eventually("one endpoint in the rules", Duration::from_secs(60), logs, || async {
        let listing = sh_out(&["nft", "list", "chain", "ip", &table, chain]).ok()?;
        (listing.matches("dnat to").count() == 1).then_some(())
    })
    .await;
    let after: BTreeSet<String> =
        blocking(move || (0..20).map(|_| http_get(vip).expect("cluster IP answers")).collect()).await;
    assert_eq!(after.len(), 1, "{after:?}");
}
