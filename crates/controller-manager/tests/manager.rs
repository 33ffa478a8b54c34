//! The controller-manager daemon itself: only the leader reconciles, a standby takes over when
//! the leader is killed, and /metrics reports each controller's queue and reconciles.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::Client;
use rkube_testkit::{ApiServer, Daemon, Etcd};
use std::time::{Duration, Instant};

fn namespace(name: &str) -> Namespace {
    Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
}

async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_leader_is_killed_and_metrics_are_served() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let timings = [
        "--controllers=serviceaccount",
        "--leader-elect-lease-duration=3s",
        "--leader-elect-renew-deadline=2s",
        "--leader-elect-retry-period=300ms",
        "--bind-address=127.0.0.1",
    ];
    let mut first_args = timings.to_vec();
    first_args.extend(["--secure-port", &port]);
    let mut first = Daemon::start("rkube-controller-manager", &api, &first_args).unwrap();
    let leases = client.api::<Lease>(Some("kube-system"));
    let leader = wait_for(20, "a leader", || async {
        leases.get_opt("kube-controller-manager").await.ok().flatten().and_then(|l| l.spec?.holder_identity)
    })
    .await;
    let standby = Daemon::start("rkube-controller-manager", &api, &timings).unwrap();

    client.api::<Namespace>(None).create(&namespace("before")).await.unwrap();
    let sa = client.api::<ServiceAccount>(Some("before"));
    wait_for(20, "default SA from the leader", || async { sa.get_opt("default").await.ok().flatten() }).await;

    let metrics = wait_for(20, "/metrics", || async {
        let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()?;
        body.contains("controller_reconcile_total{controller=\"serviceaccount\",result=\"success\"}").then_some(body)
    })
    .await;
    assert!(metrics.contains("workqueue_depth{name=\"serviceaccount\"}"), "{metrics}");
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    first.kill();
    let new_leader = wait_for(20, "the standby to take the lease", || async {
        let holder = leases.get_opt("kube-controller-manager").await.ok().flatten()?.spec?.holder_identity?;
        (holder != leader).then_some(holder)
    })
    .await;
    assert_ne!(new_leader, leader);
    client.api::<Namespace>(None).create(&namespace("after")).await.unwrap();
    let sa = client.api::<ServiceAccount>(Some("after"));
    wait_for(20, "default SA from the new leader", || async { sa.get_opt("default").await.ok().flatten() }).await;
    drop(standby);
}

/// Pods controlled by a ReplicaSet named `rs`, not being deleted.
async fn replicas_of(client: &Client, rs: &str) -> usize {
    let pods = client.api::<k8s_openapi::api::core::v1::Pod>(Some("default"));
    let list = pods.list(&rkube_client::ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    list.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|r| r.name == rs && r.controller == Some(true)))
        .count()
}

fn replica_set(name: &str, replicas: i32) -> k8s_openapi::api::apps::v1::ReplicaSet {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .expect("a valid ReplicaSet")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_keep_working_across_api_server_and_etcd_restarts() {
    let mut etcd = Etcd::start().unwrap();
    let mut api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let mut cm =
        Daemon::start("rkube-controller-manager", &api, &["--leader-elect=false", "--controllers=replicaset"]).unwrap();
    let sets = client.api::<k8s_openapi::api::apps::v1::ReplicaSet>(Some("default"));
    sets.create(&replica_set("before", 2)).await.unwrap();
    wait_for(20, "2 pods of `before`", || async { (replicas_of(&client, "before").await == 2).then_some(()) }).await;

    tokio::task::block_in_place(|| api.restart()).unwrap();
    sets.create(&replica_set("after-apiserver", 3)).await.unwrap();
    wait_for(30, "3 pods of `after-apiserver`", || async {
        (replicas_of(&client, "after-apiserver").await == 3).then_some(())
    })
    .await;

    tokio::task::block_in_place(|| etcd.restart()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = sets.create(&replica_set("after-etcd", 1)).await {
        assert!(Instant::now() < deadline, "create after the etcd restart: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(30, "1 pod of `after-etcd`", || async { (replicas_of(&client, "after-etcd").await == 1).then_some(()) })
        .await;
    assert_eq!(replicas_of(&client, "before").await, 2, "nothing was created twice across the restarts");
    assert!(cm.is_running(), "the controller-manager rode out both restarts:\n{}", cm.log_tail());
}
