//! kubeconfig as kubectl reads and writes it: `--kubeconfig` alone, else every file of
//! `$KUBECONFIG` merged (the first file to define a name or the current context wins), else
//! `~/.kube/config`; flag overrides; relative paths resolved against the defining file; edits
//! written to the file that defines the stanza (new stanzas to the first existing file).

use crate::error::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One kubeconfig file (v1 Config), field order as kubectl's typed JSON output.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    /// Always `Config`.
    #[serde(default = "kind_config")]
    pub kind: String,
    /// Always `v1`.
    #[serde(rename = "apiVersion", default = "api_v1")]
    pub api_version: String,
    /// Client preferences (kept as given).
    #[serde(default = "empty_object")]
    pub preferences: Value,
    /// Named clusters.
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    /// Named users (AuthInfos).
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    /// Named contexts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    /// The context used without `--context`.
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    /// Extensions (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

fn kind_config() -> String {
    "Config".into()
}
fn api_v1() -> String {
    "v1".into()
}
fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// A cluster entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Its name.
    pub name: String,
    /// Its settings.
    #[serde(default)]
    pub cluster: Cluster,
}

/// How to reach and trust an API server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// `https://host:port` (or http).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// SNI / verification name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tls_server_name: String,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure_skip_tls_verify: bool,
    /// CA bundle path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate_authority: String,
    /// CA bundle, base64 PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate_authority_data: String,
    /// HTTP proxy URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    /// Disable response compression.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_compression: bool,
    /// Extensions (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// A user entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedUser {
    /// Its name.
    pub name: String,
    /// Its credentials.
    #[serde(default)]
    pub user: User,
}

/// Credentials (AuthInfo).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Client certificate path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// Client certificate, base64 PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate_data: String,
    /// Client key path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_key: String,
    /// Client key, base64 PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_key_data: String,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// File holding the bearer token.
    #[serde(rename = "tokenFile", default, skip_serializing_if = "String::is_empty")]
    pub token_file: String,
    /// Impersonated user.
    #[serde(rename = "as", default, skip_serializing_if = "String::is_empty")]
    pub impersonate: String,
    /// Impersonated UID.
    #[serde(rename = "as-uid", default, skip_serializing_if = "String::is_empty")]
    pub impersonate_uid: String,
    /// Impersonated groups.
    #[serde(rename = "as-groups", default, skip_serializing_if = "Option::is_none")]
    pub impersonate_groups: Option<Vec<String>>,
    /// Impersonated extra fields.
    #[serde(rename = "as-user-extra", default, skip_serializing_if = "Option::is_none")]
    pub impersonate_extra: Option<Value>,
    /// Basic-auth user name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Basic-auth password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// Auth provider plugin (kept, not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<Value>,
    /// Exec credential plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Value>,
    /// Extensions (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// A context entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NamedContext {
    /// Its name.
    pub name: String,
    /// Its settings.
    #[serde(default)]
    pub context: Context,
}

/// Cluster + user + default namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Context {
    /// Cluster name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Default namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Extensions (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

impl Config {
    /// Parses one file's text (empty text is an empty config).
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config {
                kind: kind_config(),
                api_version: api_v1(),
                preferences: empty_object(),
                ..Default::default()
            });
        }
        serde_saphyr::from_str(text)
            .map_err(|e| Error::Config(format!("error loading config file \"{}\": {e}", path.display())))
    }

    /// The YAML text kubectl would write for this config.
    pub fn to_yaml(&self) -> String {
        crate::print::yaml::to_string(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name).map(|c| &c.cluster)
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|c| c.name == name).map(|c| &c.user)
    }

    /// A context by name.
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name).map(|c| &c.context)
    }
}

/// Flags that pick and override kubeconfig values.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `-n`.
    pub namespace: Option<String>,
    /// `--server`.
    pub server: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--insecure-skip-tls-verify`.
    pub insecure: bool,
    /// `--certificate-authority`.
    pub certificate_authority: Option<String>,
    /// `--client-certificate`.
    pub client_certificate: Option<String>,
    /// `--client-key`.
    pub client_key: Option<String>,
    /// `--tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `--username`.
    pub username: Option<String>,
    /// `--password`.
    pub password: Option<String>,
}

