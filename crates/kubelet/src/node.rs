//! The Node this kubelet runs: registration, status (capacity, allocatable, conditions, node
//! info, addresses) and the heartbeat Lease in kube-node-lease.

use crate::Config;
use crate::cri::Cri;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use rkube_client::{Client, ClientError, PatchType};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The kubelet version Nodes report; kubectl shows it in `get nodes`.
pub const KUBELET_VERSION: &str = "v1.33.0-rkube";

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A bad `--system-reserved`, `--kube-reserved`, `--eviction-hard`, `--node-labels` or taint flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct FlagError {
    flag: &'static str,
    message: String,
}

/// Resources held back from allocatable, in milli-units per resource name.
fn parse_reserved(flag: &'static str, s: &str) -> Result<BTreeMap<String, i128>, FlagError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| FlagError { flag, message: format!("{part:?} is not name=quantity") })?;
        let q = rkube_api::validation::quantity::parse_quantity(v).map_err(|message| FlagError { flag, message })?;
        *out.entry(k.trim().to_string()).or_default() += q;
    }
    Ok(out)
}

/// One hard eviction threshold: the signal (e.g. `memory.available`) and its floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// `memory.available`, `nodefs.available`, `imagefs.available` or `pid.available`.
    pub signal: String,
    /// The floor, as an absolute quantity or a fraction of capacity.
    pub floor: Floor,
}

/// An eviction floor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Floor {
    /// Absolute, in bytes (or pids).
    Absolute(u64),
    /// A fraction (0..1) of the capacity.
    Fraction(f64),
}

impl Floor {
    /// The floor in absolute units, for a resource of `capacity`.
    pub fn of(self, capacity: u64) -> u64 {
        match self {
            Floor::Absolute(v) => v,
            Floor::Fraction(f) => (capacity as f64 * f) as u64,
        }
    }
}

/// Parses `--eviction-hard`, e.g. `memory.available<100Mi,nodefs.available<10%`.
pub fn parse_eviction(s: &str) -> Result<Vec<Threshold>, FlagError> {
    let flag = "--eviction-hard";
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (signal, v) = part
            .split_once('<')
            .ok_or_else(|| FlagError { flag, message: format!("{part:?} is not signal<quantity") })?;
        let floor = if let Some(pct) = v.strip_suffix('%') {
            let f: f64 =
                pct.trim().parse().map_err(|_| FlagError { flag, message: format!("bad percentage {v:?}") })?;
            Floor::Fraction(f / 100.0)
        } else {
            let q =
                rkube_api::validation::quantity::parse_quantity(v).map_err(|message| FlagError { flag, message })?;
            Floor::Absolute((q / 1000).max(0) as u64)
        };
        out.push(Threshold { signal: signal.trim().to_string(), floor });
    }
    Ok(out)
}

/// Parses `k=v,k2=v2`.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, FlagError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| FlagError { flag: "--node-labels", message: format!("{p:?} is not key=value") })
        })
        .collect()
}

/// Parses `key[=value]:Effect,...`.
fn parse_taints(s: &str) -> Result<Vec<Taint>, FlagError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let bad =
                || FlagError { flag: "--register-with-taints", message: format!("{p:?} is not key[=value]:Effect") };
            let (kv, effect) = p.rsplit_once(':').ok_or_else(bad)?;
            if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                return Err(bad());
            }
            let (key, value) = kv.split_once('=').map(|(k, v)| (k, Some(v.to_string()))).unwrap_or((kv, None));
            Ok(Taint { key: key.to_string(), value, effect: effect.to_string(), time_added: None })
        })
        .collect()
}

/// What the machine has, read from /proc and the root dir's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineStats {
    /// Logical CPUs.
    pub cpus: u64,
    /// MemTotal in bytes.
    pub memory_total: u64,
    /// MemAvailable in bytes.
    pub memory_available: u64,
    /// Size of the file system holding the root dir, in bytes.
    pub fs_total: u64,
    /// Free bytes on it for unprivileged use.
    pub fs_available: u64,
    /// pid_max.
    pub pid_max: u64,
    /// Processes running now.
    pub pids_used: u64,
}

