//! Workload controllers: Deployment, ReplicaSet, ReplicationController, DaemonSet,
//! StatefulSet, Job and CronJob (with a cron schedule parser).

use super::meta::{immutable, is_qualified_name, push_msgs, validate_labels};
use super::pod::validate_template;
use super::{
    Errs, NON_NEGATIVE, arr_at, at, go_string_map, index, int_at, invalid_shown, is_set, join, non_negative, obj_at,
    str_at,
};
use crate::{FieldError, LabelSelector};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";
const STS_UPDATE_MSG: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

fn template_labels(tmpl: &Value) -> Option<&Map<String, Value>> {
    obj_at(at(tmpl, "metadata"), "labels")
}

fn as_label_set(m: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
    m.into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
}

fn selector_is_empty(sel: &Value) -> bool {
    obj_at(sel, "matchLabels").is_none_or(Map::is_empty) && arr_at(sel, "matchExpressions").is_empty()
}

/// Validates a metav1.LabelSelector at `path`.
pub(super) fn validate_label_selector(sel: &Value, path: &str, errs: &mut Errs) {
    validate_labels(obj_at(sel, "matchLabels"), &join(path, "matchLabels"), errs);
    for (i, e) in arr_at(sel, "matchExpressions").iter().enumerate() {
        let epath = index(&join(path, "matchExpressions"), i);
        let values = arr_at(e, "values");
        match str_at(e, "operator") {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                join(&epath, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                join(&epath, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(FieldError::invalid(
                join(&epath, "operator"),
                &Value::from(op),
                "not a valid selector operator",
            )),
        }
        let k = str_at(e, "key");
        push_msgs(errs, &join(&epath, "key"), k, is_qualified_name(k));
    }
}

/// The selector of an apps/v1 workload: required, valid, and matching the template labels.
/// An absent selector selects nothing, so the template labels never match it (as in Kubernetes).
fn validate_selector_and_template(spec: &Value, errs: &mut Errs) {
    let sel = at(spec, "selector");
    let labels = template_labels(at(spec, "template"));
    let matches = if selector_is_empty(sel) {
        errs.push(FieldError::required("spec.selector", ""));
        false
    } else {
        validate_label_selector(sel, "spec.selector", errs);
        match LabelSelector::from_object(sel) {
            Ok(s) => s.matches(&as_label_set(labels)),
            Err(_) => {
                errs.push(FieldError::invalid("spec.selector", sel, "invalid label selector"));
                true
            }
        }
    };
    if !matches {
        errs.push(invalid_shown("spec.template.metadata.labels", &go_string_map(labels), SELECTOR_MISMATCH));
    }
}

/// The template of a controller whose pods run forever.
fn validate_always_template(spec: &Value, controller: &str, errs: &mut Errs) {
    let tmpl = at(spec, "template");
    validate_template(tmpl, "spec.template", true, errs);
    let pod_spec = at(tmpl, "spec");
    let policy = str_at(pod_spec, "restartPolicy");
    if !policy.is_empty() && policy != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", &Value::from(policy), &["Always"]));
    }
    if is_set(pod_spec, "activeDeadlineSeconds") {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {controller} is not Supported"),
        ));
    }
}

fn common_counts(spec: &Value, errs: &mut Errs) {
    for field in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(spec, field, "spec", errs);
    }
}

