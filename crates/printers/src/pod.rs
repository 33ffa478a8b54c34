//! Pods: READY counts, the STATUS reason kubectl users read first, RESTARTS with the time of
//! the last restart, and the wide IP / NODE / NOMINATED NODE / READINESS GATES columns.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::columns::{AGE, Col, NAME, Printer};
use crate::duration::{age, between, human_duration, parse_time};
use crate::fields::{at, bool_at, deleting, int_at, list, name, or, str_at};

/// Pods.
pub(crate) static POD: Printer = Printer {
    columns: &[
        NAME,
        Col::text("Ready", "Ready containers out of all containers of the pod."),
        Col::text("Status", "Summary of the pod's phase and its containers' states."),
        Col::text("Restarts", "Container restarts, and how long ago the last one happened."),
        AGE,
        Col::text("IP", "The pod's primary IP address.").wide(),
        Col::text("Node", "The node the pod is bound to.").wide(),
        Col::text("Nominated Node", "The node a preempting pod is expected to run on.").wide(),
        Col::text("Readiness Gates", "Readiness gates whose condition is true, out of all gates.").wide(),
    ],
    cells,
    conditions,
    order: None,
};

/// Pod templates.
pub(crate) static POD_TEMPLATE: Printer = Printer::new(
    &[
        NAME,
        Col::text("Containers", "Names of the containers in the template."),
        Col::text("Images", "Images used by the containers in the template."),
        Col::text("Pod Labels", "Labels of the pods created from the template."),
    ],
    |obj, _| {
        let [names, images] = crate::columns::container_cells(at(obj, "/template/spec"));
        let labels = crate::fields::format_labels(at(obj, "/template/metadata/labels"));
        vec![name(obj).into(), names, images, labels.into()]
    },
);

/// Finished pods are flagged so clients can de-emphasize them.
fn conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// Restart totals and the latest `lastState.terminated.finishedAt` seen while adding them up.
#[derive(Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int_at(status, "/restartCount");
        if at(status, "/lastState/terminated").is_some() {
            let finished = parse_time(str_at(status, "/lastState/terminated/finishedAt"));
            self.last = self.last.max(finished);
        }
    }

    fn cell(self, now: Timestamp) -> String {
        match self.last {
            Some(t) if self.count != 0 => {
                format!("{} ({} ago)", self.count, human_duration(between(t, now)))
            }
            _ => self.count.to_string(),
        }
    }
}

/// Whether the container spec is a sidecar: an init container that keeps running.
fn restartable(spec: &Value) -> bool {
    str_at(spec, "/restartPolicy") == "Always"
}

/// The reason a terminated container without an explicit reason gets: its signal or exit code.
fn exit_reason(terminated: &Value) -> String {
    match int_at(terminated, "/signal") {
        0 => format!("ExitCode:{}", int_at(terminated, "/exitCode")),
        signal => format!("Signal:{signal}"),
    }
}

