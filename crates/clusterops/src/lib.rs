//! rkube-clusterops: the files a cluster's machines start from. [`init`] writes the cluster
//! PKI (CA, API server and ServiceAccount keys) and gives every daemon its own identity: a
//! client certificate in a kubeconfig (admin, scheduler, controller-manager, proxy, ingress,
//! one per node), kubelet serving certificates, and the API server's kubelet client
//! certificate. Running it again keeps everything that exists. [`join`] is the other side:
//! a new machine joining with a bootstrap token and a pinned CA hash (see [`mod@join`]).
//! [`write_machine_files`] gives a machine its daemons' config files and systemd units, and
//! [`daemons`] starts and stops them from those files.

pub mod daemons;
pub mod join;
pub mod machine;

pub use join::{CaHash, JoinOptions, Joined, bootstrap_token_secret, join, join_command};
pub use machine::{MachineOptions, write_machine_files};

use rkube_auth::pki::{self, CertificateAuthority, Credential, PkiOptions, PkiPaths};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why the cluster files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterOpsError {
    /// Generating or reading a certificate or key failed.
    #[error(transparent)]
    Pki(#[from] rkube_auth::AuthError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Result of cluster operations.
pub type Result<T, E = ClusterOpsError> = std::result::Result<T, E>;

/// One node of the cluster: its name and the addresses its kubelet serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The Node name (`system:node:<name>`).
    pub name: String,
    /// Addresses for the kubelet's serving certificate.
    pub addresses: Vec<IpAddr>,
}

impl std::str::FromStr for NodeSpec {
    type Err = ClusterOpsError;

    /// `name` or `name=ip[,ip...]`.
    fn from_str(s: &str) -> Result<NodeSpec> {
        let (name, ips) = s.split_once('=').unwrap_or((s, ""));
        if name.is_empty() {
            return Err(ClusterOpsError::Invalid(format!("node {s:?}: the name is empty")));
        }
        let addresses = ips
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|e| ClusterOpsError::Invalid(format!("node {s:?}: address {a:?}: {e}"))))
            .collect::<Result<_>>()?;
        Ok(NodeSpec { name: name.to_string(), addresses })
    }
}

/// What [`init`] needs to know about the cluster.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where the files go.
    pub dir: PathBuf,
    /// The API server URL the kubeconfigs name (`https://host:port`).
    pub server: String,
    /// Extra names and addresses of the API server certificate.
    pub apiserver_dns_names: Vec<String>,
    /// See `apiserver_dns_names`.
    pub apiserver_ips: Vec<IpAddr>,
    /// The Service CIDR (its first address is the `kubernetes` Service's).
    pub service_cidr: String,
    /// The nodes to write kubelet credentials for.
    pub nodes: Vec<NodeSpec>,
}

/// The daemons with a fixed identity: (kubeconfig file stem, user, groups).
const DAEMONS: &[(&str, &str, &[&str])] = &[
    ("admin", "kubernetes-admin", &["system:masters"]),
    ("scheduler", "system:kube-scheduler", &[]),
    ("controller-manager", "system:kube-controller-manager", &[]),
    ("proxy", "system:kube-proxy", &[]),
    ("ingress", "system:rkube-ingress", &[]),
];

/// Where [`init`] put things.
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    /// The PKI files.
    pub pki: PkiPaths,
    /// The directory of everything.
    pub dir: PathBuf,
}

impl ClusterFiles {
    /// The files under `dir`.
    pub fn in_dir(dir: &Path) -> ClusterFiles {
        ClusterFiles { pki: PkiPaths::in_dir(&dir.join("pki")), dir: dir.to_path_buf() }
    }

    /// The kubeconfig of a daemon (`admin`, `scheduler`, ...).
    pub fn kubeconfig(&self, daemon: &str) -> PathBuf {
        self.dir.join(format!("{daemon}.kubeconfig"))
    }

    /// The kubeconfig of node `name`'s kubelet.
    pub fn node_kubeconfig(&self, name: &str) -> PathBuf {
        self.dir.join(format!("kubelet-{name}.kubeconfig"))
    }

    /// The serving certificate and key of node `name`'s kubelet.
    pub fn kubelet_serving(&self, name: &str) -> (PathBuf, PathBuf) {
        let pki = self.dir.join("pki");
        (pki.join(format!("kubelet-{name}.crt")), pki.join(format!("kubelet-{name}.key")))
    }

    /// The client certificate and key of an identity (`admin`, `scheduler`, ...).
    pub fn client_files(&self, stem: &str) -> (PathBuf, PathBuf) {
        let pki = self.dir.join("pki");
        (pki.join(format!("{stem}.crt")), pki.join(format!("{stem}.key")))
    }

    /// The API server's client certificate and key towards kubelets.
    pub fn apiserver_kubelet_client(&self) -> (PathBuf, PathBuf) {
        let pki = self.dir.join("pki");
        (pki.join("apiserver-kubelet-client.crt"), pki.join("apiserver-kubelet-client.key"))
    }
}

