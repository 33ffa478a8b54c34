//! rkube-pod-bench: pod startup latency of rkube against the raw CRI floor, in one run, on one
//! machine and one containerd.
//!
//! 1. Raw CRI: for each batch size N, N tasks start at once, each doing RunPodSandbox,
//!    CreateContainer (busybox, a shell loop) and StartContainer straight on containerd's
//!    socket; a pod's latency runs from its task's start to StartContainer returning. Every
//!    sandbox is stopped and removed before the next round.
//! 2. rkube: with the raw pods gone, etcd, rkube-apiserver, rkube-scheduler and rkube-kubelet
//!    (on the same containerd) start; for each N, N pods without a nodeName are created at
//!    once, and one watch, opened before the creates, records when each is bound, Running and
//!    Ready. Latency runs from the start of the pod's create request. The pods are deleted and
//!    gone (from the API and from containerd) before the next round.
//!
//! containerd's own timestamps (sandbox created, container started) split each rkube pod's
//! time into scheduler, kubelet pick-up, runtime and status-report shares, and the same split
//! of the raw pods says which share the runtime alone needs.

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_bench::{cpu_seconds, machine_cpu_seconds, ms, p50_p99, tree_cpu_seconds};
use rkube_client::{Api, Client, DeleteParams, ListParams, WatchEvent};
use rkube_testkit::{ApiServer, Containerd, Daemon, Etcd, images};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser, Debug)]
#[command(about = "Pod startup latency: rkube (create -> Running/Ready) against raw CRI calls on the same containerd")]
struct Args {
    /// Batch sizes: pods started at once per round, comma-separated (at most 110, the node's pod limit).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pods: Vec<usize>,
    /// Rounds per batch size; percentiles pool the pods of all rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds a round may take before the bench gives up.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Log level of the kubelet and the scheduler (their logging costs CPU on the measured path).
    #[arg(long, default_value = "warn")]
    daemon_log_level: String,
    /// Alternate raw and rkube rounds (the kubelet stopped during raw ones, so it cannot touch
    /// their sandboxes) instead of all raw rounds first, so that load from other work on the
    /// machine falls on both sides alike.
    #[arg(long)]
    interleave: bool,
}

/// The container every pod runs: exits at once on SIGTERM, so teardown is not the grace period.
const SCRIPT: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// Label on the raw sandboxes, so teardown finds every one of them, even after a failed round.
const RAW_LABEL: &str = "rkube-bench";

/// Label on the rkube pods, which the watch and the clean-up select on.
const POD_LABEL: &str = "rkube-bench";

/// The node name the kubelet registers.
const NODE: &str = "bench-node";

/// Namespace of the rkube pods.
const NAMESPACE: &str = "default";