impl MachineStats {
    /// Reads the current figures; missing files read as zero.
    pub fn read(root_dir: &std::path::Path) -> MachineStats {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |field: &str| {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let (fs_total, fs_available) =
            rustix::fs::statvfs(root_dir).map(|s| (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize)).unwrap_or((0, 0));
        let read_u64 = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let pids_used = std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                    .count()
            })
            .unwrap_or(0) as u64;
        MachineStats {
            cpus: std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1),
            memory_total: kib("MemTotal"),
            memory_available: kib("MemAvailable"),
            fs_total,
            fs_available,
            pid_max: read_u64("/proc/sys/kernel/pid_max"),
            pids_used,
        }
    }

    /// Which pressure conditions hold under `thresholds`: (memory, disk, pid).
    pub fn pressure(&self, thresholds: &[Threshold]) -> (bool, bool, bool) {
        let mut p = (false, false, false);
        for t in thresholds {
            match t.signal.as_str() {
                "memory.available" => p.0 |= self.memory_available < t.floor.of(self.memory_total),
                "nodefs.available" | "imagefs.available" => p.1 |= self.fs_available < t.floor.of(self.fs_total),
                "pid.available" => p.2 |= self.pid_max.saturating_sub(self.pids_used) < t.floor.of(self.pid_max),
                _ => {}
            }
        }
        p
    }
}

/// Registers the Node, keeps its status current and renews its Lease.
pub struct NodeAgent {
    client: Client,
    cri: Cri,
    name: String,
    address: String,
    kubelet_port: u16,
    root_dir: std::path::PathBuf,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    reserved: BTreeMap<String, i128>,
    /// Hard eviction thresholds (shared with the eviction manager).
    pub thresholds: Vec<Threshold>,
    max_pods: u32,
    report_every: Duration,
    lease_seconds: i32,
    /// The last pressure seen: (memory, disk, pid), read by the eviction manager.
    pub pressure: Arc<Mutex<(bool, bool, bool)>>,
}

