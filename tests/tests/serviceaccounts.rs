//! ServiceAccount tokens end to end: the TokenRequest API over REST (real kubectl `create
//! token`), gRPC and its errors; the ServiceAccount admission's `kube-api-access-*` volume; and
//! with a real kubelet on a secure cluster, a pod reading its projected token and using it
//! against the API server until RBAC lets it in, and until the pod is deleted.

mod support;

use k8s_openapi::api::core::v1::ServiceAccount;
use rkube_auth::authn::{ServiceAccountClaims, ServiceAccountTokenVerifier};
use rkube_client::{Client, Kubeconfig};
use rkube_testkit::{Daemon, KubeletNode, TestPki, images};
use serde_json::{Value, json};
use std::time::Duration;
use support::Env;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn verify(pki: &TestPki, token: &str) -> ServiceAccountClaims {
    let public = std::fs::read_to_string(&pki.paths.sa_pub).unwrap();
    let verifier = ServiceAccountTokenVerifier::new(&public, ISSUER, vec![]).unwrap();
    verifier.verify(token.trim()).unwrap_or_else(|e| panic!("the token does not verify: {e}: {token}"))
}

/// Polls `f` until it returns true.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn whoami(env: &Env, pki: &TestPki, label: &str, token: &str) -> support::Out {
    let config = pki.token_kubeconfig(&env.api.url(), label, token.trim()).unwrap();
    env.run_as(&config, &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
}

