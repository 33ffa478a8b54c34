//! Shared harness of the controller-manager's integration tests: a real etcd, rkube-apiserver
//! and rkube-controller-manager (only the controllers a test names), a typed client, polling,
//! and helpers that play the kubelet by writing pod status.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_client::{Api, Client, PatchType};
use rkube_testkit::{ApiServer, Daemon, Etcd};
use serde_json::json;
use std::future::Future;
use std::time::{Duration, Instant};

/// etcd + API server + controller-manager, stopped (by PID) on drop.
pub struct Cluster {
    /// The controller-manager process (dropped first).
    pub cm: Daemon,
    /// The API server process.
    pub api: ApiServer,
    /// The etcd process.
    pub etcd: Etcd,
    /// A client of the API server.
    pub client: Client,
}

impl Cluster {
    /// Starts etcd, an API server and a controller-manager running `controllers`
    /// (comma-separated `--controllers` value) plus `extra` flags.
    pub fn start(controllers: &str, extra: &[&str]) -> Cluster {
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start(&etcd).expect("apiserver starts");
        let mut args = vec!["--leader-elect=false".to_string(), format!("--controllers={controllers}")];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cm = Daemon::start("rkube-controller-manager", &api, &args).expect("controller-manager starts");
        let client = Client::new(&api.url()).expect("client");
        Cluster { cm, api, etcd, client }
    }

    /// Typed requests in `namespace` (None: all namespaces / cluster scope).
    pub fn api<K: k8s_openapi::Resource>(&self, namespace: Option<&str>) -> Api<K> {
        self.client.api(namespace)
    }

    /// Polls `check` every 100 ms until it returns Some, or fails after `secs` seconds with
    /// `what` and the controller-manager's log.
    pub async fn eventually<T, F, Fut>(&self, secs: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {secs}s waiting for {what}\ncontroller-manager log:\n{}", self.cm.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a Ready node with room for 110 pods.
    pub async fn node(&self, name: &str) -> Node {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .expect("a valid Node");
        self.api::<Node>(None).create(&node).await.expect("node created")
    }

    /// Plays the kubelet: marks the pod Running and Ready (or not); `_node` only documents
    /// where the test pretends it runs.
    pub async fn set_pod_running(&self, pod: &Pod, _node: &str, ready: bool) -> Pod {
        self.set_pod_running_ip(pod, "10.244.0.10", ready).await
    }

    /// Plays the kubelet: marks the pod Running with pod IP `ip`, and Ready (or not).
    pub async fn set_pod_running_ip(&self, pod: &Pod, ip: &str, ready: bool) -> Pod {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = rkube_testkit::podstatus::running(ip, ready);
        self.api::<Pod>(Some(ns))
            .patch_status(name, PatchType::StrategicMerge, &patch)
            .await
            .expect("pod status written")
    }

    /// Plays the kubelet: marks the pod finished with `phase` ("Succeeded" or "Failed").
    pub async fn set_pod_finished(&self, pod: &Pod, phase: &str) -> Pod {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = json!({"status": {"phase": phase}});
        self.api::<Pod>(Some(ns))
            .patch_status(name, PatchType::StrategicMerge, &patch)
            .await
            .expect("pod status written")
    }
}
