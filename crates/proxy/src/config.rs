//! Flags of rkube-proxy (kube-proxy's names where the meaning is the same), each also settable
//! from the YAML file named by `--config`.

use crate::error::ProxyError;
use clap::Parser;
use rkube_daemon::parse_duration;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Command-line flags; every flag may also be a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
// rkube_dns::Config, flattened in, would otherwise claim the same group name.
#[group(id = "rkube-proxy")]
#[command(
    name = "rkube-proxy",
    version,
    about = "rkube proxy: routes Service IPs and node ports to endpoints with nftables, and serves cluster DNS"
)]
pub struct Config {
    /// Where the API server is: `--config`, `--master`, `--kubeconfig`.
    #[command(flatten)]
    pub api: rkube_daemon::ApiServerFlags,
    /// Name of this node, for the Local traffic policies (default: the host name, lower-cased).
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// This node's IPv4 addresses, comma-separated; the first receives the cluster DNS Service's
    /// traffic (default: the address of the default route).
    #[arg(long, value_delimiter = ',')]
    pub node_ip: Vec<String>,
    /// Pod CIDRs, comma-separated: clients outside them reaching a cluster IP are masqueraded,
    /// and pods reaching an externalTrafficPolicy Local port count as cluster traffic.
    #[arg(long, value_delimiter = ',')]
    pub cluster_cidr: Vec<String>,
    /// CIDRs of the addresses that answer on node ports, comma-separated (default: every local
    /// address except loopback).
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<String>,
    /// The nftables table (family ip) rkube-proxy owns; nothing outside it is touched.
    #[arg(long, default_value = "rkube-proxy")]
    pub nftables_table: String,
    /// Longest time between two syncs, even when nothing changed (repairs a table changed by hand).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
    /// Shortest time between two syncs: changes arriving closer together are applied in one.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub min_sync_period: Duration,
    /// Masquerade all traffic to cluster IPs, not only that from outside --cluster-cidr.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub masquerade_all: bool,
    /// Remove the nftables table and exit.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub cleanup: bool,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port of the /healthz, /readyz and /metrics endpoints; 0 disables.
    #[arg(long, alias = "secure-port", default_value_t = 10256)]
    pub healthz_port: u16,
    /// Host the cluster DNS server and route --cluster-dns-ip to it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dns: bool,
    /// Enforce NetworkPolicies for this node's pods, in the nftables table `<nftables-table>-netpol`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub network_policy: bool,
    /// ClusterIP of the `kube-system/kube-dns` Service, which this proxy creates if missing and
    /// routes to the DNS server on this node.
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns_ip: Ipv4Addr,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_proxy=debug".
    #[arg(long, default_value = "info,hickory_server=warn")]
    pub log_level: String,
    /// The cluster DNS server's flags (`--dns-*`, `--cluster-domain`).
    #[command(flatten)]
    pub dns_config: rkube_dns::Config,
}

/// The flags, checked and resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Node name.
    pub node_name: String,
    /// Node IPv4 addresses (at least one).
    pub node_ips: Vec<Ipv4Addr>,
    /// Pod CIDRs, normalised.
    pub cluster_cidrs: Vec<String>,
    /// Node-port CIDRs, normalised.
    pub nodeport_addresses: Vec<String>,
}

impl Config {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        self.api.server()
    }

    /// Checks the flags and fills in the defaults that depend on the machine.
    pub fn resolve(&self) -> Result<Resolved, ProxyError> {
        check_table_name(&self.nftables_table)?;
        let node_name = match &self.hostname_override {
            Some(n) if !n.trim().is_empty() => n.trim().to_lowercase(),
            _ => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_lowercase(),
        };
        let mut node_ips = Vec::new();
        for ip in self.node_ip.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            node_ips.push(ip.parse::<Ipv4Addr>().map_err(|e| ProxyError::Flag {
                flag: "node-ip",
                value: ip.into(),
                reason: e.to_string(),
            })?);
        }
        if node_ips.is_empty() {
            node_ips.push(rkube_daemon::node_address());
        }
        let cidrs = |flag: &'static str, list: &[String]| -> Result<Vec<String>, ProxyError> {
            list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(|s| parse_cidr(flag, s)).collect()
        };
        Ok(Resolved {
            node_name,
            node_ips,
            cluster_cidrs: cidrs("cluster-cidr", &self.cluster_cidr)?,
            nodeport_addresses: cidrs("nodeport-addresses", &self.nodeport_addresses)?,
        })
    }
}

