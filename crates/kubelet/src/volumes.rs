//! Pod volumes on this node: each volume of a pod is made ready under
//! `<root_dir>/pods/<uid>/volumes/<plugin>/<name>` (hostPath and persistent volumes are used
//! where they are), turned into CRI mounts per container, refreshed when the objects behind
//! them change, and torn down without leaving a mount behind.
//!
//! ConfigMap, Secret, downwardAPI and projected contents are written the way the kubelet
//! writes them, so a reader never sees half an update: files go into a fresh `..<timestamp>`
//! directory, the `..data` symlink is swapped to it with one rename, and the user-visible
//! names are symlinks `<name> -> ..data/<name>`. Secret contents (and projected volumes that
//! include a Secret or a ServiceAccount token) live only on tmpfs.
//!
//! Projected ServiceAccount tokens are requested from the API server (TokenRequest, bound to
//! the pod) and kept per pod, volume and file; a token is requested again once 80% of its
//! lifetime has passed, or after 24 hours, whichever comes first, as the kubelet does.

use crate::downward::{self, Allocatable, DownwardError};
use crate::env::expand;
use crate::provisioner::{self, ProvisionError};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, Pod, ProjectedVolumeSource, Secret, ServiceAccount,
    ServiceAccountTokenProjection, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_client::{Client, ClientError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A CRI mount, as [`VolumeManager::container_mounts`] returns them.
pub use crate::cri::api::Mount;

/// Plugin directory names, as the kubelet spells them on disk.
const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
const CONFIG_MAP: &str = "kubernetes.io~configmap";
const SECRET: &str = "kubernetes.io~secret";
const DOWNWARD_API: &str = "kubernetes.io~downward-api";
const PROJECTED: &str = "kubernetes.io~projected";

/// The mode of files whose source gives none.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Lifetime of a projected token whose source gives none (the API's default).
const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// A token is renewed at the latest this long after it was issued, whatever its lifetime.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);

/// The symlink that names the current timestamped directory of an atomically written volume.
const DATA_LINK: &str = "..data";
const DATA_LINK_TMP: &str = "..data_tmp";

/// Why a volume could not be set up, mounted into a container or torn down. The texts read
/// like Kubernetes' since they become the pod's events.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// One volume of the pod failed; `cause` says why.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {cause}")]
    SetUp {
        /// The volume's name in the pod.
        volume: String,
        /// What failed.
        cause: Box<VolumeError>,
    },
    /// A referenced ConfigMap does not exist and the volume is not optional.
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    /// A referenced Secret does not exist and the volume is not optional.
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    /// An item names a key the ConfigMap lacks.
    #[error("configmap references non-existent config key: {0}")]
    ConfigMapKeyNotFound(String),
    /// An item names a key the Secret lacks.
    #[error("references non-existent secret key: {0}")]
    SecretKeyNotFound(String),
    /// The claim a volume names does not exist.
    #[error("persistentvolumeclaim {0:?} not found")]
    ClaimNotFound(String),
    /// The claim is being deleted.
    #[error("persistentvolumeclaim {0:?} is being deleted")]
    ClaimTerminating(String),
    /// The claim is not bound and this node cannot provision it.
    #[error("persistentvolumeclaim {0:?} is not bound")]
    ClaimUnbound(String),
    /// The volume a claim is bound to does not exist.
    #[error("persistentvolume {0:?} not found")]
    PersistentVolumeNotFound(String),
    /// The volume a claim names is bound to a different claim.
    #[error("persistentvolume {volume:?} is bound to another claim than {claim:?}")]
    BoundToAnotherClaim {
        /// The volume.
        volume: String,
        /// The claim the pod uses.
        claim: String,
    },
    /// The volume's node affinity excludes this node.
    #[error("volume node affinity conflict: persistentvolume {volume:?} is not available on node {node:?}")]
    NodeAffinity {
        /// The volume.
        volume: String,
        /// This node.
        node: String,
    },
    /// A hostPath (or hostPath/local persistent volume) is not of the declared type.
    #[error("hostPath type check failed: {path} is not a {what}")]
    HostPathType {
        /// The host path.
        path: String,
        /// What it should have been: "directory", "file", "socket file", ...
        what: &'static str,
    },
    /// A hostPath `type` that Kubernetes does not define.
    #[error("invalid HostPathType {0:?}")]
    InvalidHostPathType(String),
    /// A local persistent volume whose path is missing.
    #[error("path {0:?} does not exist")]
    PathMissing(String),
    /// A volume kind this kubelet does not implement (nfs, csi, ...).
    #[error("unsupported volume type {kind} (volume {volume:?})")]
    Unsupported {
        /// The volume's name in the pod.
        volume: String,
        /// The kind, as the API names the field: "nfs", "csi", "emptyDir medium HugePages", ...
        kind: String,
    },
    /// A volumeMount names no volume of the pod.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    NoSuchVolume {
        /// The volume name the mount gives.
        volume: String,
        /// The container.
        container: String,
    },
    /// A persistent volume's host path is asked for before `mount_pod` resolved it.
    #[error("volume {0:?} is not set up yet")]
    NotSetUp(String),
    /// An item path, subPath or subPathExpr result that would leave the volume.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The pod carries no uid.
    #[error("pod {0:?} has no uid")]
    NoUid(String),
    /// The API server's answer to a TokenRequest carries no usable token.
    #[error("requesting a token for serviceaccount {account:?}: {reason}")]
    Token {
        /// The ServiceAccount.
        account: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// A downwardAPI item cannot be resolved.
    #[error(transparent)]
    Downward(#[from] DownwardError),
    /// Provisioning a local-path claim failed.
    #[error(transparent)]
    Provision(Box<ProvisionError>),
    /// Reading an object failed for a reason other than its absence.
    #[error(transparent)]
    Api(Box<ClientError>),
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "creating directory".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `mount` or `umount` failed.
    #[error("{command} failed: {output}")]
    Mount {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A mount under the pod's directory survived unmounting.
    #[error("{0} is still mounted")]
    StillMounted(PathBuf),
}

impl From<ClientError> for VolumeError {
    fn from(e: ClientError) -> Self {
        VolumeError::Api(Box::new(e))
    }
}

impl From<ProvisionError> for VolumeError {
    fn from(e: ProvisionError) -> Self {
        VolumeError::Provision(Box::new(e))
    }
}

impl VolumeError {
    /// The underlying reason, without the per-volume `MountVolume.SetUp failed` wrapper.
    pub fn cause(&self) -> &VolumeError {
        match self {
            VolumeError::SetUp { cause, .. } => cause.cause(),
            other => other,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io { action, path: path.to_path_buf(), source }
}

/// A set-up persistent volume: where it is on the host and whether the pod may only read it.
#[derive(Debug, Clone)]
struct HostVolume {
    path: PathBuf,
    read_only: bool,
}

/// Sets up, refreshes and tears down the volumes of the pods on this node.
pub struct VolumeManager {
    client: Client,
    root_dir: PathBuf,
    node_name: String,
    /// Resolved persistent volumes per pod uid and volume name; the other kinds' paths follow
    /// from the pod spec alone.
    claims: Mutex<HashMap<String, HashMap<String, HostVolume>>>,
    /// Projected ServiceAccount tokens per pod uid, by what they were requested for.
    tokens: Mutex<HashMap<String, HashMap<TokenKey, IssuedToken>>>,
}

/// What a projected token is requested for: volume, file, audience and lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    volume: String,
    path: String,
    audience: String,
    expiration_seconds: i64,
}

/// A token the API server issued, and when it is due for renewal.
#[derive(Debug, Clone)]
struct IssuedToken {
    token: String,
    /// When 80% of its lifetime (at most 24 hours) has passed.
    renew_at: Instant,
    /// When it stops being accepted.
    expires_at: Instant,
}

/// When a token issued at `issued` and valid for `lifetime` is requested again: after 80% of
/// its lifetime, and at least every 24 hours.
fn renewal_time(issued: Instant, lifetime: Duration) -> Instant {
    issued + lifetime.mul_f64(0.8).min(MAX_TOKEN_AGE)
}

/// What `set_up` is asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Everything: directories, mounts, contents, claims.
    Mount,
    /// Only volumes whose contents come from objects or the pod.
    Refresh,
}

/// The per-call facts a volume's contents may depend on.
struct PodContext<'a> {
    pod: &'a Pod,
    uid: &'a str,
    namespace: &'a str,
    host_ip: &'a str,
    pod_ips: &'a [String],
    allocatable: Allocatable<'a>,
}

/// One file of an atomically written volume.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileData {
    data: Vec<u8>,
    mode: u32,
}

