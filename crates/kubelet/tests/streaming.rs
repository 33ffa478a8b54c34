//! The kubelet API (`rkube_kubelet::server`) against a real containerd: logs read from real CRI
//! log files, and exec / attach / port-forward driven by the real kubectl through a real API
//! server, which finds this kubelet through the Node's address and port.
//!
//! The pod workers are not involved: the tests create the sandboxes and containers themselves
//! over the CRI, with the labels and metadata the pod workers use (the contract the server
//! relies on), and write the Node and Pod objects a kubelet would have written.

use rkube_kubelet::cri::{Cri, api};
use rkube_testkit::images::BUSYBOX_IMAGE;
use rkube_testkit::{ApiServer, Containerd, Etcd};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A containerd plus the kubelet API serving it on a loopback port, on its own runtime.
struct Node {
    containerd: Containerd,
    cri: Cri,
    rt: tokio::runtime::Runtime,
    port: u16,
    token: CancellationToken,
    logs: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let containerd = Containerd::start().expect("containerd starts");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let cri = rt.block_on(async { Cri::connect(&containerd.endpoint()) }).expect("CRI client");
        let token = CancellationToken::new();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let port = listener.local_addr().expect("address").port();
        rt.spawn(rkube_kubelet::server::serve(listener, cri.clone(), token.clone()));
        let logs = tempfile::Builder::new().prefix("rkube-kubelet-logs-").tempdir().expect("temp dir");
        Node { containerd, cri, rt, port, token, logs }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET on the kubelet API: (status, body).
    fn get(&self, path: &str) -> (u16, String) {
        let url = self.url(path);
        self.rt.block_on(async {
            let resp = reqwest::Client::new().get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let code = resp.status().as_u16();
            (code, resp.text().await.unwrap_or_default())
        })
    }

    /// Runs a sandbox labelled as the pod workers label them; returns its id and config.
    fn sandbox(&self, ns: &str, name: &str, uid: &str) -> (String, api::PodSandboxConfig) {
        let labels = HashMap::from([
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            ("io.kubernetes.pod.namespace".to_string(), ns.to_string()),
            ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
        ]);
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: ns.into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.logs.path().join(format!("{ns}_{name}_{uid}")).to_string_lossy().into_owned(),
            labels,
            linux: Some(api::LinuxPodSandboxConfig::default()),
            ..Default::default()
        };
        let id = self
            .rt
            .block_on(self.cri.runtime.clone().run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {ns}/{name}: {e}\n{}", self.containerd.log_tail()))
            .into_inner()
            .pod_sandbox_id;
        (id, config)
    }

