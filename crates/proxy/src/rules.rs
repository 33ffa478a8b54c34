//! The nftables content rkube-proxy wants, computed from [`ServicePort`]s without I/O.
//!
//! Layout of the table (all names are local to it):
//! - base chains `nat-prerouting` and `nat-output` jump to `services`, which looks the
//!   destination up in the verdict maps `service-ips` (cluster, external and load-balancer IPs)
//!   and `service-nodeports` (node ports on the node's addresses);
//! - per Service port: `svc-<id>` (cluster IP traffic, marks off-cluster clients for
//!   masquerade), `ext-<id>` (node port and external traffic, applying externalTrafficPolicy),
//!   and `cluster-<id>` / `local-<id>`, which DNAT to one endpoint of all / of this node's:
//!   a client's sticky endpoint under session affinity, else one picked by a `numgen random`
//!   ladder;
//! - `nat-postrouting` masquerades what was marked, and hairpin connections (a pod reaching
//!   itself through a Service), found by the `hairpin` set of `endpoint . endpoint` pairs;
//! - filter chains on input, forward and output reject new connections to Service ports that
//!   have no endpoints (TCP reset, ICMP port unreachable), through the `no-endpoint-*` maps.
//!
//! Chains are few on purpose: `nft` reads every chain of the table before it applies even a
//! one-line change, so a chain per endpoint (kube-proxy's layout) made a one-endpoint update
//! against 10,000 Services cost 0.65 s of nft time instead of 0.11 s (`scripts/bench-proxy`).

use crate::model::{Endpoint, ServicePort};
use std::collections::BTreeMap;

/// The packet mark bit for "masquerade this" (Kubernetes' 0x4000; CNI's portmap uses 0x2000).
pub const MASQUERADE_MARK: &str = "0x4000";

/// What the rules depend on besides the Services.
#[derive(Debug, Clone, Default)]
pub struct RulesConfig {
    /// This node's name, matched against endpoints' nodeName for the Local traffic policies.
    pub node_name: String,
    /// Pod CIDRs: clients outside them reaching a cluster IP are masqueraded, and pods reaching
    /// an externalTrafficPolicy Local port are treated as cluster traffic. Empty: unknown.
    pub cluster_cidrs: Vec<String>,
    /// CIDRs whose addresses answer on node ports; empty means every local address except
    /// loopback.
    pub nodeport_addresses: Vec<String>,
    /// Masquerade all traffic to cluster IPs.
    pub masquerade_all: bool,
}

/// One chain: an optional base-chain header (`type ... hook ... priority ...; policy ...;`)
/// and its rules in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// The header of a base chain; None for a regular chain.
    pub hook: Option<String>,
    /// Rules, in nft syntax.
    pub rules: Vec<String>,
}

/// A named set or map: its declaration body and, unless the kernel fills it (session
/// affinity), its elements (key text to value text; values are empty for a set).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    /// True for a map (`key : value` elements), false for a set.
    pub is_map: bool,
    /// `type ...;` and flags.
    pub spec: String,
    /// Elements the kernel adds by itself (`update @set` rules): never listed or flushed here.
    pub dynamic: bool,
    /// Elements.
    pub elements: BTreeMap<String, String>,
}

impl Map {
    /// The nft keyword for this object.
    pub fn keyword(&self) -> &'static str {
        if self.is_map { "map" } else { "set" }
    }
}

/// Everything the table should hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Sets and maps by name (one namespace in nftables).
    pub maps: BTreeMap<String, Map>,
}

impl Ruleset {
    /// Number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }
}

const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const HAIRPIN: &str = "hairpin";
const MARK_CHAIN: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";

