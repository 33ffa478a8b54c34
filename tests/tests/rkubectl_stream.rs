//! rkubectl's verbs that need a real node (exec, attach, cp, port-forward, top) against real
//! etcd, rkube-apiserver, rkube-scheduler and a real rkube-kubelet on a real containerd, next
//! to the real kubectl v1.33 on the same pods: every byte goes rkubectl -> API server ->
//! kubelet -> containerd's stream server over WebSocket `v4.channel.k8s.io`.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-scheduler -p rkube-kubelet --bins`.

mod support;

use rkube_testkit::images::BUSYBOX_IMAGE;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::rkubectl::rkubectl_binary;
use support::*;

const NODE: &str = "rk-stream-node";

/// The control plane plus one real node.
type Cluster = support::node::NodeCluster;

impl Cluster {
    fn pod(&self, name: &str, script: &str, extra: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n{extra}    command: [\"sh\", \"-c\", {script:?}]\n"
        );
        let path = self.env.manifest(&format!("{name}.yaml"), &yaml);
        self.env.ok(&["apply", "-f", &path]);
        self.wait(&format!("pod {name} to run"), Duration::from_secs(60), || {
            !self
                .env
                .run(&["get", "pod", name, "-o", "jsonpath={.status.containerStatuses[0].state.running.startedAt}"])
                .stdout
                .is_empty()
        });
    }

    fn rk_command(&self, args: &[&str]) -> Command {
        support::rkubectl::rk_command(&self.env, args)
    }

    fn rk(&self, args: &[&str]) -> Out {
        self.env.run_command(self.rk_command(args), &format!("rkubectl {args:?}"))
    }

    fn rk_ok(&self, args: &[&str]) -> String {
        let out = self.rk(args);
        assert!(
            out.code == 0,
            "rkubectl {args:?}: exit {}\nstdout: {}\nstderr: {}\n--- kubelet log ---\n{}",
            out.code,
            out.stdout,
            out.stderr,
            self.node.kubelet.log_tail()
        );
        out.stdout
    }
}

/// A long-running client whose stdout lines arrive on a channel (stderr kept for [`kill`]).
fn lines(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    cmd.stderr(Stdio::piped());
    support::node::lines(cmd)
}

fn kill(mut child: Child) -> String {
    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    err
}

