//! End-to-end tests of the kubectl verbs that touch only API objects, with the real kubectl
//! v1.33 against a real etcd and rkube-apiserver, and no `--validate=false`: kubectl validates
//! through the served OpenAPI documents. Commands are expected to print nothing on stderr.

mod support;

use serde_json::Value;
use support::*;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: prod
"#;

fn shop(env: &Env) {
    env.clean(&["create", "namespace", "shop"]);
}

#[test]
fn create_shortcuts_send_protobuf() {
    let env = Env::start();
    assert_eq!(env.clean(&["create", "namespace", "shop"]).trim(), "namespace/shop created");
    assert_eq!(env.stored("/api/v1/namespaces/shop")["status"]["phase"], "Active");

    env.clean(&["create", "configmap", "cfg", "-n", "shop", "--from-literal=color=blue", "--from-literal=size=10"]);
    let cm = env.stored("/api/v1/namespaces/shop/configmaps/cfg");
    assert_eq!(cm["data"], serde_json::json!({"color": "blue", "size": "10"}));

    env.clean(&["create", "secret", "generic", "creds", "-n", "shop", "--from-literal=password=s3cret"]);
    let secret = env.stored("/api/v1/namespaces/shop/secrets/creds");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"]["password"], "czNjcmV0", "bytes survive protobuf as base64");

    assert_eq!(
        env.clean(&["create", "deployment", "web", "-n", "shop", "--image=nginx:1.27", "--replicas=3", "--port=80"]).trim(),
        "deployment.apps/web created"
    );
    let deploy = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
    assert_eq!(deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%", "IntOrString defaulted");
    assert!(deploy["spec"]["template"]["spec"]["containers"][0].get("stdin").is_none(), "Go zero values are not stored: {deploy}");

    env.clean(&["create", "job", "once", "-n", "shop", "--image=busybox", "--", "true"]);
    let job = env.stored("/apis/batch/v1/namespaces/shop/jobs/once");
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["command"], serde_json::json!(["true"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    // Zero replicas is an explicit value, not an absent one.
    env.clean(&["create", "deployment", "idle", "-n", "shop", "--image=nginx:1.27", "--replicas=0"]);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/idle")["spec"]["replicas"], 0);
}

#[test]
fn get_prints_kubernetes_columns() {
    let env = Env::start();
    shop(&env);
    env.clean(&["apply", "-f", &env.manifest("deploy.yaml", DEPLOYMENT)]);
    env.clean(&["create", "service", "clusterip", "web", "-n", "shop", "--tcp=80:8080"]);

    let out = env.clean(&["get", "deployments", "-n", "shop"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "{out}");
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["web", "0/2", "0", "0"], "{out}");

    let wide = env.clean(&["get", "deploy", "-n", "shop", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("CONTAINERS   IMAGES       SELECTOR"), "{wide}");
    assert!(wide.contains("nginx:1.27") && wide.contains("app=web"), "{wide}");

    let svc = env.clean(&["get", "svc", "-n", "shop"]);
    assert!(svc.starts_with("NAME   TYPE        CLUSTER-IP"), "{svc}");
    assert!(svc.contains("80/TCP"), "{svc}");
    let cluster_ip = svc.lines().nth(1).unwrap().split_whitespace().nth(2).unwrap();
    assert!(cluster_ip.starts_with("10.") && cluster_ip != "10.96.0.1", "a ClusterIP from 10.96.0.0/12: {svc}");
    let np = env.clean(&["create", "service", "nodeport", "edge", "-n", "shop", "--tcp=80:8080"]);
    assert!(np.contains("service/edge created"), "{np}");
    let port = env.clean(&["get", "svc", "edge", "-n", "shop", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("a node port: {port:?}"));
    assert!((30000..=32767).contains(&port), "{port}");
    let kubernetes = env.clean(&["get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(kubernetes, "10.96.0.1");

    let all = env.clean(&["get", "all", "-n", "shop"]);
    assert!(all.contains("deployment.apps/web") && all.contains("service/web"), "{all}");

    let described = env.clean(&["describe", "deployment", "web", "-n", "shop"]);
    assert!(described.contains("Replicas:               2 desired"), "{described}");
    assert!(described.lines().any(|l| l.trim_start().starts_with("Image:") && l.contains("nginx:1.27")), "{described}");

    let names = env.clean(&["get", "deploy", "-n", "shop", "--no-headers", "-o", "custom-columns=N:.metadata.name"]);
    assert_eq!(names.trim(), "web");
    let raw: Value = serde_json::from_str(&env.clean(&["get", "--raw", "/apis/apps/v1/namespaces/shop/deployments/web"])).unwrap();
    assert_eq!(raw["spec"]["replicas"], 2);
}

#[test]
fn apply_client_side_is_idempotent() {
    let env = Env::start();
    shop(&env);
    let path = env.manifest("deploy.yaml", DEPLOYMENT);
    assert_eq!(env.clean(&["apply", "-f", &path]).trim(), "deployment.apps/web created");
    let first = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert!(first["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

    assert_eq!(env.clean(&["apply", "-f", &path]).trim(), "deployment.apps/web unchanged");
    assert_eq!(rv(&env.stored("/apis/apps/v1/namespaces/shop/deployments/web")), rv(&first), "re-apply wrote nothing");

    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 4").replace("value: prod", "value: staging");
    assert_eq!(env.clean(&["apply", "-f", &env.manifest("deploy2.yaml", &changed)]).trim(), "deployment.apps/web configured");
    let second = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!(second["spec"]["replicas"], 4);
    assert_eq!(second["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "staging");
    assert_eq!(second["metadata"]["generation"], 2);

    // diff shows what apply would change, exit code 1 when there are differences.
    let diff = env.run(&["diff", "-f", &path]);
    assert_eq!(diff.code, 1, "stdout: {}\nstderr: {}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("-  replicas: 4") && diff.stdout.contains("+  replicas: 2"), "{}", diff.stdout);
    let same = env.run(&["diff", "-f", &env.manifest("deploy3.yaml", &changed)]);
    assert_eq!(same.code, 0, "no diff expected: {} {}", same.stdout, same.stderr);
}

#[test]
fn apply_server_side_owns_fields_and_reports_conflicts() {
    let env = Env::start();
    shop(&env);
    let path = env.manifest("deploy.yaml", DEPLOYMENT);
    assert_eq!(env.clean(&["apply", "--server-side", "-f", &path]).trim(), "deployment.apps/web serverside-applied");
    let first = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    let managed = first["metadata"]["managedFields"].as_array().expect("managedFields");
    let entry = managed.iter().find(|m| m["manager"] == "kubectl").expect("kubectl's entry");
    assert_eq!(entry["operation"], "Apply");
    assert!(entry["fieldsV1"]["f:spec"]["f:replicas"].is_object(), "{entry}");
    assert!(entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"].is_object(), "{entry}");

    env.clean(&["apply", "--server-side", "-f", &path]);
    assert_eq!(rv(&env.stored("/apis/apps/v1/namespaces/shop/deployments/web")), rv(&first), "re-apply wrote nothing");

    assert_eq!(env.clean(&["scale", "deployment/web", "-n", "shop", "--replicas=5"]).trim(), "deployment.apps/web scaled");
    let conflict = env.fails(&["apply", "--server-side", "-f", &path]);
    assert!(conflict.stderr.contains("Apply failed with 1 conflict") && conflict.stderr.contains(".spec.replicas"), "{}", conflict.stderr);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/web")["spec"]["replicas"], 5);

    env.clean(&["apply", "--server-side", "--force-conflicts", "-f", &path]);
    let forced = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!(forced["spec"]["replicas"], 2);

    // Dropping a field from the applied configuration removes it from the object.
    let without_env = DEPLOYMENT.replace("        env:\n        - name: MODE\n          value: prod\n", "");
    env.clean(&["apply", "--server-side", "-f", &env.manifest("noenv.yaml", &without_env)]);
    let pruned = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert!(pruned["spec"]["template"]["spec"]["containers"][0].get("env").is_none(), "{pruned}");
}

#[test]
fn patch_edit_replace_and_dry_run() {
    let env = Env::start();
    shop(&env);
    env.clean(&["apply", "-f", &env.manifest("deploy.yaml", DEPLOYMENT)]);

    // Strategic merge patch merges containers by name and env by name.
    env.clean(&[
        "patch", "deployment", "web", "-n", "shop", "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#,
    ]);
    let patched = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    let container = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["env"].as_array().unwrap().len(), 2, "{container}");
    env.clean(&["patch", "deployment", "web", "-n", "shop", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":7}]"#]);
    env.clean(&["patch", "deployment", "web", "-n", "shop", "--type=merge", "-p", r#"{"metadata":{"labels":{"tier":"front"}}}"#]);
    let merged = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!((merged["spec"]["replicas"].as_i64(), merged["metadata"]["labels"]["tier"].as_str()), (Some(7), Some("front")));

    // kubectl edit: GET, run the editor, PUT the result.
    let editor = env.manifest("editor.sh", "#!/bin/sh\nsed -i 's/replicas: 7/replicas: 1/' \"$1\"\n");
    std::process::Command::new("chmod").args(["+x", &editor]).status().unwrap();
    let mut cmd = env.command(&["edit", "deployment/web", "-n", "shop"]);
    let out = cmd.env("KUBE_EDITOR", &editor).output().unwrap();
    assert!(out.status.success(), "edit: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/web")["spec"]["replicas"], 1);

    let cm = env.manifest("cm.yaml", &configmap_yaml("shop", "dry", "x"));
    assert!(env.clean(&["create", "-f", &cm, "--dry-run=server"]).contains("configmap/dry created (server dry run)"));
    assert_eq!(env.rest("/api/v1/namespaces/shop/configmaps/dry").0, 404, "dry run stored nothing");
    env.clean(&["create", "-f", &cm]);
    env.clean(&["replace", "-f", &env.manifest("cm2.yaml", &configmap_yaml("shop", "dry", "y"))]);
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/dry")["data"]["key"], "y");
    env.clean(&["label", "cm", "dry", "-n", "shop", "color=red"]);
    env.clean(&["annotate", "cm", "dry", "-n", "shop", "note=hi"]);
    let labelled = env.stored("/api/v1/namespaces/shop/configmaps/dry");
    assert_eq!((labelled["metadata"]["labels"]["color"].as_str(), labelled["metadata"]["annotations"]["note"].as_str()), (Some("red"), Some("hi")));
}

#[test]
fn explain_api_resources_and_versions() {
    let env = Env::start();
    let explain = env.clean(&["explain", "pods.spec.containers"]);
    assert!(explain.contains("KIND:       Pod") && explain.contains("FIELD: containers <[]Container>"), "{explain}");
    assert!(explain.lines().any(|l| l.trim_start().starts_with("image") && l.contains("<string>")), "{explain}");
    let recursive = env.clean(&["explain", "deployments", "--recursive"]);
    assert!(recursive.contains("GROUP:      apps"), "{recursive}");
    assert!(recursive.lines().any(|l| l.trim_start().starts_with("replicas") && l.contains("<integer>")), "{recursive}");

    let resources = env.clean(&["api-resources"]);
    for line in ["deployments                  deploy       apps/v1", "pods                         po           v1"] {
        assert!(resources.contains(line), "api-resources lacks {line:?}:\n{resources}");
    }
    let versions = env.clean(&["api-versions"]);
    assert!(versions.lines().any(|l| l == "apps/v1") && versions.lines().any(|l| l == "v1"), "{versions}");
}

#[test]
fn scale_and_rollout_commands_change_the_objects() {
    let env = Env::start();
    shop(&env);
    env.clean(&["apply", "-f", &env.manifest("deploy.yaml", DEPLOYMENT)]);
    env.clean(&["scale", "deploy/web", "-n", "shop", "--replicas=3"]);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/web")["spec"]["replicas"], 3);

    env.clean(&["rollout", "pause", "deploy/web", "-n", "shop"]);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/web")["spec"]["paused"], true);
    env.clean(&["rollout", "resume", "deploy/web", "-n", "shop"]);
    assert!(env.stored("/apis/apps/v1/namespaces/shop/deployments/web")["spec"].get("paused").is_none_or(|p| p == false));
    env.clean(&["rollout", "restart", "deploy/web", "-n", "shop"]);
    let restarted = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert!(restarted["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    let history = env.clean(&["rollout", "history", "deploy/web", "-n", "shop"]);
    assert!(history.starts_with("deployment.apps/web"), "{history}");

    for (kind, path) in [("rc", "/api/v1/namespaces/shop/replicationcontrollers/r"), ("rs", "/apis/apps/v1/namespaces/shop/replicasets/r")] {
        let api = if kind == "rc" { "v1" } else { "apps/v1" };
        let k = if kind == "rc" { "ReplicationController" } else { "ReplicaSet" };
        let selector = if kind == "rc" { "  selector:\n    app: r\n" } else { "  selector:\n    matchLabels:\n      app: r\n" };
        let yaml = format!("apiVersion: {api}\nkind: {k}\nmetadata:\n  name: r\n  namespace: shop\nspec:\n  replicas: 1\n{selector}  template:\n    metadata:\n      labels:\n        app: r\n    spec:\n      containers:\n      - name: c\n        image: busybox\n");
        env.clean(&["apply", "-f", &env.manifest(&format!("{kind}.yaml"), &yaml)]);
        env.clean(&["scale", kind, "r", "-n", "shop", "--replicas=4"]);
        assert_eq!(env.stored(path)["spec"]["replicas"], 4, "{kind}");
    }
}

#[test]
fn wait_watch_and_delete_cascades() {
    let env = Env::start();
    shop(&env);
    env.clean(&["apply", "-f", &env.manifest("cm.yaml", &configmap_yaml("shop", "a", "1"))]);

    // get -w prints table rows as objects change.
    let mut watch = env.command(&["get", "cm", "-n", "shop", "-w", "--output-watch-events"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = std::io::BufReader::new(watch.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let next_line = |printed: &mut Vec<String>| {
        let line = lines.recv_timeout(std::time::Duration::from_secs(20)).expect("kubectl get -w printed a line");
        printed.push(line);
    };
    // Header and the initial ADDED row: the watch is established before anything changes.
    next_line(&mut printed);
    next_line(&mut printed);
    env.clean(&["apply", "-f", &env.manifest("cm2.yaml", &configmap_yaml("shop", "a", "2"))]);
    next_line(&mut printed);
    env.clean(&["delete", "cm", "a", "-n", "shop"]);
    next_line(&mut printed);
    let _ = watch.kill();
    let _ = watch.wait();
    let printed = printed.join("\n");
    let events: Vec<&str> = printed.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{printed}");
    let header: Vec<&str> = printed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["EVENT", "NAME", "DATA", "AGE"], "{printed}");

    // wait --for=condition reads status conditions; --for=delete returns once the object is gone.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
    env.clean(&["apply", "-f", &env.manifest("pod.yaml", pod)]);
    env.clean(&[
        "patch", "pod", "p", "-n", "shop", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert_eq!(env.clean(&["wait", "--for=condition=Ready", "pod/p", "-n", "shop", "--timeout=20s"]).trim(), "pod/p condition met");
    // A finalizer holds the deleted pod, so the waiter provably starts while it still exists.
    env.clean(&["patch", "pod", "p", "-n", "shop", "--type=merge", "-p", r#"{"metadata":{"finalizers":["e2e/hold"]}}"#]);
    env.clean(&["delete", "pod", "p", "-n", "shop", "--wait=false"]);
    let mut waiter = env.command(&["wait", "--for=delete", "pod/p", "-n", "shop", "--timeout=60s"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(waiter.try_wait().unwrap().is_none(), "kubectl wait --for=delete returned while the pod still existed");
    env.clean(&["patch", "pod", "p", "-n", "shop", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("pod/p condition met"), "{out:?}");

    // --cascade reaches the server as propagationPolicy; orphan and foreground leave a
    // finalizer for the garbage collector (the controller-manager's job).
    env.clean(&["apply", "-f", &env.manifest("deploy.yaml", DEPLOYMENT)]);
    env.clean(&["delete", "deploy", "web", "-n", "shop", "--cascade=orphan", "--wait=false"]);
    let orphaned = env.stored("/apis/apps/v1/namespaces/shop/deployments/web");
    assert_eq!(orphaned["metadata"]["finalizers"], serde_json::json!(["orphan"]));
    assert!(orphaned["metadata"]["deletionTimestamp"].is_string());
    env.clean(&["create", "configmap", "bg", "-n", "shop"]);
    env.clean(&["delete", "cm", "bg", "-n", "shop", "--cascade=background"]);
    assert_eq!(env.rest("/api/v1/namespaces/shop/configmaps/bg").0, 404);
}

#[test]
fn network_policies_are_served() {
    let env = Env::start();
    shop(&env);
    let policy = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: db
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: web
    ports:
    - port: 5432
"#;
    let out = env.clean(&["apply", "-f", &env.manifest("np.yaml", policy)]);
    assert_eq!(out.trim(), "networkpolicy.networking.k8s.io/db created");
    let table = env.clean(&["get", "netpol", "-n", "shop"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "POD-SELECTOR", "AGE"], "{table}");
    assert_eq!(&rows[1][..2], ["db", "app=db"], "{table}");
    let stored = env.json(&["get", "networkpolicy", "db", "-n", "shop"]);
    assert_eq!(stored["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    assert_eq!(stored["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    let bad = policy.replace("    - port: 5432", "    - port: 5432\n      endPort: 80");
    let out = env.fails(&["apply", "-f", &env.manifest("bad.yaml", &bad)]);
    assert!(
        out.stderr
            .contains("spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"),
        "{}",
        out.stderr
    );
    let described = env.clean(&["describe", "netpol", "db", "-n", "shop"]);
    assert!(described.contains("PodSelector:     app=db"), "{described}");
}
