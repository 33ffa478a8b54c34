//! The nftables content that enforces an [`Enforcement`], in table `ip <proxy table>-netpol`.
//!
//! Layout:
//! - base chain `forward` (filter, priority 0, after the Service table's DNAT, so destinations
//!   are pod IPs): replies of allowed connections pass, then `ingress-pods` maps an isolated
//!   destination pod to its chain `ingress-<ip>` and `egress-pods` an isolated source pod to
//!   `egress-<ip>`; both must let a new connection through (each returns on a match and
//!   drops otherwise). Bridged traffic between pods of this node passes this hook because
//!   bridge netfilter is on (see `sysctl`); the node's own traffic to its pods does not (output
//!   hook), and traffic from a pod to its node does not either (input hook): both always pass,
//!   as Kubernetes specifies;
//! - the peers of each policy rule are one interval set `peers-<rule>` (pod IPs and ipBlock
//!   ranges merged), shared by every pod the policy selects; named ports of egress rules are
//!   exact `ip . proto . port` sets `exact-<rule>`;
//! - base chain `input` drops DNS queries to the cluster DNS server on this node from pods
//!   whose egress policies do not allow DNS (set `dns-denied` of pod . protocol): the one
//!   exception to "traffic to the node always passes", because that server stands for the DNS
//!   pods of a Kubernetes cluster, which egress isolation does cover.

use super::model::{Allow, Enforcement, IpRange, PortRange, Proto};
use crate::rules::{Chain, Map, Ruleset};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Verdict map: isolated destination pod -> its ingress chain.
pub const INGRESS_PODS: &str = "ingress-pods";
/// Verdict map: isolated source pod -> its egress chain.
pub const EGRESS_PODS: &str = "egress-pods";
/// Set of (pod, protocol) pairs denied the cluster DNS server.
pub const DNS_DENIED: &str = "dns-denied";

/// Longest object name used as is; longer names (a long namespace and policy name) are cut and
/// given a hash so they stay unique and within nftables' limit of 256 bytes.
const MAX_NAME: usize = 200;

/// The set of rule `id`'s peers.
pub fn peer_set_name(id: &str) -> String {
    short(format!("peers-{id}"))
}

/// The set of rule `id`'s named-port destinations.
pub fn exact_set_name(id: &str) -> String {
    short(format!("exact-{id}"))
}

fn short(name: String) -> String {
    if name.len() <= MAX_NAME {
        return name;
    }
    // FNV-1a: stable across runs and versions, unlike the std hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut cut = MAX_NAME - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash:016x}", &name[..cut])
}

/// An element text for an address range.
fn range_element((a, b): IpRange) -> String {
    if a == b { Ipv4Addr::from(a).to_string() } else { format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)) }
}

/// The match of a rule's ports: one string per protocol (empty when every port and protocol).
fn port_matches(ports: Option<&Vec<PortRange>>) -> Vec<String> {
    let Some(ports) = ports else { return vec![String::new()] };
    let mut by_proto: BTreeMap<Proto, Option<Vec<String>>> = BTreeMap::new();
    for p in ports {
        let entry = by_proto.entry(p.proto).or_insert_with(|| Some(Vec::new()));
        match (p.range, entry.as_mut()) {
            (None, _) => *entry = None,
            (Some((a, b)), Some(list)) => list.push(if a == b { a.to_string() } else { format!("{a}-{b}") }),
            (Some(_), None) => {}
        }
    }
    by_proto
        .into_iter()
        .map(|(proto, ports)| match ports.as_deref() {
            None => format!("meta l4proto {} ", proto.nft()),
            Some([one]) => format!("meta l4proto {} th dport {one} ", proto.nft()),
            Some(many) => format!("meta l4proto {} th dport {{ {} }} ", proto.nft(), many.join(", ")),
        })
        .collect()
}