/// Writes whatever of the cluster's files is missing (see the crate docs).
pub fn init(options: &InitOptions) -> Result<ClusterFiles> {
    if !options.server.starts_with("https://") {
        return Err(ClusterOpsError::Invalid(format!("the server {:?} must be an https:// URL", options.server)));
    }
    let files = ClusterFiles::in_dir(&options.dir);
    let pki_options = PkiOptions {
        ca_common_name: "rkube-ca".into(),
        apiserver_dns_names: options.apiserver_dns_names.clone(),
        apiserver_ips: options.apiserver_ips.clone(),
        service_ip: pki::first_service_ip(&options.service_cidr)?,
    };
    let paths = pki::write_pki(&options.dir.join("pki"), &pki_options)?;
    let ca = CertificateAuthority::from_pem(&read(&paths.ca_cert)?, &read(&paths.ca_key)?)?;

    for (stem, user, groups) in DAEMONS {
        client_kubeconfig(&ca, &options.server, &files.kubeconfig(stem), files.client_files(stem), user, groups)?;
    }
    let (cert, key) = files.apiserver_kubelet_client();
    if !cert.exists() || !key.exists() {
        let pair = ca.issue_client(rkube_auth::rbac::KUBELET_API_CLIENT, &[])?;
        write(&key, &pair.key_pem, 0o600)?;
        write(&cert, &pair.cert_pem, 0o644)?;
    }
    for node in &options.nodes {
        let user = format!("system:node:{}", node.name);
        let stem = format!("kubelet-{}-client", node.name);
        let kubeconfig = files.node_kubeconfig(&node.name);
        client_kubeconfig(&ca, &options.server, &kubeconfig, files.client_files(&stem), &user, &["system:nodes"])?;
        let (cert, key) = files.kubelet_serving(&node.name);
        if !cert.exists() || !key.exists() {
            let pair = ca.issue_serving(&node.name, std::slice::from_ref(&node.name), &node.addresses)?;
            write(&key, &pair.key_pem, 0o600)?;
            write(&cert, &pair.cert_pem, 0o644)?;
        }
    }
    tracing::info!(dir = %options.dir.display(), nodes = options.nodes.len(), "cluster files in place");
    Ok(files)
}

/// A client certificate for `user` in `groups` at `<dir>/pki/<stem>.{crt,key}` (for tools
/// like curl) and a kubeconfig at `path` embedding it, unless the kubeconfig exists.
fn client_kubeconfig(
    ca: &CertificateAuthority,
    server: &str,
    path: &Path,
    (cert_path, key_path): (PathBuf, PathBuf),
    user: &str,
    groups: &[&str],
) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let pair = ca.issue_client(user, &groups)?;
    write(&key_path, &pair.key_pem, 0o600)?;
    write(&cert_path, &pair.cert_pem, 0o644)?;
    let credential = Credential::ClientCert { cert_pem: pair.cert_pem, key_pem: pair.key_pem };
    write(path, &pki::kubeconfig_yaml("rkube", server, ca.cert_pem(), user, &credential, None), 0o600)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ClusterOpsError::Io { path: path.display().to_string(), source })
}

/// Writes `text` to a new file with `mode` (keys are 0600 from the start, never readable by others).
fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ClusterOpsError::Io { path: path.display().to_string(), source };
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> InitOptions {
        InitOptions {
            dir: dir.to_path_buf(),
            server: "https://127.0.0.1:6443".into(),
            apiserver_dns_names: vec![],
            apiserver_ips: vec![],
            service_cidr: "10.96.0.0/12".into(),
            nodes: vec!["n1=10.0.0.5".parse().unwrap()],
        }
    }

    #[test]
    fn init_writes_every_identity_once_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = init(&options(dir.path())).unwrap();
        for daemon in ["admin", "scheduler", "controller-manager", "proxy", "ingress"] {
            let config = rkube_client::Kubeconfig::load(&files.kubeconfig(daemon), None).unwrap();
            assert_eq!(config.server, "https://127.0.0.1:6443");
            assert!(config.certificate_authority.is_some() && config.client_certificate.is_some(), "{daemon}");
        }
        let node = files.node_kubeconfig("n1");
        let before = std::fs::read(&node).unwrap();
        let (cert, key) = files.kubelet_serving("n1");
        assert!(cert.exists() && key.exists());
        let (admin_cert, admin_key) = files.client_files("admin");
        assert!(admin_cert.exists() && admin_key.exists(), "tools like curl get the admin certificate as files");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&node).unwrap().permissions().mode() & 0o777, 0o600);
        init(&options(dir.path())).unwrap();
        assert_eq!(std::fs::read(&node).unwrap(), before, "a second init rotates nothing");
    }

    #[test]
    fn bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options(dir.path());
        o.server = "http://x".into();
        assert!(init(&o).unwrap_err().to_string().contains("https://"));
        assert!("=1.2.3.4".parse::<NodeSpec>().is_err());
        assert!("n=1.2.3".parse::<NodeSpec>().unwrap_err().to_string().contains("1.2.3"));
        assert!("n".parse::<NodeSpec>().unwrap().addresses.is_empty());
    }
}
