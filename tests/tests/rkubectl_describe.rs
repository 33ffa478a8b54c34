//! `rkubectl describe` against the real kubectl (v1.33) on the same cluster (real etcd,
//! rkube-apiserver, scheduler, controller-manager and the kubelet stand-in): for every kind
//! with a specific describer in kubectl the two outputs must be byte-identical once ages
//! (`5s`, `2m30s`) are masked, and the exit codes must match.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-controller-manager
//! -p rkube-scheduler --bins`.

mod support;

use std::time::Duration;
use support::rkubectl::*;
use support::*;

type Cluster = ControlPlane;

fn cluster() -> Cluster {
    Cluster::start(NODE)
}

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: node-0
  labels: {kubernetes.io/hostname: node-0, kubernetes.io/os: linux, node-role.kubernetes.io/worker: \"\"}
  annotations: {node.alpha.kubernetes.io/ttl: \"0\"}
spec:
  podCIDR: 10.244.0.0/24
  podCIDRs: [10.244.0.0/24]
status:
  capacity: {cpu: \"8\", memory: 32Gi, pods: \"110\", ephemeral-storage: 100Gi}
  allocatable: {cpu: \"8\", memory: 32Gi, pods: \"110\", ephemeral-storage: 100Gi}
  addresses: [{type: InternalIP, address: 10.0.0.10}, {type: Hostname, address: node-0}]
  conditions: [{type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}]
  nodeInfo: {machineID: m1, systemUUID: u1, bootID: b1, kernelVersion: 6.1.0, osImage: Debian GNU/Linux 12,
    containerRuntimeVersion: containerd://1.6.20, kubeletVersion: v1.33.0, kubeProxyVersion: v1.33.0,
    operatingSystem: linux, architecture: amd64}
";

const OBJECTS: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: web}
  annotations: {owner: platform}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: shop
  labels: {app: web}
data:
  color: blue
  greeting: |
    hello
    world
binaryData:
  blob: AAECAw==
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
type: Opaque
data:
  password: c2VjcmV0
  user: YWRtaW4=
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: robot
  namespace: shop
  labels: {app: web}
imagePullSecrets:
- name: pull-a
- name: pull-b
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: standard
  resources:
    requests: {storage: 1Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      serviceAccountName: robot
      containers:
      - name: busybox
        image: busybox:1.36
        command: [httpd, -f]
        args: [-p, "8080"]
        ports:
        - {name: http, containerPort: 8080}
        env:
        - {name: MODE, value: prod}
        - name: COLOR
          valueFrom:
            configMapKeyRef: {name: cfg, key: color}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 200m, memory: 128Mi}
        readinessProbe:
          httpGet: {path: /, port: 8080}
        volumeMounts:
        - {name: config, mountPath: /etc/web, readOnly: true}
      volumes:
      - name: config
        configMap: {name: cfg}
      - name: scratch
        emptyDir: {}
      nodeSelector: {kubernetes.io/os: linux}
      tolerations:
      - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: solo
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: solo}
  template:
    metadata:
      labels: {app: solo}
    spec:
      containers:
      - {name: main, image: busybox:1.36}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: shop
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
        command: [sleep, infinity]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: busybox:1.36
        volumeMounts:
        - {name: store, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: store
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 2Gi}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  namespace: shop
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox:1.36, command: ["true"]}
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: shop
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - {name: main, image: busybox:1.36}
"#;

const MORE: &str = r#"apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lock, namespace: shop, labels: {app: web}}
spec: {holderIdentity: web-1, leaseDurationSeconds: 15}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules:
- apiGroups: [""]
  resources: [pods, configmaps]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments/scale]
  resourceNames: [web]
  verbs: [update]
- apiGroups: [""]
  resources: [pods]
  verbs: [watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-viewer}
rules:
- nonResourceURLs: [/healthz, /version]
  verbs: [get]
- apiGroups: ["", apps]
  resources: [services, replicasets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: ServiceAccount, name: robot, namespace: shop}
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: shop-viewer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shop-viewer}
subjects:
- {kind: Group, name: viewers, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: example.com/nfs
parameters: {server: nfs.local}
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
mountOptions: [hard, nfsvers=4.1]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec:
  controller: example.com/ingress
  parameters: {apiGroup: k8s.example.com, kind: Params, name: p1}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: /data/pv1, type: DirectoryOrCreate}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop, annotations: {a: b}}