    /// Creates and starts container `name`, restart number `attempt`, running `command`.
    fn container(
        &self,
        sandbox: &(String, api::PodSandboxConfig),
        name: &str,
        attempt: u32,
        command: &[&str],
        stdin: bool,
    ) -> String {
        let mut labels = sandbox.1.labels.clone();
        labels.insert("io.kubernetes.container.name".into(), name.into());
        let config = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata { name: name.into(), attempt }),
            image: Some(api::ImageSpec { image: BUSYBOX_IMAGE.into(), ..Default::default() }),
            command: command.iter().map(|s| s.to_string()).collect(),
            labels,
            log_path: format!("{name}/{attempt}.log"),
            stdin,
            linux: Some(api::LinuxContainerConfig::default()),
            ..Default::default()
        };
        let mut rt = self.cri.runtime.clone();
        self.rt.block_on(async {
            let id = rt
                .create_container(api::CreateContainerRequest {
                    pod_sandbox_id: sandbox.0.clone(),
                    config: Some(config),
                    sandbox_config: Some(sandbox.1.clone()),
                })
                .await
                .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
                .into_inner()
                .container_id;
            rt.start_container(api::StartContainerRequest { container_id: id.clone() })
                .await
                .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
            id
        })
    }

    fn state(&self, id: &str) -> i32 {
        self.rt.block_on(self.cri.container_status(id)).expect("ContainerStatus").state
    }

    fn wait_exited(&self, id: &str) {
        wait_for("container to exit", Duration::from_secs(20), || {
            self.state(id) == api::ContainerState::ContainerExited as i32
        });
    }

    fn log_path(&self, id: &str) -> PathBuf {
        PathBuf::from(self.rt.block_on(self.cri.container_status(id)).expect("ContainerStatus").log_path)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status ({e}): {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    v["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn logs_are_served_from_the_cri_log_file() {
    let node = Node::start();
    assert_eq!(node.get("/healthz"), (200, "ok".to_string()));
    let sb = node.sandbox("default", "logger", "uid-logger");
    // stdout and stderr are separate pipes, read concurrently by containerd: the pauses keep
    // their order in the file deterministic (and the last one lets containerd drain the pipe
    // before the process exits).
    let script = "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.3; echo oops >&2; sleep 2; echo late; sleep 0.5";
    let first = node.container(&sb, "main", 0, &["sh", "-c", script], false);

    // containerd reports the log path absolute: the sandbox's directory + the container's path.
    let path = node.log_path(&first);
    assert!(
        path.is_absolute() && path.starts_with(node.logs.path()) && path.ends_with("main/0.log"),
        "{}",
        path.display()
    );

    wait_for("the first lines", Duration::from_secs(10), || {
        node.get("/containerLogs/default/logger/main").1.contains("oops")
    });
    // A follow started while the container runs ends when it exits, with everything it wrote.
    let started = Instant::now();
    let (code, all) = node.get("/containerLogs/default/logger/main?follow=true");
    assert_eq!(code, 200, "{all}");
    assert_eq!(all, "line 1\nline 2\nline 3\nline 4\nline 5\noops\nlate\n");
    assert!(started.elapsed() >= Duration::from_millis(500), "the follow returned before the container exited");
    node.wait_exited(&first);

    assert_eq!(node.get("/containerLogs/default/logger/main?tailLines=2").1, "oops\nlate\n");
    assert_eq!(node.get("/containerLogs/default/logger/main?tailLines=0").1, "");
    assert_eq!(node.get("/containerLogs/default/logger/main?limitBytes=9").1, "line 1\nli");
    assert_eq!(node.get("/containerLogs/default/logger/main?stream=Stderr").1, "oops\n");
    let stamped = node.get("/containerLogs/default/logger/main?timestamps=true&tailLines=1").1;
    let (ts, rest) = stamped.split_once(' ').expect("a timestamp prefix");
    assert_eq!(rest, "late\n");
    let ts: jiff::Timestamp = ts.parse().unwrap_or_else(|e| panic!("{ts:?} is not RFC 3339: {e}"));
    assert!(jiff::Timestamp::now().duration_since(ts) < jiff::SignedDuration::from_secs(60));
    // Everything was written in the last minute, nothing in the future.
    assert_eq!(node.get("/containerLogs/default/logger/main?sinceSeconds=60").1.lines().count(), 7);
    let future = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600)).to_string();
    assert_eq!(node.get(&format!("/containerLogs/default/logger/main?sinceTime={future}")).1, "");

    // No restart yet: there is no previous container.
    let (code, body) = node.get("/containerLogs/default/logger/main?previous=true");
    assert_eq!(code, 400, "{body}");
    assert_eq!(status_message(&body), "previous terminated container \"main\" in pod \"logger\" not found");

    // The restart: the current logs are the new instance's, `previous` the old one's.
    let second = node.container(&sb, "main", 1, &["sh", "-c", "echo second; sleep 60"], false);
    wait_for("the restarted container's log", Duration::from_secs(10), || {
        node.get("/containerLogs/default/logger/main").1 == "second\n"
    });
    assert_eq!(node.get("/containerLogs/default/logger/main?previous=true&tailLines=1").1, "late\n");
    // A follow of a running container that is stopped ends by itself.
    let follow = {
        let url = node.url("/containerLogs/default/logger/main?follow=1");
        node.rt.spawn(async move { reqwest::get(&url).await.expect("follow").text().await.expect("body") })
    };
    std::thread::sleep(Duration::from_millis(300));
    node.rt.block_on(node.cri.stop_container(&second, 0)).expect("StopContainer");
    let followed = node.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), follow).await });
    assert_eq!(followed.expect("the follow ended after the container stopped").expect("task"), "second\n");

    for (path, code, message) in [
        ("/containerLogs/default/logger/nope", 404, "container \"nope\" in pod \"logger\" not found"),
        ("/containerLogs/default/ghost/main", 404, "pod \"ghost\" in namespace \"default\" is not on this node"),
        ("/containerLogs/default/logger/main?tailLines=-1", 400, "tailLines: must be greater than or equal to 0"),
    ] {
        let (c, body) = node.get(path);
        assert_eq!((c, status_message(&body).as_str()), (code, message), "{path}");
    }
}

