//! `rkubectl cluster init|join|token create|up|down`: what kubectl lacks (rkube-clusterops):
//! writing a cluster's PKI and per-daemon kubeconfigs on a control-plane machine, bootstrap
//! tokens, joining a new machine with one (kubeadm's `join --token
//! --discovery-token-ca-cert-hash`), and starting or stopping a machine's daemons.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::progress::Progress;
use clap::{Args, Subcommand};
use rkube_clusterops::daemons::{self, MachineDaemons, Started, Supervisor};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Start this machine's daemons from the config files in --config-dir (as `init
    /// --config-dir` writes them), under systemd when it runs the machine, else as detached
    /// processes with pid files; then wait until the API server is ready and this machine's
    /// node (if it runs a kubelet) is Ready. Daemons already running are left alone.
    Up(UpArgs),
    /// Stop this machine's daemons (those `up` started).
    Down(DownArgs),
}

/// Who runs the daemons: `auto` picks systemd when it is the machine's init.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SupervisorArg {
    /// systemd if it runs the machine, else processes.
    Auto,
    /// systemd units `rkube-<daemon>.service`.
    Systemd,
    /// Detached processes with pid files in --run-dir and logs in --log-dir.
    Processes,
}

/// Where a machine's daemons' files are (shared by `up` and `down`).
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// The daemons' config files, `<daemon>.yaml`; a daemon runs only if its file exists.
    #[arg(long, default_value = "/etc/rkube")]
    pub config_dir: PathBuf,
    /// Pid files of daemons run as processes.
    #[arg(long, default_value = "/run/rkube")]
    pub run_dir: PathBuf,
    /// Logs of daemons run as processes.
    #[arg(long, default_value = "/var/log/rkube")]
    pub log_dir: PathBuf,
    /// Who runs the daemons.
    #[arg(long, value_enum, default_value = "auto")]
    pub supervisor: SupervisorArg,
}

/// Flags of `cluster up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Where the `rkube-<daemon>` binaries are (default: beside rkubectl, else $PATH).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The cluster files' directory; its `admin.kubeconfig` is used to wait when no
    /// --kubeconfig is given.
    #[arg(long, default_value = "/var/lib/rkube")]
    pub dir: PathBuf,
    /// How long to wait for the API server and the node (0 does not wait).
    #[arg(long, default_value = "5m")]
    pub timeout: String,
}

/// Flags of `cluster down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// How long each daemon gets to stop after SIGTERM before SIGKILL.
    #[arg(long, default_value = "30s")]
    pub grace_period: String,
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
        ClusterCommand::Up(args) => up(ctx, args),
        ClusterCommand::Down(args) => down(ctx, args),
    }
}

fn machine_daemons(args: &MachineArgs, bin_dir: Option<PathBuf>) -> (MachineDaemons, Supervisor) {
    let supervisor = match args.supervisor {
        SupervisorArg::Auto => Supervisor::detect(),
        SupervisorArg::Systemd => Supervisor::Systemd,
        SupervisorArg::Processes => Supervisor::Processes,
    };
    let machine = MachineDaemons {
        config_dir: args.config_dir.clone(),
        run_dir: args.run_dir.clone(),
        log_dir: args.log_dir.clone(),
        bin_dir,
    };
    (machine, supervisor)
}

fn ops_error(e: rkube_clusterops::ClusterOpsError) -> Error {
    Error::Usage(e.to_string())
}

