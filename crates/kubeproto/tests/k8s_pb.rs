//! Wire compatibility checked against an independent implementation: the k8s-pb crate
//! (prost code generated from Kubernetes' .proto files).

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use rkube_kubeproto::{
    MAGIC, decode, decode_watch_event, encode, encode_watch_event, split_watch_frame,
};
use serde_json::{Value, json};

/// Wrap a typed k8s-pb message the way the Go API server does.
fn envelope(api_version: &str, kind: &str, msg: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// Unwrap our envelope with k8s-pb: (apiVersion, kind, raw).
fn unwrap(bytes: &[u8]) -> (String, String, Vec<u8>) {
    assert_eq!(&bytes[..4], b"k8s\0");
    let unknown = Unknown::decode(&bytes[4..]).expect("Unknown decodes");
    let tm = unknown.type_meta.expect("typeMeta");
    (
        tm.api_version.unwrap(),
        tm.kind.unwrap(),
        unknown.raw.unwrap(),
    )
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity { string: s(v) }))
        .collect()
}

#[test]
fn decodes_pod_written_by_k8s_pb() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            // Go writes every non-pointer field; zeros must vanish from the JSON.
            generate_name: s(""),
            generation: Some(0),
            labels: labels(&[("app", "web"), ("empty", "")]),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            deletion_timestamp: Some(meta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            deletion_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("nginx"),
                image: s("nginx:1.27"),
                ports: vec![
                    core::ContainerPort {
                        container_port: Some(80),
                        protocol: s("TCP"),
                        host_port: Some(0),
                        ..Default::default()
                    },
                    core::ContainerPort {
                        container_port: Some(443),
                        name: s("https"),
                        ..Default::default()
                    },
                ],
                resources: Some(core::ResourceRequirements {
                    limits: quantities(&[("cpu", "100m"), ("memory", "64Mi")]),
                    ..Default::default()
                }),
                stdin: Some(false),
                ..Default::default()
            }],
            restart_policy: s("Always"),
            host_network: Some(false),
            dns_policy: s(""),
            termination_grace_period_seconds: Some(0),
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
        status: Some(core::PodStatus::default()),
    };
    let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app": "web", "empty": ""},
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "deletionGracePeriodSeconds": 0
            },
            "spec": {
                "containers": [{
                    "name": "nginx",
                    "image": "nginx:1.27",
                    "ports": [
                        {"containerPort": 80, "protocol": "TCP"},
                        {"containerPort": 443, "name": "https"}
                    ],
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false
            },
            "status": {}
        })
    );
}

#[test]
fn decodes_secret_with_binary_data() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("creds"),
            ..Default::default()
        }),
        data: [
            ("key".to_owned(), vec![0u8, 1, 2, 255]),
            ("empty".to_owned(), vec![]),
        ]
        .into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
        immutable: Some(false),
    };
    let got = decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"key": "AAEC/w==", "empty": ""},
            "type": "Opaque",
            "immutable": false
        })
    );
}

fn deployment() -> apps::Deployment {
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("prod"),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("web"),
                        image: s("nginx"),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: s(""),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                }),
            }),
            revision_history_limit: Some(10),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            replicas: Some(0),
            observed_generation: Some(3),
            ..Default::default()
        }),
    }
}

#[test]
fn decodes_deployment_int_or_string_and_pointer_zeros() {
    let got = decode(&envelope("apps/v1", "Deployment", &deployment())).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                },
                "revisionHistoryLimit": 10
            },
            // DeploymentStatus.replicas is a non-pointer omitempty int32: 0 is dropped.
            "status": {"observedGeneration": 3}
        })
    );
}

