//! Flags of rkube-ingress (ingress-nginx's names where the meaning is the same), each also
//! settable from the YAML file named by `--config`.

use clap::Parser;
use rkube_daemon::parse_duration;
use std::time::Duration;

/// The `spec.controller` value of the IngressClasses this controller serves by default.
pub const CONTROLLER_NAME: &str = "rkube.io/ingress-controller";

/// Command-line flags; every flag may also be a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rkube-ingress",
    version,
    about = "rkube ingress controller: routes HTTP(S) by host and path to Services"
)]
pub struct Config {
    /// Where the API server is: `--config`, `--master`, `--kubeconfig`.
    #[command(flatten)]
    pub api: rkube_daemon::ApiServerFlags,
    /// The IngressClass this controller serves; created at start (with `--controller-class`)
    /// when absent.
    #[arg(long, default_value = "rkube")]
    pub ingress_class: String,
    /// IngressClasses whose spec.controller is this are served.
    #[arg(long, default_value = CONTROLLER_NAME)]
    pub controller_class: String,
    /// Only Ingresses (and their Services, EndpointSlices, Secrets) in this namespace; empty
    /// for all namespaces.
    #[arg(long, default_value = "")]
    pub watch_namespace: String,
    /// Address the HTTP and HTTPS listeners bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen_address: String,
    /// Port of the plain HTTP listener (0 picks a free one).
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// Port of the HTTPS listener (0 picks a free one).
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Offer HTTP/2 to clients (ALPN on HTTPS, prior knowledge on HTTP); backends always get
    /// HTTP/1.1.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_http2: bool,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port of the /healthz, /readyz and /metrics endpoints; 0 disables.
    #[arg(long, default_value_t = 10254)]
    pub secure_port: u16,
    /// Addresses written to the Ingresses' status.loadBalancer.ingress (IPs or host names,
    /// comma-separated); default: this node's address. Give every replica the same list.
    #[arg(long, value_delimiter = ',')]
    pub publish_address: Vec<String>,
    /// Write status.loadBalancer of the Ingresses served (turn off on all replicas but one
    /// if they publish different addresses).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub update_status: bool,
    /// `namespace/name` of a kubernetes.io/tls Secret served to HTTPS clients no Ingress
    /// names a certificate for (default: a self-signed certificate made at start).
    #[arg(long)]
    pub default_ssl_certificate: Option<String>,
    /// How long a connect to an endpoint may take before the next endpoint is tried.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,
    /// How long to wait for a backend's response head.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub upstream_response_timeout: Duration,
    /// Endpoints tried per request: the round-robin pick, then others after connect failures.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub upstream_max_attempts: u32,
    /// How long an endpoint that refused a connect is tried only after the others.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub upstream_fail_timeout: Duration,
    /// Idle keep-alive connections kept per endpoint.
    #[arg(long, default_value_t = 128)]
    pub upstream_keepalive_connections: usize,
    /// How long an idle keep-alive connection to an endpoint is kept.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub upstream_keepalive_timeout: Duration,
    /// Keep clients' X-Forwarded-* headers (appending to X-Forwarded-For) rather than
    /// replacing them; only behind a trusted proxy.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub use_forwarded_headers: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_ingress=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        self.api.server()
    }

    /// `--watch-namespace` as an optional namespace.
    pub fn namespace(&self) -> Option<&str> {
        Some(self.watch_namespace.as_str()).filter(|n| !n.is_empty())
    }

    /// `--publish-address`, else this node's address.
    pub fn publish_addresses(&self) -> Vec<String> {
        let given: Vec<String> =
            self.publish_address.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if given.is_empty() { vec![rkube_daemon::node_address().to_string()] } else { given }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let c = Config::parse_from(["rkube-ingress"]);
        assert_eq!((c.http_port, c.https_port, c.secure_port), (80, 443, 10254));
        assert_eq!(c.ingress_class, "rkube");
        assert_eq!(c.controller_class, CONTROLLER_NAME);
        assert_eq!(c.namespace(), None);
        assert_eq!(c.publish_addresses().len(), 1);
        let c = Config::parse_from(["rkube-ingress", "--publish-address", "1.2.3.4,lb.example.com", "--http-port=0"]);
        assert_eq!(c.publish_addresses(), vec!["1.2.3.4", "lb.example.com"]);
        assert_eq!(c.http_port, 0);
        assert!(Config::try_parse_from(["rkube-ingress", "--upstream-max-attempts", "0"]).is_err());
    }

    #[test]
    fn the_example_config_file_loads() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/ingress.yaml");
        let c: Config = rkube_daemon::load_config_from(vec![
            "rkube-ingress".into(),
            "--config".into(),
            file.into(),
            "--secure-port=1".into(),
        ])
        .unwrap();
        assert_eq!(c.api.kubeconfig.as_deref(), Some(std::path::Path::new("/var/lib/rkube/ingress.kubeconfig")));
        assert_eq!(c.ingress_class, "rkube");
        assert_eq!(c.http_port, 80);
        assert_eq!(c.secure_port, 1, "the command line wins over the file");
    }
}
