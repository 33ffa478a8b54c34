//! The control plane plus one real node (a real rkube-kubelet on a real containerd) and the
//! scheduler, for tests of what needs running containers.

use super::Env;
use rkube_testkit::{Daemon, KubeletNode};
use std::time::{Duration, Instant};

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
    pub fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- kubelet log ---\n{}\n--- API server log ---\n{}",
                self.node.kubelet.log_tail(),
                self.env.api.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
