//! The disruption controller against a real API server (with the ReplicaSet and Deployment
//! controllers making pods): budget status as pods become Ready, evictions spending the
//! budget, scale-based budgets, unmanaged and uncomputable budgets, and stale DisruptionTarget
//! conditions. The tests play the kubelet.

mod common;

use common::Cluster;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use rkube_client::{Api, ListParams, PatchType};
use serde_json::{Value, json};

const NS: &str = "default";

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .expect("a valid ReplicaSet")
}

fn budget(name: &str, app: &str, spec: Value) -> PodDisruptionBudget {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    serde_json::from_value(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": NS}, "spec": spec}))
    .expect("a valid PodDisruptionBudget")
}

/// Active pods labelled `app=<app>`, by name.
async fn pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    let mut list: Vec<Pod> = pods
        .list(&ListParams::labels(&format!("app={app}")))
        .await
        .expect("pods listed")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    list
}

/// (expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed) once observed.
fn counts(s: &PodDisruptionBudgetStatus) -> (i32, i32, i32, i32) {
    (s.expected_pods, s.current_healthy, s.desired_healthy, s.disruptions_allowed)
}

/// Waits until the budget's status, computed for its current generation, has these counts.
async fn status_is(c: &Cluster, name: &str, want: (i32, i32, i32, i32)) -> PodDisruptionBudgetStatus {
    let api = c.api::<PodDisruptionBudget>(Some(NS));
    c.eventually(30, &format!("budget {name} at {want:?}"), || async {
        let pdb = api.get(name).await.ok()?;
        let status = pdb.status?;
        (status.observed_generation == pdb.metadata.generation && counts(&status) == want).then_some(status)
    })
    .await
}

fn condition(s: &PodDisruptionBudgetStatus) -> (String, String) {
    let c =
        s.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed").expect("a DisruptionAllowed condition");
    (c.status.clone(), c.reason.clone())
}

