//! Pod specs, wherever they appear: Pods themselves and the pod templates of workloads.

use super::meta::{
    dns_label_field, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, push_msgs, validate_labels,
};
use super::quantity::{QUANTITY_FORMAT_ERROR, parse_quantity};
use super::{
    Errs, NON_NEGATIVE, arr_at, at, index, int_at, is_set, join, key, non_negative, not_found, obj_at, str_at,
};
use crate::FieldError;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Every volume source field of a Volume; a volume with none is an emptyDir (defaulting).
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ENV_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Problems with a port number (1..=65535).
pub(super) fn port_num_problems(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) { Vec::new() } else { vec!["must be between 1 and 65535, inclusive".to_string()] }
}

/// Problems with a port name (IANA_SVC_NAME).
pub(super) fn port_name_problems(name: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if name.len() > 15 {
        msgs.push("must be no more than 15 characters".to_string());
    }
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        msgs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)".to_string());
    }
    if name.contains("--") {
        msgs.push("must not contain consecutive hyphens".to_string());
    }
    if name.starts_with('-') || name.ends_with('-') {
        msgs.push("must not begin or end with a hyphen".to_string());
    }
    msgs
}

/// A protocol field: required, and one of TCP/UDP/SCTP.
pub(super) fn protocol_field(v: &Value, path: &str, errs: &mut Errs) {
    match str_at(v, "protocol") {
        "" => errs.push(FieldError::required(join(path, "protocol"), "")),
        p if PROTOCOLS.contains(&p) => {}
        p => errs.push(FieldError::not_supported(join(path, "protocol"), &Value::from(p), PROTOCOLS)),
    }
}

/// Validates a Pod.
pub(super) fn validate_pod(obj: &Value, errs: &mut Errs) {
    validate_pod_spec(at(obj, "spec"), "spec", true, errs);
}

/// Checks only made when a Pod is created.
pub(super) fn validate_pod_create(obj: &Value, errs: &mut Errs) {
    if !arr_at(at(obj, "spec"), "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden("spec.ephemeralContainers", "cannot be set on create"));
    }
}

/// Validates a pod template at `path` (labels, annotations and its pod spec).
/// `restart_required`: whether an empty restartPolicy is an error here (Job templates check
/// theirs separately).
pub(super) fn validate_template(tmpl: &Value, path: &str, restart_required: bool, errs: &mut Errs) {
    let meta = at(tmpl, "metadata");
    validate_labels(obj_at(meta, "labels"), &join(path, "metadata.labels"), errs);
    super::meta::validate_annotations(obj_at(meta, "annotations"), &join(path, "metadata.annotations"), errs);
    validate_pod_spec(at(tmpl, "spec"), &join(path, "spec"), restart_required, errs);
}

