//! The ReplicaSet and ReplicationController controllers against a real API server: exact
//! replica counts under bursts, scale-down victim order, adoption and release, replacement of
//! deleted pods, and readiness / availability in status. The tests play the kubelet.

mod common;

use common::Cluster;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use rkube_client::{Api, DeleteParams, ListParams, PatchType};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const NS: &str = "default";

fn replica_set(name: &str, app: &str, replicas: i32, min_ready_seconds: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .expect("a valid ReplicaSet")
}

/// Active (not being deleted) pods controlled by the object with `uid`, sorted by name.
async fn owned_pods(pods: &Api<Pod>, app: &str, uid: &str) -> Vec<Pod> {
    let list = pods.list(&ListParams::labels(&format!("app={app}"))).await.expect("pods listed");
    let mut owned: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid))
        .collect();
    owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    owned
}

async fn scale<K>(api: &Api<K>, name: &str, replicas: i32)
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    api.patch(name, PatchType::Merge, &json!({"spec": {"replicas": replicas}})).await.expect("scaled");
}

/// Plays the scheduler: binds the pod to `node`.
async fn bind(c: &Cluster, pod: &Pod, node: &str) {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    c.api::<Pod>(Some(NS)).create_subresource(name, "binding", &binding).await.expect("pod bound");
}

