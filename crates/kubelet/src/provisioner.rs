//! A small local-path provisioner built into the kubelet: the default StorageClass
//! `local-path`, volumes made on demand as directories under `<root>/local-path/` of the node
//! that first runs a pod using the claim (the class binds on first consumer), bound to their
//! claims the way Kubernetes' binder records it, and deleted with their directory once the
//! claim is gone.

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec, PersistentVolumeStatus, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{Client, ClientError, DeleteParams, Event, Informer, ListParams, WorkQueue};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The StorageClass this provisioner serves.
pub const STORAGE_CLASS: &str = "local-path";
/// The provisioner name the StorageClass and the volumes carry.
pub const PROVISIONER: &str = "rkube.io/local-path";
/// Annotation naming the provisioner of a dynamically provisioned volume.
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Claim annotation Kubernetes' binder sets once the claim is bound.
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Claim annotation: the binding was made by a controller, not by the user.
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Claim annotation the scheduler sets for WaitForFirstConsumer classes.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// StorageClass annotation marking the cluster's default class.
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The node label volumes are pinned with.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// How often a write is retried after losing a resourceVersion race.
const ATTEMPTS: usize = 10;

/// Why a claim could not be provisioned or a volume reclaimed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The claim lacks a name, namespace or uid.
    #[error("persistentvolumeclaim {0:?} has no uid")]
    InvalidClaim(String),
    /// The claim asks for no storage.
    #[error("persistentvolumeclaim {0:?} requests no storage")]
    NoRequest(String),
    /// The claim is already bound to another volume.
    #[error("persistentvolumeclaim {claim:?} is bound to volume {volume:?}")]
    BoundElsewhere {
        /// The claim.
        claim: String,
        /// The volume it is bound to.
        volume: String,
    },
    /// A volume of the name this claim's would get exists for another claim.
    #[error("persistentvolume {0:?} already exists for another claim")]
    VolumeTaken(String),
    /// The scheduler chose another node for the claim.
    #[error("persistentvolumeclaim {claim:?} is meant for node {selected:?}, not {node:?}")]
    OtherNode {
        /// The claim.
        claim: String,
        /// The node the scheduler selected.
        selected: String,
        /// This node.
        node: String,
    },
    /// The claim was deleted (or replaced) while being provisioned.
    #[error("persistentvolumeclaim {0:?} was deleted while being provisioned")]
    ClaimGone(String),
    /// Every attempt lost a race with another writer.
    #[error("gave up updating {0} after {ATTEMPTS} conflicts")]
    Conflicts(String),
    /// The API server does not serve StorageClasses (storage.k8s.io/v1).
    #[error("the API server does not serve storage.k8s.io/v1 storageclasses")]
    StorageClassesNotServed,
    /// An API request failed.
    #[error(transparent)]
    Api(Box<ClientError>),
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl From<ClientError> for ProvisionError {
    fn from(e: ClientError) -> Self {
        ProvisionError::Api(Box::new(e))
    }
}

/// Creates StorageClass `local-path` (the cluster default, bound on first consumer, volumes
/// deleted with their claims) if absent; an existing one is left as the admin has it.
pub async fn ensure_storage_class(client: &Client) -> Result<(), ProvisionError> {
    let classes = client.api::<StorageClass>(None);
    if classes.get_opt(STORAGE_CLASS).await?.is_some() {
        return Ok(());
    }
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(STORAGE_CLASS.into()),
            annotations: Some(BTreeMap::from([(DEFAULT_CLASS.to_string(), "true".to_string())])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    };
    match classes.create(&class).await {
        Ok(_) => {
            tracing::info!(storage_class = STORAGE_CLASS, "storage class created");
            Ok(())
        }
        // Another kubelet made it first.
        Err(e) if e.is_already_exists() => Ok(()),
        // Creating a cluster-scoped object only finds nothing when its type is unknown.
        Err(e) if e.is_not_found() => Err(ProvisionError::StorageClassesNotServed),
        Err(e) => Err(e.into()),
    }
}