/// Validates a pod spec at `path`.
pub(super) fn validate_pod_spec(spec: &Value, path: &str, restart_required: bool, errs: &mut Errs) {
    let volumes = validate_volumes(arr_at(spec, "volumes"), &join(path, "volumes"), errs);

    let containers = arr_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(join(path, "containers"), ""));
    }
    let mut names = HashSet::new();
    for (field, init) in [("initContainers", true), ("containers", false)] {
        let list_path = join(path, field);
        for (i, c) in arr_at(spec, field).iter().enumerate() {
            let cpath = index(&list_path, i);
            let name = str_at(c, "name");
            dns_label_field(errs, &join(&cpath, "name"), name);
            if !name.is_empty() && !names.insert(name) {
                errs.push(FieldError::duplicate(join(&cpath, "name"), &Value::from(name)));
            }
            validate_container(c, &cpath, init, &volumes, errs);
        }
    }

    match str_at(spec, "restartPolicy") {
        "" if restart_required => errs.push(FieldError::required(join(path, "restartPolicy"), "")),
        "" | "Always" | "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            join(path, "restartPolicy"),
            &Value::from(other),
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policies = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    match str_at(spec, "dnsPolicy") {
        "" => errs.push(FieldError::required(join(path, "dnsPolicy"), "")),
        "None" if !is_set(spec, "dnsConfig") => errs
            .push(FieldError::required(join(path, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None")),
        p if dns_policies.contains(&p) => {}
        p => errs.push(FieldError::not_supported(join(path, "dnsPolicy"), &Value::from(p), &dns_policies)),
    }
    non_negative(spec, "terminationGracePeriodSeconds", path, errs);
    if let Some(ads) = spec.get("activeDeadlineSeconds").filter(|v| !v.is_null())
        && !ads.as_i64().is_some_and(|n| (1..=i64::from(i32::MAX)).contains(&n))
    {
        errs.push(FieldError::invalid(
            join(path, "activeDeadlineSeconds"),
            ads,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    validate_labels(obj_at(spec, "nodeSelector"), &join(path, "nodeSelector"), errs);
    for field in ["hostname", "subdomain"] {
        let v = str_at(spec, field);
        if !v.is_empty() {
            push_msgs(errs, &join(path, field), v, is_dns1123_label(v));
        }
    }
    let sa = str_at(spec, "serviceAccountName");
    if !sa.is_empty() {
        push_msgs(errs, &join(path, "serviceAccountName"), sa, is_dns1123_subdomain(sa));
    }
    for (i, t) in arr_at(spec, "tolerations").iter().enumerate() {
        validate_toleration(t, &index(&join(path, "tolerations"), i), errs);
    }
}

/// Validates the volumes and returns their names, for the mounts to refer to.
fn validate_volumes<'a>(volumes: &'a [Value], path: &str, errs: &mut Errs) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let vpath = index(path, i);
        let name = str_at(v, "name");
        dns_label_field(errs, &join(&vpath, "name"), name);
        if !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(join(&vpath, "name"), &Value::from(name)));
        }
        let sources: Vec<&str> = VOLUME_SOURCES.iter().copied().filter(|s| is_set(v, s)).collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&vpath, "must specify a volume type")),
            [_] => {}
            [_, extra @ ..] => {
                for s in extra {
                    errs.push(FieldError::forbidden(join(&vpath, s), "may not specify more than 1 volume type"));
                }
            }
        }
        for (source, name_field) in [
            ("configMap", "name"),
            ("secret", "secretName"),
            ("persistentVolumeClaim", "claimName"),
            ("hostPath", "path"),
        ] {
            if let Some(src) = v.get(source).filter(|s| s.is_object()) {
                let spath = join(&vpath, source);
                if str_at(src, name_field).is_empty() {
                    errs.push(FieldError::required(join(&spath, name_field), ""));
                }
                if let Some(mode) = src.get("defaultMode").filter(|m| !m.is_null())
                    && !mode.as_i64().is_some_and(|m| (0..=0o777).contains(&m))
                {
                    errs.push(FieldError::invalid(
                        join(&spath, "defaultMode"),
                        mode,
                        "must be a number between 0 and 0777 (octal), both inclusive",
                    ));
                }
            }
        }
    }
    names
}

fn validate_container(c: &Value, path: &str, init: bool, volumes: &HashSet<&str>, errs: &mut Errs) {
    let image = str_at(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(join(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            join(path, "image"),
            &Value::from(image),
            "must not have leading or trailing whitespace",
        ));
    }
    let pull = ["Always", "IfNotPresent", "Never"];
    match str_at(c, "imagePullPolicy") {
        "" => errs.push(FieldError::required(join(path, "imagePullPolicy"), "")),
        p if pull.contains(&p) => {}
        p => errs.push(FieldError::not_supported(join(path, "imagePullPolicy"), &Value::from(p), &pull)),
    }
    let tmp = ["File", "FallbackToLogsOnError"];
    match str_at(c, "terminationMessagePolicy") {
        "" => {}
        p if tmp.contains(&p) => {}
        p => errs.push(FieldError::not_supported(join(path, "terminationMessagePolicy"), &Value::from(p), &tmp)),
    }

    let mut port_names = HashSet::new();
    for (i, p) in arr_at(c, "ports").iter().enumerate() {
        let ppath = index(&join(path, "ports"), i);
        let name = str_at(p, "name");
        if !name.is_empty() {
            let msgs = port_name_problems(name);
            if !msgs.is_empty() {
                push_msgs(errs, &join(&ppath, "name"), name, msgs);
            } else if !port_names.insert(name) {
                errs.push(FieldError::duplicate(join(&ppath, "name"), &Value::from(name)));
            }
        }
        match int_at(p, "containerPort") {
            None | Some(0) => errs.push(FieldError::required(join(&ppath, "containerPort"), "")),
            Some(n) => {
                for m in port_num_problems(n) {
                    errs.push(FieldError::invalid(join(&ppath, "containerPort"), &Value::from(n), &m));
                }
            }
        }
        if let Some(n) = int_at(p, "hostPort").filter(|n| *n != 0) {
            for m in port_num_problems(n) {
                errs.push(FieldError::invalid(join(&ppath, "hostPort"), &Value::from(n), &m));
            }
        }
        protocol_field(p, &ppath, errs);
    }

    for (i, e) in arr_at(c, "env").iter().enumerate() {
        validate_env_var(e, &index(&join(path, "env"), i), errs);
    }

    let mut mount_paths = HashSet::new();
    for (i, m) in arr_at(c, "volumeMounts").iter().enumerate() {
        let mpath = index(&join(path, "volumeMounts"), i);
        let name = str_at(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(join(&mpath, "name"), ""));
        } else if !volumes.contains(name) {
            errs.push(not_found(join(&mpath, "name"), &Value::from(name)));
        }
        let mount_path = str_at(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(join(&mpath, "mountPath"), ""));
        } else if !mount_paths.insert(mount_path) {
            errs.push(FieldError::invalid(join(&mpath, "mountPath"), &Value::from(mount_path), "must be unique"));
        }
    }

    validate_resources(at(c, "resources"), &join(path, "resources"), errs);

    let sidecar = str_at(c, "restartPolicy") == "Always";
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = c.get(probe).filter(|p| !p.is_null()) else { continue };
        let ppath = join(path, probe);
        if init && !sidecar {
            errs.push(FieldError::forbidden(ppath, "may not be set for init containers without restartPolicy=Always"));
            continue;
        }
        validate_probe(p, &ppath, probe != "readinessProbe", errs);
    }
    if !init && is_set(c, "restartPolicy") {
        errs.push(FieldError::forbidden(join(path, "restartPolicy"), "may not be set for non-init containers"));
    }
}

