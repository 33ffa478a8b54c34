//! The StatefulSet controller against a real API server: OrderedReady creation one pod at a
//! time behind readiness, claims from volumeClaimTemplates, scale-down from the highest
//! ordinal keeping claims, rolling updates in reverse ordinal order with a partition, and
//! Parallel creation. The tests play the kubelet; deletion order is read from a watch.

mod common;

use common::Cluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use rkube_client::{Api, ListParams, PatchType, WatchEvent};
use serde_json::json;
use std::sync::{Arc, Mutex};

const NS: &str = "default";

fn stateful_set(name: &str, replicas: i32, policy: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "db:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }))
    .expect("a valid StatefulSet")
}

/// Live pod names of the set `app`, sorted.
async fn names(pods: &Api<Pod>, app: &str) -> Vec<String> {
    let list = pods.list(&ListParams::labels(&format!("app={app}"))).await.expect("pods listed");
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn image(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.containers.first()?.image.clone()
}

/// Records the names of deleted pods of `app`, in the order the API server deleted them.
async fn deletions(pods: &Api<Pod>, app: &str) -> Arc<Mutex<Vec<String>>> {
    let params = ListParams::labels(&format!("app={app}"));
    let rv = pods.list(&params).await.expect("listed").resource_version;
    let mut stream = pods.watch(&params, &rv).await.expect("watching");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            if let WatchEvent::Deleted(p) = event {
                out.lock().unwrap().push(p.metadata.name.unwrap_or_default());
            }
        }
    });
    seen
}

