//! REST semantics of the API server against a real etcd: metadata rules, errors, conflicts,
//! selectors, pagination, watches, subresources, deletion and restarts.

mod common;

use common::{Cluster, configmap, deployment, pod};
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn create_get_update_delete_follow_kubernetes_metadata_rules() {
    let c = Cluster::start();
    let created = c.post(CM, &configmap("a", &[("k", "v")])).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let meta = &created.body["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert!(meta["uid"].as_str().unwrap().len() == 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    let rv: i64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    let dup = c.post(CM, &configmap("a", &[])).await;
    assert_eq!(dup.code, 409);
    assert_eq!(dup.body["reason"], "AlreadyExists");
    assert_eq!(dup.body["message"], "configmaps \"a\" already exists");

    let got = c.get(&format!("{CM}/a")).await;
    assert_eq!(got.body, created.body);

    let mut changed = got.body.clone();
    changed["data"]["k"] = json!("w");
    let updated = c.put(&format!("{CM}/a"), &changed).await;
    assert_eq!(updated.code, 200, "{}", updated.body);
    let rv2: i64 = updated.body["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv2 > rv);
    assert_eq!(updated.body["metadata"]["uid"], meta["uid"]);

    // The first body is stale now.
    let stale = c.put(&format!("{CM}/a"), &got.body).await;
    assert_eq!(stale.code, 409);
    assert_eq!(stale.body["reason"], "Conflict");

    // A no-op update writes nothing.
    let same = c.put(&format!("{CM}/a"), &updated.body).await;
    assert_eq!(same.body["metadata"]["resourceVersion"], updated.body["metadata"]["resourceVersion"]);

    let deleted = c.delete(&format!("{CM}/a")).await;
    assert_eq!(deleted.code, 200);
    let gone = c.get(&format!("{CM}/a")).await;
    assert_eq!(gone.code, 404);
    assert_eq!(gone.body["kind"], "Status");
    assert_eq!(gone.body["reason"], "NotFound");
    assert_eq!(gone.body["details"], json!({"name": "a", "kind": "configmaps"}));
}

#[tokio::test]
async fn generate_name_generation_and_dry_run() {
    let c = Cluster::start();
    let mut cm = configmap("", &[]);
    cm["metadata"] = json!({"generateName": "gen-"});
    let r = c.post(CM, &cm).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let name = r.body["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let d = c.post(deploys, &deployment("web", 1)).await;
    assert_eq!(d.code, 201, "{}", d.body);
    assert_eq!(d.body["metadata"]["generation"], 1);
    // Defaults were applied.
    assert_eq!(d.body["spec"]["strategy"]["type"], "RollingUpdate");
    let mut labelled = d.body.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let l = c.put(&format!("{deploys}/web"), &labelled).await;
    assert_eq!(l.body["metadata"]["generation"], 1, "metadata changes do not bump generation");
    let mut scaled = l.body.clone();
    scaled["spec"]["replicas"] = json!(3);
    let s = c.put(&format!("{deploys}/web"), &scaled).await;
    assert_eq!(s.body["metadata"]["generation"], 2);

    let dry = c.send("POST", &format!("{CM}?dryRun=All"), "application/json", Some(serde_json::to_vec(&configmap("dry", &[])).unwrap())).await;
    assert_eq!(dry.code, 201);
    assert_eq!(c.get(&format!("{CM}/dry")).await.code, 404);
}

#[tokio::test]
async fn concurrent_writers_on_one_resource_version_exactly_one_wins() {
    let c = Cluster::start();
    let base = c.post(CM, &configmap("race", &[("n", "0")])).await.body;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut body = base.clone();
        // Every writer changes something: a no-op update would rightly succeed.
        body["data"]["n"] = json!((i + 1).to_string());
        let url = c.url(&format!("{CM}/race"));
        let http = c.http.clone();
        tasks.push(tokio::spawn(async move { http.put(url).json(&body).send().await.unwrap().status().as_u16() }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 9, "{codes:?}");
}

#[tokio::test]
async fn bad_input_gets_kubernetes_errors_and_nothing_is_stored() {
    let c = Cluster::start();
    let malformed = c.send("POST", CM, "application/json", Some(b"{\"apiVersion\": \"v1\", ".to_vec())).await;
    assert_eq!(malformed.code, 400);
    assert_eq!(malformed.body["reason"], "BadRequest");

    let yaml = c.send("POST", CM, "application/yaml", Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n".to_vec())).await;
    assert_eq!(yaml.code, 201, "{}", yaml.body);

    let big = configmap("big", &[("k", &"x".repeat(3 * 1024 * 1024 + 10))]);
    let too_large = c.post(CM, &big).await;
    assert_eq!(too_large.code, 413);
    assert_eq!(too_large.body["reason"], "RequestEntityTooLarge");

    let wrong_kind = c.post(CM, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})).await;
    assert_eq!(wrong_kind.code, 400);
    let wrong_version = c.post(CM, &json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "s"}})).await;
    assert_eq!(wrong_version.code, 400);

    let invalid = c.post("/api/v1/namespaces/default/pods", &pod("p", "")).await;
    assert_eq!(invalid.code, 422, "{}", invalid.body);
    assert_eq!(invalid.body["reason"], "Invalid");
    let fields: Vec<&str> = invalid.body["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"spec.containers[0].image"), "{fields:?}");

    let bad_name = c.post(CM, &configmap("Not_Valid", &[])).await;
    assert_eq!(bad_name.code, 422);
    assert_eq!(bad_name.body["details"]["causes"][0]["field"], "metadata.name");

    let mut unknown = configmap("u", &[]);
    unknown["spec"] = json!({"foo": 1});
    let strict = c.send("POST", &format!("{CM}?fieldValidation=Strict"), "application/json", Some(serde_json::to_vec(&unknown).unwrap())).await;
    assert_eq!(strict.code, 400);
    assert!(strict.body["message"].as_str().unwrap().contains("unknown field \"spec\""), "{}", strict.body);
    let warn = c.send("POST", &format!("{CM}?fieldValidation=Warn"), "application/json", Some(serde_json::to_vec(&unknown).unwrap())).await;
    assert_eq!(warn.code, 201);
    let warning = warn.headers.get("warning").expect("a warning header").to_str().unwrap();
    assert!(warning.contains("unknown field"), "{warning}");
    assert!(c.get(&format!("{CM}/u")).await.body.get("spec").is_none(), "unknown fields are dropped");

    let protobuf = c.send("POST", CM, "application/vnd.kubernetes.protobuf", Some(vec![0x6b, 0x38, 0x73, 0])).await;
    assert_eq!(protobuf.code, 400, "a truncated protobuf envelope is a bad request: {}", protobuf.body);
    let cbor = c.send("POST", CM, "application/cbor", Some(vec![0xa0])).await;
    assert_eq!(cbor.code, 415);

    // Garbage everywhere: the server answers and keeps serving.
    for (method, path) in [("POST", CM), ("PUT", "/api/v1/namespaces/default/configmaps/from-yaml"), ("PATCH", "/api/v1/namespaces/default/configmaps/from-yaml"), ("DELETE", "/api/v1/namespaces/default/configmaps/from-yaml"), ("POST", "/api/v1/namespaces/default/pods/x/binding")] {
        for body in [&b"\xff\xfe\x00"[..], b"[]", b"null", b"{\"metadata\": 5}", b"{\"apiVersion\": 1, \"kind\": []}"] {
            let r = c.send(method, path, "application/merge-patch+json", Some(body.to_vec())).await;
            assert!((400..500).contains(&r.code), "{method} {path} {body:?} -> {} {}", r.code, r.body);
        }
    }
    assert_eq!(c.get(&format!("{CM}/from-yaml")).await.body["data"]["a"], "b", "failed writes left the object alone");
    let listed = c.get(CM).await;
    let names: Vec<&str> = listed.body["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"big") && !names.contains(&"s") && !names.contains(&"Not_Valid"), "{names:?}");
}

#[tokio::test]
async fn namespaces_gate_creation_and_take_their_content_with_them() {
    let c = Cluster::start();
    let missing = c.post("/api/v1/namespaces/nope/configmaps", &configmap("a", &[])).await;
    assert_eq!(missing.code, 404);
    assert_eq!(missing.body["message"], "namespaces \"nope\" not found");

    let ns = c.post("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})).await;
    assert_eq!(ns.code, 201);
    assert_eq!(ns.body["status"]["phase"], "Active");
    let mismatch = c.post("/api/v1/namespaces/team/configmaps", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "other"}})).await;
    assert_eq!(mismatch.code, 400);
    for i in 0..5 {
        assert_eq!(c.post("/api/v1/namespaces/team/configmaps", &configmap(&format!("c{i}"), &[])).await.code, 201);
    }
    assert_eq!(c.post("/api/v1/namespaces/team/pods", &pod("p", "busybox")).await.code, 201);

    let del = c.delete("/api/v1/namespaces/team").await;
    assert!(del.code == 200 || del.code == 202, "{}", del.body);
    assert_eq!(del.body["status"]["phase"], "Terminating");
    let refused = c.post("/api/v1/namespaces/team/configmaps", &configmap("late", &[])).await;
    // Either refused as terminating, or already gone.
    assert!(refused.code == 403 || refused.code == 404, "{} {}", refused.code, refused.body);

    let mut gone = false;
    for _ in 0..100 {
        if c.get("/api/v1/namespaces/team").await.code == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "namespace finished terminating");
    assert_eq!(c.get("/api/v1/namespaces/team/configmaps").await.body["items"], json!([]));
    assert_eq!(c.get("/api/v1/namespaces/team/pods").await.body["items"], json!([]));
}

