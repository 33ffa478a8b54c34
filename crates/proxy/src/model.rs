//! The proxy's view of the cluster, free of I/O: every port of every Service that has a virtual
//! address becomes one [`ServicePort`], carrying the endpoints its EndpointSlices list for that
//! port (named target ports resolved through the slices' own port lists).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Default `sessionAffinityConfig.clientIP.timeoutSeconds` (three hours, as in Kubernetes).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// A transport protocol a Service port may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses a Kubernetes protocol name; absent means TCP.
    pub fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name nftables knows it by.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nft())
    }
}

/// One address and port traffic for a Service port may be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's IPv4 address.
    pub ip: Ipv4Addr,
    /// The target port on it.
    pub port: u16,
    /// The node it runs on, when the slice says.
    pub node_name: Option<String>,
    /// Ready for traffic (an absent condition counts as ready).
    pub ready: bool,
    /// Passing readiness checks, whether or not it is terminating (absent counts as serving).
    pub serving: bool,
    /// Shutting down.
    pub terminating: bool,
}

/// One port of a Service, with everything needed to route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's name ("" for a Service's only, unnamed port).
    pub port_name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The Service port number.
    pub port: u16,
    /// IPv4 cluster IPs.
    pub cluster_ips: Vec<Ipv4Addr>,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and load-balancer ingress IPs, routed as external traffic.
    pub external_ips: Vec<Ipv4Addr>,
    /// Seconds a client sticks to its endpoint, for `sessionAffinity: ClientIP`.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`: external traffic only to this node's endpoints.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`: cluster traffic only to this node's endpoints.
    pub internal_local: bool,
    /// The endpoints, deduplicated and sorted by address and port.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/service/protocol/port`: unique per Service port, used to name its chains.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/{}", self.namespace, self.service, self.protocol, self.port)
    }

    /// `namespace/service`.
    pub fn service_key(&self) -> String {
        format!("{}/{}", self.namespace, self.service)
    }

    /// Whether traffic arrives from outside the cluster network: a node port or external IPs.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// The endpoints to send traffic to, on any node (`node` None) or on `node` only: the ready
    /// ones, or when none is ready the ones still serving while they terminate (so a rolling
    /// update never leaves a Service without a backend that could answer).
    pub fn usable_endpoints(&self, node: Option<&str>) -> Vec<&Endpoint> {
        let on_node = |e: &&Endpoint| node.is_none() || e.node_name.as_deref() == node;
        let ready: Vec<&Endpoint> = self.endpoints.iter().filter(on_node).filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints.iter().filter(on_node).filter(|e| e.serving && e.terminating).collect()
    }
}

/// The ports of `service` that the proxy routes (none for headless and ExternalName Services),
/// with endpoints from `slices` (the Service's EndpointSlices; others are ignored).
pub fn service_ports(service: &Service, slices: &[Arc<EndpointSlice>]) -> Vec<ServicePort> {
    let Some(spec) = &service.spec else { return Vec::new() };
    let namespace = service.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let Some(name) = service.metadata.name.clone() else { return Vec::new() };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Vec::new();
    }
    let mut cluster_ips: Vec<Ipv4Addr> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => spec.cluster_ip.iter().filter_map(|ip| ip.parse().ok()).collect(),
    };
    cluster_ips.dedup();
    // Headless ("None") or not yet allocated: nothing to route.
    if cluster_ips.is_empty() {
        return Vec::new();
    }
    let has_node_ports = matches!(kind, "NodePort" | "LoadBalancer");
    let mut external_ips: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
    if kind == "LoadBalancer" {
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        // ipMode Proxy: the load balancer itself forwards to the node ports; routing its IP
        // here would bypass it.
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    external_ips.sort();
    external_ips.dedup();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let own: Vec<&EndpointSlice> = slices
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| {
            s.metadata.namespace.as_deref() == Some(namespace.as_str())
                && s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) == Some(&name)
                && s.address_type == "IPv4"
        })
        .collect();

    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let (Some(protocol), Ok(port)) = (Protocol::parse(p.protocol.as_deref()), u16::try_from(p.port)) else {
            continue;
        };
        if port == 0 {
            continue;
        }
        let port_name = p.name.clone().unwrap_or_default();
        let node_port =
            if has_node_ports { p.node_port.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0) } else { None };
        out.push(ServicePort {
            namespace: namespace.clone(),
            service: name.clone(),
            endpoints: endpoints_for(&own, &port_name, protocol),
            port_name,
            protocol,
            port,
            cluster_ips: cluster_ips.clone(),
            node_port,
            external_ips: external_ips.clone(),
            affinity_timeout,
            external_local,
            internal_local,
        });
    }
    out
}

