//! Computes a Pod's status from what the runtime reports: phase, conditions, IPs and each
//! container's state, last state, readiness and restart count, in Kubernetes' terms.

use crate::cri::api;
use crate::probes::Results;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Kubernetes' `containerd://<id>` form of a container ID.
pub fn container_id(id: &str) -> String {
    format!("containerd://{id}")
}

/// One container as the runtime and the probes see it.
pub struct ContainerView<'a> {
    /// The container's spec.
    pub spec: &'a Container,
    /// Its newest instance.
    pub latest: Option<&'a api::ContainerStatus>,
    /// The instance before that, for lastState.
    pub previous: Option<&'a api::ContainerStatus>,
    /// Why it is waiting, when the kubelet knows better than the runtime (image pull, back-off).
    pub waiting: Option<&'a (String, String)>,
    /// What its probes concluded.
    pub probes: Option<Results>,
}

/// The pod as the runtime sees it.
pub struct PodView<'a> {
    /// A sandbox is ready (network set up).
    pub sandbox_ready: bool,
    /// The sandbox's IP.
    pub pod_ip: Option<String>,
    /// The node's address.
    pub host_ip: &'a str,
    /// Init containers, in spec order.
    pub init: Vec<ContainerView<'a>>,
    /// Regular containers, in spec order.
    pub containers: Vec<ContainerView<'a>>,
}

fn time(nanos: i64) -> Option<Time> {
    (nanos > 0).then(|| jiff::Timestamp::from_nanosecond(i128::from(nanos)).ok().map(Time)).flatten()
}

/// Terminated state of an exited instance.
pub fn terminated(s: &api::ContainerStatus) -> ContainerStateTerminated {
    let reason = match s.reason.as_str() {
        "" if s.exit_code == 0 => "Completed".to_string(),
        "" => "Error".to_string(),
        r => r.to_string(),
    };
    ContainerStateTerminated {
        container_id: Some(container_id(&s.id)),
        exit_code: s.exit_code,
        reason: Some(reason),
        message: Some(s.message.clone()).filter(|m| !m.is_empty()),
        started_at: time(s.started_at),
        finished_at: time(s.finished_at),
        signal: None,
    }
}

fn is_running(s: Option<&api::ContainerStatus>) -> bool {
    s.is_some_and(|s| s.state == api::ContainerState::ContainerRunning as i32)
}

fn is_exited(s: Option<&api::ContainerStatus>) -> bool {
    s.is_some_and(|s| s.state == api::ContainerState::ContainerExited as i32)
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.map(String::from).filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    }
}

fn container_status(v: &ContainerView<'_>, default_waiting: &str) -> ContainerStatus {
    let image = v.spec.image.clone().unwrap_or_default();
    let mut st = ContainerStatus { name: v.spec.name.clone(), image, ..Default::default() };
    let last_from = |s: Option<&api::ContainerStatus>| {
        s.filter(|s| is_exited(Some(s)))
            .map(|s| ContainerState { terminated: Some(terminated(s)), ..Default::default() })
    };
    match v.latest {
        Some(l) => {
            st.container_id = Some(container_id(&l.id));
            st.image_id = if l.image_ref.is_empty() { l.image_id.clone() } else { l.image_ref.clone() };
            st.restart_count = l.metadata.as_ref().map(|m| m.attempt as i32).unwrap_or(0);
            if is_running(Some(l)) {
                let started = v.probes.is_none_or(|p| p.started);
                let ready = v.probes.map(|p| p.ready).unwrap_or(v.spec.readiness_probe.is_none() && started);
                st.state = Some(ContainerState {
                    running: Some(ContainerStateRunning { started_at: time(l.started_at) }),
                    ..Default::default()
                });
                st.ready = ready;
                st.started = Some(started);
                st.last_state = last_from(v.previous);
            } else if is_exited(Some(l)) {
                st.started = Some(false);
                match v.waiting {
                    // Exited and waiting to be restarted: waiting now, the exit as last state.
                    Some((reason, message)) => {
                        st.state = Some(waiting(reason, Some(message)));
                        st.last_state = last_from(Some(l));
                    }
                    None => {
                        st.state = Some(ContainerState { terminated: Some(terminated(l)), ..Default::default() });
                        st.last_state = last_from(v.previous);
                    }
                }
            } else {
                st.state = Some(waiting("ContainerCreating", None));
                st.started = Some(false);
                st.last_state = last_from(v.previous);
            }
        }
        None => {
            let (reason, message) =
                v.waiting.map(|(r, m)| (r.as_str(), Some(m.as_str()))).unwrap_or((default_waiting, None));
            st.state = Some(waiting(reason, message));
            st.started = Some(false);
        }
    }
    st
}