/// Relative path -> file, for an atomically written volume.
type Payload = BTreeMap<String, FileData>;

impl VolumeManager {
    /// A manager for pods under `<root_dir>/pods` on node `node_name`.
    pub fn new(client: Client, root_dir: PathBuf, node_name: String) -> VolumeManager {
        let pods = root_dir.join("pods");
        if let Err(e) = std::fs::create_dir_all(&pods) {
            tracing::warn!(path = %pods.display(), error = %e, "cannot create the pods directory");
        }
        // Mount points in /proc/self/mountinfo are canonical; compare against the same form.
        let root_dir = std::fs::canonicalize(&root_dir).unwrap_or(root_dir);
        VolumeManager { client, root_dir, node_name, claims: Mutex::default(), tokens: Mutex::default() }
    }

    /// The directory holding the pods' volume directories.
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// Makes every volume of `pod` ready under <root_dir>/pods/<uid>/volumes/<plugin>/<name>.
    /// `host_ip`/`pod_ips` feed downwardAPI items that need them (may be empty before the sandbox exists).
    ///
    /// Every volume is attempted; the first failure is returned, naming its volume.
    pub async fn mount_pod(&self, pod: &Pod, host_ip: &str, pod_ips: &[String]) -> Result<(), VolumeError> {
        self.pass(pod, host_ip, pod_ips, Pass::Mount).await
    }

    /// Rewrites configMap/secret/downwardAPI/projected contents when their sources changed.
    ///
    /// A source that disappeared leaves the old contents in place (an error) unless the
    /// volume is optional, in which case the files go away. Claims not yet resolved by this
    /// manager (a pod adopted after a restart) are resolved too.
    pub async fn refresh(&self, pod: &Pod, host_ip: &str, pod_ips: &[String]) -> Result<(), VolumeError> {
        self.pass(pod, host_ip, pod_ips, Pass::Refresh).await
    }

