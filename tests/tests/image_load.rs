//! `rkubectl image load` end to end: real etcd, rkube-apiserver (TLS, Node,RBAC) and a real
//! rkube-kubelet on a real containerd. An archive goes rkubectl -> API server node proxy
//! (`/api/v1/nodes/N/proxy/images/load`, authorized as `create nodes/proxy`) -> kubelet ->
//! containerd's content and image stores, and a Pod with imagePullPolicy Never then runs it.
//! Bad archives are refused with a clear message and leave no image; users without
//! `nodes/proxy` are refused.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-kubelet --bins`.

mod support;

use rkube_testkit::images::{BUSYBOX_ARCHIVE, archive};
use rkube_testkit::{KubeletNode, TestPki};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::rkubectl::rkubectl_binary;
use support::{Env, Out};

const NODE: &str = "rk-image-node";

struct Cluster {
    env: Env,
    node: KubeletNode,
    pki: TestPki,
}

impl Cluster {
    fn rk_as(&self, kubeconfig: &Path, args: &[&str]) -> Out {
        let mut cmd = Command::new(rkubectl_binary());
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.env.dir.path().join("rk-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        self.env.run_command(cmd, &format!("rkubectl {args:?}"))
    }

    fn rk(&self, args: &[&str]) -> Out {
        self.rk_as(&self.env.kubeconfig, args)
    }

    fn images(&self) -> String {
        self.node.containerd().ctr(&["images", "ls", "-q"]).expect("ctr images ls")
    }

    fn wait(&self, what: &str, limit: Duration, done: impl FnMut() -> bool) {
        support::node::wait_on(&self.env, &self.node, what, limit, done);
    }
}

/// The busybox test image unpacked into `dir`, with index.json's ref.name set to `name`:
/// (the layout dir, the manifest digest).
fn unpacked(dir: &Path, name: &str) -> (PathBuf, String) {
    let layout = dir.join(name.replace(['/', ':'], "_"));
    std::fs::create_dir_all(&layout).expect("layout dir");
    let source = archive(BUSYBOX_ARCHIVE).expect("busybox archive");
    let ok = Command::new("tar").arg("-xf").arg(&source).arg("-C").arg(&layout).status().expect("tar -x");
    assert!(ok.success());
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).expect("index.json")).expect("JSON");
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = Value::from(name);
    std::fs::write(&index_path, serde_json::to_vec(&index).expect("JSON")).expect("index.json written");
    let digest = index["manifests"][0]["digest"].as_str().expect("digest").to_string();
    (layout, digest)
}

/// `layout` packed into `out` (a tar, gzip-compressed with `gzip`).
fn pack(layout: &Path, out: &Path, gzip: bool) -> PathBuf {
    let flag = if gzip { "-czf" } else { "-cf" };
    let ok = Command::new("tar")
        .arg("-C")
        .arg(layout)
        .arg(flag)
        .arg(out)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .expect("tar -c");
    assert!(ok.success());
    out.to_path_buf()
}

