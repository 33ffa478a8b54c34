//! Flags of rkube-kubelet (the kubelet's names where the meaning is the same), each also
//! settable from the YAML file named by `--config`.

use clap::Parser;
use rkube_daemon::parse_duration;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags; every flag may also be a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rkube-kubelet",
    version,
    about = "rkube kubelet: runs the pods bound to this node through containerd's CRI"
)]
pub struct Config {
    /// Where the API server is: `--config`, `--master`, `--kubeconfig`.
    #[command(flatten)]
    pub api: rkube_daemon::ApiServerFlags,
    /// Name of this node (default: the host name).
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The node's address, as reported in status.addresses (default: the first non-loopback IPv4).
    #[arg(long)]
    pub node_ip: Option<String>,
    /// containerd's CRI socket.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    pub container_runtime_endpoint: String,
    /// Directory for the kubelet's state: pod volumes under `pods/<uid>/volumes`.
    #[arg(long, default_value = "/var/lib/rkube/kubelet")]
    pub root_dir: PathBuf,
    /// Directory of container log files (`<ns>_<pod>_<uid>/<container>/<attempt>.log`).
    #[arg(long, default_value = "/var/log/pods")]
    pub pod_logs_dir: PathBuf,
    /// Address of the kubelet's API (logs, exec, attach, port-forward, stats).
    #[arg(long, default_value = "0.0.0.0")]
    pub address: String,
    /// Port of the kubelet's API: HTTPS with `--tls-cert-file`, else plain HTTP; 0 picks a free port.
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Serving TLS: `--tls-cert-file`, `--tls-private-key-file`, `--client-ca-file`.
    #[command(flatten)]
    pub tls: rkube_daemon::serve::TlsFlags,
    /// Who may use the kubelet API: `AlwaysAllow` (any client the TLS layer admits) or
    /// `Webhook` (SubjectAccessReviews on `nodes/<subresource>`; needs --client-ca-file).
    #[arg(long, value_parser = ["AlwaysAllow", "Webhook"], default_value = "AlwaysAllow")]
    pub authorization_mode: String,
    /// With `--authorization-mode=Webhook`, also accept bearer tokens (ServiceAccount tokens,
    /// say), authenticated by the API server with TokenReviews.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub authentication_token_webhook: bool,
    /// Port of /healthz, /readyz and /metrics; 0 disables.
    #[arg(long, alias = "secure-port", default_value_t = 10248)]
    pub healthz_port: u16,
    /// Cluster DNS server handed to pods with dnsPolicy ClusterFirst.
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    pub cluster_dns: Vec<String>,
    /// Cluster domain for pods' DNS search paths.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resolver configuration whose nameservers and search domains pods with dnsPolicy Default get.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Maximum number of pods on this node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Resources held back for the system, e.g. "cpu=100m,memory=256Mi".
    #[arg(long, default_value = "")]
    pub system_reserved: String,
    /// Resources held back for Kubernetes' own daemons, e.g. "cpu=100m,memory=256Mi".
    #[arg(long, default_value = "")]
    pub kube_reserved: String,
    /// Hard eviction thresholds, e.g. "memory.available<100Mi,nodefs.available<10%".
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    pub eviction_hard: String,
    /// Labels added to the Node at registration, e.g. "zone=a,disk=ssd".
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// Taints added to the Node at registration, e.g. "dedicated=gpu:NoSchedule".
    #[arg(long, default_value = "")]
    pub register_with_taints: String,
    /// How often node status is reported even when nothing changed.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub node_status_report_frequency: Duration,
    /// Duration of the node Lease in kube-node-lease, renewed every quarter of it.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: i32,
    /// Image pulls that may run at the same time.
    #[arg(long, default_value_t = 5)]
    pub max_parallel_image_pulls: usize,
    /// How often every pod is re-synced even without a change (probes have their own periods).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sync_frequency: Duration,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_kubelet=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        self.api.server()
    }

    /// This node's name: `--hostname-override`, else the host name, lower-cased.
    pub fn node_name(&self) -> String {
        self.hostname_override.clone().unwrap_or_else(crate::node::hostname).to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_file_loads() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/kubelet.yaml");
        let c: Config = rkube_daemon::load_config_from(vec!["x".into(), "--config".into(), file.into()]).unwrap();
        assert_eq!(c.api.kubeconfig.as_deref(), Some(std::path::Path::new("/var/lib/rkube/kubelet-node-1.kubeconfig")));
        assert_eq!(c.tls.client_ca_file.as_deref(), Some(std::path::Path::new("/var/lib/rkube/pki/ca.crt")));
        assert_eq!(c.node_name(), "node-1");
        assert_eq!(c.authorization_mode, "Webhook");
        assert!(c.authentication_token_webhook, "a boolean key in the file");
    }
}