/// Plays the kubelet for every live pod of `app` that is not Ready yet.
async fn run_all(c: &Cluster, pods: &Api<Pod>, app: &str) {
    let list = pods.list(&ListParams::labels(&format!("app={app}"))).await.expect("pods listed");
    for p in list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && !is_ready(p)) {
        c.set_pod_running(p, "n1", true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_creates_in_order_and_scales_down_from_the_top() {
    let c = Cluster::start("statefulset", &[]);
    let sets = c.api::<StatefulSet>(Some(NS));
    let pods = c.api::<Pod>(Some(NS));
    let created = sets.create(&stateful_set("web", 3, "OrderedReady")).await.expect("created");

    let web0 = c.eventually(20, "web-0", || async { pods.get_opt("web-0").await.unwrap() }).await;
    let claim = c
        .eventually(20, "claim data-web-0", || async {
            c.api::<PersistentVolumeClaim>(Some(NS)).get_opt("data-web-0").await.unwrap()
        })
        .await;
    assert_eq!(claim.metadata.labels.as_ref().unwrap()["app"], "web");
    let spec = web0.spec.clone().unwrap();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-0"), Some("web")));
    let volume = spec.volumes.unwrap().into_iter().find(|v| v.name == "data").expect("data volume");
    assert_eq!(volume.persistent_volume_claim.unwrap().claim_name, "data-web-0");
    let labels = web0.metadata.labels.clone().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");

    // Running but not Ready: once the controller has seen that, web-1 still does not exist.
    c.set_pod_running(&web0, "n1", false).await;
    c.eventually(20, "status sees web-0 not ready", || async {
        let s = sets.get("web").await.ok()?.status?;
        (s.replicas == 1 && s.ready_replicas.unwrap_or(0) == 0 && s.observed_generation == created.metadata.generation)
            .then_some(())
    })
    .await;
    assert_eq!(names(&pods, "web").await, vec!["web-0"], "web-1 waits for web-0 to be Ready");

    c.set_pod_running(&web0, "n1", true).await;
    let web1 = c.eventually(20, "web-1 after web-0 Ready", || async { pods.get_opt("web-1").await.unwrap() }).await;
    assert_eq!(names(&pods, "web").await, vec!["web-0", "web-1"], "web-2 waits for web-1");
    c.set_pod_running(&web1, "n1", true).await;
    let web2 = c.eventually(20, "web-2 after web-1 Ready", || async { pods.get_opt("web-2").await.unwrap() }).await;
    c.set_pod_running(&web2, "n1", true).await;
    let status = c
        .eventually(20, "three ready replicas", || async {
            let s = sets.get("web").await.ok()?.status?;
            (s.ready_replicas == Some(3) && s.available_replicas == Some(3) && s.current_replicas == Some(3))
                .then_some(s)
        })
        .await;
    assert!(status.update_revision.is_some() && status.current_revision == status.update_revision);

    // Scale down to 1: web-2 goes first, then web-1; their claims stay.
    let deleted = deletions(&pods, "web").await;
    sets.patch("web", PatchType::Merge, &json!({"spec": {"replicas": 1}})).await.expect("scaled");
    c.eventually(20, "scaled down to web-0", || async {
        (names(&pods, "web").await == vec!["web-0"] && deleted.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(*deleted.lock().unwrap(), vec!["web-2", "web-1"], "highest ordinal first");
    for claim in ["data-web-0", "data-web-1", "data-web-2"] {
        assert!(c.api::<PersistentVolumeClaim>(Some(NS)).get_opt(claim).await.unwrap().is_some(), "{claim} kept");
    }
    c.eventually(20, "status replicas 1", || async {
        let s = sets.get("web").await.ok()?.status?;
        (s.replicas == 1 && s.ready_replicas == Some(1)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let c = Cluster::start("statefulset", &[]);
    let sets = c.api::<StatefulSet>(Some(NS));
    let pods = c.api::<Pod>(Some(NS));
    sets.create(&stateful_set("db", 3, "OrderedReady")).await.expect("created");
    c.eventually(30, "three ready pods", || async {
        run_all(&c, &pods, "db").await;
        let s = sets.get("db").await.ok()?.status?;
        (s.ready_replicas == Some(3)).then_some(())
    })
    .await;
    let old_revision = sets.get("db").await.unwrap().status.unwrap().current_revision.unwrap();

    // Partition 2: only db-2 moves to the new template.
    let deleted = deletions(&pods, "db").await;
    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "c", "image": "db:2"}]}},
    }});
    let updated = sets.patch("db", PatchType::StrategicMerge, &patch).await.expect("updated");
    let status = c
        .eventually(30, "db-2 updated, the rest kept", || async {
            run_all(&c, &pods, "db").await;
            let s = sets.get("db").await.ok()?.status?;
            (s.observed_generation == updated.metadata.generation
                && s.updated_replicas == Some(1)
                && s.current_replicas == Some(2)
                && s.ready_replicas == Some(3))
            .then_some(s)
        })
        .await;
    assert_eq!(status.current_revision.as_deref(), Some(old_revision.as_str()), "partitioned: not complete");
    assert_ne!(status.update_revision.as_deref(), Some(old_revision.as_str()));
    assert_eq!(image(&pods.get("db-2").await.unwrap()).as_deref(), Some("db:2"));
    assert_eq!(image(&pods.get("db-1").await.unwrap()).as_deref(), Some("db:1"));
    assert_eq!(*deleted.lock().unwrap(), vec!["db-2"]);

    // Partition 0: db-1 then db-0, each after the one above is Ready again.
    sets.patch("db", PatchType::Merge, &json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}))
        .await
        .expect("partition lowered");
    let status = c
        .eventually(30, "rollout complete", || async {
            run_all(&c, &pods, "db").await;
            let s = sets.get("db").await.ok()?.status?;
            (s.updated_replicas == Some(3) && s.ready_replicas == Some(3) && s.current_revision == s.update_revision)
                .then_some(s)
        })
        .await;
    assert_eq!(status.current_replicas, Some(3));
    assert_eq!(*deleted.lock().unwrap(), vec!["db-2", "db-1", "db-0"], "reverse ordinal order");
    for name in ["db-0", "db-1", "db-2"] {
        assert_eq!(image(&pods.get(name).await.unwrap()).as_deref(), Some("db:2"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_and_deletes_all_at_once() {
    let c = Cluster::start("statefulset", &[]);
    let sets = c.api::<StatefulSet>(Some(NS));
    let pods = c.api::<Pod>(Some(NS));
    sets.create(&stateful_set("cache", 3, "Parallel")).await.expect("created");
    // Nobody plays the kubelet: all three exist without any being Ready.
    c.eventually(20, "three pods at once", || async {
        (names(&pods, "cache").await == vec!["cache-0", "cache-1", "cache-2"]).then_some(())
    })
    .await;
    for claim in ["data-cache-0", "data-cache-1", "data-cache-2"] {
        assert!(c.api::<PersistentVolumeClaim>(Some(NS)).get_opt(claim).await.unwrap().is_some(), "{claim}");
    }
    sets.patch("cache", PatchType::Merge, &json!({"spec": {"replicas": 0}})).await.expect("scaled");
    c.eventually(20, "all pods gone", || async { names(&pods, "cache").await.is_empty().then_some(()) }).await;
    assert!(c.api::<PersistentVolumeClaim>(Some(NS)).get_opt("data-cache-2").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_policy_hands_claims_to_the_garbage_collector() {
    let c = Cluster::start("statefulset,garbagecollector", &[]);
    let sets = c.api::<StatefulSet>(Some(NS));
    let pods = c.api::<Pod>(Some(NS));
    let claims = c.api::<PersistentVolumeClaim>(Some(NS));
    let mut set = stateful_set("kv", 2, "Parallel");
    set.spec.as_mut().unwrap().persistent_volume_claim_retention_policy =
        serde_json::from_value(json!({"whenDeleted": "Delete", "whenScaled": "Delete"})).unwrap();
    let created = sets.create(&set).await.expect("created");
    c.eventually(20, "two pods", || async { (names(&pods, "kv").await.len() == 2).then_some(()) }).await;
    let claim = claims.get("data-kv-0").await.expect("claim");
    let owners: Vec<_> = claim.metadata.owner_references.unwrap_or_default().into_iter().map(|r| r.uid).collect();
    assert_eq!(owners, vec![created.metadata.uid.clone().unwrap()], "whenDeleted: the set owns the claim");

    // whenScaled: Delete: the condemned pod's claim goes with it; the other stays.
    sets.patch("kv", PatchType::Merge, &json!({"spec": {"replicas": 1}})).await.expect("scaled");
    c.eventually(20, "kv-1 and its claim gone", || async {
        let gone = names(&pods, "kv").await == vec!["kv-0"] && claims.get_opt("data-kv-1").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    assert!(claims.get_opt("data-kv-0").await.unwrap().is_some());
}
