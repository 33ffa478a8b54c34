//! One real node for tests: a testkit [`Containerd`] and an `rkube-kubelet` process registered
//! with a testkit API server, with its own root directory. Dropping it stops the kubelet, then
//! containerd (which removes the pods), then detaches any volume mount the kubelet left.

use crate::{ApiServer, Containerd, Daemon};
use std::path::PathBuf;

/// A kubelet on its own containerd.
pub struct KubeletNode {
    /// The kubelet process.
    pub kubelet: Daemon,
    containerd: Option<Containerd>,
    root: tempfile::TempDir,
    name: String,
}

impl KubeletNode {
    /// Starts containerd and a kubelet named `name` (address 127.0.0.1, a free API port) with
    /// `extra` flags, which win over the defaults.
    pub fn start(api: &ApiServer, name: &str, extra: &[&str]) -> anyhow::Result<KubeletNode> {
        let containerd = Containerd::start()?;
        let root = tempfile::Builder::new().prefix(&format!("rkube-node-{name}-")).tempdir()?;
        let root_dir = root.path().join("kubelet");
        let (endpoint, logs) = (containerd.endpoint(), containerd.logs_dir());
        // No hard eviction by default: a test must not fail because the machine running it is
        // short of disk. Eviction tests pass their own `--eviction-hard`, which wins.
        let mut args = vec![
            "--eviction-hard=",
            "--hostname-override",
            name,
            "--node-ip",
            "127.0.0.1",
            "--port",
            "0",
            "--container-runtime-endpoint",
            &endpoint,
        ];
        let (root_arg, logs_arg) = (root_dir.to_string_lossy().into_owned(), logs.to_string_lossy().into_owned());
        args.extend(["--root-dir", &root_arg, "--pod-logs-dir", &logs_arg]);
        args.extend_from_slice(extra);
        let kubelet = Daemon::start("rkube-kubelet", api, &args)?;
        Ok(KubeletNode { kubelet, containerd: Some(containerd), root, name: name.to_string() })
    }

    /// Like [`KubeletNode::start`] against a secure API server (`ApiServer::start_secure`):
    /// the kubelet authenticates with a client certificate of `system:node:<name>` in
    /// `system:nodes` from `pki`, as the Node authorizer expects.
    pub fn start_secure(
        api: &ApiServer,
        pki: &crate::TestPki,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<KubeletNode> {
        let kubeconfig = pki.kubeconfig(&api.url(), &format!("system:node:{name}"), &["system:nodes"])?;
        let kubeconfig = kubeconfig.to_string_lossy().into_owned();
        let mut args = vec!["--kubeconfig", kubeconfig.as_str()];
        args.extend_from_slice(extra);
        Self::start(api, name, &args)
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kubelet's `--root-dir` (pod volumes live under it).
    pub fn root_dir(&self) -> PathBuf {
        self.root.path().join("kubelet")
    }

    /// The node's containerd.
    pub fn containerd(&self) -> &Containerd {
        self.containerd.as_ref().expect("containerd runs until the node is dropped")
    }

    /// The node's containerd, to kill or restart it.
    pub fn containerd_mut(&mut self) -> &mut Containerd {
        self.containerd.as_mut().expect("containerd runs until the node is dropped")
    }
}

impl Drop for KubeletNode {
    fn drop(&mut self) {
        self.kubelet.kill();
        drop(self.containerd.take());
        crate::containerd::unmount_under(
            &std::fs::canonicalize(self.root.path()).unwrap_or_else(|_| self.root.path().to_path_buf()),
        );
    }
}
