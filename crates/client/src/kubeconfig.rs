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
    token_file: Option<String>,
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
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

/// What a client needs from a kubeconfig context, with files and base64 data already read.
#[derive(Clone, PartialEq, Eq)]
pub struct Kubeconfig {
    /// The API server URL.
    pub server: String,
    /// The context's default namespace.
    pub namespace: Option<String>,
    /// A bearer token, if the user has one.
    pub token: Option<String>,
    /// PEM of the CA bundle the server's certificate must chain to (https servers).
    pub certificate_authority: Option<Vec<u8>>,
    /// PEM of the client certificate, for x509 authentication.
    pub client_certificate: Option<Vec<u8>>,
    /// PEM of the client certificate's private key.
    pub client_key: Option<Vec<u8>>,
}

// Credentials stay out of logs and panic messages.
impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "REDACTED"))
            .field("certificate_authority", &self.certificate_authority.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .finish()
    }
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

    /// What a daemon connects with: the kubeconfig ([`Kubeconfig::path`]) when one exists,
    /// with `master` replacing its server; else `master`; else the local default
    /// `http://127.0.0.1:6443` without credentials.
    pub fn for_daemon(master: Option<&str>, explicit: Option<&Path>) -> Result<Kubeconfig> {
        let mut config = match Self::path(explicit) {
            Some(path) if explicit.is_some() || path.exists() => Self::load(&path, None)?,
            _ => Kubeconfig::insecure("http://127.0.0.1:6443"),
        };
        if let Some(m) = master {
            config.server = m.to_string();
        }
        Ok(config)
    }

    /// A plain-HTTP server without credentials.
    pub fn insecure(server: &str) -> Kubeconfig {
        Kubeconfig {
            server: server.to_string(),
            namespace: None,
            token: None,
            certificate_authority: None,
            client_certificate: None,
            client_key: None,
        }
    }

    /// Reads the file at `path` and resolves `context` (or the current context); relative
    /// file names inside it are relative to the file's directory, as kubectl reads them.
    pub fn load(path: &Path, context: Option<&str>) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("reading {}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse_in(&text, context, dir).map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses kubeconfig YAML and resolves `context` (or the current context); relative file
    /// names are taken from the working directory.
    pub fn parse(text: &str, context: Option<&str>) -> std::result::Result<Kubeconfig, String> {
        Self::parse_in(text, context, Path::new("."))
    }

    fn parse_in(text: &str, context: Option<&str>, dir: &Path) -> std::result::Result<Kubeconfig, String> {
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
        let token = match (user.token, &user.token_file) {
            (Some(t), _) => Some(t),
            (None, Some(f)) => {
                let bytes = read(dir, f)?;
                Some(String::from_utf8(bytes).map_err(|_| "the token file is not UTF-8".to_string())?.trim().to_string())
            }
            (None, None) => None,
        };
        Ok(Kubeconfig {
            server: cluster.server,
            namespace: ctx.value.namespace.clone(),
            token,
            certificate_authority: data_or_file(
                "certificate-authority",
                cluster.certificate_authority_data,
                cluster.certificate_authority,
                dir,
            )?,
            client_certificate: data_or_file(
                "client-certificate",
                user.client_certificate_data,
                user.client_certificate,
                dir,
            )?,
            client_key: data_or_file("client-key", user.client_key_data, user.client_key, dir)?,
        })
    }
}

/// The `<field>-data` value (base64, which wins as in kubectl) or the contents of `<field>`.
fn data_or_file(
    field: &str,
    data: Option<String>,
    file: Option<String>,
    dir: &Path,
) -> std::result::Result<Option<Vec<u8>>, String> {
    use base64::Engine;
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| format!("{field}-data is not base64: {e}"))?;
        return Ok(Some(bytes));
    }
    file.filter(|f| !f.is_empty()).map(|f| read(dir, &f)).transpose()
}

fn read(dir: &Path, file: &str) -> std::result::Result<Vec<u8>, String> {
    let path = dir.join(file);
    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
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
        assert_eq!(two.certificate_authority.as_deref(), Some(&b"foo"[..]));
        assert_eq!(two.token, None);
    }

    #[test]
    fn files_are_read_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "CA").unwrap();
        std::fs::write(dir.path().join("token"), "abc\n").unwrap();
        let text = "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: ca.crt}}]\n\
                    users: [{name: u, user: {token-file: token, client-key-data: a2V5}}]\n\
                    contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n";
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let config = Kubeconfig::load(&path, None).unwrap();
        assert_eq!(config.certificate_authority.as_deref(), Some(&b"CA"[..]));
        assert_eq!(config.token.as_deref(), Some("abc"));
        assert_eq!(config.client_key.as_deref(), Some(&b"key"[..]));
        assert!(!format!("{config:?}").contains("abc"), "the token is redacted from Debug");
    }

    #[test]
    fn missing_context_is_an_error() {
        let e = Kubeconfig::parse(CONFIG, Some("three")).unwrap_err();
        assert!(e.contains("\"three\" not found"), "{e}");
        assert!(Kubeconfig::parse("clusters: [", None).is_err());
    }
}
