//! Starts real etcd and real rkube daemons (as processes) on free ports in a temp dir for tests,
//! and stops them by PID when dropped.

pub mod apiserver;
pub mod containerd;
pub mod daemon;
pub mod etcd;
pub mod images;
pub mod kubelet;
pub mod pki;
pub mod podstatus;
pub mod poll;
pub mod registry;

pub use apiserver::ApiServer;
pub use containerd::Containerd;
pub use daemon::Daemon;
pub use etcd::{Etcd, EtcdTlsFiles};
pub use kubelet::KubeletNode;
pub use pki::TestPki;
pub use poll::eventually;
pub use registry::Registry;

/// Kills a child process and reaps it, if there is one.
pub(crate) fn kill_and_reap(child: &mut Option<std::process::Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub(crate) fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
