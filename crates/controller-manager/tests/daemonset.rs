//! The DaemonSet controller against a real API server: one pod per eligible node (nodeSelector,
//! taints), each pinned to its node by node affinity; nodes joining and leaving eligibility;
//! failed pods replaced; a rolling update that never takes more than maxUnavailable nodes
//! down; status and ControllerRevisions. The tests play the kubelet.

mod common;

use common::Cluster;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use rkube_client::{Api, ListParams, PatchType};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const NS: &str = "default";

fn daemon_set(name: &str, node_selector: Option<serde_json::Value>) -> DaemonSet {
    let mut spec = json!({"containers": [{"name": "c", "image": "agent:1"}]});
    if let Some(s) = node_selector {
        spec["nodeSelector"] = s;
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
    .expect("a valid DaemonSet")
}

/// Live pods of the DaemonSet `name` (not being deleted), by name.
async fn pods_of(pods: &Api<Pod>, name: &str) -> Vec<Pod> {
    let list = pods.list(&ListParams::labels(&format!("app={name}"))).await.expect("pods listed");
    let mut live: Vec<Pod> = list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    live.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    live
}

/// The node a pod's required node affinity pins it to (a single matchFields metadata.name).
fn pinned_node(pod: &Pod) -> Option<String> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else { return None };
    let [field] = term.match_fields.as_deref()? else { return None };
    (field.key == "metadata.name" && field.operator == "In").then(|| field.values.as_ref()?.first().cloned())?
}

