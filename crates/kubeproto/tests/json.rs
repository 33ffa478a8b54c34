//! JSON -> protobuf -> JSON round trips, error reporting, and robustness on bad input.

use rkube_kubeproto::{EncodeOptions, ProtoError, decode, encode, encode_with, supports};
use serde_json::{Value, json};

fn round_trip(obj: Value) {
    let bytes = encode(&obj).unwrap_or_else(|e| panic!("encode {}: {e}", obj["kind"]));
    let back = decode(&bytes).unwrap_or_else(|e| panic!("decode {}: {e}", obj["kind"]));
    assert_eq!(back, obj, "round trip of {}", obj["kind"]);
}

#[test]
fn round_trips_workloads() {
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "default",
            "uid": "6c1b2a8e-0000-4000-8000-000000000001",
            "resourceVersion": "1234",
            "generation": 2,
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "deletionTimestamp": "2024-01-02T03:05:05Z",
            "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web", "tier": ""},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": "6c1b2a8e-0000-4000-8000-000000000002",
                "controller": true,
                "blockOwnerDeletion": true
            }],
            "finalizers": ["example.com/guard"],
            "managedFields": [{
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
            }]
        },
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"], "restartPolicy": "Always"}],
            "containers": [{
                "name": "web",
                "image": "nginx:1.27",
                "args": ["-g", "daemon off;"],
                "workingDir": "/srv",
                "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}, {"containerPort": 0, "hostIP": "0.0.0.0"}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "EMPTY"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw", "optional": true}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg", "optional": false}}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true, "subPath": "x"}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP", "httpHeaders": [{"name": "X", "value": ""}]}, "initialDelaySeconds": 3, "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": "http"}, "failureThreshold": 3},
                "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {
                    "privileged": false,
                    "runAsUser": 0,
                    "runAsNonRoot": false,
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"}
                }
            }],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420, "items": [{"key": "a", "path": "a.conf", "mode": 256}]}},
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}, {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": ""}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": 0,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "default",
            "automountServiceAccountToken": false,
            "nodeName": "node-1",
            "hostNetwork": true,
            "securityContext": {"fsGroup": 0, "runAsGroup": 1000, "supplementalGroups": [1, 2, 3], "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
            "imagePullSecrets": [{"name": "regcred"}],
            "hostname": "web-0",
            "subdomain": "web",
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, "topologyKey": "kubernetes.io/hostname"}}]}},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0,
            "enableServiceLinks": false,
            "preemptionPolicy": "PreemptLowerPriority",
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
            "os": {"name": "linux"}
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-02T03:04:06Z"}],
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": "10.244.0.5",
            "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
            "startTime": "2024-01-02T03:04:05Z",
            "containerStatuses": [{
                "name": "web",
                "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}},
                "lastState": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2024-01-02T03:00:00Z", "finishedAt": "2024-01-02T03:01:00Z"}},
                "ready": false,
                "restartCount": 0,
                "image": "nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:0000",
                "containerID": "containerd://abc",
                "started": true
            }],
            "qosClass": "Burstable"
        }
    }));

    round_trip(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {}}]}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 3,
            "updatedReplicas": 3,
            "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-01-02T03:04:05Z", "lastTransitionTime": "2024-01-02T03:04:05Z", "reason": "MinimumReplicasAvailable", "message": "ok"}]
        }
    }));

    round_trip(json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "suspend": false,
            "successfulJobsHistoryLimit": 0,
            "jobTemplate": {"spec": {
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 0,
                "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 42]}}]},
                "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "job", "image": "busybox"}]}}
            }}
        }
    }));

    round_trip(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}},
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "resources": {"requests": {"storage": "10Gi"}}}
            }],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}
        }
    }));
}