/// The metrics a run collects, keyed by (batch size, metric).
type Samples = BTreeMap<(usize, &'static str), Vec<Duration>>;

const RAW_TOTAL: &str = "raw: task start -> StartContainer returned";
const RAW_SANDBOX_CALL: &str = "raw: RunPodSandbox call";
const RAW_CREATE_CALL: &str = "raw: CreateContainer call";
const RAW_START_CALL: &str = "raw: StartContainer call";
const RAW_TO_SANDBOX: &str = "raw: task start -> sandbox created_at";
const RAW_SANDBOX_TO_CREATED: &str = "raw: sandbox created_at -> container created_at";
const RAW_CREATED_TO_STARTED: &str = "raw: container created_at -> started_at";
const RAW_STARTED_TO_RETURN: &str = "raw: container started_at -> StartContainer returned";
const RK_RUNNING: &str = "rkube: create -> Running seen";
const RK_READY: &str = "rkube: create -> Ready seen";
const RK_BOUND: &str = "rkube: create -> bound seen (scheduler)";
const RK_TO_SANDBOX: &str = "rkube: bound seen -> sandbox created_at (kubelet pick-up)";
const RK_SANDBOX_TO_CREATED: &str = "rkube: sandbox created_at -> container created_at";
const RK_CREATED_TO_STARTED: &str = "rkube: container created_at -> started_at";
const RK_STARTED_TO_RUNNING: &str = "rkube: container started_at -> Running seen (status report)";
const RK_RUNNING_TO_READY: &str = "rkube: Running seen -> Ready seen";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.pods.is_empty() || args.pods.iter().any(|&n| n == 0 || n > 110) {
        bail!("--pods takes batch sizes from 1 to 110 and --rounds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("rkube-pod-bench: batch sizes {:?}, {} rounds each, {cores} cores", args.pods, args.rounds);
    let containerd = Containerd::start().context("starting containerd")?;
    let runtime = connect(&containerd.socket())?;
    let version = runtime.clone().version(cri::VersionRequest { version: "v1".into() }).await?.into_inner();
    println!("runtime: {} {}", version.runtime_name, version.runtime_version);

    let mut samples = Samples::new();
    if args.interleave {
        let mut cluster = Cluster::start(&containerd, &args).await?;
        for &n in &args.pods {
            for round in 0..args.rounds {
                // The kubelet's housekeeping removes sandboxes of pods it does not know.
                cluster.kubelet.kill();
                raw_and_teardown(&runtime, &containerd, n, round, &mut samples).await?;
                cluster.restart_kubelet().await?;
                rkube_and_cleanup(&cluster, &runtime, &containerd, n, round, &args, &mut samples).await?;
            }
        }
    } else {
        for &n in &args.pods {
            for round in 0..args.rounds {
                raw_and_teardown(&runtime, &containerd, n, round, &mut samples).await?;
            }
        }
        let cluster = Cluster::start(&containerd, &args).await?;
        for &n in &args.pods {
            for round in 0..args.rounds {
                rkube_and_cleanup(&cluster, &runtime, &containerd, n, round, &args, &mut samples).await?;
            }
        }
    }
    report(&args, &samples);
    Ok(())
}

/// One raw round, then its teardown whether or not the round succeeded.
async fn raw_and_teardown(
    runtime: &RuntimeServiceClient<Channel>,
    containerd: &Containerd,
    n: usize,
    round: usize,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let result = raw_round(runtime, containerd, n, round, samples).await;
    let teardown = teardown_raw(runtime).await;
    result?;
    println!("  teardown of {n} raw pods: {:.0} ms", ms(teardown?));
    Ok(())
}

/// One rkube round, then the deletion of its pods whether or not the round succeeded.
async fn rkube_and_cleanup(
    cluster: &Cluster,
    runtime: &RuntimeServiceClient<Channel>,
    containerd: &Containerd,
    n: usize,
    round: usize,
    args: &Args,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let result = rkube_round(cluster, runtime, containerd, n, round, args, samples).await;
    let cleanup = cluster.delete_all(runtime, Duration::from_secs(args.timeout)).await;
    result?;
    println!("  deletion of {n} pods until gone from the API and containerd: {:.0} ms", ms(cleanup?));
    Ok(())
}

/// A RuntimeService client on containerd's unix socket.
fn connect(socket: &Path) -> anyhow::Result<RuntimeServiceClient<Channel>> {
    let socket = socket.to_path_buf();
    // tonic wants a URI; the connector ignores it and dials the socket.
    let channel =
        Endpoint::try_from("http://[::1]:50051")?.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }));
    Ok(RuntimeServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

/// Namespaces as the kubelet asks for them: the pod's network and IPC, a PID namespace per container.
fn namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn raw_sandbox_config(logs_dir: &Path, name: &str) -> cri::PodSandboxConfig {
    let uid = format!("rkube-bench-{}-{name}", std::process::id());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.clone(),
            namespace: "rkube-bench".into(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: logs_dir.join(format!("rkube-bench_{name}_{uid}")).to_string_lossy().into_owned(),
        // What the kubelet hands a ClusterFirst pod, so containerd writes the same resolv.conf.
        dns_config: Some(cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: HashMap::from([(RAW_LABEL.to_string(), "raw".to_string())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn raw_container_config() -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: "main".into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: images::BUSYBOX_IMAGE.into(), ..Default::default() }),
        command: vec!["sh".into(), "-c".into(), SCRIPT.into()],
        log_path: "main/0.log".into(),
        labels: HashMap::from([(RAW_LABEL.to_string(), "raw".to_string())]),
        linux: Some(cri::LinuxContainerConfig {
            // The kubelet's shares for a container without requests.
            resources: Some(cri::LinuxContainerResources { cpu_shares: 2, ..Default::default() }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// One raw pod's timings: when its task started (wall clock), each call, and the total.
struct RawPod {
    sandbox_id: String,
    started: SystemTime,
    sandbox_call: Duration,
    create_call: Duration,
    start_call: Duration,
    total: Duration,
}

async fn raw_pod(mut rt: RuntimeServiceClient<Channel>, logs_dir: PathBuf, name: String) -> anyhow::Result<RawPod> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let config = raw_sandbox_config(&logs_dir, &name);
    std::fs::create_dir_all(&config.log_directory)?;
    let sandbox_id = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() })
        .await
        .with_context(|| format!("RunPodSandbox {name}"))?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let container_id = rt
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.clone(),
            config: Some(raw_container_config()),
            sandbox_config: Some(config),
        })
        .await
        .with_context(|| format!("CreateContainer {name}"))?
        .into_inner()
        .container_id;
    let t2 = Instant::now();
    rt.start_container(cri::StartContainerRequest { container_id })
        .await
        .with_context(|| format!("StartContainer {name}"))?;
    let t3 = Instant::now();
    Ok(RawPod { sandbox_id, started, sandbox_call: t1 - t0, create_call: t2 - t1, start_call: t3 - t2, total: t3 - t0 })
}

/// containerd's timestamps (nanoseconds since the epoch) as wall-clock times.
fn from_nanos(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// `b - a`, zero when the clocks put b first.
fn between(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a).unwrap_or(Duration::ZERO)
}

/// What containerd recorded about one pod: its sandbox, and when its container was created and started.
struct RuntimeTimes {
    sandbox: cri::PodSandbox,
    container: Option<(SystemTime, SystemTime)>,
}

/// containerd's timestamps of the sandboxes carrying `sandbox_label`, by sandbox id.
async fn runtime_times(
    rt: &RuntimeServiceClient<Channel>,
    sandbox_label: (&str, &str),
) -> anyhow::Result<HashMap<String, RuntimeTimes>> {
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([(sandbox_label.0.to_string(), sandbox_label.1.to_string())]),
        ..Default::default()
    };
    let sandboxes =
        rt.clone().list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) }).await?.into_inner();
    let mut out: HashMap<String, RuntimeTimes> =
        sandboxes.items.into_iter().map(|s| (s.id.clone(), RuntimeTimes { sandbox: s, container: None })).collect();
    let containers = rt.clone().list_containers(cri::ListContainersRequest { filter: None }).await?.into_inner();
    for c in containers.containers {
        let Some(entry) = out.get_mut(&c.pod_sandbox_id) else { continue };
        let status = rt
            .clone()
            .container_status(cri::ContainerStatusRequest { container_id: c.id.clone(), verbose: false })
            .await?
            .into_inner();
        if let Some(s) = status.status.filter(|s| s.started_at > 0) {
            entry.container = Some((from_nanos(s.created_at), from_nanos(s.started_at)));
        }
    }
    Ok(out)
}

