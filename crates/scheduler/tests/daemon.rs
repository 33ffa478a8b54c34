//! rkube-scheduler as a process against a real rkube-apiserver and etcd, driven through the
//! client library: a burst of pods never over-commits a node (assumed bindings), freed room is
//! used at once (retry on pod deletion), and the scheduler rides out restarts of the API
//! server and of etcd.

use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_client::{Api, Client, DeleteParams, ListParams};
use rkube_testkit::{ApiServer, Daemon, Etcd};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn node(name: &str, cpu: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .unwrap()
}

fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]},
    }))
    .unwrap()
}

/// Pods per node (None for unbound) once the counts have been stable for a second.
async fn settle(pods: &Api<Pod>, want_bound: usize, sched: &Daemon) -> BTreeMap<Option<String>, usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = pods.list(&ListParams::default()).await.unwrap();
        let mut per_node = BTreeMap::new();
        for p in &list.items {
            *per_node.entry(p.spec.as_ref().and_then(|s| s.node_name.clone())).or_insert(0) += 1;
        }
        let bound: usize = per_node.iter().filter(|(k, _)| k.is_some()).map(|(_, v)| v).sum();
        if bound >= want_bound {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return per_node;
        }
        assert!(
            Instant::now() < deadline,
            "only {bound} of {want_bound} pods bound: {per_node:?}\n{}",
            sched.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_bound(pods: &Api<Pod>, name: &str, sched: &Daemon) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(p) = pods.get(name).await
            && let Some(n) = p.spec.and_then(|s| s.node_name)
        {
            return n;
        }
        assert!(Instant::now() < deadline, "{name} not bound\n{}", sched.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_never_overcommits_and_freed_room_is_reused() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    for n in ["n1", "n2", "n3"] {
        client.api::<Node>(None).create(&node(n, "4")).await.unwrap();
    }
    let pods = client.api::<Pod>(Some("default"));
    // All 20 are pending before the scheduler starts, so it places them back to back, far
    // faster than the informer confirms each binding.
    for i in 0..20 {
        pods.create(&pod(&format!("p{i:02}"), "1")).await.unwrap();
    }
    let sched = Daemon::start("rkube-scheduler", &api, &["--leader-elect=false"]).unwrap();
    let per_node = settle(&pods, 12, &sched).await;
    assert_eq!(per_node.get(&None), Some(&8), "{per_node:?}");
    for n in ["n1", "n2", "n3"] {
        assert_eq!(per_node.get(&Some(n.to_string())), Some(&4), "4 one-CPU pods per 4-CPU node: {per_node:?}");
    }
    let pending: Vec<Pod> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().unwrap().node_name.is_none())
        .collect();
    for p in &pending {
        let cond = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .cloned();
        let cond = cond.unwrap_or_else(|| panic!("no PodScheduled condition on {:?}", p.metadata.name));
        assert_eq!(cond.status, "False");
        assert_eq!(cond.message.as_deref(), Some("0/3 nodes are available: 3 Insufficient cpu."));
    }

    // Deleting two bound pods frees two CPUs: exactly two pending pods take them.
    let bound: Vec<Pod> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
        .collect();
    for p in bound.iter().take(2) {
        pods.delete(
            p.metadata.name.as_deref().unwrap(),
            &DeleteParams { grace_period_seconds: Some(0), ..Default::default() },
        )
        .await
        .unwrap();
    }
    let per_node = settle(&pods, 12, &sched).await;
    assert_eq!(per_node.get(&None), Some(&6), "{per_node:?}");
    assert!(per_node.iter().filter(|(k, _)| k.is_some()).all(|(_, v)| *v == 4), "{per_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_continues_across_api_server_and_etcd_restarts() {
    let mut etcd = Etcd::start().unwrap();
    let mut api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    client.api::<Node>(None).create(&node("n1", "8")).await.unwrap();
    let sched = Daemon::start("rkube-scheduler", &api, &["--leader-elect=false"]).unwrap();
    let pods = client.api::<Pod>(Some("default"));
    pods.create(&pod("first", "100m")).await.unwrap();
    assert_eq!(wait_bound(&pods, "first", &sched).await, "n1");

    tokio::task::block_in_place(|| api.restart()).unwrap();
    pods.create(&pod("after-apiserver", "100m")).await.unwrap();
    assert_eq!(wait_bound(&pods, "after-apiserver", &sched).await, "n1");

    tokio::task::block_in_place(|| etcd.restart()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = pods.create(&pod("after-etcd", "100m")).await {
        assert!(Instant::now() < deadline, "create after etcd restart: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(wait_bound(&pods, "after-etcd", &sched).await, "n1");
    let mut sched = sched;
    assert!(sched.is_running(), "the scheduler survived both restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_prefer_free_nodes_but_spread_one_owners_replicas() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    // "big" is by far the emptiest node, so least-allocated scoring alone always picks it.
    for (n, cpu) in [("big", "16"), ("small-1", "4"), ("small-2", "4")] {
        client.api::<Node>(None).create(&node(n, cpu)).await.unwrap();
    }
    let sched = Daemon::start("rkube-scheduler", &api, &["--leader-elect=false"]).unwrap();
    let pods = client.api::<Pod>(Some("default"));
    for i in 0..3 {
        let name = format!("loner-{i}");
        pods.create(&pod(&name, "100m")).await.unwrap();
        assert_eq!(wait_bound(&pods, &name, &sched).await, "big", "without an owner, the emptiest node wins");
    }
    // Three replicas of one ReplicaSet: spreading (weight 2) outweighs least-allocated.
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("replica-{i}");
        let mut p = pod(&name, "100m");
        p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "6f1c2f1e-0000-4000-8000-000000000001",
            "controller": true,
        }))
        .unwrap()]);
        pods.create(&p).await.unwrap();
        nodes.push(wait_bound(&pods, &name, &sched).await);
    }
    nodes.sort();
    assert_eq!(nodes, vec!["big", "small-1", "small-2"], "one replica per node");
}
