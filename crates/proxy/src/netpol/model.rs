//! Pods, Namespaces and NetworkPolicies -> what each isolated pod of this node may send and
//! receive, without I/O. Peers of a policy rule become one list of IPv4 ranges shared by every
//! pod the policy selects; ports are resolved per selected pod (named ports of ingress rules
//! resolve on the pod receiving the traffic) or, for named ports of egress rules, per
//! destination pod as exact `(ip, protocol, port)` entries.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Label every namespace carries with its own name (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The port policies name to allow DNS: the cluster DNS Service's port.
pub const DNS_PORT: u16 = 53;

/// A transport protocol a policy port can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The protocol named by a policy or container port (TCP when unset); None if unknown.
    pub fn parse(name: Option<&str>) -> Option<Proto> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The nft keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// Direction of traffic relative to the selected pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic the pod receives.
    Ingress,
    /// Traffic the pod sends.
    Egress,
}

impl Direction {
    /// The word used in names.
    pub fn word(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// What policies need of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// IPv4 pod IP; None when not assigned yet or the pod is finished (its IP may be reused).
    pub ip: Option<Ipv4Addr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// spec.nodeName.
    pub node: Option<String>,
    /// spec.hostNetwork: such a pod has the node's IP and is never enforced here.
    pub host_network: bool,
    /// Named container ports: (name, protocol, number).
    pub named_ports: Vec<(String, Proto, u16)>,
}

impl PodView {
    /// Reads a Pod.
    pub fn from_pod(pod: &Pod) -> PodView {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let finished = status.and_then(|s| s.phase.as_deref()).is_some_and(|p| p == "Succeeded" || p == "Failed");
        let ip = status.and_then(|s| {
            let first = s.pod_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
            first.or_else(|| s.pod_ips.iter().flatten().find_map(|p| p.ip.parse::<Ipv4Addr>().ok()))
        });
        let mut named_ports = Vec::new();
        for container in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for port in container.ports.iter().flatten() {
                let (Some(name), Some(proto), Ok(number)) =
                    (port.name.as_ref(), Proto::parse(port.protocol.as_deref()), u16::try_from(port.container_port))
                else {
                    continue;
                };
                named_ports.push((name.clone(), proto, number));
            }
        }
        PodView {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            ip: if finished { None } else { ip },
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            named_ports,
        }
    }

    /// The number a named port has on this pod for `proto`.
    fn port_named(&self, name: &str, proto: Proto) -> Option<u16> {
        self.named_ports.iter().find(|(n, p, _)| n == name && *p == proto).map(|(_, _, number)| *number)
    }
}

/// Namespace name -> labels (always including [`NAMESPACE_NAME_LABEL`]).
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// Reads Namespaces into their labels.
pub fn namespace_labels(namespaces: &[std::sync::Arc<Namespace>]) -> NamespaceLabels {
    namespaces
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.clone()?;
            Some((name, ns.metadata.labels.clone().unwrap_or_default()))
        })
        .collect()
}

/// The labels of namespace `name` (its name label even when the Namespace is not known).
fn labels_of<'a>(namespaces: &'a NamespaceLabels, name: &str) -> std::borrow::Cow<'a, BTreeMap<String, String>> {
    match namespaces.get(name) {
        Some(l) if l.contains_key(NAMESPACE_NAME_LABEL) => std::borrow::Cow::Borrowed(l),
        other => {
            let mut l = other.cloned().unwrap_or_default();
            l.insert(NAMESPACE_NAME_LABEL.into(), name.into());
            std::borrow::Cow::Owned(l)
        }
    }
}

/// Whether `labels` satisfy `selector`; an empty selector selects everything and an unknown
/// operator nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// An inclusive range of IPv4 addresses as numbers.
pub type IpRange = (u32, u32);

/// `a.b.c.d/n` -> its range; None for IPv6 or garbage.
pub fn cidr_range(cidr: &str) -> Option<IpRange> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let start = u32::from(ip) & mask;
    Some((start, start | !mask))
}

