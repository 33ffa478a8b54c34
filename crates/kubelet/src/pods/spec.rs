//! Turns a Pod into CRI configs: the sandbox (hostname, DNS, ports, labels, namespaces) and each
//! container (command, env, mounts, resources, security context, log path).

use crate::cri::api;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// CRI label naming the pod of a sandbox or container.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// CRI label naming the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// CRI label carrying the pod's UID.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// CRI label naming the container within its pod.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Annotation holding the container's terminationGracePeriod, so a restarted kubelet that no
/// longer has the pod can still stop it gently.
pub const ANNOTATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// What the node contributes to every sandbox.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Cluster DNS servers for dnsPolicy ClusterFirst.
    pub cluster_dns: Vec<String>,
    /// The cluster domain, e.g. cluster.local.
    pub cluster_domain: String,
    /// The node's own resolv.conf (for dnsPolicy Default and the search list).
    pub resolv_conf: PathBuf,
    /// Where pod log directories go.
    pub pod_logs_dir: PathBuf,
}

/// `<ns>_<name>_<uid>` under the pod logs dir, as the kubelet names it.
pub fn log_directory(settings: &NodeSettings, pod: &Pod) -> PathBuf {
    let m = &pod.metadata;
    settings.pod_logs_dir.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    HashMap::from([
        (LABEL_POD_NAME.to_string(), m.name.clone().unwrap_or_default()),
        (LABEL_POD_NAMESPACE.to_string(), m.namespace.clone().unwrap_or_default()),
        (LABEL_POD_UID.to_string(), m.uid.clone().unwrap_or_default()),
    ])
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.as_ref();
    let node =
        |b: Option<bool>| if b.unwrap_or(false) { api::NamespaceMode::Node } else { api::NamespaceMode::Pod } as i32;
    let pid = if spec.and_then(|s| s.host_pid).unwrap_or(false) {
        api::NamespaceMode::Node
    } else if spec.and_then(|s| s.share_process_namespace).unwrap_or(false) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    } as i32;
    api::NamespaceOption {
        network: node(spec.and_then(|s| s.host_network)),
        pid,
        ipc: node(spec.and_then(|s| s.host_ipc)),
        ..Default::default()
    }
}

/// The host's nameservers, search domains and options from a resolv.conf text.
fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (vec![], vec![], vec![]);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(String::from)),
            Some("search" | "domain") => searches = words.map(String::from).collect(),
            Some("options") => options.extend(words.map(String::from)),
            _ => {}
        }
    }
    (servers, searches, options)
}

/// The sandbox's DNS settings under the pod's dnsPolicy and dnsConfig.
pub fn dns_config(settings: &NodeSettings, pod: &Pod) -> api::DnsConfig {
    let spec = pod.spec.as_ref();
    let host = std::fs::read_to_string(&settings.resolv_conf).map(|t| parse_resolv_conf(&t)).unwrap_or_default();
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirst" => !host_network(pod),
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut cfg = match policy {
        "None" => api::DnsConfig::default(),
        _ if cluster_first && !settings.cluster_dns.is_empty() => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = &settings.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(host.1.iter().filter(|s| !searches.contains(s)).cloned().collect::<Vec<_>>());
            api::DnsConfig { servers: settings.cluster_dns.clone(), searches, options: vec!["ndots:5".into()] }
        }
        _ => api::DnsConfig { servers: host.0, searches: host.1, options: host.2 },
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        cfg.servers.extend(extra.nameservers.iter().flatten().cloned());
        cfg.searches.extend(extra.searches.iter().flatten().cloned());
        for o in extra.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            cfg.options.retain(|x| x.split(':').next() != Some(name.as_str()));
            cfg.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    // resolv.conf allows at most 3 nameservers and 32 search domains (Kubernetes' limits).
    cfg.servers.truncate(3);
    cfg.searches.truncate(32);
    cfg
}

/// The RunPodSandbox config of `pod`, attempt `attempt`.
pub fn sandbox_config(settings: &NodeSettings, pod: &Pod, attempt: u32) -> api::PodSandboxConfig {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let mut labels: HashMap<String, String> = m.labels.clone().unwrap_or_default().into_iter().collect();
    labels.extend(pod_labels(pod));
    let hostname = if host_network(pod) {
        String::new()
    } else {
        let h = spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| m.name.clone().unwrap_or_default());
        h.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
    };
    let port_mappings = spec
        .map(|s| s.containers.iter().flat_map(|c| c.ports.iter().flatten()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp,
                Some("SCTP") => api::Protocol::Sctp,
                _ => api::Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let sysctls =
        psc.and_then(|c| c.sysctls.as_ref()).into_iter().flatten().map(|s| (s.name.clone(), s.value.clone())).collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(settings, pod).to_string_lossy().into_owned(),
        dns_config: Some(dns_config(settings, pod)),
        port_mappings,
        labels,
        annotations: m.annotations.clone().unwrap_or_default().into_iter().collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.and_then(|c| c.run_as_user).map(|value| api::Int64Value { value }),
                run_as_group: psc.and_then(|c| c.run_as_group).map(|value| api::Int64Value { value }),
                supplemental_groups: psc.and_then(|c| c.supplemental_groups.clone()).unwrap_or_default(),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

fn milli(q: Option<&Quantity>) -> Option<i128> {
    q.and_then(|q| rkube_api::validation::quantity::parse_quantity(&q.0).ok())
}

/// CPU and memory settings the container's requests and limits translate to (cgroup v1).
pub fn linux_resources(container: &Container) -> api::LinuxContainerResources {
    let r = container.resources.as_ref();
    let limit = |name: &str| milli(r.and_then(|r| r.limits.as_ref()).and_then(|l| l.get(name)));
    let request = |name: &str| milli(r.and_then(|r| r.requests.as_ref()).and_then(|l| l.get(name)));
    let cpu_request = request("cpu").or(limit("cpu"));
    // Shares are 1024 per CPU with a floor of 2, as the kubelet sets them.
    let cpu_shares = cpu_request.map(|m| (m * 1024 / 1000).max(2) as i64).unwrap_or(2);
    let (cpu_period, cpu_quota) = match limit("cpu") {
        Some(m) => (100_000, (m * 100).max(1000) as i64),
        None => (0, 0),
    };
    api::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: limit("memory").map(|m| (m / 1000) as i64).unwrap_or(0),
        ..Default::default()
    }
}

/// Everything CreateContainer needs beyond the pod: resolved env, mounts and the image.
pub struct ContainerInputs<'a> {
    /// The image reference to run.
    pub image: &'a str,
    /// The resolved environment, in order.
    pub env: &'a [(String, String)],
    /// Volume mounts plus the kubelet's own (termination log).
    pub mounts: Vec<api::Mount>,
    /// Restart number of this instance.
    pub attempt: u32,
}

