//! The control plane plus one real node (a real rkube-kubelet on a real containerd) and the
//! scheduler, for tests of what needs running containers.

use super::{Env, KUBECTL_TIMEOUT, Out, drain};
use rkube_testkit::{Daemon, KubeletNode};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Polls `done` until it holds, failing with `node`'s kubelet log and `env`'s API server log
/// after `limit`.
pub fn wait_on(env: &Env, node: &KubeletNode, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- kubelet log ---\n{}\n--- API server log ---\n{}",
            node.kubelet.log_tail(),
            env.api.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// etcd, the API server, the scheduler and one Ready node named `node_name`.
pub struct NodeCluster {
    pub env: Env,
    pub node: KubeletNode,
    _scheduler: Daemon,
}

impl NodeCluster {
    /// Starts everything and waits until the node is Ready.
    pub fn start(node_name: &str) -> NodeCluster {
        let env = Env::start();
        let node =
            KubeletNode::start(&env.api, node_name, &[]).expect("kubelet starts (cargo build -p rkube-kubelet --bins)");
        let scheduler =
            Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler starts");
        let c = NodeCluster { env, node, _scheduler: scheduler };
        let ready = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        c.wait("the node to be Ready", Duration::from_secs(60), || {
            c.env.run(&["get", "node", node_name, "-o", ready]).stdout == "True"
        });
        c
    }

    /// Polls `done` until it holds, failing with the kubelet's and API server's logs after `limit`.
    pub fn wait(&self, what: &str, limit: Duration, done: impl FnMut() -> bool) {
        wait_on(&self.env, &self.node, what, limit, done);
    }

    /// Runs a client (`cmd`) with `input` written to its stdin, which then stays open for
    /// `hold`; fails the test with the kubelet's log if it hangs.
    pub fn with_stdin(&self, mut cmd: Command, input: &str, hold: Duration) -> Out {
        let what = format!("{cmd:?}");
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("client spawns");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
            std::thread::sleep(hold);
        });
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + KUBECTL_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what} hung\n--- kubelet log ---\n{}", self.node.kubelet.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: stdout.recv().unwrap_or_default(),
            stderr: stderr.recv().unwrap_or_default(),
        }
    }
}

/// A long-running client (`cmd`, its stderr as the caller set it) whose stdout lines arrive on
/// a channel.
pub fn lines(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("client spawns");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}
