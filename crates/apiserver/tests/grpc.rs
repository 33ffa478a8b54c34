//! The gRPC ResourceService against a real rkube-apiserver process and a real etcd: CRUD of a
//! ConfigMap and a Deployment, errors as gRPC statuses carrying the Kubernetes Status,
//! optimistic concurrency, and watches (ordering, completeness, bookmarks, selectors).

mod common;

use common::{Cluster, configmap, deployment, pod};
use rkube_rpc::v1::{self as pb, resource_service_client::ResourceServiceClient};
use rkube_testkit::{ApiServer, Etcd};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = ResourceServiceClient<Channel>;

async fn client(c: &Cluster) -> Client {
    ResourceServiceClient::connect(format!("http://127.0.0.1:{}", c.api.port())).await.expect("gRPC connects")
}

fn cluster_with(args: &[&str]) -> Cluster {
    let etcd = Etcd::start().expect("etcd starts");
    let api = ApiServer::start_with(&etcd, args).expect("apiserver starts");
    Cluster { api, etcd, http: reqwest::Client::new() }
}

fn rref(group: &str, version: &str, resource: &str, ns: &str, name: &str) -> pb::ResourceRef {
    pb::ResourceRef {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: name.into(),
        subresource: String::new(),
    }
}

fn cms(ns: &str, name: &str) -> pb::ResourceRef {
    rref("", "v1", "configmaps", ns, name)
}

fn deploys(ns: &str, name: &str) -> pb::ResourceRef {
    rref("apps", "v1", "deployments", ns, name)
}

fn object(v: &Value) -> Option<pb::Object> {
    Some(pb::Object { data: serde_json::to_vec(v).unwrap(), content_type: "application/json".into() })
}

fn decode(o: Option<&pb::Object>) -> Value {
    let o = o.expect("response carries an object");
    assert_eq!(o.content_type, "application/json");
    serde_json::from_slice(&o.data).expect("object is JSON")
}

fn body(r: Result<tonic::Response<pb::ObjectResponse>, Status>, what: &str) -> Value {
    match r {
        Ok(r) => decode(r.into_inner().object.as_ref()),
        Err(s) => panic!("{what} failed: {:?} {} {}", s.code(), s.message(), String::from_utf8_lossy(s.details())),
    }
}

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

/// The Kubernetes Status in a gRPC error, checked for the reason, the HTTP code and the
/// `x-k8s-reason` metadata.
fn k8s_status(s: &Status, code: Code, reason: &str, http: i64) -> Value {
    assert_eq!(s.code(), code, "gRPC code of {s:?}");
    let st: Value = serde_json::from_slice(s.details())
        .unwrap_or_else(|e| panic!("details are not Status JSON ({e}): {:?}", String::from_utf8_lossy(s.details())));
    assert_eq!(st["kind"], "Status", "{st}");
    assert_eq!(st["apiVersion"], "v1", "{st}");
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], reason, "{st}");
    assert_eq!(st["code"], http, "{st}");
    let meta = s.metadata().get("x-k8s-reason").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(meta.as_deref(), Some(reason), "x-k8s-reason metadata");
    st
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, Status>, what: &str) -> Status {
    match r {
        Ok(v) => panic!("{what} should fail, got {v:?}"),
        Err(s) => s,
    }
}