/// Every kubeconfig file in the chain, loaded, plus their merge.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The files in precedence order with their content (missing files are skipped).
    pub files: Vec<(PathBuf, Config)>,
    /// The chain as configured (including files that do not exist yet).
    pub chain: Vec<PathBuf>,
    /// Merged view.
    pub merged: Config,
    /// For each cluster / user name, the directory of the file that defined it (relative paths).
    cluster_dirs: BTreeMap<String, PathBuf>,
    user_dirs: BTreeMap<String, PathBuf>,
}

/// The kubeconfig files to read: `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`.
pub fn chain(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let mut seen = Vec::new();
        for p in std::env::split_paths(&list) {
            if !p.as_os_str().is_empty() && !seen.contains(&p) {
                seen.push(p);
            }
        }
        if !seen.is_empty() {
            return seen;
        }
    }
    vec![home().join(".kube").join("config")]
}

/// `$HOME` (or `/root` when unset).
pub fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl Loaded {
    /// Loads and merges the chain. An explicit `--kubeconfig` that does not exist is an error,
    /// as in kubectl; missing files of `$KUBECONFIG` are skipped.
    pub fn load(explicit: Option<&Path>) -> Result<Loaded> {
        Self::from_chain(chain(explicit), explicit.is_some())
    }

    /// Loads and merges the given files in precedence order; `strict` makes a missing file an
    /// error (an explicit `--kubeconfig`).
    pub fn from_chain(chain: Vec<PathBuf>, strict: bool) -> Result<Loaded> {
        let mut files = Vec::new();
        for path in &chain {
            match std::fs::read_to_string(path) {
                Ok(text) => files.push((path.clone(), Config::parse(&text, path)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if strict {
                        return Err(Error::Config(format!("stat {}: no such file or directory", path.display())));
                    }
                }
                Err(e) => return Err(Error::Config(format!("reading {}: {e}", path.display()))),
            }
        }
        let mut loaded = Loaded {
            files,
            chain,
            merged: Config::default(),
            cluster_dirs: BTreeMap::new(),
            user_dirs: BTreeMap::new(),
        };
        loaded.rebuild();
        Ok(loaded)
    }

    /// The context in use: `--context`, else current-context.
    pub fn context_name(&self, ov: &Overrides) -> String {
        ov.context.clone().unwrap_or_else(|| self.merged.current_context.clone())
    }

    /// Resolves the settings one REST client needs.
    pub fn resolve(&self, ov: &Overrides) -> Result<Resolved> {
        let ctx_name = self.context_name(ov);
        let ctx = self.merged.context(&ctx_name).cloned().unwrap_or_default();
        if !ctx_name.is_empty() && self.merged.context(&ctx_name).is_none() && ov.context.is_some() {
            return Err(Error::Config(format!("context was not found for specified context: {ctx_name}")));
        }
        let cluster_name = ov.cluster.clone().unwrap_or_else(|| ctx.cluster.clone());
        let user_name = ov.user.clone().unwrap_or_else(|| ctx.user.clone());
        let cluster = self.merged.cluster(&cluster_name).cloned().unwrap_or_default();
        let user = self.merged.user(&user_name).cloned().unwrap_or_default();
        let cdir = self.cluster_dirs.get(&cluster_name).cloned().unwrap_or_default();
        let udir = self.user_dirs.get(&user_name).cloned().unwrap_or_default();
        let server = ov.server.clone().unwrap_or_else(|| cluster.server.clone());
        if server.is_empty() {
            return Err(Error::Connect(
                "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
                    .into(),
            ));
        }
        let ca = if let Some(path) = &ov.certificate_authority {
            Some(read_file(&PathBuf::from(path))?)
        } else if !cluster.certificate_authority_data.is_empty() {
            Some(decode_b64(&cluster.certificate_authority_data, "certificate-authority-data")?)
        } else if !cluster.certificate_authority.is_empty() {
            Some(read_file(&cdir.join(&cluster.certificate_authority))?)
        } else {
            None
        };
        let cert = if let Some(path) = &ov.client_certificate {
            Some(read_file(&PathBuf::from(path))?)
        } else if !user.client_certificate_data.is_empty() {
            Some(decode_b64(&user.client_certificate_data, "client-certificate-data")?)
        } else if !user.client_certificate.is_empty() {
            Some(read_file(&udir.join(&user.client_certificate))?)
        } else {
            None
        };
        let key = if let Some(path) = &ov.client_key {
            Some(read_file(&PathBuf::from(path))?)
        } else if !user.client_key_data.is_empty() {
            Some(decode_b64(&user.client_key_data, "client-key-data")?)
        } else if !user.client_key.is_empty() {
            Some(read_file(&udir.join(&user.client_key))?)
        } else {
            None
        };
        let mut token = ov.token.clone().filter(|t| !t.is_empty());
        if token.is_none() && !user.token.is_empty() {
            token = Some(user.token.clone());
        }
        if token.is_none() && !user.token_file.is_empty() {
            let bytes = read_file(&udir.join(&user.token_file))?;
            token = Some(String::from_utf8_lossy(&bytes).trim().to_string());
        }
        let mut exec_cert = None;
        if token.is_none()
            && cert.is_none()
            && let Some(exec) = &user.exec
        {
            let (t, c) = run_exec_plugin(exec, &server)?;
            token = t;
            exec_cert = c;
        }
        let (cert, key) = match exec_cert {
            Some((c, k)) => (Some(c), Some(k)),
            None => (cert, key),
        };
        let basic = match (
            ov.username.clone().or(Some(user.username.clone())),
            ov.password.clone().or(Some(user.password.clone())),
        ) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
            _ => None,
        };
        Ok(Resolved {
            context: ctx_name,
            server: server.trim_end_matches('/').to_string(),
            namespace: ov.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
                if ctx.namespace.is_empty() { "default".to_string() } else { ctx.namespace.clone() }
            }),
            namespace_explicit: ov.namespace.is_some(),
            insecure: ov.insecure || cluster.insecure_skip_tls_verify,
            tls_server_name: ov
                .tls_server_name
                .clone()
                .or(Some(cluster.tls_server_name.clone()).filter(|s| !s.is_empty())),
            ca_pem: ca,
            client_cert_pem: cert,
            client_key_pem: key,
            token,
            basic,
            impersonate: Some(user.impersonate.clone()).filter(|s| !s.is_empty()),
        })
    }

    /// The file that defines a stanza (`kind` one of clusters/users/contexts), or where new
    /// stanzas go: the first existing file, else the last file of the chain.
    pub fn file_for(&self, kind: &str, name: &str) -> PathBuf {
        for (path, cfg) in &self.files {
            let found = match kind {
                "clusters" => cfg.cluster(name).is_some(),
                "users" => cfg.user(name).is_some(),
                _ => cfg.context(name).is_some(),
            };
            if found {
                return path.clone();
            }
        }
        self.default_file()
    }

    /// Where current-context lives: the first file that sets it, else the default file.
    pub fn file_for_current_context(&self) -> PathBuf {
        self.files
            .iter()
            .find(|(_, c)| !c.current_context.is_empty())
            .map(|(p, _)| p.clone())
            .unwrap_or_else(|| self.default_file())
    }

    fn default_file(&self) -> PathBuf {
        self.files
            .first()
            .map(|(p, _)| p.clone())
            .or_else(|| self.chain.last().cloned())
            .unwrap_or_else(|| home().join(".kube/config"))
    }

    /// Reads one file of the chain for editing (empty config when missing).
    pub fn file(&self, path: &Path) -> Config {
        self.files.iter().find(|(p, _)| p == path).map(|(_, c)| c.clone()).unwrap_or_else(|| Config {
            kind: kind_config(),
            api_version: api_v1(),
            preferences: empty_object(),
            ..Default::default()
        })
    }
}

