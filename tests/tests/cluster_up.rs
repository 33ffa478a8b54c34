//! `rkubectl cluster up|down` on one machine, for real: `cluster init --config-dir` writes the
//! secure configs, the test points them at a test etcd, containerd and free ports, and `up`
//! starts the API server, controller-manager, scheduler and kubelet as detached processes,
//! waiting until the node is Ready (seen with the real kubectl). `up` again leaves running
//! daemons alone and restarts a killed one; a daemon that cannot start is reported with its
//! log; `down` stops every daemon by its pid file.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-controller-manager
//! -p rkube-scheduler -p rkube-kubelet`.

mod support;

use rkube_testkit::apiserver::bin_dir;
use rkube_testkit::{Containerd, Etcd};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::Out;

const DAEMONS: [&str; 4] = ["apiserver", "controller-manager", "scheduler", "kubelet"];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Rewrites `key: value` lines of a daemon config (the files are flat YAML maps of flags).
fn set_keys(path: &Path, keys: &[(&str, String)]) {
    let text = std::fs::read_to_string(path).expect("config file");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !keys.iter().any(|(k, _)| l.starts_with(&format!("{k}:"))))
        .map(str::to_string)
        .collect();
    lines.extend(keys.iter().map(|(k, v)| format!("{k}: {v}")));
    std::fs::write(path, lines.join("\n") + "\n").expect("write config");
}

/// The machine under test: its directories, and `cluster down` when dropped so a failing test
/// leaves no daemon behind.
struct Machine {
    dir: tempfile::TempDir,
    _etcd: Etcd,
    _containerd: Containerd,
    api_port: u16,
}

impl Machine {
    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn rkubectl(&self, args: &[&str]) -> Out {
        let binary = bin_dir().join("rkubectl");
        assert!(binary.exists(), "{} does not exist: run `cargo build -p rkubectl` first", binary.display());
        let out = Command::new(binary)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .output()
            .expect("rkubectl runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn machine_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, sub) in [("--config-dir", "etc"), ("--run-dir", "run"), ("--log-dir", "log")] {
            args.push(flag.to_string());
            args.push(self.path(sub).display().to_string());
        }
        args.extend(["--supervisor".to_string(), "processes".to_string()]);
        args
    }