async fn raw_round(
    rt: &RuntimeServiceClient<Channel>,
    containerd: &Containerd,
    n: usize,
    round: usize,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let logs_dir = containerd.logs_dir();
    let cpu = CpuMeter::start(&[("bench", std::process::id())], &RuntimeTree::new(containerd));
    let tasks: Vec<_> =
        (0..n).map(|i| tokio::spawn(raw_pod(rt.clone(), logs_dir.clone(), format!("raw-{n}-{round}-{i}")))).collect();
    let mut pods = Vec::with_capacity(n);
    for t in tasks {
        pods.push(t.await??);
    }
    let cpu = cpu.stop(n);
    let times = runtime_times(rt, (RAW_LABEL, "raw")).await?;
    let mut totals = Vec::with_capacity(n);
    for p in &pods {
        totals.push(p.total);
        let mut push = |k: &'static str, d: Duration| samples.entry((n, k)).or_default().push(d);
        push(RAW_TOTAL, p.total);
        push(RAW_SANDBOX_CALL, p.sandbox_call);
        push(RAW_CREATE_CALL, p.create_call);
        push(RAW_START_CALL, p.start_call);
        if let Some(RuntimeTimes { sandbox, container: Some((created_at, started_at)) }) = times.get(&p.sandbox_id) {
            let sandbox_created = from_nanos(sandbox.created_at);
            push(RAW_TO_SANDBOX, between(p.started, sandbox_created));
            push(RAW_SANDBOX_TO_CREATED, between(sandbox_created, *created_at));
            push(RAW_CREATED_TO_STARTED, between(*created_at, *started_at));
            push(RAW_STARTED_TO_RETURN, between(*started_at, p.started + p.total));
        }
    }
    let (p50, p99) = p50_p99(&totals);
    println!(
        "raw CRI   N={n:<3} round {}: start->started p50 {:>7.1} ms p99 {:>7.1} ms | {cpu}",
        round + 1,
        ms(p50),
        ms(p99)
    );
    Ok(())
}