/// Writes a config file (creating its directory), mode 0600 like kubectl.
pub fn write(path: &Path, cfg: &Config) -> Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    // kubectl keeps stanzas in maps, so a written file lists them sorted by name.
    let mut cfg = cfg.clone();
    cfg.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    cfg.users.sort_by(|a, b| a.name.cmp(&b.name));
    cfg.contexts.sort_by(|a, b| a.name.cmp(&b.name));
    std::fs::write(path, cfg.to_yaml())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Everything a REST client needs, resolved from kubeconfig + flags.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Context name in use.
    pub context: String,
    /// Server URL without trailing slash.
    pub server: String,
    /// Namespace for namespaced requests.
    pub namespace: String,
    /// Whether `-n` was given.
    pub namespace_explicit: bool,
    /// Skip TLS verification.
    pub insecure: bool,
    /// Name to verify the server certificate against.
    pub tls_server_name: Option<String>,
    /// CA bundle PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate PEM.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client key PEM.
    pub client_key_pem: Option<Vec<u8>>,
    /// Bearer token.
    pub token: Option<String>,
    /// Basic auth.
    pub basic: Option<(String, String)>,
    /// `Impersonate-User`.
    pub impersonate: Option<String>,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("open {}: {e}", path.display())))
}

fn decode_b64(text: &str, field: &str) -> Result<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|e| Error::Config(format!("illegal base64 data in {field}: {e}")))
}

