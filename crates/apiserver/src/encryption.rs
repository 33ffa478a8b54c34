//! `--encryption-provider-config`: Kubernetes' `EncryptionConfiguration` file, read once at
//! start and turned into one provider list per etcd key prefix of the resources it names.
//! Supported providers are `aesgcm` and `identity`; `aescbc`, `secretbox` and `kms` are
//! recognised and refused with a message saying so, anything else is refused as unknown.

use base64::Engine;
use rkube_api::registry::RESOURCES;
use rkube_storage::{AesGcmKey, Provider, Providers, Store};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The only apiVersion of the file Kubernetes still reads.
const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";

/// Why the encryption configuration cannot be used; the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionConfigError {
    /// The file could not be read.
    #[error("reading encryption provider config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("encryption provider config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, never including key material.
        message: String,
    },
}

/// One resource's providers.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The resource as named in errors and logs, e.g. `secrets` or `deployments.apps`.
    pub resource: String,
    /// etcd key prefix of its objects, e.g. `/registry/core/secrets/`.
    pub prefix: String,
    /// The ordered providers; the first one writes.
    pub providers: Arc<Providers>,
}

/// A parsed configuration: which key prefixes are transformed, and how.
#[derive(Debug, Clone, Default)]
pub struct EncryptionConfig {
    /// One rule per resource, in the order the file names them.
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    resources: Vec<String>,
    providers: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySet {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    secret: String,
}

/// Reads and checks the file at `path`; `etcd_prefix` is the server's `--etcd-prefix`.
pub fn load(path: &Path, etcd_prefix: &str) -> Result<EncryptionConfig, EncryptionConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| EncryptionConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, etcd_prefix).map_err(|message| EncryptionConfigError::Invalid { path: path.to_path_buf(), message })
}

/// Parses and checks a configuration's text (YAML or JSON).
pub fn parse(text: &str, etcd_prefix: &str) -> Result<EncryptionConfig, String> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let file: File = serde_json::from_value(doc).map_err(|e| e.to_string())?;
    if file.api_version != API_VERSION || file.kind != KIND {
        return Err(format!("apiVersion/kind must be {API_VERSION}/{KIND}, not {}/{}", file.api_version, file.kind));
    }
    let root = format!("{}/", etcd_prefix.trim_end_matches('/'));
    let mut rules: Vec<Rule> = Vec::new();
    let mut named = BTreeSet::new();
    for (i, entry) in file.resources.iter().enumerate() {
        let at = format!("resources[{i}]");
        if entry.resources.is_empty() {
            return Err(format!("{at}.resources must name at least one resource"));
        }
        let providers = Arc::new(providers(&at, &entry.providers)?);
        for name in &entry.resources {
            if !name.contains('*') && !named.insert(name.as_str()) {
                return Err(format!("{at}: resource {name:?} is listed more than once"));
            }
            let matched = resolve(name).map_err(|e| format!("{at}: {e}"))?;
            for (resource, storage_prefix) in matched {
                let prefix = storage_prefix.replacen("/registry/", &root, 1);
                // An earlier entry (or an explicit name before a wildcard) wins, as in Kubernetes.
                if rules.iter().any(|r| r.prefix == prefix) {
                    continue;
                }
                rules.push(Rule { resource, prefix, providers: providers.clone() });
            }
        }
    }
    Ok(EncryptionConfig { rules })
}

/// The provider list of one entry.
fn providers(at: &str, list: &[serde_json::Map<String, Value>]) -> Result<Providers, String> {
    if list.is_empty() {
        return Err(format!("{at}.providers must list at least one provider"));
    }
    let mut out = Vec::new();
    let mut key_names = BTreeSet::new();
    for (j, p) in list.iter().enumerate() {
        let at = format!("{at}.providers[{j}]");
        let mut kinds = p.iter();
        let (Some((kind, body)), None) = (kinds.next(), kinds.next()) else {
            return Err(format!("{at} must name exactly one provider, found {}", p.len()));
        };
        match kind.as_str() {
            "identity" => {
                if !(body.is_null() || body.as_object().is_some_and(|o| o.is_empty())) {
                    return Err(format!("{at}.identity takes no settings"));
                }
                out.push(Provider::Identity);
            }
            "aesgcm" => {
                let set: KeySet = serde_json::from_value(body.clone()).map_err(|e| format!("{at}.aesgcm: {e}"))?;
                if set.keys.is_empty() {
                    return Err(format!("{at}.aesgcm.keys must list at least one key"));
                }
                for (k, key) in set.keys.iter().enumerate() {
                    let at = format!("{at}.aesgcm.keys[{k}]");
                    if !key_names.insert(key.name.clone()) {
                        return Err(format!("{at}: key name {:?} is used twice", key.name));
                    }
                    // The decode error is kept out of the message: it could quote the secret.
                    let secret = base64::engine::general_purpose::STANDARD
                        .decode(key.secret.trim())
                        .map_err(|_| format!("{at}: secret of key {:?} is not valid base64", key.name))?;
                    out.push(Provider::AesGcm(AesGcmKey::new(&key.name, &secret).map_err(|e| format!("{at}: {e}"))?));
                }
            }
            "aescbc" | "secretbox" | "kms" => {
                return Err(format!("{at}: the {kind} provider is not supported by rkube; use aesgcm (or identity)"));
            }
            other => {
                return Err(format!(
                    "{at}: unknown provider {other:?} (known: aesgcm, identity, aescbc, secretbox, kms)"
                ));
            }
        }
    }
    Providers::new(out).map_err(|e| format!("{at}: {e}"))
}