/// Stops and removes every raw sandbox (their containers go with them); returns how long it took.
async fn teardown_raw(rt: &RuntimeServiceClient<Channel>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([(RAW_LABEL.to_string(), "raw".to_string())]),
        ..Default::default()
    };
    let sandboxes =
        rt.clone().list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) }).await?.into_inner().items;
    let tasks: Vec<_> = sandboxes
        .into_iter()
        .map(|s| {
            let mut rt = rt.clone();
            tokio::spawn(async move {
                rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: s.id.clone() }).await?;
                rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: s.id }).await?;
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    for task in tasks {
        task.await?.context("tearing down a raw sandbox")?;
    }
    Ok(t.elapsed())
}

/// CPU used between `start` and `stop` by named processes, by the container runtime's whole
/// process tree, and by the whole machine.
struct CpuMeter {
    pids: Vec<(&'static str, u32, f64)>,
    runtime: RuntimeTree,
    runtime_before: f64,
    machine: (f64, f64),
}

/// containerd and everything it runs: its shims (found by the socket on their command line,
/// since they reparent themselves to init), runc and CNI plugins, and the containers.
#[derive(Clone)]
struct RuntimeTree {
    containerd_pid: u32,
    socket: String,
}

impl RuntimeTree {
    fn new(containerd: &Containerd) -> RuntimeTree {
        RuntimeTree { containerd_pid: containerd.pid().unwrap_or(0), socket: containerd.socket().display().to_string() }
    }