#[test]
fn decodes_namespace_configmap_and_job() {
    let ns = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team-a"),
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: Some(core::NamespaceStatus {
            phase: s("Active"),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decode(&envelope("v1", "Namespace", &ns)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        })
    );

    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: s("cfg"),
            ..Default::default()
        }),
        immutable: None,
        data: labels(&[("a.conf", "x=1\n"), ("blank", "")]),
        binary_data: [("bin".to_owned(), b"\x00\xff".to_vec())].into(),
    };
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &cm)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"a.conf": "x=1\n", "blank": ""},
            "binaryData": {"bin": "AP8="}
        })
    );

    let job = batch::Job {
        metadata: Some(meta::ObjectMeta {
            name: s("pi"),
            ..Default::default()
        }),
        spec: Some(batch::JobSpec {
            backoff_limit: Some(0),
            completions: Some(1),
            suspend: Some(false),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta::default()),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("pi"),
                        image: s("perl"),
                        command: vec!["perl".into(), "-e".into(), String::new()],
                        ..Default::default()
                    }],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decode(&envelope("batch/v1", "Job", &job)).unwrap(),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pi"},
            "spec": {
                "backoffLimit": 0,
                "completions": 1,
                "suspend": false,
                "template": {
                    "metadata": {},
                    "spec": {
                        // Empty strings inside lists are values, not omitted zeros.
                        "containers": [{"name": "pi", "image": "perl", "command": ["perl", "-e", ""]}],
                        "restartPolicy": "Never"
                    }
                }
            }
        })
    );
}

#[test]
fn decodes_status_and_delete_options() {
    let status = meta::Status {
        metadata: Some(meta::ListMeta::default()),
        status: s("Failure"),
        message: s("pods \"x\" not found"),
        reason: s("NotFound"),
        details: Some(meta::StatusDetails {
            name: s("x"),
            kind: s("pods"),
            ..Default::default()
        }),
        code: Some(404),
    };
    assert_eq!(
        decode(&envelope("v1", "Status", &status)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": "pods \"x\" not found",
            "reason": "NotFound",
            "details": {"name": "x", "kind": "pods"},
            "code": 404
        })
    );

    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        preconditions: Some(meta::Preconditions {
            uid: s("1234"),
            resource_version: None,
        }),
        ..Default::default()
    };
    for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
        assert_eq!(
            decode(&envelope(api_version, "DeleteOptions", &opts)).unwrap(),
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "propagationPolicy": "Foreground",
                "preconditions": {"uid": "1234"}
            })
        );
    }
}

#[test]
fn decodes_list_items_without_type_meta() {
    let list = core::PodList {
        metadata: Some(meta::ListMeta {
            resource_version: s("42"),
            r#continue: s(""),
            ..Default::default()
        }),
        items: vec![
            core::Pod {
                metadata: Some(meta::ObjectMeta {
                    name: s("a"),
                    ..Default::default()
                }),
                ..Default::default()
            },
            core::Pod {
                metadata: Some(meta::ObjectMeta {
                    name: s("b"),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    };
    assert_eq!(
        decode(&envelope("v1", "PodList", &list)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": "42"},
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]
        })
    );
}

#[test]
fn encodes_pod_readable_by_k8s_pb() {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "labels": {"app": "web"},
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "managedFields": [{
                "manager": "kubectl",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
            }]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "nginx",
                "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "250m"}},
                "env": [{"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw", "optional": false}}}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "web-config", "defaultMode": 420}}],
            "terminationGracePeriodSeconds": 0
        }
    });
    let (api_version, kind, raw) = unwrap(&encode(&pod).unwrap());
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
    let got = core::Pod::decode(raw.as_slice()).unwrap();

    let meta = got.metadata.unwrap();
    assert_eq!(meta.name.as_deref(), Some("web"));
    assert_eq!(meta.labels, labels(&[("app", "web")]));
    assert_eq!(
        meta.creation_timestamp.unwrap().seconds,
        Some(1_704_164_645)
    );
    let mf = &meta.managed_fields[0];
    let fields: Value =
        serde_json::from_slice(mf.fields_v1.as_ref().unwrap().raw.as_ref().unwrap()).unwrap();
    assert_eq!(
        fields,
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}})
    );
    assert_eq!(mf.api_version.as_deref(), Some("v1"));

    let spec = got.spec.unwrap();
    assert_eq!(spec.termination_grace_period_seconds, Some(0));
    let c = &spec.containers[0];
    assert_eq!(c.ports[0].container_port, Some(80));
    assert_eq!(
        c.resources.as_ref().unwrap().requests["cpu"]
            .string
            .as_deref(),
        Some("250m")
    );
    // Inline (embedded) Go structs are nested messages on the wire.
    let key_ref = c.env[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        key_ref
            .local_object_reference
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("creds")
    );
    assert_eq!(key_ref.optional, Some(false));
    let probe = c.liveness_probe.as_ref().unwrap();
    let get = probe.handler.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(
        get.port,
        Some(IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: s("http")
        })
    );
    assert_eq!(probe.period_seconds, Some(5));
    let vol = &spec.volumes[0];
    let cm = vol
        .volume_source
        .as_ref()
        .unwrap()
        .config_map
        .as_ref()
        .unwrap();
    assert_eq!(
        cm.local_object_reference.as_ref().unwrap().name.as_deref(),
        Some("web-config")
    );
    assert_eq!(cm.default_mode, Some(420));
}

