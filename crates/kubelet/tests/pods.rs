//! The kubelet against a real API server and a real containerd: node registration, the pod
//! lifecycle (init containers, env, restarts with back-off, exit reasons, OOM), probes, graceful
//! deletion, and a kubelet restart that must not disturb running containers.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use rkube_client::{Client, DeleteParams, ListParams};
use rkube_testkit::{ApiServer, Etcd, KubeletNode, Registry, images};
use serde_json::json;
use std::time::Duration;

/// One real node: etcd, API server, and the kubelet under test on its own containerd.
struct TestNode {
    node: KubeletNode,
    client: Client,
    api: ApiServer,
    _etcd: Etcd,
}

const NODE: &str = "node-a";

impl TestNode {
    async fn start() -> TestNode {
        Self::start_with(&[]).await
    }

    /// A node whose kubelet gets `extra` flags.
    async fn start_with(extra: &[&str]) -> TestNode {
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start(&etcd).expect("apiserver starts");
        let mut args = vec!["--sync-frequency", "2s", "--log-level", "info,rkube_kubelet=debug"];
        args.extend_from_slice(extra);
        let node = KubeletNode::start(&api, NODE, &args).expect("kubelet starts");
        let client = Client::new(&api.url()).unwrap();
        let node = TestNode { node, client, api, _etcd: etcd };
        node.wait("node Ready", Duration::from_secs(30), || async {
            let n = node.client.api::<Node>(None).get_opt(NODE).await.ok()??;
            let ready = n.status?.conditions?.into_iter().any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(())
        })
        .await;
        node
    }

    /// Polls `f` until it gives Some, failing the test (with the kubelet's log) after `limit`.
    async fn wait<T, F, Fut>(&self, what: &str, limit: Duration, f: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        rkube_testkit::eventually(what, limit, || format!("--- kubelet log ---\n{}", self.node.kubelet.log_tail()), f)
            .await
    }

    async fn create(&self, manifest: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(manifest).unwrap();
        pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
        self.client.api::<Pod>(Some("default")).create(&pod).await.unwrap()
    }

    async fn pod(&self, name: &str) -> Option<Pod> {
        self.client.api::<Pod>(Some("default")).get_opt(name).await.unwrap()
    }

    /// Waits until `pred` holds for the pod, returning it.
    async fn pod_until(&self, name: &str, what: &str, limit: Duration, pred: impl Fn(&Pod) -> bool) -> Pod {
        let what = format!("{what} (pod {name})");
        let last = std::sync::Mutex::new(None);
        let found = tokio::time::timeout(
            limit,
            self.wait(&what, limit + Duration::from_secs(1), || async {
                let p = self.pod(name).await;
                *last.lock().unwrap() = p.as_ref().and_then(|p| p.status.clone());
                p.filter(|p| pred(p))
            }),
        )
        .await;
        match found {
            Ok(p) => p,
            Err(_) => panic!(
                "timed out waiting for {what}; last status {:#?}\n--- kubelet log ---\n{}",
                last.lock().unwrap(),
                self.node.kubelet.log_tail()
            ),
        }
    }

    async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events = self.client.api::<Event>(Some("default")).list(&ListParams::default()).await.unwrap();
        events
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn container(p: &Pod, i: usize) -> k8s_openapi::api::core::v1::ContainerStatus {
    p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.get(i).cloned()).unwrap_or_default()
}

