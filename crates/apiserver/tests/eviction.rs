//! PodDisruptionBudgets and the `pods/eviction` subresource against a real etcd and API
//! server. No controller-manager runs here: the tests write each budget's status themselves,
//! as the disruption controller would, so every answer is deterministic.

mod common;

use common::{Cluster, Reply, pod};
use serde_json::{Value, json};

const NS: &str = "/api/v1/namespaces/default";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// A pod labelled `app`, Running and Ready (or not), created unbound so deletion is immediate.
async fn running_pod(c: &Cluster, name: &str, app: &str, ready: bool) {
    let mut p = pod(name, "busybox");
    p["metadata"]["labels"] = json!({"app": app});
    let created = c.post(&format!("{NS}/pods"), &p).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let status = rkube_testkit::podstatus::running("10.244.0.9", ready);
    let patched = c.patch(&format!("{NS}/pods/{name}/status"), "application/strategic-merge-patch+json", &status).await;
    assert_eq!(patched.code, 200, "{}", patched.body);
}

fn budget(name: &str, app: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": spec})
}

/// Creates a budget and writes the status the disruption controller would compute.
async fn budget_with_status(c: &Cluster, name: &str, app: &str, spec: Value, healthy: (i32, i32), expected: i32) {
    let created = c.post(PDBS, &budget(name, app, spec)).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let (current, desired) = healthy;
    let allowed = (current - desired).max(0);
    let mut obj = created.body.clone();
    obj["status"] = json!({
        "observedGeneration": 1, "currentHealthy": current, "desiredHealthy": desired, "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [{"type": "DisruptionAllowed", "status": if allowed > 0 { "True" } else { "False" },
            "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" }, "message": "",
            "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}],
    });
    let written = c.put(&format!("{PDBS}/{name}/status"), &obj).await;
    assert_eq!(written.code, 200, "{}", written.body);
}

fn eviction(name: &str, delete_options: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"},
           "deleteOptions": delete_options})
}

async fn evict(c: &Cluster, name: &str) -> Reply {
    c.post(&format!("{NS}/pods/{name}/eviction"), &eviction(name, json!({}))).await
}

/// The Status of a successful eviction.
fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

#[tokio::test]
async fn discovery_lists_budgets_and_the_eviction_subresource() {
    let c = Cluster::start();
    let core = c.get("/api/v1").await.body;
    let eviction = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").cloned();
    assert_eq!(
        eviction,
        Some(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
                    "version": "v1", "kind": "Eviction", "verbs": ["create"]}))
    );
    let groups = c.get("/apis").await.body;
    let policy = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "policy").cloned().unwrap();
    assert_eq!(policy["preferredVersion"]["groupVersion"], "policy/v1");
    let policy_v1 = c.get("/apis/policy/v1").await.body;
    let names: Vec<&str> =
        policy_v1["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["poddisruptionbudgets", "poddisruptionbudgets/status"]);
    assert_eq!(policy_v1["resources"][0]["shortNames"], json!(["pdb"]));
    assert!(policy_v1["resources"][0].get("categories").is_none());
}