#[test]
fn round_trips_networking_rbac_and_config() {
    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}, {"port": 443, "targetPort": 8443}],
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "allocateLoadBalancerNodePorts": false,
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}}
    }));

    round_trip(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": false, "serving": true, "terminating": false}, "nodeName": "node-1", "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"}}],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}]
    }));

    round_trip(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "reader"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}
        ],
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]}
    }));

    round_trip(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read", "namespace": "dev"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "dev"}, {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]
    }));

    round_trip(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["example.com"], "secretName": "tls"}],
            "rules": [{"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]
        }
    }));

    round_trip(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"port": "dns-tcp", "endPort": 0}], "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}]
        }
    }));

    round_trip(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"app.yaml": "a: 1\n", "empty": ""},
        "binaryData": {"blob": "AAEC/w=="},
        "immutable": true
    }));

    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tls"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "LS0tLQ==", "tls.key": ""}
    }));

    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": "2024-01-02T03:04:05Z"}]}
    }));
}

#[test]
fn round_trips_events_leases_lists_and_crds() {
    round_trip(json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web.17a", "namespace": "default"},
        "eventTime": "2024-01-02T03:04:05.123456Z",
        "series": {"count": 2, "lastObservedTime": "2024-01-02T03:04:06.000001Z"},
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "action": "Pulling",
        "reason": "Pulling",
        "regarding": {"kind": "Pod", "name": "web-0", "namespace": "default", "fieldPath": "spec.containers{web}"},
        "note": "Pulling image",
        "type": "Normal"
    }));

    round_trip(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
        "spec": {"holderIdentity": "node-1_abc", "leaseDurationSeconds": 15, "acquireTime": "2024-01-02T03:04:05.000000Z", "renewTime": "2024-01-02T03:04:20.500000Z", "leaseTransitions": 0}
    }));

    round_trip(json!({
        "apiVersion": "v1",
        "kind": "NamespaceList",
        "metadata": {"resourceVersion": "99", "continue": "abc", "remainingItemCount": 0},
        "items": [{"metadata": {"name": "default"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}]
    }));

    round_trip(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A widget",
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "properties": {
                                "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10, "default": 1},
                                "mode": {"type": "string", "enum": ["fast", "slow"], "pattern": "^[a-z]+$"},
                                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
                            },
                            "additionalProperties": false,
                            "x-kubernetes-validations": [{"rule": "self.replicas <= 10", "message": "too many"}]
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }}
            }],
            "conversion": {"strategy": "None"}
        },
        "status": {"acceptedNames": {"plural": "widgets", "kind": "Widget"}, "storedVersions": ["v1"]}
    }));

    round_trip(json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "deployments.apps \"x\" not found",
        "reason": "NotFound",
        "details": {"name": "x", "group": "apps", "kind": "deployments", "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "spec.replicas"}]},
        "code": 404
    }));

    round_trip(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {},
        "spec": {"user": "jane", "groups": ["dev"], "extra": {"scopes": ["a", "b"]}, "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "dev"}},
        "status": {"allowed": false, "reason": "no rule"}
    }));

    round_trip(json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 3},
        "status": {"replicas": 0, "selector": "app=web"}
    }));
}

#[test]
fn encodes_quantities_given_as_numbers() {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"cpu": 2, "memory": "1Gi", "pods": 10.5}}
    });
    let back = decode(&encode(&obj).unwrap()).unwrap();
    assert_eq!(
        back["spec"]["hard"],
        json!({"cpu": "2", "memory": "1Gi", "pods": "10.5"})
    );
}

#[test]
fn time_fractions_follow_kubernetes() {
    // metav1.Time keeps whole seconds; offsets are normalised to UTC.
    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "creationTimestamp": "2024-01-02T05:04:05.999+02:00"}});
    let back = decode(&encode(&obj).unwrap()).unwrap();
    assert_eq!(
        back["metadata"]["creationTimestamp"],
        "2024-01-02T03:04:05Z"
    );
}

fn err(obj: Value) -> ProtoError {
    encode(&obj).expect_err("encoding should fail")
}