#[test]
fn kubectl_create_token_issues_tokens_the_server_accepts_and_bound_tokens_die_with_their_pod() {
    let pki = TestPki::new().unwrap();
    let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC"]);
    env.ok(&["create", "namespace", "x"]);
    env.ok(&["create", "serviceaccount", "default", "-n", "x"]);
    let sa = env.json(&["get", "serviceaccount", "default", "-n", "x"]);
    let sa_uid = sa["metadata"]["uid"].as_str().unwrap().to_string();

    // kubectl create token: a JWT with the issuer's default audience and an hour to live.
    let token = env.ok(&["create", "token", "default", "-n", "x"]);
    let claims = verify(&pki, &token);
    assert_eq!(
        (claims.namespace.as_str(), claims.name.as_str(), claims.uid.as_str()),
        ("x", "default", sa_uid.as_str())
    );
    assert_eq!(claims.audiences, vec![ISSUER.to_string()]);
    assert_eq!(claims.pod, None);
    let lifetime = claims.expiration.as_second() - jiff::Timestamp::now().as_second();
    assert!((3500..=3600).contains(&lifetime), "lifetime {lifetime}");
    let out = whoami(&env, &pki, "x-default", &token);
    assert_eq!((out.code, out.stdout.as_str()), (0, "system:serviceaccount:x:default"), "{}", out.stderr);

    // Chosen audiences and lifetime.
    let token = env.ok(&["create", "token", "default", "-n", "x", "--audience=vault", "--duration=20m"]);
    let public = std::fs::read_to_string(&pki.paths.sa_pub).unwrap();
    let vault = ServiceAccountTokenVerifier::new(&public, ISSUER, vec!["vault".into()]).unwrap();
    let claims = vault.verify(token.trim()).unwrap();
    assert_eq!(claims.audiences, vec!["vault".to_string()]);
    let lifetime = claims.expiration.as_second() - jiff::Timestamp::now().as_second();
    assert!((1100..=1200).contains(&lifetime), "lifetime {lifetime}");
    assert!(ServiceAccountTokenVerifier::new(&public, ISSUER, vec![]).unwrap().verify(token.trim()).is_err());

    // Errors: a missing account is 404, a too short lifetime 422.
    let out = env.fails(&["create", "token", "missing", "-n", "x"]);
    assert!(out.stderr.contains("serviceaccounts \"missing\" not found"), "{}", out.stderr);
    let out = env.fails(&["create", "token", "default", "-n", "x", "--duration=5m"]);
    assert!(out.stderr.contains("may not specify a duration less than 10 minutes"), "{}", out.stderr);

    // A pod gets the kube-api-access volume mounted in every container (the admission).
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: x\nspec:\n  initContainers:\n  - {name: init, image: busybox}\n  containers:\n  - {name: a, image: busybox}\n  - {name: b, image: busybox}\n";
    env.ok(&["apply", "-f", &env.manifest("p.yaml", pod)]);
    let p = env.json(&["get", "pod", "p", "-n", "x"]);
    let volumes = p["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let volume = volumes[0]["name"].as_str().unwrap();
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(
        volumes[0]["projected"]["sources"],
        json!([
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ])
    );
    for list in ["initContainers", "containers"] {
        for c in p["spec"][list].as_array().unwrap() {
            assert_eq!(c["volumeMounts"], json!([{"name": volume, "readOnly": true, "mountPath": MOUNT}]), "{c}");
        }
    }
    // Opting out on the pod, or on its ServiceAccount, leaves the pod alone; an unknown
    // account is refused.
    let quiet = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quiet\n  namespace: x\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - {name: a, image: busybox}\n";
    env.ok(&["apply", "-f", &env.manifest("quiet.yaml", quiet)]);
    assert_eq!(env.json(&["get", "pod", "quiet", "-n", "x"])["spec"].get("volumes"), None);
    let robot = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: robot\n  namespace: x\nautomountServiceAccountToken: false\nimagePullSecrets:\n- name: regcred\n";
    env.ok(&["apply", "-f", &env.manifest("robot.yaml", robot)]);
    env.ok(&["run", "r", "-n", "x", "--image=busybox", "--overrides={\"spec\": {\"serviceAccountName\": \"robot\"}}"]);
    let r = env.json(&["get", "pod", "r", "-n", "x"]);
    assert_eq!(r["spec"].get("volumes"), None, "{r}");
    assert_eq!(r["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]), "the account's pull secrets are copied");
    let out = env.fails(&[
        "run",
        "n",
        "-n",
        "x",
        "--image=busybox",
        "--overrides={\"spec\": {\"serviceAccountName\": \"nobody\"}}",
    ]);
    assert!(out.stderr.contains("error looking up service account x/nobody"), "{}", out.stderr);

    // A token bound to the pod: the uid must match, and the token names the pod.
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let bound = ["create", "token", "default", "-n", "x", "--bound-object-kind=Pod", "--bound-object-name=p"];
    let wrong = [&bound[..], &["--bound-object-uid=0b1e2c3d-0000-4000-8000-000000000000"]].concat();
    let out = env.fails(&wrong);
    assert!(out.stderr.contains("does not match the UID in record"), "{}", out.stderr);
    let token = env.ok(&[&bound[..], &[format!("--bound-object-uid={uid}").as_str()]].concat());
    let claims = verify(&pki, &token);
    assert_eq!(claims.pod, Some(("p".to_string(), uid.clone())));
    assert_eq!(whoami(&env, &pki, "bound", &token).stdout, "system:serviceaccount:x:default");
    // The robot account cannot get a token bound to a pod running as `default`.
    let out = env.fails(&["create", "token", "robot", "-n", "x", "--bound-object-kind=Pod", "--bound-object-name=p"]);
    assert!(out.stderr.contains("different serviceaccount name"), "{}", out.stderr);

    // Deleting the pod revokes the bound token; the unbound one lives on.
    env.ok(&["delete", "pod", "p", "-n", "x", "--grace-period=0", "--force"]);
    until("the bound token to be refused", || whoami(&env, &pki, "bound", &token).stderr.contains("Unauthorized"));
    let unbound = env.ok(&["create", "token", "default", "-n", "x"]);
    assert_eq!(whoami(&env, &pki, "unbound", &unbound).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_over_grpc_and_a_server_without_a_signing_key() {
    let pki = TestPki::new().unwrap();
    let (env, pki) = tokio::task::spawn_blocking(move || (Env::start_secure(&pki, &[]), pki)).await.unwrap();
    let admin = Client::from_kubeconfig(&Kubeconfig::load(&env.kubeconfig, None).unwrap()).unwrap();
    let accounts = admin.api::<ServiceAccount>(Some("default"));
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    let sa = accounts.create(&sa).await.unwrap();
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["a", "b"], "expirationSeconds": 900}});
    let answer: Value = accounts.create_subresource("builder", "token", &request).await.unwrap();
    assert_eq!(
        (answer["kind"].as_str(), answer["apiVersion"].as_str()),
        (Some("TokenRequest"), Some("authentication.k8s.io/v1"))
    );
    assert_eq!(answer["spec"]["expirationSeconds"], 900);
    let token = answer["status"]["token"].as_str().unwrap();
    let public = std::fs::read_to_string(&pki.paths.sa_pub).unwrap();
    let claims = ServiceAccountTokenVerifier::new(&public, ISSUER, vec!["b".into()]).unwrap().verify(token).unwrap();
    assert_eq!(claims.uid, sa.metadata.uid.unwrap());
    let expires: jiff::Timestamp = answer["status"]["expirationTimestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires.as_second(), claims.expiration.as_second());
    let missing = accounts.create_subresource("nobody", "token", &request).await.unwrap_err();
    assert_eq!(missing.code(), Some(404), "{missing}");

    // Without --service-account-signing-key-file the subresource is not served, and pods are
    // admitted as they are.
    let plain = tokio::task::spawn_blocking(Env::start).await.unwrap();
    let client = Client::new(&plain.api.url()).unwrap();
    let accounts = client.api::<ServiceAccount>(Some("default"));
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    accounts.create(&sa).await.unwrap();
    let err = accounts.create_subresource("default", "token", &request).await.unwrap_err();
    assert_eq!(err.code(), Some(404), "{err}");
    let out = tokio::task::spawn_blocking(move || {
        let token = plain.run(&["create", "token", "default"]);
        plain.ok(&["run", "p", "--image=busybox"]);
        (token, plain.json(&["get", "pod", "p"]))
    })
    .await
    .unwrap();
    assert_ne!(out.0.code, 0);
    assert!(out.0.stderr.contains("NotFound") || out.0.stderr.contains("not find"), "{}", out.0.stderr);
    assert_eq!(out.1["spec"].get("volumes"), None, "{}", out.1);
}

/// A secure cluster with one real node: the controller-manager (ServiceAccount controller and
/// root CA publisher, as admin) and a kubelet with its node credentials; no scheduler, pods
/// name their node.
struct SecureNode {
    env: Env,
    pki: TestPki,
    controllers: Daemon,
    node: KubeletNode,
}

impl SecureNode {
    fn start() -> SecureNode {
        let pki = TestPki::new().unwrap();
        let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC"]);
        let admin = env.kubeconfig.display().to_string();
        let ca = pki.paths.ca_cert.display().to_string();
        let controllers = Daemon::start(
            "rkube-controller-manager",
            &env.api,
            &[
                "--kubeconfig",
                &admin,
                "--leader-elect=false",
                "--controllers=serviceaccount,root-ca-cert-publisher",
                "--root-ca-file",
                &ca,
            ],
        )
        .expect("controller-manager starts");
        let node = KubeletNode::start_secure(&env.api, &pki, "node-1", &[]).expect("kubelet starts");
        let c = SecureNode { env, pki, controllers, node };
        c.until(&["get", "nodes"], "node-1 Ready", |o| o.contains("node-1") && o.contains(" Ready"));
        c
    }

    fn logs(&self) -> String {
        format!(
            "api server:\n{}\nkubelet:\n{}\ncontroller-manager:\n{}",
            self.env.api.log_tail(),
            self.node.kubelet.log_tail(),
            self.controllers.log_tail()
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args);
        assert!(out.code == 0, "kubectl {args:?}: exit {}\n{}\n{}\n{}", out.code, out.stdout, out.stderr, self.logs());
        out.stdout
    }

    fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        self.env.until(args, what, Duration::from_secs(90), done, || self.logs())
    }
}

#[test]
fn a_pod_uses_its_projected_token_once_rbac_allows_it_and_not_after_it_is_deleted() {
    let c = SecureNode::start();
    c.ok(&["create", "namespace", "app"]);
    c.until(&["get", "serviceaccount", "default", "-n", "app", "-o", "name"], "the default account", |o| {
        o.trim() == "serviceaccount/default"
    });
    c.until(&["get", "configmap", "kube-root-ca.crt", "-n", "app", "-o", "name"], "the root CA", |o| {
        o.trim() == "configmap/kube-root-ca.crt"
    });
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: app\nspec:\n  nodeName: node-1\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n",
        images::BUSYBOX_IMAGE
    );
    c.ok(&["apply", "-f", &c.env.manifest("client.yaml", &pod)]);
    c.until(&["get", "pod", "client", "-n", "app", "-o", "jsonpath={.status.phase}"], "client Running", |o| {
        o == "Running"
    });
    let uid = c.ok(&["get", "pod", "client", "-n", "app", "-o", "jsonpath={.metadata.uid}"]);
    let node_uid = c.ok(&["get", "node", "node-1", "-o", "jsonpath={.metadata.uid}"]);

    // The three files, on tmpfs, readable by the container.
    let cat = |file: &str| c.ok(&["exec", "client", "-n", "app", "--", "cat", &format!("{MOUNT}/{file}")]);
    assert_eq!(cat("namespace"), "app");
    assert_eq!(cat("ca.crt"), c.pki.ca_pem());
    let token = cat("token");
    let claims = verify(&c.pki, &token);
    assert_eq!((claims.namespace.as_str(), claims.name.as_str()), ("app", "default"));
    assert_eq!(claims.pod, Some(("client".to_string(), uid.clone())));
    assert_eq!(claims.node, Some(("node-1".to_string(), node_uid)));
    let lifetime = claims.expiration.as_second() - jiff::Timestamp::now().as_second();
    assert!((3500..=3607).contains(&lifetime), "lifetime {lifetime}");
    let mounts = c.ok(&["exec", "client", "-n", "app", "--", "grep", MOUNT, "/proc/mounts"]);
    assert!(mounts.contains("tmpfs") && mounts.contains(" ro,"), "{mounts}");

    // As the pod: authenticated, but listing pods needs a binding.
    let config = c.pki.token_kubeconfig(&c.env.api.url(), "client", &token).unwrap();
    let out = c.env.run_as(&config, &["get", "pods", "-n", "app", "-o", "name"]);
    assert!(
        out.stderr.contains("User \"system:serviceaccount:app:default\" cannot list resource \"pods\""),
        "{}",
        out.stderr
    );
    c.ok(&["create", "rolebinding", "default-view", "-n", "app", "--clusterrole=view", "--serviceaccount=app:default"]);
    until("the RoleBinding to take effect", || {
        let out = c.env.run_as(&config, &["get", "pods", "-n", "app", "-o", "name"]);
        out.code == 0 && out.stdout.trim() == "pod/client"
    });

    // The token dies with its pod.
    c.ok(&["delete", "pod", "client", "-n", "app", "--timeout=60s"]);
    until("the pod's token to be refused", || {
        let out = c.env.run_as(&config, &["get", "pods", "-n", "app"]);
        out.code != 0 && out.stderr.contains("Unauthorized")
    });
    // Its volumes went with it, token and all.
    let volumes = c.node.root_dir().join("pods").join(&uid);
    until("the pod's volumes torn down", || !volumes.exists());
}
