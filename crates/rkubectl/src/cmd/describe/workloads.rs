//! Workload controllers: Deployment, ReplicaSet, ReplicationController, DaemonSet,
//! StatefulSet, Job and CronJob, each around the shared pod-template describer.

use super::Api;
use super::pod::template;
use super::text::{
    W, annotations, controller_of, format_label_selector, format_labels, go_list, labels, labels_indent,
    print_bool_ptr, put, q, rfc1123z, s, selector_string,
};
use crate::error::Result;
use serde_json::Value;

fn header(w: &mut W, obj: &Value) {
    put!(w, 0, "Name:\t{}\n", s(&obj["metadata"]["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&obj["metadata"]["namespace"]));
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Running / Waiting / Succeeded / Failed counts of the pods `uid` controls among those the
/// selector matches (`getPodStatusForController`).
fn pod_counts(api: &Api, obj: &Value, selector: &str) -> Result<[usize; 4]> {
    let ns = s(&obj["metadata"]["namespace"]);
    let uid = &obj["metadata"]["uid"];
    let pods = api.list(&format!("/api/v1/namespaces/{ns}/pods"), &[("labelSelector", selector)])?;
    let mut counts = [0usize; 4];
    for p in &pods {
        let owned = p["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .is_some_and(|r| &r["uid"] == uid);
        if !owned {
            continue;
        }
        match p["status"]["phase"].as_str().unwrap_or("") {
            "Running" => counts[0] += 1,
            "Pending" => counts[1] += 1,
            "Succeeded" => counts[2] += 1,
            "Failed" => counts[3] += 1,
            _ => {}
        }
    }
    Ok(counts)
}

fn counts_text(c: [usize; 4]) -> String {
    format!("{} Running / {} Waiting / {} Succeeded / {} Failed", c[0], c[1], c[2], c[3])
}

fn conditions(w: &mut W, st: &Value) {
    let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) else { return };
    put!(w, 0, "Conditions:\n  Type\tStatus\tReason\n");
    put!(w, 1, "----\t------\t------\n");
    for c in conds {
        put!(w, 1, "{} \t{}\t{}\n", s(&c["type"]), s(&c["status"]), s(&c["reason"]));
    }
}

/// `describeDeployment`, with the old and new ReplicaSets it owns.
pub fn deployment(w: &mut W, api: &Api, d: &Value) {
    let m = &d["metadata"];
    let spec = &d["spec"];
    let st = &d["status"];
    header(w, d);
    put!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(&m["creationTimestamp"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Selector:\t{}\n", selector_string(&spec["selector"]));
    put!(
        w,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
        spec["replicas"].as_i64().unwrap_or(1),
        i(&st["updatedReplicas"]),
        i(&st["replicas"]),
        i(&st["availableReplicas"]),
        i(&st["unavailableReplicas"])
    );
    put!(w, 0, "StrategyType:\t{}\n", s(&spec["strategy"]["type"]));
    put!(w, 0, "MinReadySeconds:\t{}\n", i(&spec["minReadySeconds"]));
    let ru = &spec["strategy"]["rollingUpdate"];
    if ru.is_object() {
        put!(
            w,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            s(&ru["maxUnavailable"]),
            s(&ru["maxSurge"])
        );
    }
    template(w, &spec["template"]);
    conditions(w, st);
    if let Ok((old, new)) = replica_sets(api, d)
        && (!old.is_empty() || new.is_some())
    {
        put!(w, 0, "OldReplicaSets:\t{}\n", rs_list(&old));
        put!(w, 0, "NewReplicaSet:\t{}\n", rs_list(new.as_slice()));
    }
}

fn rs_list(list: &[Value]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                s(&rs["metadata"]["name"]),
                i(&rs["status"]["replicas"]),
                rs["spec"]["replicas"].as_i64().unwrap_or(1)
            )
        })
        .collect();
    if items.is_empty() { "<none>".into() } else { items.join(", ") }
}

/// The ReplicaSets the Deployment controls, oldest first: every one but the new, and the new
/// one (the first whose pod template equals the Deployment's, pod-template-hash aside).
fn replica_sets(api: &Api, d: &Value) -> Result<(Vec<Value>, Option<Value>)> {
    let ns = s(&d["metadata"]["namespace"]);
    let uid = &d["metadata"]["uid"];
    let selector = selector_string(&d["spec"]["selector"]);
    let mut owned: Vec<Value> = api
        .list(&format!("/apis/apps/v1/namespaces/{ns}/replicasets"), &[("labelSelector", &selector)])?
        .into_iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
                .is_some_and(|r| &r["uid"] == uid)
        })
        .collect();
    owned.sort_by(|a, b| {
        let key = |rs: &Value| {
            let ts = rs["metadata"]["creationTimestamp"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
            (ts, s(&rs["metadata"]["name"]))
        };
        key(a).cmp(&key(b))
    });
    let want = without_hash(&d["spec"]["template"]);
    let new_index = owned.iter().position(|rs| without_hash(&rs["spec"]["template"]) == want);
    let new = new_index.map(|idx| owned.remove(idx));
    Ok((owned, new))
}

/// A pod template without the pod-template-hash label and without empty fields, so templates
/// compare as apimachinery's semantic equality compares them.
fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    prune(&mut t);
    t
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune(x);
            }
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `describeReplicaSet`.
pub fn replica_set(w: &mut W, api: &Api, rs: &Value) {
    let m = &rs["metadata"];
    let spec = &rs["spec"];
    header(w, rs);
    put!(w, 0, "Selector:\t{}\n", format_label_selector(&spec["selector"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    let controller = controller_of(rs);
    if !controller.is_empty() {
        put!(w, 0, "Controlled By:\t{controller}\n");
    }
    put!(
        w,
        0,
        "Replicas:\t{} current / {} desired\n",
        i(&rs["status"]["replicas"]),
        spec["replicas"].as_i64().unwrap_or(1)
    );
    put!(w, 0, "Pods Status:\t");
    match pod_counts(api, rs, &selector_string(&spec["selector"])) {
        Ok(c) => put!(w, 0, "{}\n", counts_text(c)),
        Err(e) => put!(w, 0, "error in fetching pods: {e}\n"),
    }
    template(w, &spec["template"]);
    conditions(w, &rs["status"]);
}

/// `describeReplicationController`.
pub fn replication_controller(w: &mut W, api: &Api, rc: &Value) -> Result<()> {
    let m = &rc["metadata"];
    let spec = &rc["spec"];
    let selector = format_labels(&spec["selector"]);
    let query: Vec<String> =
        super::text::sorted_pairs(&spec["selector"]).iter().map(|(k, v)| format!("{k}={v}")).collect();
    let counts = pod_counts(api, rc, &query.join(","))?;
    header(w, rc);
    put!(w, 0, "Selector:\t{selector}\n");
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(
        w,
        0,
        "Replicas:\t{} current / {} desired\n",
        i(&rc["status"]["replicas"]),
        spec["replicas"].as_i64().unwrap_or(1)
    );
    put!(w, 0, "Pods Status:\t{}\n", counts_text(counts));
    template(w, &spec["template"]);
    conditions(w, &rc["status"]);
    Ok(())
}

/// `describeDaemonSet`.
pub fn daemon_set(w: &mut W, api: &Api, ds: &Value) -> Result<()> {
    let m = &ds["metadata"];
    let spec = &ds["spec"];
    let st = &ds["status"];
    let selector = selector_string(&spec["selector"]);
    let counts = pod_counts(api, ds, &selector)?;
    header(w, ds);
    put!(w, 0, "Selector:\t{selector}\n");
    put!(w, 0, "Node-Selector:\t{}\n", format_labels(&spec["template"]["spec"]["nodeSelector"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Desired Number of Nodes Scheduled: {}\n", i(&st["desiredNumberScheduled"]));
    put!(w, 0, "Current Number of Nodes Scheduled: {}\n", i(&st["currentNumberScheduled"]));
    put!(w, 0, "Number of Nodes Scheduled with Up-to-date Pods: {}\n", i(&st["updatedNumberScheduled"]));
    put!(w, 0, "Number of Nodes Scheduled with Available Pods: {}\n", i(&st["numberAvailable"]));
    put!(w, 0, "Number of Nodes Misscheduled: {}\n", i(&st["numberMisscheduled"]));
    put!(w, 0, "Pods Status:\t{}\n", counts_text(counts));
    template(w, &spec["template"]);
    Ok(())
}

/// `describeStatefulSet`.
pub fn stateful_set(w: &mut W, api: &Api, sts: &Value) -> Result<()> {
    let m = &sts["metadata"];
    let spec = &sts["spec"];
    let selector = selector_string(&spec["selector"]);
    let counts = pod_counts(api, sts, &selector)?;
    header(w, sts);
    put!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(&m["creationTimestamp"]));
    put!(w, 0, "Selector:\t{selector}\n");
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(
        w,
        0,
        "Replicas:\t{} desired | {} total\n",
        spec["replicas"].as_i64().unwrap_or(1),
        i(&sts["status"]["replicas"])
    );
    put!(w, 0, "Update Strategy:\t{}\n", s(&spec["updateStrategy"]["type"]));
    let ru = &spec["updateStrategy"]["rollingUpdate"];
    if !ru["partition"].is_null() {
        put!(w, 1, "Partition:\t{}\n", i(&ru["partition"]));
        if !ru["maxUnavailable"].is_null() {
            put!(w, 1, "MaxUnavailable:\t{}\n", s(&ru["maxUnavailable"]));
        }
    }
    put!(w, 0, "Pods Status:\t{}\n", counts_text(counts));
    template(w, &spec["template"]);
    let claims = spec["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();
    if claims.is_empty() {
        put!(w, 0, "Volume Claims:\t<none>\n");
    } else {
        put!(w, 0, "Volume Claims:\n");
        for c in &claims {
            put!(w, 1, "Name:\t{}\n", s(&c["metadata"]["name"]));
            put!(w, 1, "StorageClass:\t{}\n", super::core::claim_class(c));
            labels_indent(w, "  ", "Labels", "\t", &c["metadata"]["labels"]);
            labels_indent(w, "  ", "Annotations", "\t", &c["metadata"]["annotations"]);
            let storage = &c["spec"]["resources"]["requests"]["storage"];
            let capacity = if storage.is_null() { "<default>".to_string() } else { q(storage) };
            put!(w, 1, "Capacity:\t{capacity}\n");
            put!(w, 1, "Access Modes:\t{}\n", go_list(&c["spec"]["accessModes"]));
        }
    }
    Ok(())
}

/// `describeJob`.
pub fn job(w: &mut W, j: &Value) {
    let m = &j["metadata"];
    let spec = &j["spec"];
    let st = &j["status"];
    header(w, j);
    put!(w, 0, "Selector:\t{}\n", selector_string(&spec["selector"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    let controller = controller_of(j);
    if !controller.is_empty() {
        put!(w, 0, "Controlled By:\t{controller}\n");
    }
    if !spec["parallelism"].is_null() {
        put!(w, 0, "Parallelism:\t{}\n", i(&spec["parallelism"]));
    }
    if spec["completions"].is_null() {
        put!(w, 0, "Completions:\t<unset>\n");
    } else {
        put!(w, 0, "Completions:\t{}\n", i(&spec["completions"]));
    }
    if !spec["completionMode"].is_null() {
        put!(w, 0, "Completion Mode:\t{}\n", s(&spec["completionMode"]));
    }
    if !spec["suspend"].is_null() {
        put!(w, 0, "Suspend:\t{}\n", spec["suspend"] == true);
    }
    if !spec["backoffLimit"].is_null() {
        put!(w, 0, "Backoff Limit:\t{}\n", i(&spec["backoffLimit"]));
    }
    if !spec["ttlSecondsAfterFinished"].is_null() {
        put!(w, 0, "TTL Seconds After Finished:\t{}\n", i(&spec["ttlSecondsAfterFinished"]));
    }
    if !st["startTime"].is_null() {
        put!(w, 0, "Start Time:\t{}\n", rfc1123z(&st["startTime"]));
    }
    if !st["completionTime"].is_null() {
        put!(w, 0, "Completed At:\t{}\n", rfc1123z(&st["completionTime"]));
    }
    let parse = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    if let (Some(start), Some(end)) = (parse(&st["startTime"]), parse(&st["completionTime"])) {
        put!(w, 0, "Duration:\t{}\n", super::human_duration(end.as_second() - start.as_second()));
    }
    if !spec["activeDeadlineSeconds"].is_null() {
        put!(w, 0, "Active Deadline Seconds:\t{}s\n", i(&spec["activeDeadlineSeconds"]));
    }
    if st["ready"].is_null() {
        put!(
            w,
            0,
            "Pods Statuses:\t{} Active / {} Succeeded / {} Failed\n",
            i(&st["active"]),
            i(&st["succeeded"]),
            i(&st["failed"])
        );
    } else {
        put!(
            w,
            0,
            "Pods Statuses:\t{} Active ({} Ready) / {} Succeeded / {} Failed\n",
            i(&st["active"]),
            i(&st["ready"]),
            i(&st["succeeded"]),
            i(&st["failed"])
        );
    }
    if spec["completionMode"] == "Indexed" {
        put!(w, 0, "Completed Indexes:\t{}\n", cap_indexes(&s(&st["completedIndexes"]), 50));
    }
    template(w, &spec["template"]);
}

/// `capIndexesListOrNone`: the list cut after the first comma past `soft` characters.
fn cap_indexes(indexes: &str, soft: usize) -> String {
    if indexes.is_empty() {
        return "<none>".into();
    }
    match indexes.bytes().enumerate().skip(soft).find(|(_, b)| *b == b',') {
        Some((ix, _)) => format!("{}...", &indexes[..=ix]),
        None => indexes.to_string(),
    }
}

/// `describeCronJob`.
pub fn cron_job(w: &mut W, cj: &Value) {
    let m = &cj["metadata"];
    let spec = &cj["spec"];
    header(w, cj);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Schedule:\t{}\n", s(&spec["schedule"]));
    put!(w, 0, "Concurrency Policy:\t{}\n", s(&spec["concurrencyPolicy"]));
    put!(w, 0, "Suspend:\t{}\n", print_bool_ptr(&spec["suspend"]));
    if let Some(tz) = spec["timeZone"].as_str() {
        put!(w, 0, "Time Zone:\t{tz}\n");
    }
    let opt = |v: &Value| if v.is_null() { "<unset>".to_string() } else { i(v).to_string() };
    put!(w, 0, "Successful Job History Limit:\t{}\n", opt(&spec["successfulJobsHistoryLimit"]));
    put!(w, 0, "Failed Job History Limit:\t{}\n", opt(&spec["failedJobsHistoryLimit"]));
    match spec["startingDeadlineSeconds"].as_i64() {
        Some(secs) => put!(w, 0, "Starting Deadline Seconds:\t{secs}s\n"),
        None => put!(w, 0, "Starting Deadline Seconds:\t<unset>\n"),
    }
    let js = &spec["jobTemplate"]["spec"];
    if js["selector"].is_object() {
        put!(w, 0, "Selector:\t{}\n", selector_string(&js["selector"]));
    } else {
        put!(w, 0, "Selector:\t<unset>\n");
    }
    put!(w, 0, "Parallelism:\t{}\n", opt(&js["parallelism"]));
    put!(w, 0, "Completions:\t{}\n", opt(&js["completions"]));
    if !js["activeDeadlineSeconds"].is_null() {
        put!(w, 0, "Active Deadline Seconds:\t{}s\n", i(&js["activeDeadlineSeconds"]));
    }
    template(w, &js["template"]);
    let st = &cj["status"];
    if st["lastScheduleTime"].is_null() {
        put!(w, 0, "Last Schedule Time:\t<unset>\n");
    } else {
        put!(w, 0, "Last Schedule Time:\t{}\n", rfc1123z(&st["lastScheduleTime"]));
    }
    put!(w, 0, "Active Jobs:\t");
    let active: Vec<String> = st["active"].as_array().into_iter().flatten().map(|j| s(&j["name"])).collect();
    if active.is_empty() {
        put!(w, 0, "<none>\n");
    } else {
        put!(w, 0, "{}\n", active.join(", "));
    }
}
