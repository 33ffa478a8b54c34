//! The replica calculator: from pods and their metrics to a replica proposal for one metric,
//! as Kubernetes' HPA computes it (10% tolerance, pods without metrics assumed at 0% on
//! scale-up and 100% on scale-down, unready pods ignored for CPU and counted at 0% on
//! scale-up, failed or terminating pods ignored).

use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One pod's usage of a resource as the metrics API reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetric {
    /// Usage in milli-units (summed over the pod's containers).
    pub value: i64,
    /// When the sample was taken.
    pub timestamp: jiff::Timestamp,
    /// The window the sample averages over.
    pub window: Duration,
}

/// Metrics by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// How readiness filters CPU samples (kube-controller-manager's
/// `--horizontal-pod-autoscaler-cpu-initialization-period` and `-initial-readiness-delay`).
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// After a pod starts, CPU samples taken before one window past its readiness are ignored.
    pub cpu_initialization_period: Duration,
    /// A pod unready within this long of starting counts as never having been ready.
    pub initial_readiness_delay: Duration,
}

/// A replica proposal with what the metric currently measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// The replica count the metric asks for.
    pub replicas: i32,
    /// Average utilization in percent of requests (Utilization targets only).
    pub utilization: Option<i32>,
    /// Average usage per pod in milli-units.
    pub average: i64,
}

/// Pods sorted by how their samples count.
#[derive(Debug, Default)]
struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn group_pods(pods: &[&Pod], metrics: &PodMetrics, cpu: bool, readiness: Readiness, now: jiff::Timestamp) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            g.ignored.insert(name);
            continue;
        }
        // A pod not yet running (no phase counts as Pending) has no meaningful usage.
        if phase.is_none_or(|p| p == "Pending") {
            g.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            g.missing.insert(name);
            continue;
        };
        if cpu && cpu_unready(pod, metric, readiness, now) {
            g.unready.insert(name);
            continue;
        }
        g.ready += 1;
    }
    g
}

/// Whether a pod's CPU sample should be ignored: the pod is unready, or its sample may still
/// cover its start-up burst.
fn cpu_unready(pod: &Pod, metric: &PodMetric, readiness: Readiness, now: jiff::Timestamp) -> bool {
    let status = pod.status.as_ref();
    let condition = status.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    let (Some(condition), Some(start)) = (condition, start) else { return true };
    let transition = condition.last_transition_time.as_ref().map(|t| t.0).unwrap_or(start);
    let not_ready = condition.status == "False";
    if add(start, readiness.cpu_initialization_period) > now {
        not_ready || metric.timestamp < add(transition, metric.window)
    } else {
        not_ready && add(start, readiness.initial_readiness_delay) > transition
    }
}

fn add(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_add(d).unwrap_or(jiff::Timestamp::MAX)
}

/// Sum of a resource's requests over a pod's containers (only `container`, if named), in
/// milli-units; an error when a container requests none (utilization is then undefined).
pub fn pod_request(pod: &Pod, resource: &str, container: Option<&str>) -> Result<i64, String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let mut total: i64 = 0;
    for c in containers.iter().filter(|c| container.is_none_or(|n| n == c.name)) {
        let request = c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
        let Some(q) = request else {
            return Err(format!("missing request for {resource} in container {} of Pod {name}", c.name));
        };
        let milli = rkube_api::validation::quantity::parse_quantity(&q.0).unwrap_or(0).clamp(0, i128::from(i64::MAX));
        total = total.saturating_add(milli as i64);
    }
    Ok(total)
}

/// What a metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Average usage as a percentage of the pods' requests.
    Utilization(i32),
    /// Average usage per pod in milli-units.
    AverageValue(i64),
}

/// The ratio of current to target usage over the pods in `metrics`, with the average
/// utilization (percent) or average value (milli-units) it measured.
fn usage_ratio(metrics: &PodMetrics, requests: &BTreeMap<String, i64>, target: Target) -> (f64, Option<i32>, i64) {
    match target {
        Target::Utilization(percent) => {
            let (mut usage, mut requested) = (0i64, 0i64);
            for (name, m) in metrics {
                if let Some(r) = requests.get(name) {
                    usage = usage.saturating_add(m.value);
                    requested = requested.saturating_add(*r);
                }
            }
            let utilization = if requested > 0 { (usage.saturating_mul(100) / requested) as i32 } else { 0 };
            let average = if metrics.is_empty() { 0 } else { usage / metrics.len() as i64 };
            (f64::from(utilization) / f64::from(percent.max(1)), Some(utilization), average)
        }
        Target::AverageValue(value) => {
            let usage: i64 = metrics.values().map(|m| m.value).fold(0, i64::saturating_add);
            let average = if metrics.is_empty() { 0 } else { usage / metrics.len() as i64 };
            (average as f64 / value.max(1) as f64, None, average)
        }
    }
}

