//! A container's environment as Kubernetes builds it: Service link variables, then `envFrom`
//! sources, then `env` in order with `$(VAR)` expansion against what came before; and the
//! `$(VAR)` expansion itself, which command and args use too.

use crate::downward::{self, Allocatable, DownwardError};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use rkube_client::{Client, ClientError, ListParams};
use std::collections::{BTreeMap, HashMap};

/// Why a container's environment cannot be built; shown as the pod's
/// CreateContainerConfigError message, so the texts are Kubernetes'.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap does not exist and the reference is not optional.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist and the reference is not optional.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// A `configMapKeyRef` names a key the ConfigMap lacks.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The missing key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// A `secretKeyRef` names a key the Secret lacks.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The missing key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A `fieldRef` or `resourceFieldRef` that cannot be resolved.
    #[error(transparent)]
    Downward(#[from] DownwardError),
    /// The Services for the link variables could not be listed.
    #[error("failed to list services when setting up env vars: {0}")]
    Services(Box<ClientError>),
    /// Reading a ConfigMap or Secret failed for a reason other than its absence.
    #[error(transparent)]
    Api(Box<ClientError>),
}

impl From<ClientError> for EnvError {
    fn from(e: ClientError) -> Self {
        EnvError::Api(Box::new(e))
    }
}

fn services_err(e: ClientError) -> EnvError {
    EnvError::Services(Box::new(e))
}

/// The Services whose variables every pod gets, even with `enableServiceLinks: false`.
const MASTER_SERVICE: (&str, &str) = ("default", "kubernetes");

/// Expands `$(VAR)` references in `s` as Kubernetes does: `$(NAME)` becomes the value `vars`
/// gives, or stays as written when `vars` knows no such name; `$$` is a literal `$`; any other
/// `$` (including an unclosed `$(`) is kept as it is.
pub fn expand(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match vars(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                // Unclosed: keep "$(" and carry on scanning after it.
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            // A lone '$' (also at the very end) stays literal.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// An environment under construction: one entry per name, a redefinition replacing the old
/// entry and moving to the end, so the result reads in definition order.
#[derive(Default)]
struct EnvList {
    vars: Vec<(String, String)>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }

    fn get(&self, name: &str) -> Option<String> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

/// ConfigMaps and Secrets read once per environment build; `None` records absence.
struct Sources<'a> {
    client: &'a Client,
    namespace: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Sources<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ClientError> {
        if !self.config_maps.contains_key(name) {
            let cm = self.client.api::<ConfigMap>(Some(self.namespace)).get_opt(name).await?;
            self.config_maps.insert(name.to_string(), cm);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ClientError> {
        if !self.secrets.contains_key(name) {
            let s = self.client.api::<Secret>(Some(self.namespace)).get_opt(name).await?;
            self.secrets.insert(name.to_string(), s);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// The environment of one container, in Kubernetes' order and with $(VAR) expansion.
///
/// Service link variables come first (the pod's own variables override them), then each
/// `envFrom` source (keys sorted, invalid names skipped with a warning), then `env` in order.
/// An unset limit read through `resourceFieldRef` is the node's allocatable amount, read from
/// the pod's Node.
pub async fn container_env(
    client: &Client,
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ips: &[String],
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    let links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut env = EnvList::default();
    for (name, value) in service_env(client, namespace, links).await? {
        env.set(name, value);
    }

    let mut sources = Sources { client, namespace, config_maps: HashMap::new(), secrets: HashMap::new() };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let source;
        if let Some(r) = &from.config_map_ref {
            source = format!("configMap {namespace}/{}", r.name);
            match sources.config_map(&r.name).await? {
                Some(cm) => pairs.extend(cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone()))),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = &from.secret_ref {
            source = format!("secret {namespace}/{}", r.name);
            match sources.secret(&r.name).await? {
                Some(s) => pairs.extend(
                    s.data.iter().flatten().map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())),
                ),
                None if r.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        } else {
            continue;
        }
        let mut invalid = Vec::new();
        for (key, value) in pairs {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                env.set(name, value);
            } else {
                invalid.push(name);
            }
        }
        if !invalid.is_empty() {
            tracing::warn!(
                pod = %pod_key(pod),
                container = %container.name,
                source = %source,
                keys = ?invalid,
                "envFrom keys skipped since they are not valid environment variable names"
            );
        }
    }

    let allocatable = Allocatable::new(client, spec.and_then(|s| s.node_name.as_deref()).unwrap_or_default());
    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or_default();
        let value = if !literal.is_empty() {
            expand(literal, &|name| env.get(name))
        } else if let Some(from) = &var.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                let Some(cm) = sources.config_map(&r.name).await? else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::ConfigMapNotFound(r.name.clone()));
                };
                match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::ConfigMapKeyNotFound {
                            key: r.key.clone(),
                            namespace: namespace.to_string(),
                            name: r.name.clone(),
                        });
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                let Some(secret) = sources.secret(&r.name).await? else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::SecretNotFound(r.name.clone()));
                };
                match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::SecretKeyNotFound {
                            key: r.key.clone(),
                            namespace: namespace.to_string(),
                            name: r.name.clone(),
                        });
                    }
                }
            } else if let Some(f) = &from.field_ref {
                downward::field_value(pod, &f.field_path, host_ip, pod_ips)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                    Some(name) => downward::find_container(pod, name)
                        .ok_or_else(|| DownwardError::ContainerNotFound(name.to_string()))?,
                    None => container,
                };
                downward::resource_value(target, &r.resource, r.divisor.as_ref(), &allocatable).await?
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.vars)
}