fn assert_refused(out: &Out, message: &str) {
    assert_eq!(out.code, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(out.stderr.contains(message), "stderr lacks {message:?}: {}", out.stderr);
}

#[test]
fn image_load_into_a_node_then_a_pod_runs_it() {
    let pki = TestPki::new().expect("pki");
    let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC"]);
    let node = KubeletNode::start_secure(&env.api, &pki, NODE, &[])
        .expect("kubelet starts (cargo build -p rkube-kubelet --bins)");
    let c = Cluster { env, node, pki };
    let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
    c.wait("the node to be Ready", Duration::from_secs(60), || {
        c.env.run(&["get", "node", NODE, "-o", ready]).stdout == "True"
    });

    // The node proxy reaches the kubelet.
    let healthz = format!("/api/v1/nodes/{NODE}/proxy/healthz");
    assert_eq!(c.env.ok(&["get", "--raw", &healthz]), "ok");

    // A renamed copy of the busybox archive: every node loads it, each image is printed.
    let work = c.env.dir.path().to_path_buf();
    let (layout, digest) = unpacked(&work, "docker.io/rkube/loaded:v1");
    let loaded = pack(&layout, &work.join("loaded.tar"), false);
    let out = c.rk(&["image", "load", loaded.to_str().expect("path")]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, format!("image \"docker.io/rkube/loaded:v1\" loaded on node {NODE} ({digest})\n").as_str(), ""),
        "kubelet log:\n{}",
        c.node.kubelet.log_tail()
    );
    assert!(c.images().lines().any(|l| l == "docker.io/rkube/loaded:v1"), "{}", c.images());

    // A pod that may not pull runs it.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: loaded\nspec:\n  nodeName: {NODE}\n  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: docker.io/rkube/loaded:v1\n    imagePullPolicy: Never\n    command: [\"sleep\", \"3600\"]\n"
    );
    let path = c.env.manifest("loaded.yaml", &pod);
    c.env.ok(&["apply", "-f", &path]);
    c.wait("the pod to run", Duration::from_secs(60), || {
        c.env.run(&["get", "pod", "loaded", "-o", "jsonpath={.status.phase}"]).stdout == "Running"
    });

    // gzip-compressed, named on the command line, to a named node.
    let gz = pack(&layout, &work.join("loaded.tar.gz"), true);
    let out = c.rk(&["image", "load", gz.to_str().expect("path"), "--node", NODE, "--name", "rkube/gz:v2"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("image \"docker.io/rkube/gz:v2\" loaded on node {NODE} ({digest})\n").as_str()),
        "{}",
        out.stderr
    );

    // A node that does not exist fails; the others still get the archive; exit 1.
    let out = c.rk(&["image", "load", loaded.to_str().expect("path"), "--node", "nosuch", "--node", NODE]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, format!("image \"docker.io/rkube/loaded:v1\" loaded on node {NODE} ({digest})\n"));
    assert_eq!(
        out.stderr,
        format!(
            "Error from server (NotFound): error when loading \"{}\" into node nosuch: nodes \"nosuch\" not found\n",
            loaded.display()
        )
    );

    // Bad archives: refused with a clear message, and containerd gets no new image.
    let before = c.images();
    let (layout, _) = unpacked(&work, "docker.io/rkube/truncated:v1");
    let whole = std::fs::read(pack(&layout, &work.join("whole.tar"), false)).expect("archive");
    let cut = work.join("truncated.tar");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("truncated archive");
    let out = c.rk(&["image", "load", cut.to_str().expect("path")]);
    assert_refused(
        &out,
        &format!(
            "Error from server (BadRequest): error when loading \"{}\" into node {NODE}: the archive is truncated",
            cut.display()
        ),
    );

    let (layout, _) = unpacked(&work, "docker.io/rkube/mismatch:v1");
    let config = std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("blobs")
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"{") && b.windows(6).any(|w| w == b"rootfs")))
        .expect("the config blob");
    let mut bytes = std::fs::read(&config).expect("config");
    let at = bytes.windows(5).position(|w| w == b"linux").expect("os in the config");
    bytes[at] = b'L';
    std::fs::write(&config, bytes).expect("config written");
    let mismatch = pack(&layout, &work.join("mismatch.tar"), false);
    let out = c.rk(&["image", "load", mismatch.to_str().expect("path")]);
    assert_refused(&out, "does not match its digest");
    assert_eq!(c.images(), before, "a refused archive changed the images");
    assert!(!c.images().contains("truncated") && !c.images().contains("mismatch"));

    let out = c.rk(&["image", "load", "/nonexistent.tar"]);
    assert_refused(&out, "error: the path \"/nonexistent.tar\" does not exist");

    // A user who may view but not proxy to nodes is refused, by rkubectl as by kubectl.
    let alice = c.pki.kubeconfig(&c.env.api.url(), "alice", &[]).expect("alice's kubeconfig");
    c.env.ok(&["create", "clusterrolebinding", "alice-view", "--clusterrole=view", "--user=alice"]);
    c.wait("alice's binding to take effect", Duration::from_secs(20), || {
        c.env.run_as(&alice, &["auth", "can-i", "list", "pods"]).code == 0
    });
    let out = c.rk_as(&alice, &["image", "load", loaded.to_str().expect("path"), "--node", NODE]);
    assert_refused(&out, "Error from server (Forbidden)");
    assert!(out.stderr.contains("nodes/proxy"), "{}", out.stderr);
    let out = c.env.run_as(&alice, &["get", "--raw", &healthz]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Forbidden"), "{}", out.stderr);
    // The admin may.
    assert_eq!(c.env.ok(&["auth", "can-i", "create", "nodes/proxy"]).trim(), "yes");
    assert_eq!(c.env.run_as(&alice, &["auth", "can-i", "create", "nodes/proxy"]).stdout.trim(), "no");
}
