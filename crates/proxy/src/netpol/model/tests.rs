use super::*;
use serde_json::{Value, json};

const NODE: &str = "n1";

fn pod(ns: &str, name: &str, ip: u8, node: &str, labels: Value, ports: Value) -> PodView {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports}]},
        "status": {"podIP": format!("10.244.0.{ip}"), "phase": "Running"},
    }))
    .unwrap();
    PodView::from_pod(&p)
}

fn policy(ns: &str, name: &str, spec: Value) -> PolicyView {
    let p: NetworkPolicy =
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).unwrap();
    PolicyView::from_policy(&p)
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, last)
}

fn n(last: u8) -> u32 {
    u32::from(ip(last))
}

fn namespaces() -> NamespaceLabels {
    [("prod".to_string(), [("team".to_string(), "a".to_string())].into()), ("dev".to_string(), BTreeMap::new())].into()
}

/// server (app=web, named port http=8080) on this node; clients a and b, one on another node.
fn cluster() -> Vec<PodView> {
    vec![
        pod("prod", "server", 5, NODE, json!({"app": "web"}), json!([{"name": "http", "containerPort": 8080}])),
        pod("prod", "a", 6, NODE, json!({"app": "a"}), json!([])),
        pod("prod", "b", 7, "n2", json!({"app": "b"}), json!([{"name": "http", "containerPort": 9090}])),
        pod("dev", "c", 8, "n2", json!({"app": "a"}), json!([])),
    ]
}

#[test]
fn unselected_pods_are_not_isolated_and_remote_pods_are_not_enforced_here() {
    let e = compute(NODE, &cluster(), &namespaces(), &[], None);
    assert!(e.is_empty());
    // A policy selecting only the pod on the other node changes nothing here.
    let p = policy("prod", "deny-b", json!({"podSelector": {"matchLabels": {"app": "b"}}}));
    assert!(compute(NODE, &cluster(), &namespaces(), &[p], None).is_empty());
}

#[test]
fn deny_all_isolates_ingress_only_by_default() {
    let p = policy("prod", "deny", json!({"podSelector": {}}));
    let e = compute(NODE, &cluster(), &namespaces(), &[p], None);
    assert_eq!(e.pods.keys().copied().collect::<Vec<_>>(), [ip(5), ip(6)]);
    assert_eq!(e.pods[&ip(5)].ingress, Some(vec![]));
    assert_eq!(e.pods[&ip(5)].egress, None);
    assert_eq!(e.pods[&ip(5)].key, "prod/server");
}

#[test]
fn pod_selector_peers_stay_in_the_policy_namespace_and_namespace_selectors_widen() {
    let only_a = policy(
        "prod",
        "from-a",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[only_a], None);
    // dev/c has app=a too but another namespace.
    assert_eq!(e.peer_sets["prod/from-a/ingress/0"], [(n(6), n(6))]);
    assert_eq!(
        e.pods[&ip(5)].ingress,
        Some(vec![Allow::Peers { set: Some("prod/from-a/ingress/0".into()), ports: None }])
    );
    assert!(!e.pods.contains_key(&ip(6)), "the policy selects app=web only");

    // Both selectors in one peer: app=a pods in namespaces without team=a -> only dev/c.
    let both = policy(
        "prod",
        "both",
        json!({"podSelector": {}, "ingress": [{"from": [{
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]},
            "podSelector": {"matchLabels": {"app": "a"}}}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[both], None);
    assert_eq!(e.peer_sets["prod/both/ingress/0"], [(n(8), n(8))]);
    // Namespace selector alone, by the automatic name label: every pod of dev.
    let by_name = policy(
        "prod",
        "dev",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[by_name], None);
    assert_eq!(e.peer_sets["prod/dev/ingress/0"], [(n(5), n(7))], "prod's three pods, merged into one range");
}

#[test]
fn policies_add_up_and_empty_from_means_everyone() {
    let a = policy(
        "prod",
        "a",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]}),
    );
    let all = policy(
        "prod",
        "all-443",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[all, a], None);
    let allows = e.pods[&ip(5)].ingress.clone().unwrap();
    assert_eq!(allows.len(), 2);
    assert_eq!(allows[0], Allow::Peers { set: Some("prod/a/ingress/0".into()), ports: None });
    assert_eq!(
        allows[1],
        Allow::Peers { set: None, ports: Some(vec![PortRange { proto: Proto::Tcp, range: Some((443, 443)) }]) }
    );
}

