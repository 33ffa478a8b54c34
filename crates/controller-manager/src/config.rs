//! Flags of rkube-controller-manager (kube-controller-manager's names where the meaning is the
//! same), each also settable from the YAML file named by `--config`.

use clap::Parser;
use rkube_daemon::parse_duration;
use std::time::Duration;

/// Command-line flags; every flag may also be a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-controller-manager", version, about = "rkube controller manager: keeps declared state true")]
pub struct Config {
    /// Where the API server is: `--config`, `--master`, `--kubeconfig`.
    #[command(flatten)]
    pub api: rkube_daemon::ApiServerFlags,
    /// Controllers to run: `*` for all, names to add, `-name` to leave one out
    /// (e.g. `*,-garbagecollector`).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Workers per controller (kube-controller-manager's --concurrent-*-syncs).
    #[arg(long, default_value_t = 5)]
    pub concurrent_syncs: usize,
    /// Run only while holding the leader Lease, so several replicas can stand by.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a Lease holds without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// Pause between attempts to acquire or renew the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the leader Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "kube-controller-manager")]
    pub leader_elect_resource_name: String,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port of the /healthz, /readyz and /metrics endpoints (plain HTTP until TLS lands); 0 disables.
    #[arg(long, default_value_t = 10257)]
    pub secure_port: u16,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_controller_manager=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// How long a node may go without a Lease renewal or Ready heartbeat before the node
    /// lifecycle controller marks it Unknown and taints it unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// Like `--node-monitor-grace-period`, for a node that has never posted a Ready condition.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// How often the node lifecycle controller re-checks every node's heartbeats.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// Most endpoints the EndpointSlice controller puts in one slice.
    #[arg(long, default_value_t = 100)]
    pub max_endpoints_per_slice: usize,
    /// How often each HorizontalPodAutoscaler is re-evaluated against its metrics.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// How far the usage ratio may stray from 1.0 before the HPA scales.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// Scale-down stabilization window of HPAs that set none.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples may still be start-up bursts.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// How long after a pod starts an unready pod counts as never having been ready.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
    /// Base URL of the metrics.k8s.io API the HPA reads (empty: the API server's own URL).
    #[arg(long, default_value = "")]
    pub metrics_api_url: String,
    /// PEM CA bundle the root-ca-cert-publisher puts into every namespace's ConfigMap
    /// `kube-root-ca.crt` (key `ca.crt`); without it that controller does not run.
    #[arg(long)]
    pub root_ca_file: Option<std::path::PathBuf>,
    /// PEM CA certificate the csrsigning controller issues certificates with; without it (and
    /// `--cluster-signing-key-file`) that controller does not run.
    #[arg(long)]
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// PEM (PKCS#8) private key of `--cluster-signing-cert-file`.
    #[arg(long)]
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    /// Longest lifetime of a certificate the csrsigning controller issues (a request's
    /// `expirationSeconds` may ask for less).
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub cluster_signing_duration: Duration,
}

impl Config {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        self.api.server()
    }

    /// Whether the controller `name` is enabled by `--controllers`.
    pub fn enabled(&self, name: &str) -> bool {
        let mut on = false;
        for c in &self.controllers {
            match c.as_str() {
                "*" => on = true,
                c if c.strip_prefix('-') == Some(name) => return false,
                c if c == name => on = true,
                _ => {}
            }
        }
        on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_selects_like_kube_controller_manager() {
        let c = Config::parse_from(["x"]);
        assert!(c.enabled("replicaset"));
        let c = Config::parse_from(["x", "--controllers=*,-garbagecollector"]);
        assert!(c.enabled("replicaset") && !c.enabled("garbagecollector"));
        let c = Config::parse_from(["x", "--controllers=deployment"]);
        assert!(c.enabled("deployment") && !c.enabled("replicaset"));
    }

    #[test]
    fn the_example_config_file_loads() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/controller-manager.yaml");
        let c: Config = rkube_daemon::load_config_from(vec!["x".into(), "--config".into(), file.into()]).unwrap();
        assert_eq!(
            c.api.kubeconfig.as_deref(),
            Some(std::path::Path::new("/var/lib/rkube/controller-manager.kubeconfig"))
        );
        assert_eq!(c.leader_elect_resource_name, "kube-controller-manager");
    }
}