fn gone_or_deleting(pods: &[Pod], name: &str) -> bool {
    pods.iter().all(|p| p.metadata.name.as_deref() != Some(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_creates_exactly_the_replicas_and_never_more() {
    let c = Cluster::start("replicaset", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let sets = c.api::<ReplicaSet>(Some(NS));

    // Watch the pod count throughout: it must never pass the desired count.
    let (max_seen, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let watcher = {
        let (pods, max_seen, stop) = (pods.clone(), max_seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(list) = pods.list(&ListParams::labels("app=burst")).await {
                    max_seen.fetch_max(list.items.len(), Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let rs = sets.create(&replica_set("burst", "burst", 30, 0)).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    c.eventually(30, "30 owned pods and status.replicas 30", || async {
        let owned = owned_pods(&pods, "burst", &uid).await;
        let rs = sets.get("burst").await.unwrap();
        let replicas = rs.status.as_ref().map(|s| s.replicas);
        (owned.len() == 30 && replicas == Some(30)).then_some(())
    })
    .await;
    // Every pod comes from the template, named after the ReplicaSet, with one controller ref.
    for p in owned_pods(&pods, "burst", &uid).await {
        assert!(p.metadata.name.as_deref().unwrap().starts_with("burst-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap().get("tier").map(String::as_str), Some("web"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.block_owner_deletion), ("ReplicaSet", Some(true)));
    }
    let status = sets.get("burst").await.unwrap().status.unwrap();
    assert_eq!(status.fully_labeled_replicas, Some(30));
    assert_eq!(status.observed_generation, rs.metadata.generation);

    assert!(max_seen.load(Ordering::SeqCst) <= 30, "saw {} pods", max_seen.load(Ordering::SeqCst));

    // Scaling up again on top of a settled set, then down.
    scale(&sets, "burst", 40).await;
    c.eventually(30, "40 owned pods", || async { (owned_pods(&pods, "burst", &uid).await.len() == 40).then_some(()) })
        .await;
    assert!(max_seen.load(Ordering::SeqCst) <= 40, "saw {} pods", max_seen.load(Ordering::SeqCst));
    scale(&sets, "burst", 5).await;
    c.eventually(30, "5 pods left", || async {
        let all = pods.list(&ListParams::labels("app=burst")).await.unwrap().items;
        (all.len() == 5 && owned_pods(&pods, "burst", &uid).await.len() == 5).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert!(max_seen.load(Ordering::SeqCst) <= 40, "saw {} pods", max_seen.load(Ordering::SeqCst));

    // Kubernetes' events tell what happened.
    let events = c.api::<Event>(Some(NS));
    c.eventually(20, "SuccessfulCreate and SuccessfulDelete events", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        let has = |reason: &str| list.iter().any(|e| e.reason.as_deref() == Some(reason));
        (has("SuccessfulCreate") && has("SuccessfulDelete")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_deletes_unscheduled_then_not_ready_pods_first() {
    let c = Cluster::start("replicaset", &[]);
    c.node("n1").await;
    let pods = c.api::<Pod>(Some(NS));
    let sets = c.api::<ReplicaSet>(Some(NS));
    let rs = sets.create(&replica_set("web", "web", 4, 0)).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let four = c
        .eventually(20, "4 pods", || async {
            let owned = owned_pods(&pods, "web", &uid).await;
            (owned.len() == 4).then_some(owned)
        })
        .await;
    // pod 0 stays unscheduled; 1 runs not ready; 2 and 3 run ready.
    for p in &four[1..] {
        bind(&c, p, "n1").await;
    }
    c.set_pod_running(&four[1], "n1", false).await;
    c.set_pod_running(&four[2], "n1", true).await;
    c.set_pod_running(&four[3], "n1", true).await;
    c.eventually(20, "readyReplicas 2", || async {
        let s = sets.get("web").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(())
    })
    .await;

    let names: Vec<&str> = four.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    scale(&sets, "web", 3).await;
    let left = c
        .eventually(20, "3 pods", || async {
            let owned = owned_pods(&pods, "web", &uid).await;
            (owned.len() == 3).then_some(owned)
        })
        .await;
    assert!(gone_or_deleting(&left, names[0]), "the unscheduled pod goes first: {left:?}");

    scale(&sets, "web", 2).await;
    let left = c
        .eventually(20, "2 pods", || async {
            let owned = owned_pods(&pods, "web", &uid).await;
            (owned.len() == 2).then_some(owned)
        })
        .await;
    assert!(gone_or_deleting(&left, names[1]), "then the not-ready one: {left:?}");
    let kept: Vec<&str> = left.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(kept, [names[2], names[3]]);
    // The terminating pod (bound, so it waits for a kubelet) no longer counts as a replica.
    c.eventually(20, "status replicas 2", || async {
        let s = sets.get("web").await.unwrap().status?;
        (s.replicas == 2 && s.ready_replicas == Some(2)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_mismatching_pods_released_and_deleted_pods_replaced() {
    let c = Cluster::start("replicaset", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let sets = c.api::<ReplicaSet>(Some(NS));
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&orphan).await.unwrap();

    let rs = sets.create(&replica_set("adopter", "adopt", 3, 0)).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let owned = c
        .eventually(20, "3 owned pods including the orphan", || async {
            let owned = owned_pods(&pods, "adopt", &uid).await;
            let s = sets.get("adopter").await.unwrap().status?;
            (owned.len() == 3 && s.replicas == 3).then_some(owned)
        })
        .await;
    assert!(owned.iter().any(|p| p.metadata.name.as_deref() == Some("orphan")), "the orphan was adopted");
    let all = pods.list(&ListParams::labels("app=adopt")).await.unwrap().items;
    assert_eq!(all.len(), 3, "only two pods were created");
    // The template's labels are not all on the orphan.
    assert_eq!(sets.get("adopter").await.unwrap().status.unwrap().fully_labeled_replicas, Some(2));

    // A pod whose labels stop matching is released, and replaced.
    pods.patch("orphan", PatchType::Merge, &json!({"metadata": {"labels": {"app": "elsewhere"}}})).await.unwrap();
    let released = c
        .eventually(20, "the relabelled pod released", || async {
            let p = pods.get("orphan").await.unwrap();
            p.metadata.owner_references.as_ref().is_none_or(|r| r.is_empty()).then_some(p)
        })
        .await;
    assert!(released.metadata.deletion_timestamp.is_none(), "released, not deleted");
    let owned = c
        .eventually(20, "a replacement for the released pod", || async {
            let owned = owned_pods(&pods, "adopt", &uid).await;
            (owned.len() == 3 && owned.iter().all(|p| p.metadata.name.as_deref() != Some("orphan"))).then_some(owned)
        })
        .await;

    // A deleted pod is replaced by a new one.
    let victim = owned[0].metadata.name.clone().unwrap();
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    c.eventually(20, "a replacement for the deleted pod", || async {
        let now = owned_pods(&pods, "adopt", &uid).await;
        (now.len() == 3 && gone_or_deleting(&now, &victim)).then_some(())
    })
    .await;
    assert_eq!(pods.list(&ListParams::labels("app=adopt")).await.unwrap().items.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_and_available_replicas_follow_readiness_and_min_ready_seconds() {
    let c = Cluster::start("replicaset", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let sets = c.api::<ReplicaSet>(Some(NS));
    let rs = sets.create(&replica_set("slow", "slow", 2, 4)).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();
    let two = c
        .eventually(20, "2 pods", || async {
            let owned = owned_pods(&pods, "slow", &uid).await;
            (owned.len() == 2).then_some(owned)
        })
        .await;
    for p in &two {
        c.set_pod_running(p, "n1", true).await;
    }
    let status = c
        .eventually(20, "readyReplicas 2", || async {
            let s = sets.get("slow").await.unwrap().status?;
            (s.ready_replicas == Some(2)).then_some(s)
        })
        .await;
    assert_eq!(status.available_replicas.unwrap_or(0), 0, "not available before minReadySeconds");
    // No pod event happens now: the controller comes back by itself once 4 s have passed.
    c.eventually(20, "availableReplicas 2", || async {
        let s = sets.get("slow").await.unwrap().status?;
        (s.available_replicas == Some(2)).then_some(())
    })
    .await;

    c.set_pod_running(&two[0], "n1", false).await;
    c.eventually(20, "one pod not ready", || async {
        let s = sets.get("slow").await.unwrap().status?;
        (s.ready_replicas == Some(1) && s.available_replicas == Some(1)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controllers_manage_pods_by_map_selector() {
    let c = Cluster::start("replicationcontroller", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let rcs = c.api::<ReplicationController>(Some(NS));
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "legacy"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&orphan).await.unwrap();
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }))
    .unwrap();
    let rc = rcs.create(&rc).await.unwrap();
    let uid = rc.metadata.uid.clone().unwrap();
    let owned = c
        .eventually(20, "3 pods owned by the RC", || async {
            let owned = owned_pods(&pods, "legacy", &uid).await;
            (owned.len() == 3).then_some(owned)
        })
        .await;
    assert!(owned.iter().any(|p| p.metadata.name.as_deref() == Some("stray")), "the orphan was adopted");
    for p in &owned {
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.api_version.as_str(), owner.kind.as_str()), ("v1", "ReplicationController"));
    }
    c.set_pod_running(&owned[0], "n1", true).await;
    c.eventually(20, "RC status", || async {
        let s = rcs.get("legacy").await.unwrap().status?;
        (s.replicas == 3 && s.ready_replicas == Some(1) && s.available_replicas == Some(1)).then_some(())
    })
    .await;

    scale(&rcs, "legacy", 1).await;
    let left = c
        .eventually(20, "1 pod left", || async {
            let all = pods.list(&ListParams::labels("app=legacy")).await.unwrap().items;
            (all.len() == 1).then_some(all)
        })
        .await;
    assert_eq!(left[0].metadata.name, owned[0].metadata.name, "the ready pod is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_creates_set_replica_failure_until_they_succeed() {
    let c = Cluster::start("replicaset", &[]);
    let pods = c.api::<Pod>(Some(NS));
    let sets = c.api::<ReplicaSet>(Some(NS));
    // A selector that an unlabelled template satisfies: the API accepts the set, but Kubernetes'
    // controllers refuse to create pods without labels.
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["other"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }))
    .unwrap();
    sets.create(&rs).await.unwrap();
    let condition = c
        .eventually(20, "ReplicaFailure", || async {
            let s = sets.get("broken").await.unwrap().status?;
            s.conditions?.into_iter().find(|c| c.type_ == "ReplicaFailure")
        })
        .await;
    assert_eq!((condition.status.as_str(), condition.reason.as_deref()), ("True", Some("FailedCreate")));
    assert!(pods.list(&ListParams::default()).await.unwrap().items.is_empty());
    let events = c.api::<Event>(Some(NS));
    c.eventually(20, "a FailedCreate event", || async {
        let list = events.list(&ListParams::default()).await.unwrap().items;
        list.into_iter().find(|e| e.reason.as_deref() == Some("FailedCreate") && e.type_.as_deref() == Some("Warning"))
    })
    .await;

    sets.patch("broken", PatchType::Merge, &json!({"spec": {"template": {"metadata": {"labels": {"app": "fixed"}}}}}))
        .await
        .unwrap();
    c.eventually(30, "2 pods and the condition cleared", || async {
        let s = sets.get("broken").await.unwrap().status?;
        let cleared = s.conditions.unwrap_or_default().iter().all(|c| c.type_ != "ReplicaFailure");
        (cleared && s.replicas == 2).then_some(())
    })
    .await;
}
