//! A control-plane or worker machine's daemon configuration: one `--config` YAML file per
//! daemon under `/etc/rkube` naming the files [`crate::init`] wrote, and the systemd units of
//! `deploy/systemd` (built in). Files that exist are kept, so an administrator's edits stay.

use crate::{ClusterFiles, ClusterOpsError, Result};
use std::path::{Path, PathBuf};

/// The systemd units, as shipped in `deploy/systemd`.
const UNITS: &[(&str, &str)] = &[
    ("rkube-apiserver.service", include_str!("../../../deploy/systemd/rkube-apiserver.service")),
    ("rkube-scheduler.service", include_str!("../../../deploy/systemd/rkube-scheduler.service")),
    ("rkube-controller-manager.service", include_str!("../../../deploy/systemd/rkube-controller-manager.service")),
    ("rkube-kubelet.service", include_str!("../../../deploy/systemd/rkube-kubelet.service")),
    ("rkube-proxy.service", include_str!("../../../deploy/systemd/rkube-proxy.service")),
    ("rkube-ingress.service", include_str!("../../../deploy/systemd/rkube-ingress.service")),
];

/// What a machine's daemons need to know beyond the cluster files.
#[derive(Debug, Clone)]
pub struct MachineOptions {
    /// Where the `--config` files go (`/etc/rkube`).
    pub config_dir: PathBuf,
    /// Where the systemd units go (`/etc/systemd/system`), if anywhere.
    pub units_dir: Option<PathBuf>,
    /// etcd client URLs for the API server.
    pub etcd_servers: Vec<String>,
    /// The address the API server announces in the `kubernetes` Endpoints.
    pub advertise_address: Option<String>,
    /// The node this machine runs a kubelet as, if any (its files must exist).
    pub node: Option<String>,
}

/// A YAML scalar for `s` (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn p(path: &Path) -> String {
    q(&path.display().to_string())
}

/// Writes the config files (and units) that are missing; returns the paths written.
pub fn write_machine_files(files: &ClusterFiles, options: &MachineOptions) -> Result<Vec<PathBuf>> {
    let pki = &files.pki;
    let (kubelet_client_cert, kubelet_client_key) = files.apiserver_kubelet_client();
    let etcd: Vec<String> = options.etcd_servers.iter().map(|e| q(e)).collect();
    let mut apiserver = format!(
        "# Written by `rkubectl cluster init`; edit freely, it is never overwritten.\n\
         etcd-servers: [{}]\nbind-address: 0.0.0.0\nsecure-port: 6443\n\
         tls-cert-file: {}\ntls-private-key-file: {}\nclient-ca-file: {}\n\
         service-account-key-file: [{}]\nservice-account-signing-key-file: {}\n\
         enable-bootstrap-token-auth: true\nauthorization-mode: [Node, RBAC]\n\
         kubelet-client-certificate: {}\nkubelet-client-key: {}\nkubelet-certificate-authority: {}\n",
        etcd.join(", "),
        p(&pki.apiserver_cert),
        p(&pki.apiserver_key),
        p(&pki.ca_cert),
        p(&pki.sa_pub),
        p(&pki.sa_key),
        p(&kubelet_client_cert),
        p(&kubelet_client_key),
        p(&pki.ca_cert),
    );
    if let Some(address) = &options.advertise_address {
        apiserver.push_str(&format!("advertise-address: {}\n", q(address)));
    }
    let with_kubeconfig = |daemon: &str, extra: &str| {
        format!(
            "# Written by `rkubectl cluster init`; edit freely, it is never overwritten.\nkubeconfig: {}\n{extra}",
            p(&files.kubeconfig(daemon))
        )
    };
    let mut configs = vec![
        ("apiserver.yaml", apiserver),
        ("scheduler.yaml", with_kubeconfig("scheduler", "")),
        (
            "controller-manager.yaml",
            with_kubeconfig(
                "controller-manager",
                &format!(
                    "root-ca-file: {}\ncluster-signing-cert-file: {}\ncluster-signing-key-file: {}\n",
                    p(&pki.ca_cert),
                    p(&pki.ca_cert),
                    p(&pki.ca_key)
                ),
            ),
        ),
        ("ingress.yaml", with_kubeconfig("ingress", "")),
    ];
    if let Some(node) = &options.node {
        let kubeconfig = files.node_kubeconfig(node);
        let (cert, key) = files.kubelet_serving(node);
        for needed in [&kubeconfig, &cert, &key] {
            if !needed.exists() {
                return Err(ClusterOpsError::Invalid(format!(
                    "node {node:?}: {} is missing (init with --node {node}=<ip>, or join first)",
                    needed.display()
                )));
            }
        }
        configs.push((
            "kubelet.yaml",
            format!(
                "# Written by `rkubectl cluster init`; edit freely, it is never overwritten.\n\
                 kubeconfig: {}\nhostname-override: {}\ntls-cert-file: {}\ntls-private-key-file: {}\n\
                 client-ca-file: {}\nauthorization-mode: Webhook\nauthentication-token-webhook: true\n\
                 container-runtime-endpoint: unix:///run/containerd/containerd.sock\n",
                p(&kubeconfig),
                q(node),
                p(&cert),
                p(&key),
                p(&pki.ca_cert)
            ),
        ));
        configs.push(("proxy.yaml", with_kubeconfig("proxy", &format!("hostname-override: {}\n", q(node)))));
    }
    let mut written = Vec::new();
    for (name, text) in configs {
        if let Some(path) = write_new(&options.config_dir, name, &text)? {
            written.push(path);
        }
    }
    if let Some(units_dir) = &options.units_dir {
        for (name, text) in UNITS {
            if let Some(path) = write_new(units_dir, name, text)? {
                written.push(path);
            }
        }
    }
    Ok(written)
}

