//! Resource amounts the scheduler accounts for: what a pod requests and what a node offers.

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_api::validation::quantity::parse_quantity;
use std::collections::BTreeMap;
use std::ops::{AddAssign, SubAssign};

/// CPU assumed for a container without a CPU request when scoring, so that many request-less
/// pods don't all pile onto the same "empty" node (Kubernetes' DefaultMilliCPURequest).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (200Mi, Kubernetes'
/// DefaultMemoryRequest).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource the scheduler understands. Memory and ephemeral storage are in
/// bytes, CPU in thousandths of a core, pods a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// Thousandths of a CPU.
    pub milli_cpu: i64,
    /// Bytes of memory.
    pub memory: i64,
    /// Bytes of ephemeral storage.
    pub ephemeral_storage: i64,
    /// Number of pods.
    pub pods: i64,
}

impl Resources {
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
    }
}

// Saturating so that absurd (but syntactically valid) quantities on user objects can't
// overflow and panic in debug builds or wrap in release ones.
impl AddAssign for Resources {
    fn add_assign(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(o.ephemeral_storage);
        self.pods = self.pods.saturating_add(o.pods);
    }
}

impl SubAssign for Resources {
    fn sub_assign(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(o.ephemeral_storage);
        self.pods = self.pods.saturating_sub(o.pods);
    }
}

/// A pod's requests, twice: as declared (for the fit filter) and with defaults for missing
/// CPU/memory requests (for scoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// What the pod asks for; NodeResourcesFit compares this against free capacity.
    pub requests: Resources,
    /// Same, but a container without a CPU or memory request counts as 100m / 200Mi.
    pub non_zero: Resources,
}

/// Parses a quantity to milli-units. The API server validates quantities, so an unparsable one
/// can only come from an object that bypassed validation; it counts as 0 rather than stopping
/// the scheduler. Negative amounts (also rejected by validation) count as 0 too.
fn milli(q: &Quantity) -> i64 {
    match parse_quantity(&q.0) {
        Ok(v) if v > 0 => i64::try_from(v).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// Whole units, rounding a fractional amount up like Kubernetes' Quantity.Value().
fn whole(q: &Quantity) -> i64 {
    let m = milli(q);
    m / 1000 + i64::from(m % 1000 != 0)
}

/// Reads cpu, memory, ephemeral-storage and pods out of a resource list.
pub fn resources_from_list(list: &BTreeMap<String, Quantity>) -> Resources {
    Resources {
        milli_cpu: list.get("cpu").map_or(0, milli),
        memory: list.get("memory").map_or(0, whole),
        ephemeral_storage: list.get("ephemeral-storage").map_or(0, whole),
        pods: list.get("pods").map_or(0, whole),
    }
}

/// The requests of one container (or of the pod-level `resources`). A limit without a request
/// stands in for the request, which is what API defaulting would have filled in.
fn requirements(r: Option<&ResourceRequirements>, non_zero: bool) -> Resources {
    let get = |name: &str| {
        let r = r?;
        r.requests.as_ref().and_then(|m| m.get(name)).or_else(|| r.limits.as_ref().and_then(|m| m.get(name)))
    };
    let cpu = get("cpu");
    let memory = get("memory");
    Resources {
        milli_cpu: match cpu {
            Some(q) => milli(q),
            None if non_zero => DEFAULT_MILLI_CPU_REQUEST,
            None => 0,
        },
        memory: match memory {
            Some(q) => whole(q),
            None if non_zero => DEFAULT_MEMORY_REQUEST,
            None => 0,
        },
        ephemeral_storage: get("ephemeral-storage").map_or(0, whole),
        pods: 0,
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    requirements(c.resources.as_ref(), non_zero)
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn pod_total(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources { pods: 1, ..Resources::default() };
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total += container_requests(c, non_zero);
    }
    // Init containers run one at a time before the app containers, so the pod needs the largest
    // of them, except sidecars (restartPolicy Always) which keep running and therefore add up:
    // both to the app containers and to every init container started after them.
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        let during = if is_sidecar(c) {
            total += r;
            sidecars += r;
            sidecars
        } else {
            let mut d = r;
            d += sidecars;
            d
        };
        init_peak.max_with(&during);
    }
    total.max_with(&init_peak);
    // Pod-level requests, when given, are the pod's budget for CPU and memory as a whole.
    if let Some(level) = spec.resources.as_ref() {
        let has = |name: &str| {
            level.requests.as_ref().is_some_and(|m| m.contains_key(name))
                || level.limits.as_ref().is_some_and(|m| m.contains_key(name))
        };
        let r = requirements(Some(level), false);
        if has("cpu") {
            total.milli_cpu = r.milli_cpu;
        }
        if has("memory") {
            total.memory = r.memory;
        }
    }
    if let Some(overhead) = spec.overhead.as_ref() {
        let mut o = resources_from_list(overhead);
        o.pods = 0;
        total += o;
    }
    total.pods = 1;
    total
}

/// Computes a pod's requests the way Kubernetes does: the sum of its containers, raised to the
/// largest init container (sidecars added on top), plus pod overhead; and the same with the
/// scoring defaults for missing CPU/memory requests.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    PodRequests { requests: pod_total(pod, false), non_zero: pod_total(pod, true) }
}

/// What a node offers to pods: `status.allocatable`, or `status.capacity` when the kubelet
/// didn't report allocatable. A node with neither offers nothing.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()))
        .map(resources_from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "d"}, "spec": spec})).unwrap()
    }

    #[test]
    fn sums_containers_and_adds_overhead() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "1", "ephemeral-storage": "1k"}}},
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        }));
        let r = pod_requests(&p).requests;
        assert_eq!(r, Resources { milli_cpu: 1110, memory: (1 << 30) + (1 << 20), ephemeral_storage: 1000, pods: 1 });
    }

    #[test]
    fn init_containers_are_maxed_and_sidecars_added() {
        let p = pod(json!({
            "initContainers": [
                {"name": "big-init", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                {"name": "late-init", "resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},
            ],
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "100Mi"}}}],
        }));
        let r = pod_requests(&p).requests;
        // cpu: max(app 1 + sidecar 0.5, big-init 2, late-init 1 + sidecar 0.5) = 2
        assert_eq!(r.milli_cpu, 2000);
        // memory: max(app 100 + sidecar 100, 10, 50 + 100) = 200Mi
        assert_eq!(r.memory, 200 << 20);
    }

    #[test]
    fn non_zero_defaults_only_fill_missing_requests() {
        let p = pod(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "1Mi"}}},
            {"name": "c", "resources": {"limits": {"cpu": "300m"}}},
        ]}));
        let PodRequests { requests, non_zero } = pod_requests(&p);
        assert_eq!((requests.milli_cpu, requests.memory), (300, 1 << 20));
        assert_eq!(non_zero.milli_cpu, 100 + 300);
        assert_eq!(non_zero.memory, DEFAULT_MEMORY_REQUEST + (1 << 20) + DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn malformed_quantities_count_as_zero_without_panicking() {
        let p = pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "lots", "memory": "-5"}}}]}));
        let r = pod_requests(&p).requests;
        assert_eq!((r.milli_cpu, r.memory, r.pods), (0, 0, 1));
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        }))
        .unwrap();
        assert_eq!(
            node_allocatable(&n),
            Resources { milli_cpu: 4000, memory: 8 << 30, ephemeral_storage: 0, pods: 110 }
        );
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}},
        }))
        .unwrap();
        assert_eq!(node_allocatable(&n).milli_cpu, 3500);
    }
}
