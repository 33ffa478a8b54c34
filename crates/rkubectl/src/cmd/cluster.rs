//! `rkubectl cluster init|join|token create`: what kubectl lacks (rkube-clusterops): writing
//! a cluster's PKI and per-daemon kubeconfigs on a control-plane machine, bootstrap tokens,
//! and joining a new machine with one (kubeadm's `join --token --discovery-token-ca-cert-hash`).

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
    /// Join this machine as a node: trust the API server only through the CA whose key hash
    /// is pinned, get the kubelet's client and serving certificates through CSRs with the
    /// bootstrap token, and write `<dir>/kubelet-<node>.kubeconfig`, `<dir>/pki/ca.crt` and
    /// `<dir>/pki/kubelet-<node>.{crt,key}`.
    Join(JoinArgs),
    /// Bootstrap tokens for joining nodes.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `cluster token` verbs.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token (a Secret in kube-system) and print the join command line.
    Create(TokenCreateArgs),
}

/// Flags of `cluster join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The API server, `https://host:port`.
    pub server: String,
    /// The bootstrap token, `<id>.<secret>` (from `rkubectl cluster token create`).
    #[arg(long)]
    pub token: String,
    /// `sha256:<hex>` of the cluster CA's public key; the server is trusted only through it.
    #[arg(long = "discovery-token-ca-cert-hash")]
    pub ca_cert_hash: String,
    /// This node's name.
    #[arg(long)]
    pub node_name: String,
    /// Addresses for the kubelet serving certificate (repeatable or comma-separated).
    #[arg(long = "node-ip", value_delimiter = ',')]
    pub node_ips: Vec<std::net::IpAddr>,
    /// Directory for the files.
    #[arg(long, default_value = "/var/lib/rkube")]
    pub dir: PathBuf,
    /// How long to wait for each certificate to be approved and signed.
    #[arg(long, default_value = "2m")]
    pub timeout: String,
}

/// Flags of `cluster token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// How long the token is valid; `0` never expires.
    #[arg(long, default_value = "24h")]
    pub ttl: String,
    /// The cluster CA certificate, to print its hash in the join command.
    #[arg(long, default_value = "/var/lib/rkube/pki/ca.crt")]
    pub ca_file: PathBuf,
    /// A note kept in the token's Secret.
    #[arg(long, default_value = "rkubectl cluster token create")]
    pub description: String,
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
    /// Also write this machine's daemon config files here (e.g. `/etc/rkube`; kept if present).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Also write the systemd units here (e.g. `/etc/systemd/system`; kept if present).
    #[arg(long)]
    pub units_dir: Option<PathBuf>,
    /// etcd client URLs for the API server's config file.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// The address this machine's API server announces.
    #[arg(long)]
    pub advertise_address: Option<String>,
    /// The node this machine's kubelet and proxy run as (one of `--node`), for their configs.
    #[arg(long)]
    pub this_node: Option<String>,
}

/// Runs a cluster command.
pub fn run(ctx: &mut Ctx, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Init(args) => init(ctx, args),
        ClusterCommand::Join(args) => join(ctx, args),
        ClusterCommand::Token(TokenCommand::Create(args)) => token_create(ctx, args),
    }
}

fn join(ctx: &mut Ctx, args: JoinArgs) -> Result<()> {
    let options = rkube_clusterops::JoinOptions {
        server: args.server,
        token: args.token,
        ca_cert_hash: args.ca_cert_hash,
        node_name: args.node_name,
        node_ips: args.node_ips,
        dir: args.dir,
        timeout: crate::ctx::parse_duration(&args.timeout)?,
    };
    let joined = rkube_clusterops::join(&options).map_err(|e| Error::Usage(e.to_string()))?;
    ctx.println(&format!("node {} joined (CSRs {})", options.node_name, joined.csrs.join(", ")));
    ctx.println(&format!("kubelet kubeconfig: {}", joined.kubeconfig.display()));
    ctx.println(&format!("cluster CA: {}", joined.ca_file.display()));
    match &joined.serving {
        Some((cert, key)) => {
            ctx.println(&format!("kubelet serving certificate: {} (key {})", cert.display(), key.display()))
        }
        None => ctx.println(
            "the kubelet serving CSR was not issued in time: the kubelet serves with a self-signed certificate \
             (approve it with `kubectl certificate approve` and join again to get one)",
        ),
    }
    Ok(())
}

fn token_create(ctx: &mut Ctx, args: TokenCreateArgs) -> Result<()> {
    let ttl = crate::ctx::parse_duration(&args.ttl)?;
    let ca = std::fs::read_to_string(&args.ca_file)
        .map_err(|e| Error::Usage(format!("--ca-file {}: {e}", args.ca_file.display())))?;
    let (token, secret) = rkube_clusterops::bootstrap_token_secret((!ttl.is_zero()).then_some(ttl), &args.description)
        .map_err(|e| Error::Usage(e.to_string()))?;
    let client = ctx.client()?;
    client.json(
        reqwest::Method::POST,
        "/api/v1/namespaces/kube-system/secrets",
        "application/json",
        Some(("application/json", &secret)),
    )?;
    let line = rkube_clusterops::join_command(client.server(), &token, &ca).map_err(|e| Error::Usage(e.to_string()))?;
    ctx.println(&line);
    Ok(())
}

fn init(ctx: &mut Ctx, args: InitArgs) -> Result<()> {
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
        dir: args.dir.clone(),
        server,
        apiserver_dns_names: names,
        apiserver_ips: ips,
        service_cidr: args.service_cidr,
        nodes,
    };
    let files = rkube_clusterops::init(&options).map_err(|e| Error::Usage(e.to_string()))?;
    ctx.println(&format!("cluster files are in {}", files.dir.display()));
    ctx.println(&format!("admin kubeconfig: {}", files.kubeconfig("admin").display()));
    if let Some(config_dir) = args.config_dir {
        let machine = rkube_clusterops::MachineOptions {
            config_dir,
            units_dir: args.units_dir,
            etcd_servers: args.etcd_servers,
            advertise_address: args.advertise_address,
            node: args.this_node,
        };
        for path in rkube_clusterops::write_machine_files(&files, &machine).map_err(|e| Error::Usage(e.to_string()))? {
            ctx.println(&format!("wrote {}", path.display()));
        }
    } else if args.units_dir.is_some() || args.this_node.is_some() {
        return Err(Error::Usage("--units-dir and --this-node go with --config-dir".into()));
    }
    Ok(())
}