/// Validates a Deployment.
pub(super) fn validate_deployment(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    common_counts(spec, errs);
    validate_selector_and_template(spec, errs);
    validate_always_template(spec, "ReplicaSet", errs);

    let strategy = at(spec, "strategy");
    match str_at(strategy, "type") {
        "Recreate" => {
            if is_set(strategy, "rollingUpdate") {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            None => errs
                .push(FieldError::required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")),
            Some(ru) => {
                let path = "spec.strategy.rollingUpdate";
                let unavailable = int_or_percent(at(ru, "maxUnavailable"), &join(path, "maxUnavailable"), errs);
                let surge = int_or_percent(at(ru, "maxSurge"), &join(path, "maxSurge"), errs);
                if unavailable == 0 && surge == 0 {
                    errs.push(FieldError::invalid(
                        join(path, "maxUnavailable"),
                        at(ru, "maxUnavailable"),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_over_100_percent(at(ru, "maxUnavailable"), &join(path, "maxUnavailable"), errs);
            }
        },
        "" => errs.push(FieldError::required("spec.strategy.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            &Value::from(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
    if let Some(pds) = int_at(spec, "progressDeadlineSeconds") {
        non_negative(spec, "progressDeadlineSeconds", "spec", errs);
        if pds <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// Validates an IntOrString that must be a non-negative count or a percentage; returns its
/// numeric value (0 when absent or invalid).
fn int_or_percent(v: &Value, path: &str, errs: &mut Errs) -> i64 {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            if n < 0 {
                errs.push(FieldError::invalid(path, &Value::from(n), NON_NEGATIVE));
            }
            n
        }
        Value::String(s) => {
            match s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                Some(digits) => digits.parse().unwrap_or(i64::MAX),
                None => {
                    errs.push(FieldError::invalid(path, v, PERCENT_MSG));
                    0
                }
            }
        }
        _ => 0,
    }
}

fn not_over_100_percent(v: &Value, path: &str, errs: &mut Errs) {
    if let Some(p) = v.as_str().and_then(|s| s.strip_suffix('%')).and_then(|d| d.parse::<u64>().ok())
        && p > 100
    {
        errs.push(FieldError::invalid(path, v, "must not be greater than 100%"));
    }
}

/// Validates a ReplicaSet.
pub(super) fn validate_replica_set(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    common_counts(spec, errs);
    validate_selector_and_template(spec, errs);
    validate_always_template(spec, "ReplicaSet", errs);
}

/// Validates a DaemonSet.
pub(super) fn validate_daemon_set(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    common_counts(spec, errs);
    validate_selector_and_template(spec, errs);
    validate_always_template(spec, "DaemonSet", errs);

    let strategy = at(spec, "updateStrategy");
    let path = "spec.updateStrategy";
    match str_at(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            None => errs.push(FieldError::required(join(path, "rollingUpdate"), "")),
            Some(ru) => {
                let rpath = join(path, "rollingUpdate");
                let unavailable = int_or_percent(at(ru, "maxUnavailable"), &join(&rpath, "maxUnavailable"), errs);
                let surge = int_or_percent(at(ru, "maxSurge"), &join(&rpath, "maxSurge"), errs);
                not_over_100_percent(at(ru, "maxUnavailable"), &join(&rpath, "maxUnavailable"), errs);
                not_over_100_percent(at(ru, "maxSurge"), &join(&rpath, "maxSurge"), errs);
                match (unavailable != 0, surge != 0) {
                    (true, true) => errs.push(FieldError::invalid(
                        join(&rpath, "maxSurge"),
                        at(ru, "maxSurge"),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (false, false) => errs
                        .push(FieldError::required(join(&rpath, "maxUnavailable"), "cannot be 0 when maxSurge is 0")),
                    _ => {}
                }
            }
        },
        "" => errs.push(FieldError::required(join(path, "type"), "")),
        other => errs.push(FieldError::not_supported(
            join(path, "type"),
            &Value::from(other),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

/// Validates a StatefulSet.
pub(super) fn validate_stateful_set(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    common_counts(spec, errs);
    validate_selector_and_template(spec, errs);
    // Containers mount the claims of volumeClaimTemplates by name; the controller adds those
    // volumes to each pod, so they count as volumes of the template here.
    let claims: Vec<Value> = arr_at(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(|n| serde_json::json!({"name": n, "persistentVolumeClaim": {"claimName": n}}))
        .collect();
    if claims.is_empty() {
        validate_always_template(spec, "StatefulSet", errs);
    } else {
        let mut with_claims = spec.clone();
        if let Some(pod) = with_claims.pointer_mut("/template/spec").and_then(Value::as_object_mut) {
            let volumes = pod.entry("volumes").or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = volumes.as_array_mut() {
                list.extend(claims);
            }
        }
        validate_always_template(&with_claims, "StatefulSet", errs);
    }

    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            &Value::from(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = at(spec, "updateStrategy");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "RollingUpdate" => {
            if let Some(p) = int_at(at(strategy, "rollingUpdate"), "partition")
                && p < 0
            {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate.partition",
                    &Value::from(p),
                    NON_NEGATIVE,
                ));
            }
        }
        "OnDelete" => {
            if is_set(strategy, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    at(strategy, "rollingUpdate"),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        _ => errs.push(FieldError::invalid("spec.updateStrategy", strategy, "must be 'RollingUpdate' or 'OnDelete'")),
    }
    let policy = at(spec, "persistentVolumeClaimRetentionPolicy");
    for field in ["whenDeleted", "whenScaled"] {
        let v = str_at(policy, field);
        if !v.is_empty() && v != "Retain" && v != "Delete" {
            errs.push(FieldError::not_supported(
                join("spec.persistentVolumeClaimRetentionPolicy", field),
                &Value::from(v),
                &["Retain", "Delete"],
            ));
        }
    }
    if let Some(start) = int_at(at(spec, "ordinals"), "start")
        && start < 0
    {
        errs.push(FieldError::invalid("spec.ordinals.start", &Value::from(start), NON_NEGATIVE));
    }
}

/// Validates a ReplicationController (whose selector is a plain label map).
pub(super) fn validate_replication_controller(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    for field in ["replicas", "minReadySeconds"] {
        non_negative(spec, field, "spec", errs);
    }
    let selector = obj_at(spec, "selector").filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => validate_labels(Some(s), "spec.selector", errs),
    }
    let Some(tmpl) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    if let Some(sel) = selector {
        let labels = template_labels(tmpl);
        let set = as_label_set(labels);
        if !sel.iter().all(|(k, v)| set.get(k).map(String::as_str) == Some(v.as_str().unwrap_or_default())) {
            errs.push(invalid_shown("spec.template.metadata.labels", &go_string_map(labels), SELECTOR_MISMATCH));
        }
    }
    validate_always_template(spec, "ReplicationController", errs);
}

/// Validates a Job.
pub(super) fn validate_job(obj: &Value, errs: &mut Errs) {
    validate_job_spec(at(obj, "spec"), "spec", errs);
}

/// Validates a Job spec at `path` (a Job's `spec` or a CronJob's `spec.jobTemplate.spec`).
fn validate_job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        non_negative(spec, field, path, errs);
    }
    // The server generates the selector unless manualSelector is set, so only a given one is checked.
    let sel = at(spec, "selector");
    let tmpl = at(spec, "template");
    if !selector_is_empty(sel) {
        let sel_path = join(path, "selector");
        validate_label_selector(sel, &sel_path, errs);
        if let Ok(s) = LabelSelector::from_object(sel)
            && !s.matches(&as_label_set(template_labels(tmpl)))
        {
            errs.push(invalid_shown(
                join(path, "template.metadata.labels"),
                &go_string_map(template_labels(tmpl)),
                SELECTOR_MISMATCH,
            ));
        }
    }
    let tpath = join(path, "template");
    validate_template(tmpl, &tpath, false, errs);
    let restart_path = join(&tpath, "spec.restartPolicy");
    match str_at(at(tmpl, "spec"), "restartPolicy") {
        "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(restart_path, "valid values: \"OnFailure\", \"Never\"")),
        other => errs.push(FieldError::not_supported(restart_path, &Value::from(other), &["OnFailure", "Never"])),
    }
    match str_at(spec, "completionMode") {
        "" | "NonIndexed" => {}
        "Indexed" => {
            if !is_set(spec, "completions") {
                errs.push(FieldError::required(join(path, "completions"), "when completion mode is Indexed"));
            }
        }
        other => errs.push(FieldError::not_supported(
            join(path, "completionMode"),
            &Value::from(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    let prp = str_at(spec, "podReplacementPolicy");
    if !prp.is_empty() && prp != "TerminatingOrFailed" && prp != "Failed" {
        errs.push(FieldError::not_supported(
            join(path, "podReplacementPolicy"),
            &Value::from(prp),
            &["TerminatingOrFailed", "Failed"],
        ));
    }
}

/// Validates a CronJob.
pub(super) fn validate_cron_job(obj: &Value, errs: &mut Errs) {
    let name = str_at(at(obj, "metadata"), "name");
    // Job names get an 11-character suffix and must still be DNS-1035 labels.
    if name.len() > 52 {
        errs.push(FieldError::invalid("metadata.name", &Value::from(name), "must be no more than 52 characters"));
    }
    let spec = at(obj, "spec");
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else if schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            "spec.schedule",
            &Value::from(schedule),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    } else if let Err(e) = parse_cron(schedule) {
        errs.push(FieldError::invalid("spec.schedule", &Value::from(schedule), &e));
    }
    if let Some(tz) = spec.get("timeZone").filter(|v| !v.is_null()) {
        let name = tz.as_str().unwrap_or_default();
        if !is_plausible_time_zone(name) {
            errs.push(FieldError::invalid("spec.timeZone", tz, &format!("unknown time zone {name}")));
        }
    }
    match str_at(spec, "concurrencyPolicy") {
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        "Allow" | "Forbid" | "Replace" => {}
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            &Value::from(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for field in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        non_negative(spec, field, "spec", errs);
    }
    let jt = at(spec, "jobTemplate");
    let jt_meta = at(jt, "metadata");
    validate_labels(obj_at(jt_meta, "labels"), "spec.jobTemplate.metadata.labels", errs);
    super::meta::validate_annotations(obj_at(jt_meta, "annotations"), "spec.jobTemplate.metadata.annotations", errs);
    validate_job_spec(at(jt, "spec"), "spec.jobTemplate.spec", errs);
}

/// IANA names look like `UTC`, `Europe/Berlin` or `America/Argentina/Buenos_Aires`; "Local"
/// would depend on the server's zone, which Kubernetes forbids.
fn is_plausible_time_zone(tz: &str) -> bool {
    !tz.is_empty()
        && !tz.eq_ignore_ascii_case("local")
        && tz.split('/').all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        })
}

/// Checks a cron schedule the way Kubernetes' parser (standard 5 fields, or a descriptor) does.
pub(super) fn parse_cron(schedule: &str) -> Result<(), String> {
    crate::cron::parse_cron(schedule).map(drop)
}

/// apps/v1 selectors may not change.
pub(super) fn validate_selector_update(new: &Value, old: &Value, errs: &mut Errs) {
    immutable(at(at(new, "spec"), "selector"), at(at(old, "spec"), "selector"), "spec.selector", errs);
}

/// StatefulSets may change only a few spec fields.
pub(super) fn validate_statefulset_update(new: &Value, old: &Value, errs: &mut Errs) {
    let strip = |v: &Value| {
        let mut spec = at(v, "spec").clone();
        if let Some(m) = spec.as_object_mut() {
            for field in [
                "replicas",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
                "ordinals",
                "revisionHistoryLimit",
            ] {
                m.remove(field);
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden("spec", STS_UPDATE_MSG));
    }
}

/// Jobs may not change their selector, template, completions or completion mode.
pub(super) fn validate_job_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (n, o) = (at(new, "spec"), at(old, "spec"));
    for field in ["selector", "template", "completions", "completionMode"] {
        immutable(at(n, field), at(o, field), &join("spec", field), errs);
    }
}
