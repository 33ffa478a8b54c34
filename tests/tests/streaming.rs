//! kubectl logs / exec / attach / port-forward end to end: real etcd, rkube-apiserver,
//! rkube-scheduler, a real rkube-kubelet on a real containerd, and the real kubectl. Pods are
//! scheduled and run by the daemons; every byte of a stream goes kubectl -> API server ->
//! kubelet -> containerd's stream server and back.

mod support;

use rkube_testkit::images::BUSYBOX_IMAGE;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

const NODE: &str = "stream-node";

/// The control plane plus one real node.
type Cluster = support::node::NodeCluster;

impl Cluster {
    fn pod(&self, name: &str, script: &str, extra: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", {script:?}]\n"
        );
        let path = self.env.manifest(&format!("{name}.yaml"), &yaml);
        self.env.ok(&["apply", "-f", &path]);
    }

    fn wait_running(&self, name: &str) {
        self.wait(&format!("pod {name} to run"), Duration::from_secs(60), || {
            !self
                .env
                .run(&["get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"])
                .stdout
                .is_empty()
        });
    }

    /// kubectl with `input` on its stdin (then closed): (exit code, stdout, stderr).
    fn kubectl_with_stdin(&self, args: &[&str], input: &str) -> Out {
        self.with_stdin(self.env.command(args), input, Duration::ZERO)
    }

    /// A long-running kubectl whose stdout lines arrive on a channel.
    fn lines(&self, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
        let mut cmd = self.env.command(args);
        cmd.stderr(Stdio::null());
        support::node::lines(cmd)
    }
}

fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kubectl_streams_reach_pods_run_by_the_kubelet() {
    let c = Cluster::start(NODE);
    c.pod(
        "web",
        "mkdir -p /www && echo hello-from-pod > /www/index.html && echo started && exec httpd -f -p 8080 -h /www",
        "",
    );
    c.pod("counter", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done", "");
    c.pod("finisher", "echo one; sleep 3; echo two; sleep 1", "  restartPolicy: Never\n");
    c.pod("crasher", "echo run at $(date +%s); sleep 1; exit 1", "");
    let reader = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reader\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    stdin: true\n    command: [\"sh\", \"-c\", \"while read l; do echo got $l; done\"]\n"
    );
    let path = c.env.manifest("reader.yaml", &reader);
    c.env.ok(&["apply", "-f", &path]);
    for p in ["web", "counter", "finisher", "reader"] {
        c.wait_running(p);
    }

    // --- logs ---
    c.wait("web's first line", Duration::from_secs(10), || c.env.run(&["logs", "web"]).stdout == "started\n");
    assert_eq!(c.env.clean(&["logs", "web", "-c", "main"]), "started\n");
    let stamped = c.env.clean(&["logs", "pod/web", "--timestamps"]);
    let (ts, line) = stamped.split_once(' ').expect("a timestamp");
    assert!(ts.parse::<jiff::Timestamp>().is_ok() && line == "started\n", "{stamped:?}");
    let tail = c.env.clean(&["logs", "counter", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail:?}");
    assert!(tail.lines().all(|l| l.starts_with("tick ")), "{tail:?}");
    assert_eq!(c.env.clean(&["logs", "counter", "--limit-bytes=6"]), "tick 1");
    assert!(c.env.clean(&["logs", "counter", "--since=1h"]).starts_with("tick 1\ntick 2\n"));
    // -f streams new lines as they are written.
    let (follow, lines) = c.lines(&["logs", "-f", "counter", "--tail=1"]);
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(lines.recv_timeout(Duration::from_secs(10)).expect("a followed line within 10 s"));
    }
    kill(follow);
    let n: Vec<u64> = got.iter().map(|l| l.trim_start_matches("tick ").parse().expect("tick N")).collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "followed lines out of order: {got:?}");
    // -f of a container that exits returns by itself, with everything it wrote.
    let started = Instant::now();
    let out = c.env.run(&["logs", "-f", "finisher"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "one\ntwo\n"), "stderr: {}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    // --previous: the instance before the restart.
    c.wait("crasher to restart", Duration::from_secs(60), || {
        c.env
            .run(&["get", "pod", "crasher", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"])
            .stdout
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
    let previous = c.env.clean(&["logs", "crasher", "--previous"]);
    assert!(previous.starts_with("run at "), "{previous:?}");

    // --- exec (WebSocket refused, silent fallback to SPDY) ---
    assert_eq!(c.env.clean(&["exec", "web", "--", "echo", "hi"]), "hi\n");
    let out = c.env.run(&["exec", "web", "--", "sh", "-c", "echo to-err >&2; exit 3"]);
    // kubectl itself adds the last line, as against Kubernetes.
    assert_eq!((out.code, out.stderr.as_str()), (3, "to-err\ncommand terminated with exit code 3\n"), "{}", out.stdout);
    let out = c.kubectl_with_stdin(&["exec", "-i", "web", "--", "sh", "-c", "cat; echo eof"], "from\nstdin\n");
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "from\nstdin\neof\n", ""));
    // A TTY (kubectl on a pseudo-terminal), its window size sent over the resize stream.
    let inner = format!(
        "stty cols 91 rows 27; {} --kubeconfig {} --cache-dir {} exec -it web -- sh -c 'tty; sleep 1; stty size'",
        c.env.kubectl.display(),
        c.env.kubeconfig.display(),
        c.env.dir.path().join("kube-cache").display()
    );
    let out =
        Command::new("script").args(["-qefc", &inner, "/dev/null"]).stdin(Stdio::null()).output().expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success() && text.contains("/dev/pts/") && text.contains("27 91"), "exec -it: {text:?}");

    // kubectl cp: tar through exec's stdin and stdout, both ways, 2 MB intact.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let local = c.env.dir.path().join("blob.bin");
    std::fs::write(&local, &data).expect("blob written");
    c.env.ok(&["cp", &local.to_string_lossy(), "web:/tmp/blob.bin"]);
    assert_eq!(
        c.env.clean(&["exec", "web", "--", "wc", "-c", "/tmp/blob.bin"]).split_whitespace().next(),
        Some("2000000")
    );
    let back = c.env.dir.path().join("blob.back");
    c.env.ok(&["cp", "web:/tmp/blob.bin", &back.to_string_lossy()]);
    assert!(std::fs::read(&back).expect("copied back") == data, "kubectl cp changed the bytes");

    // --- port-forward to the busybox httpd ---
    let (pf, forwarded) = c.lines(&["port-forward", "pod/web", ":8080"]);
    let first = forwarded.recv_timeout(Duration::from_secs(20)).expect("port-forward prints its port");
    let local: u16 = first
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output {first:?}"));
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect to the forwarded port");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").expect("request");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.") && resp.ends_with("\r\n\r\nhello-from-pod\n"), "{resp:?}");
    }
    kill(pf);

    // --- the official Python client: WebSocket v4.channel.k8s.io, relayed as it is ---
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/python");
    assert!(
        site.join("kubernetes").exists(),
        "the kubernetes Python package is missing from {} (scripts/install-deps)",
        site.display()
    );
    let mut py = Command::new("python3");
    py.args(["-c", PYTHON_STREAMS, &c.env.api.url()]).env("PYTHONPATH", &site);
    let out = c.env.run_command(py, "python3 (exec and port-forward over WebSocket)");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "exec: 'py-hi\\n'\ncode: 4\npf: b'hello-from-pod\\n'\n"),
        "stderr: {}\n--- kubelet log ---\n{}",
        out.stderr,
        c.node.kubelet.log_tail()
    );

    // --- attach: one kubectl watches the output while another feeds stdin ---
    let (watcher, seen) = c.lines(&["attach", "reader"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut echoed = false;
    while !echoed && Instant::now() < deadline {
        let out = c.kubectl_with_stdin(&["attach", "-i", "reader"], "ping\n");
        assert_eq!(out.code, 0, "attach -i: {}", out.stderr);
        while let Ok(line) = seen.recv_timeout(Duration::from_millis(500)) {
            echoed |= line == "got ping";
        }
    }
    kill(watcher);
    assert!(echoed, "the attached kubectl never saw what the other sent");
}

/// The Python client's exec (output, then an exit code) and port-forward, over WebSocket.
const PYTHON_STREAMS: &str = r#"
import sys
from kubernetes import client
from kubernetes.stream import stream, portforward
cfg = client.Configuration()
cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
out = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "echo py-hi"],
             stderr=True, stdin=False, stdout=True, tty=False)
print("exec:", repr(out))
r = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["sh", "-c", "exit 4"],
           stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
r.run_forever(timeout=10)
print("code:", r.returncode)
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
sock = pf.socket(8080)
sock.setblocking(True)
sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
data = b""
while True:
    chunk = sock.recv(1024)
    if not chunk:
        break
    data += chunk
print("pf:", repr(data[data.index(b"\r\n\r\n") + 4:]))
"#;
