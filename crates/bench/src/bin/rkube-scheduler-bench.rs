//! rkube-scheduler-bench: scheduling throughput in the style of Kubernetes' scheduler_perf.
//!
//! For each node count it starts a fresh etcd, rkube-apiserver and rkube-scheduler (from this
//! binary's target dir or `$RKUBE_BIN_DIR`), measures raw etcd put throughput on that etcd,
//! creates plain Node objects (4 CPU, 32 GiB, 110 pods, Ready, as scheduler_perf's default
//! node), then creates pods through the API server while the scheduler runs, and records for
//! each pod the time from sending its create to seeing it bound on a watch.

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_bench::{cpu_seconds, percentile, run_closed_loop};
use rkube_client::{Client, ListParams, WatchEvent};
use rkube_testkit::{ApiServer, Daemon, Etcd};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "rkube-scheduler throughput and create-to-bind latency, against raw etcd in the same run")]
struct Args {
    /// Node counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    nodes: Vec<usize>,
    /// Plain pods per run (at most 30 per node, so they fit the 4-CPU nodes at 100m each).
    #[arg(long, default_value_t = 5000)]
    pods: usize,
    /// Pods with required pod anti-affinity per run (at most one per node fits).
    #[arg(long, default_value_t = 1000)]
    anti_affinity_pods: usize,
    /// Concurrent pod creators.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Puts of the raw etcd baseline.
    #[arg(long, default_value_t = 4000)]
    etcd_ops: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Plain,
    AntiAffinity,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Plain => "plain",
            Workload::AntiAffinity => "anti-affinity",
        }
    }

    fn pod(self, i: usize) -> Pod {
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": format!("pod-{i:06}"), "namespace": "default", "labels": {"color": "green"}},
            "spec": {"containers": [{"name": "pause", "image": "registry.local/pause:3.10",
                "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]},
        });
        if self == Workload::AntiAffinity {
            pod["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"color": "green"}}}]}});
        }
        serde_json::from_value(pod).expect("a valid Pod")
    }
}

fn node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "status": {
            "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow node"}],
        },
    }))
    .expect("a valid Node")
}

struct Outcome {
    nodes: usize,
    workload: Workload,
    pods: usize,
    etcd_puts_per_sec: f64,
    pods_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU µs per pod of etcd, apiserver, scheduler and this benchmark (creating and watching).
    cpu_per_pod: [f64; 4],
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "rkube-scheduler-bench: nodes {:?}, up to {} plain pods, up to {} anti-affinity pods, {} creators, {} cores",
        args.nodes,
        args.pods,
        args.anti_affinity_pods,
        args.concurrency,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut outcomes = Vec::new();
    for &nodes in &args.nodes {
        for workload in [Workload::Plain, Workload::AntiAffinity] {
            let pods = match workload {
                Workload::Plain => args.pods.min(nodes * 30),
                Workload::AntiAffinity => args.anti_affinity_pods.min(nodes),
            };
            let o = run_once(&args, nodes, workload, pods).await?;
            print(&o);
            outcomes.push(o);
        }
    }
    println!();
    for o in &outcomes {
        print(o);
    }
    Ok(())
}

fn print(o: &Outcome) {
    println!(
        "{:>5} nodes {:<13} {:>5} pods: {:>6.0} pods/s  create->bind p50 {:>7.1} ms p99 {:>7.1} ms  | raw etcd put {:>6.0}/s, ratio {:.2}  | cpu/pod etcd {:.0} us, apiserver {:.0} us, scheduler {:.0} us, bench {:.0} us",
        o.nodes,
        o.workload.name(),
        o.pods,
        o.pods_per_sec,
        o.p50.as_secs_f64() * 1e3,
        o.p99.as_secs_f64() * 1e3,
        o.etcd_puts_per_sec,
        o.pods_per_sec / o.etcd_puts_per_sec,
        o.cpu_per_pod[0],
        o.cpu_per_pod[1],
        o.cpu_per_pod[2],
        o.cpu_per_pod[3],
    );
}