/// The rules of one pod's chain for one direction (`field` is `saddr` for ingress, `daddr`
/// for egress).
fn pod_chain(ip: Ipv4Addr, allows: &[Allow], field: &str) -> Chain {
    // A pod cannot block traffic to itself (through a Service it is forwarded).
    let mut rules = vec![format!("ip {field} {ip} return")];
    for allow in allows {
        match allow {
            Allow::Peers { set, ports } => {
                let peers = set.as_deref().map(|id| format!("ip {field} @{} ", peer_set_name(id))).unwrap_or_default();
                for ports in port_matches(ports.as_ref()) {
                    rules.push(format!("{peers}{ports}return"));
                }
            }
            Allow::Exact(id) => {
                rules.push(format!("ip {field} . meta l4proto . th dport @{} return", exact_set_name(id)));
            }
        }
    }
    rules.push("drop".into());
    Chain { hook: None, rules }
}

/// Builds the table's content; an empty [`Enforcement`] still gets the base chains (the
/// enforcer deletes the table instead when nothing is isolated).
pub fn build(e: &Enforcement) -> Ruleset {
    let mut rs = Ruleset::default();
    let verdict_map = || Map { is_map: true, spec: "type ipv4_addr : verdict;".into(), ..Default::default() };
    let (mut ingress, mut egress) = (verdict_map(), verdict_map());
    for (ip, pod) in &e.pods {
        if let Some(allows) = &pod.ingress {
            let name = format!("ingress-{ip}");
            rs.chains.insert(name.clone(), pod_chain(*ip, allows, "saddr"));
            ingress.elements.insert(ip.to_string(), format!("jump {name}"));
        }
        if let Some(allows) = &pod.egress {
            let name = format!("egress-{ip}");
            rs.chains.insert(name.clone(), pod_chain(*ip, allows, "daddr"));
            egress.elements.insert(ip.to_string(), format!("jump {name}"));
        }
    }
    rs.maps.insert(INGRESS_PODS.into(), ingress);
    rs.maps.insert(EGRESS_PODS.into(), egress);
    for (id, ranges) in &e.peer_sets {
        let elements = ranges.iter().map(|r| (range_element(*r), String::new())).collect();
        rs.maps.insert(
            peer_set_name(id),
            Map { spec: "type ipv4_addr; flags interval;".into(), elements, ..Default::default() },
        );
    }
    for (id, entries) in &e.exact_sets {
        let elements = entries
            .iter()
            .map(|(ip, proto, port)| (format!("{ip} . {} . {port}", proto.nft()), String::new()))
            .collect();
        rs.maps.insert(
            exact_set_name(id),
            Map { spec: "type ipv4_addr . inet_proto . inet_service;".into(), elements, ..Default::default() },
        );
    }
    rs.chains.insert(
        "forward".into(),
        Chain {
            hook: Some("type filter hook forward priority 0; policy accept;".into()),
            rules: vec![
                "ct state established,related accept".into(),
                format!("ip daddr vmap @{INGRESS_PODS}"),
                format!("ip saddr vmap @{EGRESS_PODS}"),
            ],
        },
    );
    if let Some(dns) = e.dns {
        let elements =
            e.dns_denied.iter().map(|(ip, proto)| (format!("{ip} . {}", proto.nft()), String::new())).collect();
        rs.maps.insert(
            DNS_DENIED.into(),
            Map { spec: "type ipv4_addr . inet_proto;".into(), elements, ..Default::default() },
        );
        rs.chains.insert(
            "input".into(),
            Chain {
                hook: Some("type filter hook input priority 0; policy accept;".into()),
                rules: vec![
                    "ct state established,related accept".into(),
                    format!(
                        "ip daddr {} meta l4proto {{ tcp, udp }} th dport {} ip saddr . meta l4proto @{DNS_DENIED} drop",
                        dns.ip(),
                        dns.port()
                    ),
                ],
            },
        );
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::model::LocalPod;
    use std::collections::BTreeSet;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, 0, last)
    }

    #[test]
    fn isolated_pods_get_chains_that_return_on_a_match_and_drop_otherwise() {
        let mut e = Enforcement::default();
        let tcp = |a, b| PortRange { proto: Proto::Tcp, range: Some((a, b)) };
        e.pods.insert(
            ip(5),
            LocalPod {
                key: "demo/server".into(),
                ingress: Some(vec![
                    Allow::Peers {
                        set: Some("demo/p/ingress/0".into()),
                        ports: Some(vec![tcp(80, 80), tcp(8000, 8100), PortRange { proto: Proto::Udp, range: None }]),
                    },
                    Allow::Peers { set: None, ports: Some(vec![tcp(443, 443)]) },
                ]),
                egress: Some(vec![Allow::Exact("demo/p/egress/0/named".into())]),
            },
        );
        e.pods.insert(ip(6), LocalPod { key: "demo/other".into(), ingress: Some(vec![]), egress: None });
        e.peer_sets
            .insert("demo/p/ingress/0".into(), vec![(u32::from(ip(7)), u32::from(ip(7))), (0x0a00_0000, 0x0a00_00ff)]);
        e.exact_sets.insert("demo/p/egress/0/named".into(), BTreeSet::from([(ip(9), Proto::Tcp, 8080)]));
        let rs = build(&e);
        assert_eq!(
            rs.chains["ingress-10.244.0.5"].rules,
            [
                "ip saddr 10.244.0.5 return",
                "ip saddr @peers-demo/p/ingress/0 meta l4proto tcp th dport { 80, 8000-8100 } return",
                "ip saddr @peers-demo/p/ingress/0 meta l4proto udp return",
                "meta l4proto tcp th dport 443 return",
                "drop",
            ]
        );
        assert_eq!(
            rs.chains["egress-10.244.0.5"].rules,
            [
                "ip daddr 10.244.0.5 return",
                "ip daddr . meta l4proto . th dport @exact-demo/p/egress/0/named return",
                "drop"
            ]
        );
        assert_eq!(rs.chains["ingress-10.244.0.6"].rules, ["ip saddr 10.244.0.6 return", "drop"]);
        assert!(!rs.chains.contains_key("egress-10.244.0.6"));
        let ingress = &rs.maps[INGRESS_PODS].elements;
        assert_eq!(ingress["10.244.0.5"], "jump ingress-10.244.0.5");
        assert_eq!(ingress.len(), 2);
        assert_eq!(rs.maps[EGRESS_PODS].elements.len(), 1);
        let peers: Vec<&String> = rs.maps["peers-demo/p/ingress/0"].elements.keys().collect();
        assert_eq!(peers, ["10.0.0.0-10.0.0.255", "10.244.0.7"]);
        assert_eq!(rs.maps["peers-demo/p/ingress/0"].spec, "type ipv4_addr; flags interval;");
        assert!(rs.maps["exact-demo/p/egress/0/named"].elements.contains_key("10.244.0.9 . tcp . 8080"));
        assert_eq!(rs.chains["forward"].rules[0], "ct state established,related accept");
        assert!(!rs.chains.contains_key("input"), "no DNS server, no input chain");
    }

    #[test]
    fn dns_queries_of_denied_pods_are_dropped_on_input() {
        let mut e = Enforcement { dns: Some("192.0.2.2:53".parse().unwrap()), ..Default::default() };
        e.dns_denied.insert((ip(5), Proto::Udp));
        let rs = build(&e);
        assert_eq!(
            rs.chains["input"].rules[1],
            "ip daddr 192.0.2.2 meta l4proto { tcp, udp } th dport 53 ip saddr . meta l4proto @dns-denied drop"
        );
        assert!(rs.maps[DNS_DENIED].elements.contains_key("10.244.0.5 . udp"));
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let id = format!("{}/{}/ingress/0", "n".repeat(63), "p".repeat(253));
        let name = peer_set_name(&id);
        assert!(name.len() <= MAX_NAME, "{}", name.len());
        assert_ne!(name, peer_set_name(&id.replace("/0", "/1")));
        assert_eq!(peer_set_name("a/b/ingress/0"), "peers-a/b/ingress/0");
    }
}