impl NodeAgent {
    /// Checks the flags that shape the Node.
    pub fn new(
        config: &Config,
        client: Client,
        cri: Cri,
        address: String,
        kubelet_port: u16,
    ) -> Result<Self, FlagError> {
        let mut reserved = parse_reserved("--system-reserved", &config.system_reserved)?;
        for (k, v) in parse_reserved("--kube-reserved", &config.kube_reserved)? {
            *reserved.entry(k).or_default() += v;
        }
        Ok(NodeAgent {
            client,
            cri,
            name: config.node_name(),
            address,
            kubelet_port,
            root_dir: config.root_dir.clone(),
            labels: parse_labels(&config.node_labels)?,
            taints: parse_taints(&config.register_with_taints)?,
            reserved,
            thresholds: parse_eviction(&config.eviction_hard)?,
            max_pods: config.max_pods,
            report_every: config.node_status_report_frequency,
            lease_seconds: config.node_lease_duration_seconds,
            pressure: Arc::default(),
        })
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn node_labels(&self) -> BTreeMap<String, String> {
        let arch = go_arch();
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch.to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
        ]);
        labels.extend(self.labels.clone());
        labels
    }

    /// Creates the Node, or adds this kubelet's labels to the one that exists.
    pub async fn register(&self) -> Result<(), ClientError> {
        let api = self.client.api::<Node>(None);
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.node_labels()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..Default::default()
            }),
            status: None,
        };
        match api.create(&node).await {
            Ok(_) => tracing::info!(node = %self.name, "registered node"),
            Err(e) if e.is_already_exists() => {
                api.patch(&self.name, PatchType::Merge, &json!({"metadata": {"labels": self.node_labels()}})).await?;
                tracing::info!(node = %self.name, "node already registered; labels refreshed");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The status this node reports now; conditions keep their transition times from `old`.
    async fn status(&self, old: Option<&NodeStatus>) -> NodeStatus {
        let m = MachineStats::read(&self.root_dir);
        let pressure = m.pressure(&self.thresholds);
        *self.pressure.lock().unwrap_or_else(|e| e.into_inner()) = pressure;
        let version = self.cri.version().await.ok();
        let runtime = match self.cri.ready().await {
            Ok(r) => r,
            Err(e) => Err(format!("container runtime is down: {e}")),
        };

        let mem_floor = self
            .thresholds
            .iter()
            .find(|t| t.signal == "memory.available")
            .map(|t| t.floor.of(m.memory_total))
            .unwrap_or(0);
        let fs_floor = self
            .thresholds
            .iter()
            .find(|t| t.signal == "nodefs.available")
            .map(|t| t.floor.of(m.fs_total))
            .unwrap_or(0);
        let reserved = |name: &str| self.reserved.get(name).copied().unwrap_or(0);
        let capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity(m.cpus.to_string())),
            ("memory".to_string(), Quantity(format!("{}Ki", m.memory_total / 1024))),
            ("ephemeral-storage".to_string(), Quantity(format!("{}Ki", m.fs_total / 1024))),
            ("pods".to_string(), Quantity(self.max_pods.to_string())),
        ]);
        let alloc_cpu = (i128::from(m.cpus) * 1000 - reserved("cpu")).max(0);
        let alloc_mem =
            (i128::from(m.memory_total) * 1000 - reserved("memory") - i128::from(mem_floor) * 1000).max(0) / 1000;
        let alloc_fs =
            (i128::from(m.fs_total) * 1000 - reserved("ephemeral-storage") - i128::from(fs_floor) * 1000).max(0) / 1000;
        let allocatable = BTreeMap::from([
            ("cpu".to_string(), Quantity(format!("{alloc_cpu}m"))),
            ("memory".to_string(), Quantity(format!("{}Ki", alloc_mem / 1024))),
            ("ephemeral-storage".to_string(), Quantity(alloc_fs.to_string())),
            ("pods".to_string(), Quantity(self.max_pods.to_string())),
        ]);

        let now = Time(jiff::Timestamp::now());
        let condition = |kind: &str, status: bool, reason: &str, message: String| {
            let status = if status { "True" } else { "False" }.to_string();
            let previous = old.and_then(|o| o.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == kind));
            let transition = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
            NodeCondition {
                type_: kind.to_string(),
                status,
                reason: Some(reason.to_string()),
                message: Some(message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: transition,
            }
        };
        let conditions = vec![
            if pressure.0 {
                condition(
                    "MemoryPressure",
                    true,
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available".into(),
                )
            } else {
                condition(
                    "MemoryPressure",
                    false,
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available".into(),
                )
            },
            if pressure.1 {
                condition("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure".into())
            } else {
                condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure".into())
            },
            if pressure.2 {
                condition(
                    "PIDPressure",
                    true,
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available".into(),
                )
            } else {
                condition(
                    "PIDPressure",
                    false,
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available".into(),
                )
            },
            match &runtime {
                Ok(()) => condition("Ready", true, "KubeletReady", "kubelet is posting ready status".into()),
                Err(why) => condition("Ready", false, "KubeletNotReady", format!("container runtime not ready: {why}")),
            },
        ];
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        NodeStatus {
            capacity: Some(capacity),
            allocatable: Some(allocatable),
            conditions: Some(conditions),
            addresses: Some(vec![
                NodeAddress { type_: "InternalIP".into(), address: self.address.clone() },
                NodeAddress { type_: "Hostname".into(), address: self.name.clone() },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(self.kubelet_port) }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: go_arch().into(),
                boot_id: read("/proc/sys/kernel/random/boot_id"),
                container_runtime_version: version
                    .map(|v| format!("{}://{}", v.runtime_name, v.runtime_version))
                    .unwrap_or_else(|| "unknown".into()),
                kernel_version: read("/proc/sys/kernel/osrelease"),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: read("/etc/machine-id"),
                operating_system: "linux".into(),
                os_image,
                system_uuid: read("/sys/class/dmi/id/product_uuid"),
                ..Default::default()
            }),
            ..old.cloned().unwrap_or_default()
        }
    }

    /// Writes node status when it changed (or every report period) until `token` fires.
    pub async fn run_status(&self, token: CancellationToken) {
        let api = self.client.api::<Node>(None);
        let mut last_report = Instant::now() - self.report_every;
        let mut last: Option<NodeStatus> = None;
        loop {
            match api.get(&self.name).await {
                Ok(node) => {
                    let status = self.status(node.status.as_ref()).await;
                    if changed(node.status.as_ref(), &status) || last_report.elapsed() >= self.report_every {
                        let patch = json!({"status": status});
                        match api.patch_status(&self.name, PatchType::Merge, &patch).await {
                            Ok(_) => {
                                last_report = Instant::now();
                                last = Some(status);
                            }
                            Err(e) => tracing::warn!(node = %self.name, error = %e, "updating node status failed"),
                        }
                    }
                }
                Err(e) if e.is_not_found() => {
                    // Someone deleted the Node: register again, as the kubelet does.
                    if let Err(e) = self.register().await {
                        tracing::warn!(node = %self.name, error = %e, "re-registering node failed");
                    }
                    continue;
                }
                Err(e) => tracing::warn!(node = %self.name, error = %e, "reading node failed"),
            }
            let _ = &last;
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
    }

    /// Renews the node Lease every quarter of its duration until `token` fires.
    pub async fn run_lease(&self, token: CancellationToken) {
        let api = self.client.api::<Lease>(Some("kube-node-lease"));
        let period = Duration::from_secs((self.lease_seconds.max(4) / 4) as u64);
        loop {
            if let Err(e) = self.renew_lease(&api).await {
                tracing::warn!(node = %self.name, error = %e, "renewing node lease failed");
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn renew_lease(&self, api: &rkube_client::Api<Lease>) -> Result<(), ClientError> {
        let now = MicroTime(jiff::Timestamp::now());
        match api.get_opt(&self.name).await? {
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.holder_identity = Some(self.name.clone());
                spec.lease_duration_seconds = Some(self.lease_seconds);
                api.update(&lease).await?;
            }
            None => {
                let owner = self.client.api::<Node>(None).get(&self.name).await.ok().map(|n| OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.name.clone(),
                    uid: n.metadata.uid.unwrap_or_default(),
                    ..Default::default()
                });
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some("kube-node-lease".into()),
                        owner_references: owner.map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.name.clone()),
                        lease_duration_seconds: Some(self.lease_seconds),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                match api.create(&lease).await {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Whether anything but heartbeat times differs.
fn changed(old: Option<&NodeStatus>, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(cs) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastHeartbeatTime");
                }
            }
        }
        v
    };
    old.is_none_or(|o| strip(o) != strip(new))
}

/// Go's name for this architecture, as Kubernetes labels use it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_like_the_kubelets() {
        let t = parse_eviction("memory.available<100Mi, nodefs.available<10%").unwrap();
        assert_eq!(t[0], Threshold { signal: "memory.available".into(), floor: Floor::Absolute(100 << 20) });
        assert_eq!(t[1].floor.of(1000), 100);
        assert!(parse_eviction("memory.available=1").is_err());
        let r = parse_reserved("--system-reserved", "cpu=100m,memory=1Gi").unwrap();
        assert_eq!(r["cpu"], 100);
        assert_eq!(r["memory"], (1i128 << 30) * 1000);
        assert!(parse_reserved("--system-reserved", "cpu").is_err());
        let taints = parse_taints("dedicated=gpu:NoSchedule,spot:NoExecute").unwrap();
        assert_eq!(taints[0].value.as_deref(), Some("gpu"));
        assert_eq!(taints[1].key, "spot");
        assert!(parse_taints("x=y:Sometimes").is_err());
        assert_eq!(parse_labels("a=1,b=2").unwrap().len(), 2);
    }

    #[test]
    fn pressure_compares_available_with_floors() {
        let m = MachineStats {
            memory_total: 1000,
            memory_available: 50,
            fs_total: 1000,
            fs_available: 500,
            pid_max: 100,
            pids_used: 10,
            cpus: 1,
        };
        let t = parse_eviction("memory.available<100,nodefs.available<10%,pid.available<5").unwrap();
        assert_eq!(m.pressure(&t), (true, false, false));
    }
}
