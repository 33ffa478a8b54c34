//! A secure API server (HTTPS, client certificates, static and ServiceAccount tokens, the
//! Node and RBAC authorizers) driven by the real kubectl and rkube's gRPC client: who gets
//! 401, who gets 403 and with which message, and what a RoleBinding changes.

mod support;

use k8s_openapi::api::core::v1::{Node, Secret};
use rkube_auth::authn::{ServiceAccountClaims, ServiceAccountTokenSigner};
use rkube_client::{Client, Kubeconfig};
use rkube_testkit::TestPki;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::Env;

fn secure_env(pki: &TestPki, tokens: &Path) -> Env {
    let tokens = tokens.display().to_string();
    Env::start_secure(pki, &["--authorization-mode", "Node,RBAC", "--token-auth-file", &tokens])
}

fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tokens.csv");
    std::fs::write(&path, "bob-secret-token,bob,uid-bob,\"devs,qa\"\n").unwrap();
    path
}

/// Polls `f` until it returns true (RBAC changes reach the authorizer through the watch cache).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn anonymous_and_bad_credentials_get_401_and_the_unauthorized_get_403_naming_verb_and_resource() {
    let pki = TestPki::new().unwrap();
    let tokens = token_file(pki.dir());
    let env = secure_env(&pki, &tokens);
    let server = env.api.url();
    assert!(server.starts_with("https://"));

    // No credentials: 401 with a Kubernetes Status, except the public health and version paths.
    let (code, body) = env.api.get("/api/v1/namespaces/default/pods").unwrap();
    assert_eq!(code, 401, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status["kind"].as_str(), status["reason"].as_str()), (Some("Status"), Some("Unauthorized")));
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(env.api.get(path).unwrap().0, 200, "{path} is open to anyone");
    }
    // A token that matches nothing is a 401 too, never anonymous.
    let wrong = pki.token_kubeconfig(&server, "wrong", "not-a-token").unwrap();
    let out = env.run_as(&wrong, &["get", "pods"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("the server has asked for the client to provide credentials"), "{}", out.stderr);

    // The admin (system:masters) may do anything.
    env.ok(&["create", "namespace", "team"]);
    env.ok(&["create", "configmap", "settings", "-n", "team", "--from-literal=a=b"]);

    // A user with a valid certificate but no binding: 403 naming the verb and the resource.
    let alice = pki.kubeconfig(&server, "alice", &[]).unwrap();
    let out = env.run_as(&alice, &["get", "configmaps", "-n", "team"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Error from server (Forbidden): configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    let out = env.run_as(&alice, &["get", "nodes"]);
    assert!(
        out.stderr.contains("User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{}",
        out.stderr
    );
    assert_eq!(env.run_as(&alice, &["auth", "can-i", "list", "configmaps", "-n", "team"]).stdout.trim(), "no");

    // A RoleBinding to the default `view` ClusterRole lets her read that namespace only.
    env.ok(&["create", "rolebinding", "alice-view", "-n", "team", "--clusterrole=view", "--user=alice"]);
    until("alice's RoleBinding to take effect", || env.run_as(&alice, &["get", "configmaps", "-n", "team"]).code == 0);
    assert_eq!(env.run_as(&alice, &["auth", "can-i", "list", "configmaps", "-n", "team"]).stdout.trim(), "yes");
    assert_eq!(env.run_as(&alice, &["auth", "can-i", "delete", "configmaps", "-n", "team"]).stdout.trim(), "no");
    assert_eq!(env.run_as(&alice, &["auth", "can-i", "list", "configmaps", "-n", "default"]).stdout.trim(), "no");
    // `can-i --list` (SelfSubjectRulesReview) shows what the binding gave her there.
    let list = env.run_as(&alice, &["auth", "can-i", "--list", "-n", "team"]).stdout;
    let configmaps = list.lines().find(|l| l.starts_with("configmaps ")).unwrap_or_else(|| panic!("{list}"));
    assert!(configmaps.ends_with("[get list watch]"), "{configmaps}");
    assert!(
        list.lines().any(|l| l.contains("selfsubjectaccessreviews.authorization.k8s.io") && l.contains("[create]")),
        "{list}"
    );
    let out = env.run_as(&alice, &["delete", "configmap", "settings", "-n", "team"]);
    assert!(out.stderr.contains("cannot delete resource \"configmaps\""), "{}", out.stderr);

    // The static token authenticates bob with his groups; whoami shows what the server saw.
    let bob = pki.token_kubeconfig(&server, "bob", "bob-secret-token").unwrap();
    let whoami: Value = serde_json::from_str(&env.run_as(&bob, &["auth", "whoami", "-o", "json"]).stdout).unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "bob");
    let groups = whoami["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("devs") && groups.contains("qa") && groups.contains("system:authenticated"), "{groups}");
    // A group binding works for him.
    env.ok(&["create", "clusterrolebinding", "devs-view", "--clusterrole=view", "--group=devs"]);
    until("the devs ClusterRoleBinding to take effect", || env.run_as(&bob, &["get", "configmaps", "-A"]).code == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_reads_only_what_its_pods_use_and_a_service_account_token_needs_rbac() {
    let pki = TestPki::new().unwrap();
    let tokens = token_file(pki.dir());
    let env = tokio::task::spawn_blocking(move || (secure_env(&pki, &tokens), pki)).await.unwrap();
    let (env, pki) = env;
    let server = env.api.url();
    let admin = Client::from_kubeconfig(&Kubeconfig::load(&env.kubeconfig, None).unwrap()).unwrap();

    // Two secrets; a pod on node-1 uses only the first.
    for name in ["used", "unused"] {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"}, "stringData": {"k": "v"}}))
        .unwrap();
        admin.api::<Secret>(Some("default")).create(&secret).await.unwrap();
    }
    let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "node-1"}})).unwrap();
    admin.api::<Node>(None).create(&node).await.unwrap();
    let other: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": "node-2"}})).unwrap();
    admin.api::<Node>(None).create(&other).await.unwrap();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox",
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "used", "key": "k"}}}]}]},
    });
    admin
        .api::<k8s_openapi::api::core::v1::Pod>(Some("default"))
        .create(&serde_json::from_value(pod).unwrap())
        .await
        .unwrap();

    // The kubelet of node-1, over gRPC with its client certificate.
    let kubelet_config = pki.kubeconfig(&server, "system:node:node-1", &["system:nodes"]).unwrap();
    let kubelet = Client::from_kubeconfig(&Kubeconfig::load(&kubelet_config, None).unwrap()).unwrap();
    let secrets = kubelet.api::<Secret>(Some("default"));
    rkube_testkit::eventually(
        "node-1 may read the secret its pod uses",
        Duration::from_secs(20),
        String::new,
        || async { secrets.get("used").await.ok() },
    )
    .await;
    let denied = secrets.get("unused").await.unwrap_err();
    assert_eq!(denied.code(), Some(403), "{denied}");
    assert!(denied.to_string().contains("system:node:node-1"), "{denied}");
    // Its own Node's status yes, another node's no.
    let nodes = kubelet.api::<Node>(None);
    let mut mine = nodes.get("node-1").await.unwrap();
    mine.metadata.labels = Some([("kubelet".to_string(), "yes".to_string())].into());
    nodes.update(&mine).await.unwrap();
    let mut theirs = admin.api::<Node>(None).get("node-2").await.unwrap();
    theirs.metadata.labels = Some([("kubelet".to_string(), "no".to_string())].into());
    assert_eq!(nodes.update(&theirs).await.unwrap_err().code(), Some(403));

    // NodeRestriction: a kubelet creates only mirror pods, and only on itself.
    let pods = kubelet.api::<k8s_openapi::api::core::v1::Pod>(Some("default"));
    let pod_on = |name: &str, node: &str, mirror: bool, account: &str| -> k8s_openapi::api::core::v1::Pod {
        let mut pod = serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "serviceAccountName": account, "containers": [{"name": "c", "image": "busybox"}]},
        });
        if mirror {
            pod["metadata"]["annotations"] = serde_json::json!({"kubernetes.io/config.mirror": "x"});
        }
        serde_json::from_value(pod).unwrap()
    };
    let refused = pods.create(&pod_on("plain", "node-1", false, "default")).await.unwrap_err();
    assert_eq!(refused.code(), Some(403), "{refused}");
    assert!(refused.to_string().contains("can only create mirror pods"), "{refused}");
    let refused = pods.create(&pod_on("mirror-2", "node-2", true, "default")).await.unwrap_err();
    assert!(refused.to_string().contains("spec.nodeName set to itself"), "{refused}");
    pods.create(&pod_on("mirror-1", "node-1", true, "default")).await.expect("a mirror pod of its own");

    // A ServiceAccount token signed with the cluster's key: authenticated, but listing pods
    // needs a binding.
    let sa: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "reader", "namespace": "default"}})).unwrap();
    let sa = admin.api::<k8s_openapi::api::core::v1::ServiceAccount>(Some("default")).create(&sa).await.unwrap();
    // NodeRestriction on TokenRequest: node-1 runs a pod as `reader`, so it may ask for reader's
    // tokens, but not bound to a pod on node-2.
    let admin_pods = admin.api::<k8s_openapi::api::core::v1::Pod>(Some("default"));
    admin_pods.create(&pod_on("reader-here", "node-1", false, "reader")).await.unwrap();
    let elsewhere = admin_pods.create(&pod_on("reader-there", "node-2", false, "reader")).await.unwrap();
    let request = |pod: &str, uid: &str| {
        serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [], "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}}})
    };
    let accounts = kubelet.api::<k8s_openapi::api::core::v1::ServiceAccount>(Some("default"));
    let here = admin_pods.get("reader-here").await.unwrap();
    rkube_testkit::eventually(
        "node-1 may request reader's token for its own pod",
        Duration::from_secs(20),
        String::new,
        || async {
            accounts
                .create_subresource("reader", "token", &request("reader-here", here.metadata.uid.as_deref().unwrap()))
                .await
                .ok()
        },
    )
    .await;
    let refused = accounts
        .create_subresource("reader", "token", &request("reader-there", elsewhere.metadata.uid.as_deref().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(403), "{refused}");
    assert!(refused.to_string().contains("bound to pods scheduled on itself"), "{refused}");

    let signer = ServiceAccountTokenSigner::new(
        &std::fs::read_to_string(&pki.paths.sa_key).unwrap(),
        "https://kubernetes.default.svc.cluster.local",
    )
    .unwrap();
    let token = signer
        .issue(&ServiceAccountClaims {
            namespace: "default".into(),
            name: "reader".into(),
            uid: sa.metadata.uid.clone().unwrap(),
            pod: None,
            node: None,
            audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600),
            token_id: None,
        })
        .unwrap();
    let sa_config = pki.token_kubeconfig(&server, "reader", &token).unwrap();
    let as_sa = move |args: Vec<&'static str>| {
        let (kubectl, cache) = (env.kubectl.clone(), env.dir.path().join("kube-cache"));
        let sa_config = sa_config.clone();
        std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(sa_config)
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .output()
            .unwrap()
    };
    let out = as_sa(vec!["get", "pods", "-n", "default"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("User \"system:serviceaccount:default:reader\" cannot list resource \"pods\""), "{stderr}");
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader-view", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}],
    });
    admin
        .api::<k8s_openapi::api::rbac::v1::RoleBinding>(Some("default"))
        .create(&serde_json::from_value(binding).unwrap())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = as_sa(vec!["get", "pods", "-n", "default", "-o", "name"]);
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l == "pod/app"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the ServiceAccount's binding never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deleting the ServiceAccount revokes its tokens.
    admin
        .api::<k8s_openapi::api::core::v1::ServiceAccount>(Some("default"))
        .delete("reader", &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = as_sa(vec!["get", "pods", "-n", "default"]);
        if String::from_utf8_lossy(&out.stderr).contains("Unauthorized") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a deleted ServiceAccount's token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
