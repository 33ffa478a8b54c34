//! The kubelet API's webhook authorization (`--authorization-mode=Webhook`) on a secure
//! cluster: the API server reaches the kubelet with its kubelet client certificate
//! (`kube-apiserver-kubelet-client`, bound to `system:kubelet-api-admin`), so `kubectl logs`
//! works; any other certificate of the cluster CA is checked with a SubjectAccessReview on
//! `nodes/<subresource>`: 403 in the kubelet's words unless RBAC allows it, 401 without a
//! certificate, `/healthz` open.
//!
//! Build first: `cargo build -p rkube-apiserver -p rkube-kubelet --bins`.

mod support;

use rkube_testkit::images::BUSYBOX_IMAGE;
use rkube_testkit::{KubeletNode, TestPki};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::Env;

/// `curl` against the kubelet: (HTTP code, body). `cert` is a (cert, key) pair, if any.
fn curl(url: &str, ca: &Path, cert: Option<&(std::path::PathBuf, std::path::PathBuf)>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(ca);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn kubelet_api_requests_are_authorized_by_the_api_server() {
    let pki = TestPki::new().expect("pki");
    let ca = pki.paths.ca_cert.clone();
    let (api_cert, api_key) =
        pki.client_files(rkube_auth::rbac::KUBELET_API_CLIENT, &[]).expect("the API server's kubelet client pair");
    let (api_cert, api_key, ca_arg) =
        (api_cert.display().to_string(), api_key.display().to_string(), ca.display().to_string());
    let env = Env::start_secure(
        &pki,
        &[
            "--authorization-mode",
            "Node,RBAC",
            "--kubelet-client-certificate",
            &api_cert,
            "--kubelet-client-key",
            &api_key,
            "--kubelet-certificate-authority",
            &ca_arg,
        ],
    );
    let (serving_cert, serving_key) =
        pki.serving_files("kubelet-n1", &["127.0.0.1".parse().expect("ip")]).expect("serving pair");
    let (serving_cert, serving_key) = (serving_cert.display().to_string(), serving_key.display().to_string());
    let node = KubeletNode::start_secure(
        &env.api,
        &pki,
        "n1",
        &[
            "--tls-cert-file",
            &serving_cert,
            "--tls-private-key-file",
            &serving_key,
            "--client-ca-file",
            &ca_arg,
            "--authorization-mode",
            "Webhook",
        ],
    )
    .expect("kubelet starts");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talker\nspec:\n  nodeName: n1\n  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo hello-from-talker; exec sleep 100000']\n"
    );
    env.ok(&["apply", "-f", &env.manifest("talker.yaml", &pod)]);

    // The API server's own certificate is allowed: logs through the API server work.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let logs = env.run(&["logs", "talker"]);
        if logs.code == 0 && logs.stdout == "hello-from-talker\n" {
            break;
        }
        assert!(Instant::now() < deadline, "logs through the API server: {logs:?}\n{}", node.kubelet.log_tail());
        std::thread::sleep(Duration::from_millis(300));
    }

    let port = env.ok(&["get", "node", "n1", "-o", "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}"]);
    let base = format!("https://127.0.0.1:{}", port.trim());
    let logs_url = format!("{base}/containerLogs/default/talker/c");
    // Another certificate of the same CA is refused until RBAC says otherwise.
    let alice = pki.client_files("alice", &["devs"]).expect("alice's pair");
    let (code, body) = curl(&logs_url, &ca, Some(&alice));
    assert_eq!((code, body.as_str()), (403, "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)"));
    // A user granted nodes/proxy reads the logs straight from the kubelet, but not its stats.
    env.ok(&["create", "clusterrole", "node-proxy", "--verb=get", "--resource=nodes/proxy"]);
    env.ok(&["create", "clusterrolebinding", "bob-node-proxy", "--clusterrole=node-proxy", "--user=bob"]);
    let bob = pki.client_files("bob", &[]).expect("bob's pair");
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (code, body) = curl(&logs_url, &ca, Some(&bob));
        if code == 200 {
            assert_eq!(body, "hello-from-talker\n");
            break;
        }
        // Asked before the API server's RBAC cache has the binding, a refusal is cached for 30 s.
        assert!(Instant::now() < deadline && code == 403, "bob: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, body) = curl(&format!("{base}/stats/summary"), &ca, Some(&bob));
    assert_eq!((code, body.as_str()), (403, "Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)"));
    // No certificate: 401; /healthz stays open.
    assert_eq!(curl(&logs_url, &ca, None).0, 401);
    assert_eq!(curl(&format!("{base}/healthz"), &ca, None), (200, "ok".to_string()));
}