    fn cpu_seconds(&self) -> f64 {
        tree_cpu_seconds(|pid, cmdline| {
            pid == self.containerd_pid || (cmdline.contains("containerd-shim") && cmdline.contains(&self.socket))
        })
    }
}

impl CpuMeter {
    /// `named` are processes outside the runtime tree (the bench, the rkube daemons).
    fn start(named: &[(&'static str, u32)], runtime: &RuntimeTree) -> CpuMeter {
        let pids = named.iter().map(|&(n, p)| (n, p, cpu_seconds(p))).collect();
        let runtime_before = runtime.cpu_seconds();
        CpuMeter { pids, runtime: runtime.clone(), runtime_before, machine: machine_cpu_seconds() }
    }

    /// CPU ms per pod of each named process, of the runtime tree, of all of them together
    /// ("ours") and of the whole machine, whose excess over ours is other work on the machine.
    fn stop(self, pods: usize) -> String {
        let (busy, total) = machine_cpu_seconds();
        let per_pod = |seconds: f64| seconds * 1e3 / pods as f64;
        let runtime = self.runtime.cpu_seconds() - self.runtime_before;
        let mut ours = runtime;
        let mut parts: Vec<String> = Vec::new();
        for (name, pid, before) in &self.pids {
            let used = cpu_seconds(*pid) - before;
            ours += used;
            parts.push(format!("{name} {:.1}", per_pod(used)));
        }
        parts.push(format!("runtime tree {:.1}", per_pod(runtime)));
        let busy = busy - self.machine.0;
        let share = if total > self.machine.1 { busy / (total - self.machine.1) } else { 0.0 };
        format!(
            "cpu ms/pod: {}; ours {:.0}, whole machine {:.0} (busy {:.0}%)",
            parts.join(", "),
            per_pod(ours),
            per_pod(busy),
            share * 100.0
        )
    }
}

/// etcd, API server, scheduler and kubelet, the kubelet on the bench's containerd.
struct Cluster {
    // Fields drop in order: the kubelet goes first, so it does not see its API server vanish.
    kubelet: Daemon,
    scheduler: Daemon,
    api: ApiServer,
    etcd: Etcd,
    kubelet_health: String,
    client: Client,
    _root: tempfile::TempDir,
}

impl Cluster {
    async fn start(containerd: &Containerd, args: &Args) -> anyhow::Result<Cluster> {
        let etcd = Etcd::start().context("starting etcd")?;
        let api = ApiServer::start(&etcd).context("starting rkube-apiserver")?;
        let health = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
        let scheduler = Daemon::start(
            "rkube-scheduler",
            &api,
            &[
                "--leader-elect=false",
                "--secure-port",
                &health,
                "--bind-address",
                "127.0.0.1",
                "--log-level",
                &args.daemon_log_level,
            ],
        )?;
        let root = tempfile::Builder::new().prefix("rkube-pod-bench-").tempdir()?;
        let root_dir = root.path().join("kubelet");
        let kubelet_health = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port().to_string();
        let kubelet = Daemon::start(
            "rkube-kubelet",
            &api,
            &[
                "--hostname-override",
                NODE,
                "--node-ip",
                "127.0.0.1",
                "--port",
                "0",
                "--container-runtime-endpoint",
                &containerd.endpoint(),
                "--root-dir",
                &root_dir.to_string_lossy(),
                "--pod-logs-dir",
                &containerd.logs_dir().to_string_lossy(),
                "--address",
                "127.0.0.1",
                "--secure-port",
                &kubelet_health,
                "--log-level",
                &args.daemon_log_level,
            ],
        )?;
        let client = Client::new(&api.url())?;
        let cluster = Cluster { kubelet, scheduler, api, etcd, kubelet_health, client, _root: root };
        cluster.wait_ready(&health).await?;
        Ok(cluster)
    }

    /// Starts the kubelet again (after a raw round) and waits until it serves /readyz, which it
    /// does once its pod manager exists.
    async fn restart_kubelet(&mut self) -> anyhow::Result<()> {
        self.kubelet.restart()?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/readyz", self.kubelet_health);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            if Instant::now() > deadline {
                bail!("the restarted kubelet did not become ready\n--- kubelet ---\n{}", self.kubelet.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits for the scheduler's /readyz and the node's Ready condition.
    async fn wait_ready(&self, scheduler_health: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let nodes = self.client.api::<Node>(None);
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut scheduler_ready, mut node_ready) = (false, false);
        while !(scheduler_ready && node_ready) {
            if Instant::now() > deadline {
                bail!(
                    "cluster not ready (scheduler {scheduler_ready}, node {node_ready})\n--- kubelet ---\n{}\n--- scheduler ---\n{}",
                    self.kubelet.log_tail(),
                    self.scheduler.log_tail()
                );
            }
            if !scheduler_ready {
                let url = format!("http://127.0.0.1:{scheduler_health}/readyz");
                scheduler_ready = http.get(url).send().await.is_ok_and(|r| r.status().is_success());
            }
            if !node_ready && let Ok(Some(node)) = nodes.get_opt(NODE).await {
                node_ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn pods(&self) -> Api<Pod> {
        self.client.api::<Pod>(Some(NAMESPACE))
    }

    fn cpu_meter(&self, containerd: &Containerd) -> CpuMeter {
        let pid = |p: Option<u32>| p.unwrap_or(0);
        CpuMeter::start(
            &[
                ("etcd", pid(self.etcd.pid())),
                ("apiserver", pid(self.api.pid())),
                ("scheduler", pid(self.scheduler.pid())),
                ("kubelet", pid(self.kubelet.pid())),
                ("bench", std::process::id()),
            ],
            &RuntimeTree::new(containerd),
        )
    }

    /// Deletes every bench pod and waits until the API and containerd have none left.
    async fn delete_all(&self, rt: &RuntimeServiceClient<Channel>, limit: Duration) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let api = self.pods();
        let selector = ListParams::labels(&format!("{POD_LABEL}=pods"));
        let names: Vec<String> = api.list(&selector).await?.items.into_iter().filter_map(|p| p.metadata.name).collect();
        let deletes: Vec<_> = names
            .into_iter()
            .map(|name| {
                let api = api.clone();
                tokio::spawn(async move {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Err(e) if !e.is_not_found() => Err(anyhow::Error::from(e).context(format!("deleting {name}"))),
                        _ => Ok(()),
                    }
                })
            })
            .collect();
        for d in deletes {
            d.await??;
        }
        let deadline = t + limit;
        loop {
            let left = api.list(&selector).await?.items.len();
            let sandboxes = rt
                .clone()
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
                .await?
                .into_inner()
                .items
                .len();
            if left == 0 && sandboxes == 0 {
                return Ok(t.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "{left} pods and {sandboxes} sandboxes still there\n--- kubelet ---\n{}",
                    self.kubelet.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// When the watch first showed a pod bound, Running, and Ready.
#[derive(Default, Clone, Copy)]
struct Marks {
    bound: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
    /// ADDED and MODIFIED events seen until Ready: the create, the binding, each status write.
    events: u32,
}

fn update_marks(marks: &mut Marks, pod: &Pod, now: Instant) {
    if marks.ready.is_none() {
        marks.events += 1;
    }
    if marks.bound.is_none() && pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty()) {
        marks.bound = Some(now);
    }
    let status = pod.status.as_ref();
    if marks.running.is_none() && status.and_then(|s| s.phase.as_deref()) == Some("Running") {
        marks.running = Some(now);
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if marks.ready.is_none() && ready {
        marks.ready = Some(now);
    }
}

/// Follows the bench pods from `resource_version` until `n` of them are Running and Ready or
/// the deadline passes, re-opening the watch if the server ends it.
async fn watch_pods(
    api: Api<Pod>,
    mut resource_version: String,
    n: usize,
    deadline: Instant,
) -> anyhow::Result<HashMap<String, Marks>> {
    let selector = ListParams::labels(&format!("{POD_LABEL}=pods"));
    let mut marks: HashMap<String, Marks> = HashMap::new();
    let done =
        |m: &HashMap<String, Marks>| m.values().filter(|m| m.running.is_some() && m.ready.is_some()).count() >= n;
    while !done(&marks) && Instant::now() < deadline {
        let mut stream = Box::pin(api.watch(&selector, &resource_version).await?);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(event)) = tokio::time::timeout(wait, stream.next()).await else { break };
            let now = Instant::now();
            match event? {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    if let Some(rv) = p.metadata.resource_version.clone() {
                        resource_version = rv;
                    }
                    let name = p.metadata.name.clone().unwrap_or_default();
                    update_marks(marks.entry(name).or_default(), &p, now);
                }
                WatchEvent::Deleted(p) => {
                    if let Some(rv) = p.metadata.resource_version {
                        resource_version = rv;
                    }
                }
                WatchEvent::Bookmark(rv) => resource_version = rv,
                WatchEvent::Error(e) => bail!("the pod watch failed: {e}"),
            }
            if done(&marks) {
                break;
            }
        }
    }
    Ok(marks)
}

fn bench_pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {POD_LABEL: "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": images::BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", SCRIPT]}],
        },
    }))?)
}

async fn rkube_round(
    cluster: &Cluster,
    rt: &RuntimeServiceClient<Channel>,
    containerd: &Containerd,
    n: usize,
    round: usize,
    args: &Args,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let api = cluster.pods();
    let from = api.list(&ListParams::labels(&format!("{POD_LABEL}=pods"))).await?.resource_version;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let watcher = tokio::spawn(watch_pods(api.clone(), from, n, deadline));
    // Let the watch register before the first create, so no event precedes it.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let cpu = cluster.cpu_meter(containerd);
    let sent: Arc<Mutex<HashMap<String, (Instant, SystemTime)>>> = Arc::default();
    let creates: Vec<_> = (0..n)
        .map(|i| {
            let (api, sent) = (api.clone(), sent.clone());
            tokio::spawn(async move {
                let name = format!("pod-{n}-{round}-{i}");
                let pod = bench_pod(&name)?;
                let at = (Instant::now(), SystemTime::now());
                sent.lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone(), at);
                api.create(&pod).await.with_context(|| format!("creating {name}"))?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for c in creates {
        c.await??;
    }
    let marks = watcher.await??;
    let cpu = cpu.stop(n);
    let complete = marks.values().filter(|m| m.running.is_some() && m.ready.is_some()).count();
    if complete < n {
        bail!(
            "only {complete} of {n} pods became Running and Ready in {} s\n--- kubelet ---\n{}\n--- scheduler ---\n{}\n--- containerd ---\n{}",
            args.timeout,
            cluster.kubelet.log_tail(),
            cluster.scheduler.log_tail(),
            containerd.log_tail()
        );
    }

    let times = runtime_times(rt, ("io.kubernetes.pod.namespace", NAMESPACE)).await?;
    let by_pod: HashMap<String, (SystemTime, (SystemTime, SystemTime))> = times
        .into_values()
        .filter_map(|t| Some((t.sandbox.metadata?.name, (from_nanos(t.sandbox.created_at), t.container?))))
        .collect();
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut running = Vec::with_capacity(n);
    let mut ready = Vec::with_capacity(n);
    for (name, m) in &marks {
        let (Some(&(t0, wall0)), Some(run_at), Some(ready_at)) = (sent.get(name), m.running, m.ready) else { continue };
        let mut push = |k: &'static str, d: Duration| samples.entry((n, k)).or_default().push(d);
        push(RK_RUNNING, run_at - t0);
        push(RK_READY, ready_at - t0);
        push(RK_RUNNING_TO_READY, ready_at.saturating_duration_since(run_at));
        running.push(run_at - t0);
        ready.push(ready_at - t0);
        // The watch's instants on the wall clock, to line them up with containerd's timestamps.
        let wall = |i: Instant| wall0 + (i - t0);
        if let Some(bound) = m.bound {
            push(RK_BOUND, bound - t0);
            if let Some(&(sandbox_created, (created_at, started_at))) = by_pod.get(name) {
                push(RK_TO_SANDBOX, between(wall(bound), sandbox_created));
                push(RK_SANDBOX_TO_CREATED, between(sandbox_created, created_at));
                push(RK_CREATED_TO_STARTED, between(created_at, started_at));
                push(RK_STARTED_TO_RUNNING, between(started_at, wall(run_at)));
            }
        }
    }
    let (r50, r99) = p50_p99(&running);
    let (y50, y99) = p50_p99(&ready);
    let events = marks.values().map(|m| f64::from(m.events)).sum::<f64>() / n as f64;
    println!(
        "rkube     N={n:<3} round {}: create->Running p50 {:>7.1} ms p99 {:>7.1} ms, create->Ready p50 {:>7.1} ms p99 {:>7.1} ms, {events:.1} writes/pod seen | {cpu}",
        round + 1,
        ms(r50),
        ms(r99),
        ms(y50),
        ms(y99)
    );
    Ok(())
}

fn report(args: &Args, samples: &Samples) {
    let pair = |n: usize, k: &'static str| {
        samples.get(&(n, k)).filter(|v| !v.is_empty()).map(|v| p50_p99(v)).unwrap_or((Duration::ZERO, Duration::ZERO))
    };
    let ratio = |a: Duration, b: Duration| if b.is_zero() { 0.0 } else { a.as_secs_f64() / b.as_secs_f64() };
    println!();
    println!("pod startup latency, ms, p50 / p99 over {} round(s) per N", args.rounds);
    println!(
        "{:>4} | {:>17} | {:>17} | {:>17} | {:>18} | {:>16}",
        "N", "raw CRI", "rkube Running", "rkube Ready", "Running p99 / raw", "Ready p99 / raw"
    );
    for &n in &args.pods {
        let raw = pair(n, RAW_TOTAL);
        let run = pair(n, RK_RUNNING);
        let ready = pair(n, RK_READY);
        println!(
            "{n:>4} | {:>7.0} / {:>7.0} | {:>7.0} / {:>7.0} | {:>7.0} / {:>7.0} | {:>18.2} | {:>16.2}",
            ms(raw.0),
            ms(raw.1),
            ms(run.0),
            ms(run.1),
            ms(ready.0),
            ms(ready.1),
            ratio(run.1, raw.1),
            ratio(ready.1, raw.1)
        );
    }
    println!();
    println!("where the time goes, ms, p50 / p99 (containerd's created_at/started_at against the bench's clock)");
    let stages = [
        RAW_SANDBOX_CALL,
        RAW_CREATE_CALL,
        RAW_START_CALL,
        RAW_TO_SANDBOX,
        RAW_SANDBOX_TO_CREATED,
        RAW_CREATED_TO_STARTED,
        RAW_STARTED_TO_RETURN,
        RK_BOUND,
        RK_TO_SANDBOX,
        RK_SANDBOX_TO_CREATED,
        RK_CREATED_TO_STARTED,
        RK_STARTED_TO_RUNNING,
        RK_RUNNING_TO_READY,
    ];
    for &n in &args.pods {
        println!("N = {n}");
        for k in stages {
            let (p50, p99) = pair(n, k);
            println!("  {k:<72} {:>7.0} / {:>7.0}", ms(p50), ms(p99));
        }
    }
}