/// Sorts and merges overlapping or adjacent ranges.
pub fn merge(mut ranges: Vec<IpRange>) -> Vec<IpRange> {
    ranges.sort_unstable();
    let mut out: Vec<IpRange> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `range` minus every range of `holes`.
fn subtract(range: IpRange, holes: &[IpRange]) -> Vec<IpRange> {
    let mut out = vec![range];
    for &(ha, hb) in holes {
        let mut next = Vec::with_capacity(out.len() + 1);
        for (a, b) in out {
            if hb < a || ha > b {
                next.push((a, b));
                continue;
            }
            if ha > a {
                next.push((a, ha - 1));
            }
            if hb < b {
                next.push((hb + 1, b));
            }
        }
        out = next;
    }
    out
}

/// The addresses of an ipBlock: its CIDR minus its exceptions (nothing when unreadable).
fn ip_block_ranges(peer: &NetworkPolicyPeer) -> Vec<IpRange> {
    let Some(block) = &peer.ip_block else { return Vec::new() };
    let Some(range) = cidr_range(&block.cidr) else { return Vec::new() };
    let holes: Vec<IpRange> = block.except.iter().flatten().filter_map(|c| cidr_range(c)).collect();
    subtract(range, &holes)
}

/// Whether pod peer `peer` (podSelector and/or namespaceSelector) of a policy in `policy_ns`
/// covers `pod`. An ipBlock peer covers no pod here (its addresses are matched as addresses).
fn peer_covers_pod(peer: &NetworkPolicyPeer, policy_ns: &str, pod: &PodView, namespaces: &NamespaceLabels) -> bool {
    match (&peer.namespace_selector, &peer.pod_selector) {
        (None, None) => false,
        (None, Some(pods)) => pod.namespace == policy_ns && selector_matches(pods, &pod.labels),
        (Some(nss), pods) => {
            selector_matches(nss, &labels_of(namespaces, &pod.namespace))
                && pods.as_ref().is_none_or(|p| selector_matches(p, &pod.labels))
        }
    }
}

/// A policy reduced to what enforcement needs.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// spec.podSelector.
    pub selector: LabelSelector,
    /// Ingress rules when the policy isolates ingress.
    pub ingress: Option<Vec<RuleView>>,
    /// Egress rules when the policy isolates egress.
    pub egress: Option<Vec<RuleView>>,
}

/// One ingress or egress rule.
#[derive(Debug, Clone, Default)]
pub struct RuleView {
    /// `from` / `to`; None when empty or missing (every peer).
    pub peers: Option<Vec<NetworkPolicyPeer>>,
    /// `ports`; None when empty or missing (every port and protocol).
    pub ports: Option<Vec<NetworkPolicyPort>>,
}

impl PolicyView {
    /// Reads a NetworkPolicy; policyTypes default as the API server defaults them.
    pub fn from_policy(policy: &NetworkPolicy) -> PolicyView {
        let spec = policy.spec.clone().unwrap_or_default();
        let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        let types: Vec<String> = match spec.policy_types {
            Some(t) if !t.is_empty() => t,
            _ if has_egress => vec!["Ingress".into(), "Egress".into()],
            _ => vec!["Ingress".into()],
        };
        let non_empty = |v: Option<Vec<NetworkPolicyPeer>>| v.filter(|v| !v.is_empty());
        let ports = |v: Option<Vec<NetworkPolicyPort>>| v.filter(|v| !v.is_empty());
        let ingress = types.iter().any(|t| t == "Ingress").then(|| {
            spec.ingress
                .into_iter()
                .flatten()
                .map(|r| RuleView { peers: non_empty(r.from), ports: ports(r.ports) })
                .collect()
        });
        let egress = types.iter().any(|t| t == "Egress").then(|| {
            spec.egress
                .into_iter()
                .flatten()
                .map(|r| RuleView { peers: non_empty(r.to), ports: ports(r.ports) })
                .collect()
        });
        PolicyView {
            namespace: policy.metadata.namespace.clone().unwrap_or_default(),
            name: policy.metadata.name.clone().unwrap_or_default(),
            selector: spec.pod_selector.unwrap_or_default(),
            ingress,
            egress,
        }
    }