#[tokio::test]
async fn budgets_are_validated_versioned_and_printed() {
    let c = Cluster::start();
    let created = c.post(PDBS, &budget("web", "web", json!({"minAvailable": "50%"}))).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert_eq!(created.body["metadata"]["generation"], 1);
    assert!(created.body.get("status").is_none(), "a new budget has no status: {}", created.body);

    let both = c.post(PDBS, &budget("both", "web", json!({"minAvailable": 1, "maxUnavailable": 1}))).await;
    assert_eq!(both.code, 422);
    assert_eq!(both.body["details"]["causes"][0]["field"], "spec");
    let over = c.post(PDBS, &budget("over", "web", json!({"maxUnavailable": "150%"}))).await;
    assert_eq!(over.code, 422);
    assert_eq!(over.body["details"]["causes"][0]["field"], "spec.maxUnavailable");
    assert_eq!(over.body["details"]["causes"][0]["message"], "Invalid value: \"150%\": must not be greater than 100%");

    // A spec change moves the generation; a status write does not.
    let bumped =
        c.patch(&format!("{PDBS}/web"), "application/merge-patch+json", &json!({"spec": {"minAvailable": 2}})).await;
    assert_eq!(bumped.body["metadata"]["generation"], 2, "{}", bumped.body);
    let status = json!({"status": {"observedGeneration": 2, "disruptionsAllowed": 0, "currentHealthy": 0,
        "desiredHealthy": 2, "expectedPods": 0}});
    let written = c.patch(&format!("{PDBS}/web/status"), "application/merge-patch+json", &status).await;
    assert_eq!(written.code, 200, "{}", written.body);
    assert_eq!(written.body["metadata"]["generation"], 2);
    assert_eq!(written.body["status"]["desiredHealthy"], 2);

    c.post(PDBS, &budget("db", "db", json!({"maxUnavailable": 1}))).await;
    let table = c
        .http
        .get(c.url(PDBS))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let headers: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(headers, ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"]);
    let cells: Vec<Value> =
        table["rows"].as_array().unwrap().iter().map(|r| json!(r["cells"].as_array().unwrap()[..4])).collect();
    assert_eq!(cells, [json!(["db", "N/A", "1", 0]), json!(["web", "2", "N/A", 0])]);
}

#[tokio::test]
async fn an_eviction_spends_the_budget_and_the_next_one_is_refused() {
    let c = Cluster::start();
    for i in 0..3 {
        running_pod(&c, &format!("web-{i}"), "web", true).await;
    }
    budget_with_status(&c, "web", "web", json!({"minAvailable": 2}), (3, 2), 3).await;

    // A dry run answers as the real thing would and changes nothing.
    let dry = c.post(&format!("{NS}/pods/web-0/eviction?dryRun=All"), &eviction("web-0", json!({}))).await;
    assert_eq!((dry.code, dry.body.clone()), (201, success()));
    assert_eq!(c.get(&format!("{NS}/pods/web-0")).await.code, 200);
    assert_eq!(c.get(&format!("{PDBS}/web")).await.body["status"]["disruptionsAllowed"], 1);

    let first = evict(&c, "web-0").await;
    assert_eq!((first.code, first.body.clone()), (201, success()));
    assert_eq!(c.get(&format!("{NS}/pods/web-0")).await.code, 404);
    let pdb = c.get(&format!("{PDBS}/web")).await.body;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert!(pdb["status"]["disruptedPods"]["web-0"].is_string(), "{pdb}");
    assert_eq!(pdb["status"]["conditions"][0]["reason"], "InsufficientPods");
    assert_eq!(pdb["status"]["conditions"][0]["status"], "False");

    let second = evict(&c, "web-1").await;
    assert_eq!(second.code, 429);
    assert_eq!(
        second.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": VIOLATION,
               "reason": "TooManyRequests", "code": 429,
               "details": {"causes": [{"reason": "DisruptionBudget",
                   "message": "The disruption budget web needs 2 healthy pods and has 3 currently"}]}})
    );
    assert!(second.headers.get("retry-after").is_none());
    assert_eq!(c.get(&format!("{NS}/pods/web-1")).await.code, 200, "a refused eviction deletes nothing");
}

