//! One worker per pod: brings the runtime in line with the pod's spec (sandbox, init
//! containers in order, containers with restart back-off, liveness restarts), tears it down
//! when the pod is deleted, and writes the pod's status when it changed.

use super::Shared;
use super::spec::{self, ContainerInputs, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use super::status::{self, ContainerView, PodView};
use crate::cri::api;
use crate::handlers::{self, Outcome};
use crate::images::{PullError, Pulled, pull_policy};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use rkube_client::{DeleteParams, EventType, PatchType};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Kubernetes' container restart back-off: 10s doubling to 5m, forgotten after 10m of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// The least time a container gets to stop, even when its grace period has run out.
const MIN_GRACE: i64 = 2;

/// An exponential back-off for one thing that keeps failing.
#[derive(Debug, Clone, Copy)]
struct Retry {
    delay: Duration,
    since: Instant,
}

impl Retry {
    fn waiting(this: Option<&Retry>) -> Option<Duration> {
        this.and_then(|r| (r.since + r.delay).checked_duration_since(Instant::now()))
    }

    fn bump(this: Option<Retry>) -> Retry {
        let delay = this.map(|r| (r.delay * 2).min(BACKOFF_MAX)).unwrap_or(BACKOFF_INITIAL);
        Retry { delay, since: Instant::now() }
    }
}

/// Go's rendering of a duration ("10s", "1m20s", "5m0s"), as Kubernetes' messages show it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}

/// What the runtime holds for one pod.
#[derive(Default)]
struct Runtime {
    /// Sandboxes of the pod, newest first.
    sandboxes: Vec<api::PodSandbox>,
    /// Container instances by container name, newest attempt first.
    containers: HashMap<String, Vec<api::ContainerStatus>>,
}

impl Runtime {
    fn ready_sandbox(&self) -> Option<&api::PodSandbox> {
        self.sandboxes.iter().find(|s| s.state == api::PodSandboxState::SandboxReady as i32)
    }

    fn latest(&self, name: &str) -> Option<&api::ContainerStatus> {
        self.containers.get(name).and_then(|v| v.first())
    }

    fn running(&self) -> impl Iterator<Item = &api::ContainerStatus> {
        self.containers.values().flatten().filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
    }
}

fn is_exited(c: &api::ContainerStatus) -> bool {
    c.state == api::ContainerState::ContainerExited as i32
}

fn attempt(c: &api::ContainerStatus) -> u32 {
    c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0)
}

/// Why the worker stops.
enum Done {
    /// Keep going; sync again after this long at the latest.
    Again(Option<Duration>),
    /// The pod is gone and everything of it removed.
    Finished,
}

/// The worker of one pod.
pub struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    pod: watch::Receiver<Option<Arc<Pod>>>,
    notify: Arc<Notify>,
    last_known: Option<Arc<Pod>>,
    /// Why a container waits, when the kubelet knows better than the runtime.
    waiting: HashMap<String, (String, String)>,
    restarts: HashMap<String, Retry>,
    pulls: HashMap<String, Retry>,
    sandbox_retry: Option<Retry>,
    last_status: Option<serde_json::Value>,
}

impl PodWorker {
    /// A worker for the pod with `uid`, fed by `pod` (None once deleted) and woken by `notify`.
    pub fn new(shared: Arc<Shared>, uid: String, pod: watch::Receiver<Option<Arc<Pod>>>, notify: Arc<Notify>) -> Self {
        PodWorker {
            shared,
            uid,
            pod,
            notify,
            last_known: None,
            waiting: HashMap::new(),
            restarts: HashMap::new(),
            pulls: HashMap::new(),
            sandbox_retry: None,
            last_status: None,
        }
    }