fn nodes_of(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().filter_map(pinned_node).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn label_node(c: &Cluster, node: &str, labels: serde_json::Value) {
    c.api::<Node>(None)
        .patch(node, PatchType::Merge, &json!({"metadata": {"labels": labels}}))
        .await
        .expect("node labelled");
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_eligible_node() {
    let c = Cluster::start("daemonset", &[]);
    for n in ["n1", "n2", "n3"] {
        c.node(n).await;
        label_node(&c, n, json!({"role": "worker"})).await;
    }
    let taint = json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}});
    c.api::<Node>(None).patch("n3", PatchType::Merge, &taint).await.expect("n3 tainted");

    let sets = c.api::<DaemonSet>(Some(NS));
    let ds = sets.create(&daemon_set("agent", Some(json!({"role": "worker"})))).await.expect("created");
    let pods = c.api::<Pod>(Some(NS));
    let first = c
        .eventually(20, "a pod on n1 and n2, none on the tainted n3", || async {
            let p = pods_of(&pods, "agent").await;
            (p.len() == 2 && nodes_of(&p) == set(&["n1", "n2"])).then_some(p)
        })
        .await;
    for p in &first {
        assert!(p.metadata.generate_name.as_deref() == Some("agent-"), "{:?}", p.metadata);
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert!(labels.contains_key("controller-revision-hash") && labels.contains_key("pod-template-generation"));
        let tolerations = p.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready")
                && t.effect.as_deref() == Some("NoExecute")
                && t.toleration_seconds.is_none()),
            "daemon tolerations: {tolerations:?}"
        );
        assert!(p.metadata.owner_references.iter().flatten().any(|r| r.uid == ds.metadata.uid.clone().unwrap()));
    }
    let hash = first[0].metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    let revision = c.api::<ControllerRevision>(Some(NS)).get(&format!("agent-{hash}")).await.expect("revision");
    assert_eq!(revision.revision, 1);
    assert_eq!(revision.metadata.labels.as_ref().unwrap()["controller.kubernetes.io/hash"], hash);

    // A new eligible node gets a pod.
    c.node("n4").await;
    label_node(&c, "n4", json!({"role": "worker"})).await;
    c.eventually(20, "a pod on n4", || async {
        let p = pods_of(&pods, "agent").await;
        (nodes_of(&p) == set(&["n1", "n2", "n4"]) && p.len() == 3).then_some(())
    })
    .await;

    // A node labelled out of the nodeSelector loses its pod.
    label_node(&c, "n1", json!({"role": "db"})).await;
    let left = c
        .eventually(20, "n1's pod removed", || async {
            let p = pods_of(&pods, "agent").await;
            (nodes_of(&p) == set(&["n2", "n4"]) && p.len() == 2).then_some(p)
        })
        .await;

    // The kubelet runs them: status counts them.
    for p in &left {
        c.set_pod_running(p, &pinned_node(p).unwrap(), true).await;
    }
    let generation = sets.get("agent").await.unwrap().metadata.generation;
    c.eventually(20, "status", || async {
        let s = sets.get("agent").await.ok()?.status?;
        (s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.number_misscheduled == 0
            && s.number_ready == 2
            && s.number_available == Some(2)
            && s.number_unavailable.unwrap_or(0) == 0
            && s.updated_number_scheduled == Some(2)
            && s.observed_generation == generation)
            .then_some(())
    })
    .await;

    // A failed pod is replaced on the same node.
    let failed = left.iter().find(|p| pinned_node(p).as_deref() == Some("n2")).unwrap();
    c.set_pod_finished(failed, "Failed").await;
    c.eventually(20, "failed pod replaced on n2", || async {
        let p = pods_of(&pods, "agent").await;
        let on_n2: Vec<_> = p.iter().filter(|p| pinned_node(p).as_deref() == Some("n2")).collect();
        (on_n2.len() == 1 && on_n2[0].metadata.uid != failed.metadata.uid).then_some(())
    })
    .await;

    let events = c.api::<Event>(Some(NS));
    c.eventually(20, "SuccessfulCreate and SuccessfulDelete events", || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        let reasons: BTreeSet<String> = list
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("agent"))
            .filter_map(|e| e.reason)
            .collect();
        (reasons.contains("SuccessfulCreate") && reasons.contains("SuccessfulDelete")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_takes_one_node_down_at_a_time() {
    let c = Cluster::start("daemonset", &[]);
    for n in ["n1", "n2", "n3"] {
        c.node(n).await;
    }
    let sets = c.api::<DaemonSet>(Some(NS));
    sets.create(&daemon_set("web", None)).await.expect("created");
    let pods = c.api::<Pod>(Some(NS));
    let initial = c
        .eventually(20, "three pods", || async {
            let p = pods_of(&pods, "web").await;
            (p.len() == 3 && nodes_of(&p).len() == 3).then_some(p)
        })
        .await;
    for p in &initial {
        c.set_pod_running(p, &pinned_node(p).unwrap(), true).await;
    }
    c.eventually(20, "all available", || async {
        let s = sets.get("web").await.ok()?.status?;
        (s.number_available == Some(3)).then_some(())
    })
    .await;

    // Watch readiness while the update runs: never fewer than 3 - maxUnavailable ready nodes.
    let stop = Arc::new(AtomicBool::new(false));
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let samples = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (pods, stop, fewest, samples) = (pods.clone(), stop.clone(), fewest.clone(), samples.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                samples.fetch_add(1, Ordering::SeqCst);
                let ready: BTreeSet<String> =
                    pods_of(&pods, "web").await.iter().filter(|p| is_ready(p)).filter_map(pinned_node).collect();
                fewest.fetch_min(ready.len(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    sets.patch(
        "web",
        PatchType::StrategicMerge,
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}),
    )
    .await
    .expect("image updated");
    let image = |p: &Pod| p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
    c.eventually(40, "every node runs a Ready agent:2 pod", || async {
        let p = pods_of(&pods, "web").await;
        for pod in p.iter().filter(|p| image(p).as_deref() == Some("agent:2") && !is_ready(p)) {
            c.set_pod_running(pod, &pinned_node(pod).unwrap_or_default(), true).await;
        }
        let done = p.len() == 3
            && nodes_of(&p).len() == 3
            && p.iter().all(|p| image(p).as_deref() == Some("agent:2") && is_ready(p));
        done.then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    poller.await.expect("poller");
    let fewest = fewest.load(Ordering::SeqCst);
    assert!(samples.load(Ordering::SeqCst) > 3, "the poller watched the rollout");
    assert!(fewest >= 2, "at most maxUnavailable=1 node without a Ready pod; saw only {fewest} Ready");

    let generation = sets.get("web").await.unwrap().metadata.generation;
    c.eventually(20, "rollout complete in status", || async {
        let s = sets.get("web").await.ok()?.status?;
        (s.updated_number_scheduled == Some(3)
            && s.number_available == Some(3)
            && s.desired_number_scheduled == 3
            && s.observed_generation == generation)
            .then_some(())
    })
    .await;
    let revisions = c.api::<ControllerRevision>(Some(NS)).list(&ListParams::default()).await.unwrap().items;
    let mut numbers: Vec<i64> = revisions.iter().map(|r| r.revision).collect();
    numbers.sort();
    assert_eq!(numbers, vec![1, 2], "one revision per template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delete_replaces_only_deleted_pods() {
    let c = Cluster::start("daemonset", &[]);
    for n in ["n1", "n2"] {
        c.node(n).await;
    }
    let mut ds = daemon_set("logs", None);
    ds.spec.as_mut().unwrap().update_strategy = serde_json::from_value(json!({"type": "OnDelete"})).unwrap();
    let sets = c.api::<DaemonSet>(Some(NS));
    sets.create(&ds).await.expect("created");
    let pods = c.api::<Pod>(Some(NS));
    let before = c
        .eventually(20, "two pods", || async {
            let p = pods_of(&pods, "logs").await;
            (p.len() == 2).then_some(p)
        })
        .await;
    let updated = sets
        .patch(
            "logs",
            PatchType::StrategicMerge,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}),
        )
        .await
        .expect("image updated");
    // Once the controller has seen the new template, no pod runs it yet.
    c.eventually(20, "new generation observed, nothing updated", || async {
        let s = sets.get("logs").await.ok()?.status?;
        (s.observed_generation == updated.metadata.generation && s.updated_number_scheduled == Some(0)).then_some(())
    })
    .await;
    assert_eq!(pods_of(&pods, "logs").await.len(), 2);

    pods.delete(before[0].metadata.name.as_deref().unwrap(), &Default::default()).await.expect("deleted");
    let image = |p: &Pod| p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
    let after = c
        .eventually(20, "the deleted pod replaced from the new template", || async {
            let p = pods_of(&pods, "logs").await;
            (p.len() == 2 && nodes_of(&p).len() == 2 && p.iter().any(|p| image(p).as_deref() == Some("agent:2")))
                .then_some(p)
        })
        .await;
    let kept = after.iter().find(|p| p.metadata.uid == before[1].metadata.uid);
    assert!(kept.is_some_and(|p| image(p).as_deref() == Some("agent:1")), "the other pod is left alone");
    c.eventually(20, "one pod updated in status", || async {
        let s = sets.get("logs").await.ok()?.status?;
        (s.updated_number_scheduled == Some(1)).then_some(())
    })
    .await;
}
