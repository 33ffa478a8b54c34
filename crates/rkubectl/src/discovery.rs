//! API discovery and resource mapping: aggregated discovery (`/api` + `/apis` as
//! `APIGroupDiscoveryList`, two requests) with a fallback to per-group-version lists, cached on
//! disk for six hours like kubectl; resolving `po`, `pods`, `pod`, `Pod`, `deploy`,
//! `deployments.apps` or `deployments.v1.apps` to one resource.

use crate::client::Client;
use crate::error::{Error, Result};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Media type of aggregated discovery.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
/// How long a discovery cache file is trusted (kubectl's default).
const CACHE_TTL: Duration = Duration::from_secs(6 * 3600);

/// One resource type in its group's preferred version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiResource {
    /// API group ("" for core).
    pub group: String,
    /// Version (v1).
    pub version: String,
    /// Kind (Pod).
    pub kind: String,
    /// Plural resource name (pods).
    pub plural: String,
    /// Singular name (pod).
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (po).
    pub short_names: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Categories (all).
    pub categories: Vec<String>,
}

impl ApiResource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `/api/v1` or `/apis/apps/v1`.
    pub fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// Collection path, in `ns` when namespaced and `ns` is given (else across namespaces).
    pub fn collection(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("{}/namespaces/{}/{}", self.prefix(), ns, self.plural),
            _ => format!("{}/{}", self.prefix(), self.plural),
        }
    }

    /// Path of one object.
    pub fn item(&self, ns: &str, name: &str) -> String {
        format!("{}/{}", self.collection(Some(ns)), name)
    }

    /// `pod`, `deployment.apps`: kubectl's lower-case kind.group, used in `kind/name` output.
    pub fn kind_group(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() { kind } else { format!("{kind}.{}", self.group) }
    }

    /// `pods`, `deployments.apps`: the resource.group form used in messages.
    pub fn resource_group(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }
}

/// The server's API surface as far as rkubectl needs it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Discovery {
    /// Group versions, preferred first within a group, core first (`v1`, `apps/v1`, ...).
    pub group_versions: Vec<String>,
    /// Resources in preferred versions, core first.
    pub resources: Vec<ApiResource>,
    /// Whether this came from the disk cache (so a miss is worth one refresh).
    #[serde(skip)]
    pub from_cache: bool,
}

impl Discovery {
    /// Loads discovery from the cache or the server.
    pub fn load(client: &Client, cache_dir: Option<&Path>) -> Result<Discovery> {
        let file = cache_dir.map(|d| cache_file(d, client.server()));
        if let Some(f) = &file
            && let Some(d) = read_cache(f)
        {
            return Ok(d);
        }
        let d = Self::fetch(client)?;
        if let Some(f) = &file {
            write_cache(f, &d);
        }
        Ok(d)
    }

    /// Fetches discovery again and rewrites the cache.
    pub fn refresh(client: &Client, cache_dir: Option<&Path>) -> Result<Discovery> {
        let d = Self::fetch(client)?;
        if let Some(dir) = cache_dir {
            write_cache(&cache_file(dir, client.server()), &d);
        }
        Ok(d)
    }

    /// Fetches discovery from the server (aggregated when offered).
    pub fn fetch(client: &Client) -> Result<Discovery> {
        let core = client.json(Method::GET, "/api", AGGREGATED, None)?;
        let groups = client.json(Method::GET, "/apis", AGGREGATED, None)?;
        if core["kind"] == "APIGroupDiscoveryList" && groups["kind"] == "APIGroupDiscoveryList" {
            let mut d = Discovery::default();
            for list in [&core, &groups] {
                for group in list["items"].as_array().into_iter().flatten() {
                    d.add_aggregated_group(group);
                }
            }
            return Ok(d);
        }
        Self::fetch_legacy(client, &core, &groups)
    }

    fn add_aggregated_group(&mut self, group: &Value) {
        let name = group["metadata"]["name"].as_str().unwrap_or("");
        let versions = group["versions"].as_array().cloned().unwrap_or_default();
        for (i, v) in versions.iter().enumerate() {
            let version = v["version"].as_str().unwrap_or("");
            self.group_versions.push(if name.is_empty() { version.to_string() } else { format!("{name}/{version}") });
            if i > 0 {
                continue;
            }
            for r in v["resources"].as_array().into_iter().flatten() {
                let plural = r["resource"].as_str().unwrap_or("");
                if plural.is_empty() || plural.contains('/') {
                    continue;
                }
                self.resources.push(ApiResource {
                    group: name.to_string(),
                    version: version.to_string(),
                    kind: r["responseKind"]["kind"].as_str().unwrap_or("").to_string(),
                    plural: plural.to_string(),
                    singular: r["singularResource"].as_str().unwrap_or("").to_string(),
                    namespaced: r["scope"] == "Namespaced",
                    short_names: strings(&r["shortNames"]),
                    verbs: strings(&r["verbs"]),
                    categories: strings(&r["categories"]),
                });
            }
        }
    }

