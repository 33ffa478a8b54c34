//! End-to-end tests with the real kubectl (v1.33) against a real etcd and a real
//! rkube-apiserver process: one test per verb, asserting on kubectl's output and exit code and
//! on the stored object read back over REST.
//!
//! kubectl is `$KUBECTL`, else `<workspace>/.tools/bin/kubectl`; a missing kubectl fails the
//! tests. The API server binary must be built first (`cargo build -p rkube-apiserver`).

mod support;

use std::time::{Duration, Instant};
use support::*;

// ---------------------------------------------------------------------------------------------

#[test]
fn create_multi_document_manifest() {
    let env = Env::start();
    env.create_fixture("shop");

    let ns = env.stored("/api/v1/namespaces/shop");
    assert_eq!(ns["metadata"]["labels"]["team"], "e2e");
    assert_eq!(ns["status"]["phase"], "Active");

    let cm = env.stored("/api/v1/namespaces/shop/configmaps/cfg");
    assert_eq!(cm["data"]["greeting"], "hello");
    assert_eq!(cm["data"]["color"], "blue");
    assert_eq!(cm["metadata"]["labels"]["app"], "demo");
    assert!(!meta(&cm, "uid").is_empty());

    let pod = env.stored("/api/v1/namespaces/shop/pods/web");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(pod["status"]["phase"], "Pending");

    // Creating the same objects again is AlreadyExists for each of them.
    let path = env.manifest("again.yaml", &fixture("shop"));
    let out = env.fails(&["create", "-f", &path]);
    assert!(
        out.stderr.contains(r#"Error from server (AlreadyExists): error when creating"#) && out.stderr.contains(r#"configmaps "cfg" already exists"#),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn get_table_yaml_and_json() {
    let env = Env::start();
    env.create_fixture("shop");

    // Table output: a NAME header and the names.
    let table = env.ok(&["get", "configmaps", "-n", "shop"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.split_whitespace().next() == Some("NAME"), "table header: {table}");
    assert!(table.lines().skip(1).any(|l| l.split_whitespace().next() == Some("cfg")), "table: {table}");
    let pods = env.ok(&["get", "pods", "-n", "shop"]);
    assert!(pods.lines().next().unwrap_or_default().starts_with("NAME"), "pods table: {pods}");
    assert!(pods.lines().skip(1).any(|l| l.starts_with("web ")), "pods table: {pods}");
    let nss = env.ok(&["get", "namespaces"]);
    for name in ["default", "kube-system", "shop"] {
        assert!(nss.lines().any(|l| l.split_whitespace().next() == Some(name)), "namespaces table lacks {name}: {nss}");
    }

    // JSON round-trips what REST stores.
    let stored = env.stored("/api/v1/namespaces/shop/configmaps/cfg");
    let cm = env.json(&["get", "configmap", "cfg", "-n", "shop"]);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["data"], stored["data"]);
    assert_eq!(cm["metadata"]["labels"]["app"], "demo");
    for field in ["uid", "resourceVersion", "creationTimestamp", "name", "namespace"] {
        assert_eq!(cm["metadata"][field], stored["metadata"][field], "metadata.{field}");
    }
    assert!(meta(&cm, "creationTimestamp").ends_with('Z'), "creationTimestamp is RFC 3339 UTC: {cm}");

    // YAML shows the same fields.
    let yaml = env.ok(&["get", "configmap", "cfg", "-n", "shop", "-o", "yaml"]);
    for needle in [
        "kind: ConfigMap".to_string(),
        "greeting: hello".into(),
        "app: demo".into(),
        format!("uid: {}", meta(&stored, "uid")),
        format!("resourceVersion: \"{}\"", meta(&stored, "resourceVersion")),
        format!("creationTimestamp: \"{}\"", meta(&stored, "creationTimestamp")),
    ] {
        assert!(yaml.contains(&needle), "yaml lacks {needle:?}:\n{yaml}");
    }

    // No kubelet: the Pod stays Pending.
    let pod = env.json(&["get", "pod", "web", "-n", "shop"]);
    assert_eq!(pod["status"]["phase"], "Pending", "pod: {pod}");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    let pod_yaml = env.ok(&["get", "pod", "web", "-n", "shop", "-o", "yaml"]);
    assert!(pod_yaml.contains("phase: Pending"), "pod yaml: {pod_yaml}");
    assert!(pod_yaml.contains("image: nginx:1.27"), "pod yaml: {pod_yaml}");

    // A list in JSON.
    let list = env.json(&["get", "configmaps", "-n", "shop"]);
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| meta(i, "name")).collect();
    assert!(names.contains(&"cfg"), "list: {names:?}");

    // Label selectors.
    let selected = env.json(&["get", "pods", "-n", "shop", "-l", "app=web"]);
    assert_eq!(selected["items"].as_array().unwrap().len(), 1);
    let none = env.json(&["get", "pods", "-n", "shop", "-l", "app=nope"]);
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
}

#[test]
fn replace_updates_data_and_resource_version() {
    let env = Env::start();
    env.create_fixture("shop");
    let before = env.stored("/api/v1/namespaces/shop/configmaps/cfg");

    let yaml = configmap_yaml("shop", "cfg", "replaced");
    let path = env.manifest("replace.yaml", &yaml);
    let out = env.ok(&["replace", "-f", &path]);
    assert!(out.contains("configmap/cfg replaced"), "replace output: {out}");

    let after = env.stored("/api/v1/namespaces/shop/configmaps/cfg");
    assert_eq!(after["data"], serde_json::json!({"key": "replaced"}), "replace sets the whole data: {after}");
    assert!(after["metadata"]["labels"].is_null(), "replace dropped the labels: {after}");
    assert_eq!(meta(&after, "uid"), meta(&before, "uid"));
    assert_eq!(meta(&after, "creationTimestamp"), meta(&before, "creationTimestamp"));
    assert!(rv(&after) > rv(&before), "resourceVersion {} -> {}", rv(&before), rv(&after));
    let via_kubectl = env.json(&["get", "cm", "cfg", "-n", "shop"]);
    assert_eq!(via_kubectl["data"]["key"], "replaced");

    // Replacing something that does not exist is NotFound.
    let missing = env.manifest("missing.yaml", &configmap_yaml("shop", "ghost", "x"));
    let out = env.fails(&["replace", "-f", &missing]);
    assert!(out.stderr.contains(r#"Error from server (NotFound)"#) && out.stderr.contains(r#"configmaps "ghost" not found"#), "stderr: {}", out.stderr);
}

#[test]
fn label_and_annotate() {
    let env = Env::start();
    env.create_fixture("shop");
    let path = "/api/v1/namespaces/shop/configmaps/cfg";
    let rv0 = rv(&env.stored(path));

    let out = env.ok(&["label", "configmap", "cfg", "-n", "shop", "tier=backend"]);
    assert!(out.contains("configmap/cfg labeled"), "{out}");
    let cm = env.stored(path);
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"app": "demo", "tier": "backend"}));
    let rv1 = rv(&cm);
    assert!(rv1 > rv0);

    // Changing an existing label needs --overwrite.
    let out = env.fails(&["label", "configmap", "cfg", "-n", "shop", "tier=frontend"]);
    assert!(out.stderr.contains("'tier' already has a value (backend), and --overwrite is false"), "stderr: {}", out.stderr);
    assert_eq!(env.stored(path)["metadata"]["labels"]["tier"], "backend");
    env.ok(&["label", "configmap", "cfg", "-n", "shop", "tier=frontend", "--overwrite"]);
    let cm = env.stored(path);
    assert_eq!(cm["metadata"]["labels"]["tier"], "frontend");
    assert!(rv(&cm) > rv1);

    // Selection follows the label.
    let list = env.json(&["get", "cm", "-n", "shop", "-l", "tier=frontend"]);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Removing with `key-`.
    let out = env.ok(&["label", "configmap", "cfg", "-n", "shop", "tier-"]);
    assert!(out.contains("configmap/cfg unlabeled"), "{out}");
    let cm = env.stored(path);
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"app": "demo"}));

    // Annotations, including on a Pod and a Namespace.
    let out = env.ok(&["annotate", "configmap", "cfg", "-n", "shop", "owner=team-a", "note=first"]);
    assert!(out.contains("configmap/cfg annotated"), "{out}");
    let cm = env.stored(path);
    assert_eq!(cm["metadata"]["annotations"], serde_json::json!({"owner": "team-a", "note": "first"}));
    env.fails(&["annotate", "configmap", "cfg", "-n", "shop", "note=second"]);
    env.ok(&["annotate", "configmap", "cfg", "-n", "shop", "note=second", "--overwrite"]);
    assert_eq!(env.stored(path)["metadata"]["annotations"]["note"], "second");
    env.ok(&["annotate", "configmap", "cfg", "-n", "shop", "note-"]);
    let cm = env.stored(path);
    assert_eq!(cm["metadata"]["annotations"], serde_json::json!({"owner": "team-a"}));
    // Data is untouched by all of this.
    assert_eq!(cm["data"]["greeting"], "hello");

    env.ok(&["label", "pod", "web", "-n", "shop", "env=test"]);
    assert_eq!(env.stored("/api/v1/namespaces/shop/pods/web")["metadata"]["labels"]["env"], "test");
    env.ok(&["annotate", "namespace", "shop", "purpose=e2e"]);
    assert_eq!(env.stored("/api/v1/namespaces/shop")["metadata"]["annotations"]["purpose"], "e2e");

    // Labelling something missing is NotFound.
    let out = env.fails(&["label", "configmap", "ghost", "-n", "shop", "a=b"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): configmaps "ghost" not found"#), "stderr: {}", out.stderr);
}

