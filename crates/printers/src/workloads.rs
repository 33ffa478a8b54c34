//! Pod controllers of the apps group and their core ancestor: Deployment, ReplicaSet,
//! ReplicationController, StatefulSet, DaemonSet, and the ControllerRevisions they keep.

use jiff::Timestamp;
use serde_json::Value;

use crate::columns::{AGE, CONTAINERS, Col, IMAGES, NAME, Printer, SELECTOR, container_cells, workload_wide};
use crate::duration::age;
use crate::fields::{at, format_labels, int_at, list, name, opt_int, selector_string, str_at};

/// `spec.replicas`, which API defaulting sets to 1 when omitted.
fn desired(obj: &Value) -> i64 {
    opt_int(obj, "/spec/replicas").unwrap_or(1)
}

/// Deployments.
pub(crate) static DEPLOYMENT: Printer = Printer::new(
    &[
        NAME,
        Col::text("Ready", "Ready pods out of desired pods."),
        Col::text("Up-to-date", "Pods running the latest pod template."),
        Col::text("Available", "Pods available to serve for at least minReadySeconds."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    deployment,
);

fn deployment(obj: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(at(obj, "/spec/template/spec"));
    // Unlike the other workloads, an empty selector prints as "" rather than "<none>".
    let selector = selector_string(at(obj, "/spec/selector")).unwrap_or_else(|()| "<invalid>".into());
    vec![
        name(obj).into(),
        format!("{}/{}", int_at(obj, "/status/readyReplicas"), desired(obj)).into(),
        int_at(obj, "/status/updatedReplicas").into(),
        int_at(obj, "/status/availableReplicas").into(),
        age(obj, now),
        names,
        images,
        selector.into(),
    ]
}

/// The DESIRED / CURRENT / READY columns of replica sets and replication controllers.
const REPLICA_COLUMNS: [Col; 8] = [
    NAME,
    Col::int("Desired", "Number of pods asked for."),
    Col::int("Current", "Number of pods created."),
    Col::int("Ready", "Number of pods ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replica_counts(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        desired(obj).into(),
        int_at(obj, "/status/replicas").into(),
        int_at(obj, "/status/readyReplicas").into(),
        age(obj, now),
    ]
}

/// ReplicaSets.
pub(crate) static REPLICA_SET: Printer = Printer::new(&REPLICA_COLUMNS, |obj, now| {
    let mut cells = replica_counts(obj, now);
    cells.extend(workload_wide(obj, "/spec/template", "/spec/selector"));
    cells
});

/// ReplicationControllers: their selector is a plain label map.
pub(crate) static REPLICATION_CONTROLLER: Printer = Printer::new(&REPLICA_COLUMNS, |obj, now| {
    let mut cells = replica_counts(obj, now);
    cells.extend(container_cells(at(obj, "/spec/template/spec")));
    cells.push(format_labels(at(obj, "/spec/selector")).into());
    cells
});

/// StatefulSets.
pub(crate) static STATEFUL_SET: Printer = Printer::new(
    &[NAME, Col::text("Ready", "Ready pods out of desired pods."), AGE, CONTAINERS, IMAGES],
    |obj, now| {
        let ready = format!("{}/{}", int_at(obj, "/status/readyReplicas"), desired(obj));
        let mut cells = vec![name(obj).into(), ready.into(), age(obj, now)];
        cells.extend(container_cells(at(obj, "/spec/template/spec")));
        cells
    },
);

/// DaemonSets.
pub(crate) static DAEMON_SET: Printer = Printer::new(
    &[
        NAME,
        Col::int("Desired", "Nodes that should run the daemon pod."),
        Col::int("Current", "Nodes running at least one daemon pod."),
        Col::int("Ready", "Nodes whose daemon pod is ready."),
        Col::int("Up-to-date", "Nodes running the latest daemon pod template."),
        Col::int("Available", "Nodes whose daemon pod is available."),
        Col::text("Node Selector", "Labels a node needs to run the daemon pod."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |obj, now| {
        let mut cells: Vec<Value> = vec![name(obj).into()];
        for field in [
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberAvailable",
        ] {
            cells.push(int_at(obj, &format!("/status/{field}")).into());
        }
        cells.push(format_labels(at(obj, "/spec/template/spec/nodeSelector")).into());
        cells.push(age(obj, now));
        cells.extend(workload_wide(obj, "/spec/template", "/spec/selector"));
        cells
    },
);

/// ControllerRevisions.
pub(crate) static CONTROLLER_REVISION: Printer = Printer::new(
    &[
        NAME,
        Col::text("Controller", "The object owning this revision."),
        Col::text("Revision", "The revision number."),
        AGE,
    ],
    |obj, now| vec![name(obj).into(), controller(obj).into(), int_at(obj, "/revision").into(), age(obj, now)],
);

/// The managing owner as "kind.group/name" in lower case ("statefulset.apps/web"), or "<none>".
fn controller(obj: &Value) -> String {
    let owner = list(obj, "/metadata/ownerReferences").iter().find(|r| r.get("controller") == Some(&Value::Bool(true)));
    let Some(owner) = owner else { return "<none>".into() };
    let api_version = str_at(owner, "/apiVersion");
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = str_at(owner, "/kind");
    let owner_name = str_at(owner, "/name");
    match (kind, group) {
        ("", "") => owner_name.to_string(),
        (kind, "") => format!("{}/{owner_name}", kind.to_lowercase()),
        (kind, group) => format!("{}.{}/{owner_name}", kind.to_lowercase(), group.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployment_row() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2024-04-28T08:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            Value::from(deployment(&d, now())),
            json!(["web", "2/3", 3, 2, "3d4h", "nginx,log", "nginx:1.27,busybox", "app=web"])
        );
        let bare = json!({"metadata": {"name": "x"}, "spec": {"selector": {}}});
        assert_eq!(Value::from(deployment(&bare, now())), json!(["x", "0/1", 0, 0, "<unknown>", "", "", ""]));
    }

    #[test]
    fn replica_set_and_controller_rows() {
        let rs = json!({"metadata": {"name": "web-5d8", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8"}}, "template": template()},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            Value::from((REPLICA_SET.cells)(&rs, now())),
            json!(["web-5d8", 2, 2, 1, "60m", "nginx,log", "nginx:1.27,busybox", "app=web,pod-template-hash=5d8"])
        );
        let rc = json!({"metadata": {"name": "old"}, "spec": {"replicas": 0, "selector": {"app": "old"}}});
        assert_eq!(
            Value::from((REPLICATION_CONTROLLER.cells)(&rc, now())),
            json!(["old", 0, 0, 0, "<unknown>", "", "", "app=old"])
        );
    }

    #[test]
    fn stateful_and_daemon_sets() {
        let ss = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template()}, "status": {"readyReplicas": 3}});
        assert_eq!(
            Value::from((STATEFUL_SET.cells)(&ss, now())),
            json!(["db", "3/3", "<unknown>", "nginx,log", "nginx:1.27,busybox"])
        );
        let ds = json!({"metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "a", "image": "agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            Value::from((DAEMON_SET.cells)(&ds, now())),
            json!(["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "<unknown>", "a", "agent:1", "app=agent"])
        );
    }

    #[test]
    fn controller_revision_owner() {
        let cr = json!({"metadata": {"name": "db-7f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}, "revision": 2});
        assert_eq!(
            Value::from((CONTROLLER_REVISION.cells)(&cr, now())),
            json!(["db-7f", "statefulset.apps/db", 2, "<unknown>"])
        );
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!((CONTROLLER_REVISION.cells)(&orphan, now())[1], "<none>");
    }
}