/// The Service link variables of a pod in `namespace`: the `kubernetes` Service's always, the
/// namespace's other Services' when `links` is on, sorted by Service name.
async fn service_env(client: &Client, namespace: &str, links: bool) -> Result<Vec<(String, String)>, EnvError> {
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    if links {
        let list = client.api::<Service>(Some(namespace)).list(&ListParams::default()).await.map_err(services_err)?;
        for s in list.items {
            services.insert(s.metadata.name.clone().unwrap_or_default(), s);
        }
    }
    // A Service of the same name in the pod's own namespace takes the place of the master's.
    let (master_ns, master_name) = MASTER_SERVICE;
    if !services.contains_key(master_name)
        && let Some(master) = client.api::<Service>(Some(master_ns)).get_opt(master_name).await.map_err(services_err)?
    {
        services.insert(master_name.to_string(), master);
    }
    Ok(services.values().flat_map(service_link_vars).collect())
}

/// The variables one Service contributes, docker-link style; none for a headless Service or
/// one without a ClusterIP.
pub fn service_link_vars(service: &Service) -> Vec<(String, String)> {
    let spec = match service.spec.as_ref() {
        Some(s) => s,
        None => return Vec::new(),
    };
    let ip = spec.cluster_ip.as_deref().unwrap_or_default();
    if ip.is_empty() || ip == "None" {
        return Vec::new();
    }
    let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut vars = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_string())];
    if let Some(first) = ports.first() {
        vars.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    }
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((format!("{prefix}_SERVICE_PORT_{}", env_name(name)), p.port.to_string()));
        }
    }
    let host_port = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let lower = proto.to_lowercase();
        let url = format!("{lower}://{host_port}:{}", p.port);
        if i == 0 {
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        vars.push((port_prefix.clone(), url));
        vars.push((format!("{port_prefix}_PROTO"), lower));
        vars.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        vars.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
    vars
}

/// A Service or port name as a variable name: upper-cased, `-` as `_`.
fn env_name(s: &str) -> String {
    s.to_uppercase().replace('-', "_")
}

/// Kubernetes' rule for environment variable names: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_') || (i > 0 && c.is_ascii_digit()))
}

fn pod_key(pod: &Pod) -> String {
    rkube_client::object_key(&pod.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let v = vars(&[("A", "1"), ("B", "two"), ("EMPTY", "")]);
        assert_eq!(expand("$(A)-$(B)", &v), "1-two");
        assert_eq!(expand("x$(MISSING)y", &v), "x$(MISSING)y");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$$$(A)", &v), "$1");
        assert_eq!(expand("cost $5", &v), "cost $5");
        assert_eq!(expand("trailing $", &v), "trailing $");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("$($(A))", &v), "$($(A))");
        assert_eq!(expand("$(EMPTY)!", &v), "!");
        assert_eq!(expand("$()", &v), "$()");
        assert_eq!(expand("ünï$(A)cödé", &v), "ünï1cödé");
        assert_eq!(expand("", &v), "");
    }

    #[test]
    fn service_links_are_docker_style() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-primary"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [
                {"name": "db", "port": 6379, "protocol": "TCP"},
                {"name": "metrics-port", "port": 9121, "protocol": "UDP"}]},
        }))
        .unwrap();
        let got: HashMap<String, String> = service_link_vars(&svc).into_iter().collect();
        let want = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.96.0.20"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_DB", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS_PORT", "9121"),
            ("REDIS_PRIMARY_PORT", "tcp://10.96.0.20:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.96.0.20:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.96.0.20"),
            ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.96.0.20:9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.96.0.20"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (k, v) in want {
            assert_eq!(got.get(k).map(String::as_str), Some(v), "{k}");
        }
        let headless: Service =
            serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}})).unwrap();
        assert!(service_link_vars(&headless).is_empty());
        let v6: Service = serde_json::from_value(
            json!({"metadata": {"name": "v6"}, "spec": {"clusterIP": "fd00::1", "ports": [{"port": 80}]}}),
        )
        .unwrap();
        let got: HashMap<String, String> = service_link_vars(&v6).into_iter().collect();
        assert_eq!(got["V6_PORT"], "tcp://[fd00::1]:80");
    }

    #[test]
    fn env_var_names() {
        assert!(is_env_var_name("PATH"));
        assert!(is_env_var_name("my.var-1"));
        assert!(is_env_var_name("_x"));
        assert!(!is_env_var_name("1ABC"));
        assert!(!is_env_var_name("has space"));
        assert!(!is_env_var_name(""));
        assert!(!is_env_var_name("a=b"));
    }

    #[test]
    fn redefinition_replaces_and_moves_to_the_end() {
        let mut env = EnvList::default();
        env.set("A".into(), "1".into());
        env.set("B".into(), "2".into());
        env.set("A".into(), "3".into());
        assert_eq!(env.vars, vec![("B".to_string(), "2".to_string()), ("A".to_string(), "3".to_string())]);
    }
}