#[test]
fn encodes_deployment_secret_and_delete_options_readable_by_k8s_pb() {
    let (_, _, raw) = unwrap(
        &encode(&json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}
            }
        }))
        .unwrap(),
    );
    let d = apps::Deployment::decode(raw.as_slice()).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(0));
    let ru = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        ru.max_surge,
        Some(IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: s("25%")
        })
    );
    assert_eq!(
        ru.max_unavailable,
        Some(IntOrString {
            r#type: Some(0),
            int_val: Some(1),
            str_val: s("")
        })
    );

    let (_, kind, raw) = unwrap(
        &encode(&json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "type": "Opaque",
            "data": {"key": "AAEC/w=="},
            "stringData": {"user": "admin"}
        }))
        .unwrap(),
    );
    assert_eq!(kind, "Secret");
    let secret = core::Secret::decode(raw.as_slice()).unwrap();
    assert_eq!(secret.data["key"], vec![0u8, 1, 2, 255]);
    assert_eq!(secret.string_data["user"], "admin");

    let bytes = encode(&json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Background",
        "dryRun": ["All"]
    }))
    .unwrap();
    let (api_version, kind, raw) = unwrap(&bytes);
    assert_eq!(
        (api_version.as_str(), kind.as_str()),
        ("meta.k8s.io/v1", "DeleteOptions")
    );
    let opts = meta::DeleteOptions::decode(raw.as_slice()).unwrap();
    assert_eq!(opts.grace_period_seconds, Some(0));
    assert_eq!(opts.propagation_policy.as_deref(), Some("Background"));
    assert_eq!(opts.dry_run, vec!["All".to_owned()]);
}

#[test]
fn watch_frames_match_the_kubernetes_stream_format() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "resourceVersion": "7"}});
    let frame = encode_watch_event("ADDED", &pod).unwrap();
    // 4-byte big-endian length, then a bare WatchEvent (no magic, no envelope).
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    let event = meta::WatchEvent::decode(&frame[4..]).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    // The object inside is a complete envelope.
    let raw = event.object.unwrap().raw.unwrap();
    let (api_version, kind, pod_raw) = unwrap(&raw);
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Pod"));
    let decoded = core::Pod::decode(pod_raw.as_slice()).unwrap();
    assert_eq!(
        decoded.metadata.unwrap().resource_version.as_deref(),
        Some("7")
    );

    // Frames split off a stream and decode back.
    let mut stream = frame.clone();
    let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410, "reason": "Expired"});
    stream.extend(encode_watch_event("ERROR", &status).unwrap());
    let (first, rest) = split_watch_frame(&stream).unwrap();
    assert_eq!(
        decode_watch_event(first).unwrap(),
        ("ADDED".to_owned(), pod.clone())
    );
    let (second, rest) = split_watch_frame(rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        decode_watch_event(second).unwrap(),
        ("ERROR".to_owned(), status)
    );
    assert!(split_watch_frame(&frame[..frame.len() - 1]).is_none());

    // A frame written by k8s-pb decodes too.
    let go_event = meta::WatchEvent {
        r#type: s("DELETED"),
        object: Some(RawExtension {
            raw: Some(envelope("v1", "Pod", &core::Pod::default())),
        }),
    };
    assert_eq!(
        decode_watch_event(&go_event.encode_to_vec()).unwrap(),
        (
            "DELETED".to_owned(),
            json!({"apiVersion": "v1", "kind": "Pod"})
        )
    );
}