fn http_get(port: u16, ip: &str) -> String {
    let mut s = std::net::TcpStream::connect((ip, port)).expect("connect to the forwarded port");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").expect("request");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

/// The local port of a `Forwarding from 127.0.0.1:PORT -> R` line.
fn forwarded_port(line: &str) -> u16 {
    line.strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output {line:?}"))
}

#[test]
fn exec_attach_cp_port_forward_like_kubectl() {
    let c = Cluster::start(NODE);
    c.pod(
        "web",
        "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
        "    ports: [{name: http, containerPort: 8080}]\n",
    );
    c.pod("reader", "while read l; do echo got $l; done", "    stdin: true\n");

    // --- exec: output, stderr and exit codes exactly as kubectl reports them ---
    for args in [
        &["exec", "web", "--", "echo", "hi"][..],
        &["exec", "pod/web", "-c", "main", "--", "sh", "-c", "echo out; echo to-err >&2; exit 3"],
        &["exec", "web", "--", "sh", "-c", "exit 255"],
        &["exec", "missing", "--", "true"],
        &["exec", "web", "-c", "nope", "--", "true"],
        &["exec", "web"],
    ] {
        let k = c.env.run(args);
        let r = c.rk(args);
        assert_eq!((r.code, &r.stdout, &r.stderr), (k.code, &k.stdout, &k.stderr), "{args:?}");
    }
    assert_eq!(c.rk(&["exec", "web", "--", "sh", "-c", "exit 3"]).code, 3);
    // -i: stdin reaches the command (which reads what it needs: v4 cannot signal stdin's end).
    let args = ["exec", "-i", "web", "--", "head", "-n", "2"];
    let r = c.with_stdin(c.rk_command(&args), "from\nstdin\n", Duration::from_secs(60));
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "from\nstdin\n", ""));
    // -t without a terminal: kubectl's warning, then a plain session.
    let args = ["exec", "-it", "web", "--", "echo", "plain"];
    let (k, r) =
        (c.with_stdin(c.env.command(&args), "", Duration::ZERO), c.with_stdin(c.rk_command(&args), "", Duration::ZERO));
    assert_eq!((r.code, &r.stdout, &r.stderr), (k.code, &k.stdout, &k.stderr));
    // A TTY on a pseudo-terminal: raw mode, the window size over the resize channel, exit code.
    let inner = format!(
        "stty cols 91 rows 27; {} --kubeconfig {} --cache-dir {} exec -it web -- sh -c 'tty; sleep 1; stty size; exit 5'",
        rkubectl_binary().display(),
        c.env.kubeconfig.display(),
        c.env.dir.path().join("rk-cache").display()
    );
    let out =
        Command::new("script").args(["-qefc", &inner, "/dev/null"]).stdin(Stdio::null()).output().expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.code() == Some(5)
            && text.contains("/dev/pts/")
            && text.contains("27 91")
            && text.contains("command terminated with exit code 5"),
        "exec -it: {:?} {text:?}",
        out.status
    );

    // --- cp: 2 MB both ways, a directory both ways, into existing directories ---
    let dir = c.env.dir.path();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &data).expect("blob written");
    c.rk_ok(&["cp", &dir.join("blob.bin").to_string_lossy(), "web:/tmp/blob.bin"]);
    assert_eq!(
        c.env.clean(&["exec", "web", "--", "wc", "-c", "/tmp/blob.bin"]).split_whitespace().next(),
        Some("2000000")
    );
    c.rk_ok(&["cp", "web:/tmp/blob.bin", &dir.join("blob.back").to_string_lossy()]);
    assert!(std::fs::read(dir.join("blob.back")).expect("copied back") == data, "rkubectl cp changed the bytes");
    // kubectl reads what rkubectl wrote and the other way round.
    c.env.ok(&["cp", "web:/tmp/blob.bin", &dir.join("blob.kubectl").to_string_lossy()]);
    assert!(std::fs::read(dir.join("blob.kubectl")).expect("kubectl copy") == data);
    std::fs::create_dir_all(dir.join("tree/sub")).expect("tree");
    std::fs::write(dir.join("tree/a.txt"), "A\n").expect("a");
    std::fs::write(dir.join("tree/sub/b.txt"), "B\n").expect("b");
    c.rk_ok(&["cp", &dir.join("tree").to_string_lossy(), "web:/tmp"]);
    assert_eq!(c.env.clean(&["exec", "web", "--", "cat", "/tmp/tree/a.txt", "/tmp/tree/sub/b.txt"]), "A\nB\n");
    c.rk_ok(&["cp", "web:/tmp/tree", &dir.join("tree.back").to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(dir.join("tree.back/sub/b.txt")).ok().as_deref(), Some("B\n"));
    std::fs::create_dir_all(dir.join("into")).expect("into");
    c.rk_ok(&["cp", "web:/tmp/tree", &dir.join("into").to_string_lossy()]);
    assert_eq!(std::fs::read_to_string(dir.join("into/tree/a.txt")).ok().as_deref(), Some("A\n"));
    let missing = c.rk(&["cp", &dir.join("nope").to_string_lossy(), "web:/tmp"]);
    let k_missing = c.env.run(&["cp", &dir.join("nope").to_string_lossy(), "web:/tmp"]);
    assert_eq!((missing.code, &missing.stderr), (k_missing.code, &k_missing.stderr));
    let gone = c.rk(&["cp", "web:/tmp/nope", &dir.join("x").to_string_lossy()]);
    assert!(gone.code != 0 && gone.stderr.contains("No such file"), "{gone:?}");

    // --- port-forward: a free local port, a named port, a fixed port on 127.0.0.1 only ---
    let (pf, out) = lines(c.rk_command(&["port-forward", "pod/web", ":8080"]));
    let first = out.recv_timeout(Duration::from_secs(20)).expect("port-forward prints its port");
    let port = forwarded_port(&first);
    let second = out.recv_timeout(Duration::from_secs(5)).expect("the IPv6 line");
    assert_eq!(second, format!("Forwarding from [::1]:{port} -> 8080"));
    for _ in 0..3 {
        let resp = http_get(port, "127.0.0.1");
        assert!(resp.starts_with("HTTP/1.") && resp.ends_with("\r\n\r\nhello-from-pod\n"), "{resp:?}");
        assert_eq!(out.recv_timeout(Duration::from_secs(5)).ok(), Some(format!("Handling connection for {port}")));
    }
    assert!(http_get(port, "::1").ends_with("hello-from-pod\n"));
    kill(pf);
    let (pf, out) = lines(c.rk_command(&["port-forward", "web", ":http", "--address", "127.0.0.1"]));
    let port = forwarded_port(&out.recv_timeout(Duration::from_secs(20)).expect("a line"));
    assert!(http_get(port, "127.0.0.1").ends_with("hello-from-pod\n"));
    kill(pf);
    // Nothing listens on 9999 in the pod: the error arrives, and the command ends like kubectl.
    let (mut pf, out) = lines(c.rk_command(&["port-forward", "web", ":9999", "--address", "127.0.0.1"]));
    let port = forwarded_port(&out.recv_timeout(Duration::from_secs(20)).expect("a line"));
    let _ = http_get(port, "127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = pf.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "port-forward kept running after the error");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = kill(pf);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("an error occurred forwarding") && err.ends_with("error: lost connection to pod\n"), "{err}");
    let k = c.env.run(&["port-forward", "missing", "8080"]);
    let r = c.rk(&["port-forward", "missing", "8080"]);
    assert_eq!((r.code, &r.stderr), (k.code, &k.stderr));

    // --- attach: one rkubectl watches while another feeds stdin and ends with it ---
    let (watcher, seen) = lines(c.rk_command(&["attach", "reader"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut echoed = false;
    while !echoed && Instant::now() < deadline {
        let out = c.with_stdin(c.rk_command(&["attach", "-i", "reader"]), "ping\n", Duration::ZERO);
        assert_eq!(out.code, 0, "attach -i: {}", out.stderr);
        while let Ok(line) = seen.recv_timeout(Duration::from_millis(500)) {
            echoed |= line == "got ping";
        }
    }
    kill(watcher);
    assert!(echoed, "the attached rkubectl never saw what the other sent");
}

/// Header and first column of a `top` table.
fn shape(table: &str) -> (String, Vec<String>) {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
    (header, lines.filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect())
}

#[test]
fn top_like_kubectl() {
    let c = Cluster::start(NODE);
    c.pod("busy", "while true; do :; done", "");
    c.pod("idle", "sleep 100000", "");
    // Metrics come from the kubelet's stats: wait until both pods have some.
    c.wait("pod metrics", Duration::from_secs(60), || {
        let out = c.env.run(&["top", "pod", "--no-headers"]);
        out.code == 0 && out.stdout.lines().count() == 2
    });
    for args in [
        &["top", "pod"][..],
        &["top", "pods", "-A"],
        &["top", "pod", "--containers"],
        &["top", "pod", "idle"],
        &["top", "node"],
        &["top", "node", NODE, "--show-capacity"],
    ] {
        let k = c.env.run(args);
        let r = c.rk(args);
        assert_eq!((r.code, shape(&r.stdout)), (k.code, shape(&k.stdout)), "{args:?}\n{}\n{}", k.stdout, r.stdout);
        // Every cell, the last included, is padded to its column (kubectl's tabwriter).
        let widths = |t: &str| t.lines().map(str::len).collect::<Vec<_>>();
        assert_eq!(widths(&r.stdout).first(), widths(&k.stdout).first(), "{args:?}");
    }
    // The busy loop uses more CPU than the sleeper, and sorting puts it first.
    let sorted = c.rk_ok(&["top", "pod", "--sort-by=cpu", "--no-headers"]);
    assert_eq!(sorted.lines().next().and_then(|l| l.split_whitespace().next()), Some("busy"), "{sorted}");
    let node = c.rk_ok(&["top", "node", "--no-headers"]);
    let cells: Vec<&str> = node.split_whitespace().collect();
    assert!(
        cells.len() == 5 && cells[1].ends_with('m') && cells[2].ends_with('%') && cells[3].ends_with("Mi"),
        "{node}"
    );
    for args in [&["top", "pod", "nope"][..], &["top", "pod", "-n", "empty"], &["top", "pod", "--sort-by=disk"]] {
        let k = c.env.run(args);
        let r = c.rk(args);
        assert_eq!((r.code, &r.stderr), (k.code, &k.stderr), "{args:?}");
    }
}

#[test]
fn logs_like_kubectl() {
    let c = Cluster::start(NODE);
    let multi = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: multi\n  labels: {{app: logs}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo main-$i; done; exec sleep 100000']\n  - name: side\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo side-1; echo side-2; exec sleep 100000']\n"
    );
    let done = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done\n  labels: {{app: logs}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: only\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo one; echo two; echo three']\n"
    );
    let crash = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crash\nspec:\n  containers:\n  - name: c\n    image: {BUSYBOX_IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'echo run-$(date +%N); exit 1']\n"
    );
    for (name, yaml) in [("multi", &multi), ("done", &done), ("crash", &crash)] {
        c.env.ok(&["apply", "-f", &c.env.manifest(&format!("{name}.yaml"), yaml)]);
    }
    c.wait("the pods' output", Duration::from_secs(90), || {
        c.env.run(&["logs", "multi", "-c", "side"]).stdout.lines().count() == 2
            && c.env.run(&["logs", "multi", "-c", "main"]).stdout.lines().count() == 12
            && c.env.run(&["get", "pod", "done", "-o", "jsonpath={.status.phase}"]).stdout == "Succeeded"
            && c.env.run(&["get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"]).stdout.as_str()
                >= "1"
    });
    for args in [
        &["logs", "multi"][..],
        &["logs", "multi", "-c", "side"],
        &["logs", "multi", "side"],
        &["logs", "pod/multi", "--tail=3", "-c", "main"],
        &["logs", "multi", "--all-containers"],
        &["logs", "multi", "--all-containers", "--prefix"],
        &["logs", "-l", "app=logs", "--all-containers"],
        &["logs", "-l", "app=logs", "-c", "main", "--tail=-1"],
        &["logs", "-l", "app=none"],
        &["logs", "-f", "done"],
        &["logs", "done", "--limit-bytes=5"],
        &["logs", "missing"],
        &["logs", "multi", "-c", "nope"],
        &["logs"],
        &["logs", "done", "--previous"],
    ] {
        let k = c.env.run(args);
        let r = c.rk(args);
        // kubectl 1.33 fetches several streams in a Go map's (random) order: compare lines as a
        // set then, each stream's own order being checked by the single-stream cases.
        let several = args.iter().any(|a| *a == "--all-containers" || *a == "-l");
        let lines = |text: &str| -> Vec<String> {
            let mut v: Vec<String> = text.lines().map(str::to_string).collect();
            if several {
                v.sort();
            }
            v
        };
        let stderr = r.stderr.replace("rkubectl logs -h", "kubectl logs -h");
        assert_eq!((r.code, lines(&r.stdout), &stderr), (k.code, lines(&k.stdout), &k.stderr), "{args:?}");
    }
    // The previous instance's output differs from the current one's, with both clients alike.
    let (k, r) = (c.env.run(&["logs", "crash", "--previous"]), c.rk(&["logs", "crash", "--previous"]));
    assert_eq!((r.code, k.code), (0, 0), "{k:?}\n{r:?}");
    assert!(r.stdout.starts_with("run-"), "{r:?}");
    // Following several pods: every line of each, whole, until they end (done has ended; the
    // follow of multi is cut by a timeout).
    let r = c.rk(&["logs", "-f", "-l", "app=logs", "--all-containers", "--prefix", "--request-timeout=3s", "--tail=2"]);
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "[pod/done/only] three",
            "[pod/done/only] two",
            "[pod/multi/main] main-11",
            "[pod/multi/main] main-12",
            "[pod/multi/side] side-1",
            "[pod/multi/side] side-2"
        ],
        "{r:?}"
    );
    let too_many = c.rk(&["logs", "-f", "-l", "app=logs", "--all-containers", "--max-log-requests=2"]);
    assert_eq!(too_many.code, 1, "{too_many:?}");
    assert!(too_many.stderr.contains("you are attempting to follow 3 log streams"), "{too_many:?}");
}