#[test]
fn get_watch_streams_events_in_order() {
    let env = Env::start();
    env.create_fixture("shop");

    let mut w = Watcher::start(&env, &["get", "configmaps", "-n", "shop", "-w", "--output-watch-events", "-o", "json"]);
    // The initial list: the fixture's ConfigMap as ADDED.
    let first = w.next("the initial list");
    assert_eq!(first["type"], "ADDED", "{first}");
    assert_eq!(first["object"]["metadata"]["name"], "cfg");

    let path = env.manifest("watched.yaml", &configmap_yaml("shop", "watched", "one"));
    env.ok(&["create", "-f", &path]);
    env.ok(&["label", "cm", "watched", "-n", "shop", "step=two"]);
    env.ok(&["replace", "-f", &env.manifest("watched2.yaml", &configmap_yaml("shop", "watched", "three"))]);
    env.ok(&["delete", "cm", "watched", "-n", "shop"]);

    let mut seen = Vec::new();
    let mut last_rv = rv(&first["object"]);
    for step in ["ADDED", "MODIFIED", "MODIFIED", "DELETED"] {
        let ev = w.next(step);
        assert_eq!(ev["object"]["metadata"]["name"], "watched", "event {ev}");
        seen.push(ev["type"].as_str().unwrap_or_default().to_string());
        let this = rv(&ev["object"]);
        assert!(this > last_rv, "resourceVersions increase: {last_rv} then {this}");
        last_rv = this;
        match seen.len() {
            1 => assert_eq!(ev["object"]["data"]["key"], "one"),
            2 => assert_eq!(ev["object"]["metadata"]["labels"]["step"], "two"),
            3 => assert_eq!(ev["object"]["data"]["key"], "three"),
            _ => {}
        }
    }
    assert_eq!(seen, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    // Nothing else happened to the watched namespace.
    assert!(w.events.recv_timeout(Duration::from_millis(500)).is_err(), "unexpected extra event");
    w.stop();

    // Plain `-w -o json` (no event types) prints the objects themselves.
    let mut plain = Watcher::start(&env, &["get", "configmaps", "-n", "shop", "-w", "-o", "json"]);
    let obj = plain.next("the initial list");
    assert_eq!(obj["kind"], "ConfigMap", "{obj}");
    env.ok(&["annotate", "cm", "cfg", "-n", "shop", "seen=yes"]);
    let obj = plain.next("the annotation");
    assert_eq!(obj["metadata"]["annotations"]["seen"], "yes", "{obj}");
}

#[test]
fn delete_configmap_pod_and_namespace() {
    let env = Env::start();
    env.create_fixture("shop");
    env.ok(&["create", "-f", &env.manifest("extra.yaml", &configmap_yaml("shop", "extra", "x"))]);

    let out = env.ok(&["delete", "configmap", "cfg", "-n", "shop"]);
    assert!(out.contains(r#"configmap "cfg" deleted"#), "{out}");
    let (code, body) = env.rest("/api/v1/namespaces/shop/configmaps/cfg");
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "NotFound");

    // An unscheduled Pod goes at once (no kubelet to wait for); kubectl waits for it.
    let out = env.ok(&["delete", "pod", "web", "-n", "shop", "--timeout=30s"]);
    assert!(out.contains(r#"pod "web" deleted"#), "{out}");
    assert_eq!(env.rest("/api/v1/namespaces/shop/pods/web").0, 404);

    // Deleting what is gone is NotFound; --ignore-not-found makes it a no-op.
    let out = env.fails(&["delete", "configmap", "cfg", "-n", "shop"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): configmaps "cfg" not found"#), "stderr: {}", out.stderr);
    env.ok(&["delete", "configmap", "cfg", "-n", "shop", "--ignore-not-found"]);

    // A second pod left behind for the namespace to clean up.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: leftover\n  namespace: shop\nspec:\n  containers:\n  - name: main\n    image: busybox:1.36\n";
    env.ok(&["create", "-f", &env.manifest("leftover.yaml", pod)]);

    // Deleting the namespace completes (kubectl waits until it is gone) and takes its content.
    let started = Instant::now();
    let out = env.ok(&["delete", "namespace", "shop", "--timeout=30s"]);
    assert!(out.contains(r#"namespace "shop" deleted"#), "{out}");
    assert!(started.elapsed() < Duration::from_secs(35));
    let out = env.fails(&["get", "namespace", "shop"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): namespaces "shop" not found"#), "stderr: {}", out.stderr);
    assert_eq!(env.rest("/api/v1/namespaces/shop/configmaps/extra").0, 404);
    assert_eq!(env.rest("/api/v1/namespaces/shop/pods/leftover").0, 404);
    let cms = env.stored("/api/v1/namespaces/shop/configmaps");
    assert_eq!(cms["items"].as_array().map(Vec::len), Some(0), "{cms}");
    let all_pods = env.json(&["get", "pods", "--all-namespaces"]);
    assert!(all_pods["items"].as_array().unwrap().iter().all(|p| p["metadata"]["namespace"] != "shop"), "{all_pods}");

    // The namespace name can be used again.
    env.create_fixture("shop");
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/cfg")["data"]["greeting"], "hello");
}

#[test]
fn errors_are_reported_like_kubernetes() {
    let env = Env::start();
    env.create_fixture("shop");

    let out = env.fails(&["get", "cm", "nope"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): configmaps "nope" not found"#), "stderr: {}", out.stderr);
    let out = env.fails(&["get", "cm", "nope", "-n", "shop"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): configmaps "nope" not found"#), "stderr: {}", out.stderr);
    let out = env.fails(&["get", "namespace", "nope"]);
    assert!(out.stderr.contains(r#"Error from server (NotFound): namespaces "nope" not found"#), "stderr: {}", out.stderr);

    // A resource type the server does not have.
    let out = env.fails(&["get", "frobnicators"]);
    assert!(out.stderr.contains(r#"the server doesn't have a resource type "frobnicators""#), "stderr: {}", out.stderr);

    // Creating into a namespace that does not exist.
    let cm = env.manifest("orphan.yaml", &configmap_yaml("no-such-ns", "x", "y"));
    let out = env.fails(&["create", "-f", &cm]);
    assert!(out.stderr.contains(r#"namespaces "no-such-ns" not found"#), "stderr: {}", out.stderr);
}

#[test]
fn invalid_pod_is_rejected() {
    let env = Env::start();
    env.create_fixture("shop");
    let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\n  namespace: shop\nspec:\n  containers:\n  - name: main\n";
    let path = env.manifest("bad.yaml", bad);
    let out = env.run(&["create", "-f", &path]);
    assert_ne!(out.code, 0, "a Pod without an image must be rejected\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(r#"The Pod "bad" is invalid: "#),
        "stderr: {}",
        out.stderr
    );
    assert!(out.stderr.contains("spec.containers[0].image: Required value"), "stderr: {}", out.stderr);
    assert_eq!(env.rest("/api/v1/namespaces/shop/pods/bad").0, 404, "nothing was stored");
}

#[test]
fn objects_survive_an_api_server_restart() {
    let mut env = Env::start();
    env.create_fixture("shop");
    let cm_path = "/api/v1/namespaces/shop/configmaps/cfg";
    let before = env.stored(cm_path);
    let pod_before = env.stored("/api/v1/namespaces/shop/pods/web");

    // A watch running across the restart: kubectl's watch ends when the server goes away;
    // only the data is asserted across the restart, not the watch.
    let mut w = Watcher::start(&env, &["get", "configmaps", "-n", "shop", "-w", "--output-watch-events", "-o", "json"]);
    assert_eq!(w.next("the initial list")["type"], "ADDED");

    // A create, then the restart, then more reads and writes.
    env.ok(&["create", "-f", &env.manifest("second.yaml", &configmap_yaml("shop", "second", "v1"))]);
    let second_before = env.stored("/api/v1/namespaces/shop/configmaps/second");
    env.api.restart().expect("apiserver restarts");
    w.stop();

    let after = env.stored(cm_path);
    assert_eq!(meta(&after, "uid"), meta(&before, "uid"));
    assert_eq!(after["data"], before["data"]);
    assert_eq!(meta(&after, "resourceVersion"), meta(&before, "resourceVersion"));
    let second = env.json(&["get", "cm", "second", "-n", "shop"]);
    assert_eq!(meta(&second, "uid"), meta(&second_before, "uid"));
    assert_eq!(second["data"]["key"], "v1");
    let pod = env.json(&["get", "pod", "web", "-n", "shop"]);
    assert_eq!(meta(&pod, "uid"), meta(&pod_before, "uid"));
    assert_eq!(pod["status"]["phase"], "Pending");

    // kubectl keeps working: writes after the restart get higher resourceVersions.
    env.ok(&["replace", "-f", &env.manifest("second2.yaml", &configmap_yaml("shop", "second", "v2"))]);
    let second_after = env.stored("/api/v1/namespaces/shop/configmaps/second");
    assert_eq!(second_after["data"]["key"], "v2");
    assert!(rv(&second_after) > rv(&second_before));
    env.ok(&["label", "cm", "cfg", "-n", "shop", "after=restart"]);
    env.ok(&["create", "-f", &env.manifest("third.yaml", &configmap_yaml("shop", "third", "x"))]);
    let list = env.json(&["get", "cm", "-n", "shop"]);
    let mut names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| meta(i, "name")).collect();
    names.sort();
    assert_eq!(names, ["cfg", "second", "third"]);

    // A watch started after the restart sees new changes.
    let mut w = Watcher::start(&env, &["get", "configmaps", "-n", "shop", "-w", "--output-watch-events", "-o", "json"]);
    for _ in 0..3 {
        assert_eq!(w.next("the initial list")["type"], "ADDED");
    }
    env.ok(&["delete", "cm", "third", "-n", "shop"]);
    let ev = w.next("the delete");
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "third");
    w.stop();

    // A second restart, then the namespace delete still completes.
    env.api.restart().expect("apiserver restarts again");
    assert_eq!(env.json(&["get", "cm", "cfg", "-n", "shop"])["metadata"]["labels"]["after"], "restart");
    env.ok(&["delete", "namespace", "shop", "--timeout=30s"]);
    env.fails(&["get", "namespace", "shop"]);
}