/// Writes `dir/name` unless it exists; the path when written.
fn write_new(dir: &Path, name: &str, text: &str) -> Result<Option<PathBuf>> {
    let io = |path: &Path, source| ClusterOpsError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(name);
    if path.exists() {
        return Ok(None);
    }
    std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_load_as_the_daemons_flags_and_units_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::InitOptions {
            dir: dir.path().join("state"),
            server: "https://10.0.0.10:6443".into(),
            apiserver_dns_names: vec![],
            apiserver_ips: vec![],
            service_cidr: "10.96.0.0/12".into(),
            nodes: vec!["cp1=10.0.0.10".parse().unwrap()],
        };
        let files = crate::init(&options).unwrap();
        let machine = MachineOptions {
            config_dir: dir.path().join("etc"),
            units_dir: Some(dir.path().join("units")),
            etcd_servers: vec!["https://10.0.0.10:2379".into()],
            advertise_address: Some("10.0.0.10".into()),
            node: Some("cp1".into()),
        };
        let written = write_machine_files(&files, &machine).unwrap();
        assert_eq!(written.len(), 6 + UNITS.len());
        let load = |name: &str| -> Vec<std::ffi::OsString> {
            vec!["x".into(), "--config".into(), machine.config_dir.join(name).into()]
        };
        let api: rkube_apiserver::Config = rkube_daemon::load_config_from(load("apiserver.yaml")).unwrap();
        assert_eq!(api.tls.tls_cert_file.as_deref(), Some(files.pki.apiserver_cert.as_path()));
        assert_eq!(api.authorization_mode, vec!["Node".to_string(), "RBAC".to_string()]);
        assert!(api.enable_bootstrap_token_auth);
        assert_eq!(api.advertise_address.as_deref(), Some("10.0.0.10"));
        let kubelet: rkube_kubelet::Config = rkube_daemon::load_config_from(load("kubelet.yaml")).unwrap();
        assert_eq!(kubelet.node_name(), "cp1");
        assert_eq!(kubelet.authorization_mode, "Webhook");
        assert!(kubelet.authentication_token_webhook);
        assert_eq!(kubelet.api.kubeconfig.as_deref(), Some(files.node_kubeconfig("cp1").as_path()));
        let cm: rkube_controller_manager::config::Config =
            rkube_daemon::load_config_from(load("controller-manager.yaml")).unwrap();
        assert_eq!(cm.root_ca_file.as_deref(), Some(files.pki.ca_cert.as_path()));
        assert!(machine.units_dir.as_ref().unwrap().join("rkube-apiserver.service").exists());
        std::fs::write(machine.config_dir.join("scheduler.yaml"), "# mine\n").unwrap();
        assert!(write_machine_files(&files, &machine).unwrap().is_empty(), "nothing is overwritten");
        assert_eq!(std::fs::read_to_string(machine.config_dir.join("scheduler.yaml")).unwrap(), "# mine\n");
        let unknown = MachineOptions { node: Some("nobody".into()), ..machine };
        assert!(write_machine_files(&files, &unknown).unwrap_err().to_string().contains("nobody"));
    }
}