/// The resource a metric measures: for whole pods, or for one container of each pod
/// (ContainerResource metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured<'a> {
    /// "cpu", "memory", ...
    pub resource: &'a str,
    /// The container, for ContainerResource metrics.
    pub container: Option<&'a str>,
}

/// Proposes a replica count for one resource metric over `pods` (those the target selects).
#[allow(clippy::too_many_arguments)]
pub fn resource_replicas(
    current: i32,
    pods: &[&Pod],
    mut metrics: PodMetrics,
    Measured { resource, container }: Measured<'_>,
    target: Target,
    tolerance: f64,
    readiness: Readiness,
    now: jiff::Timestamp,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    // Samples of pods the target does not select say nothing about it.
    let names: BTreeSet<String> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
    metrics.retain(|name, _| names.contains(name));
    let groups = group_pods(pods, &metrics, resource == "cpu", readiness, now);
    metrics.retain(|name, _| !groups.ignored.contains(name) && !groups.unready.contains(name));
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let mut requests = BTreeMap::new();
    if let Target::Utilization(_) = target {
        for pod in pods {
            requests.insert(pod.metadata.name.clone().unwrap_or_default(), pod_request(pod, resource, container)?);
        }
    }
    let (ratio, utilization, average) = usage_ratio(&metrics, &requests, target);
    let within = |r: f64| (1.0 - r).abs() <= tolerance;
    let proposal = |replicas| Proposal { replicas, utilization, average };
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if within(ratio) {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * groups.ready as f64).ceil() as i32));
    }
    // Assume the worst for the direction we would move in: pods without samples use
    // everything they asked for (or the target) on a scale-down, nothing on a scale-up.
    for name in &groups.missing {
        let value = if ratio < 1.0 {
            match target {
                Target::Utilization(percent) => {
                    requests.get(name).copied().unwrap_or(0) * i64::from(percent.max(100)) / 100
                }
                Target::AverageValue(v) => v,
            }
        } else {
            0
        };
        if ratio != 1.0 {
            metrics.insert(name.clone(), PodMetric { value, timestamp: now, window: Duration::ZERO });
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), PodMetric { value: 0, timestamp: now, window: Duration::ZERO });
        }
    }
    let (new_ratio, _, _) = usage_ratio(&metrics, &requests, target);
    // No change when it is too small, or when the assumptions flip the direction.
    if within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CPU: Measured = Measured { resource: "cpu", container: None };
    const READINESS: Readiness = Readiness {
        cpu_initialization_period: Duration::from_secs(300),
        initial_readiness_delay: Duration::from_secs(30),
    };

    fn now() -> jiff::Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    /// A pod requesting 1 cpu, started an hour before `now`, in `phase`, Ready or not.
    fn pod(name: &str, phase: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "100Mi"}}}]},
            "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                 "lastTransitionTime": "2026-01-01T00:00:10Z"}
            ]},
        }))
        .unwrap()
    }

    fn metrics(values: &[(&str, i64)]) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| (n.to_string(), PodMetric { value: *v, timestamp: now(), window: Duration::from_secs(30) }))
            .collect()
    }

    fn cpu(current: i32, pods: &[Pod], m: PodMetrics, target: i32) -> Result<Proposal, String> {
        let pods: Vec<&Pod> = pods.iter().collect();
        resource_replicas(current, &pods, m, CPU, Target::Utilization(target), 0.1, READINESS, now())
    }

    #[test]
    fn scales_by_the_usage_ratio_outside_the_tolerance() {
        let pods = [pod("a", "Running", true), pod("b", "Running", true)];
        let p = cpu(2, &pods, metrics(&[("a", 1000), ("b", 1000)]), 50).unwrap();
        assert_eq!(p, Proposal { replicas: 4, utilization: Some(100), average: 1000 });
        // 105% of the target is within the 10% tolerance: no change.
        let p = cpu(2, &pods, metrics(&[("a", 525), ("b", 525)]), 50).unwrap();
        assert_eq!(p.replicas, 2);
        // 115% is not: ceil(2 * 1.15) = 3.
        assert_eq!(cpu(2, &pods, metrics(&[("a", 575), ("b", 575)]), 50).unwrap().replicas, 3);
        assert_eq!(cpu(2, &pods, metrics(&[("a", 100), ("b", 100)]), 50).unwrap().replicas, 1);
    }

    #[test]
    fn missing_metrics_are_assumed_against_the_direction_of_scaling() {
        let pods = [pod("a", "Running", true), pod("b", "Running", true), pod("c", "Running", true)];
        // Scale-up: c counts as 0%, so (200+200+0)/300 = 1.33 of the 100% target -> 4.
        let p = cpu(3, &pods, metrics(&[("a", 2000), ("b", 2000)]), 100).unwrap();
        assert_eq!(p.replicas, 4);
        assert_eq!(p.utilization, Some(200), "the reported utilization is over pods with samples");
        // Scale-down: c counts as 100%, so (10+10+100)/300 = 0.4 of target -> ceil(1.2) = 2.
        assert_eq!(cpu(3, &pods, metrics(&[("a", 100), ("b", 100)]), 100).unwrap().replicas, 2);
        // Scale-down (40% of a 50% target) that the 100% assumption would turn into a scale-up
        // ((40+40+100)/3 = 60%): no change.
        assert_eq!(cpu(3, &pods, metrics(&[("a", 400), ("b", 400)]), 50).unwrap().replicas, 3);
    }

    #[test]
    fn unready_pods_are_ignored_for_cpu_and_count_as_zero_on_scale_up() {
        let pods = [pod("a", "Running", true), pod("b", "Running", true), pod("c", "Pending", false)];
        // Ready pods at 200%: c counts as 0, (2+2+0)/3 = 1.33 -> ceil(4) = 4.
        let p = cpu(3, &pods, metrics(&[("a", 2000), ("b", 2000), ("c", 5000)]), 100).unwrap();
        assert_eq!(p.replicas, 4);
        // On scale-down unready pods are left out: 2 ready pods at 10% -> 1.
        assert_eq!(cpu(3, &pods, metrics(&[("a", 100), ("b", 100)]), 100).unwrap().replicas, 1);
        // A Running but unready pod's CPU sample is ignored too.
        let pods = [pod("a", "Running", true), pod("b", "Running", false)];
        assert_eq!(cpu(2, &pods, metrics(&[("a", 1000), ("b", 9000)]), 100).unwrap().replicas, 2);
        // Memory does not look at readiness.
        const MEMORY: Measured = Measured { resource: "memory", container: None };
        let pods: Vec<&Pod> = pods.iter().collect();
        let m = metrics(&[("a", 100 * 1024 * 1024 * 1000), ("b", 300 * 1024 * 1024 * 1000)]);
        let p = resource_replicas(2, &pods, m, MEMORY, Target::Utilization(100), 0.1, READINESS, now()).unwrap();
        assert_eq!(p.replicas, 4);
    }

    #[test]
    fn a_sample_from_the_start_up_burst_is_ignored() {
        let mut p = pod("a", "Running", true);
        let status = p.status.as_mut().unwrap();
        status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let ready = now().checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
        status.conditions.as_mut().unwrap()[0].last_transition_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ready));
        // The sample (taken at `now`, 30 s window) predates readiness + window.
        let err = cpu(1, &[p], metrics(&[("a", 5000)]), 100).unwrap_err();
        assert!(err.contains("did not receive metrics"), "{err}");
    }

    #[test]
    fn failures_are_explained() {
        assert!(cpu(1, &[], metrics(&[]), 50).unwrap_err().contains("no pods returned"));
        let mut p = pod("a", "Running", true);
        p.spec.as_mut().unwrap().containers[0].resources = None;
        let err = cpu(1, &[p], metrics(&[("a", 100)]), 50).unwrap_err();
        assert_eq!(err, "missing request for cpu in container c of Pod a");
        // Failed and terminating pods are ignored entirely.
        let pods = [pod("a", "Failed", false)];
        assert!(cpu(1, &pods, metrics(&[("a", 100)]), 50).is_err());
    }

    #[test]
    fn container_resource_metrics_use_only_that_containers_request() {
        let mut p = pod("a", "Running", true);
        let sidecar: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(json!({"name": "sidecar"})).unwrap();
        p.spec.as_mut().unwrap().containers.push(sidecar);
        let pods = [&p];
        // The sidecar requests no cpu: a whole-pod utilization is undefined...
        let err =
            resource_replicas(1, &pods, metrics(&[("a", 2000)]), CPU, Target::Utilization(100), 0.1, READINESS, now());
        assert!(err.unwrap_err().contains("container sidecar"));
        // ...but container c's is 200% of its 1 cpu request.
        let c = Measured { resource: "cpu", container: Some("c") };
        let p =
            resource_replicas(1, &pods, metrics(&[("a", 2000)]), c, Target::Utilization(100), 0.1, READINESS, now());
        assert_eq!(p.unwrap().replicas, 2);
    }

    #[test]
    fn average_value_targets_compare_the_mean_usage() {
        let pods = [pod("a", "Running", true), pod("b", "Running", true)];
        let pods: Vec<&Pod> = pods.iter().collect();
        let m = metrics(&[("a", 300), ("b", 500)]);
        let p = resource_replicas(2, &pods, m, CPU, Target::AverageValue(200), 0.1, READINESS, now()).unwrap();
        assert_eq!(p, Proposal { replicas: 4, utilization: None, average: 400 });
    }
}