#[tokio::test]
async fn finalizers_and_preconditions_hold_deletion() {
    let c = Cluster::start();
    let mut cm = configmap("fin", &[]);
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = c.post(CM, &cm).await.body;

    let wrong_uid = c.send("DELETE", &format!("{CM}/fin"), "application/json",
        Some(serde_json::to_vec(&json!({"preconditions": {"uid": "not-it"}})).unwrap())).await;
    assert_eq!(wrong_uid.code, 409);

    let del = c.delete(&format!("{CM}/fin")).await;
    assert_eq!(del.code, 202);
    let held = c.get(&format!("{CM}/fin")).await;
    assert_eq!(held.code, 200);
    assert!(held.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(held.body["metadata"]["uid"], created["metadata"]["uid"]);

    let release = c.patch(&format!("{CM}/fin"), "application/merge-patch+json", &json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(release.code, 200, "{}", release.body);
    assert_eq!(c.get(&format!("{CM}/fin")).await.code, 404, "last finalizer removed: object deleted");

    // Pods not bound to a node go at once; bound pods wait for their kubelet.
    let pods = "/api/v1/namespaces/default/pods";
    c.post(pods, &pod("unbound", "busybox")).await;
    assert_eq!(c.delete(&format!("{pods}/unbound")).await.code, 200);
    assert_eq!(c.get(&format!("{pods}/unbound")).await.code, 404);
    c.post(pods, &pod("bound", "busybox")).await;
    let bind = c.post(&format!("{pods}/bound/binding"), &json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}})).await;
    assert_eq!(bind.code, 201, "{}", bind.body);
    let graceful = c.delete(&format!("{pods}/bound")).await;
    assert_eq!(graceful.code, 202);
    assert_eq!(graceful.body["metadata"]["deletionGracePeriodSeconds"], 30);
    let now = c.send("DELETE", &format!("{pods}/bound?gracePeriodSeconds=0"), "", None).await;
    assert_eq!(now.code, 200);
    assert_eq!(c.get(&format!("{pods}/bound")).await.code, 404);

    // Without a propagationPolicy, ReplicationControllers (like batch/v1 Jobs) orphan their
    // pods, as in Kubernetes; other kinds are deleted at once (background).
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "legacy"},
        "spec": {"replicas": 0, "selector": {"app": "legacy"}, "template": {"metadata": {"labels": {"app": "legacy"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    assert_eq!(c.post(rcs, &rc).await.code, 201);
    assert_eq!(c.delete(&format!("{rcs}/legacy")).await.code, 202);
    let held = c.get(&format!("{rcs}/legacy")).await;
    assert_eq!(held.body["metadata"]["finalizers"], json!(["orphan"]), "{}", held.body);
    c.post(CM, &configmap("plain", &[])).await;
    assert_eq!(c.delete(&format!("{CM}/plain")).await.code, 200);
}

#[tokio::test]
async fn subresources_status_scale_and_binding() {
    let c = Cluster::start();
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let d = c.post(deploys, &deployment("web", 2)).await.body;
    let mut with_status = d.clone();
    with_status["status"] = json!({"replicas": 2, "readyReplicas": 2});
    with_status["spec"]["replicas"] = json!(7);
    let s = c.put(&format!("{deploys}/web/status"), &with_status).await;
    assert_eq!(s.code, 200, "{}", s.body);
    assert_eq!(s.body["status"]["readyReplicas"], 2);
    assert_eq!(s.body["spec"]["replicas"], 2, "status writes leave spec alone");
    let mut main = s.body.clone();
    main["status"] = json!({"readyReplicas": 99});
    let m = c.put(&format!("{deploys}/web"), &main).await;
    assert_eq!(m.body["status"]["readyReplicas"], 2, "main writes leave status alone");

    let scale = c.get(&format!("{deploys}/web/scale")).await;
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["spec"]["replicas"], 2);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let mut up = scale.body.clone();
    up["spec"]["replicas"] = json!(5);
    assert_eq!(c.put(&format!("{deploys}/web/scale"), &up).await.body["spec"]["replicas"], 5);
    let patched = c.patch(&format!("{deploys}/web/scale"), "application/merge-patch+json", &json!({"spec": {"replicas": 4}})).await;
    assert_eq!(patched.body["spec"]["replicas"], 4, "{}", patched.body);
    assert_eq!(c.get(&format!("{deploys}/web")).await.body["spec"]["replicas"], 4);
    assert_eq!(c.get("/api/v1/namespaces/default/configmaps/x/scale").await.code, 404);

    let pods = "/api/v1/namespaces/default/pods";
    let p = c.post(pods, &pod("p", "busybox")).await;
    assert_eq!(p.body["status"]["phase"], "Pending");
    assert_eq!(p.body["status"]["qosClass"], "BestEffort");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}});
    assert_eq!(c.post(&format!("{pods}/p/binding"), &binding).await.code, 201);
    let bound = c.get(&format!("{pods}/p")).await.body;
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
    let again = c.post(&format!("{pods}/p/binding"), &binding).await;
    assert_eq!(again.code, 409);
}