#[test]
fn encode_errors_name_the_field() {
    let pod = |port: Value| json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": port}]}]}});
    assert_eq!(
        err(pod(json!("80"))),
        ProtoError::TypeMismatch {
            path: "spec.containers[0].ports[1].containerPort".into(),
            expected: "an integer",
            found: "a string"
        }
    );
    assert!(matches!(
        err(pod(json!(1.5))),
        ProtoError::InvalidValue { path, .. } if path == "spec.containers[0].ports[1].containerPort"
    ));
    assert!(matches!(
        err(pod(json!(1_i64 << 40))),
        ProtoError::InvalidValue { path, .. } if path == "spec.containers[0].ports[1].containerPort"
    ));

    let unknown = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a", "imagePullPolicyy": "Always"}]}});
    assert_eq!(
        err(unknown.clone()),
        ProtoError::UnknownField {
            path: "spec.containers[0].imagePullPolicyy".into()
        }
    );
    let lenient = encode_with(
        &unknown,
        EncodeOptions {
            drop_unknown_fields: true,
        },
    )
    .unwrap();
    assert_eq!(
        decode(&lenient).unwrap(),
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a"}]}})
    );

    assert_eq!(
        err(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": 1}})),
        ProtoError::TypeMismatch {
            path: "data[k]".into(),
            expected: "a string",
            found: "a number"
        }
    );
    assert!(matches!(
        err(json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}})),
        ProtoError::InvalidValue { path, .. } if path == "data[k]"
    ));
    assert!(matches!(
        err(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}})),
        ProtoError::InvalidValue { path, .. } if path == "metadata.creationTimestamp"
    ));
    assert_eq!(
        err(json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": {}}})),
        ProtoError::TypeMismatch {
            path: "spec.containers".into(),
            expected: "an array",
            found: "an object"
        }
    );
    assert_eq!(
        err(json!({"apiVersion": "example.com/v1", "kind": "Widget"})),
        ProtoError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        }
    );
    assert_eq!(
        err(json!({"kind": "Pod"})),
        ProtoError::MissingTypeMeta("apiVersion")
    );
    assert_eq!(
        err(json!({"apiVersion": "v1"})),
        ProtoError::MissingTypeMeta("kind")
    );
    assert!(matches!(
        err(json!([1, 2])),
        ProtoError::TypeMismatch { .. }
    ));
}

#[test]
fn decode_errors_name_the_field() {
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(ProtoError::BadMagic));
    assert_eq!(decode(b""), Err(ProtoError::BadMagic));

    let bytes = encode(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"name": "p", "containerPort": 81}]}]}
    }))
    .unwrap();
    // Cutting the data anywhere fails cleanly (or, at a field boundary, decodes less).
    for cut in 0..bytes.len() {
        let _ = decode(&bytes[..cut]);
    }
    // Rewrite the last containerPort (varint 81) into a length-delimited field of
    // impossible length: the error points at it.
    let at = bytes.iter().rposition(|&b| b == 81).unwrap();
    assert_eq!(bytes[at - 1], 3 << 3); // containerPort key: tag 3, varint
    let mut bad = bytes.clone();
    bad[at - 1] = (3 << 3) | 2;
    bad[at] = 0x7f;
    match decode(&bad) {
        Err(ProtoError::Malformed { path, .. }) => {
            assert_eq!(path, "spec.containers[0].ports[1].containerPort")
        }
        other => panic!("unexpected {other:?}"),
    }

    let unknown_kind = {
        let mut envelope = b"k8s\0".to_vec();
        // Unknown{typeMeta{apiVersion "x/v1", kind "Thing"}}
        envelope.extend([
            0x0a, 0x0d, 0x0a, 0x04, b'x', b'/', b'v', b'1', 0x12, 0x05, b'T', b'h', b'i', b'n',
            b'g',
        ]);
        envelope
    };
    assert_eq!(
        decode(&unknown_kind),
        Err(ProtoError::UnknownKind {
            api_version: "x/v1".into(),
            kind: "Thing".into()
        })
    );
}