fn validate_env_var(e: &Value, path: &str, errs: &mut Errs) {
    let name = str_at(e, "name");
    if name.is_empty() {
        errs.push(FieldError::required(join(path, "name"), ""));
    } else if !is_env_var_name(name) {
        errs.push(FieldError::invalid(join(path, "name"), &Value::from(name), ENV_NAME_MSG));
    }
    let Some(from) = e.get("valueFrom").filter(|v| !v.is_null()) else { return };
    let fpath = join(path, "valueFrom");
    if !str_at(e, "value").is_empty() {
        errs.push(FieldError::invalid(&fpath, &Value::from(""), "may not be specified when `value` is not empty"));
    }
    let sources: Vec<&str> = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"]
        .into_iter()
        .filter(|s| is_set(from, s))
        .collect();
    match sources.len() {
        0 => errs.push(FieldError::invalid(
            &fpath,
            &Value::from(""),
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )),
        1 => {}
        _ => errs.push(FieldError::invalid(
            &fpath,
            &Value::from(""),
            "may not have more than one field specified at a time",
        )),
    }
    if let Some(f) = from.get("fieldRef").filter(|f| f.is_object())
        && str_at(f, "fieldPath").is_empty()
    {
        errs.push(FieldError::required(join(&fpath, "fieldRef.fieldPath"), ""));
    }
    for source in ["configMapKeyRef", "secretKeyRef"] {
        if let Some(r) = from.get(source).filter(|r| r.is_object())
            && str_at(r, "key").is_empty()
        {
            errs.push(FieldError::required(join(&join(&fpath, source), "key"), ""));
        }
    }
}

fn is_env_var_name(s: &str) -> bool {
    let ok = |c: u8, first: bool| {
        c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_') || (!first && c.is_ascii_digit())
    };
    s.bytes().enumerate().all(|(i, c)| ok(c, i == 0))
}

/// Validates requests and limits: well-formed, non-negative, requests within limits.
pub(super) fn validate_resources(res: &Value, path: &str, errs: &mut Errs) {
    let mut parsed: BTreeMap<(&str, &str), (i128, &str)> = BTreeMap::new();
    for section in ["limits", "requests"] {
        for (name, q) in obj_at(res, section).into_iter().flatten() {
            let qpath = key(&join(path, section), name);
            let text = q.as_str().unwrap_or_default();
            match parse_quantity(text) {
                Err(_) => errs.push(FieldError::invalid(qpath, q, QUANTITY_FORMAT_ERROR)),
                Ok(n) if n < 0 => errs.push(FieldError::invalid(qpath, q, NON_NEGATIVE)),
                Ok(n) => {
                    parsed.insert((section, name.as_str()), (n, text));
                }
            }
        }
    }
    for (&(section, name), &(request, text)) in &parsed {
        if section != "requests" {
            continue;
        }
        if let Some(&(limit, limit_text)) = parsed.get(&("limits", name))
            && request > limit
        {
            errs.push(FieldError::invalid(
                key(&join(path, "requests"), name),
                &Value::from(text),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            ));
        }
    }
}