/// The endpoints `slices` offer for the Service port called `port_name`: each slice names its
/// own target port for it (so a named targetPort may differ from pod to pod).
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol) -> Vec<Endpoint> {
    // Keyed by address and port: a pod moving between slices may briefly be in two.
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let target = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = target.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) else {
            continue;
        };
        for e in &slice.endpoints {
            let conditions = e.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let endpoint = Endpoint {
                ip: Ipv4Addr::UNSPECIFIED,
                port,
                node_name: e.node_name.clone().filter(|n| !n.is_empty()),
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(true),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
            };
            // Kubernetes uses only the first address of an endpoint.
            let Some(ip) = e.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else { continue };
            let endpoint = Endpoint { ip, ..endpoint };
            match found.get(&(ip, port)) {
                Some(existing) if existing.ready || !endpoint.ready => {}
                _ => {
                    found.insert((ip, port), endpoint);
                }
            }
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "demo"}, "spec": spec})).unwrap()
    }

    fn slice(name: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "demo", "labels": {SERVICE_NAME_LABEL: "web"}},
                "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn ports_carry_addresses_policies_and_affinity() {
        let mut svc = service(json!({
            "type": "LoadBalancer", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
            "externalIPs": ["192.0.2.50", "not-an-ip"], "externalTrafficPolicy": "Local",
            "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}],
        }));
        svc.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"ip": "198.51.100.8", "ipMode": "Proxy"}]}}))
                .unwrap(),
        );
        let ports = service_ports(&svc, &[]);
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.id(), "demo/web/tcp/80");
        assert_eq!(http.cluster_ips, vec![Ipv4Addr::new(10, 96, 0, 5)]);
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.external_ips, vec![Ipv4Addr::new(192, 0, 2, 50), Ipv4Addr::new(198, 51, 100, 7)]);
        assert_eq!(http.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(http.external_local && !http.internal_local);
        assert_eq!(ports[1].protocol, Protocol::Udp);
        assert_eq!(ports[1].id(), "demo/web/udp/53");
    }

    #[test]
    fn headless_external_name_and_cluster_ip_types() {
        assert!(service_ports(&service(json!({"clusterIP": "None", "ports": [{"port": 80}]})), &[]).is_empty());
        assert!(service_ports(&service(json!({"type": "ExternalName", "externalName": "x.example"})), &[]).is_empty());
        // A ClusterIP Service has no node port even if one is (wrongly) set.
        let p =
            service_ports(&service(json!({"clusterIP": "10.96.0.9", "ports": [{"port": 80, "nodePort": 30001}]})), &[]);
        assert_eq!(p[0].node_port, None);
        assert_eq!(p[0].affinity_timeout, None);
    }

    #[test]
    fn named_target_ports_resolve_per_slice_and_duplicates_merge() {
        let svc =
            service(json!({"clusterIP": "10.96.0.5", "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}));
        let a = slice(
            "web-a",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            json!([
                {"addresses": ["10.244.0.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.0.3"], "conditions": {"ready": false, "serving": false}},
            ]),
        );
        let b = slice(
            "web-b",
            json!([{"name": "http", "port": 9090, "protocol": "TCP"}]),
            json!([{"addresses": ["10.244.1.2"]}, {"addresses": ["fd00::1"]}]),
        );
        // The same pod, not ready, also in a second slice with the same port: the ready copy wins.
        let c = slice(
            "web-c",
            json!([{"name": "http", "port": 8080}]),
            json!([{"addresses": ["10.244.0.2"], "conditions": {"ready": false}}]),
        );
        let other_port =
            slice("web-d", json!([{"name": "metrics", "port": 9100}]), json!([{"addresses": ["10.244.5.5"]}]));
        let p = &service_ports(&svc, &[a, b, c, other_port])[0];
        let got: Vec<String> = p.endpoints.iter().map(|e| format!("{}:{}:{}", e.ip, e.port, e.ready)).collect();
        assert_eq!(got, ["10.244.0.2:8080:true", "10.244.0.3:8080:false", "10.244.1.2:9090:true"]);
        assert_eq!(p.endpoints[0].node_name.as_deref(), Some("n1"));
        let usable: Vec<Ipv4Addr> = p.usable_endpoints(None).iter().map(|e| e.ip).collect();
        assert_eq!(usable, [Ipv4Addr::new(10, 244, 0, 2), Ipv4Addr::new(10, 244, 1, 2)]);
        assert_eq!(p.usable_endpoints(Some("n1")).len(), 1);
        assert!(p.usable_endpoints(Some("n2")).is_empty());
    }

    #[test]
    fn terminating_but_serving_endpoints_stand_in_when_none_is_ready() {
        let svc = service(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}));
        let s = slice(
            "web-a",
            json!([{"port": 8080}]),
            json!([
                {"addresses": ["10.244.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}},
            ]),
        );
        let p = &service_ports(&svc, &[s])[0];
        let usable: Vec<Ipv4Addr> = p.usable_endpoints(None).iter().map(|e| e.ip).collect();
        assert_eq!(usable, [Ipv4Addr::new(10, 244, 0, 2)]);
    }

    #[test]
    fn slices_of_other_services_are_ignored() {
        let svc = service(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}));
        let mut s = (*slice("x", json!([{"port": 8080}]), json!([{"addresses": ["10.244.0.2"]}]))).clone();
        s.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), "other".to_string())].into());
        assert!(service_ports(&svc, &[Arc::new(s)])[0].endpoints.is_empty());
    }
}