#[test]
fn decode_skips_unknown_fields_and_accepts_packed_scalars() {
    // PodSecurityContext.supplementalGroups (tag 4, int64) packed, plus an unknown tag 999.
    let mut psc = vec![0x22, 0x03, 0x01, 0x02, 0x03];
    psc.extend([0xb8, 0x3e, 0x05]); // tag 999 varint 5
    let mut spec = vec![0x72, psc.len() as u8]; // PodSpec.securityContext = tag 14
    spec.extend(&psc);
    let mut pod = vec![0x12, spec.len() as u8]; // Pod.spec = tag 2
    pod.extend(&spec);
    let mut bytes = b"k8s\0".to_vec();
    let type_meta = [0x0a, 0x02, b'v', b'1', 0x12, 0x03, b'P', b'o', b'd'];
    bytes.extend([0x0a, type_meta.len() as u8]);
    bytes.extend(type_meta);
    bytes.extend([0x12, pod.len() as u8]);
    bytes.extend(&pod);
    assert_eq!(
        decode(&bytes).unwrap(),
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"securityContext": {"supplementalGroups": [1, 2, 3]}}})
    );
}

#[test]
fn supports_builtin_kinds_only() {
    for (av, kind) in [
        ("v1", "Pod"),
        ("v1", "PodList"),
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Status"),
        ("v1", "DeleteOptions"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "DeploymentList"),
        ("batch/v1", "Job"),
        ("autoscaling/v1", "Scale"),
        ("policy/v1", "Eviction"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("apiregistration.k8s.io/v1", "APIService"),
    ] {
        assert!(supports(av, kind), "{av} {kind}");
    }
    assert!(!supports("example.com/v1", "Widget"));
    assert!(!supports("v1", "Table"));
    assert!(!supports("apps/v1", "Pod"));
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn never_panics_on_random_or_damaged_input() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let valid = encode(&json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"a": "b"}, "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 1}]}]}},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%"}}}
    }))
    .unwrap();
    // Random bytes behind a valid magic and envelope prefix.
    for _ in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut bytes = valid[..4 + (rng.next() % 24) as usize].to_vec();
        bytes.extend((0..len).map(|_| rng.next() as u8));
        let _ = decode(&bytes);
        let _ = rkube_kubeproto::decode_watch_event(&bytes[4..]);
    }
    // Bit flips and truncations of a valid object.
    for _ in 0..20_000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + rng.next() % 3 {
            let i = (rng.next() as usize) % bytes.len();
            bytes[i] ^= 1 << (rng.next() % 8);
        }
        bytes.truncate(4 + (rng.next() as usize) % (bytes.len() - 3));
        let _ = decode(&bytes);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // JSONSchemaProps nest without bound; a hostile CRD must not overflow the stack.
    let mut schema = json!({"type": "string"});
    for _ in 0..500 {
        schema = json!({"type": "object", "properties": {"x": schema}});
    }
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]}
    });
    assert!(matches!(encode(&crd), Err(ProtoError::TooDeep { .. })));
}

/// Every place in `v`, as a pointer for `Value::pointer_mut`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

#[test]
fn encode_never_panics_on_wrongly_typed_json() {
    let base = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x", "creationTimestamp": "2024-01-02T03:04:05Z", "labels": {"a": "b"}},
        "spec": {
            "group": "g",
            "versions": [{"name": "v1", "served": true, "schema": {"openAPIV3Schema": {
                "type": "object", "default": {"a": 1}, "minimum": 1.5,
                "properties": {"p": {"type": "string", "items": {"type": "string"}, "additionalProperties": false}}
            }}}]
        }
    });
    let mut places = Vec::new();
    pointers(&base, String::new(), &mut places);
    let replacements = [
        json!(null),
        json!(true),
        json!(1.5),
        json!(-1),
        json!("x"),
        json!([1]),
        json!({"k": "v"}),
    ];
    for place in places.iter().filter(|p| !p.is_empty()) {
        for replacement in &replacements {
            let mut obj = base.clone();
            *obj.pointer_mut(place).unwrap() = replacement.clone();
            if let Ok(bytes) = encode(&obj) {
                decode(&bytes).unwrap_or_else(|e| panic!("{place} = {replacement}: {e}"));
            }
        }
    }
}