#[test]
fn logs_of_a_big_file_are_tailed_from_its_end() {
    let node = Node::start();
    let sb = node.sandbox("default", "chatty", "uid-chatty");
    // 200k lines (about 8 MB of log file), then a marker.
    // The container stays up: containerd 1.6 may drop the end of the output of a process that
    // exits while its pipe is still being drained.
    let id = node.container(&sb, "main", 0, &["sh", "-c", "seq 1 200000; echo done; exec sleep 600"], false);
    let path = node.log_path(&id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read(&path).is_ok_and(|b| b.ends_with(b" stdout F done\n")) {
        if Instant::now() > deadline {
            let text = std::fs::read(&path).unwrap_or_default();
            panic!(
                "the log never got its last line; it ends with {:?}",
                String::from_utf8_lossy(&text[text.len().saturating_sub(300)..])
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let size = std::fs::metadata(node.log_path(&id)).expect("log file").len();
    assert!(size > 5_000_000, "log is only {size} bytes");
    let (code, body) = node.get("/containerLogs/default/chatty/main?tailLines=3");
    assert_eq!((code, body.as_str()), (200, "199999\n200000\ndone\n"));
    let (_, body) = node.get("/containerLogs/default/chatty/main");
    assert_eq!(body.lines().count(), 200_001);
}

// --- exec, attach and port-forward with the real kubectl through the API server ----------------

fn kubectl_binary() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        return PathBuf::from(k);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl");
    assert!(p.exists(), "kubectl v1.33 not found: set $KUBECTL or run scripts/install-deps ({})", p.display());
    p
}

struct Cluster {
    node: Node,
    api: ApiServer,
    _etcd: Etcd,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Cluster {
    fn start() -> Cluster {
        let node = Node::start();
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start(&etcd).expect("rkube-apiserver starts (cargo build -p rkube-apiserver)");
        let kubeconfig = api.kubeconfig().expect("kubeconfig");
        let dir = tempfile::Builder::new().prefix("rkube-kubelet-e2e-").tempdir().expect("temp dir");
        let c = Cluster { node, api, _etcd: etcd, kubeconfig, dir };
        // The Node as the kubelet registers it: its address and the kubelet API's port.
        c.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n");
        let status = serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "n1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": c.node.port}},
        }});
        c.ok(&["patch", "node", "n1", "--subresource=status", "--type=merge", "-p", &status.to_string()], None);
        c
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_binary());
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG");
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl spawns");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.unwrap_or("").to_string();
        std::thread::spawn(move || {
            let _ = input.write_all(data.as_bytes());
        });
        let (mut so, mut se) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kubectl {args:?} hung\nAPI server log:\n{}", self.api.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        }
    }

    /// kubectl must succeed with nothing on stderr (no fallback noise, no warnings).
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.code == 0 && out.stderr.is_empty(),
            "kubectl {args:?}: exit {}\nstdout: {}\nstderr: {}\nAPI server log:\n{}",
            out.code,
            out.stdout,
            out.stderr,
            self.api.log_tail()
        );
        out.stdout
    }

    fn apply(&self, yaml: &str) {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, yaml).expect("manifest");
        self.ok(&["apply", "-f", &path.to_string_lossy()], None);
    }

    /// A Pod object bound to n1 and reported running, with its containers run over the CRI;
    /// returns the sandbox.
    fn running_pod(&self, name: &str, containers: &[(&str, &[&str], bool)]) -> (String, api::PodSandboxConfig) {
        let mut yaml =
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: n1\n  containers:\n");
        for (c, _, stdin) in containers {
            yaml.push_str(&format!("  - name: {c}\n    image: {BUSYBOX_IMAGE}\n    stdin: {stdin}\n"));
        }
        self.apply(&yaml);
        let uid = self.ok(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"], None);
        let sb = self.node.sandbox("default", name, &uid);
        let mut statuses = Vec::new();
        for (c, command, stdin) in containers {
            let id = self.node.container(&sb, c, 0, command, *stdin);
            statuses.push(serde_json::json!({
                "name": c, "ready": true, "restartCount": 0, "image": BUSYBOX_IMAGE, "imageID": "",
                "containerID": format!("containerd://{id}"), "started": true,
                "state": {"running": {"startedAt": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}},
            }));
        }
        let status =
            serde_json::json!({"status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": statuses}});
        self.ok(&["patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status.to_string()], None);
        sb
    }
}

#[test]
fn kubectl_exec_attach_port_forward_and_logs_reach_the_container() {
    let c = Cluster::start();
    let httpd =
        "mkdir -p /www && echo hello-from-pod > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www";
    c.running_pod("web", &[("main", &["sh", "-c", httpd], false)]);

    // exec: kubectl tries WebSocket v5, is refused, falls back to SPDY without a word.
    assert_eq!(c.ok(&["exec", "web", "--", "echo", "hi"], None), "hi\n");
    let out = c.run(&["exec", "web", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2"], None);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "out\n", "err\n"));
    // The exit code comes through.
    let out = c.run(&["exec", "web", "--", "sh", "-c", "exit 3"], None);
    assert_eq!(out.code, 3, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    let out = c.run(&["exec", "web", "--", "/no/such/binary"], None);
    assert_ne!(out.code, 0);
    // stdin, to its end.
    assert_eq!(
        c.ok(&["exec", "-i", "web", "--", "sh", "-c", "cat; echo end"], Some("piped\nlines\n")),
        "piped\nlines\nend\n"
    );

    // A TTY: kubectl on a pseudo-terminal (util-linux `script`), with its window size sent
    // through the resize stream (which races with the command's start, hence the pause).
    let kubectl = kubectl_binary();
    let inner = format!(
        "stty cols 123 rows 45; {} --kubeconfig {} --cache-dir {} exec -it web -- sh -c 'tty; sleep 1; stty size'",
        kubectl.display(),
        c.kubeconfig.display(),
        c.dir.path().join("cache").display()
    );
    let out =
        Command::new("script").args(["-qefc", &inner, "/dev/null"]).stdin(Stdio::null()).output().expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "exec -it failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("/dev/pts/"), "no TTY in the container: {text:?}");
    assert!(text.contains("45 123"), "the terminal size did not reach the container: {text:?}");

    // logs through the API server.
    wait_for("httpd's first line", Duration::from_secs(10), || c.run(&["logs", "web"], None).stdout == "serving\n");
    assert_eq!(
        c.ok(&["logs", "web", "--tail=1", "--timestamps"], None).split_once(' ').map(|(_, l)| l.to_string()),
        Some("serving\n".into())
    );

    // port-forward to the busybox httpd, and a fetch through it.
    let mut pf = c
        .command(&["port-forward", "pod/web", ":8080"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("port-forward spawns");
    let mut lines = BufReader::new(pf.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let local: u16 = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output {first:?}"));
    for _ in 0..3 {
        let body = c
            .node
            .rt
            .block_on(async { reqwest::get(format!("http://127.0.0.1:{local}/index.html")).await?.text().await })
            .expect("fetch through the port-forward");
        assert_eq!(body, "hello-from-pod\n");
    }
    let _ = pf.kill();
    let _ = pf.wait();

    // attach to a container that reads its stdin: one kubectl watches its output while
    // another feeds it a line.
    c.running_pod("reader", &[("main", &["sh", "-c", "echo ready; while read l; do echo got $l; done"], true)]);
    let mut watcher = c
        .command(&["attach", "reader"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("attach spawns");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watcher.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The watcher is attached once a line sent now comes back to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    'outer: while Instant::now() < deadline {
        let out = c.run(&["attach", "-i", "reader"], Some("ping\n"));
        assert_eq!(out.code, 0, "attach -i: {}", out.stderr);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if line == "got ping" {
                break 'outer;
            }
            seen.push(line);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(Instant::now() < deadline, "the attached kubectl never saw the line sent by the other; it saw {seen:?}");
    assert!(c.ok(&["logs", "reader"], None).contains("got ping\n"));
}

#[test]
fn errors_read_like_kubernetes() {
    let c = Cluster::start();
    c.running_pod("two", &[("a", &["sleep", "300"], false), ("b", &["sleep", "300"], false)]);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: pending\nspec:\n  containers:\n  - name: c\n    image: x\n");
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: creating\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: x\n");
    c.apply("apiVersion: v1\nkind: Node\nmetadata:\n  name: gone\n");
    let dead = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}});
    c.ok(&["patch", "node", "gone", "--subresource=status", "--type=merge", "-p", &dead.to_string()], None);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: orphan\nspec:\n  nodeName: gone\n  containers:\n  - name: c\n    image: x\n");

    let rest = |path: &str| c.api.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    for (path, code, message) in [
        (
            "/api/v1/namespaces/default/pods/two/log",
            400,
            "a container name must be specified for pod two, choose one of: [a b]",
        ),
        ("/api/v1/namespaces/default/pods/two/log?container=c", 400, "container c is not valid for pod two"),
        ("/api/v1/namespaces/default/pods/pending/log", 400, "pod pending does not have a host assigned"),
        (
            "/api/v1/namespaces/default/pods/creating/log",
            400,
            "container \"c\" in pod \"creating\" is waiting to start: ContainerCreating",
        ),
        ("/api/v1/namespaces/default/pods/missing/log", 404, "pods \"missing\" not found"),
        ("/api/v1/namespaces/default/pods/two/log?container=a&tailLines=-2", 422, ""),
        (
            "/api/v1/namespaces/default/pods/two/log?container=a&previous=true",
            400,
            "previous terminated container \"a\" in pod \"two\" not found",
        ),
    ] {
        let (got, body) = rest(path);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert_eq!((got, v["kind"].as_str()), (code, Some("Status")), "{path}: {body}");
        if !message.is_empty() {
            assert_eq!(v["message"], message, "{path}");
        }
    }
    // A node whose kubelet does not answer.
    let running = serde_json::json!({"status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}}]}});
    c.ok(&["patch", "pod", "orphan", "--subresource=status", "--type=merge", "-p", &running.to_string()], None);
    let (got, body) = rest("/api/v1/namespaces/default/pods/orphan/log");
    assert!(got >= 500 && body.contains("dial"), "{got} {body}");
    let out = c.run(&["exec", "orphan", "--", "true"], None);
    assert!(out.code != 0 && out.stderr.contains("dial"), "{}", out.stderr);

    // The default-container annotation picks for the server too.
    c.ok(&["annotate", "pod", "two", "kubectl.kubernetes.io/default-container=b"], None);
    assert_eq!(rest("/api/v1/namespaces/default/pods/two/log").0, 200);

    // kubectl shows the server's message.
    let out = c.run(&["exec", "pending", "--", "true"], None);
    assert!(out.stderr.contains("does not have a host assigned"), "{}", out.stderr);
    let out = c.run(&["exec", "two", "-c", "zzz", "--", "true"], None);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("container zzz is not valid for pod two"), "{}", out.stderr);
}

/// Whether the process has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn an_open_follow_does_not_hold_up_shutdown() {
    let c = Cluster::start();
    c.running_pod("ticker", &[("main", &["sh", "-c", "while true; do echo tick; sleep 0.2; done"], false)]);
    wait_for("a tick", Duration::from_secs(10), || c.run(&["logs", "ticker"], None).stdout.starts_with("tick\n"));

    // Through the API server: a SIGTERM ends the server even with kubectl following.
    let mut follow = c
        .command(&["logs", "-f", "ticker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("tick"));
    let pid = c.api.pid().expect("API server pid");
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    wait_for("the API server to exit", Duration::from_secs(10), || exited(pid));
    wait_for("kubectl logs -f to end", Duration::from_secs(10), || follow.try_wait().ok().flatten().is_some());

    // On the kubelet: its shutdown ends a follow too.
    let url = c.node.url("/containerLogs/default/ticker/main?follow=true&tailLines=1");
    let direct = c.node.rt.spawn(async move { reqwest::get(&url).await.expect("follow").text().await });
    std::thread::sleep(Duration::from_millis(500));
    c.node.token.cancel();
    let body = c.node.rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), direct).await });
    let body = body.expect("the follow ended at shutdown").expect("task").unwrap_or_default();
    assert!(body.starts_with("tick\n"), "{body:?}");
}