    /// Syncs until the pod is gone (or the kubelet stops, leaving containers running).
    pub async fn run(mut self, token: CancellationToken) {
        loop {
            let current = self.pod.borrow().clone();
            if let Some(p) = &current {
                self.last_known = Some(p.clone());
            }
            let next = match self.sync(current).await {
                Ok(Done::Finished) => return,
                Ok(Done::Again(next)) => next,
                Err(e) => {
                    tracing::warn!(pod = %self.uid, error = %e, "pod sync failed");
                    Some(Duration::from_secs(2))
                }
            };
            let period = next.unwrap_or(self.shared.sync_frequency).max(Duration::from_millis(50));
            tokio::select! {
                _ = token.cancelled() => return,
                _ = self.notify.notified() => {}
                _ = self.pod.changed() => {}
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn runtime(&self) -> Result<Runtime, crate::cri::CriError> {
        let cri = &self.shared.cri;
        let mut rt = Runtime::default();
        let mut sandboxes = cri.list_sandboxes_labelled(LABEL_POD_UID, &self.uid).await?;
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        rt.sandboxes = sandboxes;
        for c in cri.list_containers_labelled(LABEL_POD_UID, &self.uid).await? {
            let name = c.labels.get(LABEL_CONTAINER_NAME).cloned().unwrap_or_default();
            match cri.container_status(&c.id).await {
                Ok(mut st) => {
                    if oom_may_be_pending(&st) {
                        // containerd handles a task's exit and its OOM event separately: a moment
                        // after an OOM kill the status may still say Error. Give the event a
                        // chance, so the container is reported OOMKilled as it happened.
                        for _ in 0..OOM_EVENT_POLLS {
                            tokio::time::sleep(OOM_EVENT_POLL).await;
                            match cri.container_status(&c.id).await {
                                Ok(again) if again.reason != st.reason => {
                                    st = again;
                                    break;
                                }
                                _ => {}
                            }
                        }
                    }
                    if is_exited(&st) && st.message.is_empty() {
                        st.message = self.termination_message(&name, attempt(&st));
                    }
                    rt.containers.entry(name).or_default().push(st);
                }
                Err(crate::cri::CriError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for v in rt.containers.values_mut() {
            v.sort_by_key(|c| std::cmp::Reverse((attempt(c), c.created_at)));
        }
        Ok(rt)
    }

    fn termination_message(&self, container: &str, attempt: u32) -> String {
        let path = spec::termination_log(&self.shared.root_dir, &self.uid, container, attempt);
        let mut text = std::fs::read(&path).unwrap_or_default();
        text.truncate(4096);
        String::from_utf8_lossy(&text).into_owned()
    }

    async fn sync(&mut self, pod: Option<Arc<Pod>>) -> anyhow::Result<Done> {
        let Some(pod) = pod else {
            // Deleted from the API (force deletion or our own final delete): clean up.
            let grace = self.last_known.as_deref().map(grace_period).unwrap_or(MIN_GRACE);
            self.kill_pod(None, grace).await?;
            self.remove_pod().await?;
            return Ok(Done::Finished);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or_else(|| grace_period(&pod));
            self.kill_pod(Some(&pod), grace).await?;
            let rt = self.runtime().await?;
            self.write_status(&pod, &rt).await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: Some(self.uid.clone()),
                ..Default::default()
            };
            let api = self.shared.client.api::<Pod>(pod.metadata.namespace.as_deref());
            match api.delete(pod.metadata.name.as_deref().unwrap_or_default(), &params).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
            // The informer's Deleted event brings the final clean-up.
            return Ok(Done::Again(Some(Duration::from_secs(5))));
        }
        if matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
            // Finished: stop what is left and release the sandbox; keep containers for logs.
            self.kill_pod(Some(&pod), grace_period(&pod)).await?;
            for s in
                self.runtime().await?.sandboxes.iter().filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
            {
                let _ = self
                    .shared
                    .cri
                    .runtime
                    .clone()
                    .stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: s.id.clone() })
                    .await;
            }
            return Ok(Done::Again(Some(Duration::from_secs(60))));
        }
        if let Some(d) = active_deadline_passed(&pod) {
            self.kill_pod(Some(&pod), grace_period(&pod)).await?;
            let patch = json!({"status": {"phase": "Failed", "reason": "DeadlineExceeded",
                "message": format!("Pod was active on the node longer than the specified deadline ({d}s)")}});
            self.patch_status(&pod, &patch).await;
            return Ok(Done::Again(None));
        }
        self.sync_running(&pod).await
    }

    async fn sync_running(&mut self, pod: &Arc<Pod>) -> anyhow::Result<Done> {
        let mut rt = self.runtime().await?;
        let mut next: Option<Duration> = None;
        let mut soonest = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        let never_restart = restart_policy(pod) == "Never";

        // The sandbox.
        if rt.ready_sandbox().is_none() {
            let ran_before = !rt.containers.is_empty();
            let all_done = pod_containers(pod).iter().all(|c| rt.latest(&c.name).is_some_and(is_exited));
            if ran_before && never_restart && all_done {
                self.write_status(pod, &rt).await;
                return Ok(Done::Again(None));
            }
            if let Some(wait) = Retry::waiting(self.sandbox_retry.as_ref()) {
                self.write_status(pod, &rt).await;
                return Ok(Done::Again(Some(wait)));
            }
            if ran_before {
                self.shared.recorder.record(
                    pod.as_ref(),
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                );
                self.kill_pod(Some(pod), grace_period(pod)).await?;
            }
            if let Err(e) = self.start_sandbox(pod, &rt).await {
                self.sandbox_retry = Some(Retry::bump(self.sandbox_retry));
                self.write_status(pod, &rt).await;
                tracing::warn!(pod = %self.uid, error = %e, "starting the pod sandbox failed");
                return Ok(Done::Again(Retry::waiting(self.sandbox_retry.as_ref())));
            }
            self.sandbox_retry = None;
            rt = self.runtime().await?;
        }
        let Some(sandbox) = rt.ready_sandbox().cloned() else {
            return Ok(Done::Again(Some(Duration::from_secs(1))));
        };
        let pod_ip = self.shared.cri.sandbox_status(&sandbox.id).await.ok().and_then(|s| s.network).map(|n| n.ip);
        let pod_ip = pod_ip.unwrap_or_default();
        // Volumes may have been mounted by an earlier kubelet; mounting again is idempotent and
        // refreshes configMap/secret contents.
        if let Err(e) = self.shared.volumes.refresh(pod, &self.shared.host_ip, &ips(&pod_ip)).await {
            tracing::debug!(pod = %self.uid, error = %e, "refreshing volumes failed");
        }

        // Liveness or startup failures: restart those containers.
        for c in rt.running().cloned().collect::<Vec<_>>() {
            if self.shared.probes.results(&c.id).is_some_and(|r| r.must_restart) {
                let name = c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
                self.shared.recorder.record(
                    pod.as_ref(),
                    EventType::Normal,
                    "Killing",
                    &format!("Container {name} failed liveness probe, will be restarted"),
                );
                self.kill_container(pod, &c, grace_period(pod)).await;
                self.shared.probes.stop(&c.id);
            }
        }
        let rt = self.runtime().await?;

        // Init containers, one at a time, each to completion.
        let mut init_done = true;
        for c in pod.spec.as_ref().and_then(|s| s.init_containers.clone()).unwrap_or_default() {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            match rt.latest(&c.name) {
                Some(l) if is_exited(l) && l.exit_code == 0 && !sidecar => continue,
                Some(l) if !is_exited(l) => {
                    self.adopt(pod, &c, l, &pod_ip);
                    if sidecar && self.shared.probes.results(&l.id).is_none_or(|r| r.started) {
                        continue;
                    }
                    init_done = false;
                    break;
                }
                Some(l) => {
                    init_done = false;
                    if never_restart && !sidecar {
                        break;
                    }
                    if let Some(wait) = self.restart_after(pod, &c, l) {
                        soonest(wait);
                        break;
                    }
                    self.start_container(pod, &sandbox, &c, attempt(l) + 1, &pod_ip).await;
                    break;
                }
                None => {
                    init_done = false;
                    if let Some(wait) = self.start_container(pod, &sandbox, &c, 0, &pod_ip).await {
                        soonest(wait);
                    }
                    break;
                }
            }
        }

        if init_done {
            for c in &pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default() {
                match rt.latest(&c.name) {
                    None => {
                        if let Some(wait) = self.start_container(pod, &sandbox, c, 0, &pod_ip).await {
                            soonest(wait);
                        }
                    }
                    Some(l) if !is_exited(l) => self.adopt(pod, c, l, &pod_ip),
                    Some(l) => {
                        let policy = restart_policy(pod);
                        let restart = policy == "Always" || (policy == "OnFailure" && l.exit_code != 0);
                        if !restart {
                            self.waiting.remove(&c.name);
                            continue;
                        }
                        if let Some(wait) = self.restart_after(pod, c, l) {
                            soonest(wait);
                            continue;
                        }
                        if let Some(wait) = self.start_container(pod, &sandbox, c, attempt(l) + 1, &pod_ip).await {
                            soonest(wait);
                        }
                    }
                }
            }
        }
        let rt = self.runtime().await?;
        self.write_status(pod, &rt).await;
        self.collect_garbage(&rt).await;
        Ok(Done::Again(next))
    }

    /// Probes a container found running (started by this worker or by an earlier kubelet).
    fn adopt(&self, pod: &Pod, c: &Container, l: &api::ContainerStatus, pod_ip: &str) {
        if l.state == api::ContainerState::ContainerRunning as i32 {
            self.shared.probes.start(pod, c, &l.id, pod_ip);
        }
    }

    /// Some(wait) while the exited container `l` must wait before its restart; also records
    /// the CrashLoopBackOff state. None when it may restart now (the back-off is bumped).
    fn restart_after(&mut self, pod: &Pod, c: &Container, l: &api::ContainerStatus) -> Option<Duration> {
        // A container that ran for 10 minutes starts its back-off afresh.
        if l.finished_at - l.started_at > 600_000_000_000 {
            self.restarts.remove(&c.name);
        }
        if let Some(wait) = Retry::waiting(self.restarts.get(&c.name)) {
            let delay = self.restarts.get(&c.name).map(|r| r.delay).unwrap_or(BACKOFF_INITIAL);
            let m = &pod.metadata;
            let who = format!(
                "{}_{}({})",
                m.name.as_deref().unwrap_or_default(),
                m.namespace.as_deref().unwrap_or_default(),
                self.uid
            );
            let newly = self.waiting.get(&c.name).is_none_or(|(r, _)| r != "CrashLoopBackOff");
            self.waiting.insert(
                c.name.clone(),
                (
                    "CrashLoopBackOff".into(),
                    format!("back-off {} restarting failed container={} pod={who}", go_duration(delay), c.name),
                ),
            );
            if newly {
                self.shared.recorder.record(
                    pod,
                    EventType::Warning,
                    "BackOff",
                    &format!("Back-off restarting failed container {} in pod {who}", c.name),
                );
            }
            return Some(wait);
        }
        self.restarts.insert(c.name.clone(), Retry::bump(self.restarts.get(&c.name).copied()));
        None
    }

    async fn start_sandbox(&mut self, pod: &Pod, rt: &Runtime) -> anyhow::Result<()> {
        let cri = &self.shared.cri;
        // Leftover sandboxes that are not ready (a failed start, a dead pause process) go first.
        for s in &rt.sandboxes {
            cri.remove_sandbox(&s.id).await?;
        }
        if let Err(e) = self.shared.volumes.mount_pod(pod, &self.shared.host_ip, &[]).await {
            self.shared.recorder.record(pod, EventType::Warning, "FailedMount", &e.to_string());
            self.waiting_all(pod, "ContainerCreating", "");
            return Err(e.into());
        }
        let config = spec::sandbox_config(&self.shared.settings, pod, rt.sandboxes.len() as u32);
        std::fs::create_dir_all(&config.log_directory)?;
        let result = cri
            .runtime
            .clone()
            .run_pod_sandbox(api::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() })
            .await;
        if let Err(s) = result {
            let message = format!("Failed to create pod sandbox: {}", s.message());
            self.shared.recorder.record(pod, EventType::Warning, "FailedCreatePodSandBox", &message);
            // A failed RunPodSandbox leaves a NOTREADY sandbox behind.
            for s in cri.list_sandboxes().await?.into_iter().filter(|s| s.labels.get(LABEL_POD_UID) == Some(&self.uid))
            {
                if s.state != api::PodSandboxState::SandboxReady as i32 {
                    let _ = cri.remove_sandbox(&s.id).await;
                }
            }
            anyhow::bail!(message);
        }
        Ok(())
    }

    fn waiting_all(&mut self, pod: &Pod, reason: &str, message: &str) {
        for c in pod_containers(pod) {
            self.waiting.insert(c.name.clone(), (reason.to_string(), message.to_string()));
        }
    }

    /// Pulls, creates and starts one container; Some(wait) when it must be retried later.
    async fn start_container(
        &mut self,
        pod: &Pod,
        sandbox: &api::PodSandbox,
        c: &Container,
        attempt: u32,
        pod_ip: &str,
    ) -> Option<Duration> {
        let image = c.image.clone().unwrap_or_default();
        let policy = pull_policy(c).to_string();
        let recorder = &self.shared.recorder;

        // The image.
        let image_ref = match self.shared.images.present(&image, &policy).await {
            Ok(Some(r)) => {
                recorder.record(
                    pod,
                    EventType::Normal,
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                );
                r
            }
            Ok(None) => {
                if let Some(wait) = Retry::waiting(self.pulls.get(&image)) {
                    self.waiting.insert(
                        c.name.clone(),
                        ("ImagePullBackOff".into(), format!("Back-off pulling image \"{image}\"")),
                    );
                    recorder.record(pod, EventType::Normal, "BackOff", &format!("Back-off pulling image \"{image}\""));
                    recorder.record(pod, EventType::Warning, "Failed", "Error: ImagePullBackOff");
                    return Some(wait);
                }
                recorder.record(pod, EventType::Normal, "Pulling", &format!("Pulling image \"{image}\""));
                tracing::debug!(pod = %self.uid, %image, "pulling image");
                match self.shared.images.ensure(&image, "Always").await {
                    Ok(p) => {
                        self.pulls.remove(&image);
                        if let Pulled::Pulled(_, took) = &p {
                            recorder.record(
                                pod,
                                EventType::Normal,
                                "Pulled",
                                &format!(
                                    "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting)"
                                ),
                            );
                        }
                        p.image_ref().to_string()
                    }
                    Err(e) => {
                        tracing::info!(pod = %self.uid, %image, error = %e, "image pull failed");
                        self.pulls.insert(image.clone(), Retry::bump(self.pulls.get(&image).copied()));
                        recorder.record(
                            pod,
                            EventType::Warning,
                            "Failed",
                            &format!("Failed to pull image \"{image}\": {e}"),
                        );
                        recorder.record(pod, EventType::Warning, "Failed", "Error: ErrImagePull");
                        self.waiting.insert(c.name.clone(), ("ErrImagePull".into(), e.to_string()));
                        // The next sync, soon, reports the back-off (ImagePullBackOff) until it ends.
                        return Some(Duration::from_secs(1));
                    }
                }
            }
            Err(e @ PullError::NeverPull(_)) => {
                recorder.record(pod, EventType::Warning, "ErrImageNeverPull", &e.to_string());
                self.waiting.insert(c.name.clone(), ("ErrImageNeverPull".into(), e.to_string()));
                return Some(BACKOFF_INITIAL);
            }
            Err(e) => {
                self.waiting.insert(c.name.clone(), ("ErrImagePull".into(), e.to_string()));
                return Some(BACKOFF_INITIAL);
            }
        };

        // Environment and mounts: a missing ConfigMap or Secret is CreateContainerConfigError.
        let ips = ips(pod_ip);
        let env = match crate::env::container_env(&self.shared.client, pod, c, &self.shared.host_ip, &ips).await {
            Ok(env) => env,
            Err(e) => return self.config_error(pod, c, e.to_string()),
        };
        let mut mounts = match self.shared.volumes.container_mounts(pod, c, &env) {
            Ok(m) => m,
            Err(e) => return self.config_error(pod, c, e.to_string()),
        };
        let term_log = spec::termination_log(&self.shared.root_dir, &self.uid, &c.name, attempt);
        if let Some(dir) = term_log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // World-writable, so a container running as any user can leave its message.
        let written = std::fs::write(&term_log, b"")
            .and_then(|()| std::fs::set_permissions(&term_log, std::os::unix::fs::PermissionsExt::from_mode(0o666)));
        if written.is_ok() {
            mounts.push(api::Mount {
                container_path: c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into()),
                host_path: term_log.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let sandbox_config =
            spec::sandbox_config(&self.shared.settings, pod, sandbox.metadata.as_ref().map(|m| m.attempt).unwrap_or(0));
        let config = spec::container_config(pod, c, ContainerInputs { image: &image_ref, env: &env, mounts, attempt });
        let mut rt = self.shared.cri.runtime.clone();
        let created = rt
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(s) => {
                let message = s.message().to_string();
                recorder.record(pod, EventType::Warning, "Failed", &format!("Error: {message}"));
                self.waiting.insert(c.name.clone(), ("CreateContainerError".into(), message));
                return Some(BACKOFF_INITIAL);
            }
        };
        recorder.record(pod, EventType::Normal, "Created", &format!("Created container: {}", c.name));
        if let Err(s) = rt.start_container(api::StartContainerRequest { container_id: id.clone() }).await {
            let message = s.message().to_string();
            recorder.record(pod, EventType::Warning, "Failed", &format!("Error: {message}"));
            // The runtime reports the instance as exited (StartError); back-off applies as for a crash.
            self.waiting.remove(&c.name);
            return None;
        }
        self.waiting.remove(&c.name);
        recorder.record(pod, EventType::Normal, "Started", &format!("Started container {}", c.name));
        if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let timeout = Duration::from_secs(grace_period(pod).max(MIN_GRACE) as u64);
            if let Outcome::Failure(why) = self.run_hook(hook, c, &id, pod_ip, timeout).await {
                recorder.record(
                    pod,
                    EventType::Warning,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {why}"),
                );
                let _ = self.shared.cri.stop_container(&id, MIN_GRACE).await;
                return None;
            }
        }
        self.shared.probes.start(pod, c, &id, pod_ip);
        None
    }

    fn config_error(&mut self, pod: &Pod, c: &Container, message: String) -> Option<Duration> {
        self.shared.recorder.record(pod, EventType::Warning, "Failed", &format!("Error: {message}"));
        self.waiting.insert(c.name.clone(), ("CreateContainerConfigError".into(), message));
        Some(BACKOFF_INITIAL)
    }

    async fn run_hook(
        &self,
        hook: &LifecycleHandler,
        c: &Container,
        id: &str,
        pod_ip: &str,
        timeout: Duration,
    ) -> Outcome {
        if let Some(a) = &hook.exec {
            handlers::exec(&self.shared.cri, id, a, timeout).await
        } else if let Some(a) = &hook.http_get {
            handlers::http_get(&self.shared.http, a, c, pod_ip, timeout).await
        } else if let Some(a) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(a.seconds.max(0) as u64).min(timeout)).await;
            Outcome::Success
        } else {
            Outcome::Failure("hook has no handler".into())
        }
    }

    /// Stops one running instance: preStop hook, then SIGTERM and SIGKILL after the grace left.
    async fn kill_container(&self, pod: &Pod, c: &api::ContainerStatus, grace: i64) {
        let name = c.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let started = Instant::now();
        let spec = pod_containers(pod).into_iter().find(|s| s.name == name);
        if let Some((spec, hook)) = spec.as_ref().and_then(|s| Some((s, s.lifecycle.as_ref()?.pre_stop.as_ref()?))) {
            let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            let budget = Duration::from_secs(grace.max(0) as u64);
            if let Outcome::Failure(why) = self.run_hook(hook, spec, &c.id, &pod_ip, budget).await {
                self.shared.recorder.record(
                    pod,
                    EventType::Warning,
                    "FailedPreStopHook",
                    &format!("PreStopHook failed: {why}"),
                );
            }
        }
        let left = (grace - started.elapsed().as_secs() as i64).max(MIN_GRACE);
        self.shared.recorder.record(pod, EventType::Normal, "Killing", &format!("Stopping container {name}"));
        if let Err(e) = self.shared.cri.stop_container(&c.id, left).await {
            tracing::warn!(pod = %self.uid, container = %name, error = %e, "stopping container failed");
        }
    }

    /// Stops every running container of the pod, in parallel, each with `grace` seconds.
    async fn kill_pod(&self, pod: Option<&Pod>, grace: i64) -> anyhow::Result<()> {
        let rt = self.runtime().await?;
        let running: Vec<_> = rt.running().cloned().collect();
        let empty = Pod::default();
        let pod = pod.or(self.last_known.as_deref()).unwrap_or(&empty);
        futures::future::join_all(running.iter().map(|c| self.kill_container(pod, c, grace))).await;
        for c in &running {
            self.shared.probes.stop(&c.id);
        }
        Ok(())
    }

    /// Removes the pod's sandboxes, containers, volumes and logs.
    async fn remove_pod(&self) -> anyhow::Result<()> {
        let rt = self.runtime().await?;
        for c in rt.containers.values().flatten() {
            self.shared.probes.stop(&c.id);
            self.shared.cri.remove_container(&c.id).await?;
        }
        for s in &rt.sandboxes {
            self.shared.cri.remove_sandbox(&s.id).await?;
        }
        self.shared.volumes.unmount_pod(&self.uid).await?;
        if let Some(pod) = self.last_known.as_deref() {
            let _ = std::fs::remove_dir_all(spec::log_directory(&self.shared.settings, pod));
        }
        let _ = std::fs::remove_dir_all(self.shared.root_dir.join("pods").join(&self.uid));
        Ok(())
    }

    /// Keeps the newest two instances of each container (the current one and the one
    /// `logs --previous` reads); removes older ones.
    async fn collect_garbage(&self, rt: &Runtime) {
        for old in rt.containers.values().flat_map(|v| v.iter().skip(2)).filter(|c| is_exited(c)) {
            let _ = self.shared.cri.remove_container(&old.id).await;
            let name = old.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default();
            let _ = std::fs::remove_file(spec::termination_log(&self.shared.root_dir, &self.uid, name, attempt(old)));
        }
    }

    async fn write_status(&mut self, pod: &Pod, rt: &Runtime) {
        let sandbox = rt.ready_sandbox();
        let pod_ip = match sandbox {
            Some(s) => self.shared.cri.sandbox_status(&s.id).await.ok().and_then(|s| s.network).map(|n| n.ip),
            None => None,
        };
        let views = |containers: Vec<Container>| -> Vec<Instances> {
            containers
                .into_iter()
                .map(|c| {
                    let v = rt.containers.get(&c.name);
                    let latest = v.and_then(|v| v.first()).cloned();
                    let previous = v.and_then(|v| v.get(1)).cloned();
                    (c, latest, previous)
                })
                .collect()
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let init = views(spec.init_containers.clone().unwrap_or_default());
        let main = views(spec.containers.clone());
        let waiting = &self.waiting;
        let probes = &self.shared.probes;
        let view = PodView {
            sandbox_ready: sandbox.is_some(),
            pod_ip,
            host_ip: &self.shared.host_ip,
            init: init.iter().map(|t| to_view(t, waiting, probes)).collect(),
            containers: main.iter().map(|t| to_view(t, waiting, probes)).collect(),
        };
        let new = status::pod_status(pod, &view);
        let new_value = serde_json::to_value(&new).unwrap_or_default();
        let old_value = serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
        if new_value == old_value || self.last_status.as_ref() == Some(&new_value) {
            return;
        }
        if self.patch_status(pod, &json!({ "status": new_value })).await {
            self.last_status = Some(new_value);
        }
    }

    async fn patch_status(&self, pod: &Pod, patch: &serde_json::Value) -> bool {
        let api = self.shared.client.api::<Pod>(pod.metadata.namespace.as_deref());
        match api.patch_status(pod.metadata.name.as_deref().unwrap_or_default(), PatchType::Merge, patch).await {
            Ok(_) => true,
            Err(e) => {
                if !e.is_not_found() {
                    tracing::warn!(pod = %self.uid, error = %e, "writing pod status failed");
                }
                false
            }
        }
    }
}