/// Builds the whole ruleset for `ports`. When two Service ports claim the same address, port
/// and protocol (external IPs may), the first in `ports` order keeps it.
pub fn build(config: &RulesConfig, ports: &[ServicePort]) -> Ruleset {
    let mut rs = Ruleset::default();
    let ip_key = "type ipv4_addr . inet_proto . inet_service : verdict;";
    let port_key = "type inet_proto . inet_service : verdict;";
    for (name, spec) in [
        (SERVICE_IPS, ip_key),
        (SERVICE_NODEPORTS, port_key),
        (NO_ENDPOINT_SERVICES, ip_key),
        (NO_ENDPOINT_NODEPORTS, port_key),
    ] {
        rs.maps.insert(name.into(), Map { is_map: true, spec: spec.into(), ..Default::default() });
    }
    rs.maps.insert(HAIRPIN.into(), Map { spec: "type ipv4_addr . ipv4_addr;".into(), ..Default::default() });
    let nodeport_match = nodeport_match(&config.nodeport_addresses);
    let chain = |hook: Option<&str>, rules: &[&str]| Chain {
        hook: hook.map(str::to_string),
        rules: rules.iter().map(|r| r.to_string()).collect(),
    };
    let base = [
        ("nat-prerouting", "type nat hook prerouting priority dstnat; policy accept;", "jump services"),
        ("nat-output", "type nat hook output priority -100; policy accept;", "jump services"),
        ("nat-postrouting", "type nat hook postrouting priority srcnat; policy accept;", "jump masquerading"),
        // After DNAT (output's nat runs at -100), so only connections left un-translated remain.
        ("filter-input", "type filter hook input priority -10; policy accept;", "ct state new jump endpoints-check"),
        (
            "filter-forward",
            "type filter hook forward priority -10; policy accept;",
            "ct state new jump endpoints-check",
        ),
        ("filter-output", "type filter hook output priority -10; policy accept;", "ct state new jump endpoints-check"),
    ];
    for (name, hook, rule) in base {
        rs.chains.insert(name.into(), chain(Some(hook), &[rule]));
    }
    rs.chains.insert(
        "services".into(),
        chain(
            None,
            &[
                &format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
                &format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
            ],
        ),
    );
    rs.chains.insert(
        "endpoints-check".into(),
        chain(
            None,
            &[
                &format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
                &format!("{nodeport_match} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
            ],
        ),
    );
    rs.chains.insert(MARK_CHAIN.into(), chain(None, &[&format!("meta mark set meta mark | {MASQUERADE_MARK}")]));
    rs.chains.insert(
        "masquerading".into(),
        chain(
            None,
            &[
                // A DNATed packet whose source is now its destination: the reply must come
                // back through this node, not straight from the pod to itself.
                &format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade fully-random"),
                &format!("meta mark & {MASQUERADE_MARK} == 0 return"),
                // Cleared so a packet that is forwarded again is not masqueraded twice.
                &format!("meta mark set meta mark ^ {MASQUERADE_MARK}"),
                "masquerade fully-random",
            ],
        ),
    );
    rs.chains.insert(REJECT_CHAIN.into(), chain(None, &["meta l4proto tcp reject with tcp reset", "reject"]));

    let cluster_cidrs = cidr_set(&config.cluster_cidrs);
    for sp in ports {
        add_service_port(&mut rs, config, cluster_cidrs.as_deref(), sp);
    }
    rs
}

/// The match for "addressed to one of this node's node-port addresses".
fn nodeport_match(cidrs: &[String]) -> String {
    match cidr_set(cidrs) {
        Some(set) => format!("ip daddr {set}"),
        None => "fib daddr type local ip daddr != 127.0.0.0/8".into(),
    }
}

/// `a` or `{ a, b }`, None for no CIDRs.
fn cidr_set(cidrs: &[String]) -> Option<String> {
    match cidrs {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("{{ {} }}", many.join(", "))),
    }
}