fn validate_probe(p: &Value, path: &str, success_must_be_one: bool, errs: &mut Errs) {
    let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"].into_iter().filter(|h| is_set(p, h)).collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a handler type")),
        [_] => {}
        [_, extra @ ..] => {
            for h in extra {
                errs.push(FieldError::forbidden(join(path, h), "may not specify more than 1 handler type"));
            }
        }
    }
    for field in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        non_negative(p, field, path, errs);
    }
    if success_must_be_one && let Some(n) = int_at(p, "successThreshold").filter(|n| *n != 1) {
        errs.push(FieldError::invalid(join(path, "successThreshold"), &Value::from(n), "must be 1"));
    }
    for handler in ["httpGet", "tcpSocket"] {
        if let Some(h) = p.get(handler).filter(|h| h.is_object()) {
            validate_port_ref(at(h, "port"), &join(&join(path, handler), "port"), errs);
        }
    }
}

/// A port given by number or by name (IntOrString).
pub(super) fn validate_port_ref(port: &Value, path: &str, errs: &mut Errs) {
    match port {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(-1);
            for m in port_num_problems(n) {
                errs.push(FieldError::invalid(path, &Value::from(n), &m));
            }
        }
        Value::String(s) => push_msgs(errs, path, s, port_name_problems(s)),
        _ => errs.push(FieldError::required(path, "")),
    }
}

fn validate_toleration(t: &Value, path: &str, errs: &mut Errs) {
    let k = str_at(t, "key");
    if !k.is_empty() {
        push_msgs(errs, &join(path, "key"), k, is_qualified_name(k));
    }
    match str_at(t, "operator") {
        "Exists" => {
            if !str_at(t, "value").is_empty() {
                errs.push(FieldError::invalid(
                    join(path, "operator"),
                    at(t, "value"),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        "" | "Equal" if k.is_empty() => errs.push(FieldError::invalid(
            join(path, "operator"),
            at(t, "operator"),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        )),
        "" | "Equal" => {}
        op => errs.push(FieldError::not_supported(join(path, "operator"), &Value::from(op), &["Equal", "Exists"])),
    }
    let effect = str_at(t, "effect");
    let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if !effect.is_empty() && !effects.contains(&effect) {
        errs.push(FieldError::not_supported(join(path, "effect"), &Value::from(effect), &effects));
    }
    if is_set(t, "tolerationSeconds") && effect != "NoExecute" {
        errs.push(FieldError::invalid(
            join(path, "effect"),
            &Value::from(effect),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// Pod updates may change only images, activeDeadlineSeconds (downwards), tolerations
/// (additions) and terminationGracePeriodSeconds.
pub(super) fn validate_pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (new_spec, old_spec) = (at(new, "spec"), at(old, "spec"));

    match (int_at(old_spec, "activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds").filter(|v| !v.is_null())) {
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n.as_i64().is_some_and(|n| n > o) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }

    let new_tolerations = arr_at(new_spec, "tolerations");
    for old_t in arr_at(old_spec, "tolerations") {
        let kept = new_tolerations.iter().any(|n| {
            let mut o = old_t.clone();
            if let Some(m) = o.as_object_mut() {
                match n.get("tolerationSeconds") {
                    Some(s) => m.insert("tolerationSeconds".into(), s.clone()),
                    None => m.remove("tolerationSeconds"),
                };
            }
            &o == n
        });
        if !kept {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }

    // Overlay the mutable fields of the new spec onto the old one; any remaining difference
    // is a change Kubernetes forbids.
    let mut munged = new_spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for field in ["containers", "initContainers"] {
            let old_list = arr_at(old_spec, field);
            if let Some(list) = m.get_mut(field).and_then(Value::as_array_mut) {
                for (i, c) in list.iter_mut().enumerate() {
                    if let (Some(cm), Some(old_c)) = (c.as_object_mut(), old_list.get(i)) {
                        match old_c.get("image") {
                            Some(img) => cm.insert("image".into(), img.clone()),
                            None => cm.remove("image"),
                        };
                    }
                }
            }
        }
        for field in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"] {
            match old_spec.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
    }
    if &munged != old_spec {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_MSG));
    }
}
