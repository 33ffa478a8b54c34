//! Flags of rkube-apiserver, each also settable from a YAML config file (`--config`), with
//! kube-apiserver's names where the meaning is the same.

use clap::Parser;
use rkube_daemon::parse_duration;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags; every flag may also be given as a key of the `--config` file.
#[derive(Debug, Clone, Parser)]
#[command(name = "rkube-apiserver", version, about = "rkube API server: Kubernetes REST and gRPC API over etcd")]
pub struct Config {
    /// YAML file whose keys are these flags' long names (flags on the command line win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// etcd client URLs.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// CA bundle etcd's serving certificate is checked against (https etcd servers).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate presented to etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Private key of `--etcd-certfile`.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Key prefix of every object in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// How often etcd is compacted (history older than one interval is dropped); 0 disables.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// How long Events are kept after their last update (Kubernetes' default: 1h); 0 keeps
    /// them until deleted.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// tolerationSeconds of the not-ready NoExecute toleration every pod gets by default.
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the unreachable NoExecute toleration every pod gets by default.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port serving REST and gRPC: HTTPS with `--tls-cert-file`, else plain HTTP.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Serving TLS: `--tls-cert-file`, `--tls-private-key-file`, `--client-ca-file`.
    #[command(flatten)]
    pub tls: rkube_daemon::serve::TlsFlags,
    /// Authorizers asked in order, the first Allow or Deny deciding: AlwaysAllow, AlwaysDeny,
    /// Node (kubelets confined to their node), RBAC (members of system:masters always pass).
    #[arg(long, value_delimiter = ',', default_value = "AlwaysAllow")]
    pub authorization_mode: Vec<String>,
    /// Static bearer tokens, Kubernetes' CSV format: `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Whether requests without credentials run as system:anonymous (default: only when no
    /// authenticator is configured; otherwise they get 401, except /healthz, /livez, /readyz
    /// and /version, which are always open).
    #[arg(long)]
    pub anonymous_auth: Option<bool>,
    /// PEM keys ServiceAccount tokens are verified with (public keys, certificates or private keys).
    #[arg(long, value_delimiter = ',')]
    pub service_account_key_file: Vec<PathBuf>,
    /// PEM private key that signs ServiceAccount tokens (the TokenRequest API).
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `iss` of the ServiceAccount tokens this server issues and accepts.
    #[arg(long, default_value = "https://kubernetes.default.svc.cluster.local")]
    pub service_account_issuer: String,
    /// Audiences accepted in tokens (default: the issuer).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Accept bootstrap tokens (Secrets `bootstrap-token-<id>` in kube-system) for joining nodes.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub enable_bootstrap_token_auth: bool,
    /// Client certificate the server presents to kubelets; with it, kubelets are dialled over HTTPS.
    #[arg(long)]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Private key of `--kubelet-client-certificate`.
    #[arg(long)]
    pub kubelet_client_key: Option<PathBuf>,
    /// CA bundle the kubelets' serving certificates are checked against.
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// CIDR Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Port range Service node ports are allocated from.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// IP this server announces in the `kubernetes` Endpoints (default: the bind address, or
    /// 127.0.0.1 when bound to 0.0.0.0).
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// Largest accepted request body.
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Kubernetes `EncryptionConfiguration` file (apiserver.config.k8s.io/v1) naming the
    /// resources to encrypt in etcd and the keys (aesgcm or identity); read once at start.
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Bytes of recent events the watch cache keeps per resource.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub watch_cache_window_bytes: usize,
    /// Interval between watch bookmarks for watchers that allow them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub watch_bookmark_interval: Duration,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_apiserver=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["rkube-apiserver"])
    }
}

impl Config {
    /// Parses flags, reading the `--config` file's keys as flags (the command line wins).
    pub fn load() -> Result<Config, rkube_daemon::ConfigError> {
        rkube_daemon::load_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_keys_are_flag_names() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config/apiserver.yaml");
        let cfg: Config = rkube_daemon::load_config_from(vec![
            "rkube-apiserver".into(),
            "--config".into(),
            file.into(),
            "--secure-port=7443".into(),
        ])
        .unwrap();
        assert_eq!(cfg.etcd_servers, vec!["http://127.0.0.1:2379".to_string()]);
        assert_eq!(cfg.secure_port, 7443, "the command line wins over the file");
        assert_eq!(cfg.etcd_compaction_interval, Duration::from_secs(300));
        assert_eq!(cfg.watch_bookmark_interval, Duration::from_secs(10));
        assert_eq!(cfg.authorization_mode, vec!["Node".to_string(), "RBAC".to_string()]);
        assert!(cfg.enable_bootstrap_token_auth, "a boolean key in the file");
        assert_eq!(cfg.service_account_key_file, vec![PathBuf::from("/var/lib/rkube/pki/sa.pub")]);
        assert_eq!(cfg.tls.tls_cert_file.as_deref(), Some(std::path::Path::new("/var/lib/rkube/pki/apiserver.crt")));
        assert_eq!(cfg.encryption_provider_config, None, "the example leaves encryption commented out");
    }

    #[test]
    fn encryption_provider_config_is_settable_from_the_file() {
        let dir = std::env::temp_dir().join(format!("rkube-apiserver-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("apiserver.yaml");
        std::fs::write(&file, "encryption-provider-config: /etc/rkube/encryption.yaml\n").unwrap();
        let cfg: Config =
            rkube_daemon::load_config_from(vec!["rkube-apiserver".into(), "--config".into(), file.into()]).unwrap();
        assert_eq!(cfg.encryption_provider_config, Some(PathBuf::from("/etc/rkube/encryption.yaml")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