spec:
  ingressClassName: nginx
  tls: [{hosts: [shop.example.com], secretName: tls}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}
"#;

/// A pod that exercises every part of the pod describer: init and sidecar containers, ports,
/// probes, environment from fields, resources and references, mounts, most volume kinds,
/// readiness gates, tolerations, topology spread and long annotations.
const RICH: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: rich
  namespace: shop
  labels: {app: rich}
  annotations:
    long: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    multi: "line one\nline two\n"
    short: v
spec:
  nodeName: node-0
  priority: 100
  securityContext:
    seccompProfile: {type: RuntimeDefault}
  readinessGates: [{conditionType: example.com/ready}]
  initContainers:
  - name: init
    image: busybox:1.36
    command: [sh, -c, "echo hi"]
  - name: sidecar
    image: busybox:1.36
    restartPolicy: Always
    resources: {requests: {cpu: 50m, memory: 16Mi}}
  containers:
  - name: app
    image: busybox:1.36
    ports:
    - {containerPort: 80, name: http}
    - {containerPort: 53, protocol: UDP, hostPort: 5353}
    env:
    - {name: MULTI, value: "a\nb"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: TEAM
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
    - name: CPU_LIMIT
      valueFrom: {resourceFieldRef: {resource: limits.cpu}}
    - name: MEM_REQ
      valueFrom: {resourceFieldRef: {resource: requests.memory, divisor: 1Mi}}
    - name: PASS
      valueFrom: {secretKeyRef: {name: creds, key: password, optional: true}}
    envFrom:
    - configMapRef: {name: cfg}
    - prefix: S_
      secretRef: {name: creds}
    resources:
      requests: {cpu: 250m, memory: 100Mi, ephemeral-storage: 1Gi}
      limits: {memory: 200Mi}
    livenessProbe:
      exec: {command: [cat, /tmp/ok]}
      initialDelaySeconds: 5
    startupProbe:
      tcpSocket: {port: 80}
    readinessProbe:
      httpGet: {path: /healthz, port: http, scheme: HTTPS}
    volumeMounts:
    - {name: secret, mountPath: /etc/secret, readOnly: true}
    - {name: data, mountPath: /data, subPath: app}
    - {name: host, mountPath: /host}
    - {name: info, mountPath: /etc/info}
    - {name: proj, mountPath: /etc/proj}
  volumes:
  - name: secret
    secret: {secretName: creds}
  - name: data
    persistentVolumeClaim: {claimName: data}
  - name: host
    hostPath: {path: /var/log}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu}}
  - name: proj
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap: {name: kube-root-ca.crt}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
      - secret: {name: creds, optional: true}
  - name: mem
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: eph
    ephemeral:
      volumeClaimTemplate:
        metadata: {labels: {a: b}}
        spec:
          accessModes: [ReadWriteOnce]
          storageClassName: fast
          resources: {requests: {storage: 1Gi}}
  tolerations:
  - {operator: Exists}
  - {key: k1, operator: Exists, effect: NoSchedule}
  - {key: k2, operator: Equal, value: v2, effect: NoExecute, tolerationSeconds: 60}
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: rich}}
  - maxSkew: 2
    topologyKey: host
    whenUnsatisfiable: ScheduleAnyway
"#;

/// The status a kubelet would report for RICH: finished init, running sidecar, an app
/// container crash-looping after an OOM kill.
const RICH_STATUS: &str = r#"{"status": {"initContainerStatuses": [
  {"name": "init", "image": "busybox:1.36", "imageID": "sha256:abc", "containerID": "containerd://i1", "ready": true, "restartCount": 0,
   "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}},
  {"name": "sidecar", "image": "busybox:1.36", "imageID": "sha256:abc", "containerID": "containerd://s1", "ready": true, "restartCount": 0, "started": true,
   "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}],
 "containerStatuses": [
  {"name": "app", "image": "busybox:1.36", "imageID": "sha256:def", "containerID": "containerd://a1", "ready": false, "restartCount": 3,
   "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
   "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled", "message": "killed", "startedAt": "2026-01-01T00:00:03Z", "finishedAt": "2026-01-01T00:00:04Z"}}}],
 "conditions": [{"type": "example.com/ready", "status": "False"}]}}"#;

