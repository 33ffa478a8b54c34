//! Joining nodes end to end on a secure cluster (TLS, Node+RBAC, bootstrap tokens) with a
//! controller-manager that approves and signs CSRs: `rkubectl cluster token create` ->
//! `rkubectl cluster join` -> the written kubeconfig is `system:node:<name>` (real kubectl
//! `auth whoami`) and a real kubelet with it brings its Node to Ready; a wrong CA hash fails
//! and writes nothing; unknown and expired tokens get 401.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-controller-manager -p rkube-kubelet`.

mod support;

use rkube_auth::pki::{self, CertificateAuthority};
use rkube_testkit::apiserver::bin_dir;
use rkube_testkit::{Daemon, KubeletNode, TestPki};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{Env, Out};

/// A secure API server with bootstrap tokens and a controller-manager running only the CSR
/// approver and signer with the cluster CA.
struct Cluster {
    env: Env,
    pki: TestPki,
    controllers: Daemon,
}

impl Cluster {
    fn start() -> Cluster {
        let pki = TestPki::new().unwrap();
        let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC", "--enable-bootstrap-token-auth"]);
        let admin = env.kubeconfig.display().to_string();
        let (cert, key) = (pki.paths.ca_cert.display().to_string(), pki.paths.ca_key.display().to_string());
        let controllers = Daemon::start(
            "rkube-controller-manager",
            &env.api,
            &[
                "--kubeconfig",
                &admin,
                "--leader-elect=false",
                "--controllers=csrapproving,csrsigning",
                "--cluster-signing-cert-file",
                &cert,
                "--cluster-signing-key-file",
                &key,
            ],
        )
        .expect("controller-manager starts");
        Cluster { env, pki, controllers }
    }

    fn logs(&self) -> String {
        format!("api server:\n{}\ncontroller-manager:\n{}", self.env.api.log_tail(), self.controllers.log_tail())
    }

    fn rkubectl(&self, args: &[&str]) -> Out {
        let binary = bin_dir().join("rkubectl");
        assert!(binary.exists(), "{} does not exist: run `cargo build -p rkubectl` first", binary.display());
        let mut cmd = Command::new(binary);
        cmd.arg("--kubeconfig").arg(&self.env.kubeconfig).args(args).env_remove("KUBECONFIG");
        self.env.run_command(cmd, &format!("rkubectl {args:?}"))
    }

    /// `cluster token create`: (token, CA hash) from the printed join line.
    fn token(&self) -> (String, String) {
        let ca = self.pki.paths.ca_cert.display().to_string();
        let out = self.rkubectl(&["cluster", "token", "create", "--ttl", "1h", "--ca-file", &ca]);
        assert_eq!(out.code, 0, "token create: {}\n{}\n{}", out.stdout, out.stderr, self.logs());
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        let after = |flag: &str| {
            let at = words.iter().position(|w| *w == flag).unwrap_or_else(|| panic!("{flag} in {:?}", out.stdout));
            words[at + 1].to_string()
        };
        assert!(out.stdout.starts_with(&format!("rkubectl cluster join {} ", self.env.api.url())), "{}", out.stdout);
        (after("--token"), after("--discovery-token-ca-cert-hash"))
    }

