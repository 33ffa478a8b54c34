//! The pods of this node: an informer on pods bound here feeds one worker per pod; a poller of
//! the runtime wakes the worker whose container changed state (containerd 1.6 has no event
//! stream for CRI), and housekeeping removes what no pod owns any more.

pub mod spec;
pub mod status;
pub mod worker;

use crate::cri::{Cri, api};
use crate::images::ImageManager;
use crate::probes::ProbeManager;
use crate::volumes::VolumeManager;
use k8s_openapi::api::core::v1::Pod;
use rkube_client::informer::Event;
use rkube_client::{Client, EventRecorder, Informer, ListParams, Store};
use spec::{LABEL_POD_UID, NodeSettings};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// What every pod worker shares.
pub struct Shared {
    /// The API client.
    pub client: Client,
    /// The container runtime.
    pub cri: Cri,
    /// This node's address, reported as hostIP.
    pub host_ip: String,
    /// DNS and log settings for sandboxes.
    pub settings: NodeSettings,
    /// The kubelet's state directory.
    pub root_dir: PathBuf,
    /// Events as "kubelet".
    pub recorder: EventRecorder,
    /// Image pulls.
    pub images: Arc<ImageManager>,
    /// Probes.
    pub probes: Arc<ProbeManager>,
    /// Volumes.
    pub volumes: Arc<VolumeManager>,
    /// HTTP client for lifecycle hooks.
    pub http: reqwest::Client,
    /// How often a pod is synced without a reason.
    pub sync_frequency: Duration,
}

struct Handle {
    pod: watch::Sender<Option<Arc<Pod>>>,
    notify: Arc<Notify>,
}

/// Metadata without what every write changes (resourceVersion, managedFields).
fn without_status(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut m = m.clone();
    m.resource_version = None;
    m.managed_fields = None;
    m
}

/// Runs one worker per pod bound to this node.
pub struct PodManager {
    shared: Arc<Shared>,
    workers: Arc<Mutex<HashMap<String, Handle>>>,
    informer: Mutex<Option<Informer<Pod>>>,
    store: Store<Pod>,
    token: CancellationToken,
}

impl PodManager {
    /// A manager of the pods bound to `node_name`, whose workers stop when `token` fires.
    pub fn new(shared: Arc<Shared>, node_name: &str, token: CancellationToken) -> Arc<PodManager> {
        let api = shared.client.api::<Pod>(None);
        let informer = Informer::new(api, ListParams::fields(&format!("spec.nodeName={node_name}")));
        let store = informer.store();
        Arc::new(PodManager { shared, workers: Arc::default(), informer: Mutex::new(Some(informer)), store, token })
    }

    /// The pods bound to this node, as last seen.
    pub fn pods(&self) -> Store<Pod> {
        self.store.clone()
    }

    /// Wakes the worker of `uid`, if there is one.
    pub fn poke(&self, uid: &str) {
        if let Some(h) = self.workers.lock().unwrap_or_else(|e| e.into_inner()).get(uid) {
            h.notify.notify_one();
        }
    }

    fn update(self: &Arc<Self>, pod: Option<Arc<Pod>>, uid: &str) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = workers.get(uid) {
            // The worker's own status writes come back as updates: keep the newest copy, but
            // only wake the worker when something other than status changed.
            h.pod.send_if_modified(|current| {
                let wake = match (current.as_deref(), pod.as_deref()) {
                    (Some(a), Some(b)) => {
                        // A pod failed from outside (eviction) must stop now, not at the next sync.
                        let finished = |p: &Pod| {
                            matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
                        };
                        a.spec != b.spec
                            || without_status(&a.metadata) != without_status(&b.metadata)
                            || finished(a) != finished(b)
                    }
                    _ => true,
                };
                *current = pod;
                wake
            });
            return;
        }
        let Some(pod) = pod else { return };
        let (tx, rx) = watch::channel(Some(pod));
        let notify = Arc::new(Notify::new());
        workers.insert(uid.to_string(), Handle { pod: tx, notify: notify.clone() });
        let worker = worker::PodWorker::new(self.shared.clone(), uid.to_string(), rx, notify);
        let (me, uid, token) = (self.clone(), uid.to_string(), self.token.clone());
        tokio::spawn(async move {
            worker.run(token).await;
            me.workers.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
        });
    }

    /// Watches the pods and keeps their workers fed until the token fires; runs once.
    pub async fn run(self: Arc<Self>) {
        let Some(mut informer) = self.informer.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        let store = self.store.clone();
        let me = self.clone();
        informer.on_event(move |e| match e {
            Event::Added(p) | Event::Updated { new: p, .. } => {
                if let Some(uid) = p.metadata.uid.clone() {
                    me.update(Some(p.clone()), &uid);
                }
            }
            Event::Deleted(p) => {
                if let Some(uid) = p.metadata.uid.clone() {
                    me.update(None, &uid);
                }
            }
        });
        let token = self.token.clone();
        tokio::spawn(informer.run(token.clone()));
        store.wait_synced().await;
        tokio::spawn(self.clone().poll_runtime(token.clone()));
        self.housekeeping(store, token).await;
    }

    /// Wakes workers whose containers changed state, polling ListContainers once a second.
    async fn poll_runtime(self: Arc<Self>, token: CancellationToken) {
        let mut seen: HashMap<String, i32> = HashMap::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let Ok(containers) = self.shared.cri.list_containers().await else { continue };
            let mut now = HashMap::with_capacity(containers.len());
            for c in &containers {
                if seen.get(&c.id) != Some(&c.state)
                    && let Some(uid) = c.labels.get(LABEL_POD_UID)
                {
                    self.poke(uid);
                }
                now.insert(c.id.clone(), c.state);
            }
            let live: HashSet<&String> = containers
                .iter()
                .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
                .map(|c| &c.id)
                .collect();
            self.shared.probes.retain(&|id| live.contains(&id.to_string()));
            seen = now;
        }
    }

    /// Every 30 s (and once at start): removes sandboxes, containers and volume directories of
    /// pods this node no longer has — pods deleted while the kubelet was down.
    async fn housekeeping(&self, store: Store<Pod>, token: CancellationToken) {
        loop {
            let known: HashSet<String> = store.list().iter().filter_map(|p| p.metadata.uid.clone()).collect();
            let working: HashSet<String> =
                self.workers.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
            let owned = |uid: &str| known.contains(uid) || working.contains(uid);
            if let Ok(sandboxes) = self.shared.cri.list_sandboxes().await {
                for s in sandboxes {
                    let uid = s.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
                    if !owned(&uid) {
                        tracing::info!(pod_uid = %uid, sandbox = %s.id, "removing sandbox of a pod this node no longer has");
                        if let Ok(cs) = self.shared.cri.list_containers().await {
                            for c in cs.iter().filter(|c| c.pod_sandbox_id == s.id) {
                                let _ = self.shared.cri.stop_container(&c.id, 2).await;
                                let _ = self.shared.cri.remove_container(&c.id).await;
                            }
                        }
                        let _ = self.shared.cri.remove_sandbox(&s.id).await;
                    }
                }
            }
            for uid in self.shared.volumes.pods_on_disk() {
                if !owned(&uid) {
                    let _ = self.shared.volumes.unmount_pod(&uid).await;
                    let _ = std::fs::remove_dir_all(self.shared.root_dir.join("pods").join(&uid));
                }
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }
}