    async fn pass(&self, pod: &Pod, host_ip: &str, pod_ips: &[String], pass: Pass) -> Result<(), VolumeError> {
        let uid = pod_uid(pod)?;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or(&self.node_name);
        let ctx = PodContext {
            pod,
            uid,
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
            host_ip,
            pod_ips,
            allocatable: Allocatable::new(&self.client, node),
        };
        let mut first = None;
        for volume in pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default() {
            if let Err(e) = self.set_up(&ctx, volume, pass).await {
                tracing::warn!(pod = %pod_key(pod), volume = %volume.name, error = %e, "volume set-up failed");
                first.get_or_insert(VolumeError::SetUp { volume: volume.name.clone(), cause: Box::new(e) });
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// `<root>/pods/<uid>/volumes/<plugin>/<name>`.
    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(plugin).join(name)
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }

    async fn set_up(&self, ctx: &PodContext<'_>, v: &Volume, pass: Pass) -> Result<(), VolumeError> {
        let refresh = pass == Pass::Refresh;
        if let Some(ed) = &v.empty_dir {
            if refresh {
                return Ok(());
            }
            let dir = self.volume_dir(ctx.uid, EMPTY_DIR, &v.name);
            match ed.medium.as_deref().unwrap_or_default() {
                "" => {
                    make_dir(&dir, 0o777)?;
                }
                "Memory" => {
                    make_dir(&dir, 0o777)?;
                    let size = ed.size_limit.as_ref().map(quantity_bytes).transpose()?;
                    ensure_tmpfs(&dir, size, 0o777).await?;
                }
                other => {
                    return Err(VolumeError::Unsupported {
                        volume: v.name.clone(),
                        kind: format!("emptyDir medium {other}"),
                    });
                }
            }
        } else if let Some(src) = &v.config_map {
            let payload = self
                .config_map_payload(
                    ctx.namespace,
                    &src.name,
                    src.items.as_deref(),
                    mode_or(src.default_mode, DEFAULT_FILE_MODE),
                    src.optional == Some(true),
                )
                .await?;
            let dir = self.volume_dir(ctx.uid, CONFIG_MAP, &v.name);
            make_dir(&dir, 0o755)?;
            self.write(ctx, &v.name, &dir, &payload)?;
        } else if let Some(src) = &v.secret {
            let name = src.secret_name.as_deref().unwrap_or_default();
            let payload = self
                .secret_payload(
                    ctx.namespace,
                    name,
                    src.items.as_deref(),
                    mode_or(src.default_mode, DEFAULT_FILE_MODE),
                    src.optional == Some(true),
                )
                .await?;
            let dir = self.volume_dir(ctx.uid, SECRET, &v.name);
            make_dir(&dir, 0o755)?;
            ensure_tmpfs(&dir, None, 0o755).await?;
            self.write(ctx, &v.name, &dir, &payload)?;
        } else if let Some(src) = &v.downward_api {
            let mode = mode_or(src.default_mode, DEFAULT_FILE_MODE);
            let mut payload = Payload::new();
            self.downward_payload(ctx, src.items.as_deref().unwrap_or_default(), mode, &mut payload).await?;
            let dir = self.volume_dir(ctx.uid, DOWNWARD_API, &v.name);
            make_dir(&dir, 0o755)?;
            self.write(ctx, &v.name, &dir, &payload)?;
        } else if let Some(src) = &v.projected {
            let payload = self.projected_payload(ctx, &v.name, src).await?;
            let dir = self.volume_dir(ctx.uid, PROJECTED, &v.name);
            make_dir(&dir, 0o755)?;
            if src.sources.iter().flatten().any(|s| s.secret.is_some() || s.service_account_token.is_some()) {
                ensure_tmpfs(&dir, None, 0o755).await?;
            }
            self.write(ctx, &v.name, &dir, &payload)?;
        } else if let Some(hp) = &v.host_path {
            if !refresh {
                check_host_path(Path::new(&hp.path), hp.type_.as_deref().unwrap_or_default())?;
            }
        } else if let Some(src) = &v.persistent_volume_claim {
            // A refresh resolves only claims this manager has not seen, e.g. those of a pod
            // adopted after a kubelet restart, so that its containers can still be mounted.
            let known = self.claims_lock().get(ctx.uid).is_some_and(|m| m.contains_key(&v.name));
            if !refresh || !known {
                let resolved = self.resolve_claim(ctx.namespace, src).await?;
                self.claims_lock().entry(ctx.uid.to_string()).or_default().insert(v.name.clone(), resolved);
            }
        } else {
            return Err(VolumeError::Unsupported { volume: v.name.clone(), kind: volume_kind(v) });
        }
        Ok(())
    }

    fn write(&self, ctx: &PodContext<'_>, volume: &str, dir: &Path, payload: &Payload) -> Result<(), VolumeError> {
        if write_atomic(dir, payload)? {
            tracing::info!(pod = %pod_key(ctx.pod), volume = %volume, files = payload.len(), "volume contents written");
        }
        Ok(())
    }

    fn claims_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, HostVolume>>> {
        // Every change under the lock is a single insert or remove, so a poisoned map is whole.
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn config_map_payload(
        &self,
        namespace: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        default_mode: u32,
        optional: bool,
    ) -> Result<Payload, VolumeError> {
        let Some(cm) = self.client.api::<ConfigMap>(Some(namespace)).get_opt(name).await? else {
            if optional {
                return Ok(Payload::new());
            }
            return Err(VolumeError::ConfigMapNotFound(name.to_string()));
        };
        let mut data: BTreeMap<String, Vec<u8>> =
            cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
        key_payload(&data, items, default_mode, optional, VolumeError::ConfigMapKeyNotFound)
    }

    async fn secret_payload(
        &self,
        namespace: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        default_mode: u32,
        optional: bool,
    ) -> Result<Payload, VolumeError> {
        let Some(secret) = self.client.api::<Secret>(Some(namespace)).get_opt(name).await? else {
            if optional {
                return Ok(Payload::new());
            }
            return Err(VolumeError::SecretNotFound(name.to_string()));
        };
        let data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        key_payload(&data, items, default_mode, optional, VolumeError::SecretKeyNotFound)
    }

    async fn downward_payload(
        &self,
        ctx: &PodContext<'_>,
        items: &[DownwardAPIVolumeFile],
        default_mode: u32,
        payload: &mut Payload,
    ) -> Result<(), VolumeError> {
        for item in items {
            let value = if let Some(f) = &item.field_ref {
                downward::field_value(ctx.pod, &f.field_path, ctx.host_ip, ctx.pod_ips)?
            } else if let Some(r) = &item.resource_field_ref {
                let name = r.container_name.as_deref().unwrap_or_default();
                let container = downward::find_container(ctx.pod, name)
                    .ok_or_else(|| DownwardError::ContainerNotFound(name.to_string()))?;
                downward::resource_value(container, &r.resource, r.divisor.as_ref(), &ctx.allocatable).await?
            } else {
                continue;
            };
            payload.insert(
                item.path.clone(),
                FileData { data: value.into_bytes(), mode: mode_or(item.mode, default_mode) },
            );
        }
        Ok(())
    }

    async fn projected_payload(
        &self,
        ctx: &PodContext<'_>,
        volume: &str,
        src: &ProjectedVolumeSource,
    ) -> Result<Payload, VolumeError> {
        let mode = mode_or(src.default_mode, DEFAULT_FILE_MODE);
        let mut payload = Payload::new();
        for source in src.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional == Some(true);
                let part =
                    self.config_map_payload(ctx.namespace, &cm.name, cm.items.as_deref(), mode, optional).await?;
                payload.extend(part);
            } else if let Some(s) = &source.secret {
                let optional = s.optional == Some(true);
                payload.extend(self.secret_payload(ctx.namespace, &s.name, s.items.as_deref(), mode, optional).await?);
            } else if let Some(d) = &source.downward_api {
                self.downward_payload(ctx, d.items.as_deref().unwrap_or_default(), mode, &mut payload).await?;
            } else if let Some(t) = &source.service_account_token {
                let token = self.service_account_token(ctx, volume, t).await?;
                payload.insert(t.path.clone(), FileData { data: token.into_bytes(), mode });
            } else if source.cluster_trust_bundle.is_some() {
                return Err(VolumeError::Unsupported {
                    volume: volume.to_string(),
                    kind: "projected clusterTrustBundle".into(),
                });
            }
        }
        Ok(payload)
    }

    fn tokens_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<TokenKey, IssuedToken>>> {
        // Every change under the lock is a single insert or remove, so a poisoned map is whole.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token of a projected `serviceAccountToken` source: the one issued earlier while it
    /// is not due for renewal, else a new one from a TokenRequest bound to the pod. When the
    /// request fails, a token that has not expired yet is kept.
    async fn service_account_token(
        &self,
        ctx: &PodContext<'_>,
        volume: &str,
        source: &ServiceAccountTokenProjection,
    ) -> Result<String, VolumeError> {
        let key = TokenKey {
            volume: volume.to_string(),
            path: source.path.clone(),
            audience: source.audience.clone().unwrap_or_default(),
            expiration_seconds: source.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
        };
        let now = Instant::now();
        let cached = self.tokens_lock().get(ctx.uid).and_then(|m| m.get(&key)).cloned();
        if let Some(t) = &cached
            && now < t.renew_at
        {
            return Ok(t.token.clone());
        }
        match self.request_token(ctx, &key).await {
            Ok(issued) => {
                let token = issued.token.clone();
                self.tokens_lock().entry(ctx.uid.to_string()).or_default().insert(key, issued);
                Ok(token)
            }
            Err(e) => match cached {
                Some(t) if now < t.expires_at => {
                    tracing::warn!(pod = %pod_key(ctx.pod), volume, error = %e, "renewing the ServiceAccount token failed; keeping the current one");
                    Ok(t.token)
                }
                _ => Err(e),
            },
        }
    }

    /// A TokenRequest for the pod's ServiceAccount, bound to the pod.
    async fn request_token(&self, ctx: &PodContext<'_>, key: &TokenKey) -> Result<IssuedToken, VolumeError> {
        let account = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string();
        let audiences: Vec<&str> = if key.audience.is_empty() { vec![] } else { vec![key.audience.as_str()] };
        let request = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audiences,
                "expirationSeconds": key.expiration_seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": ctx.pod.metadata.name.clone().unwrap_or_default(),
                    "uid": ctx.uid,
                },
            },
        });
        let issued_at = Instant::now();
        let answer = self
            .client
            .api::<ServiceAccount>(Some(ctx.namespace))
            .create_subresource(&account, "token", &request)
            .await?;
        let bad = |reason: &str| VolumeError::Token { account: account.clone(), reason: reason.to_string() };
        let token = answer
            .pointer("/status/token")
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the answer carries no status.token"))?
            .to_string();
        let expiration: jiff::Timestamp = answer
            .pointer("/status/expirationTimestamp")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("the answer carries no valid status.expirationTimestamp"))?;
        let remaining = jiff::Timestamp::now().duration_until(expiration).as_secs().max(0);
        let lifetime = Duration::from_secs(remaining.unsigned_abs());
        tracing::info!(pod = %pod_key(ctx.pod), serviceaccount = %account, volume = %key.volume, path = %key.path, lifetime_seconds = remaining, "ServiceAccount token issued");
        Ok(IssuedToken { token, renew_at: renewal_time(issued_at, lifetime), expires_at: issued_at + lifetime })
    }

    /// Claim -> bound volume -> its path on this node, provisioning a local-path claim that is
    /// still unbound.
    async fn resolve_claim(
        &self,
        namespace: &str,
        src: &PersistentVolumeClaimVolumeSource,
    ) -> Result<HostVolume, VolumeError> {
        let name = &src.claim_name;
        let claims = self.client.api::<PersistentVolumeClaim>(Some(namespace));
        let claim = claims.get_opt(name).await?.ok_or_else(|| VolumeError::ClaimNotFound(name.clone()))?;
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(VolumeError::ClaimTerminating(name.clone()));
        }
        let spec = claim.spec.clone().unwrap_or_default();
        let pv = match spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
            Some(volume) => self
                .client
                .api::<PersistentVolume>(None)
                .get_opt(volume)
                .await?
                .ok_or_else(|| VolumeError::PersistentVolumeNotFound(volume.to_string()))?,
            None => match spec.storage_class_name.as_deref() {
                None | Some(provisioner::STORAGE_CLASS) => {
                    provisioner::provision(&self.client, &self.node_name, &self.root_dir, &claim).await?
                }
                Some(_) => return Err(VolumeError::ClaimUnbound(name.clone())),
            },
        };
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let pv_spec = pv.spec.clone().unwrap_or_default();
        let bound_uid = pv_spec.claim_ref.as_ref().and_then(|r| r.uid.as_deref());
        if bound_uid.is_some_and(|u| Some(u) != claim.metadata.uid.as_deref()) {
            return Err(VolumeError::BoundToAnotherClaim { volume: pv_name, claim: name.clone() });
        }
        if !node_affinity_allows(&pv, &self.node_name) {
            return Err(VolumeError::NodeAffinity { volume: pv_name, node: self.node_name.clone() });
        }
        let path = if let Some(hp) = &pv_spec.host_path {
            check_host_path(Path::new(&hp.path), hp.type_.as_deref().unwrap_or_default())?;
            PathBuf::from(&hp.path)
        } else if let Some(local) = &pv_spec.local {
            if !Path::new(&local.path).exists() {
                return Err(VolumeError::PathMissing(local.path.clone()));
            }
            PathBuf::from(&local.path)
        } else {
            let spec = serde_json::to_value(&pv_spec).unwrap_or_default();
            let kind = rkube_api::validation::PV_SOURCES
                .iter()
                .find(|k| spec.get(**k).is_some())
                .map_or_else(|| "unknown".to_string(), |k| k.to_string());
            return Err(VolumeError::Unsupported { volume: format!("persistentvolume {pv_name}"), kind });
        };
        Ok(HostVolume { path, read_only: src.read_only == Some(true) })
    }

    /// The CRI mounts of one container (volumeMounts incl. subPath / subPathExpr with $(VAR) from
    /// `env`, readOnly); errors name the missing volume.
    ///
    /// configMap, secret, downwardAPI and projected volumes are always read-only, as in
    /// Kubernetes; a subPath that does not exist yet is created as a directory.
    pub fn container_mounts(
        &self,
        pod: &Pod,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<Mount>, VolumeError> {
        let uid = pod_uid(pod)?;
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
        let mut mounts = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            let volume = volumes.iter().find(|v| v.name == vm.name).ok_or_else(|| VolumeError::NoSuchVolume {
                volume: vm.name.clone(),
                container: container.name.clone(),
            })?;
            let (base, forced_read_only) = self.volume_host_path(uid, volume)?;
            let sub_path = match vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                Some(expr) => {
                    let lookup = |name: &str| env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                    expand(expr, &lookup)
                }
                None => vm.sub_path.clone().unwrap_or_default(),
            };
            let host = if sub_path.is_empty() { base } else { resolve_sub_path(&base, &sub_path)? };
            let propagation = match vm.mount_propagation.as_deref() {
                Some("HostToContainer") => crate::cri::api::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => crate::cri::api::MountPropagation::PropagationBidirectional,
                _ => crate::cri::api::MountPropagation::PropagationPrivate,
            };
            mounts.push(Mount {
                container_path: vm.mount_path.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: vm.read_only == Some(true) || forced_read_only,
                propagation: propagation as i32,
                recursive_read_only: vm.recursive_read_only.as_deref() == Some("Enabled"),
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Where `volume` of pod `uid` is on the host, and whether it is read-only by its kind.
    fn volume_host_path(&self, uid: &str, volume: &Volume) -> Result<(PathBuf, bool), VolumeError> {
        let dir = |plugin| self.volume_dir(uid, plugin, &volume.name);
        if volume.empty_dir.is_some() {
            Ok((dir(EMPTY_DIR), false))
        } else if volume.config_map.is_some() {
            Ok((dir(CONFIG_MAP), true))
        } else if volume.secret.is_some() {
            Ok((dir(SECRET), true))
        } else if volume.downward_api.is_some() {
            Ok((dir(DOWNWARD_API), true))
        } else if volume.projected.is_some() {
            Ok((dir(PROJECTED), true))
        } else if let Some(hp) = &volume.host_path {
            Ok((PathBuf::from(&hp.path), false))
        } else if volume.persistent_volume_claim.is_some() {
            let claims = self.claims_lock();
            let hv = claims
                .get(uid)
                .and_then(|m| m.get(&volume.name))
                .ok_or_else(|| VolumeError::NotSetUp(volume.name.clone()))?;
            Ok((hv.path.clone(), hv.read_only))
        } else {
            Err(VolumeError::Unsupported { volume: volume.name.clone(), kind: volume_kind(volume) })
        }
    }

    /// Unmounts and removes everything of the pod (tmpfs, bind dirs), idempotent.
    pub async fn unmount_pod(&self, pod_uid: &str) -> Result<(), VolumeError> {
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Err(VolumeError::InvalidPath { path: pod_uid.to_string(), reason: "not a pod uid" });
        }
        let dir = self.pod_dir(pod_uid);
        let mut mounts: Vec<PathBuf> = mount_points()?.into_iter().filter(|m| m.starts_with(&dir)).collect();
        // Deepest first, so nothing is hidden under a mount being removed.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        mounts.dedup();
        for m in &mounts {
            // A mount point may be stacked several times; unmount until it is gone (bounded,
            // so a mount that will not go away ends in an error rather than a spin).
            let mut attempts = 0;
            while is_mount_point(m)? && attempts < 16 {
                attempts += 1;
                if let Err(e) = run("umount", &[m.as_os_str()]).await {
                    tracing::warn!(path = %m.display(), error = %e, "umount failed; detaching lazily");
                    run("umount", &["-l".as_ref(), m.as_os_str()]).await?;
                }
            }
        }
        if let Some(m) = mount_points()?.into_iter().find(|m| m.starts_with(&dir)) {
            // Removing the tree now would delete what the mount still shows.
            return Err(VolumeError::StillMounted(m));
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &dir)(e)),
        }
        self.claims_lock().remove(pod_uid);
        self.tokens_lock().remove(pod_uid);
        tracing::info!(pod_uid = %pod_uid, unmounted = mounts.len(), "pod volumes torn down");
        Ok(())
    }

    /// UIDs of pods that still have a directory under <root_dir>/pods (orphans after a restart).
    pub fn pods_on_disk(&self) -> Vec<String> {
        let mut uids: Vec<String> = std::fs::read_dir(self.root_dir.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        uids.sort();
        uids
    }
}