/// Runs a `client.authentication.k8s.io` exec plugin and returns its token or client cert+key.
#[allow(clippy::type_complexity)]
fn run_exec_plugin(exec: &Value, server: &str) -> Result<(Option<String>, Option<(Vec<u8>, Vec<u8>)>)> {
    let command = exec["command"].as_str().ok_or_else(|| Error::Config("exec plugin: no command".into()))?;
    let api_version = exec["apiVersion"].as_str().unwrap_or("client.authentication.k8s.io/v1");
    let mut cmd = std::process::Command::new(command);
    if let Some(args) = exec["args"].as_array() {
        cmd.args(args.iter().filter_map(Value::as_str));
    }
    if let Some(env) = exec["env"].as_array() {
        for e in env {
            if let (Some(n), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                cmd.env(n, v);
            }
        }
    }
    let info = serde_json::json!({"kind": "ExecCredential", "apiVersion": api_version, "spec": {"interactive": false, "cluster": {"server": server}}});
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    cmd.stderr(std::process::Stdio::inherit());
    let out = cmd.output().map_err(|e| Error::Config(format!("exec plugin {command}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Config(format!("exec plugin: invalid result: {command} exited with {}", out.status)));
    }
    let cred: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Config(format!("exec plugin: decoding stdout: {e}")))?;
    let status = &cred["status"];
    let token = status["token"].as_str().map(str::to_string);
    let cert = match (status["clientCertificateData"].as_str(), status["clientKeyData"].as_str()) {
        (Some(c), Some(k)) => Some((c.as_bytes().to_vec(), k.as_bytes().to_vec())),
        _ => None,
    };
    Ok((token, cert))
}

/// kubectl's `config view` redaction: `*-data` fields become `DATA+OMITTED`, secrets `REDACTED`.
pub fn redact(cfg: &mut Config) {
    const DATA: &str = "DATA+OMITTED";
    for c in &mut cfg.clusters {
        if !c.cluster.certificate_authority_data.is_empty() {
            c.cluster.certificate_authority_data = DATA.into();
        }
    }
    for u in &mut cfg.users {
        let user = &mut u.user;
        if !user.client_certificate_data.is_empty() {
            user.client_certificate_data = DATA.into();
        }
        if !user.client_key_data.is_empty() {
            user.client_key_data = DATA.into();
        }
        if !user.token.is_empty() {
            user.token = "REDACTED".into();
        }
        if !user.password.is_empty() {
            user.password = "REDACTED".into();
        }
    }
}

/// Only the current context, its cluster and its user (`config view --minify`).
pub fn minify(cfg: &Config, context: &str) -> Result<Config> {
    let ctx = cfg.context(context).ok_or_else(|| {
        if context.is_empty() {
            Error::Config("current-context must exist in order to minify".into())
        } else {
            Error::Config(format!("cannot locate context {context}"))
        }
    })?;
    let mut out = Config { current_context: context.to_string(), ..cfg.clone() };
    out.contexts.retain(|c| c.name == context);
    out.clusters.retain(|c| c.name == ctx.cluster);
    out.users.retain(|u| u.name == ctx.user);
    Ok(out)
}

/// Inlines file references as `*-data` (`config view --flatten`).
pub fn flatten(loaded: &Loaded, cfg: &mut Config) -> Result<()> {
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    for c in &mut cfg.clusters {
        if !c.cluster.certificate_authority.is_empty() {
            let dir = loaded.cluster_dirs.get(&c.name).cloned().unwrap_or_default();
            c.cluster.certificate_authority_data = b64(read_file(&dir.join(&c.cluster.certificate_authority))?);
            c.cluster.certificate_authority.clear();
        }
    }
    for u in &mut cfg.users {
        let dir = loaded.user_dirs.get(&u.name).cloned().unwrap_or_default();
        if !u.user.client_certificate.is_empty() {
            u.user.client_certificate_data = b64(read_file(&dir.join(&u.user.client_certificate))?);
            u.user.client_certificate.clear();
        }
        if !u.user.client_key.is_empty() {
            u.user.client_key_data = b64(read_file(&dir.join(&u.user.client_key))?);
            u.user.client_key.clear();
        }
    }
    Ok(())
}

impl Loaded {
    /// Recomputes the merged view from `files` (used after the file list changes).
    pub fn rebuild(&mut self) {
        let files = std::mem::take(&mut self.files);
        let chain = std::mem::take(&mut self.chain);
        let mut merged =
            Config { kind: kind_config(), api_version: api_v1(), preferences: empty_object(), ..Default::default() };
        let mut cluster_dirs = BTreeMap::new();
        let mut user_dirs = BTreeMap::new();
        let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        let mut contexts: BTreeMap<String, Context> = BTreeMap::new();
        for (path, cfg) in &files {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            if merged.current_context.is_empty() {
                merged.current_context = cfg.current_context.clone();
            }
            for c in &cfg.clusters {
                if !clusters.contains_key(&c.name) {
                    clusters.insert(c.name.clone(), c.cluster.clone());
                    cluster_dirs.insert(c.name.clone(), dir.clone());
                }
            }
            for u in &cfg.users {
                if !users.contains_key(&u.name) {
                    users.insert(u.name.clone(), u.user.clone());
                    user_dirs.insert(u.name.clone(), dir.clone());
                }
            }
            for c in &cfg.contexts {
                contexts.entry(c.name.clone()).or_insert_with(|| c.context.clone());
            }
        }
        merged.clusters = clusters.into_iter().map(|(name, cluster)| NamedCluster { name, cluster }).collect();
        merged.users = users.into_iter().map(|(name, user)| NamedUser { name, user }).collect();
        merged.contexts = contexts.into_iter().map(|(name, context)| NamedContext { name, context }).collect();
        *self = Loaded { files, chain, merged, cluster_dirs, user_dirs };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn merge_first_file_wins_and_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), "CA").expect("ca");
        let a = write_file(
            dir.path(),
            "a",
            "clusters:\n- name: c\n  cluster:\n    server: https://a:1\n    certificate-authority: ca.pem\ncontexts:\n- name: x\n  context: {cluster: c, user: u, namespace: ns-a}\nusers:\n- name: u\n  user: {token: ta}\n",
        );
        let b = write_file(
            dir.path(),
            "b",
            "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://b:1'}\n- name: d\n  cluster: {server: 'https://d:1'}\ncontexts:\n- name: y\n  context: {cluster: d, user: u}\n",
        );
        let merged = Loaded::from_chain(vec![a.clone(), b.clone()], false).expect("load");
        let r = merged.resolve(&Overrides::default()).expect("resolve");
        assert_eq!(r.server, "https://a:1");
        assert_eq!(r.namespace, "ns-a");
        assert_eq!(r.token.as_deref(), Some("ta"));
        assert_eq!(r.ca_pem.as_deref(), Some(&b"CA"[..]));
        let r = merged.resolve(&Overrides { context: Some("y".into()), ..Default::default() }).expect("resolve y");
        assert_eq!(r.server, "https://d:1");
        assert_eq!(r.namespace, "default");
        assert_eq!(merged.file_for_current_context(), b);
        assert_eq!(merged.file_for("contexts", "new"), a);
    }
}
