//! The node lifecycle and taint eviction controllers against a real API server: a node whose
//! Lease stops being renewed turns Ready=Unknown and gets the unreachable taints, its pods are
//! marked not ready and evicted as their tolerations allow, and the taints go when it recovers;
//! a node whose Lease keeps being renewed is left alone.

mod common;

use common::Cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use rkube_client::{Client, PatchType};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NS: &str = "default";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

async fn create_lease(c: &Cluster, node: &str) {
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": MicroTime(jiff::Timestamp::now())},
    }))
    .unwrap();
    c.api::<Lease>(Some("kube-node-lease")).create(&lease).await.expect("lease created");
}

async fn renew(client: &Client, node: &str) {
    let patch = json!({"spec": {"renewTime": MicroTime(jiff::Timestamp::now())}});
    let _ = client.api::<Lease>(Some("kube-node-lease")).patch(node, PatchType::Merge, &patch).await;
}

fn pod_on(name: &str, node: &str, tolerations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": node, "tolerations": tolerations, "containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap()
}

fn ready(node: &Node) -> Option<(String, String, String)> {
    let c = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default()
}

async fn gone_or_deleting(c: &Cluster, name: &str) -> bool {
    c.api::<Pod>(Some(NS)).get_opt(name).await.unwrap().is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_are_tainted_their_pods_evicted_and_recovered_nodes_untainted() {
    let c = Cluster::start(
        "nodelifecycle,taint-eviction-controller",
        &["--node-monitor-grace-period=3s", "--node-monitor-period=500ms"],
    );
    let nodes = c.api::<Node>(None);
    let pods = c.api::<Pod>(Some(NS));
    for name in ["alive", "silent", "maintenance"] {
        c.node(name).await;
        create_lease(&c, name).await;
    }
    // The test plays the kubelets of "alive" and "maintenance" (and of "silent" once it recovers).
    let silent_renews = Arc::new(AtomicBool::new(false));
    let (client, flag) = (c.client.clone(), silent_renews.clone());
    let kubelets = tokio::spawn(async move {
        loop {
            renew(&client, "alive").await;
            renew(&client, "maintenance").await;
            if flag.load(Ordering::SeqCst) {
                renew(&client, "silent").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // A NoExecute taint a pod does not tolerate evicts it at once; a tolerating pod stays.
    let victim = pods.create(&pod_on("victim", "maintenance", json!([]))).await.unwrap();
    let tolerant = json!([{"key": "example.com/maintenance", "operator": "Exists", "effect": "NoExecute"}]);
    pods.create(&pod_on("tolerant", "maintenance", tolerant)).await.unwrap();
    let mut m = nodes.get("maintenance").await.unwrap();
    m.spec.get_or_insert_with(Default::default).taints =
        Some(vec![Taint { key: "example.com/maintenance".into(), effect: "NoExecute".into(), ..Default::default() }]);
    nodes.update(&m).await.unwrap();
    c.eventually(5, "the untolerating pod evicted", || async { gone_or_deleting(&c, "victim").await.then_some(()) })
        .await;
    // A pod bound to a node is deleted gracefully, so it is still there to look at.
    let evicted = pods.get_opt("victim").await.unwrap().expect("a bound pod terminates gracefully");
    assert_eq!(evicted.metadata.uid, victim.metadata.uid);
    let reasons: Vec<_> = evicted.status.unwrap().conditions.unwrap().into_iter().filter_map(|c| c.reason).collect();
    assert!(reasons.contains(&"DeletionByTaintManager".to_string()), "{reasons:?}");
    assert!(!gone_or_deleting(&c, "tolerant").await, "a pod tolerating the taint stays");

    // Pods on the node that goes silent: one with the API server's default 300 s tolerations,
    // one tolerating unreachability for 2 s.
    let plain = pods.create(&pod_on("plain", "silent", json!([]))).await.unwrap();
    let defaults = plain.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    assert!(
        defaults.iter().any(|t| t.key.as_deref() == Some(UNREACHABLE) && t.toleration_seconds == Some(300)),
        "DefaultTolerationSeconds applies: {defaults:?}"
    );
    c.set_pod_running_ip(&plain, "10.244.3.1", true).await;
    let quick = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    pods.create(&pod_on("quick", "silent", quick)).await.unwrap();

    let silent = c
        .eventually(15, "silent node Ready=Unknown with both unreachable taints", || async {
            let n = nodes.get("silent").await.unwrap();
            let t = taints(&n);
            let has = |effect: &str| t.iter().any(|t| t.key == UNREACHABLE && t.effect == effect);
            (ready(&n).is_some_and(|r| r.0 == "Unknown") && has("NoSchedule") && has("NoExecute")).then_some(n)
        })
        .await;
    let (_, reason, message) = ready(&silent).unwrap();
    assert_eq!((reason.as_str(), message.as_str()), ("NodeStatusUnknown", "Kubelet stopped posting node status."));
    let no_execute = taints(&silent).into_iter().find(|t| t.key == UNREACHABLE && t.effect == "NoExecute").unwrap();
    let tainted_at = no_execute.time_added.expect("timeAdded on the NoExecute taint").0;

    // The pod tolerating 2 s goes after 2 s, not before; the 300 s one stays, marked not ready.
    c.eventually(10, "the 2 s pod evicted", || async { gone_or_deleting(&c, "quick").await.then_some(()) }).await;
    // Both times come from the controller-manager's clock (whole seconds once stored).
    let p = pods.get_opt("quick").await.unwrap().expect("a bound pod terminates gracefully");
    let marked = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionTarget");
    let at = marked.and_then(|c| c.last_transition_time).expect("DisruptionTarget condition").0;
    let waited = at.duration_since(tainted_at).as_secs_f64();
    assert!((1.9..8.0).contains(&waited), "evicted {waited}s after the taint");
    let plain = pods.get("plain").await.unwrap();
    assert!(plain.metadata.deletion_timestamp.is_none(), "tolerates unreachable for 300 s");
    c.eventually(5, "pods of the silent node marked not ready", || async {
        let p = pods.get("plain").await.unwrap();
        let conditions = p.status.and_then(|s| s.conditions).unwrap_or_default();
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False").then_some(())
    })
    .await;

    // The renewed node has been watched for longer than the grace period: still Ready, untainted.
    let alive = nodes.get("alive").await.unwrap();
    assert_eq!(ready(&alive).map(|r| r.0).as_deref(), Some("True"));
    assert!(taints(&alive).is_empty(), "{:?}", taints(&alive));

    // The kubelet comes back: Lease renewals and a fresh Ready heartbeat remove the taints.
    silent_renews.store(true, Ordering::SeqCst);
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    nodes.patch_status("silent", PatchType::StrategicMerge, &patch).await.unwrap();
    let recovered = c
        .eventually(5, "taints removed from the recovered node", || async {
            let n = nodes.get("silent").await.unwrap();
            (!taints(&n).iter().any(|t| t.key == UNREACHABLE)).then_some(n)
        })
        .await;
    assert_eq!(ready(&recovered).map(|r| r.0).as_deref(), Some("True"));
    kubelets.abort();
}