type Instances = (Container, Option<api::ContainerStatus>, Option<api::ContainerStatus>);

fn to_view<'a>(
    (c, l, p): &'a Instances,
    waiting: &'a HashMap<String, (String, String)>,
    probes: &crate::probes::ProbeManager,
) -> ContainerView<'a> {
    // A kubelet-known waiting reason only applies while there is no running instance.
    let running = l.as_ref().is_some_and(|l| !is_exited(l));
    ContainerView {
        spec: c,
        latest: l.as_ref(),
        previous: p.as_ref(),
        waiting: if running { None } else { waiting.get(&c.name) },
        probes: l.as_ref().and_then(|l| probes.results(&l.id)),
    }
}

fn ips(pod_ip: &str) -> Vec<String> {
    if pod_ip.is_empty() { vec![] } else { vec![pod_ip.to_string()] }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
}

/// Init and regular containers of the pod.
fn pod_containers(pod: &Pod) -> Vec<Container> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.init_containers.unwrap_or_default().into_iter().chain(spec.containers).collect()
}

/// The pod's terminationGracePeriodSeconds (default 30).
pub fn grace_period(pod: &Pod) -> i64 {
    pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30)
}

/// The deadline in seconds, when activeDeadlineSeconds has passed since the pod started.
fn active_deadline_passed(pod: &Pod) -> Option<i64> {
    let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?.0;
    let elapsed = jiff::Timestamp::now().duration_since(start).as_secs();
    (elapsed >= deadline).then_some(deadline)
}

/// How often, and how many times, a freshly SIGKILLed container's status is read again for
/// the OOM event containerd may not have applied yet.
const OOM_EVENT_POLL: Duration = Duration::from_millis(100);
const OOM_EVENT_POLLS: usize = 5;

/// An exit by SIGKILL within the last second, reported as a plain error: the kernel's OOM
/// killer may be why, and containerd may not have recorded it yet.
fn oom_may_be_pending(st: &api::ContainerStatus) -> bool {
    let now = jiff::Timestamp::now().as_nanosecond();
    is_exited(st) && st.exit_code == 137 && st.reason == "Error" && now - i128::from(st.finished_at) < 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_five_minutes() {
        let mut r = Retry::bump(None);
        assert_eq!(r.delay, BACKOFF_INITIAL);
        for _ in 0..10 {
            r = Retry::bump(Some(r));
        }
        assert_eq!(r.delay, BACKOFF_MAX);
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
    }
}
