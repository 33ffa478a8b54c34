//! The kubelet: registers its Node and renews its Lease, runs the Pods bound to it through
//! containerd's CRI (sandboxes, images, containers, volumes, probes) and reports their status.

pub mod config;
pub mod cri;
pub mod downward;
pub mod env;
pub mod node;
pub mod provisioner;
pub mod volumes;

pub use config::Config;

/// Runs the kubelet until `token` is cancelled.
pub async fn run(config: Config, token: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let _ = (config, token);
    anyhow::bail!("not yet")
}
