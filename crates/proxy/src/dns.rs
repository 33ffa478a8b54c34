//! The cluster DNS Service: `kube-system/kube-dns` with the cluster DNS IP and no selector,
//! created by the proxy when missing so that IP is reserved, and routed by every node's proxy
//! to the DNS server that same process hosts (crate `rkube-dns`).

use crate::error::ProxyError;
use k8s_openapi::api::core::v1::Service;
use rkube_client::Client;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Namespace of the cluster DNS Service.
pub const NAMESPACE: &str = "kube-system";
/// Name of the cluster DNS Service (Kubernetes' conventional name).
pub const NAME: &str = "kube-dns";

/// The Service the proxy creates.
pub fn service(cluster_ip: Ipv4Addr) -> Result<Service, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "rkube-dns"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip.to_string(), "clusterIPs": [cluster_ip.to_string()],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ]},
    }))
}

/// Creates the cluster DNS Service if it does not exist, retrying until it exists or `token`
/// is cancelled. An existing one is left alone (with a warning when its IP differs).
pub async fn ensure_service(client: &Client, cluster_ip: Ipv4Addr, token: &CancellationToken) {
    let api = client.api::<Service>(Some(NAMESPACE));
    let mut delay = Duration::from_millis(500);
    while !token.is_cancelled() {
        match try_ensure(&api, cluster_ip).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, service = %format!("{NAMESPACE}/{NAME}"), "cannot ensure the cluster DNS Service; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = token.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn try_ensure(api: &rkube_client::Api<Service>, cluster_ip: Ipv4Addr) -> Result<(), ProxyError> {
    if let Some(existing) = api.get_opt(NAME).await? {
        let ip = existing.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
        if ip != cluster_ip.to_string() {
            tracing::warn!(service = %format!("{NAMESPACE}/{NAME}"), cluster_ip = %ip, wanted = %cluster_ip,
                "the cluster DNS Service has another IP than --cluster-dns-ip; pods told to use --cluster-dns-ip get no answer");
        }
        return Ok(());
    }
    let svc = service(cluster_ip).map_err(|e| ProxyError::Flag {
        flag: "cluster-dns-ip",
        value: cluster_ip.to_string(),
        reason: e.to_string(),
    })?;
    match api.create(&svc).await {
        Ok(_) => {
            tracing::info!(service = %format!("{NAMESPACE}/{NAME}"), cluster_ip = %cluster_ip, "created the cluster DNS Service");
            Ok(())
        }
        // Another node's proxy was quicker.
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The addresses the DNS server binds: a wildcard IPv4 address becomes `node_ip`. A UDP
/// socket bound to the wildcard answers from whatever source address the kernel picks for
/// the client (for a pod, the bridge's address), which is not the address the Service IP was
/// translated to, so conntrack cannot translate the answer back and the client drops it.
/// Bound to one address, the answer always comes from it.
pub fn bind_addresses(listen: &[SocketAddr], node_ip: Ipv4Addr) -> Vec<SocketAddr> {
    listen
        .iter()
        .map(|a| match a.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(node_ip), a.port()),
            _ => *a,
        })
        .collect()
}

/// Where the DNS Service's traffic goes: the first bind address (see [`bind_addresses`]).
/// Pods' packets cannot be sent to loopback, so a loopback listener is refused, and the port
/// must be fixed since the rules name it.
pub fn route_target(bind: &[SocketAddr]) -> Result<SocketAddrV4, ProxyError> {
    let bad = |value: String, reason: &str| ProxyError::Flag { flag: "dns-listen", value, reason: reason.into() };
    let first = bind.first().ok_or_else(|| bad(String::new(), "no listen address"))?;
    if first.port() == 0 {
        return Err(bad(first.to_string(), "the cluster DNS Service is routed to this port: give a fixed one"));
    }
    match first.ip() {
        IpAddr::V4(ip) if ip.is_loopback() || ip.is_unspecified() => {
            Err(bad(first.to_string(), "pods cannot reach this address; listen on the node IP or 0.0.0.0"))
        }
        IpAddr::V4(ip) => Ok(SocketAddrV4::new(ip, first.port())),
        IpAddr::V6(_) => Err(bad(first.to_string(), "the first listen address must be IPv4")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_reserves_the_ip_without_a_selector() {
        let s = service(Ipv4Addr::new(10, 96, 0, 10)).unwrap();
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert!(spec.selector.is_none());
        let ports = spec.ports.unwrap();
        assert_eq!((ports[0].name.as_deref(), ports[0].protocol.as_deref()), (Some("dns"), Some("UDP")));
        assert_eq!((ports[1].name.as_deref(), ports[1].protocol.as_deref()), (Some("dns-tcp"), Some("TCP")));
    }

    #[test]
    fn wildcards_bind_the_node_ip_and_the_first_address_is_the_target() {
        let node = Ipv4Addr::new(192, 0, 2, 2);
        let t = |s: &str| route_target(&bind_addresses(&[s.parse().unwrap()], node));
        assert_eq!(t("0.0.0.0:53").unwrap().to_string(), "192.0.2.2:53");
        assert_eq!(t("192.0.2.9:5353").unwrap().to_string(), "192.0.2.9:5353");
        assert!(t("127.0.0.1:53").is_err());
        assert!(t("0.0.0.0:0").is_err());
        assert!(t("[::]:53").is_err());
        assert!(route_target(&[]).is_err());
        let both = bind_addresses(&["0.0.0.0:53".parse().unwrap(), "[::1]:53".parse().unwrap()], node);
        assert_eq!(both, ["192.0.2.2:53".parse::<SocketAddr>().unwrap(), "[::1]:53".parse().unwrap()]);
    }
}