/// The resources a name stands for, as (qualified name, storage key prefix): `secrets`,
/// `deployments.apps`, or the wildcards `*.apps`, `*.` (the core group) and `*.*`.
fn resolve(name: &str) -> Result<Vec<(String, String)>, String> {
    let (plural, group) = match name.split_once('.') {
        Some((p, g)) => (p, g),
        None => (name, ""),
    };
    if (plural.contains('*') && plural != "*") || (group.contains('*') && group != "*") {
        return Err(format!("resource {name:?}: a wildcard stands for a whole name part (*.group or *.*)"));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for r in RESOURCES {
        let group_ok = group == "*" || r.group == group;
        let plural_ok = plural == "*" || r.plural == plural;
        if group_ok && plural_ok {
            let prefix = r.key_prefix();
            if !out.iter().any(|(_, p)| *p == prefix) {
                out.push((r.qualified(), prefix));
            }
        }
    }
    if out.is_empty() && !name.contains('*') {
        return Err(format!(
            "unknown resource {name:?} (write plural or plural.group, e.g. secrets or deployments.apps)"
        ));
    }
    Ok(out)
}

impl EncryptionConfig {
    /// Makes `store` transform every rule's key prefix with its providers.
    pub fn install(&self, store: &Store) {
        for rule in &self.rules {
            let writes_with = match rule.providers.providers().first() {
                Some(Provider::AesGcm(k)) => format!("aesgcm:{}", k.name()),
                _ => "identity".to_string(),
            };
            tracing::info!(resource = %rule.resource, prefix = %rule.prefix, %writes_with, "encryption at rest configured");
            store.transform_under(&rule.prefix, rule.providers.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
        )
    }

    #[test]
    fn secrets_with_aesgcm_then_identity() {
        let text = config(&format!(
            "      - aesgcm:\n          keys:\n            - name: key1\n              secret: {KEY32}\n      - identity: {{}}\n"
        ));
        let c = parse(&text, "/registry").expect("valid");
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].prefix, "/registry/core/secrets/");
        assert_eq!(c.rules[0].resource, "secrets");
        let p = c.rules[0].providers.providers();
        assert!(matches!(&p[0], Provider::AesGcm(k) if k.name() == "key1"));
        assert!(matches!(p[1], Provider::Identity));
        let other_root = parse(&text, "/other/").expect("valid");
        assert_eq!(other_root.rules[0].prefix, "/other/core/secrets/");
    }

    #[test]
    fn unsupported_and_unknown_providers_are_refused() {
        let cbc = config(&format!(
            "      - aescbc:\n          keys:\n            - name: k\n              secret: {KEY32}\n"
        ));
        let e = parse(&cbc, "/registry").expect_err("aescbc");
        assert!(e.contains("aescbc provider is not supported"), "{e}");
        let e = parse(&config("      - rot13: {}\n"), "/registry").expect_err("unknown");
        assert!(e.contains("unknown provider \"rot13\""), "{e}");
        let e =
            parse(&config("      - identity: {}\n        aesgcm: {keys: []}\n"), "/registry").expect_err("two in one");
        assert!(e.contains("exactly one provider"), "{e}");
    }

    #[test]
    fn bad_keys_and_documents_are_refused_without_echoing_secrets() {
        let short = config("      - aesgcm:\n          keys:\n            - name: k\n              secret: c2hvcnQ=\n");
        let e = parse(&short, "/registry").expect_err("5-byte key");
        assert!(e.contains("must be 16, 24 or 32") && !e.contains("c2hvcnQ"), "{e}");
        let garbage =
            config("      - aesgcm:\n          keys:\n            - name: k\n              secret: '%%%not-base64'\n");
        let e = parse(&garbage, "/registry").expect_err("bad base64");
        assert!(e.contains("not valid base64") && !e.contains("not-base64'"), "{e}");
        let dup = config(&format!(
            "      - aesgcm:\n          keys:\n            - {{name: k, secret: {KEY32}}}\n            - {{name: k, secret: {KEY32}}}\n"
        ));
        assert!(parse(&dup, "/registry").expect_err("dup").contains("used twice"));
        let e = parse("apiVersion: v1\nkind: EncryptionConfig\nresources: []\n", "/registry").expect_err("old kind");
        assert!(e.contains("apiVersion/kind"), "{e}");
        let e =
            parse(&config("      - identity: {}\n").replace("[secrets]", "[sekrets]"), "/registry").expect_err("typo");
        assert!(e.contains("unknown resource \"sekrets\""), "{e}");
        let e = parse(&config("").replace("    providers:\n", "    providers: []\n"), "/registry").expect_err("none");
        assert!(e.contains("at least one provider"), "{e}");
    }

    #[test]
    fn wildcards_and_groups_resolve_to_storage_prefixes_first_entry_winning() {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [configmaps]\n    providers: [{{identity: {{}}}}]\n  - resources: [deployments.apps, '*.']\n    providers:\n      - aesgcm: {{keys: [{{name: k, secret: {KEY32}}}]}}\n"
        );
        let c = parse(&text, "/registry").expect("valid");
        let find = |p: &str| c.rules.iter().find(|r| r.prefix == p).expect(p);
        assert!(matches!(find("/registry/core/configmaps/").providers.providers()[0], Provider::Identity));
        assert!(matches!(find("/registry/apps/deployments/").providers.providers()[0], Provider::AesGcm(_)));
        assert!(matches!(find("/registry/core/secrets/").providers.providers()[0], Provider::AesGcm(_)));
        assert!(c.rules.iter().all(|r| !r.prefix.starts_with("/registry/apps/") || r.resource == "deployments.apps"));
        let prefixes: BTreeSet<_> = c.rules.iter().map(|r| r.prefix.clone()).collect();
        assert_eq!(prefixes.len(), c.rules.len(), "one rule per prefix");
    }
}