/// The API's name of a volume's source field ("nfs", "csi", ...).
fn volume_kind(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned()))
        .unwrap_or_else(|| "unknown".to_string())
}

fn pod_uid(pod: &Pod) -> Result<&str, VolumeError> {
    pod.metadata.uid.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| VolumeError::NoUid(pod_key(pod)))
}

fn pod_key(pod: &Pod) -> String {
    rkube_client::object_key(&pod.metadata)
}

fn mode_or(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).map_or(default, |m| m & 0o777)
}

fn quantity_bytes(q: &Quantity) -> Result<u64, VolumeError> {
    let milli = rkube_api::validation::quantity::parse_quantity(&q.0)
        .map_err(|_| VolumeError::InvalidPath { path: q.0.clone(), reason: "not a quantity" })?;
    Ok(u64::try_from((milli + 999) / 1000).unwrap_or(0))
}

/// The files of a ConfigMap- or Secret-backed volume: every key, or only `items`.
fn key_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    missing: fn(String) -> VolumeError,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                payload.insert(k.clone(), FileData { data: v.clone(), mode: default_mode });
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        payload.insert(
                            item.path.clone(),
                            FileData { data: v.clone(), mode: mode_or(item.mode, default_mode) },
                        );
                    }
                    None if optional => {}
                    None => return Err(missing(item.key.clone())),
                }
            }
        }
    }
    Ok(payload)
}

