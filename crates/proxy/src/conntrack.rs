//! Clearing UDP conntrack entries that point at endpoints which are gone. TCP needs nothing
//! (a dead endpoint resets or times out the connection), but a UDP "connection" lives as long
//! as the client keeps sending, so without this it would keep going to the old endpoint.
//! Uses the `conntrack` tool when it is installed; without it this is skipped.

use crate::model::{Protocol, ServicePort};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A flow to forget: traffic to `destination` (a service address, or any local address
/// when None, for node ports) on `port` that was DNATed to `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlow {
    /// The Service address the client used; None for a node port.
    pub destination: Option<Ipv4Addr>,
    /// The Service or node port.
    pub port: u16,
    /// The endpoint that no longer serves it.
    pub endpoint: Ipv4Addr,
}

/// UDP flows whose endpoint was used for a Service port before and is not now.
pub fn stale_flows(old: &[ServicePort], new: &[ServicePort], node: &str) -> Vec<StaleFlow> {
    let used = |sp: &ServicePort| -> BTreeSet<Ipv4Addr> {
        let mut ips: BTreeSet<Ipv4Addr> = sp.usable_endpoints(None).iter().map(|e| e.ip).collect();
        ips.extend(sp.usable_endpoints(Some(node)).iter().map(|e| e.ip));
        ips
    };
    let now: HashMap<String, BTreeSet<Ipv4Addr>> =
        new.iter().filter(|sp| sp.protocol == Protocol::Udp).map(|sp| (sp.id(), used(sp))).collect();
    let mut out = BTreeSet::new();
    for sp in old.iter().filter(|sp| sp.protocol == Protocol::Udp) {
        let keep = now.get(&sp.id());
        for ip in used(sp).into_iter().filter(|ip| !keep.is_some_and(|k| k.contains(ip))) {
            for dst in sp.cluster_ips.iter().chain(&sp.external_ips) {
                out.insert(StaleFlow { destination: Some(*dst), port: sp.port, endpoint: ip });
            }
            if let Some(np) = sp.node_port {
                out.insert(StaleFlow { destination: None, port: np, endpoint: ip });
            }
        }
    }
    out.into_iter().collect()
}

/// Whether the `conntrack` tool can be run (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let found = Command::new("conntrack")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            tracing::info!("conntrack tool not installed: UDP flows to removed endpoints are left to time out");
        }
        found
    })
}

/// Deletes the conntrack entries of `flows` (when the tool is there). Best effort: "no
/// entries" is the common answer and not an error.
pub fn clear(flows: &[StaleFlow]) {
    if flows.is_empty() || !available() {
        return;
    }
    for f in flows {
        let mut cmd = Command::new("conntrack");
        cmd.args(["-D", "-p", "udp"]);
        match f.destination {
            Some(dst) => cmd.args(["--orig-dst", &dst.to_string(), "--orig-port-dst", &f.port.to_string()]),
            None => cmd.args(["--orig-port-dst", &f.port.to_string()]),
        };
        cmd.args(["--dst-nat", &f.endpoint.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
        if let Err(e) = cmd.status() {
            tracing::debug!(error = %e, endpoint = %f.endpoint, "conntrack -D failed");
        }
    }
    tracing::debug!(flows = flows.len(), "cleared UDP conntrack entries of removed endpoints");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    fn udp(endpoints: &[[u8; 4]]) -> ServicePort {
        ServicePort {
            namespace: "kube-system".into(),
            service: "dns".into(),
            port_name: String::new(),
            protocol: Protocol::Udp,
            port: 53,
            cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 10)],
            node_port: Some(30053),
            external_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: endpoints
                .iter()
                .map(|ip| Endpoint {
                    ip: Ipv4Addr::from(*ip),
                    port: 5353,
                    node_name: None,
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
        }
    }

    #[test]
    fn removed_udp_endpoints_are_stale_and_kept_ones_are_not() {
        let old = [udp(&[[10, 244, 0, 2], [10, 244, 0, 3]])];
        let new = [udp(&[[10, 244, 0, 3]])];
        let flows = stale_flows(&old, &new, "n1");
        let gone = Ipv4Addr::new(10, 244, 0, 2);
        assert_eq!(
            flows,
            [
                StaleFlow { destination: None, port: 30053, endpoint: gone },
                StaleFlow { destination: Some(Ipv4Addr::new(10, 96, 0, 10)), port: 53, endpoint: gone },
            ]
        );
        assert!(stale_flows(&new, &new, "n1").is_empty());
        // A Service deleted outright leaves all of its flows stale.
        assert_eq!(stale_flows(&new, &[], "n1").len(), 2);
    }
}