fn list_req(r: pb::ResourceRef, opts: pb::ListOptions) -> pb::ListRequest {
    pb::ListRequest { r#ref: Some(r), options: Some(opts) }
}

fn create_req(r: pb::ResourceRef, v: &Value) -> pb::CreateRequest {
    pb::CreateRequest { r#ref: Some(r), object: object(v), options: None }
}

fn update_req(r: pb::ResourceRef, v: &Value) -> pb::UpdateRequest {
    pb::UpdateRequest { r#ref: Some(r), object: object(v), options: None }
}

fn merge_patch(r: pb::ResourceRef, patch: &Value) -> pb::PatchRequest {
    pb::PatchRequest {
        r#ref: Some(r),
        patch_type: "application/merge-patch+json".into(),
        patch: serde_json::to_vec(patch).unwrap(),
        options: None,
        force: false,
    }
}

fn delete_req(r: pb::ResourceRef) -> pb::DeleteRequest {
    pb::DeleteRequest { r#ref: Some(r), ..Default::default() }
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list["items"].as_array().expect("items").iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

/// The next watch event within `secs`, or None if the stream ended or stayed quiet.
async fn next_event(stream: &mut tonic::Streaming<pb::WatchEvent>, secs: u64) -> Option<(String, Value)> {
    match tokio::time::timeout(Duration::from_secs(secs), stream.message()).await {
        Ok(Ok(Some(ev))) => Some((ev.r#type.clone(), decode(ev.object.as_ref()))),
        Ok(Ok(None)) => None,
        Ok(Err(s)) => panic!("watch stream failed: {s:?}"),
        Err(_) => None,
    }
}

async fn watch(c: &mut Client, r: pb::ResourceRef, opts: pb::ListOptions) -> tonic::Streaming<pb::WatchEvent> {
    c.watch(list_req(r, opts)).await.expect("watch starts").into_inner()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_create_get_list_update_patch_delete() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;

    let created = body(c.create(create_req(cms("default", ""), &configmap("app", &[("a", "1")]))).await, "create");
    assert_eq!(created["metadata"]["name"], "app");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["apiVersion"], "v1");
    let uid = created["metadata"]["uid"].as_str().expect("uid").to_string();
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let rv1 = rv(&created);

    let got = body(c.get(pb::GetRequest { r#ref: Some(cms("default", "app")), resource_version: String::new() }).await, "get");
    assert_eq!(got, created, "get returns what create returned");
    // The same object over REST.
    let rest = cluster.get("/api/v1/namespaces/default/configmaps/app").await;
    assert_eq!(rest.code, 200);
    assert_eq!(rest.body, created);

    body(c.create(create_req(cms("default", ""), &configmap("other", &[("b", "2")]))).await, "create other");
    let list = body(c.list(list_req(cms("default", ""), Default::default())).await, "list");
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(rv(&list) >= rv1);
    assert_eq!(names(&list), ["app", "other"]);
    // All namespaces: an empty namespace in the ref.
    let all = body(c.list(list_req(cms("", ""), Default::default())).await, "list all");
    assert!(names(&all).contains(&"app".to_string()));
    // Paging with limit/continue.
    let page = body(c.list(list_req(cms("default", ""), pb::ListOptions { limit: 1, ..Default::default() })).await, "page 1");
    assert_eq!(names(&page), ["app"]);
    let token = page["metadata"]["continue"].as_str().expect("continue token").to_string();
    let page2 = body(
        c.list(list_req(cms("default", ""), pb::ListOptions { limit: 1, r#continue: token, ..Default::default() })).await,
        "page 2",
    );
    assert_eq!(names(&page2), ["other"]);

    // Update with the current resourceVersion.
    let mut changed = created.clone();
    changed["data"] = json!({"a": "2", "c": "3"});
    let updated = body(c.update(update_req(cms("default", "app"), &changed)).await, "update");
    assert_eq!(updated["data"], json!({"a": "2", "c": "3"}));
    assert_eq!(updated["metadata"]["uid"], uid.as_str());
    let rv2 = rv(&updated);
    assert!(rv2 > rv1);

    // Merge patch: add a label, change one key, delete another.
    let patched = body(
        c.patch(merge_patch(cms("default", "app"), &json!({"metadata": {"labels": {"tier": "web"}}, "data": {"a": "9", "c": null}})))
            .await,
        "merge patch",
    );
    assert_eq!(patched["data"], json!({"a": "9"}));
    assert_eq!(patched["metadata"]["labels"], json!({"tier": "web"}));
    assert!(rv(&patched) > rv2);
    // JSON patch too.
    let jp = pb::PatchRequest {
        patch_type: "application/json-patch+json".into(),
        patch: serde_json::to_vec(&json!([{"op": "add", "path": "/data/j", "value": "p"}])).unwrap(),
        ..merge_patch(cms("default", "app"), &json!({}))
    };
    let jpatched = body(c.patch(jp).await, "json patch");
    assert_eq!(jpatched["data"], json!({"a": "9", "j": "p"}));

    // ConfigMaps have no status subresource.
    let s = expect_err(c.update_status(update_req(cms("default", "app"), &jpatched)).await, "configmap status");
    k8s_status(&s, Code::NotFound, "NotFound", 404);

    // Delete returns the object; then it is gone.
    let deleted = body(c.delete(delete_req(cms("default", "app"))).await, "delete");
    assert_eq!(deleted["metadata"]["uid"], uid.as_str());
    let s = expect_err(c.get(pb::GetRequest { r#ref: Some(cms("default", "app")), resource_version: String::new() }).await, "get");
    k8s_status(&s, Code::NotFound, "NotFound", 404);
    let list = body(c.list(list_req(cms("default", ""), Default::default())).await, "list");
    assert_eq!(names(&list), ["other"]);

    // DeleteCollection by label.
    body(c.patch(merge_patch(cms("default", "other"), &json!({"metadata": {"labels": {"gone": "yes"}}}))).await, "label");
    let dc = pb::DeleteRequest {
        r#ref: Some(cms("default", "")),
        list_options: Some(pb::ListOptions { label_selector: "gone=yes".into(), ..Default::default() }),
        ..Default::default()
    };
    let removed = body(c.delete_collection(dc).await, "delete collection");
    assert_eq!(names(&removed), ["other"]);
    let list = body(c.list(list_req(cms("default", ""), Default::default())).await, "list");
    assert!(names(&list).is_empty(), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_spec_and_status_are_separate() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;

    let created = body(c.create(create_req(deploys("default", ""), &deployment("web", 2))).await, "create");
    assert_eq!(created["kind"], "Deployment");
    assert_eq!(created["apiVersion"], "apps/v1");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["replicas"], 2);
    // Defaults are applied.
    assert_eq!(created["spec"]["strategy"]["type"], "RollingUpdate", "{created}");
    assert_eq!(created["spec"]["revisionHistoryLimit"], 10, "{created}");

    let got = body(c.get(pb::GetRequest { r#ref: Some(deploys("default", "web")), resource_version: String::new() }).await, "get");
    assert_eq!(got, created);
    let list = body(c.list(list_req(deploys("default", ""), Default::default())).await, "list");
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(names(&list), ["web"]);

    // A main-resource update changes spec (generation +1) but not status.
    let mut next = got.clone();
    next["spec"]["replicas"] = json!(3);
    next["status"] = json!({"replicas": 99});
    let updated = body(c.update(update_req(deploys("default", "web"), &next)).await, "update");
    assert_eq!(updated["spec"]["replicas"], 3);
    assert_eq!(updated["metadata"]["generation"], 2);
    assert!(updated["status"].get("replicas").is_none_or(|r| r != 99), "update must not write status: {updated}");

    // UpdateStatus changes status only; generation stays.
    let mut st = updated.clone();
    st["status"] = json!({"replicas": 3, "readyReplicas": 1, "observedGeneration": 2});
    st["spec"]["replicas"] = json!(7);
    let status = body(c.update_status(update_req(deploys("default", "web"), &st)).await, "update status");
    assert_eq!(status["status"]["replicas"], 3);
    assert_eq!(status["status"]["readyReplicas"], 1);
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(status["spec"]["replicas"], 3, "UpdateStatus must not write spec");
    assert_eq!(status["metadata"]["generation"], 2);
    assert!(rv(&status) > rv(&updated));

    // Also as an Update on the status subresource.
    let mut st2 = status.clone();
    st2["status"]["readyReplicas"] = json!(3);
    let mut sref = deploys("default", "web");
    sref.subresource = "status".into();
    let status2 = body(c.update(update_req(sref.clone(), &st2)).await, "update status subresource");
    assert_eq!(status2["status"]["readyReplicas"], 3);

    // Merge patch of spec and of status.
    let patched = body(c.patch(merge_patch(deploys("default", "web"), &json!({"spec": {"replicas": 5}}))).await, "patch");
    assert_eq!(patched["spec"]["replicas"], 5);
    assert_eq!(patched["metadata"]["generation"], 3);
    assert_eq!(patched["status"]["readyReplicas"], 3);
    let spatched = body(c.patch(merge_patch(sref, &json!({"status": {"availableReplicas": 2}}))).await, "patch status");
    assert_eq!(spatched["status"]["availableReplicas"], 2);
    assert_eq!(spatched["metadata"]["generation"], 3);

    // The scale subresource reads the replicas.
    let mut scale_ref = deploys("default", "web");
    scale_ref.subresource = "scale".into();
    let scale = body(c.get(pb::GetRequest { r#ref: Some(scale_ref), resource_version: String::new() }).await, "get scale");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);

    body(c.delete(delete_req(deploys("default", "web"))).await, "delete");
    let s = expect_err(c.get(pb::GetRequest { r#ref: Some(deploys("default", "web")), resource_version: String::new() }).await, "get");
    let st = k8s_status(&s, Code::NotFound, "NotFound", 404);
    assert_eq!(st["message"], r#"deployments.apps "web" not found"#);
    assert_eq!(st["details"]["name"], "web");
    assert_eq!(st["details"]["group"], "apps");
    assert_eq!(st["details"]["kind"], "deployments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_kubernetes_status() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;

    // NotFound.
    let s = expect_err(c.get(pb::GetRequest { r#ref: Some(cms("default", "nope")), resource_version: String::new() }).await, "get");
    let st = k8s_status(&s, Code::NotFound, "NotFound", 404);
    assert_eq!(st["message"], r#"configmaps "nope" not found"#);
    assert_eq!(st["details"]["name"], "nope");
    assert_eq!(st["details"]["kind"], "configmaps");
    let s = expect_err(c.delete(delete_req(cms("default", "nope"))).await, "delete");
    k8s_status(&s, Code::NotFound, "NotFound", 404);
    let s = expect_err(c.patch(merge_patch(cms("default", "nope"), &json!({"data": {"a": "b"}}))).await, "patch");
    k8s_status(&s, Code::NotFound, "NotFound", 404);
    // Creating into a namespace that does not exist.
    let s = expect_err(c.create(create_req(cms("no-such-ns", ""), &configmap("x", &[]))).await, "create in missing ns");
    let st = k8s_status(&s, Code::NotFound, "NotFound", 404);
    assert_eq!(st["message"], r#"namespaces "no-such-ns" not found"#);
    // A resource the server does not serve.
    let s = expect_err(c.list(list_req(rref("", "v1", "frobnicators", "default", ""), Default::default())).await, "list");
    assert_eq!(s.code(), Code::NotFound);

    // AlreadyExists.
    let cm = body(c.create(create_req(cms("default", ""), &configmap("dup", &[("a", "1")]))).await, "create");
    let s = expect_err(c.create(create_req(cms("default", ""), &configmap("dup", &[]))).await, "second create");
    let st = k8s_status(&s, Code::AlreadyExists, "AlreadyExists", 409);
    assert_eq!(st["message"], r#"configmaps "dup" already exists"#);
    assert_eq!(st["details"]["name"], "dup");

    // Conflict: an update with a stale resourceVersion.
    let mut fresh = cm.clone();
    fresh["data"]["a"] = json!("2");
    body(c.update(update_req(cms("default", "dup"), &fresh)).await, "update");
    let mut stale = cm.clone();
    stale["data"]["a"] = json!("3");
    let s = expect_err(c.update(update_req(cms("default", "dup"), &stale)).await, "stale update");
    let st = k8s_status(&s, Code::Aborted, "Conflict", 409);
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"Operation cannot be fulfilled on configmaps "dup""#) && msg.contains("the object has been modified"),
        "{msg}"
    );
    // A delete precondition on a stale resourceVersion is a Conflict too.
    let s = expect_err(
        c.delete(pb::DeleteRequest {
            precondition_resource_version: cm["metadata"]["resourceVersion"].as_str().unwrap().into(),
            ..delete_req(cms("default", "dup"))
        })
        .await,
        "stale delete",
    );
    k8s_status(&s, Code::Aborted, "Conflict", 409);

    // Invalid (422): a Pod without an image.
    let mut bad = pod("bad", "x");
    bad["spec"]["containers"][0].as_object_mut().unwrap().remove("image");
    let s = expect_err(c.create(create_req(rref("", "v1", "pods", "default", ""), &bad)).await, "invalid pod");
    let st = k8s_status(&s, Code::InvalidArgument, "Invalid", 422);
    assert_eq!(st["details"]["kind"], "Pod");
    assert_eq!(st["details"]["name"], "bad");
    let causes = st["details"]["causes"].as_array().expect("causes");
    assert!(
        causes.iter().any(|c| c["field"] == "spec.containers[0].image" && c["reason"] == "FieldValueRequired"),
        "causes: {causes:?}"
    );
    assert!(st["message"].as_str().unwrap().contains("spec.containers[0].image: Required value"), "{st}");
    // An invalid name.
    let s = expect_err(c.create(create_req(cms("default", ""), &configmap("Bad_Name", &[]))).await, "invalid name");
    let st = k8s_status(&s, Code::InvalidArgument, "Invalid", 422);
    assert!(st["details"]["causes"].as_array().unwrap().iter().any(|c| c["field"] == "metadata.name"), "{st}");

    // BadRequest (400) is InvalidArgument too, told apart by the reason.
    let s = expect_err(
        c.create(pb::CreateRequest {
            r#ref: Some(cms("default", "")),
            object: Some(pb::Object { data: b"{not json".to_vec(), content_type: "application/json".into() }),
            options: None,
        })
        .await,
        "garbage body",
    );
    k8s_status(&s, Code::InvalidArgument, "BadRequest", 400);
    let s = expect_err(
        c.list(list_req(cms("default", ""), pb::ListOptions { label_selector: "a in (".into(), ..Default::default() })).await,
        "bad selector",
    );
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // Nothing was stored by the failed writes.
    let list = body(c.list(list_req(cms("default", ""), Default::default())).await, "list");
    assert_eq!(names(&list), ["dup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_from_one_version_one_wins() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;
    let base = body(c.create(create_req(cms("default", ""), &configmap("race", &[("winner", "none")]))).await, "create");

    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut c = c.clone();
        let mut obj = base.clone();
        obj["data"]["winner"] = json!(i.to_string());
        tasks.push(tokio::spawn(async move { (i, c.update(update_req(cms("default", "race"), &obj)).await) }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match r {
            Ok(resp) => winners.push((i, decode(resp.into_inner().object.as_ref()))),
            Err(s) => {
                k8s_status(&s, Code::Aborted, "Conflict", 409);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {:?}", winners.iter().map(|w| w.0).collect::<Vec<_>>());
    let (i, won) = &winners[0];
    let now = body(c.get(pb::GetRequest { r#ref: Some(cms("default", "race")), resource_version: String::new() }).await, "get");
    assert_eq!(now["data"]["winner"], i.to_string());
    assert_eq!(now["metadata"]["resourceVersion"], won["metadata"]["resourceVersion"]);
    assert!(rv(&now) > rv(&base));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_write_in_order() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched"}});
    body(c.create(create_req(rref("", "v1", "namespaces", "", ""), &ns)).await, "create namespace");
    // Noise in another namespace must not show up.
    body(c.create(create_req(cms("default", ""), &configmap("noise", &[]))).await, "noise");

    let list = body(c.list(list_req(cms("watched", ""), Default::default())).await, "list");
    let start = rv(&list);
    let mut stream =
        watch(&mut c, cms("watched", ""), pb::ListOptions { resource_version: start.to_string(), ..Default::default() }).await;

    // 4 writers x 10 objects x (create, 3 updates, delete) = 200 writes.
    const WRITERS: usize = 4;
    const OBJECTS: usize = 10;
    const UPDATES: usize = 3;
    const TOTAL: usize = WRITERS * OBJECTS * (UPDATES + 2);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = c.clone();
        writers.push(tokio::spawn(async move {
            let mut rvs = Vec::new();
            for o in 0..OBJECTS {
                let name = format!("w{w}-o{o}");
                let mut obj = body(c.create(create_req(cms("watched", ""), &configmap(&name, &[("n", "0")]))).await, "create");
                rvs.push(rv(&obj));
                for u in 1..=UPDATES {
                    obj["data"]["n"] = json!(u.to_string());
                    obj = body(c.update(update_req(cms("watched", &name), &obj)).await, "update");
                    rvs.push(rv(&obj));
                }
                body(c.delete(delete_req(cms("watched", &name))).await, "delete");
            }
            rvs
        }));
    }
    // Also written in the noise namespace meanwhile.
    body(c.patch(merge_patch(cms("default", "noise"), &json!({"data": {"x": "y"}}))).await, "noise");

    let mut events: Vec<(String, Value)> = Vec::new();
    while events.len() < TOTAL {
        match next_event(&mut stream, 30).await {
            Some(ev) => events.push(ev),
            None => panic!("watch ended or stalled after {} of {TOTAL} events", events.len()),
        }
    }
    let mut write_rvs = HashSet::new();
    for w in writers {
        write_rvs.extend(w.await.unwrap());
    }
    // No more events than writes.
    assert!(next_event(&mut stream, 1).await.is_none(), "more events than writes");

    let mut last = start;
    let mut per_object: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut event_rvs = HashSet::new();
    for (kind, obj) in &events {
        let this = rv(obj);
        assert!(this > last, "resourceVersions strictly increase: {last} then {this} ({kind})");
        last = this;
        event_rvs.insert(this);
        assert_eq!(obj["metadata"]["namespace"], "watched", "{obj}");
        assert_eq!(obj["kind"], "ConfigMap");
        *counts.entry(kind.clone()).or_default() += 1;
        per_object
            .entry(obj["metadata"]["name"].as_str().unwrap().to_string())
            .or_default()
            .push((kind.clone(), obj["data"]["n"].as_str().unwrap_or("").to_string()));
    }
    assert_eq!(counts.get("ADDED"), Some(&(WRITERS * OBJECTS)), "{counts:?}");
    assert_eq!(counts.get("MODIFIED"), Some(&(WRITERS * OBJECTS * UPDATES)), "{counts:?}");
    assert_eq!(counts.get("DELETED"), Some(&(WRITERS * OBJECTS)), "{counts:?}");
    assert_eq!(per_object.len(), WRITERS * OBJECTS);
    for (name, seq) in &per_object {
        let expected: Vec<(String, String)> = vec![
            ("ADDED".into(), "0".into()),
            ("MODIFIED".into(), "1".into()),
            ("MODIFIED".into(), "2".into()),
            ("MODIFIED".into(), "3".into()),
            ("DELETED".into(), "3".into()),
        ];
        assert_eq!(seq, &expected, "events of {name}");
    }
    // Every create/update a writer saw is an event with the same resourceVersion.
    let missing: Vec<_> = write_rvs.difference(&event_rvs).collect();
    assert!(missing.is_empty(), "writes without events: {missing:?}");

    // Watching again from the middle replays exactly the rest.
    let mid = rv(&events[TOTAL / 2 - 1].1);
    let mut replay =
        watch(&mut c, cms("watched", ""), pb::ListOptions { resource_version: mid.to_string(), ..Default::default() }).await;
    for (kind, obj) in &events[TOTAL / 2..] {
        let (k, o) = next_event(&mut replay, 10).await.expect("replayed event");
        assert_eq!((&k, rv(&o)), (kind, rv(obj)));
    }
    assert!(next_event(&mut replay, 1).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_bookmarks_gets_bookmarks() {
    let cluster = cluster_with(&["--watch-bookmark-interval", "1s"]);
    let mut c = client(&cluster).await;
    let list = body(c.list(list_req(cms("default", ""), Default::default())).await, "list");
    let start = rv(&list);

    let mut with = watch(
        &mut c,
        cms("default", ""),
        pb::ListOptions { resource_version: start.to_string(), allow_watch_bookmarks: true, ..Default::default() },
    )
    .await;
    let mut without =
        watch(&mut c, cms("default", ""), pb::ListOptions { resource_version: start.to_string(), ..Default::default() }).await;

    let (kind, obj) = next_event(&mut with, 5).await.expect("a bookmark within 5 s");
    assert_eq!(kind, "BOOKMARK", "{obj}");
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["apiVersion"], "v1");
    assert!(rv(&obj) >= start, "bookmark at {} before the start {start}", rv(&obj));

    // After a write the watcher sees it, then bookmarks at or after it.
    let cm = body(c.create(create_req(cms("default", ""), &configmap("marked", &[]))).await, "create");
    let written = rv(&cm);
    let mut saw_added = false;
    let mut later_bookmark = None;
    for _ in 0..10 {
        match next_event(&mut with, 5).await {
            Some((k, o)) if k == "ADDED" => {
                assert_eq!(o["metadata"]["name"], "marked");
                saw_added = true;
            }
            Some((k, o)) if k == "BOOKMARK" => {
                if saw_added {
                    later_bookmark = Some(rv(&o));
                    break;
                }
            }
            Some((k, o)) => panic!("unexpected {k} {o}"),
            None => break,
        }
    }
    assert!(saw_added, "the write shows up on the bookmark watch");
    let b = later_bookmark.expect("a bookmark after the write");
    assert!(b >= written, "bookmark {b} after write {written}");

    // A watcher that did not ask for bookmarks gets none.
    let (kind, _) = next_event(&mut without, 5).await.expect("the write");
    assert_eq!(kind, "ADDED");
    assert!(next_event(&mut without, 3).await.is_none(), "no bookmarks without allow_watch_bookmarks");

    // sendInitialEvents: the current state, then a bookmark marking its end.
    let mut initial = watch(
        &mut c,
        cms("default", ""),
        pb::ListOptions { send_initial_events: true, allow_watch_bookmarks: true, resource_version_match: "NotOlderThan".into(), ..Default::default() },
    )
    .await;
    let (kind, obj) = next_event(&mut initial, 5).await.expect("initial event");
    assert_eq!((kind.as_str(), obj["metadata"]["name"].as_str()), ("ADDED", Some("marked")));
    let (kind, obj) = next_event(&mut initial, 5).await.expect("end bookmark");
    assert_eq!(kind, "BOOKMARK");
    assert_eq!(obj["metadata"]["annotations"]["k8s.io/initial-events-end"], "true", "{obj}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selectors_filter_list_and_watch() {
    let cluster = Cluster::start();
    let mut c = client(&cluster).await;
    let labelled = |name: &str, app: &str| {
        let mut cm = configmap(name, &[]);
        cm["metadata"]["labels"] = json!({"app": app});
        cm
    };
    body(c.create(create_req(cms("default", ""), &labelled("a1", "a"))).await, "a1");
    body(c.create(create_req(cms("default", ""), &labelled("b1", "b"))).await, "b1");
    body(c.create(create_req(cms("default", ""), &configmap("plain", &[]))).await, "plain");

    let sel = |s: &str| pb::ListOptions { label_selector: s.into(), ..Default::default() };
    let list = body(c.list(list_req(cms("default", ""), sel("app=a"))).await, "list app=a");
    assert_eq!(names(&list), ["a1"]);
    assert_eq!(names(&body(c.list(list_req(cms("default", ""), sel("app"))).await, "app")), ["a1", "b1"]);
    assert_eq!(names(&body(c.list(list_req(cms("default", ""), sel("!app"))).await, "!app")), ["plain"]);
    assert_eq!(names(&body(c.list(list_req(cms("default", ""), sel("app in (a,b)"))).await, "in")), ["a1", "b1"]);
    assert_eq!(names(&body(c.list(list_req(cms("default", ""), sel("app!=a"))).await, "!=")), ["b1", "plain"]);
    // Field selector on the name.
    let by_name = pb::ListOptions { field_selector: "metadata.name=b1".into(), ..Default::default() };
    assert_eq!(names(&body(c.list(list_req(cms("default", ""), by_name)).await, "field")), ["b1"]);

    let start = rv(&list);
    let mut w = watch(
        &mut c,
        cms("default", ""),
        pb::ListOptions { label_selector: "app=a".into(), resource_version: start.to_string(), ..Default::default() },
    )
    .await;
    // Not selected: no event.
    body(c.create(create_req(cms("default", ""), &labelled("b2", "b"))).await, "b2");
    // Selected: ADDED.
    body(c.create(create_req(cms("default", ""), &labelled("a2", "a"))).await, "a2");
    // Leaves the selection: DELETED; enters it: ADDED; changes inside it: MODIFIED.
    body(c.patch(merge_patch(cms("default", "a1"), &json!({"metadata": {"labels": {"app": "b"}}}))).await, "a1 -> b");
    body(c.patch(merge_patch(cms("default", "b1"), &json!({"metadata": {"labels": {"app": "a"}}}))).await, "b1 -> a");
    body(c.patch(merge_patch(cms("default", "a2"), &json!({"data": {"k": "v"}}))).await, "a2 data");
    body(c.patch(merge_patch(cms("default", "b2"), &json!({"data": {"k": "v"}}))).await, "b2 data");
    body(c.delete(delete_req(cms("default", "a2"))).await, "delete a2");
    body(c.delete(delete_req(cms("default", "b2"))).await, "delete b2");

    let mut got = Vec::new();
    while let Some((k, o)) = next_event(&mut w, 3).await {
        got.push((k, o["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let want: Vec<(String, String)> = [("ADDED", "a2"), ("DELETED", "a1"), ("ADDED", "b1"), ("MODIFIED", "a2"), ("DELETED", "a2")]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    assert_eq!(got, want);

    // A watch of one object by name in the ref.
    let mut one = watch(&mut c, cms("default", "b1"), pb::ListOptions { resource_version: start.to_string(), ..Default::default() }).await;
    let (k, o) = next_event(&mut one, 5).await.expect("b1's relabel");
    assert_eq!((k.as_str(), o["metadata"]["name"].as_str()), ("MODIFIED", Some("b1")));
    assert!(next_event(&mut one, 1).await.is_none(), "only b1's events");

    // A malformed selector is refused before the stream starts.
    let s = expect_err(
        c.watch(list_req(cms("default", ""), pb::ListOptions { label_selector: "app in (".into(), ..Default::default() })).await,
        "bad selector watch",
    );
    assert_eq!(s.code(), Code::InvalidArgument);
}