/// Creates `dir` (and its parents) and gives it `mode` when it is new.
fn make_dir(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_err("setting mode of", dir))
}

/// Refuses paths that are absolute, empty, or climb out with `..`, as Kubernetes validation
/// does for item paths and subPaths.
fn check_relative(path: &str) -> Result<(), VolumeError> {
    let bad = |reason| Err(VolumeError::InvalidPath { path: path.to_string(), reason });
    if path.is_empty() {
        return bad("must not be empty");
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return bad("must be a relative path");
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return bad("must not contain '..'");
    }
    Ok(())
}

/// `base/sub`, created as a directory when missing, refused when a symlink leads it out of
/// `base`.
fn resolve_sub_path(base: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    check_relative(sub)?;
    let joined = base.join(sub);
    if std::fs::symlink_metadata(&joined).is_err() {
        std::fs::create_dir_all(&joined).map_err(io_err("creating subPath", &joined))?;
    }
    let real_base = std::fs::canonicalize(base).map_err(io_err("resolving", base))?;
    let real = std::fs::canonicalize(&joined).map_err(io_err("resolving", &joined))?;
    if !real.starts_with(&real_base) {
        return Err(VolumeError::InvalidPath { path: sub.to_string(), reason: "subPath leads outside the volume" });
    }
    Ok(real)
}