    fn join(&self, dir: &Path, token: &str, hash: &str, node: &str) -> Out {
        let dir = dir.display().to_string();
        let url = self.env.api.url();
        self.rkubectl(&[
            "cluster",
            "join",
            &url,
            "--token",
            token,
            "--discovery-token-ca-cert-hash",
            hash,
            "--node-name",
            node,
            "--node-ip",
            "127.0.0.1",
            "--dir",
            &dir,
            "--timeout",
            "30s",
        ])
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_node_joins_with_a_token_and_its_kubelet_becomes_ready() {
    let c = Cluster::start();
    let (token, hash) = c.token();
    assert_eq!(hash, pki::ca_cert_hash(c.pki.ca_pem()).unwrap());
    let secret = c.env.json(&["get", "secret", "-n", "kube-system", &format!("bootstrap-token-{}", &token[..6])]);
    assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");

    let dir = tempfile::tempdir().unwrap();
    let out = c.join(dir.path(), &token, &hash, "joiner");
    assert_eq!(out.code, 0, "join: {}\n{}\n{}", out.stdout, out.stderr, c.logs());
    let kubeconfig = dir.path().join("kubelet-joiner.kubeconfig");
    let (serving_cert, serving_key) =
        (dir.path().join("pki/kubelet-joiner.crt"), dir.path().join("pki/kubelet-joiner.key"));
    assert_eq!(std::fs::read_to_string(dir.path().join("pki/ca.crt")).unwrap(), c.pki.ca_pem());
    assert!(serving_cert.exists() && serving_key.exists(), "{}", out.stdout);
    use std::os::unix::fs::PermissionsExt as _;
    for secret_file in [&kubeconfig, &serving_key] {
        assert_eq!(std::fs::metadata(secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // The new identity, as the API server sees it.
    let who = c.env.run_as(&kubeconfig, &["auth", "whoami", "-o", "json"]);
    assert_eq!(who.code, 0, "{}\n{}", who.stderr, c.logs());
    let who: Value = serde_json::from_str(&who.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "system:node:joiner");
    let groups = who["status"]["userInfo"]["groups"].as_array().cloned().unwrap_or_default();
    assert!(groups.contains(&Value::from("system:nodes")), "{groups:?}");

    // Both CSRs: requested by the token user and then by the node, approved, issued.
    let csrs = c.env.json(&["get", "csr"]);
    let items = csrs["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{csrs}");
    for csr in &items {
        let conditions = csr["status"]["conditions"].as_array().cloned().unwrap_or_default();
        assert!(conditions.iter().any(|c| c["type"] == "Approved" && c["reason"] == "AutoApproved"), "{csr}");
        assert!(csr["status"]["certificate"].as_str().is_some_and(|s| !s.is_empty()), "{csr}");
        let expected_user = match csr["spec"]["signerName"].as_str() {
            Some("kubernetes.io/kube-apiserver-client-kubelet") => format!("system:bootstrap:{}", &token[..6]),
            Some("kubernetes.io/kubelet-serving") => "system:node:joiner".to_string(),
            other => panic!("unexpected signer {other:?}"),
        };
        assert_eq!(csr["spec"]["username"], expected_user.as_str());
    }
    // The status subresource cannot take the approval back, nor change the spec.
    let name = items[0]["metadata"]["name"].as_str().unwrap();
    let mut edited = items[0].clone();
    edited["status"]["conditions"] = Value::Array(vec![]);
    let path = c.env.manifest("csr.json", &edited.to_string());
    c.env.ok(&["replace", "--subresource=status", "-f", &path]);
    let after = c.env.json(&["get", "csr", name]);
    assert!(
        after["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Approved")),
        "{after}"
    );

    // A kubelet with the joined credentials and serving certificate brings its Node up.
    let cert = serving_cert.display().to_string();
    let key = serving_key.display().to_string();
    let config = kubeconfig.display().to_string();
    let node = KubeletNode::start(
        &c.env.api,
        "joiner",
        &["--kubeconfig", &config, "--tls-cert-file", &cert, "--tls-private-key-file", &key],
    )
    .expect("kubelet starts (cargo build -p rkube-kubelet)");
    c.env.until(
        &["get", "node", "joiner", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
        "node joiner Ready",
        Duration::from_secs(90),
        |o| o == "True",
        || format!("{}\nkubelet:\n{}", c.logs(), node.kubelet.log_tail()),
    );
}

#[test]
fn a_wrong_ca_hash_or_a_bad_token_fails_and_writes_nothing() {
    let c = Cluster::start();
    let (token, hash) = c.token();

    // Another CA's hash: the server is refused before the token is sent.
    let other = CertificateAuthority::generate("someone-else").unwrap();
    let wrong = pki::ca_cert_hash(other.cert_pem()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = c.join(dir.path(), &token, &wrong, "n1");
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("pinned hash") && out.stderr.contains(&wrong), "{}", out.stderr);
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());
    let malformed = c.join(dir.path(), &token, "sha256:1234", "n1");
    assert!(malformed.code != 0 && malformed.stderr.contains("64 hex digits"), "{}", malformed.stderr);

    // A token the cluster does not know: 401.
    let unknown = "abcdef.0123456789abcdef";
    let out = c.join(dir.path(), unknown, &hash, "n1");
    assert!(out.code != 0 && out.stderr.contains("401"), "{}\n{}", out.stderr, c.logs());
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());

    // An expired token: 401 as well.
    let expired = "zzzzzz.0123456789abcdef";
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bootstrap-token-zzzzzz", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {"token-id": "zzzzzz", "token-secret": "0123456789abcdef",
                       "usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z"},
    });
    c.env.ok(&["apply", "-f", &c.env.manifest("expired.json", &secret.to_string())]);
    let out = c.join(dir.path(), expired, &hash, "n1");
    assert!(out.code != 0 && out.stderr.contains("401"), "{}", out.stderr);
    assert_eq!(files_under(dir.path()), Vec::<PathBuf>::new());

    // The valid token still works afterwards (nothing above consumed it).
    let out = c.join(dir.path(), &token, &hash, "n1");
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, c.logs());
}