fn condition(p: &Pod, kind: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn busybox(name: &str, script: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_the_node_runs_a_pod_and_deletes_it_gracefully() {
    let node = TestNode::start().await;
    let n = node.client.api::<Node>(None).get(NODE).await.unwrap();
    let status = n.status.unwrap();
    let capacity = status.capacity.unwrap();
    assert!(capacity.contains_key("cpu") && capacity.contains_key("memory") && capacity["pods"].0 == "110");
    let info = status.node_info.unwrap();
    assert!(info.container_runtime_version.starts_with("containerd://"), "{}", info.container_runtime_version);
    assert_eq!(n.metadata.labels.unwrap()["kubernetes.io/hostname"], NODE);
    assert!(status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port > 0);
    let lease = node.client.api::<Lease>(Some("kube-node-lease")).get(NODE).await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(NODE));

    node.create(busybox("hello", "echo hello; trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    let p = node
        .pod_until("hello", "pod Running and Ready", Duration::from_secs(30), |p| {
            phase(p) == "Running" && condition(p, "Ready") == "True"
        })
        .await;
    let st = p.status.clone().unwrap();
    assert!(
        st.pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with(node.node.containerd().subnet().split('.').next().unwrap()))
    );
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    let c = container(&p, 0);
    assert!(c.container_id.as_deref().is_some_and(|id| id.starts_with("containerd://")));
    assert!(c.state.unwrap().running.is_some());
    assert_eq!(c.restart_count, 0);
    let reasons: Vec<String> = node.events("hello").await.into_iter().map(|e| e.0).collect();
    assert!(reasons.contains(&"Created".into()) && reasons.contains(&"Started".into()), "{reasons:?}");

    node.client.api::<Pod>(Some("default")).delete("hello", &DeleteParams::default()).await.unwrap();
    node.wait("pod gone", Duration::from_secs(20), || async { node.pod("hello").await.is_none().then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_restarts_and_back_off_follow_the_restart_policy() {
    let node = TestNode::start().await;
    let mut never_ok = busybox("done", "echo finished; exit 0");
    never_ok["spec"]["restartPolicy"] = json!("Never");
    node.create(never_ok).await;
    let mut never_fail = busybox("fails", "echo 'bad config' > /dev/termination-log; exit 3");
    never_fail["spec"]["restartPolicy"] = json!("Never");
    node.create(never_fail).await;
    node.create(busybox("crasher", "echo boom; exit 2")).await;

    let p = node.pod_until("done", "Succeeded", Duration::from_secs(30), |p| phase(p) == "Succeeded").await;
    let t = container(&p, 0).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));

    let p = node.pod_until("fails", "Failed", Duration::from_secs(30), |p| phase(p) == "Failed").await;
    let t = container(&p, 0).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref(), t.message.as_deref()), (3, Some("Error"), Some("bad config\n")));

    let p = node
        .pod_until("crasher", "CrashLoopBackOff", Duration::from_secs(40), |p| {
            let c = container(p, 0);
            c.restart_count >= 1
                && c.state.and_then(|s| s.waiting).and_then(|w| w.reason).as_deref() == Some("CrashLoopBackOff")
        })
        .await;
    let c = container(&p, 0);
    assert_eq!(c.last_state.unwrap().terminated.unwrap().exit_code, 2);
    assert_eq!(phase(&p), "Running");
    let events = node.events("crasher").await;
    assert!(events.iter().any(|(r, m)| r == "BackOff" && m.contains("restarting failed container main")), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_context_sets_the_user_and_a_read_only_root() {
    let node = TestNode::start().await;
    let mut pod = busybox(
        "locked",
        "id -u > /dev/termination-log; if touch /probe 2>/dev/null; then echo writable; else echo read-only; fi >> /dev/termination-log",
    );
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 65534, "readOnlyRootFilesystem": true});
    node.create(pod).await;
    let p = node.pod_until("locked", "Succeeded", Duration::from_secs(30), |p| phase(p) == "Succeeded").await;
    let t = container(&p, 0).state.unwrap().terminated.unwrap();
    assert_eq!(t.message.as_deref(), Some("65534\nread-only\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_containers_are_oom_killed() {
    let node = TestNode::start().await;
    let mut pod = busybox("hog", "dd if=/dev/zero of=/dev/null bs=64M count=1");
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "16Mi"}});
    node.create(pod).await;
    let p = node.pod_until("hog", "Failed", Duration::from_secs(30), |p| phase(p) == "Failed").await;
    let t = container(&p, 0).state.unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_env_volumes_and_readiness() {
    let node = TestNode::start().await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"color": "blue"}})).unwrap();
    node.client.api::<ConfigMap>(Some("default")).create(&cm).await.unwrap();
    node.create(json!({
        "metadata": {"name": "app", "labels": {"tier": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [{"name": "prepare", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo prepared > /work/init"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                "env": [
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "value": "hi-$(POD)"}
                ],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                "readinessProbe": {"exec": {"command": ["test", "-f", "/work/ready"]}, "periodSeconds": 1}}]
        }
    }))
    .await;
    let p = node.pod_until("app", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    assert_eq!(condition(&p, "Initialized"), "True");
    assert_eq!(condition(&p, "Ready"), "False", "no /work/ready yet");
    let id = container(&p, 0).container_id.unwrap().trim_start_matches("containerd://").to_string();
    let exec = |script: &str| {
        let out = std::process::Command::new("ctr")
            .args([
                "-a",
                node.node.containerd().socket().to_str().unwrap(),
                "-n",
                "k8s.io",
                "tasks",
                "exec",
                "--exec-id",
            ])
            .arg(format!("t{}", rand_suffix()))
            .arg(&id)
            .args(["sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(exec("cat /work/init").trim(), "prepared");
    assert_eq!(exec("echo $COLOR $POD $GREETING").trim(), "blue app hi-app");
    exec("touch /work/ready");
    node.pod_until("app", "Ready", Duration::from_secs(15), |p| condition(p, "Ready") == "True").await;
    exec("rm /work/ready");
    node.pod_until("app", "unready again", Duration::from_secs(15), |p| condition(p, "Ready") == "False").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_restart_keeps_running_containers() {
    let mut node = TestNode::start().await;
    node.create(busybox("steady", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    let p = node.pod_until("steady", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    let id = container(&p, 0).container_id.unwrap();
    node.node.kubelet.kill();
    node.node.kubelet.restart().unwrap();
    // Give the new kubelet a few syncs; the container must be the same one, never restarted.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = node.pod("steady").await.unwrap();
    let c = container(&p, 0);
    assert_eq!(c.container_id.unwrap(), id);
    assert_eq!(c.restart_count, 0);
    assert!(c.state.unwrap().running.is_some());
    // And the restarted kubelet still owns the pod: deleting it works.
    node.client.api::<Pod>(Some("default")).delete("steady", &DeleteParams::default()).await.unwrap();
    node.wait("pod gone", Duration::from_secs(20), || async { node.pod("steady").await.is_none().then_some(()) }).await;
}

fn waiting_reason(p: &Pod) -> String {
    container(p, 0).state.and_then(|s| s.waiting).and_then(|w| w.reason).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_pulled_by_policy_with_kubernetes_reasons() {
    let node = TestNode::start().await;
    let registry = Registry::start().expect("registry starts");
    registry.push(&images::archive(images::BUSYBOX_ARCHIVE).unwrap(), "rkube/busybox:v1").unwrap();
    let pod = |name: &str, image: &str, policy: &str| {
        let mut p = busybox(name, "trap 'exit 0' TERM; while true; do sleep 1; done");
        p["spec"]["containers"][0]["image"] = json!(image);
        p["spec"]["containers"][0]["imagePullPolicy"] = json!(policy);
        p
    };
    let image = registry.image("rkube/busybox:v1");
    node.create(pod("pulled", &image, "IfNotPresent")).await;
    node.pod_until("pulled", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    let events = node.events("pulled").await;
    assert!(events.iter().any(|(r, m)| r == "Pulling" && m == &format!("Pulling image \"{image}\"")), "{events:?}");
    assert!(events.iter().any(|(r, m)| r == "Pulled" && m.starts_with("Successfully pulled image")), "{events:?}");

    node.create(pod("present", &image, "IfNotPresent")).await;
    node.pod_until("present", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    let events = node.events("present").await;
    assert!(events.iter().any(|(r, m)| r == "Pulled" && m.contains("already present on machine")), "{events:?}");

    let missing = registry.image("rkube/absent:v1");
    node.create(pod("absent", &missing, "IfNotPresent")).await;
    node.pod_until("absent", "ErrImagePull", Duration::from_secs(30), |p| waiting_reason(p) == "ErrImagePull").await;
    node.pod_until("absent", "ImagePullBackOff", Duration::from_secs(30), |p| waiting_reason(p) == "ImagePullBackOff")
        .await;
    let events = node.events("absent").await;
    assert!(
        events.iter().any(|(r, m)| r == "Failed" && m.starts_with(&format!("Failed to pull image \"{missing}\""))),
        "{events:?}"
    );

    node.create(pod("never", "docker.io/rkube/not-here:1", "Never")).await;
    node.pod_until("never", "ErrImageNeverPull", Duration::from_secs(30), |p| waiting_reason(p) == "ErrImageNeverPull")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_evicts_best_effort_pods_first() {
    // A threshold above all memory makes the node short of memory at once.
    let node = TestNode::start_with(&["--eviction-hard", "memory.available<100%"]).await;
    let mut guaranteed = busybox("guaranteed", "trap 'exit 0' TERM; while true; do sleep 1; done");
    let both = json!({"cpu": "100m", "memory": "64Mi"});
    guaranteed["spec"]["containers"][0]["resources"] = json!({"requests": both, "limits": both});
    node.create(guaranteed).await;
    node.create(busybox("besteffort", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    let n = node
        .wait("MemoryPressure", Duration::from_secs(30), || async {
            let n = node.client.api::<Node>(None).get(NODE).await.ok()?;
            let c = n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "MemoryPressure")?.clone();
            (c.status == "True").then_some(c)
        })
        .await;
    assert_eq!(n.reason.as_deref(), Some("KubeletHasInsufficientMemory"));
    let p = node
        .wait("a pod evicted", Duration::from_secs(40), || async {
            for name in ["besteffort", "guaranteed"] {
                let p = node.pod(name).await?;
                if p.status.as_ref()?.reason.as_deref() == Some("Evicted") {
                    return Some(p);
                }
            }
            None
        })
        .await;
    assert_eq!(p.metadata.name.as_deref(), Some("besteffort"));
    assert_eq!(phase(&p), "Failed");
    assert!(p.status.unwrap().message.unwrap().contains("low on resource: memory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_over_http_and_tcp_gate_readiness_and_restart_on_liveness_failure() {
    let node = TestNode::start().await;
    node.create(json!({
        "metadata": {"name": "served"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]
        }
    }))
    .await;
    node.pod_until("served", "Ready over HTTP", Duration::from_secs(30), |p| condition(p, "Ready") == "True").await;

    // A liveness probe that fails three times restarts the container.
    node.create(json!({
        "metadata": {"name": "sick"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                "livenessProbe": {"exec": {"command": ["test", "-f", "/nonexistent"]}, "periodSeconds": 1, "failureThreshold": 2}}]
        }
    }))
    .await;
    node.pod_until("sick", "a liveness restart", Duration::from_secs(40), |p| container(p, 0).restart_count >= 1).await;
    let events = node.events("sick").await;
    assert!(events.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed")), "{events:?}");
    assert!(
        events.iter().any(|(r, m)| r == "Killing" && m == "Container main failed liveness probe, will be restarted"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_rides_out_a_containerd_restart() {
    let mut node = TestNode::start().await;
    node.create(busybox("before", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    let p = node.pod_until("before", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    let id = container(&p, 0).container_id.unwrap();
    node.node.containerd_mut().restart().expect("containerd restarts");
    node.create(busybox("after", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    node.pod_until("after", "Running after the restart", Duration::from_secs(40), |p| phase(p) == "Running").await;
    let p = node.pod("before").await.unwrap();
    assert_eq!(container(&p, 0).container_id.unwrap(), id, "containers survive a containerd restart");
    assert_eq!(container(&p, 0).restart_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_rides_out_an_api_server_restart() {
    let mut node = TestNode::start().await;
    node.create(busybox("before", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    node.pod_until("before", "Running", Duration::from_secs(30), |p| phase(p) == "Running").await;
    node.api.restart().expect("apiserver restarts");
    node.create(busybox("after", "trap 'exit 0' TERM; while true; do sleep 1; done")).await;
    node.pod_until("after", "Running after the restart", Duration::from_secs(40), |p| phase(p) == "Running").await;
    node.client.api::<Pod>(Some("default")).delete("before", &DeleteParams::default()).await.unwrap();
    node.wait("pod gone", Duration::from_secs(20), || async { node.pod("before").await.is_none().then_some(()) }).await;
    let lease = node.client.api::<Lease>(Some("kube-node-lease")).get(NODE).await.unwrap();
    assert!(lease.spec.unwrap().renew_time.is_some());
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1000
}