/// Checks (and for the *OrCreate types, makes) a hostPath according to its `type`.
fn check_host_path(path: &Path, type_: &str) -> Result<(), VolumeError> {
    let shown = path.display().to_string();
    let fail = |what| Err(VolumeError::HostPathType { path: shown.clone(), what });
    let meta = std::fs::metadata(path).ok();
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => {
            std::fs::create_dir_all(path).map_err(io_err("creating directory", path))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err("setting mode of", path))
        }
        "DirectoryOrCreate" | "Directory" => {
            if meta.is_some_and(|m| m.is_dir()) {
                Ok(())
            } else {
                fail("directory")
            }
        }
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(io_err("creating file", path))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                .map_err(io_err("setting mode of", path))
        }
        "FileOrCreate" | "File" => {
            if meta.is_some_and(|m| m.is_file()) {
                Ok(())
            } else {
                fail("file")
            }
        }
        "Socket" => {
            if meta.is_some_and(|m| m.file_type().is_socket()) {
                Ok(())
            } else {
                fail("socket file")
            }
        }
        "CharDevice" => {
            if meta.is_some_and(|m| m.file_type().is_char_device()) {
                Ok(())
            } else {
                fail("character device")
            }
        }
        "BlockDevice" => {
            if meta.is_some_and(|m| m.file_type().is_block_device()) {
                Ok(())
            } else {
                fail("block device")
            }
        }
        other => Err(VolumeError::InvalidHostPathType(other.to_string())),
    }
}

/// Whether the volume's required node affinity admits `node`. Only `kubernetes.io/hostname`
/// terms are judged (the node's other labels are not known here); others count as met.
fn node_affinity_allows(pv: &PersistentVolume, node: &str) -> bool {
    let terms = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        term.match_expressions.iter().flatten().filter(|e| e.key == "kubernetes.io/hostname").all(|e| {
            let listed = e.values.iter().flatten().any(|v| v == node);
            match e.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => true,
            }
        })
    })
}

/// Writes `payload` into `dir` the way Kubernetes' atomic writer does; returns whether the
/// contents changed. Idempotent: unchanged contents are left alone, and leftovers of an
/// interrupted write are cleaned up.
fn write_atomic(dir: &Path, payload: &Payload) -> Result<bool, VolumeError> {
    for path in payload.keys() {
        check_relative(path)?;
        if path.starts_with("..") {
            return Err(VolumeError::InvalidPath { path: path.clone(), reason: "must not start with '..'" });
        }
    }
    let current = std::fs::read_link(dir.join(DATA_LINK)).ok().and_then(|t| t.to_str().map(str::to_string));
    let unchanged = match &current {
        Some(cur) => read_tree(&dir.join(cur)).is_ok_and(|files| files == *payload),
        None => false,
    };
    let live = if unchanged {
        current.clone().unwrap_or_default()
    } else {
        let ts = new_timestamp_dir(dir)?;
        let ts_dir = dir.join(&ts);
        for (rel, file) in payload {
            let target = ts_dir.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
            }
            std::fs::write(&target, &file.data).map_err(io_err("writing", &target))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))
                .map_err(io_err("setting mode of", &target))?;
        }
        let tmp = dir.join(DATA_LINK_TMP);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &tmp)(e)),
        }
        std::os::unix::fs::symlink(&ts, &tmp).map_err(io_err("linking", &tmp))?;
        // The swap readers see: one rename replaces the old link.
        std::fs::rename(&tmp, dir.join(DATA_LINK)).map_err(io_err("renaming", &tmp))?;
        ts
    };

    let visible: BTreeSet<&str> =
        payload.keys().filter_map(|p| p.split('/').find(|c| !c.is_empty() && *c != ".")).collect();
    for name in &visible {
        let link = dir.join(name);
        let want = PathBuf::from(DATA_LINK).join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() && std::fs::read_link(&link).is_ok_and(|t| t == want) => continue,
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link).map_err(io_err("removing", &link))?,
            Ok(_) => std::fs::remove_file(&link).map_err(io_err("removing", &link))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&want, &link).map_err(io_err("linking", &link))?;
    }
    for entry in std::fs::read_dir(dir).map_err(io_err("reading", dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let stale = if name.starts_with("..") {
            // Old timestamped directories (the one just replaced, or an interrupted write's)
            // and a temporary link an interrupted swap left.
            name != DATA_LINK && name != live
        } else {
            is_link && !visible.contains(name.as_str())
        };
        if stale {
            let removed = if is_link { std::fs::remove_file(&path) } else { std::fs::remove_dir_all(&path) };
            removed.map_err(io_err("removing", &path))?;
        }
    }
    Ok(!unchanged)
}