fn up(ctx: &mut Ctx, args: UpArgs) -> Result<()> {
    // Beside rkubectl is where an install puts the daemons (and where cargo builds them).
    let bin_dir = args.bin_dir.clone().or_else(|| {
        let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
        dir.join("rkube-apiserver").is_file().then_some(dir)
    });
    let (machine, supervisor) = machine_daemons(&args.machine, bin_dir);
    let daemons = machine.configured();
    if daemons.is_empty() {
        return Err(Error::Usage(format!(
            "no daemon config files in {} (write them with `rkubectl cluster init --config-dir`)",
            machine.config_dir.display()
        )));
    }
    let mut spawned = Vec::new();
    match supervisor {
        Supervisor::Systemd => {
            for command in daemons::systemctl_start(&daemons) {
                daemons::systemctl(&command).map_err(ops_error)?;
            }
            ctx.println(&format!("started {} with systemd", daemons.join(", ")));
        }
        Supervisor::Processes => {
            for daemon in &daemons {
                match machine.start(daemon).map_err(ops_error)? {
                    Started::AlreadyRunning(pid) => {
                        ctx.println(&format!("rkube-{daemon} is already running (pid {pid})"))
                    }
                    Started::Spawned(pid) => {
                        ctx.println(&format!(
                            "started rkube-{daemon} (pid {pid}, log {})",
                            machine.log_file(daemon).display()
                        ));
                        spawned.push(*daemon);
                    }
                }
            }
        }
    }
    ctx.flush();
    let limit = crate::ctx::parse_duration(&args.timeout)?;
    if limit.is_zero() {
        return Ok(());
    }
    if ctx.global.kubeconfig.is_none() && std::env::var_os("KUBECONFIG").is_none() {
        let admin = args.dir.join("admin.kubeconfig");
        if admin.is_file() {
            ctx.global.kubeconfig = Some(admin);
        }
    }
    let node = daemons.contains(&"kubelet").then(|| kubelet_node_name(&machine.config_file("kubelet")));
    let deadline = Instant::now() + limit;
    let progress = Progress::start("waiting for the API server to be ready");
    progress.set_deadline(deadline);
    // A daemon that exits at once (a bad flag, a port in use) is reported with its log rather
    // than waited for until the timeout.
    let check_alive = |machine: &MachineDaemons| -> Result<()> {
        for daemon in &spawned {
            if machine.running(daemon).is_none() {
                return Err(Error::Usage(format!(
                    "rkube-{daemon} exited; the end of {}:\n{}",
                    machine.log_file(daemon).display(),
                    machine.log_tail(daemon, 15)
                )));
            }
        }
        Ok(())
    };
    let client = ctx.client()?;
    let mut last_error: String;
    loop {
        check_alive(&machine)?;
        match client.text("/readyz") {
            Ok(body) if body.trim() == "ok" => break,
            Ok(body) => last_error = body,
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(Error::Usage(format!("timed out waiting for the API server: {last_error}")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    progress.clear();
    ctx.println(&format!("the API server at {} is ready", client.server()));
    ctx.flush();
    if let Some(node) = node {
        progress.set_message(format!("waiting for node {node} to be Ready"));
        loop {
            check_alive(&machine)?;
            let ready = match client.get(&format!("/api/v1/nodes/{}", crate::resource::enc(&node))) {
                Ok(n) => n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")),
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e),
            };
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Usage(format!("timed out waiting for node {node} to be Ready")));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        progress.clear();
        ctx.println(&format!("node {node} is Ready"));
    }
    Ok(())
}

/// The Node name the kubelet registers: its config's `hostname-override`, else the host name
/// lower-cased, as the kubelet itself decides.
fn kubelet_node_name(config: &std::path::Path) -> String {
    let configured = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["hostname-override"].as_str().map(str::to_string));
    configured.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_lowercase()
    })
}

fn down(ctx: &mut Ctx, args: DownArgs) -> Result<()> {
    let grace = crate::ctx::parse_duration(&args.grace_period)?;
    let (machine, supervisor) = machine_daemons(&args.machine, None);
    match supervisor {
        Supervisor::Systemd => {
            let daemons = machine.configured();
            daemons::systemctl(&daemons::systemctl_stop(&daemons)).map_err(ops_error)?;
            ctx.println(&format!("stopped {} with systemd", daemons.join(", ")));
        }
        Supervisor::Processes => {
            // Every daemon with a pid file, configured or not any more; node daemons first.
            for daemon in daemons::DAEMONS.iter().rev() {
                match machine.stop(daemon, grace).map_err(ops_error)? {
                    Some(pid) => ctx.println(&format!("stopped rkube-{daemon} (pid {pid})")),
                    None if machine.config_file(daemon).is_file() => {
                        ctx.println(&format!("rkube-{daemon} is not running"))
                    }
                    None => {}
                }
            }
        }
    }
    Ok(())
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