    fn rules(&self, direction: Direction) -> Option<&Vec<RuleView>> {
        match direction {
            Direction::Ingress => self.ingress.as_ref(),
            Direction::Egress => self.egress.as_ref(),
        }
    }

    fn selects(&self, pod: &PodView) -> bool {
        pod.namespace == self.namespace && selector_matches(&self.selector, &pod.labels)
    }
}

/// A resolved port clause: a protocol and a port range (None: every port of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// Protocol.
    pub proto: Proto,
    /// First and last port.
    pub range: Option<(u16, u16)>,
}

/// A numeric port clause (with its endPort); None for a named or unusable one.
fn numeric_port(p: &NetworkPolicyPort) -> Option<Result<PortRange, ()>> {
    let Some(proto) = Proto::parse(p.protocol.as_deref()) else { return Some(Err(())) };
    match &p.port {
        None => Some(Ok(PortRange { proto, range: None })),
        Some(IntOrString::Int(n)) => {
            let first = u16::try_from(*n).ok().filter(|n| *n > 0);
            let last = match p.end_port {
                Some(e) => u16::try_from(e).ok(),
                None => first,
            };
            match (first, last) {
                (Some(a), Some(b)) if a <= b => Some(Ok(PortRange { proto, range: Some((a, b)) })),
                _ => Some(Err(())),
            }
        }
        Some(IntOrString::String(_)) => None,
    }
}

/// A port clause naming a port: (name, protocol).
fn named_port(p: &NetworkPolicyPort) -> Option<(&str, Proto)> {
    match (&p.port, Proto::parse(p.protocol.as_deref())) {
        (Some(IntOrString::String(name)), Some(proto)) => Some((name.as_str(), proto)),
        _ => None,
    }
}

/// Whether a rule's port clauses let `proto`/`port` of `dest` through.
fn ports_allow(ports: Option<&Vec<NetworkPolicyPort>>, dest: &PodView, proto: Proto, port: u16) -> bool {
    let Some(ports) = ports else { return true };
    ports.iter().any(|p| match numeric_port(p) {
        Some(Ok(r)) => r.proto == proto && r.range.is_none_or(|(a, b)| (a..=b).contains(&port)),
        Some(Err(())) => false,
        None => named_port(p).is_some_and(|(name, pr)| pr == proto && dest.port_named(name, pr) == Some(port)),
    })
}

/// One thing an isolated pod may do in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Peers in the set of rule `set` (every address when None), on `ports` (every port and
    /// protocol when None).
    Peers {
        /// Rule id naming the peer set in [`Enforcement::peer_sets`].
        set: Option<String>,
        /// Allowed ports.
        ports: Option<Vec<PortRange>>,
    },
    /// Destinations listed in [`Enforcement::exact_sets`] under this rule id (egress named ports).
    Exact(String),
}

/// The allowances of one isolated pod of this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPod {
    /// `namespace/name`.
    pub key: String,
    /// Ingress allowances when ingress-isolated.
    pub ingress: Option<Vec<Allow>>,
    /// Egress allowances when egress-isolated.
    pub egress: Option<Vec<Allow>>,
}

/// Everything enforcement needs on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Isolated pods of this node by IP.
    pub pods: BTreeMap<Ipv4Addr, LocalPod>,
    /// Rule id -> the merged address ranges of its peers.
    pub peer_sets: BTreeMap<String, Vec<IpRange>>,
    /// Rule id -> `(ip, protocol, port)` destinations of an egress rule's named ports.
    pub exact_sets: BTreeMap<String, BTreeSet<(Ipv4Addr, Proto, u16)>>,
    /// The cluster DNS server on this node, when this proxy serves it.
    pub dns: Option<SocketAddrV4>,
    /// (egress-isolated pod, protocol) pairs whose DNS queries to it no policy allows.
    pub dns_denied: BTreeSet<(Ipv4Addr, Proto)>,
}