/// Creates a fresh `..<timestamp>.<random>` directory in `dir` and returns its name.
fn new_timestamp_dir(dir: &Path) -> Result<String, VolumeError> {
    let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S").to_string();
    loop {
        let name = format!("..{stamp}.{}", rand::random::<u32>());
        let path = dir.join(&name);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(io_err("setting mode of", &path))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating directory", &path)(e)),
        }
    }
}

/// The files under `dir` as a payload (relative paths, contents, permission bits).
fn read_tree(dir: &Path) -> io::Result<Payload> {
    fn walk(root: &Path, dir: &Path, out: &mut Payload) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).map_err(io::Error::other)?.to_string_lossy().into_owned();
                out.insert(rel, FileData { data: std::fs::read(&path)?, mode: meta.permissions().mode() & 0o777 });
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// Every mount point of this process's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>, VolumeError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
    Ok(parse_mountinfo(&text))
}

/// The mount points (fifth field) of mountinfo text, with its octal escapes decoded.
fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines().filter_map(|line| line.split(' ').nth(4)).map(|field| PathBuf::from(unescape_octal(field))).collect()
}

/// Decodes `\040`-style escapes (space, tab, newline, backslash in mount paths).
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1..i + 4).is_some_and(|d| d.iter().all(|b| (b'0'..=b'7').contains(b))) {
            let v = (bytes[i + 1] - b'0') as u32 * 64 + (bytes[i + 2] - b'0') as u32 * 8 + (bytes[i + 3] - b'0') as u32;
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_mount_point(dir: &Path) -> Result<bool, VolumeError> {
    Ok(mount_points()?.iter().any(|m| m == dir))
}

/// Mounts a tmpfs on `dir` unless one (or anything) is already mounted there, so a restarted
/// kubelet does not stack a second, empty tmpfs over a pod's secrets.
async fn ensure_tmpfs(dir: &Path, size: Option<u64>, mode: u32) -> Result<(), VolumeError> {
    if is_mount_point(dir)? {
        return Ok(());
    }
    let mut options = format!("mode={mode:o}");
    if let Some(bytes) = size.filter(|b| *b > 0) {
        options = format!("size={bytes},{options}");
    }
    run(
        "mount",
        &["-t".as_ref(), "tmpfs".as_ref(), "-o".as_ref(), options.as_ref(), "tmpfs".as_ref(), dir.as_os_str()],
    )
    .await?;
    tracing::debug!(path = %dir.display(), options = %options, "tmpfs mounted");
    Ok(())
}

async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), VolumeError> {
    let command = || {
        let mut line = program.to_string();
        for a in args {
            line.push(' ');
            line.push_str(&a.to_string_lossy());
        }
        line
    };
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| VolumeError::Mount { command: command(), output: e.to_string() })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if text.is_empty() {
        text = format!("{}", output.status);
    }
    Err(VolumeError::Mount { command: command(), output: text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileData {
        FileData { data: data.as_bytes().to_vec(), mode }
    }

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries.iter().map(|(p, d, m)| (p.to_string(), file(d, *m))).collect()
    }

    fn data_target(dir: &Path) -> String {
        std::fs::read_link(dir.join(DATA_LINK)).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn atomic_writer_swaps_data_link_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let first = payload(&[("color", "blue", 0o644), ("nested/deep/file", "x", 0o400)]);
        assert!(write_atomic(dir, &first).unwrap());
        let ts1 = data_target(dir);
        assert!(ts1.starts_with("..") && ts1.len() > 20, "{ts1}");
        assert_eq!(std::fs::read_link(dir.join("color")).unwrap(), Path::new("..data/color"));
        assert_eq!(std::fs::read_to_string(dir.join("color")).unwrap(), "blue");
        assert_eq!(std::fs::read_to_string(dir.join("nested/deep/file")).unwrap(), "x");
        let mode = std::fs::metadata(dir.join("nested/deep/file")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);

        // Same contents: nothing is rewritten.
        assert!(!write_atomic(dir, &first).unwrap());
        assert_eq!(data_target(dir), ts1);

        // New contents: a new directory, the old one and the dropped names are gone.
        let second = payload(&[("color", "red", 0o644), ("size", "L", 0o600)]);
        assert!(write_atomic(dir, &second).unwrap());
        let ts2 = data_target(dir);
        assert_ne!(ts1, ts2);
        assert!(!dir.join(&ts1).exists());
        assert!(std::fs::symlink_metadata(dir.join("nested")).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("color")).unwrap(), "red");
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec![ts2.clone(), "..data".to_string(), "color".to_string(), "size".to_string()]);

        // A mode change alone counts as a change.
        let third = payload(&[("color", "red", 0o600), ("size", "L", 0o600)]);
        assert!(write_atomic(dir, &third).unwrap());

        // Empty payload: only the machinery is left.
        assert!(write_atomic(dir, &Payload::new()).unwrap());
        let names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn atomic_writer_recovers_from_an_interrupted_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_atomic(dir, &payload(&[("a", "1", 0o644)])).unwrap();
        // A crash left a half-written directory and a temporary link behind.
        std::fs::create_dir(dir.join("..2000_01_01_00_00_00.1")).unwrap();
        std::os::unix::fs::symlink("..2000_01_01_00_00_00.1", dir.join(DATA_LINK_TMP)).unwrap();
        assert!(!write_atomic(dir, &payload(&[("a", "1", 0o644)])).unwrap());
        assert!(!dir.join("..2000_01_01_00_00_00.1").exists());
        assert!(std::fs::symlink_metadata(dir.join(DATA_LINK_TMP)).is_err());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
    }

    #[test]
    fn atomic_writer_refuses_escaping_paths() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../evil", "/etc/passwd", "a/../../b", "..hidden", ""] {
            let err = write_atomic(tmp.path(), &payload(&[(bad, "x", 0o644)])).unwrap_err();
            assert!(matches!(err, VolumeError::InvalidPath { .. }), "{bad}: {err}");
        }
        assert!(std::fs::symlink_metadata(tmp.path().join(DATA_LINK)).is_err());
    }

    #[test]
    fn items_select_keys_and_modes() {
        let data: BTreeMap<String, Vec<u8>> =
            [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into_iter().collect();
        let all = key_payload(&data, None, 0o640, false, VolumeError::ConfigMapKeyNotFound).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"].mode, 0o640);
        let items = vec![KeyToPath { key: "b".into(), path: "dir/b.txt".into(), mode: Some(0o600) }];
        let some = key_payload(&data, Some(&items), 0o644, false, VolumeError::ConfigMapKeyNotFound).unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), vec!["dir/b.txt"]);
        assert_eq!(some["dir/b.txt"], file("2", 0o600));
        let missing = vec![KeyToPath { key: "zzz".into(), path: "z".into(), mode: None }];
        let err = key_payload(&data, Some(&missing), 0o644, false, VolumeError::ConfigMapKeyNotFound).unwrap_err();
        assert_eq!(err.to_string(), "configmap references non-existent config key: zzz");
        let err = key_payload(&data, Some(&missing), 0o644, false, VolumeError::SecretKeyNotFound).unwrap_err();
        assert_eq!(err.to_string(), "references non-existent secret key: zzz");
        assert!(key_payload(&data, Some(&missing), 0o644, true, VolumeError::SecretKeyNotFound).unwrap().is_empty());
    }

    #[test]
    fn host_path_types_are_checked_and_created() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let dir = d.join("made/here");
        check_host_path(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        check_host_path(&dir, "Directory").unwrap();
        let f = d.join("sub/file.txt");
        check_host_path(&f, "FileOrCreate").unwrap();
        assert!(f.is_file());
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o644);
        check_host_path(&f, "File").unwrap();

        let err = check_host_path(&f, "Directory").unwrap_err();
        assert_eq!(err.to_string(), format!("hostPath type check failed: {} is not a directory", f.display()));
        let err = check_host_path(&f, "DirectoryOrCreate").unwrap_err();
        assert!(err.to_string().ends_with("is not a directory"), "{err}");
        assert!(check_host_path(&dir, "File").unwrap_err().to_string().ends_with("is not a file"));
        assert!(check_host_path(&dir, "FileOrCreate").unwrap_err().to_string().ends_with("is not a file"));
        let missing = d.join("nope");
        assert!(check_host_path(&missing, "Directory").unwrap_err().to_string().ends_with("is not a directory"));
        assert!(!missing.exists());
        assert!(check_host_path(&f, "Socket").unwrap_err().to_string().ends_with("is not a socket file"));
        assert!(check_host_path(&f, "CharDevice").unwrap_err().to_string().ends_with("is not a character device"));
        check_host_path(Path::new("/dev/null"), "CharDevice").unwrap();
        assert!(check_host_path(&f, "BlockDevice").unwrap_err().to_string().ends_with("is not a block device"));
        let sock = d.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check_host_path(&sock, "Socket").unwrap();
        check_host_path(&missing, "").unwrap();
        assert!(matches!(check_host_path(&f, "Whatever"), Err(VolumeError::InvalidHostPathType(_))));
    }

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("vol");
        std::fs::create_dir(&base).unwrap();
        let made = resolve_sub_path(&base, "logs/app").unwrap();
        assert!(made.is_dir());
        assert!(made.ends_with("vol/logs/app"));
        std::os::unix::fs::symlink("/etc", base.join("escape")).unwrap();
        let err = resolve_sub_path(&base, "escape").unwrap_err();
        assert!(err.to_string().contains("outside the volume"), "{err}");
        assert!(resolve_sub_path(&base, "../x").is_err());
        assert!(resolve_sub_path(&base, "/abs").is_err());
        // A link inside the volume (configMap keys are such links) is fine.
        std::fs::write(base.join("real"), "x").unwrap();
        std::os::unix::fs::symlink("real", base.join("key")).unwrap();
        assert!(resolve_sub_path(&base, "key").unwrap().ends_with("vol/real"));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let text = "36 25 0:32 / /var/lib/a\\040b rw,relatime shared:1 - tmpfs tmpfs rw\n\
                    37 25 0:33 / /tmp/x\\134y rw - tmpfs tmpfs rw\n";
        assert_eq!(parse_mountinfo(text), vec![PathBuf::from("/var/lib/a b"), PathBuf::from("/tmp/x\\y")]);
        assert_eq!(unescape_octal("plain\\04"), "plain\\04");
    }

    #[test]
    fn node_affinity_by_hostname() {
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pv"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}},
        }))
        .unwrap();
        assert!(node_affinity_allows(&pv, "n1"));
        assert!(!node_affinity_allows(&pv, "n2"));
        assert!(node_affinity_allows(&PersistentVolume::default(), "n2"));
    }

    #[test]
    fn tokens_are_renewed_after_80_percent_of_their_lifetime_and_within_a_day() {
        let issued = Instant::now();
        assert_eq!(renewal_time(issued, Duration::from_secs(3600)), issued + Duration::from_secs(2880));
        assert_eq!(renewal_time(issued, Duration::from_secs(3607)) - issued, Duration::from_secs_f64(2885.6));
        assert_eq!(renewal_time(issued, Duration::from_secs(365 * 24 * 3600)), issued + MAX_TOKEN_AGE);
        assert_eq!(renewal_time(issued, Duration::ZERO), issued, "an expired token is renewed at once");
    }

    #[test]
    fn kinds_are_named_as_the_api_names_them() {
        let v: Volume =
            serde_json::from_value(serde_json::json!({"name": "x", "nfs": {"server": "s", "path": "/p"}})).unwrap();
        assert_eq!(volume_kind(&v), "nfs");
        assert_eq!(mode_or(Some(0o1777), 0o644), 0o777);
        assert_eq!(mode_or(None, 0o644), 0o644);
        assert_eq!(mode_or(Some(-1), 0o644), 0o644);
    }
}