#[tokio::test]
async fn selectors_and_pagination() {
    let c = Cluster::start();
    for i in 0..25 {
        let mut cm = configmap(&format!("cm-{i:02}"), &[]);
        cm["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }, "n": i.to_string()});
        c.post(CM, &cm).await;
    }
    let even = c.get(&format!("{CM}?labelSelector=parity%3Deven")).await;
    assert_eq!(even.body["items"].as_array().unwrap().len(), 13);
    let set = c.get(&format!("{CM}?labelSelector=n%20in%20(1,2,3),parity!%3Dodd")).await;
    assert_eq!(set.body["items"].as_array().unwrap().len(), 1);
    let by_name = c.get(&format!("{CM}?fieldSelector=metadata.name%3Dcm-07")).await;
    assert_eq!(by_name.body["items"][0]["metadata"]["name"], "cm-07");
    let bad = c.get(&format!("{CM}?fieldSelector=data.x%3D1")).await;
    assert_eq!(bad.code, 400);
    assert_eq!(c.get(&format!("{CM}?labelSelector=a%20in%20b")).await.code, 400);

    // Pages are consistent as of the first page even while objects change.
    let first = c.get(&format!("{CM}?limit=10")).await.body;
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    let token = first["metadata"]["continue"].as_str().expect("continue token").to_string();
    c.delete(&format!("{CM}/cm-20")).await;
    c.post(CM, &configmap("cm-99", &[])).await;
    let mut names: Vec<String> = first["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    let mut token = Some(token);
    while let Some(t) = token {
        let page = c.get(&format!("{CM}?limit=10&continue={t}")).await;
        assert_eq!(page.code, 200, "{}", page.body);
        assert_eq!(page.body["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
        names.extend(page.body["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()));
        token = page.body["metadata"]["continue"].as_str().map(String::from);
    }
    assert_eq!(names.len(), 25);
    assert!(names.contains(&"cm-20".to_string()) && !names.contains(&"cm-99".to_string()));
    let paged_filtered = c.get(&format!("{CM}?limit=3&labelSelector=parity%3Dodd")).await.body;
    assert_eq!(paged_filtered["items"].as_array().unwrap().len(), 3);
    assert!(paged_filtered["items"].as_array().unwrap().iter().all(|i| i["metadata"]["labels"]["parity"] == "odd"));
}

#[tokio::test]
async fn watch_delivers_every_event_in_order_with_selector_transitions() {
    let c = Cluster::start();
    let list = c.get(CM).await.body;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut all = c.watch(&format!("{CM}?watch=true&resourceVersion={rv}")).await;
    let mut selected = c.watch(&format!("{CM}?watch=1&resourceVersion={rv}&labelSelector=pick%3Dyes")).await;

    let mut writers = Vec::new();
    for w in 0..4 {
        let url = c.url(CM);
        let http = c.http.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let name = format!("w{w}-{i}");
                let r = http.post(&url).json(&configmap(&name, &[])).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut last = rv.parse::<i64>().unwrap();
    for _ in 0..100 {
        let ev = all.next(10).await.expect("an event for every write");
        assert_eq!(ev["type"], "ADDED");
        let this: i64 = ev["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        assert!(this > last, "revisions increase: {this} after {last}");
        last = this;
    }

    // Entering and leaving a label selection are ADDED and DELETED for that watcher.
    c.patch(&format!("{CM}/w0-0"), "application/merge-patch+json", &json!({"metadata": {"labels": {"pick": "yes"}}})).await;
    c.patch(&format!("{CM}/w0-0"), "application/merge-patch+json", &json!({"data": {"x": "1"}})).await;
    c.patch(&format!("{CM}/w0-0"), "application/merge-patch+json", &json!({"metadata": {"labels": {"pick": "no"}}})).await;
    let types: Vec<String> = futures_types(&mut selected, 3).await;
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    let types_all: Vec<String> = futures_types(&mut all, 3).await;
    assert_eq!(types_all, ["MODIFIED", "MODIFIED", "MODIFIED"]);
    c.delete(&format!("{CM}/w1-1")).await;
    let ev = all.next(10).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "w1-1");

    // A watch without a resourceVersion starts with the current state.
    let mut fresh = c.watch(&format!("{CM}?watch=true&labelSelector=pick%3Dno")).await;
    let first = fresh.next(10).await.unwrap();
    assert_eq!((first["type"].as_str().unwrap(), first["object"]["metadata"]["name"].as_str().unwrap()), ("ADDED", "w0-0"));
}

async fn futures_types(w: &mut common::WatchReader, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(w.next(10).await.expect("event")["type"].as_str().unwrap().to_string());
    }
    out
}

#[tokio::test]
async fn watch_bookmarks_and_too_old_resource_versions() {
    let mut c = Cluster::start();
    c.post(CM, &configmap("a", &[])).await;
    // After a restart the cache's window begins at the current revision; 1 predates it.
    c.restart_api();
    let mut old = c.watch(&format!("{CM}?watch=true&resourceVersion=1")).await;
    let ev = old.next(10).await.expect("an ERROR event");
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");

    let rv = c.get(CM).await.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut initial = c.watch(&format!("{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion={rv}")).await;
    let added = initial.next(10).await.unwrap();
    assert_eq!(added["type"], "ADDED");
    let end = initial.next(10).await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    let no_bookmarks = c.get(&format!("{CM}?watch=true&sendInitialEvents=true")).await;
    assert_eq!(no_bookmarks.code, 422);
}

#[tokio::test]
async fn discovery_lists_exactly_what_is_served() {
    let c = Cluster::start();
    let version = c.get("/version").await.body;
    assert_eq!((version["major"].as_str(), version["minor"].as_str()), (Some("1"), Some("33")));
    assert_eq!(c.get("/api").await.body["versions"], json!(["v1"]));
    let groups = c.get("/apis").await.body;
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in ["apps", "batch", "networking.k8s.io", "autoscaling", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io"] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    let core = c.get("/api/v1").await.body;
    let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(c.get("/apis/apps/v1").await.body["groupVersion"], "apps/v1");
    let unknown = c.get("/apis/apps/v2").await;
    assert_eq!(unknown.code, 404);
    assert_eq!(unknown.body["message"], "the server could not find the requested resource");
    assert_eq!(c.get("/apis/apps").await.body["preferredVersion"]["version"], "v1");
    // Every listed resource answers a list.
    for r in core["resources"].as_array().unwrap().iter().filter(|r| !r["name"].as_str().unwrap().contains('/')) {
        let name = r["name"].as_str().unwrap();
        let path = if r["namespaced"] == true { format!("/api/v1/namespaces/default/{name}") } else { format!("/api/v1/{name}") };
        assert_eq!(c.get(&path).await.code, 200, "{path}");
    }
}

#[tokio::test]
async fn restarting_the_api_server_loses_nothing() {
    let mut c = Cluster::start();
    let created: Vec<Value> = {
        let mut v = Vec::new();
        for i in 0..20 {
            v.push(c.post(CM, &configmap(&format!("keep-{i}"), &[("i", &i.to_string())])).await.body);
        }
        v
    };
    c.restart_api();
    for (i, before) in created.iter().enumerate() {
        let after = c.get(&format!("{CM}/keep-{i}")).await.body;
        assert_eq!(&after, before);
    }
    let list = c.get(CM).await.body;
    assert_eq!(list["items"].as_array().unwrap().len(), 20);
    assert_eq!(c.post(CM, &configmap("after", &[])).await.code, 201);
}

#[tokio::test]
async fn the_api_server_rides_out_an_etcd_restart() {
    let mut c = Cluster::start();
    let before = c.post(CM, &configmap("before", &[])).await.body;
    let rv = before["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut watch = c.watch(&format!("{CM}?watch=true&resourceVersion={rv}")).await;
    c.etcd.restart().expect("etcd restarts");
    // The first writes may race etcd coming back; they fail cleanly (503), never hang or panic.
    let mut created = None;
    for _ in 0..100 {
        let r = c.post(CM, &configmap("after", &[])).await;
        if r.code == 201 {
            created = Some(r.body);
            break;
        }
        assert!(r.code == 503 || r.code == 409, "{} {}", r.code, r.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let created = created.expect("writes resume after etcd restarts");
    let ev = watch.next(20).await.expect("the open watch sees the write made after the restart");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "after");
    assert_eq!(ev["object"]["metadata"]["uid"], created["metadata"]["uid"]);
    let names: Vec<String> = c.get(CM).await.body["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["after", "before"]);
}

#[tokio::test]
async fn versions_of_one_resource_share_storage() {
    let c = Cluster::start();
    let new_event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "rkube.io/test", "reportingInstance": "t1",
        "action": "Testing", "reason": "Tested", "type": "Normal", "note": "hello",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web"}});
    let created = c.post("/apis/events.k8s.io/v1/namespaces/default/events", &new_event).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["note"], "hello");
    let core = c.get("/api/v1/namespaces/default/events/e1").await.body;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "hello");
    assert_eq!(core["involvedObject"]["name"], "web");
    let by_regarding = c.get("/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dweb").await.body;
    assert_eq!(by_regarding["items"][0]["regarding"]["name"], "web");
    assert_eq!(by_regarding["items"][0]["apiVersion"], "events.k8s.io/v1");
    let by_involved = c.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother").await.body;
    assert_eq!(by_involved["items"], json!([]));

    let hpa_v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]}});
    let v2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let v1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
    assert_eq!(c.post(v2, &hpa_v2).await.code, 201);
    let old = c.get(&format!("{v1}/web")).await.body;
    assert_eq!(old["spec"]["targetCPUUtilizationPercentage"], 60);
    let mut raised = old.clone();
    raised["spec"]["maxReplicas"] = json!(9);
    let put = c.put(&format!("{v1}/web"), &raised).await;
    assert_eq!(put.code, 200, "{}", put.body);
    let after = c.get(&format!("{v2}/web")).await.body;
    assert_eq!(after["spec"]["maxReplicas"], 9);
    assert_eq!(after["spec"]["metrics"].as_array().unwrap().len(), 2, "the v1 round trip kept the memory metric: {after}");
    assert!(after["metadata"].get("annotations").is_none(), "{after}");
    let listed = c.get(v1).await.body;
    assert_eq!(listed["items"][0]["apiVersion"], "autoscaling/v1");
}

#[tokio::test]
async fn two_api_servers_on_one_etcd_serve_the_same_objects() {
    let c = Cluster::start();
    let second = rkube_testkit::ApiServer::start(&c.etcd).expect("second apiserver starts");
    let http = reqwest::Client::new();
    let rv = c.get(CM).await.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let watch = http.get(format!("{}{CM}?watch=true&resourceVersion={rv}", second.url())).send().await.unwrap();
    let created = c.post(CM, &configmap("shared", &[("k", "v")])).await.body;
    // A consistent read on the other server sees the write at once.
    let read: Value = http.get(format!("{}{CM}/shared", second.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, created);
    let listed: Value = http.get(format!("{}{CM}", second.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"][0]["metadata"]["uid"], created["metadata"]["uid"]);
    let mut watch = common::WatchReader::from_response(watch);
    let ev = watch.next(10).await.expect("the other server's watch sees the write");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    // Conflicts are decided by etcd, whichever server a writer uses.
    let mut stale = created.clone();
    stale["data"]["k"] = json!("first");
    assert_eq!(c.put(&format!("{CM}/shared"), &stale).await.code, 200);
    stale["data"]["k"] = json!("second");
    let code = http.put(format!("{}{CM}/shared", second.url())).json(&stale).send().await.unwrap().status().as_u16();
    assert_eq!(code, 409);
}
