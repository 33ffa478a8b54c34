//! `rkubectl cluster init`: what kubectl lacks, writing a cluster's PKI and per-daemon
//! kubeconfigs (rkube-clusterops) for a control-plane machine.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Cluster operations.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Write the cluster CA, the API server and ServiceAccount keys, and one kubeconfig per
    /// daemon and node (existing files are kept). The API server URL comes from --server.
    Init(InitArgs),
}

/// Flags of `cluster init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory for the files (`pki/`, `<daemon>.kubeconfig`, `kubelet-<node>.kubeconfig`).
    #[arg(long, default_value = "/var/lib/rkube")]
    pub dir: PathBuf,
    /// Extra DNS names of the API server certificate.
    #[arg(long = "apiserver-cert-extra-sans", value_delimiter = ',')]
    pub extra_sans: Vec<String>,
    /// The Service CIDR (its first address goes into the API server certificate).
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// A node to write credentials for: `name` or `name=ip[,ip...]` (repeatable).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
}

/// Runs a cluster command.
pub fn run(ctx: &mut Ctx, cmd: ClusterCommand) -> Result<()> {
    let ClusterCommand::Init(args) = cmd;
    let server = ctx.global.server.clone().unwrap_or_else(|| "https://127.0.0.1:6443".to_string());
    let (mut ips, mut names) = (Vec::new(), Vec::new());
    for san in args.extra_sans {
        match san.parse() {
            Ok(ip) => ips.push(ip),
            Err(_) => names.push(san),
        }
    }
    let nodes = args
        .nodes
        .iter()
        .map(|n| n.parse::<rkube_clusterops::NodeSpec>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let options = rkube_clusterops::InitOptions {
        dir: args.dir,
        server,
        apiserver_dns_names: names,
        apiserver_ips: ips,
        service_cidr: args.service_cidr,
        nodes,
    };
    let files = rkube_clusterops::init(&options).map_err(|e| Error::Usage(e.to_string()))?;
    ctx.println(&format!("cluster files are in {}", files.dir.display()));
    ctx.println(&format!("admin kubeconfig: {}", files.kubeconfig("admin").display()));
    Ok(())
}
