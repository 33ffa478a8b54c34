//! A stand-in for the kubelet in tests of the control plane (controllers and scheduler), as
//! the controllers issue asks: it runs no containers; it only writes what a kubelet would
//! write — bound pods become Running and Ready with an IP (pods of a Job finish Succeeded
//! instead), pods being deleted are confirmed gone (the final grace-period-0 delete), and
//! every node's Lease is renewed.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use rkube_client::{Client, DeleteParams, ListParams, PatchType};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs until dropped, on its own thread and runtime.
pub struct KubeletStandIn {
    stop: Arc<AtomicBool>,
    dead: Arc<Mutex<HashSet<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeletStandIn {
    /// Starts acting for every node against the API server at `server`. Pods whose name
    /// contains `never-ready` are left Running but not Ready.
    pub fn start(server: &str) -> KubeletStandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let dead: Arc<Mutex<HashSet<String>>> = Arc::default();
        let (s, d) = (stop.clone(), dead.clone());
        let server = server.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(run(server, s, d));
        });
        KubeletStandIn { stop, dead, thread: Some(thread) }
    }

    /// The node's kubelet "crashes": its Lease is no longer renewed and its pods are no
    /// longer looked after (not even their deletion confirmed).
    pub fn kill_node(&self, node: &str) {
        self.dead.lock().unwrap_or_else(|e| e.into_inner()).insert(node.to_string());
    }
}

impl Drop for KubeletStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn run(server: String, stop: Arc<AtomicBool>, dead: Arc<Mutex<HashSet<String>>>) {
    let Ok(client) = Client::new(&server) else { return };
    let mut ready: HashSet<String> = HashSet::new();
    let mut tick = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let dead_now = dead.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if tick.is_multiple_of(20) {
            renew_leases(&client, &dead_now).await;
        }
        tick += 1;
        if let Ok(list) = client.api::<Pod>(None).list(&ListParams::default()).await {
            for pod in list.items {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else { continue };
                if dead_now.contains(&node) {
                    continue;
                }
                let api = client.api::<Pod>(Some(&ns));
                if pod.metadata.deletion_timestamp.is_some() {
                    let params = DeleteParams {
                        grace_period_seconds: Some(0),
                        precondition_uid: Some(uid),
                        ..Default::default()
                    };
                    let _ = api.delete(&name, &params).await;
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if ready.contains(&uid) || matches!(phase, Some("Succeeded" | "Failed")) {
                    continue;
                }
                let owned_by_job = pod.metadata.owner_references.iter().flatten().any(|r| r.kind == "Job");
                if owned_by_job {
                    let patch = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
                        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
                    if api.patch_status(&name, PatchType::StrategicMerge, &patch).await.is_ok() {
                        ready.insert(uid);
                    }
                    continue;
                }
                let ip = format!("10.244.{}.{}", uid.len() % 250, rand_octet(&uid));
                let patch = rkube_testkit::podstatus::running(&ip, !name.contains("never-ready"));
                if api.patch_status(&name, PatchType::StrategicMerge, &patch).await.is_ok() {
                    ready.insert(uid);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rand_octet(uid: &str) -> u8 {
    uid.bytes().fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b)) % 250 + 2
}

/// Renews (or creates) the Lease of every node in kube-node-lease, as a kubelet does.
async fn renew_leases(client: &Client, dead: &HashSet<String>) {
    let Ok(nodes) = client.api::<Node>(None).list(&ListParams::default()).await else { return };
    let leases = client.api::<Lease>(Some("kube-node-lease"));
    for node in nodes.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        if dead.contains(&name) {
            continue;
        }
        let now = Some(MicroTime(jiff::Timestamp::now()));
        match leases.get_opt(&name).await {
            Ok(Some(mut lease)) => {
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = now;
                }
                let _ = leases.update(&lease).await;
            }
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some("kube-node-lease".into()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name),
                        lease_duration_seconds: Some(40),
                        renew_time: now,
                        ..Default::default()
                    }),
                };
                let _ = leases.create(&lease).await;
            }
            Err(_) => {}
        }
    }
}
