//! Liveness, readiness and startup probes: one task per probe of a running container, keeping
//! Kubernetes' counters (initial delay, period, timeout, success and failure thresholds) and
//! telling the pod's worker when a result flips.

use crate::cri::Cri;
use crate::handlers::{self, Outcome};
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use rkube_client::{EventRecorder, EventType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Restarts the container when it fails.
    Liveness,
    /// Gates the container's readiness.
    Readiness,
    /// Holds the other two back until it succeeds once; restarts the container when it fails.
    Startup,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What the probes of one container have concluded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Results {
    /// The startup probe has succeeded (or there is none).
    pub started: bool,
    /// The readiness probe passes (or there is none and the container started).
    pub ready: bool,
    /// Liveness or startup failed past its threshold: the container must be restarted.
    pub must_restart: bool,
}

struct Tracked {
    results: Results,
    cancel: CancellationToken,
}

/// Called with a pod UID when a probe result of that pod changed.
pub type Poke = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs the probes of every running container on the node.
pub struct ProbeManager {
    cri: Cri,
    http: reqwest::Client,
    recorder: EventRecorder,
    tracked: Mutex<HashMap<String, Tracked>>,
    poke: Poke,
}

impl ProbeManager {
    /// A manager that reports changes through `poke`.
    pub fn new(cri: Cri, recorder: EventRecorder, poke: Poke) -> Arc<ProbeManager> {
        let http = crate::handlers::http_client();
        Arc::new(ProbeManager { cri, http, recorder, tracked: Mutex::default(), poke })
    }

    /// Results for a container; a container never started here reads as not started.
    pub fn results(&self, container_id: &str) -> Option<Results> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner()).get(container_id).map(|t| t.results)
    }

    /// Starts probing a freshly started (or, after a kubelet restart, adopted) container; does
    /// nothing when it is already probed.
    pub fn start(self: &Arc<Self>, pod: &Pod, container: &Container, container_id: &str, pod_ip: &str) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        if tracked.contains_key(container_id) {
            return;
        }
        let started = container.startup_probe.is_none();
        let results = Results { started, ready: started && container.readiness_probe.is_none(), must_restart: false };
        let cancel = CancellationToken::new();
        tracked.insert(container_id.to_string(), Tracked { results, cancel: cancel.clone() });
        drop(tracked);
        for (kind, probe) in [
            (Kind::Startup, &container.startup_probe),
            (Kind::Liveness, &container.liveness_probe),
            (Kind::Readiness, &container.readiness_probe),
        ] {
            if let Some(probe) = probe.clone() {
                let worker = ProbeWorker {
                    manager: self.clone(),
                    pod: pod.clone(),
                    container: container.clone(),
                    container_id: container_id.to_string(),
                    pod_ip: pod_ip.to_string(),
                    kind,
                    probe,
                };
                tokio::spawn(worker.run(cancel.clone()));
            }
        }
    }

    /// Stops probing a container (it exited or is being removed).
    pub fn stop(&self, container_id: &str) {
        if let Some(t) = self.tracked.lock().unwrap_or_else(|e| e.into_inner()).remove(container_id) {
            t.cancel.cancel();
        }
    }

    /// Stops probing every container not in `live`.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, t| {
            let keep = live(id);
            if !keep {
                t.cancel.cancel();
            }
            keep
        });
    }

    fn update(&self, container_id: &str, pod_uid: &str, f: impl FnOnce(&mut Results)) {
        let changed = {
            let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            let Some(t) = tracked.get_mut(container_id) else { return };
            let before = t.results;
            f(&mut t.results);
            before != t.results
        };
        if changed {
            (self.poke)(pod_uid);
        }
    }
}

struct ProbeWorker {
    manager: Arc<ProbeManager>,
    pod: Pod,
    container: Container,
    container_id: String,
    pod_ip: String,
    kind: Kind,
    probe: Probe,
}

impl ProbeWorker {
    async fn run(self, cancel: CancellationToken) {
        let secs = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(1) as u64);
        let initial = Duration::from_secs(self.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let period = secs(self.probe.period_seconds, 10);
        let timeout = secs(self.probe.timeout_seconds, 1);
        let success_threshold = self.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = self.probe.failure_threshold.unwrap_or(3).max(1);
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(initial) => {}
        }
        let (mut successes, mut failures) = (0, 0);
        loop {
            let started = self.manager.results(&self.container_id).is_some_and(|r| r.started);
            // Liveness and readiness wait for the startup probe; startup stops once it passed.
            let active = match self.kind {
                Kind::Startup => !started,
                _ => started,
            };
            if active {
                match self.once(timeout).await {
                    Outcome::Success => {
                        failures = 0;
                        successes += 1;
                        if successes >= success_threshold {
                            self.manager.update(&self.container_id, &uid, |r| match self.kind {
                                Kind::Startup => {
                                    r.started = true;
                                    r.ready = self.container.readiness_probe.is_none();
                                }
                                Kind::Readiness => r.ready = true,
                                Kind::Liveness => {}
                            });
                        }
                    }
                    Outcome::Failure(why) => {
                        successes = 0;
                        failures += 1;
                        self.manager.recorder.record(
                            &self.pod,
                            EventType::Warning,
                            "Unhealthy",
                            &format!("{} probe failed: {why}", self.kind.name()),
                        );
                        if failures >= failure_threshold {
                            self.manager.update(&self.container_id, &uid, |r| match self.kind {
                                Kind::Readiness => r.ready = false,
                                Kind::Liveness | Kind::Startup => r.must_restart = true,
                            });
                            if self.kind != Kind::Readiness {
                                // The container gets restarted; this worker ends with it.
                                return;
                            }
                        }
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn once(&self, timeout: Duration) -> Outcome {
        let p = &self.probe;
        if let Some(a) = &p.exec {
            handlers::exec(&self.manager.cri, &self.container_id, a, timeout).await
        } else if let Some(a) = &p.http_get {
            handlers::http_get(&self.manager.http, a, &self.container, &self.pod_ip, timeout).await
        } else if let Some(a) = &p.tcp_socket {
            handlers::tcp(a, &self.container, &self.pod_ip, timeout).await
        } else if let Some(a) = &p.grpc {
            handlers::grpc(a, &self.pod_ip, timeout).await
        } else {
            Outcome::Failure("probe has no handler".into())
        }
    }
}