impl Enforcement {
    /// True when no pod of this node is isolated.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

/// What the policies mean for the pods of node `node`. `dns` is the cluster DNS server this
/// proxy hosts on the node: it stands for the DNS pods of a Kubernetes cluster, i.e. a pod
/// `kube-system/*` labelled `k8s-app=kube-dns` at that address serving port 53 (named `dns`
/// for UDP, `dns-tcp` for TCP), and an egress-isolated pod reaches it only if a rule allows that.
pub fn compute(
    node: &str,
    pods: &[PodView],
    namespaces: &NamespaceLabels,
    policies: &[PolicyView],
    dns: Option<SocketAddrV4>,
) -> Enforcement {
    let peers: Vec<&PodView> = pods.iter().filter(|p| p.ip.is_some() && !p.host_network).collect();
    let mut local: BTreeMap<Ipv4Addr, &PodView> = BTreeMap::new();
    for p in peers.iter().filter(|p| p.node.as_deref() == Some(node)) {
        if let Some(ip) = p.ip {
            local.entry(ip).or_insert(p);
        }
    }
    let mut out = Enforcement { dns, ..Default::default() };
    let mut policies: Vec<&PolicyView> = policies.iter().collect();
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for policy in &policies {
        let selected: Vec<(Ipv4Addr, &PodView)> =
            local.iter().filter(|(_, p)| policy.selects(p)).map(|(ip, p)| (*ip, *p)).collect();
        if selected.is_empty() {
            continue;
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            let Some(rules) = policy.rules(direction) else { continue };
            for (ip, pod) in &selected {
                let entry = out.pods.entry(*ip).or_insert_with(|| LocalPod {
                    key: format!("{}/{}", pod.namespace, pod.name),
                    ..Default::default()
                });
                let slot = match direction {
                    Direction::Ingress => &mut entry.ingress,
                    Direction::Egress => &mut entry.egress,
                };
                slot.get_or_insert_with(Vec::new);
            }
            for (i, rule) in rules.iter().enumerate() {
                let id = format!("{}/{}/{}/{i}", policy.namespace, policy.name, direction.word());
                add_rule(&mut out, &id, policy, rule, direction, &selected, &peers, namespaces);
            }
        }
    }
    if let Some(target) = dns {
        let server = PodView {
            namespace: crate::dns::NAMESPACE.into(),
            name: crate::dns::NAME.into(),
            ip: Some(*target.ip()),
            labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
            named_ports: vec![("dns".into(), Proto::Udp, DNS_PORT), ("dns-tcp".into(), Proto::Tcp, DNS_PORT)],
            ..Default::default()
        };
        for (ip, lp) in &out.pods {
            if lp.egress.is_none() {
                continue;
            }
            let Some(pod) = local.get(ip) else { continue };
            for proto in [Proto::Udp, Proto::Tcp] {
                let allowed = policies.iter().filter(|p| p.selects(pod)).any(|p| {
                    p.egress
                        .iter()
                        .flatten()
                        .any(|r| rule_allows(r, &p.namespace, &server, namespaces, proto, DNS_PORT))
                });
                if !allowed {
                    out.dns_denied.insert((*ip, proto));
                }
            }
        }
    }
    out
}

/// Whether `rule` of a policy in `policy_ns` lets traffic with peer `peer` through on
/// `proto`/`port` (the port being on `peer`, the destination: used for egress).
fn rule_allows(
    rule: &RuleView,
    policy_ns: &str,
    peer: &PodView,
    namespaces: &NamespaceLabels,
    proto: Proto,
    port: u16,
) -> bool {
    let peer_ok = match (&rule.peers, peer.ip) {
        (None, _) => true,
        (Some(list), ip) => list.iter().any(|p| {
            peer_covers_pod(p, policy_ns, peer, namespaces)
                || ip.is_some_and(|ip| ip_block_ranges(p).iter().any(|(a, b)| (*a..=*b).contains(&u32::from(ip))))
        }),
    };
    peer_ok && ports_allow(rule.ports.as_ref(), peer, proto, port)
}

#[allow(clippy::too_many_arguments)]
fn add_rule(
    out: &mut Enforcement,
    id: &str,
    policy: &PolicyView,
    rule: &RuleView,
    direction: Direction,
    selected: &[(Ipv4Addr, &PodView)],
    peers: &[&PodView],
    namespaces: &NamespaceLabels,
) {
    // The peers' addresses: pods the pod peers cover, and the ipBlocks.
    let covered = |pod: &PodView| match &rule.peers {
        None => true,
        Some(list) => list.iter().any(|p| peer_covers_pod(p, &policy.namespace, pod, namespaces)),
    };
    let set = rule.peers.as_ref().map(|list| {
        let mut ranges: Vec<IpRange> = list.iter().flat_map(ip_block_ranges).collect();
        ranges
            .extend(peers.iter().filter(|p| covered(p)).filter_map(|p| p.ip).map(|ip| (u32::from(ip), u32::from(ip))));
        out.peer_sets.insert(id.to_string(), merge(ranges));
        id.to_string()
    });
    let clauses = rule.ports.as_deref();
    // Egress named ports resolve on each destination pod.
    if direction == Direction::Egress && clauses.is_some_and(|c| c.iter().any(|p| named_port(p).is_some())) {
        let blocks: Vec<IpRange> = rule.peers.iter().flatten().flat_map(ip_block_ranges).collect();
        let mut exact = BTreeSet::new();
        for dest in peers {
            let Some(ip) = dest.ip else { continue };
            let in_block = blocks.iter().any(|(a, b)| (*a..=*b).contains(&u32::from(ip)));
            if !covered(dest) && !in_block {
                continue;
            }
            for (name, proto) in clauses.into_iter().flatten().filter_map(named_port) {
                if let Some(port) = dest.port_named(name, proto) {
                    exact.insert((ip, proto, port));
                }
            }
        }
        let exact_id = format!("{id}/named");
        out.exact_sets.insert(exact_id.clone(), exact);
        for (ip, _) in selected {
            if let Some(list) = out.pods.get_mut(ip).and_then(|p| p.egress.as_mut()) {
                list.push(Allow::Exact(exact_id.clone()));
            }
        }
    }
    for (ip, pod) in selected {
        let ports = match clauses {
            None => None,
            Some(clauses) => {
                let mut resolved = Vec::new();
                for c in clauses {
                    match numeric_port(c) {
                        Some(Ok(r)) => resolved.push(r),
                        Some(Err(())) => {}
                        None if direction == Direction::Ingress => {
                            if let Some((name, proto)) = named_port(c)
                                && let Some(port) = pod.port_named(name, proto)
                            {
                                resolved.push(PortRange { proto, range: Some((port, port)) });
                            }
                        }
                        None => {}
                    }
                }
                resolved.sort_unstable();
                resolved.dedup();
                if resolved.is_empty() {
                    // Every clause is unusable or (egress) named: nothing more to allow here.
                    continue;
                }
                Some(resolved)
            }
        };
        let entry = out.pods.get_mut(ip);
        let list = match (direction, entry) {
            (Direction::Ingress, Some(p)) => p.ingress.as_mut(),
            (Direction::Egress, Some(p)) => p.egress.as_mut(),
            (_, None) => None,
        };
        if let Some(list) = list {
            list.push(Allow::Peers { set: set.clone(), ports });
        }
    }
}

#[cfg(test)]
mod tests;