/// Events about node-0 as a controller (by uid) and a kubelet (by name as uid) record them.
fn node_events_yaml(uid: &str) -> String {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        "apiVersion: v1
kind: Event
metadata: {{name: node-0.byuid, namespace: default}}
involvedObject: {{kind: Node, name: node-0, uid: {uid}}}
reason: ByUID
message: by uid
type: Normal
count: 1
firstTimestamp: \"{now}\"
lastTimestamp: \"{now}\"
source: {{component: node-controller}}
---
apiVersion: v1
kind: Event
metadata: {{name: node-0.byname, namespace: default}}
involvedObject: {{kind: Node, name: node-0, uid: node-0}}
reason: ByName
message: by name
type: Normal
count: 1
firstTimestamp: \"{now}\"
lastTimestamp: \"{now}\"
source: {{component: kubelet, host: node-0}}
"
    )
}

/// Events on the ConfigMap the controllers never write: one seen three times with a host in its
/// source, one new-style with only an event time and a reporting controller.
fn events_yaml(uid: &str) -> String {
    let now = jiff::Timestamp::now();
    let ago = |mins: i64| {
        let t = now - jiff::SignedDuration::from_mins(mins);
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    format!(
        "apiVersion: v1
kind: Event
metadata: {{name: cfg.reload, namespace: shop}}
involvedObject: {{kind: ConfigMap, name: cfg, namespace: shop, uid: {uid}, apiVersion: v1}}
reason: Reloaded
message: \"  config reloaded  \"
type: Warning
count: 3
firstTimestamp: \"{first}\"
lastTimestamp: \"{last}\"
source: {{component: cfg-watcher, host: node-0}}
---
apiVersion: v1
kind: Event
metadata: {{name: cfg.seen, namespace: shop}}
involvedObject: {{kind: ConfigMap, name: cfg, namespace: shop, uid: {uid}, apiVersion: v1, fieldPath: data.color}}
reason: Seen
message: seen
type: Normal
eventTime: \"{event_time}\"
reportingComponent: watcher-ctl
reportingInstance: watcher-1
action: Observe
",
        first = ago(10),
        last = ago(5),
        event_time = now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    )
}

/// Waits until `jsonpath` of `kubectl get target` prints `want`.
fn wait_for(c: &Cluster, target: &[&str], jsonpath: &str, want: &str) {
    let mut args: Vec<&str> = vec!["get"];
    args.extend(target);
    let jp = format!("jsonpath={jsonpath}");
    args.extend(["-o", &jp]);
    c.env.until(
        &args,
        &format!("{target:?} {jsonpath} = {want}"),
        Duration::from_secs(90),
        |out| out == want,
        || c.controllers.log_tail(),
    );
}

#[test]
fn describe_matches_kubectl_for_every_kind() {
    let c = cluster();
    let env = &c.env;
    env.ok(&["create", "-f", &env.manifest("objects.yaml", OBJECTS)]);
    env.ok(&["create", "-f", &env.manifest("more.yaml", MORE)]);
    let cfg = env.json(&["get", "configmap", "cfg", "-n", "shop"]);
    env.ok(&["create", "-f", &env.manifest("events.yaml", &events_yaml(meta(&cfg, "uid")))]);

    // Compare only once the controllers have settled, so both clients see the same state.
    wait_for(&c, &["deployment", "web", "-n", "shop"], "{.status.availableReplicas}", "2");
    wait_for(&c, &["replicaset", "solo", "-n", "shop"], "{.status.readyReplicas}", "1");
    wait_for(&c, &["daemonset", "agent", "-n", "shop"], "{.status.numberAvailable}", "1");
    wait_for(&c, &["statefulset", "db", "-n", "shop"], "{.status.readyReplicas}", "1");
    wait_for(&c, &["job", "once", "-n", "shop"], "{.status.succeeded}", "1");
    wait_for(&c, &["pdb", "web", "-n", "shop"], "{.status.currentHealthy}", "2");
    wait_for(&c, &["endpointslices", "-n", "shop", "-l", "kubernetes.io/service-name=web"], "{..ready}", "true true");
    wait_for(&c, &["hpa", "web", "-n", "shop"], "{.status.conditions[0].type}", "AbleToScale");

    // A rollout, so the Deployment has an old ReplicaSet next to the new one.
    env.ok(&["set", "image", "deployment/web", "busybox=busybox:1.37", "-n", "shop"]);
    env.ok(&["rollout", "status", "deployment/web", "-n", "shop", "--timeout=90s"]);
    env.until(
        &["get", "pods", "-n", "shop", "-l", "app=web", "-o", "name"],
        "old web pods gone",
        Duration::from_secs(90),
        |out| out.lines().count() == 2,
        || c.controllers.log_tail(),
    );
    wait_for(&c, &["pdb", "web", "-n", "shop"], "{.status.currentHealthy}", "2");
    wait_for(&c, &["endpointslices", "-n", "shop", "-l", "kubernetes.io/service-name=web"], "{..ready}", "true true");

    // The rich pod gets its status once the kubelet stand-in has marked it running.
    env.ok(&["create", "-f", &env.manifest("rich.yaml", RICH)]);
    wait_for(&c, &["pod", "rich", "-n", "shop"], "{.status.phase}", "Running");
    env.ok(&["patch", "pod", "rich", "-n", "shop", "--subresource=status", "--type=merge", "-p", RICH_STATUS]);
    let node = env.json(&["get", "node", "node-0"]);
    env.ok(&["create", "-f", &env.manifest("node-events.yaml", &node_events_yaml(meta(&node, "uid")))]);

    let web_pod = env.ok(&["get", "pods", "-n", "shop", "-l", "app=web", "-o", "name"]);
    let web_pod = web_pod.lines().next().unwrap_or_default();
    let cases: Vec<Vec<&str>> = vec![
        vec!["deployment", "web"],
        vec!["replicaset", "solo"],
        vec!["rs", "-l", "app=web"],
        vec!["daemonset", "agent"],
        vec!["statefulset", "db"],
        vec!["job", "once"],
        vec!["cronjob", "nightly"],
        vec!["namespace", "shop"],
        vec!["configmap", "cfg"],
        vec!["secret", "creds"],
        vec!["serviceaccount", "robot"],
        vec!["serviceaccount", "default"],
        vec!["pvc", "data"],
        vec!["pvc", "store-db-0"],
        vec!["pod", "db-0"],
        vec!["pod", "rich"],
        vec!["pods", "-l", "batch.kubernetes.io/job-name=once"],
        vec![web_pod],
        vec!["service", "web"],
        vec!["endpointslices"],
        vec!["pdb", "web"],
        vec!["role", "reader"],
        vec!["rolebinding", "reader"],
        vec!["ingress", "web"],
        vec!["hpa", "web"],
        vec!["lease", "lock"],
        vec!["controllerrevisions"],
        // Several objects at once, a name prefix, a selector, events turned off.
        vec!["rs"],
        vec!["deploy", "we"],
        vec!["pods", "-l", "app=web"],
        vec!["configmap", "cfg", "--show-events=false"],
        // Errors: same message, same exit code.
        vec!["deployment", "nope"],
    ];
    for case in &cases {
        let mut args = vec!["describe"];
        args.extend(case);
        args.extend(["-n", "shop"]);
        same_bytes(env, &args);
    }
    for case in [
        &["node", "node-0"][..],
        &["nodes"],
        &["endpoints", "kubernetes"],
        &["service", "kubernetes"],
        &["clusterrole", "shop-viewer"],
        &["clusterrolebinding", "shop-viewer"],
        &["storageclass", "standard"],
        &["ingressclass", "nginx"],
        &["pv", "pv1"],
    ] {
        let mut args = vec!["describe"];
        args.extend(case);
        same_bytes(env, &args);
    }

    // The parts the brief singles out, so a regression reads plainly.
    let d = same_bytes(env, &["describe", "deployment", "web", "-n", "shop"]);
    assert!(d.contains("\n   busybox:\n    Image:      busybox:1.37\n"), "{d}");
    assert!(
        d.contains("\nOldReplicaSets:  web-") && d.contains(" (0/0 replicas created)\nNewReplicaSet:   web-"),
        "{d}"
    );
    let n = same_bytes(env, &["describe", "node", "node-0"]);
    for part in [
        "Lease:\n  HolderIdentity:  node-0\n",
        "Non-terminated Pods:",
        "(6 in total)",
        "  Normal  ByName  ",
        "Allocated resources:",
    ] {
        assert!(n.contains(part), "{part:?} missing from\n{n}");
    }
    let sec = same_bytes(env, &["describe", "secret", "creds", "-n", "shop"]);
    assert!(sec.contains("password:  6 bytes\n") && !sec.contains("secret\n"), "{sec}");
}