/// The facts of a claim this module needs, checked once.
struct ClaimId<'a> {
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl<'a> ClaimId<'a> {
    fn of(claim: &'a PersistentVolumeClaim) -> Result<Self, ProvisionError> {
        let m = &claim.metadata;
        match (m.namespace.as_deref(), m.name.as_deref(), m.uid.as_deref()) {
            (Some(namespace), Some(name), Some(uid)) if !name.is_empty() && !uid.is_empty() => {
                Ok(ClaimId { namespace, name, uid })
            }
            _ => Err(ProvisionError::InvalidClaim(rkube_client::object_key(m))),
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Where volumes live under `root`.
fn volumes_dir(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()).join("local-path")
}

/// Provisions `claim` on this node and binds it: PV `pvc-<claim uid>` with a hostPath under
/// `<root>/local-path/<ns>_<claim>_<uid>`, pinned to this node, then the binding on both
/// sides. Idempotent: a repeated or concurrent call finds the volume already made and
/// finishes whatever part of the binding is missing.
pub async fn provision(
    client: &Client,
    node_name: &str,
    root: &Path,
    claim: &PersistentVolumeClaim,
) -> Result<PersistentVolume, ProvisionError> {
    let id = ClaimId::of(claim)?;
    if let Some(selected) = claim.metadata.annotations.as_ref().and_then(|a| a.get(SELECTED_NODE))
        && selected != node_name
    {
        return Err(ProvisionError::OtherNode {
            claim: id.key(),
            selected: selected.clone(),
            node: node_name.to_string(),
        });
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .ok_or_else(|| ProvisionError::NoRequest(id.key()))?;
    let pv_name = format!("pvc-{}", id.uid);
    let path = volumes_dir(root).join(format!("{}_{}_{}", id.namespace, id.name, id.uid));
    let io_err = |action| {
        let path = path.clone();
        move |source| ProvisionError::Io { action, path, source }
    };
    std::fs::create_dir_all(&path).map_err(io_err("creating directory"))?;
    // Writable by any container user, as local-path volumes conventionally are.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).map_err(io_err("setting mode of"))?;

    let volumes = client.api::<PersistentVolume>(None);
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(BTreeMap::from([(PROVISIONED_BY.to_string(), PROVISIONER.to_string())])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), storage.clone())])),
            access_modes: Some(
                spec.access_modes.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            ),
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node_name.to_string()]),
                        }]),
                        ..Default::default()
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(id.namespace.into()),
                name: Some(id.name.into()),
                uid: Some(id.uid.into()),
                ..Default::default()
            }),
            persistent_volume_reclaim_policy: Some("Delete".into()),
            storage_class_name: Some(spec.storage_class_name.clone().unwrap_or_else(|| STORAGE_CLASS.into())),
            volume_mode: spec.volume_mode.clone(),
            ..Default::default()
        }),
        status: None,
    };
    let existing = match volumes.get_opt(&pv_name).await? {
        Some(v) => v,
        None => match volumes.create(&pv).await {
            Ok(v) => {
                tracing::info!(claim = %id.key(), volume = %pv_name, path = %path.display(), "volume provisioned");
                v
            }
            Err(e) if e.is_already_exists() => volumes.get(&pv_name).await?,
            Err(e) => return Err(e.into()),
        },
    };
    if existing.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|r| r.uid.as_deref()) != Some(id.uid) {
        return Err(ProvisionError::VolumeTaken(pv_name));
    }

    let bound = bind_volume(client, &pv_name).await?;
    bind_claim(client, &id, &pv_name).await?;
    claim_status_bound(client, &id, &bound).await?;
    Ok(bound)
}

/// Sets the volume's phase to Bound.
async fn bind_volume(client: &Client, name: &str) -> Result<PersistentVolume, ProvisionError> {
    let volumes = client.api::<PersistentVolume>(None);
    for _ in 0..ATTEMPTS {
        let mut pv = volumes.get(name).await?;
        if pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
            return Ok(pv);
        }
        pv.status = Some(PersistentVolumeStatus { phase: Some("Bound".into()), ..Default::default() });
        match volumes.update_status(&pv).await {
            Ok(pv) => return Ok(pv),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Conflicts(format!("persistentvolume {name}")))
}