#[tokio::test]
async fn budgets_that_block_and_pods_without_budgets() {
    let c = Cluster::start();
    running_pod(&c, "db-0", "db", true).await;
    budget_with_status(&c, "db", "db", json!({"maxUnavailable": 0}), (1, 1), 1).await;
    let blocked = evict(&c, "db-0").await;
    assert_eq!((blocked.code, blocked.body["reason"].as_str()), (429, Some("TooManyRequests")));
    assert_eq!(
        blocked.body["details"]["causes"][0]["message"],
        "The disruption budget db needs 1 healthy pods and has 1 currently"
    );

    running_pod(&c, "lonely", "lonely", true).await;
    let free = evict(&c, "lonely").await;
    assert_eq!((free.code, free.body.clone()), (201, success()));
    assert_eq!(c.get(&format!("{NS}/pods/lonely")).await.code, 404);

    let missing = evict(&c, "nope").await;
    assert_eq!(missing.code, 404);
    assert_eq!(missing.body["reason"], "NotFound");
    assert_eq!(missing.body["message"], "pods \"nope\" not found");

    let mismatch = c.post(&format!("{NS}/pods/db-0/eviction"), &eviction("other", json!({}))).await;
    assert_eq!(
        (mismatch.code, mismatch.body["message"].as_str()),
        (400, Some("name in URL does not match name in Eviction object"))
    );

    // A budget the controller has not processed yet: 429 with a hint to come back.
    running_pod(&c, "new-0", "new", true).await;
    assert_eq!(c.post(PDBS, &budget("new", "new", json!({"minAvailable": 0}))).await.code, 201);
    let unprocessed = evict(&c, "new-0").await;
    assert_eq!(unprocessed.code, 429);
    assert_eq!(unprocessed.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("10"));
    assert_eq!(
        unprocessed.body["details"]["causes"][0]["message"],
        "The disruption budget new is still being processed by the server."
    );

    // Two budgets over one pod are not supported.
    running_pod(&c, "twice-0", "twice", true).await;
    budget_with_status(&c, "twice-a", "twice", json!({"minAvailable": 0}), (1, 0), 1).await;
    budget_with_status(&c, "twice-b", "twice", json!({"minAvailable": 0}), (1, 0), 1).await;
    let two = evict(&c, "twice-0").await;
    assert_eq!(two.code, 500);
    assert_eq!(
        two.body["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}

#[tokio::test]
async fn pods_that_disrupt_nothing_more_skip_the_budget() {
    let c = Cluster::start();
    running_pod(&c, "job-0", "job", true).await;
    running_pod(&c, "job-1", "job", false).await;
    running_pod(&c, "job-2", "job", false).await;
    budget_with_status(&c, "job", "job", json!({"minAvailable": 1}), (1, 1), 3).await;
    // A finished pod goes whatever the budget says.
    let done = c
        .patch(
            &format!("{NS}/pods/job-0/status"),
            "application/merge-patch+json",
            &json!({"status": {"phase": "Succeeded"}}),
        )
        .await;
    assert_eq!(done.code, 200);
    assert_eq!(evict(&c, "job-0").await.code, 201);
    // An unready pod may go while the application is healthy (IfHealthyBudget, the default),
    // without spending the budget.
    assert_eq!(evict(&c, "job-1").await.code, 201);
    assert_eq!(c.get(&format!("{PDBS}/job")).await.body["status"]["disruptionsAllowed"], 0);
    assert!(c.get(&format!("{PDBS}/job")).await.body["status"].get("disruptedPods").is_none());

    // Once the application is unhealthy, unready pods are guarded too, unless AlwaysAllow.
    let unhealthy = json!({"status": {"currentHealthy": 0}});
    c.patch(&format!("{PDBS}/job/status"), "application/merge-patch+json", &unhealthy).await;
    assert_eq!(evict(&c, "job-2").await.code, 429);
    let always = json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}});
    c.patch(&format!("{PDBS}/job"), "application/merge-patch+json", &always).await;
    c.patch(
        &format!("{PDBS}/job/status"),
        "application/merge-patch+json",
        &json!({"status": {"observedGeneration": 2}}),
    )
    .await;
    assert_eq!(evict(&c, "job-2").await.code, 201);
}

#[tokio::test]
async fn delete_options_are_honoured_and_the_pod_is_marked() {
    let c = Cluster::start();
    // Bound to a node, so the deletion is graceful and the pod stays to be looked at.
    let mut p = pod("web-0", "busybox");
    p["metadata"]["labels"] = json!({"app": "web"});
    p["spec"]["nodeName"] = json!("n1");
    let created = c.post(&format!("{NS}/pods"), &p).await;
    assert_eq!(created.code, 201, "{}", created.body);
    let status = rkube_testkit::podstatus::running("10.244.0.9", true);
    c.patch(&format!("{NS}/pods/web-0/status"), "application/strategic-merge-patch+json", &status).await;
    budget_with_status(&c, "web", "web", json!({"maxUnavailable": 1}), (1, 0), 1).await;

    let wrong_uid = eviction("web-0", json!({"preconditions": {"uid": "not-the-uid"}}));
    let refused = c.post(&format!("{NS}/pods/web-0/eviction"), &wrong_uid).await;
    assert_eq!((refused.code, refused.body["reason"].as_str()), (409, Some("Conflict")), "{}", refused.body);

    let uid = created.body["metadata"]["uid"].clone();
    assert_eq!(
        refused.body["message"].as_str().unwrap_or_default(),
        format!(
            "Operation cannot be fulfilled on Pod \"web-0\": the UID in the precondition (not-the-uid) does not match \
             the UID in record ({}). The object might have been deleted and then recreated",
            uid.as_str().unwrap_or_default()
        )
    );
    let graceful = eviction("web-0", json!({"gracePeriodSeconds": 7, "preconditions": {"uid": uid}}));
    let evicted = c.post(&format!("{NS}/pods/web-0/eviction"), &graceful).await;
    assert_eq!(evicted.code, 201, "{}", evicted.body);
    let pod = c.get(&format!("{NS}/pods/web-0")).await.body;
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 7);
    let target = pod["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "DisruptionTarget");
    let target = target.cloned().unwrap_or_default();
    assert_eq!(
        (target["status"].as_str(), target["reason"].as_str(), target["message"].as_str()),
        (Some("True"), Some("EvictionByEvictionAPI"), Some("Eviction API: evicting"))
    );
    // The refused eviction spent nothing: the budget's one disruption went to this pod.
    let pdb = c.get(&format!("{PDBS}/web")).await.body;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    // Evicting a pod that is already going deletes again without asking the budget.
    assert_eq!(evict(&c, "web-0").await.code, 201);
}