/// The table name goes into nft commands verbatim: letters, digits, '-' and '_' only.
fn check_table_name(name: &str) -> Result<(), ProxyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ProxyError::Flag {
            flag: "nftables-table",
            value: name.into(),
            reason: "use a letter then letters, digits, '-' or '_' (at most 64)".into(),
        })
    }
}

/// `a.b.c.d/n` (host bits cleared) or a bare address (`/32`).
pub fn parse_cidr(flag: &'static str, s: &str) -> Result<String, ProxyError> {
    let bad = |reason: &str| ProxyError::Flag { flag, value: s.into(), reason: reason.into() };
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().map_err(|_| bad("the prefix length is not a number"))?),
        None => (s, 32),
    };
    if len > 32 {
        return Err(bad("the prefix length is over 32"));
    }
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    Ok(format!("{}/{len}", Ipv4Addr::from(u32::from(ip) & mask)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kube_proxy() {
        let c = Config::parse_from(["rkube-proxy"]);
        assert_eq!(c.nftables_table, "rkube-proxy");
        assert_eq!(c.healthz_port, 10256);
        assert_eq!(c.sync_period, Duration::from_secs(30));
        assert_eq!(c.min_sync_period, Duration::from_millis(100));
        assert!(c.dns && c.network_policy && !c.masquerade_all && !c.cleanup);
        assert!(!Config::parse_from(["rkube-proxy", "--network-policy=false"]).network_policy);
        assert_eq!(c.cluster_dns_ip, Ipv4Addr::new(10, 96, 0, 10));
        let c = Config::parse_from(["rkube-proxy", "--secure-port", "0", "--dns=false", "--masquerade-all"]);
        assert_eq!(c.healthz_port, 0);
        assert!(!c.dns && c.masquerade_all);
    }

    #[test]
    fn flags_resolve_and_bad_values_are_refused() {
        let c = Config::parse_from([
            "rkube-proxy",
            "--hostname-override",
            "Node-A",
            "--node-ip",
            "192.0.2.2,192.0.2.3",
            "--cluster-cidr",
            "10.244.3.7/16",
            "--nodeport-addresses",
            "192.0.2.2",
        ]);
        let r = c.resolve().unwrap();
        assert_eq!(r.node_name, "node-a");
        assert_eq!(r.node_ips, [Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 3)]);
        assert_eq!(r.cluster_cidrs, ["10.244.0.0/16"]);
        assert_eq!(r.nodeport_addresses, ["192.0.2.2/32"]);
        assert!(Config::parse_from(["x", "--cluster-cidr", "10.0.0.0/33"]).resolve().is_err());
        assert!(Config::parse_from(["x", "--node-ip", "fd00::1"]).resolve().is_err());
        assert!(Config::parse_from(["x", "--nftables-table", "a b"]).resolve().is_err());
        assert!(Config::parse_from(["x", "--nftables-table", "x;flush ruleset"]).resolve().is_err());
        assert!(!Config::parse_from(["x"]).resolve().unwrap().node_ips.is_empty());
    }

    #[test]
    fn network_policy_is_settable_from_the_config_file() {
        let file = std::env::temp_dir().join(format!("rkube-proxy-netpol-{}.yaml", std::process::id()));
        std::fs::write(&file, "network-policy: false\n").unwrap();
        let args = |extra: &[&str]| {
            let mut a: Vec<std::ffi::OsString> = vec!["rkube-proxy".into(), "--config".into(), file.clone().into()];
            a.extend(extra.iter().map(Into::into));
            rkube_daemon::load_config_from::<Config>(a).unwrap()
        };
        assert!(!args(&[]).network_policy);
        assert!(args(&["--network-policy"]).network_policy, "the command line wins");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn the_example_config_file_loads() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/proxy.yaml");
        let c: Config = rkube_daemon::load_config_from(vec![
            "rkube-proxy".into(),
            "--config".into(),
            file.into(),
            "--healthz-port=1".into(),
        ])
        .unwrap();
        assert_eq!(c.api.kubeconfig.as_deref(), Some(std::path::Path::new("/var/lib/rkube/proxy.kubeconfig")));
        assert_eq!(c.cluster_cidr, ["10.244.0.0/16"]);
        assert_eq!(c.healthz_port, 1, "the command line wins over the file");
        c.resolve().unwrap();
    }
}