/// POSTs an Eviction; answers the HTTP code and the Status.
async fn evict(c: &Cluster, pod: &str) -> (u16, Value) {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NS}});
    let url = format!("{}/api/v1/namespaces/{NS}/pods/{pod}/eviction", c.api.url());
    let resp = reqwest::Client::new().post(url).json(&body).send().await.expect("eviction sent");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_of_three_with_min_available_two_allows_one_disruption() {
    let c = Cluster::start("replicaset,disruption", &[]);
    let pods = c.api::<Pod>(Some(NS));
    c.api::<ReplicaSet>(Some(NS)).create(&replica_set("web", 3)).await.unwrap();
    c.api::<PodDisruptionBudget>(Some(NS)).create(&budget("web", "web", json!({"minAvailable": 2}))).await.unwrap();

    // Pods exist but none is Ready: nothing may be disrupted.
    let status = status_is(&c, "web", (3, 0, 2, 0)).await;
    assert_eq!(condition(&status), ("False".into(), "InsufficientPods".into()));

    for p in pods_of(&pods, "web").await {
        c.set_pod_running(&p, "n1", true).await;
    }
    let status = status_is(&c, "web", (3, 3, 2, 1)).await;
    assert_eq!(condition(&status), ("True".into(), "SufficientPods".into()));

    // One eviction spends the budget; the next is refused until a replacement is Ready.
    let names: Vec<String> = pods_of(&pods, "web").await.iter().filter_map(|p| p.metadata.name.clone()).collect();
    let (code, body) = evict(&c, &names[0]).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = evict(&c, &names[1]).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");

    // The evicted pod is gone (so it leaves disruptedPods); its replacement is not Ready yet.
    let status = status_is(&c, "web", (3, 2, 2, 0)).await;
    assert_eq!(status.disrupted_pods.unwrap_or_default().len(), 0);
    let fresh = c
        .eventually(30, "a replacement pod", || async {
            pods_of(&pods, "web").await.into_iter().find(|p| !names.contains(p.metadata.name.as_ref().unwrap()))
        })
        .await;
    c.set_pod_running(&fresh, "n1", true).await;
    status_is(&c, "web", (3, 3, 2, 1)).await;
    let (code, body) = evict(&c, &names[1]).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentages_and_max_unavailable_use_the_controllers_scale() {
    let c = Cluster::start("replicaset,deployment,disruption", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": NS},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    c.api::<Deployment>(Some(NS)).create(&deployment).await.unwrap();
    let budgets = c.api::<PodDisruptionBudget>(Some(NS));
    budgets.create(&budget("api-max", "api", json!({"maxUnavailable": "30%"}))).await.unwrap();
    budgets.create(&budget("api-min", "api", json!({"minAvailable": "30%"}))).await.unwrap();

    // 30% of 4 rounds up to 2 for both: desired 4-2=2 and 2.
    status_is(&c, "api-max", (4, 0, 2, 0)).await;
    status_is(&c, "api-min", (4, 0, 2, 0)).await;
    let all = c.eventually(30, "4 pods", || async { Some(pods_of(&pods, "api").await).filter(|p| p.len() == 4) }).await;
    for p in &all[..3] {
        c.set_pod_running(p, "n1", true).await;
    }
    status_is(&c, "api-max", (4, 3, 2, 1)).await;

    // Scaling the Deployment changes what is expected, before any pod appears.
    c.api::<Deployment>(Some(NS)).patch("api", PatchType::Merge, &json!({"spec": {"replicas": 10}})).await.unwrap();
    status_is(&c, "api-max", (10, 3, 7, 0)).await;
    status_is(&c, "api-min", (10, 3, 3, 0)).await;

    // A spec change is observed: the generation moves and the status follows it.
    c.eventually(30, "10 pods", || async { (pods_of(&pods, "api").await.len() == 10).then_some(()) }).await;
    budgets.patch("api-min", PatchType::Merge, &json!({"spec": {"minAvailable": 1}})).await.unwrap();
    let status = status_is(&c, "api-min", (10, 3, 1, 2)).await;
    assert_eq!(status.observed_generation, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_pods_and_unknown_controllers() {
    let c = Cluster::start("disruption", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let budgets = c.api::<PodDisruptionBudget>(Some(NS));
    let bare: Pod =
        serde_json::from_value(json!({"metadata": {"name": "bare", "namespace": NS, "labels": {"app": "bare"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        .unwrap();
    let bare = pods.create(&bare).await.unwrap();
    c.set_pod_running(&bare, "n1", true).await;

    // An integer minAvailable counts the pods themselves.
    budgets.create(&budget("bare-int", "bare", json!({"minAvailable": 0}))).await.unwrap();
    status_is(&c, "bare-int", (1, 1, 0, 1)).await;
    // A percentage cannot count a pod without a controller: it expects nothing, allows nothing.
    budgets.create(&budget("bare-pct", "bare", json!({"minAvailable": "50%"}))).await.unwrap();
    status_is(&c, "bare-pct", (0, 1, 0, 0)).await;
    let events = c.api::<Event>(Some(NS));
    c.eventually(30, "an UnmanagedPods event", || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        list.into_iter().find(|e| e.reason.as_deref() == Some("UnmanagedPods"))
    })
    .await;

    // A controller the budget cannot scale (here a DaemonSet) makes the budget uncomputable.
    let owned: Pod =
        serde_json::from_value(json!({"metadata": {"name": "agent", "namespace": NS, "labels": {"app": "agent"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
            "uid": "00000000-0000-4000-8000-000000000001", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
        .unwrap();
    let owned = pods.create(&owned).await.unwrap();
    c.set_pod_running(&owned, "n1", true).await;
    budgets.create(&budget("agent", "agent", json!({"maxUnavailable": 1}))).await.unwrap();
    let status = c
        .eventually(30, "a SyncFailed condition", || async {
            let s = budgets.get("agent").await.ok()?.status?;
            s.conditions.iter().flatten().any(|c| c.reason == "SyncFailed").then_some(s)
        })
        .await;
    assert_eq!(status.disruptions_allowed, 0);
    let failed = status.conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionAllowed").unwrap();
    assert_eq!((failed.status.as_str(), failed.message.as_str()), ("False", "found no controllers for pod \"agent\""));
    c.eventually(30, "a CalculateExpectedPodCountFailed event", || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        list.into_iter().find(|e| {
            e.reason.as_deref() == Some("CalculateExpectedPodCountFailed")
                && e.message.as_deref()
                    == Some("Failed to calculate the number of expected pods: found no controllers for pod \"agent\"")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_disruption_target_condition_is_cleared() {
    let c = Cluster::start("disruption", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "kept", "namespace": NS},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}))
    .unwrap();
    let p = pods.create(&p).await.unwrap();
    c.set_pod_running(&p, "n1", true).await;
    // As an eviction would have left it, five minutes ago, on a pod that was not deleted.
    let old = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(300)).to_string();
    let mark = json!({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting", "lastTransitionTime": old}]}});
    pods.patch_status("kept", PatchType::StrategicMerge, &mark).await.unwrap();
    let cleared = c
        .eventually(30, "DisruptionTarget False", || async {
            let pod = pods.get("kept").await.ok()?;
            let cond = pod.status?.conditions?.into_iter().find(|c| c.type_ == "DisruptionTarget")?;
            (cond.status == "False").then_some(cond)
        })
        .await;
    assert_ne!(cleared.last_transition_time.map(|t| t.0.to_string()), Some(old));
    // The Ready condition the kubelet wrote is untouched.
    let pod = pods.get("kept").await.unwrap();
    assert!(pod.status.unwrap().conditions.unwrap().iter().any(|c| c.type_ == "Ready" && c.status == "True"));
}