#[test]
fn ip_blocks_subtract_their_exceptions() {
    let p = policy(
        "prod",
        "cidr",
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24", "192.168.255.255/32"]}}, {"ipBlock": {"cidr": "fd00::/8"}}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[p], None);
    let r = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        e.peer_sets["prod/cidr/ingress/0"],
        [(r("192.168.0.0"), r("192.168.0.255")), (r("192.168.2.0"), r("192.168.255.254"))]
    );
    assert_eq!(merge(vec![(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]), [(1, 9), (20, 30)]);
}

#[test]
fn ports_resolve_names_on_the_destination_and_keep_end_port_ranges() {
    let p = policy(
        "prod",
        "ports",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": "http", "protocol": "TCP"}, {"port": 5000, "endPort": 5100, "protocol": "UDP"}, {"port": "nope", "protocol": "TCP"}]}],
            "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http", "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[p], None);
    // Ingress: http is 8080 on the server; pod a has no such port, so only the UDP range is left.
    assert_eq!(
        e.pods[&ip(5)].ingress,
        Some(vec![Allow::Peers {
            set: None,
            ports: Some(vec![
                PortRange { proto: Proto::Tcp, range: Some((8080, 8080)) },
                PortRange { proto: Proto::Udp, range: Some((5000, 5100)) }
            ])
        }])
    );
    assert_eq!(
        e.pods[&ip(6)].ingress,
        Some(vec![Allow::Peers {
            set: None,
            ports: Some(vec![PortRange { proto: Proto::Udp, range: Some((5000, 5100)) }])
        }])
    );
    // Egress: http resolves on each destination pod of prod (8080 on the server, 9090 on b).
    let exact: Vec<_> = e.exact_sets["prod/ports/egress/0/named"].iter().copied().collect();
    assert_eq!(exact, [(ip(5), Proto::Tcp, 8080), (ip(7), Proto::Tcp, 9090)]);
    let egress = e.pods[&ip(6)].egress.clone().unwrap();
    assert_eq!(egress[0], Allow::Exact("prod/ports/egress/0/named".into()));
    assert_eq!(
        egress[1],
        Allow::Peers {
            set: Some("prod/ports/egress/0".into()),
            ports: Some(vec![PortRange { proto: Proto::Udp, range: Some((53, 53)) }])
        }
    );
}

#[test]
fn policy_types_decide_the_directions() {
    let egress_only = policy("prod", "e", json!({"podSelector": {}, "policyTypes": ["Egress"]}));
    let e = compute(NODE, &cluster(), &namespaces(), &[egress_only], None);
    assert_eq!((e.pods[&ip(5)].ingress.clone(), e.pods[&ip(5)].egress.clone()), (None, Some(vec![])));
    // Without policyTypes, egress rules make it both.
    let both = policy("prod", "b", json!({"podSelector": {}, "egress": [{}]}));
    let e = compute(NODE, &cluster(), &namespaces(), &[both], None);
    assert_eq!(e.pods[&ip(5)].ingress, Some(vec![]));
    assert_eq!(e.pods[&ip(5)].egress, Some(vec![Allow::Peers { set: None, ports: None }]));
}

#[test]
fn host_network_finished_and_ipless_pods_are_skipped() {
    let mut pods = cluster();
    pods[0].host_network = true;
    pods[1].ip = None;
    let p = policy("prod", "deny", json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}));
    let e = compute(NODE, &pods, &namespaces(), &[p], None);
    assert!(e.pods.is_empty());
    let finished: Pod = serde_json::from_value(
        json!({"metadata": {"name": "x"}, "status": {"podIP": "10.244.0.9", "phase": "Succeeded"}}),
    )
    .unwrap();
    assert_eq!(PodView::from_pod(&finished).ip, None);
}

#[test]
fn the_node_dns_server_is_reached_only_when_egress_rules_allow_it() {
    let dns: SocketAddrV4 = "192.0.2.2:53".parse().unwrap();
    let deny = policy("prod", "deny", json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"]}));
    let e = compute(NODE, &cluster(), &namespaces(), std::slice::from_ref(&deny), Some(dns));
    assert_eq!(e.dns_denied.iter().copied().collect::<Vec<_>>(), [(ip(6), Proto::Tcp), (ip(6), Proto::Udp)]);
    // The usual "allow DNS" policy: kube-dns pods in kube-system, UDP 53 only.
    let allow = policy(
        "prod",
        "dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    let e = compute(NODE, &cluster(), &namespaces(), &[deny.clone(), allow], Some(dns));
    assert_eq!(e.dns_denied.iter().copied().collect::<Vec<_>>(), [(ip(5), Proto::Tcp), (ip(6), Proto::Tcp)]);
    // An ipBlock holding the server's address, any port.
    let block =
        policy("prod", "ip", json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}]}));
    let e = compute(NODE, &cluster(), &namespaces(), &[deny, block], Some(dns));
    assert!(e.dns_denied.is_empty());
}

#[test]
fn selectors_follow_kubernetes_operators() {
    let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
    let sel = |v: Value| serde_json::from_value::<LabelSelector>(v).unwrap();
    assert!(selector_matches(&sel(json!({})), &labels));
    assert!(selector_matches(
        &sel(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]})),
        &labels
    ));
    assert!(!selector_matches(
        &sel(json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]})),
        &labels
    ));
    assert!(selector_matches(
        &sel(json!({"matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["1"]}]})),
        &labels
    ));
    assert!(!selector_matches(&sel(json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})), &labels));
    assert!(!selector_matches(&sel(json!({"matchLabels": {"a": "2"}})), &labels));
}