fn add_service_port(rs: &mut Ruleset, config: &RulesConfig, cluster_cidrs: Option<&str>, sp: &ServicePort) {
    let id = sp.id();
    let proto = sp.protocol.nft();
    let cluster = sp.usable_endpoints(None);
    let local = sp.usable_endpoints(Some(&config.node_name));
    let internal = if sp.internal_local { &local } else { &cluster };
    let external = if sp.external_local { &local } else { &cluster };
    let wants_external = sp.has_external() && !cluster.is_empty();
    let uses_local =
        (sp.internal_local && !local.is_empty()) || (wants_external && sp.external_local && !local.is_empty());
    let uses_cluster = (!sp.internal_local && !cluster.is_empty()) || (wants_external && !cluster.is_empty());

    let cluster_chain = format!("cluster-{id}");
    let local_chain = format!("local-{id}");
    if uses_cluster {
        add_dispatch(rs, sp, &cluster_chain, &cluster);
    }
    if uses_local {
        add_dispatch(rs, sp, &local_chain, &local);
    }

    // Cluster IPs.
    if internal.is_empty() {
        // Nothing at all: reject. Endpoints elsewhere but none here under Local policy: drop,
        // as Kubernetes does (the client should not learn a port is closed when it is not).
        let verdict = if cluster.is_empty() { format!("goto {REJECT_CHAIN}") } else { "drop".into() };
        for ip in &sp.cluster_ips {
            insert_first(rs, NO_ENDPOINT_SERVICES, format!("{ip} . {proto} . {}", sp.port), verdict.clone());
        }
    } else {
        let svc_chain = format!("svc-{id}");
        let mut rules = Vec::new();
        if config.masquerade_all {
            rules.push(format!("jump {MARK_CHAIN}"));
        } else if let Some(cidrs) = cluster_cidrs {
            // Replies from an endpoint on another node would otherwise bypass this node's NAT.
            rules.push(format!("ip saddr != {cidrs} jump {MARK_CHAIN}"));
        }
        rules.push(format!("goto {}", if sp.internal_local { &local_chain } else { &cluster_chain }));
        rs.chains.insert(svc_chain.clone(), Chain { hook: None, rules });
        for ip in &sp.cluster_ips {
            insert_first(rs, SERVICE_IPS, format!("{ip} . {proto} . {}", sp.port), format!("goto {svc_chain}"));
        }
    }

    // Node ports, external IPs and load-balancer IPs.
    if !sp.has_external() {
        return;
    }
    if cluster.is_empty() {
        let reject = format!("goto {REJECT_CHAIN}");
        if let Some(np) = sp.node_port {
            insert_first(rs, NO_ENDPOINT_NODEPORTS, format!("{proto} . {np}"), reject.clone());
        }
        for ip in &sp.external_ips {
            insert_first(rs, NO_ENDPOINT_SERVICES, format!("{ip} . {proto} . {}", sp.port), reject.clone());
        }
        return;
    }
    let ext_chain = format!("ext-{id}");
    let mut rules = Vec::new();
    if sp.external_local {
        // Pods and the node itself are cluster traffic: any endpoint, and the node's own
        // connections masqueraded so replies come back through it.
        if let Some(cidrs) = cluster_cidrs {
            rules.push(format!("ip saddr {cidrs} goto {cluster_chain}"));
        }
        rules.push(format!("fib saddr type local jump {MARK_CHAIN}"));
        rules.push(format!("fib saddr type local goto {cluster_chain}"));
        // External clients keep their source address, so only this node's endpoints qualify.
        rules.push(if external.is_empty() { "drop".into() } else { format!("goto {local_chain}") });
    } else {
        rules.push(format!("jump {MARK_CHAIN}"));
        rules.push(format!("goto {cluster_chain}"));
    }
    rs.chains.insert(ext_chain.clone(), Chain { hook: None, rules });
    if let Some(np) = sp.node_port {
        insert_first(rs, SERVICE_NODEPORTS, format!("{proto} . {np}"), format!("goto {ext_chain}"));
    }
    for ip in &sp.external_ips {
        insert_first(rs, SERVICE_IPS, format!("{ip} . {proto} . {}", sp.port), format!("goto {ext_chain}"));
    }
}

/// A chain that DNATs to one of `endpoints` (and the affinity sets it uses).
///
/// The choice is a ladder: endpoint i (of n) is taken with probability 1/(n-i) when none
/// before it was, which gives each 1/n. A `numgen random mod n vmap { ... }` does it in one
/// rule, but every such vmap is an anonymous set, and the kernel names each new anonymous
/// set by scanning all the table's sets: loading 10,000 Services took 5x longer that way
/// (35.7 s instead of 6.4 s, both with a chain per endpoint).
fn add_dispatch(rs: &mut Ruleset, sp: &ServicePort, name: &str, endpoints: &[&Endpoint]) {
    let id = sp.id();
    let proto = sp.protocol.nft();
    let mut rules = Vec::new();
    let sets: Vec<Option<String>> =
        endpoints.iter().map(|e| sp.affinity_timeout.map(|t| affinity_set(t, &id, e))).collect();
    for (e, set) in endpoints.iter().zip(&sets) {
        if let Some(set) = set {
            // A known client goes back to its endpoint, and its entry's timeout restarts.
            rules.push(format!(
                "ip saddr @{set} meta l4proto {proto} update @{set} {{ ip saddr }} dnat to {}:{}",
                e.ip, e.port
            ));
        }
    }
    let n = endpoints.len();
    for (i, (e, set)) in endpoints.iter().zip(&sets).enumerate() {
        let mut rule = String::new();
        if i + 1 < n {
            rule.push_str(&format!("numgen random mod {} == 0 ", n - i));
        }
        rule.push_str(&format!("meta l4proto {proto} "));
        if let Some(set) = set {
            rule.push_str(&format!("update @{set} {{ ip saddr }} "));
        }
        rule.push_str(&format!("dnat to {}:{}", e.ip, e.port));
        rules.push(rule);
    }
    for (e, set) in endpoints.iter().zip(sets) {
        if let Some(set) = set {
            let timeout = sp.affinity_timeout.unwrap_or(crate::model::DEFAULT_AFFINITY_TIMEOUT);
            rs.maps.entry(set).or_insert_with(|| Map {
                spec: format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
                dynamic: true,
                ..Default::default()
            });
        }
        if let Some(hairpin) = rs.maps.get_mut(HAIRPIN) {
            hairpin.elements.insert(format!("{} . {}", e.ip, e.ip), String::new());
        }
    }
    rs.chains.insert(name.to_string(), Chain { hook: None, rules });
}