    fn fetch_legacy(client: &Client, core: &Value, groups: &Value) -> Result<Discovery> {
        let core = if core["kind"] == "APIVersions" { core.clone() } else { client.get("/api")? };
        let groups = if groups["kind"] == "APIGroupList" { groups.clone() } else { client.get("/apis")? };
        let mut d = Discovery::default();
        let mut lists: Vec<(String, String, bool)> = Vec::new();
        for (i, v) in strings(&core["versions"]).into_iter().enumerate() {
            d.group_versions.push(v.clone());
            lists.push((String::new(), v, i == 0));
        }
        for g in groups["groups"].as_array().into_iter().flatten() {
            let name = g["name"].as_str().unwrap_or("").to_string();
            let preferred = g["preferredVersion"]["version"].as_str().unwrap_or("").to_string();
            let mut versions: Vec<String> = g["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str().map(str::to_string))
                .collect();
            versions.sort_by_key(|v| *v != preferred);
            for v in versions {
                d.group_versions.push(format!("{name}/{v}"));
                let pref = v == preferred;
                lists.push((name.clone(), v, pref));
            }
        }
        for (group, version, preferred) in lists {
            if !preferred {
                continue;
            }
            let path = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
            let list = match client.get(&path) {
                Ok(l) => l,
                Err(e) if e.api().is_some() => continue,
                Err(e) => return Err(e),
            };
            for r in list["resources"].as_array().into_iter().flatten() {
                let plural = r["name"].as_str().unwrap_or("");
                if plural.contains('/') {
                    continue;
                }
                d.resources.push(ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    kind: r["kind"].as_str().unwrap_or("").to_string(),
                    plural: plural.to_string(),
                    singular: r["singularName"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .unwrap_or_else(|| r["kind"].as_str().unwrap_or("").to_lowercase()),
                    namespaced: r["namespaced"].as_bool().unwrap_or(false),
                    short_names: strings(&r["shortNames"]),
                    verbs: strings(&r["verbs"]),
                    categories: strings(&r["categories"]),
                });
            }
        }
        Ok(d)
    }

    /// Resolves a type argument (`po`, `pods`, `deployments.apps`, `Deployment`).
    pub fn find(&self, arg: &str) -> Option<&ApiResource> {
        let lower = arg.to_lowercase();
        if let Some(r) = self.find_in(&lower, None, None) {
            return Some(r);
        }
        // resource.group or resource.version.group
        let (res, rest) = lower.split_once('.')?;
        if let Some(r) = self.find_in(res, Some(rest), None) {
            return Some(r);
        }
        let (version, group) = rest.split_once('.')?;
        self.find_in(res, Some(group), Some(version))
    }

    fn find_in(&self, name: &str, group: Option<&str>, version: Option<&str>) -> Option<&ApiResource> {
        let candidates = || {
            self.resources
                .iter()
                .filter(move |r| group.is_none_or(|g| r.group == g) && version.is_none_or(|v| r.version == v))
        };
        candidates()
            .find(|r| r.plural == name)
            .or_else(|| candidates().find(|r| r.singular == name))
            .or_else(|| candidates().find(|r| r.short_names.iter().any(|s| s == name)))
            .or_else(|| candidates().find(|r| r.kind.to_lowercase() == name))
    }

    /// The resource for an object's apiVersion + kind.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&ApiResource> {
        self.resources.iter().find(|r| r.api_version() == api_version && r.kind == kind).or_else(|| {
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            self.resources.iter().find(|r| r.group == group && r.kind == kind)
        })
    }
}

/// The strings of a JSON array (anything else: none).
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

/// `<cache>/discovery/<host_port>/rkubectl.json`, the host sanitised like kubectl does.
fn cache_file(dir: &Path, server: &str) -> PathBuf {
    let host = server.split("://").nth(1).unwrap_or(server);
    let safe: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    dir.join("discovery").join(safe).join("rkubectl.json")
}

