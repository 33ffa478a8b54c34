//! The kubelet API's webhook authorization (`--authorization-mode=Webhook`) on a secure
//! cluster: the API server reaches the kubelet with its kubelet client certificate
//! (`kube-apiserver-kubelet-client`, bound to `system:kubelet-api-admin`), so `kubectl logs`
//! works; any other certificate of the cluster CA is checked with a SubjectAccessReview on
//! `nodes/<subresource>`: 403 in the kubelet's words unless RBAC allows it; ServiceAccount
//! tokens are authenticated by TokenReview (`--authentication-token-webhook`) and authorized
//! the same way; 401 without a credential, `/healthz` open.
//!
//! Build first: `cargo build -p rkube-apiserver -p rkube-kubelet --bins`.

mod support;

use rkube_testkit::images::BUSYBOX_IMAGE;
use rkube_testkit::{KubeletNode, TestPki};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::Env;

/// The credential a request to the kubelet carries.
enum Credential<'a> {
    None,
    /// A client certificate and key.
    Certificate(&'a (PathBuf, PathBuf)),
    /// A bearer token.
    Token(&'a str),
}

/// `curl` against the kubelet: (HTTP code, body).
fn curl(url: &str, ca: &Path, credential: Credential) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(ca);
    match credential {
        Credential::None => {}
        Credential::Certificate((c, k)) => {
            cmd.arg("--cert").arg(c).arg("--key").arg(k);
        }
        Credential::Token(t) => {
            cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
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
            "--authentication-token-webhook",
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
    let (code, body) = curl(&logs_url, &ca, Credential::Certificate(&alice));
    assert_eq!((code, body.as_str()), (403, "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)"));
    // A user granted nodes/proxy reads the logs straight from the kubelet, but not its stats.
    env.ok(&["create", "clusterrole", "node-proxy", "--verb=get", "--resource=nodes/proxy"]);
    env.ok(&["create", "clusterrolebinding", "bob-node-proxy", "--clusterrole=node-proxy", "--user=bob"]);
    let bob = pki.client_files("bob", &[]).expect("bob's pair");
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (code, body) = curl(&logs_url, &ca, Credential::Certificate(&bob));
        if code == 200 {
            assert_eq!(body, "hello-from-talker\n");
            break;
        }
        // Asked before the API server's RBAC cache has the binding, a refusal is cached for 30 s.
        assert!(Instant::now() < deadline && code == 403, "bob: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, body) = curl(&format!("{base}/stats/summary"), &ca, Credential::Certificate(&bob));
    assert_eq!((code, body.as_str()), (403, "Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)"));
    // ServiceAccount tokens (--authentication-token-webhook): the bound one reads the logs, an
    // unbound one is refused by name, a made-up token is not authenticated.
    env.ok(&["create", "serviceaccount", "scraper"]);
    env.ok(&["create", "serviceaccount", "nobody"]);
    env.ok(&[
        "create",
        "clusterrolebinding",
        "scraper",
        "--clusterrole=node-proxy",
        "--serviceaccount=default:scraper",
    ]);
    let scraper = env.ok(&["create", "token", "scraper"]);
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (code, body) = curl(&logs_url, &ca, Credential::Token(scraper.trim()));
        if code == 200 {
            assert_eq!(body, "hello-from-talker\n");
            break;
        }
        assert!(Instant::now() < deadline && code == 403, "scraper: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The same reviews over REST, as `kubectl create --raw` sends them.
    let review = env.manifest(
        "tokenreview.json",
        &format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{}"}}}}"#,
            scraper.trim()
        ),
    );
    let answer = env.ok(&["create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews", "-f", &review]);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("a TokenReview");
    assert_eq!(answer["status"]["user"]["username"], "system:serviceaccount:default:scraper", "{answer}");
    assert!(answer["spec"]["token"].is_null(), "the token is not echoed: {answer}");
    let access = env.manifest(
        "sar.json",
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"get","resource":"nodes","subresource":"stats","name":"n1"}}}"#,
    );
    let answer = env.ok(&["create", "--raw", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "-f", &access]);
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("a SubjectAccessReview");
    assert_eq!(answer["status"]["allowed"], false, "{answer}");
    let nobody = env.ok(&["create", "token", "nobody"]);
    let (code, body) = curl(&logs_url, &ca, Credential::Token(nobody.trim()));
    assert_eq!(
        (code, body.as_str()),
        (403, "Forbidden (user=system:serviceaccount:default:nobody, verb=get, resource=nodes, subresource=proxy)")
    );
    assert_eq!(curl(&logs_url, &ca, Credential::Token("made-up")).0, 401);
    // No credential: 401; /healthz stays open.
    assert_eq!(curl(&logs_url, &ca, Credential::None).0, 401);
    assert_eq!(curl(&format!("{base}/healthz"), &ca, Credential::None), (200, "ok".to_string()));
}