    fn up(&self) -> Out {
        let mut args = vec!["cluster".to_string(), "up".to_string(), "--timeout".into(), "150s".into()];
        args.extend(["--dir".to_string(), self.path("state").display().to_string()]);
        args.extend(self.machine_args());
        self.rkubectl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn down(&self) -> Out {
        let mut args = vec!["cluster".to_string(), "down".to_string(), "--grace-period".into(), "10s".into()];
        args.extend(self.machine_args());
        self.rkubectl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn pid(&self, daemon: &str) -> u32 {
        let file = self.path("run").join(format!("rkube-{daemon}.pid"));
        std::fs::read_to_string(&file).unwrap_or_default().trim().parse().unwrap_or(0)
    }

    fn logs(&self) -> String {
        DAEMONS
            .iter()
            .map(|d| {
                let log = std::fs::read_to_string(self.path("log").join(format!("rkube-{d}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!("--- {d}:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kubectl(&self, args: &[&str]) -> Out {
        let out = Command::new(support::kubectl_binary())
            .arg("--kubeconfig")
            .arg(self.path("state").join("admin.kubeconfig"))
            .args(args)
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl runs");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// A live process that is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string)))
        .is_some_and(|state| state != "Z" && state != "X")
}

fn machine() -> Machine {
    let etcd = Etcd::start().expect("etcd starts");
    let containerd = Containerd::start().expect("containerd starts");
    let dir = tempfile::Builder::new().prefix("rkube-cluster-up-").tempdir().expect("temp dir");
    let api_port = free_port();
    let m = Machine { dir, _etcd: etcd, _containerd: containerd, api_port };
    let (state, etc) = (m.path("state").display().to_string(), m.path("etc").display().to_string());
    let server = format!("https://127.0.0.1:{api_port}");
    let init = m.rkubectl(&[
        "-s",
        &server,
        "cluster",
        "init",
        "--dir",
        &state,
        "--node",
        "n1=127.0.0.1",
        "--config-dir",
        &etc,
        "--this-node",
        "n1",
        "--etcd-servers",
        &m._etcd.endpoint(),
    ]);
    assert_eq!(init.code, 0, "cluster init: {init:?}");
    // The written configs use the standard ports and paths; move them to this test's.
    let etc = m.path("etc");
    set_keys(
        &etc.join("apiserver.yaml"),
        &[("secure-port", api_port.to_string()), ("bind-address", "127.0.0.1".into())],
    );
    for daemon in ["scheduler", "controller-manager"] {
        set_keys(
            &etc.join(format!("{daemon}.yaml")),
            &[("secure-port", free_port().to_string()), ("bind-address", "127.0.0.1".into())],
        );
    }
    let containerd = &m._containerd;
    set_keys(
        &etc.join("kubelet.yaml"),
        &[
            ("container-runtime-endpoint", containerd.endpoint()),
            ("root-dir", m.path("kubelet").display().to_string()),
            ("pod-logs-dir", containerd.logs_dir().display().to_string()),
            ("port", free_port().to_string()),
            ("healthz-port", free_port().to_string()),
            ("node-ip", "127.0.0.1".into()),
            ("eviction-hard", "\"\"".into()),
        ],
    );
    // The proxy and ingress take host-wide resources (nftables, ports 80/443) that other tests
    // share; they are left out here and covered by their own tests and scripts/e2e-cluster.
    for file in ["proxy.yaml", "ingress.yaml"] {
        std::fs::remove_file(etc.join(file)).expect("remove config");
    }
    m
}

#[test]
fn cluster_up_starts_the_machines_daemons_and_down_stops_them() {
    let m = machine();
    let up = m.up();
    assert_eq!(up.code, 0, "cluster up: {up:?}\n{}", m.logs());
    for daemon in DAEMONS {
        assert!(up.stdout.contains(&format!("started rkube-{daemon} (pid {}", m.pid(daemon))), "{up:?}");
        assert!(alive(m.pid(daemon)), "rkube-{daemon} runs");
    }
    assert!(up.stdout.contains(&format!("the API server at https://127.0.0.1:{} is ready", m.api_port)), "{up:?}");
    assert!(up.stdout.ends_with("node n1 is Ready\n"), "{up:?}");
    assert!(!up.stderr.contains('\u{1b}'), "no status line without a terminal: {:?}", up.stderr);

    let nodes = m.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!((nodes.code, nodes.stdout.as_str()), (0, "n1"), "{nodes:?}");
    // The controller-manager and scheduler work: a Deployment's pod is created and bound.
    let create =
        m.kubectl(&["create", "deployment", "web", "--image=docker.io/rkube/busybox:latest", "--", "sleep", "3600"]);
    assert_eq!(create.code, 0, "{create:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bound = m.kubectl(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.nodeName}"]);
        if bound.stdout == "n1" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the pod was not scheduled: {bound:?}\n{}", m.logs());
        std::thread::sleep(Duration::from_millis(300));
    }

    // Up again: everything already runs.
    let pids: Vec<u32> = DAEMONS.iter().map(|d| m.pid(d)).collect();
    let again = m.up();
    assert_eq!(again.code, 0, "{again:?}");
    for (daemon, pid) in DAEMONS.iter().zip(&pids) {
        assert!(again.stdout.contains(&format!("rkube-{daemon} is already running (pid {pid})")), "{again:?}");
    }
    // A daemon that died is started again, the others are left alone.
    let scheduler = m.pid("scheduler");
    assert!(Command::new("kill").args(["-9", &scheduler.to_string()]).status().expect("kill").success());
    let restarted = m.up();
    assert_eq!(restarted.code, 0, "{restarted:?}");
    assert!(restarted.stdout.contains("started rkube-scheduler (pid"), "{restarted:?}");
    assert_ne!(m.pid("scheduler"), scheduler);
    assert_eq!(m.pid("apiserver"), pids[0]);

    let pids: Vec<u32> = DAEMONS.iter().map(|d| m.pid(d)).collect();
    let down = m.down();
    assert_eq!(down.code, 0, "{down:?}");
    let stopped: Vec<&str> = down.stdout.lines().collect();
    assert_eq!(
        stopped,
        DAEMONS.iter().zip(&pids).rev().map(|(d, pid)| format!("stopped rkube-{d} (pid {pid})")).collect::<Vec<_>>(),
        "node daemons first"
    );
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} stopped");
    }
    let again = m.down();
    assert_eq!(again.code, 0, "{again:?}");
    for daemon in DAEMONS {
        assert!(again.stdout.contains(&format!("rkube-{daemon} is not running")), "{again:?}");
    }
}

#[test]
fn cluster_up_reports_a_daemon_that_cannot_start_with_its_log() {
    let m = machine();
    set_keys(&m.path("etc").join("scheduler.yaml"), &[("no-such-flag", "1".into())]);
    let up = m.up();
    assert_eq!(up.code, 1, "{up:?}");
    assert!(up.stderr.contains("rkube-scheduler exited; the end of"), "{up:?}");
    assert!(up.stderr.contains("no-such-flag"), "the log says why: {up:?}");
    let down = m.down();
    assert_eq!(down.code, 0, "{down:?}");
    assert!(down.stdout.contains("stopped rkube-apiserver (pid"), "{down:?}");
    assert!(down.stdout.contains("rkube-scheduler is not running"), "{down:?}");

    let none = m.path("empty");
    std::fs::create_dir_all(&none).expect("dir");
    let empty = m.rkubectl(&["cluster", "up", "--config-dir", &none.display().to_string()]);
    assert_eq!(empty.code, 1, "{empty:?}");
    assert!(empty.stderr.contains("no daemon config files in"), "{empty:?}");
}