/// Whether the first condition of `kind` has status True.
fn condition_true(pod: &Value, kind: &str) -> bool {
    list(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let phase = str_at(pod, "/status/phase");
    let mut reason = or(str_at(pod, "/status/reason"), phase);
    let gated = list(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".into();
    }

    let init_specs = list(pod, "/spec/initContainers");
    let is_sidecar = |container: &str| init_specs.iter().any(|s| str_at(s, "/name") == container && restartable(s));
    let total = list(pod, "/spec/containers").len() + init_specs.iter().filter(|s| restartable(s)).count();
    let mut ready = 0;
    let mut restarts = Restarts::default();
    // Sidecars keep running after initialization, so their restarts stay in the count.
    let mut sidecar_restarts = Restarts::default();

    // Init containers run in order; the first one that has not finished decides the status.
    let mut initializing = false;
    for (i, status) in list(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts.add(status);
        let sidecar = is_sidecar(str_at(status, "/name"));
        if sidecar {
            sidecar_restarts.add(status);
        }
        let terminated = at(status, "/state/terminated");
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && bool_at(status, "/started") {
            if bool_at(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        let waiting = str_at(status, "/state/waiting/reason");
        reason = match terminated {
            Some(t) if str_at(t, "/reason").is_empty() => format!("Init:{}", exit_reason(t)),
            Some(t) => format!("Init:{}", str_at(t, "/reason")),
            None if !waiting.is_empty() && waiting != "PodInitializing" => format!("Init:{waiting}"),
            None => format!("Init:{i}/{}", init_specs.len()),
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        // Walk backwards so the first container with a notable state sets the reason.
        for status in list(pod, "/status/containerStatuses").iter().rev() {
            restarts.add(status);
            let waiting = str_at(status, "/state/waiting/reason");
            let terminated = at(status, "/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.into();
            } else if let Some(t) = terminated {
                reason = or(str_at(t, "/reason"), &exit_reason(t));
            } else if bool_at(status, "/ready") && at(status, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose main container completed while a sidecar still runs is not done yet.
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") { "Running" } else { "NotReady" }.into();
        }
    }

    if deleting(pod) && str_at(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.cell(now).into(),
        age(pod, now),
        pod_ip(pod).into(),
        or(str_at(pod, "/spec/nodeName"), "<none>").into(),
        or(str_at(pod, "/status/nominatedNodeName"), "<none>").into(),
        readiness_gates(pod).into(),
    ]
}

/// The first pod IP; `status.podIP` is the single-stack spelling of the same address.
fn pod_ip(pod: &Value) -> String {
    let ip = list(pod, "/status/podIPs").first().map_or("", |p| str_at(p, "/ip"));
    let ip = if ip.is_empty() { str_at(pod, "/status/podIP") } else { ip };
    or(ip, "<none>")
}

/// "true/total" over the pod's readiness gates, "<none>" without gates.
fn readiness_gates(pod: &Value) -> String {
    let gates = list(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".into();
    }
    let passing = gates.iter().filter(|g| condition_true(pod, str_at(g, "/conditionType"))).count();
    format!("{passing}/{}", gates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn row(pod: Value) -> Vec<Value> {
        cells(&pod, now())
    }

    fn running(name: &str, ready: bool, restarts: i64) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "2024-05-01T11:00:00Z"}}})
    }

    #[test]
    fn running_pod() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:54:48Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.1.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [running("a", true, 0), running("b", true, 0)]}
        });
        assert_eq!(
            row(pod),
            json!(["web", "2/2", "Running", "0", "5m12s", "10.1.0.5", "n1", "<none>", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn pending_pods() {
        let unscheduled =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        let r = row(unscheduled);
        assert_eq!(r[1], "0/1");
        assert_eq!(r[2], "Pending");
        assert_eq!(r[4], "<unknown>");
        let creating = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(row(creating)[2], "ContainerCreating");
        let pulling = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "ErrImagePull"}}},
                {"name": "b", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        // The first container's state wins.
        assert_eq!(row(pulling)[2], "ErrImagePull");
        let gated = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
        assert_eq!(row(gated)[2], "SchedulingGated");
    }

    #[test]
    fn crash_loop_with_restart_age() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T11:57:00Z"}}}]}});
        let r = row(pod);
        assert_eq!(r[1], "0/1");
        assert_eq!(r[2], "CrashLoopBackOff");
        assert_eq!(r[3], "5 (3m ago)");
    }

    #[test]
    fn completed_and_failed() {
        let done = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        assert_eq!(row(done.clone())[2], "Completed");
        assert_eq!(conditions(&done).unwrap()[0]["reason"], "Succeeded");
        let failed = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}});
        assert_eq!(row(failed.clone())[2], "Error");
        assert_eq!(conditions(&failed).unwrap()[0]["message"], "The pod failed.");
        let killed = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}});
        assert_eq!(row(killed)[2], "Signal:9");
        let exited = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 3}}}]}});
        assert_eq!(row(exited)[2], "ExitCode:3");
        let evicted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(row(evicted)[2], "Evicted");
        assert!(conditions(&json!({"status": {"phase": "Running"}})).is_none());
    }

    #[test]
    fn terminating_and_node_lost() {
        let pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [running("a", true, 0)]}});
        assert_eq!(row(pod)[2], "Terminating");
        let lost = json!({"metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running", "reason": "NodeLost"}});
        assert_eq!(row(lost)[2], "Unknown");
        let finished = json!({"metadata": {"name": "p", "deletionTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"}});
        assert_eq!(row(finished)[2], "Succeeded");
    }

    #[test]
    fn init_containers() {
        let spec = json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]});
        let status = |inits: Value| {
            json!({"metadata": {"name": "p"}, "spec": spec.clone(),
                "status": {"phase": "Pending", "initContainerStatuses": inits,
                    "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}})
        };
        let first_running = status(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "i2", "state": {"running": {}}}]));
        assert_eq!(row(first_running)[2], "Init:1/2");
        let crashing = status(json!([
            {"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T10:00:00Z"}}},
            {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]));
        let r = row(crashing);
        assert_eq!(r[2], "Init:CrashLoopBackOff");
        assert_eq!(r[3], "3 (120m ago)");
        let failed = status(json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]));
        assert_eq!(row(failed)[2], "Init:Error");
        let failed_code = status(json!([{"name": "i1", "state": {"terminated": {"exitCode": 4}}}]));
        assert_eq!(row(failed_code)[2], "Init:ExitCode:4");
        let waiting = status(json!([{"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}}]));
        assert_eq!(row(waiting)[2], "Init:0/2");
    }

    #[test]
    fn sidecars_count_as_containers() {
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                    "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:00:00Z"}}}],
                "containerStatuses": [running("a", true, 2)]}});
        let r = row(pod);
        assert_eq!(r[1], "2/2");
        assert_eq!(r[2], "Running");
        assert_eq!(r[3], "3 (60m ago)");
        let sidecar_outlives_main = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, running("b", true, 0)]}});
        assert_eq!(row(sidecar_outlives_main)[2], "NotReady");
    }

    #[test]
    fn wide_columns() {
        let pod = json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "g1"}, {"conditionType": "g2"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "n2", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
                "conditions": [{"type": "g1", "status": "True"}, {"type": "g2", "status": "False"}]}});
        let r = row(pod);
        assert_eq!(&r[5..], &[json!("fd00::5"), json!("<none>"), json!("n2"), json!("1/2")]);
        assert_eq!(POD.columns.iter().filter(|c| c.priority == 1).count(), 4);
        assert_eq!(POD.columns.len(), r.len());
    }
}