/// The CreateContainer config of `container` in `pod`.
pub fn container_config(pod: &Pod, container: &Container, inputs: ContainerInputs<'_>) -> api::ContainerConfig {
    let lookup = |name: &str| inputs.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let expand = |v: &Vec<String>| v.iter().map(|s| crate::env::expand(s, &lookup)).collect::<Vec<_>>();
    let mut labels = pod_labels(pod);
    labels.insert(LABEL_CONTAINER_NAME.to_string(), container.name.clone());
    let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    let sc = container.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let caps = sc.and_then(|c| c.capabilities.as_ref());
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: container.name.clone(), attempt: inputs.attempt }),
        image: Some(api::ImageSpec { image: inputs.image.to_string(), ..Default::default() }),
        command: container.command.as_ref().map(expand).unwrap_or_default(),
        args: container.args.as_ref().map(expand).unwrap_or_default(),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: inputs.env.iter().map(|(k, v)| api::KeyValue { key: k.clone(), value: v.clone() }).collect(),
        mounts: inputs.mounts,
        labels,
        annotations: HashMap::from([(ANNOTATION_GRACE.to_string(), grace.to_string())]),
        log_path: format!("{}/{}.log", container.name, inputs.attempt),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_resources(container)),
            security_context: Some(api::LinuxContainerSecurityContext {
                capabilities: caps.map(|c| api::Capability {
                    add_capabilities: c.add.clone().unwrap_or_default(),
                    drop_capabilities: c.drop.clone().unwrap_or_default(),
                    ..Default::default()
                }),
                privileged: sc.and_then(|c| c.privileged).unwrap_or(false),
                namespace_options: Some(namespace_options(pod)),
                run_as_user: sc
                    .and_then(|c| c.run_as_user)
                    .or(psc.and_then(|c| c.run_as_user))
                    .map(|value| api::Int64Value { value }),
                run_as_group: sc
                    .and_then(|c| c.run_as_group)
                    .or(psc.and_then(|c| c.run_as_group))
                    .map(|value| api::Int64Value { value }),
                readonly_rootfs: sc.and_then(|c| c.read_only_root_filesystem).unwrap_or(false),
                supplemental_groups: psc.and_then(|c| c.supplemental_groups.clone()).unwrap_or_default(),
                no_new_privs: sc.and_then(|c| c.allow_privilege_escalation) == Some(false),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// The file a container writes its termination message to, on the host.
pub fn termination_log(root_dir: &Path, pod_uid: &str, container: &str, attempt: u32) -> PathBuf {
    root_dir.join("pods").join(pod_uid).join("containers").join(container).join(attempt.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use std::collections::BTreeMap;

    fn settings() -> NodeSettings {
        NodeSettings {
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            resolv_conf: "/nonexistent".into(),
            pod_logs_dir: "/var/log/pods".into(),
        }
    }

    #[test]
    fn cluster_first_dns_searches_the_namespace_first() {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("demo".into());
        let d = dns_config(&settings(), &pod);
        assert_eq!(d.servers, vec!["10.96.0.10"]);
        assert_eq!(d.searches, vec!["demo.svc.cluster.local", "svc.cluster.local", "cluster.local"]);
        assert_eq!(d.options, vec!["ndots:5"]);
        assert_eq!(parse_resolv_conf("nameserver 1.1.1.1\nsearch a b\noptions edns0\n").1, vec!["a", "b"]);
    }

    #[test]
    fn resources_become_shares_quota_and_memory_limit() {
        let q = |s: &str| Quantity(s.into());
        let c = Container {
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([("cpu".into(), q("250m"))])),
                limits: Some(BTreeMap::from([("cpu".into(), q("500m")), ("memory".into(), q("64Mi"))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = linux_resources(&c);
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 100_000, 50_000, 64 << 20)
        );
        assert_eq!(linux_resources(&Container::default()).cpu_shares, 2);
    }

    #[test]
    fn sandbox_carries_the_pod_labels_and_host_ports() {
        let mut pod = Pod { spec: Some(PodSpec::default()), ..Default::default() };
        pod.metadata.name = Some("web-0".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u1".into());
        let s = sandbox_config(&settings(), &pod, 2);
        assert_eq!(s.hostname, "web-0");
        assert_eq!(s.labels[LABEL_POD_UID], "u1");
        assert_eq!(s.log_directory, "/var/log/pods/ns_web-0_u1");
        assert_eq!(s.metadata.unwrap().attempt, 2);
    }
}