async fn run_once(args: &Args, nodes: usize, workload: Workload, pods: usize) -> anyhow::Result<Outcome> {
    let etcd = Etcd::start()?;
    let api = ApiServer::start(&etcd)?;

    // Raw etcd write throughput on this very etcd, with a value the size of a stored pod.
    let value = Arc::new(serde_json::to_vec(&workload.pod(0))?);
    let etcd_client = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let (elapsed, _) = run_closed_loop(args.etcd_ops, args.concurrency, move |i| {
        let (mut c, v) = (etcd_client.clone(), value.clone());
        async move {
            c.put(format!("/bench/raw/{i:06}"), v.as_slice().to_vec(), None).await?;
            Ok(())
        }
    })
    .await?;
    let etcd_puts_per_sec = args.etcd_ops as f64 / elapsed.as_secs_f64();

    let client = Client::new(&api.url())?;
    let node_api = client.api::<Node>(None);
    run_closed_loop(nodes, args.concurrency, move |i| {
        let api = node_api.clone();
        async move {
            api.create(&node(i)).await?;
            Ok(())
        }
    })
    .await?;

    let health = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let port = health.to_string();
    let scheduler = Daemon::start(
        "rkube-scheduler",
        &api,
        &["--leader-elect=false", "--secure-port", &port, "--bind-address", "127.0.0.1", "--log-level", "warn"],
    )?;
    wait_ready(health, &scheduler).await?;

    // Watch before creating, so no bind is missed; only bound pods, so a pod enters the
    // selection (ADDED) when it is bound and the bench decodes one event per pod.
    let pod_api = client.api::<Pod>(Some("default"));
    let from = pod_api.list(&ListParams::default()).await?.resource_version;
    let mut watch = Box::pin(pod_api.watch(&ListParams::fields("spec.nodeName!="), &from).await?);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound = tokio::spawn(async move {
        let mut bound: HashMap<String, Instant> = HashMap::new();
        while bound.len() < pods {
            let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(120), watch.next()).await else { break };
            if let Ok(WatchEvent::Modified(p) | WatchEvent::Added(p)) = event
                && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
            {
                bound.entry(p.metadata.name.unwrap_or_default()).or_insert_with(Instant::now);
            }
        }
        bound
    });

    let pids = [etcd.pid().unwrap_or(0), api.pid().unwrap_or(0), scheduler.pid().unwrap_or(0), std::process::id()];
    let cpu_before = pids.map(cpu_seconds);
    let start = Instant::now();
    let (s, api2) = (sent.clone(), pod_api.clone());
    run_closed_loop(pods, args.concurrency, move |i| {
        let (s, api) = (s.clone(), api2.clone());
        async move {
            let pod = workload.pod(i);
            s.lock().unwrap().insert(pod.metadata.name.clone().unwrap_or_default(), Instant::now());
            api.create(&pod).await?;
            Ok(())
        }
    })
    .await?;
    let bound = bound.await?;
    let cpu_after = pids.map(cpu_seconds);
    anyhow::ensure!(
        bound.len() == pods,
        "only {} of {pods} pods were bound\nscheduler log:\n{}",
        bound.len(),
        scheduler.log_tail()
    );
    let last = bound.values().max().copied().unwrap_or(start);
    let sent = sent.lock().unwrap();
    let mut latencies: Vec<Duration> =
        bound.iter().filter_map(|(name, at)| sent.get(name).map(|s| at.saturating_duration_since(*s))).collect();
    latencies.sort();
    let cpu_per_pod = [0, 1, 2, 3].map(|k| (cpu_after[k] - cpu_before[k]) * 1e6 / pods as f64);
    Ok(Outcome {
        nodes,
        workload,
        pods,
        etcd_puts_per_sec,
        pods_per_sec: pods as f64 / (last - start).as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        cpu_per_pod,
    })
}

async fn wait_ready(port: u16, scheduler: &Daemon) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the scheduler did not become ready:\n{}", scheduler.log_tail())
}