/// Records the binding on the claim: spec.volumeName and the binder's annotations.
async fn bind_claim(client: &Client, id: &ClaimId<'_>, pv_name: &str) -> Result<(), ProvisionError> {
    let claims = client.api::<PersistentVolumeClaim>(Some(id.namespace));
    for _ in 0..ATTEMPTS {
        let mut claim = current_claim(client, id).await?;
        let spec = claim.spec.get_or_insert_with(Default::default);
        match spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
            Some(v) if v != pv_name => {
                return Err(ProvisionError::BoundElsewhere { claim: id.key(), volume: v.to_string() });
            }
            _ => {}
        }
        let annotations = claim.metadata.annotations.get_or_insert_with(Default::default);
        let done = annotations.get(BIND_COMPLETED).map(String::as_str) == Some("yes");
        if done && spec.volume_name.as_deref() == Some(pv_name) {
            return Ok(());
        }
        spec.volume_name = Some(pv_name.to_string());
        annotations.insert(BIND_COMPLETED.into(), "yes".into());
        annotations.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        match claims.update(&claim).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Err(ProvisionError::ClaimGone(id.key())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Conflicts(format!("persistentvolumeclaim {}", id.key())))
}

/// Sets the claim's status to Bound with the volume's capacity and access modes.
async fn claim_status_bound(client: &Client, id: &ClaimId<'_>, pv: &PersistentVolume) -> Result<(), ProvisionError> {
    let claims = client.api::<PersistentVolumeClaim>(Some(id.namespace));
    let pv_spec = pv.spec.clone().unwrap_or_default();
    for _ in 0..ATTEMPTS {
        let mut claim = current_claim(client, id).await?;
        let status = claim.status.get_or_insert_with(Default::default);
        if status.phase.as_deref() == Some("Bound") && status.capacity == pv_spec.capacity {
            return Ok(());
        }
        status.phase = Some("Bound".into());
        status.capacity = pv_spec.capacity.clone();
        status.access_modes = pv_spec.access_modes.clone();
        match claims.update_status(&claim).await {
            Ok(_) => {
                tracing::info!(claim = %id.key(), volume = ?pv.metadata.name, "claim bound");
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Err(ProvisionError::ClaimGone(id.key())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProvisionError::Conflicts(format!("persistentvolumeclaim {} status", id.key())))
}

/// The claim as stored now, provided it is still the same claim (same uid).
async fn current_claim(client: &Client, id: &ClaimId<'_>) -> Result<PersistentVolumeClaim, ProvisionError> {
    let claim = client.api::<PersistentVolumeClaim>(Some(id.namespace)).get_opt(id.name).await?;
    match claim {
        Some(c) if c.metadata.uid.as_deref() == Some(id.uid) => Ok(c),
        _ => Err(ProvisionError::ClaimGone(id.key())),
    }
}

/// The node a volume this provisioner made is pinned to; None for anyone else's volume.
fn provisioned_node(pv: &PersistentVolume) -> Option<&str> {
    let ours = pv.metadata.annotations.as_ref().and_then(|a| a.get(PROVISIONED_BY)).map(String::as_str);
    if ours != Some(PROVISIONER) {
        return None;
    }
    let terms = &pv.spec.as_ref()?.node_affinity.as_ref()?.required.as_ref()?.node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_expressions.iter().flatten())
        .find(|e| e.key == HOSTNAME_LABEL && e.operator == "In")
        .and_then(|e| e.values.as_ref()?.first())
        .map(String::as_str)
}

/// Watches volumes and claims and deletes this node's volumes (directory first, then the
/// PersistentVolume) once their claim is gone and their reclaim policy is Delete. Runs until
/// `token` is cancelled.
pub async fn run(client: Client, node_name: String, root: PathBuf, token: CancellationToken) {
    let queue: WorkQueue<String> = WorkQueue::new();

    let mut volumes = Informer::new(client.api::<PersistentVolume>(None), ListParams::default());
    let (q, node) = (queue.clone(), node_name.clone());
    volumes.on_event(move |event| {
        let pv = match event {
            Event::Added(pv) | Event::Updated { new: pv, .. } => pv,
            Event::Deleted(_) => return,
        };
        if provisioned_node(pv) == Some(node.as_str())
            && let Some(name) = &pv.metadata.name
        {
            q.add(name.clone());
        }
    });
    // A claim's deletion does not touch its volume, so claims are watched too; the volumes
    // this provisioner makes are named after their claim's uid.
    let mut claims = Informer::new(client.api::<PersistentVolumeClaim>(None), ListParams::default());
    let q = queue.clone();
    claims.on_event(move |event| {
        if let Event::Deleted(claim) = event
            && let Some(uid) = &claim.metadata.uid
        {
            q.add(format!("pvc-{uid}"));
        }
    });
    let informers = [tokio::spawn(volumes.run(token.clone())), tokio::spawn(claims.run(token.clone()))];

    loop {
        let next = tokio::select! {
            next = queue.get() => next,
            _ = token.cancelled() => None,
        };
        let Some(name) = next else { break };
        match reclaim(&client, &node_name, &root, &name).await {
            Ok(()) => queue.forget(&name),
            Err(e) => {
                tracing::warn!(volume = %name, error = %e, "reclaiming volume failed; retrying");
                queue.add_rate_limited(name.clone());
            }
        }
        queue.done(&name);
    }
    queue.shut_down();
    for informer in informers {
        let _ = informer.await;
    }
}

/// Deletes volume `name` if this node provisioned it, its policy is Delete and its claim is
/// gone; does nothing otherwise.
async fn reclaim(client: &Client, node_name: &str, root: &Path, name: &str) -> Result<(), ProvisionError> {
    let volumes = client.api::<PersistentVolume>(None);
    let Some(mut pv) = volumes.get_opt(name).await? else { return Ok(()) };
    if provisioned_node(&pv) != Some(node_name) {
        return Ok(());
    }
    let spec = pv.spec.clone().unwrap_or_default();
    if spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete") {
        return Ok(());
    }
    let Some(claim_ref) = &spec.claim_ref else { return Ok(()) };
    let namespace = claim_ref.namespace.as_deref().unwrap_or_default();
    let claim_name = claim_ref.name.as_deref().unwrap_or_default();
    if let Some(claim) = client.api::<PersistentVolumeClaim>(Some(namespace)).get_opt(claim_name).await?
        && (claim_ref.uid.is_none() || claim.metadata.uid == claim_ref.uid)
    {
        return Ok(());
    }

    // Released, as Kubernetes' binder would mark it, while the data goes away.
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
        pv.status = Some(PersistentVolumeStatus { phase: Some("Released".into()), ..Default::default() });
        if let Err(e) = volumes.update_status(&pv).await {
            tracing::debug!(volume = %name, error = %e, "could not mark volume Released");
        }
    }
    if let Some(hp) = &spec.host_path {
        let path = Path::new(&hp.path);
        let inside = path.starts_with(volumes_dir(root))
            && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if inside {
            match std::fs::remove_dir_all(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(ProvisionError::Io { action: "removing", path: path.to_path_buf(), source }),
            }
        } else {
            tracing::warn!(volume = %name, path = %path.display(), "not removing a volume path outside the local-path directory");
        }
    }
    let params = DeleteParams { precondition_uid: pv.metadata.uid.clone(), ..Default::default() };
    match volumes.delete(name, &params).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(volume = %name, claim = %format!("{namespace}/{claim_name}"), "volume deleted after its claim");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_this_provisioners_volumes_have_a_node() {
        let ours: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pvc-1", "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": ["n1"]}]}]}}},
        }))
        .unwrap();
        assert_eq!(provisioned_node(&ours), Some("n1"));
        let mut theirs = ours.clone();
        theirs.metadata.annotations = None;
        assert_eq!(provisioned_node(&theirs), None);
    }

    #[test]
    fn claims_without_identity_are_refused() {
        let claim: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "ns"}})).unwrap();
        assert!(matches!(ClaimId::of(&claim), Err(ProvisionError::InvalidClaim(_))));
    }
}
