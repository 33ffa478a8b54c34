//! Flags of rkube-scheduler (kube-scheduler's names where the meaning is the same), each also
//! settable from the YAML file named by `--config`.

use clap::Parser;
use rkube_daemon::parse_duration;
use std::time::Duration;

/// Command-line flags; every flag may also be a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-scheduler", version, about = "rkube scheduler: assigns pending pods to nodes")]
pub struct Config {
    /// Where the API server is: `--config`, `--master`, `--kubeconfig`.
    #[command(flatten)]
    pub api: rkube_daemon::ApiServerFlags,
    /// Pods whose spec.schedulerName is this are scheduled; others are left alone.
    #[arg(long, default_value = "default-scheduler")]
    pub scheduler_name: String,
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
    #[arg(long, default_value = "kube-scheduler")]
    pub leader_elect_resource_name: String,
    /// Percentage of nodes to find feasible before scoring; 0 is Kubernetes' adaptive default.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub percentage_of_nodes_to_score: u32,
    /// Address of the /healthz, /readyz and /metrics endpoints.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port of the /healthz, /readyz and /metrics endpoints (plain HTTP until TLS lands); 0 disables.
    #[arg(long, default_value_t = 10259)]
    pub secure_port: u16,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_scheduler=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        self.api.server()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kube_scheduler() {
        let c = Config::parse_from(["rkube-scheduler"]);
        assert_eq!(c.scheduler_name, "default-scheduler");
        assert!(c.leader_elect);
        assert_eq!(c.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(c.secure_port, 10259);
        let c = Config::parse_from(["rkube-scheduler", "--leader-elect=false", "--master", "http://a:1"]);
        assert!(!c.leader_elect);
        assert_eq!(c.server().unwrap(), "http://a:1");
        assert!(Config::try_parse_from(["rkube-scheduler", "--percentage-of-nodes-to-score", "101"]).is_err());
    }

    #[test]
    fn the_example_config_file_loads() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/scheduler.yaml");
        let c: Config = rkube_daemon::load_config_from(vec![
            "rkube-scheduler".into(),
            "--config".into(),
            file.into(),
            "--secure-port=1".into(),
        ])
        .unwrap();
        assert_eq!(c.api.kubeconfig.as_deref(), Some(std::path::Path::new("/var/lib/rkube/scheduler.kubeconfig")));
        assert_eq!(c.leader_elect_resource_name, "kube-scheduler");
        assert_eq!(c.secure_port, 1, "the command line wins over the file");
    }
}