/// Kubernetes' QoS class of a pod.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers =
        pod.spec.as_ref().map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()).collect::<Vec<_>>());
    let containers = containers.unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.clone()).unwrap_or_default();
        let limits = r.and_then(|r| r.limits.clone()).unwrap_or_default();
        any |= ["cpu", "memory"].iter().any(|k| requests.contains_key(*k) || limits.contains_key(*k));
        for k in ["cpu", "memory"] {
            match (requests.get(k), limits.get(k)) {
                (_, None) => guaranteed = false,
                (Some(rq), Some(l)) if rq != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's phase from its containers' states, as Kubernetes decides it.
fn phase(pod: &Pod, init: &[ContainerStatus], containers: &[ContainerStatus]) -> &'static str {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let done =
        |s: &ContainerStatus| s.state.as_ref().and_then(|st| st.terminated.as_ref()).is_some_and(|t| t.exit_code == 0);
    let failed_for_good =
        |s: &ContainerStatus| s.state.as_ref().and_then(|st| st.terminated.as_ref()).is_some_and(|t| t.exit_code != 0);
    if !init.iter().all(done) {
        if policy == "Never" && init.iter().any(failed_for_good) {
            return "Failed";
        }
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in containers {
        let st = s.state.as_ref();
        if st.and_then(|s| s.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(t) = st.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.as_ref().and_then(|l| l.terminated.as_ref()).is_some() {
            // Waiting to restart after having run: counts as stopped, not as never started.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        if policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if policy == "Never" {
            "Failed"
        } else {
            "Running"
        }
    } else {
        "Pending"
    }
}

/// The status to report; condition transition times and startTime carry over from `pod`.
pub fn pod_status(pod: &Pod, view: &PodView<'_>) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let init: Vec<ContainerStatus> = view.init.iter().map(|v| container_status(v, "PodInitializing")).collect();
    let init_done =
        init.iter().all(|s| s.state.as_ref().and_then(|st| st.terminated.as_ref()).is_some_and(|t| t.exit_code == 0));
    let default_waiting = if init_done { "ContainerCreating" } else { "PodInitializing" };
    let containers: Vec<ContainerStatus> =
        view.containers.iter().map(|v| container_status(v, default_waiting)).collect();
    let mut phase = phase(pod, &init, &containers).to_string();
    // A finished pod stays finished.
    if matches!(old.phase.as_deref(), Some("Succeeded" | "Failed")) {
        phase = old.phase.clone().unwrap_or_default();
    }
    let terminal = matches!(phase.as_str(), "Succeeded" | "Failed");

    let now = Time(jiff::Timestamp::now());
    let condition = |kind: &str, status: bool, reason: Option<String>, message: Option<String>| {
        let status = if status { "True" } else { "False" }.to_string();
        let prev = old.conditions.iter().flatten().find(|c| c.type_ == kind);
        let transition = match prev {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        PodCondition {
            type_: kind.to_string(),
            status,
            reason,
            message,
            last_transition_time: transition,
            last_probe_time: None,
            observed_generation: None,
        }
    };
    let unready: Vec<&str> = containers.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let incomplete: Vec<&str> = init
        .iter()
        .filter(|s| s.state.as_ref().and_then(|st| st.terminated.as_ref()).is_none_or(|t| t.exit_code != 0))
        .map(|s| s.name.as_str())
        .collect();
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted".to_string()), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (Some("ContainersNotReady".to_string()), Some(format!("containers with unready status: {}", list(&unready))))
    };
    let containers_ready = unready.is_empty() && !terminal;
    let gates_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .all(|g| old.conditions.iter().flatten().any(|c| c.type_ == g.condition_type && c.status == "True"));
    let mut conditions = vec![
        condition("PodReadyToStartContainers", view.sandbox_ready, None, None),
        if terminal || incomplete.is_empty() {
            condition(
                "Initialized",
                true,
                terminal.then(|| "PodCompleted".to_string()).filter(|_| !init.is_empty()),
                None,
            )
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized".into()),
                Some(format!("containers with incomplete status: {}", list(&incomplete))),
            )
        },
        condition("Ready", containers_ready && gates_ok, ready_reason.clone(), ready_message.clone()),
        condition("ContainersReady", containers_ready, ready_reason, ready_message),
    ];
    // Conditions the kubelet does not own (PodScheduled, DisruptionTarget, readiness gates) stay.
    let ours = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"];
    for c in old.conditions.iter().flatten().filter(|c| !ours.contains(&c.type_.as_str())) {
        conditions.push(c.clone());
    }
    let pod_ip = view.pod_ip.clone().filter(|ip| !ip.is_empty()).or_else(|| old.pod_ip.clone());
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.to_string()),
        host_ips: Some(vec![HostIP { ip: view.host_ip.to_string() }]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.clone().or(Some(now)),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(containers),
        qos_class: Some(old.qos_class.clone().unwrap_or_else(|| qos_class(pod).to_string())),
        ..old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn cri(state: api::ContainerState, exit: i32, attempt: u32) -> api::ContainerStatus {
        api::ContainerStatus {
            id: format!("c{attempt}"),
            state: state as i32,
            exit_code: exit,
            started_at: 1_700_000_000_000_000_000,
            finished_at: if state == api::ContainerState::ContainerExited { 1_700_000_001_000_000_000 } else { 0 },
            metadata: Some(api::ContainerMetadata { name: "app".into(), attempt }),
            ..Default::default()
        }
    }

    fn pod(policy: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: vec![Container { name: "app".into(), image: Some("busybox".into()), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view<'a>(
        spec: &'a Container,
        latest: Option<&'a api::ContainerStatus>,
        waiting: Option<&'a (String, String)>,
    ) -> PodView<'a> {
        PodView {
            sandbox_ready: true,
            pod_ip: Some("10.1.0.5".into()),
            host_ip: "192.168.1.1",
            init: vec![],
            containers: vec![ContainerView { spec, latest, previous: None, waiting, probes: None }],
        }
    }

    #[test]
    fn running_container_makes_the_pod_running_and_ready() {
        let p = pod("Always");
        let c = cri(api::ContainerState::ContainerRunning, 0, 0);
        let s = pod_status(&p, &view(&p.spec.as_ref().unwrap().containers[0], Some(&c), None));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.5"));
        let ready = s.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "True");
        assert!(s.container_statuses.unwrap()[0].ready);
    }

    #[test]
    fn exits_decide_the_phase_by_restart_policy() {
        for (policy, exit, phase) in
            [("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded"), ("Always", 0, "Running")]
        {
            let p = pod(policy);
            let c = cri(api::ContainerState::ContainerExited, exit, 0);
            let s = pod_status(&p, &view(&p.spec.as_ref().unwrap().containers[0], Some(&c), None));
            assert_eq!(s.phase.as_deref(), Some(phase), "{policy} exit {exit}");
            let t = s.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
            assert_eq!(t.reason.as_deref(), Some(if exit == 0 { "Completed" } else { "Error" }));
        }
    }

    #[test]
    fn back_off_shows_waiting_with_the_exit_as_last_state() {
        let p = pod("Always");
        let c = cri(api::ContainerState::ContainerExited, 2, 3);
        let w = ("CrashLoopBackOff".to_string(), "back-off 40s restarting failed container".to_string());
        let s = pod_status(&p, &view(&p.spec.as_ref().unwrap().containers[0], Some(&c), Some(&w)));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 2);
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn not_yet_created_is_pending_and_unready() {
        let p = pod("Always");
        let s = pod_status(&p, &view(&p.spec.as_ref().unwrap().containers[0], None, None));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let conds = s.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [app]"));
    }

    #[test]
    fn qos_follows_requests_and_limits() {
        assert_eq!(qos_class(&pod("Always")), "BestEffort");
    }
}