/// The set of clients stuck to endpoint `e` of Service port `id`; the timeout is part of the
/// name because a set's timeout cannot be changed in place.
fn affinity_set(timeout: u32, id: &str, e: &Endpoint) -> String {
    format!("affinity-{timeout}-{id}__{}/{}", e.ip, e.port)
}

fn insert_first(rs: &mut Ruleset, map: &str, key: String, value: String) {
    if let Some(m) = rs.maps.get_mut(map) {
        m.elements.entry(key).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::net::Ipv4Addr;

    fn ep(ip: [u8; 4], node: &str, ready: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::from(ip),
            port: 8080,
            node_name: Some(node.into()),
            ready,
            serving: ready,
            terminating: false,
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "demo".into(),
            service: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 5)],
            node_port: None,
            external_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints,
        }
    }

    fn config() -> RulesConfig {
        RulesConfig { node_name: "n1".into(), cluster_cidrs: vec!["10.244.0.0/16".into()], ..Default::default() }
    }

    fn rules(rs: &Ruleset, chain: &str) -> Vec<String> {
        rs.chains.get(chain).unwrap_or_else(|| panic!("no chain {chain}: {:?}", rs.chains.keys())).rules.clone()
    }

    #[test]
    fn cluster_ip_spreads_over_ready_endpoints() {
        let rs = build(
            &config(),
            &[port(vec![
                ep([10, 244, 0, 2], "n1", true),
                ep([10, 244, 0, 3], "n2", false),
                ep([10, 244, 1, 2], "n2", true),
            ])],
        );
        assert_eq!(rs.maps["service-ips"].elements["10.96.0.5 . tcp . 80"], "goto svc-demo/web/tcp/80");
        assert_eq!(
            rules(&rs, "svc-demo/web/tcp/80"),
            ["ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto cluster-demo/web/tcp/80"]
        );
        assert_eq!(
            rules(&rs, "cluster-demo/web/tcp/80"),
            [
                "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.244.0.2:8080",
                "meta l4proto tcp dnat to 10.244.1.2:8080"
            ]
        );
        // Hairpin pairs for the endpoints in use; the unready endpoint appears nowhere.
        let hairpin: Vec<&String> = rs.maps["hairpin"].elements.keys().collect();
        assert_eq!(hairpin, ["10.244.0.2 . 10.244.0.2", "10.244.1.2 . 10.244.1.2"]);
        assert!(!rules(&rs, "cluster-demo/web/tcp/80").iter().any(|r| r.contains("10.244.0.3")));
        assert_eq!(
            rules(&rs, "masquerading")[0],
            "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random"
        );
        assert!(rs.maps["no-endpoint-services"].elements.is_empty());
        assert!(!rs.chains.contains_key("local-demo/web/tcp/80"));
    }

    #[test]
    fn no_endpoints_reject_and_local_policy_without_local_endpoints_drops() {
        let mut p = port(vec![ep([10, 244, 0, 3], "n1", false)]);
        p.node_port = Some(30080);
        p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 9)];
        let rs = build(&config(), &[p]);
        let none = &rs.maps["no-endpoint-services"].elements;
        assert_eq!(none["10.96.0.5 . tcp . 80"], "goto reject-chain");
        assert_eq!(none["192.0.2.9 . tcp . 80"], "goto reject-chain");
        assert_eq!(rs.maps["no-endpoint-nodeports"].elements["tcp . 30080"], "goto reject-chain");
        assert!(rs.maps["service-ips"].elements.is_empty());
        assert_eq!(rules(&rs, "reject-chain"), ["meta l4proto tcp reject with tcp reset", "reject"]);

        let mut p = port(vec![ep([10, 244, 1, 2], "n2", true)]);
        p.internal_local = true;
        let rs = build(&config(), &[p]);
        assert_eq!(rs.maps["no-endpoint-services"].elements["10.96.0.5 . tcp . 80"], "drop");
    }

    #[test]
    fn node_ports_and_external_traffic_policy() {
        let mut p = port(vec![ep([10, 244, 0, 2], "n1", true), ep([10, 244, 1, 2], "n2", true)]);
        p.node_port = Some(30080);
        p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 9)];
        let rs = build(&config(), std::slice::from_ref(&p));
        assert_eq!(rs.maps["service-nodeports"].elements["tcp . 30080"], "goto ext-demo/web/tcp/80");
        assert_eq!(rs.maps["service-ips"].elements["192.0.2.9 . tcp . 80"], "goto ext-demo/web/tcp/80");
        assert_eq!(rules(&rs, "ext-demo/web/tcp/80"), ["jump mark-for-masquerade", "goto cluster-demo/web/tcp/80"]);
        assert_eq!(
            rules(&rs, "services")[1],
            "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
        );

        p.external_local = true;
        let rs = build(&config(), std::slice::from_ref(&p));
        assert_eq!(
            rules(&rs, "ext-demo/web/tcp/80"),
            [
                "ip saddr 10.244.0.0/16 goto cluster-demo/web/tcp/80",
                "fib saddr type local jump mark-for-masquerade",
                "fib saddr type local goto cluster-demo/web/tcp/80",
                "goto local-demo/web/tcp/80",
            ]
        );
        assert_eq!(rules(&rs, "local-demo/web/tcp/80"), ["meta l4proto tcp dnat to 10.244.0.2:8080"]);

        let mut c = config();
        c.node_name = "n3".into();
        c.nodeport_addresses = vec!["192.0.2.0/24".into(), "198.51.100.1/32".into()];
        let rs = build(&c, &[p]);
        assert_eq!(rules(&rs, "ext-demo/web/tcp/80")[3], "drop");
        assert_eq!(
            rules(&rs, "services")[1],
            "ip daddr { 192.0.2.0/24, 198.51.100.1/32 } meta l4proto . th dport vmap @service-nodeports"
        );
    }

    #[test]
    fn session_affinity_uses_a_set_per_endpoint() {
        let mut p = port(vec![ep([10, 244, 0, 2], "n1", true), ep([10, 244, 0, 3], "n1", true)]);
        p.affinity_timeout = Some(60);
        p.protocol = Protocol::Udp;
        let rs = build(&RulesConfig { masquerade_all: true, ..config() }, &[p]);
        let (a, b) = ("affinity-60-demo/web/udp/80__10.244.0.2/8080", "affinity-60-demo/web/udp/80__10.244.0.3/8080");
        assert_eq!(rs.maps[a].spec, "type ipv4_addr; flags dynamic,timeout; timeout 60s;");
        assert!(rs.maps[a].dynamic && !rs.maps[a].is_map);
        assert_eq!(
            rules(&rs, "cluster-demo/web/udp/80"),
            [
                format!("ip saddr @{a} meta l4proto udp update @{a} {{ ip saddr }} dnat to 10.244.0.2:8080"),
                format!("ip saddr @{b} meta l4proto udp update @{b} {{ ip saddr }} dnat to 10.244.0.3:8080"),
                format!("numgen random mod 2 == 0 meta l4proto udp update @{a} {{ ip saddr }} dnat to 10.244.0.2:8080"),
                format!("meta l4proto udp update @{b} {{ ip saddr }} dnat to 10.244.0.3:8080"),
            ]
        );
        assert_eq!(rules(&rs, "svc-demo/web/udp/80")[0], "jump mark-for-masquerade");
    }

    #[test]
    fn without_a_cluster_cidr_nothing_is_masqueraded_by_source() {
        let rs =
            build(&RulesConfig { cluster_cidrs: vec![], ..config() }, &[port(vec![ep([10, 244, 0, 2], "n1", true)])]);
        assert_eq!(rules(&rs, "svc-demo/web/tcp/80"), ["goto cluster-demo/web/tcp/80"]);
    }

    #[test]
    fn the_first_claim_on_an_external_ip_wins() {
        let mut a = port(vec![ep([10, 244, 0, 2], "n1", true)]);
        a.external_ips = vec![Ipv4Addr::new(192, 0, 2, 9)];
        let mut b = a.clone();
        b.service = "other".into();
        b.cluster_ips = vec![Ipv4Addr::new(10, 96, 0, 6)];
        let rs = build(&config(), &[a, b]);
        assert_eq!(rs.maps["service-ips"].elements["192.0.2.9 . tcp . 80"], "goto ext-demo/web/tcp/80");
        assert_eq!(rs.maps["service-ips"].elements.len(), 3);
    }
}