fn read_cache(file: &Path) -> Option<Discovery> {
    let meta = std::fs::metadata(file).ok()?;
    let age = SystemTime::now().duration_since(meta.modified().ok()?).unwrap_or_default();
    if age > CACHE_TTL {
        return None;
    }
    let mut d: Discovery = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    d.from_cache = true;
    Some(d)
}

fn write_cache(file: &Path, d: &Discovery) {
    let Some(dir) = file.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(d) else { return };
    // Write then rename so a concurrent reader never sees half a file.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".rkubectl.{}.{nanos}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Discovery loaded lazily once per command, refreshed at most once on a miss.
pub struct Mapper<'a> {
    client: &'a Client,
    cache_dir: Option<PathBuf>,
    disc: Option<Discovery>,
    refreshed: bool,
}

impl<'a> Mapper<'a> {
    /// A mapper that has not contacted the server yet.
    pub fn new(client: &'a Client, cache_dir: Option<PathBuf>) -> Mapper<'a> {
        Mapper { client, cache_dir, disc: None, refreshed: false }
    }

    /// Starts from discovery loaded earlier in this run.
    pub fn with(mut self, d: Discovery) -> Mapper<'a> {
        self.disc = Some(d);
        self
    }

    /// The discovery this mapper ended up with (to reuse in later lookups).
    pub fn into_discovery(self) -> Option<Discovery> {
        self.disc
    }

    /// Discovery, loaded on first use.
    pub fn discovery(&mut self) -> Result<&Discovery> {
        if self.disc.is_none() {
            self.disc = Some(Discovery::load(self.client, self.cache_dir.as_deref())?);
        }
        Ok(self.disc.get_or_insert_with(Discovery::default))
    }

    fn refresh_once(&mut self) -> Result<bool> {
        if self.refreshed || !self.disc.as_ref().is_some_and(|d| d.from_cache) {
            return Ok(false);
        }
        self.refreshed = true;
        self.disc = Some(Discovery::refresh(self.client, self.cache_dir.as_deref())?);
        Ok(true)
    }

    /// Resolves a type argument, or kubectl's "doesn't have a resource type" error.
    pub fn resource(&mut self, arg: &str) -> Result<ApiResource> {
        if let Some(r) = self.discovery()?.find(arg) {
            return Ok(r.clone());
        }
        if self.refresh_once()?
            && let Some(r) = self.discovery()?.find(arg)
        {
            return Ok(r.clone());
        }
        Err(Error::usage(format!("the server doesn't have a resource type \"{arg}\"")))
    }

    /// Resolves an object's apiVersion/kind.
    pub fn for_kind(&mut self, api_version: &str, kind: &str) -> Result<ApiResource> {
        if let Some(r) = self.discovery()?.for_kind(api_version, kind) {
            return Ok(r.clone());
        }
        if self.refresh_once()?
            && let Some(r) = self.discovery()?.for_kind(api_version, kind)
        {
            return Ok(r.clone());
        }
        Err(Error::usage(format!(
            "resource mapping not found for name: \"\" namespace: \"\" from \"\": no matches for kind \"{kind}\" in version \"{api_version}\"\nensure CRDs are installed first"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregated_mapping() {
        let mut d = Discovery::default();
        d.add_aggregated_group(&json!({"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
            {"resource": "pods", "responseKind": {"kind": "Pod"}, "singularResource": "pod", "scope": "Namespaced", "shortNames": ["po"]},
            {"resource": "pods/log", "responseKind": {"kind": "Pod"}, "scope": "Namespaced"}
        ]}]}));
        d.add_aggregated_group(&json!({"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
            {"resource": "deployments", "responseKind": {"kind": "Deployment"}, "singularResource": "deployment", "scope": "Namespaced", "shortNames": ["deploy"]}
        ]}]}));
        assert_eq!(d.find("po").map(|r| r.plural.as_str()), Some("pods"));
        assert_eq!(d.find("Pod").map(|r| r.plural.as_str()), Some("pods"));
        assert_eq!(d.find("deploy").map(ApiResource::kind_group), Some("deployment.apps".to_string()));
        assert_eq!(d.find("deployments.apps").map(|r| r.version.as_str()), Some("v1"));
        assert_eq!(d.find("deployments.v1.apps").map(|r| r.group.as_str()), Some("apps"));
        assert!(d.find("pods/log").is_none());
        assert!(d.find("nope").is_none());
        assert_eq!(d.resources.len(), 2);
        assert_eq!(
            d.find("deploy").map(|r| r.item("ns", "x")),
            Some("/apis/apps/v1/namespaces/ns/deployments/x".to_string())
        );
    }
}
