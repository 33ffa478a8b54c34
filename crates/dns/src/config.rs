//! Flags of the cluster DNS server, flattened into the flags of the daemon that hosts it
//! (rkube-proxy), and the upstream resolvers they come to.

use crate::Error;
use clap::Args;
use rkube_daemon::parse_duration;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of the cluster DNS server (every long name starts with `dns-`, except the kubelet's
/// `--cluster-domain`, so they flatten into another daemon's flags without clashing).
#[derive(Args, Debug, Clone)]
// Its own group id: the host's flags struct is often also called `Config`.
#[group(id = "rkube-dns")]
pub struct Config {
    /// Addresses the cluster DNS server answers on, UDP and TCP (comma-separated). rkube-proxy
    /// sends the cluster DNS Service IP here; port 0 picks a free port.
    #[arg(long = "dns-listen", value_delimiter = ',', default_value = "0.0.0.0:53")]
    pub dns_listen: Vec<SocketAddr>,
    /// The cluster's DNS domain (the kubelet's --cluster-domain).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster domain, `ip` or `ip:port`, comma-separated;
    /// `none` forwards nothing. Default: the nameservers of --dns-resolv-conf.
    #[arg(long = "dns-upstream", value_delimiter = ',')]
    pub dns_upstream: Vec<String>,
    /// The resolv.conf whose nameservers are the default upstream resolvers.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub dns_resolv_conf: PathBuf,
    /// TTL of the answers for cluster names.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub dns_ttl: Duration,
    /// How long resolvers may remember that a cluster name does not exist (the SOA minimum).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub dns_negative_ttl: Duration,
    /// How long to wait for one upstream resolver before trying the next.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub dns_forward_timeout: Duration,
}

impl Config {
    /// The upstream resolvers: `--dns-upstream`, else the nameservers of `--dns-resolv-conf`
    /// (none if it cannot be read). Our own listen addresses are left out, so that a node
    /// whose resolv.conf points at this server does not forward to itself in a loop.
    pub fn upstreams(&self) -> Result<Vec<SocketAddr>, Error> {
        let named: Vec<SocketAddr> = if self.dns_upstream.is_empty() {
            match std::fs::read_to_string(&self.dns_resolv_conf) {
                Ok(text) => resolv_conf_nameservers(&text),
                Err(e) => {
                    tracing::warn!(path = %self.dns_resolv_conf.display(), error = %e, "cannot read resolv.conf; no upstream resolvers");
                    Vec::new()
                }
            }
        } else {
            let mut out = Vec::new();
            for item in self.dns_upstream.iter().map(|s| s.trim()) {
                if item.is_empty() || item.eq_ignore_ascii_case("none") {
                    continue;
                }
                out.push(parse_upstream(item).ok_or_else(|| Error::Upstream(item.to_string()))?);
            }
            out
        };
        let (mut kept, mut seen) = (Vec::new(), std::collections::HashSet::new());
        for upstream in named {
            if self.dns_listen.iter().any(|l| is_self(l, &upstream)) {
                tracing::warn!(%upstream, "upstream resolver is this server itself; skipped");
            } else if seen.insert(upstream) {
                kept.push(upstream);
            }
        }
        Ok(kept)
    }
}

/// `ip:port`, `[v6]:port` or a bare IP (port 53).
pub fn parse_upstream(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// The `nameserver` addresses of a resolv.conf (scoped IPv6 addresses are skipped).
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|addr| match addr.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, 53)),
            Err(_) => {
                tracing::warn!(nameserver = addr, "unusable nameserver in resolv.conf; skipped");
                None
            }
        })
        .collect()
}

/// Whether a query to `upstream` would reach the server listening on `listen`. A wildcard
/// listener owns the port on every address, loopback included.
fn is_self(listen: &SocketAddr, upstream: &SocketAddr) -> bool {
    listen.port() == upstream.port()
        && (listen.ip() == upstream.ip() || (listen.ip().is_unspecified() && upstream.ip().is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        dns: Config,
    }

    #[test]
    fn defaults_and_upstreams() {
        let c = Flags::parse_from(["x"]).dns;
        assert_eq!(c.dns_listen, vec!["0.0.0.0:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(c.dns_ttl, Duration::from_secs(30));
        let c = Flags::parse_from(["x", "--dns-upstream", "10.0.0.2,10.0.0.3:5353,[fd00::1]:53,::2,127.0.0.1"]).dns;
        let got: Vec<String> = c.upstreams().unwrap().iter().map(|a| a.to_string()).collect();
        // 127.0.0.1:53 is this server itself (it listens on 0.0.0.0:53).
        assert_eq!(got, ["10.0.0.2:53", "10.0.0.3:5353", "[fd00::1]:53", "[::2]:53"]);
        let c = Flags::parse_from(["x", "--dns-upstream", "none"]).dns;
        assert!(c.upstreams().unwrap().is_empty());
        let c = Flags::parse_from(["x", "--dns-upstream", "resolver.example"]).dns;
        assert!(matches!(c.upstreams(), Err(Error::Upstream(_))));
    }

    #[test]
    fn resolv_conf_parsing() {
        let text =
            "# comment\nsearch a.b\nnameserver 10.1.2.3\nnameserver fe80::1%eth0\nnameserver ::1\noptions ndots:2\n";
        let got: Vec<String> = resolv_conf_nameservers(text).iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["10.1.2.3:53", "[::1]:53"]);
    }
}
