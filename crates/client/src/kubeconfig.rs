//! kubeconfig loading for daemons and tools started outside the cluster: the server of the
//! current (or a named) context, from `--kubeconfig`, `$KUBECONFIG` or `~/.kube/config`.

use crate::{ClientError, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(default)]
    server: String,
    #[serde(default)]
    certificate_authority: Option<String>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
}

#[derive(Deserialize, Default)]
struct Context {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// What a client needs from a kubeconfig context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    /// The API server URL.
    pub server: String,
    /// The context's default namespace.
    pub namespace: Option<String>,
    /// A bearer token, if the user has one.
    pub token: Option<String>,
    /// CA bundle file or inline data (base64), when the server uses TLS.
    pub certificate_authority: Option<String>,
    /// Client certificate file, for x509 authentication.
    pub client_certificate: Option<String>,
    /// Client key file.
    pub client_key: Option<String>,
}

impl Kubeconfig {
    /// The kubeconfig a client should use: `explicit`, else the first file in `$KUBECONFIG`,
    /// else `~/.kube/config`.
    pub fn path(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_path_buf());
        }
        if let Some(list) = std::env::var_os("KUBECONFIG")
            && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
        {
            return Some(first);
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
    }

    /// The API server a daemon talks to: `master` when given, else the server of the
    /// kubeconfig ([`Kubeconfig::path`]), else the local default `http://127.0.0.1:6443`.
    pub fn server_address(master: Option<&str>, explicit: Option<&Path>) -> Result<String> {
        if let Some(m) = master {
            return Ok(m.to_string());
        }
        match Self::path(explicit) {
            Some(path) if explicit.is_some() || path.exists() => Ok(Self::load(&path, None)?.server),
            _ => Ok("http://127.0.0.1:6443".to_string()),
        }
    }

    /// Reads the file at `path` and resolves `context` (or the current context).
    pub fn load(path: &Path, context: Option<&str>) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text, context).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses kubeconfig YAML and resolves `context` (or the current context).
    pub fn parse(text: &str, context: Option<&str>) -> std::result::Result<Kubeconfig, String> {
        let file: File = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let name = context.map(str::to_string).unwrap_or(file.current_context.clone());
        let ctx = file.contexts.iter().find(|c| c.name == name).ok_or_else(|| format!("context {name:?} not found"))?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == ctx.value.cluster)
            .ok_or_else(|| format!("cluster {:?} of context {name:?} not found", ctx.value.cluster))?
            .value
            .clone();
        if cluster.server.is_empty() {
            return Err(format!("cluster {:?} has no server", ctx.value.cluster));
        }
        let user = file.users.iter().find(|u| u.name == ctx.value.user).map(|u| u.value.clone()).unwrap_or_default();
        Ok(Kubeconfig {
            server: cluster.server,
            namespace: ctx.value.namespace.clone(),
            token: user.token,
            certificate_authority: cluster.certificate_authority.or(cluster.certificate_authority_data),
            client_certificate: user.client_certificate,
            client_key: user.client_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster:
    server: http://127.0.0.1:6443
- name: b
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: Zm9v
users:
- name: admin
  user:
    token: secret
contexts:
- name: one
  context: {cluster: a, user: admin, namespace: demo}
- name: two
  context: {cluster: b, user: nobody}
current-context: one
"#;

    #[test]
    fn resolves_current_and_named_contexts() {
        let one = Kubeconfig::parse(CONFIG, None).unwrap();
        assert_eq!(one.server, "http://127.0.0.1:6443");
        assert_eq!(one.namespace.as_deref(), Some("demo"));
        assert_eq!(one.token.as_deref(), Some("secret"));
        let two = Kubeconfig::parse(CONFIG, Some("two")).unwrap();
        assert_eq!(two.server, "https://10.0.0.1:6443");
        assert_eq!(two.certificate_authority.as_deref(), Some("Zm9v"));
        assert_eq!(two.token, None);
    }

    #[test]
    fn missing_context_is_an_error() {
        let e = Kubeconfig::parse(CONFIG, Some("three")).unwrap_err();
        assert!(e.contains("\"three\" not found"), "{e}");
        assert!(Kubeconfig::parse("clusters: [", None).is_err());
    }
}
