//! Update history shared by the DaemonSet and StatefulSet controllers: ControllerRevisions
//! (apps/v1) named `<owner>-<hash>`, labelled with `controller.kubernetes.io/hash`, numbered by
//! `revision`, owned by their workload; plus the template hash Kubernetes computes (FNV-32a,
//! salted by `status.collisionCount`, encoded with its safe alphabet) and history pruning.

use crate::objects::{controller_reference, is_controlled_by};
use crate::{Error, informers::Object};
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{Client, DeleteParams, PatchType, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Label carrying a ControllerRevision's hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Label on pods naming the revision they were made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Characters Kubernetes' `rand.SafeEncodeString` maps to (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// The hash of `input` (a pod template) salted by the collision count, as a short
/// label-safe string (Kubernetes' `controller.ComputeHash`).
pub fn hash(input: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(input).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    fnv32a(&bytes).to_string().bytes().map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char).collect()
}

/// The revisions `owner` controls, oldest revision first.
pub fn owned<K: Object>(revisions: &Store<ControllerRevision>, owner: &K) -> Vec<Arc<ControllerRevision>> {
    let ns = owner.metadata().namespace.clone().unwrap_or_default();
    let uid = owner.metadata().uid.clone().unwrap_or_default();
    let mut out: Vec<_> =
        revisions.by_index(NAMESPACE_INDEX, &ns).into_iter().filter(|r| is_controlled_by(&r.metadata, &uid)).collect();
    out.sort_by(|a, b| (a.revision, &a.metadata.name).cmp(&(b.revision, &b.metadata.name)));
    out
}

/// Result of [`ensure`].
pub enum Ensured {
    /// The revision holding the current data (created, or an existing one renumbered last).
    Current(Box<ControllerRevision>),
    /// A revision of that name exists with other data: bump `status.collisionCount` and retry.
    Collision,
}

/// Makes sure a revision holding `data` exists for `owner` and is the newest one: reuses an
/// equal revision (renumbering it after the others, as a rollback does) or creates
/// `<owner>-<hash>` with the next number.
pub async fn ensure<K: Object>(
    client: &Client,
    owner: &K,
    existing: &[Arc<ControllerRevision>],
    data: Value,
    hash: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<Ensured, Error> {
    let ns = owner.metadata().namespace.clone().unwrap_or_default();
    let api = client.api::<ControllerRevision>(Some(&ns));
    let max = existing.iter().map(|r| r.revision).max().unwrap_or(0);
    let same = |r: &ControllerRevision| r.data.as_ref().map(|d| &d.0) == Some(&data);
    if let Some(found) = existing.iter().rev().find(|r| same(r)) {
        return renumber(&api, found.as_ref().clone(), max).await.map(|r| Ensured::Current(Box::new(r)));
    }
    let name = format!("{}-{hash}", owner.metadata().name.as_deref().unwrap_or_default());
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(HASH_LABEL.to_string(), hash.to_string());
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            owner_references: Some(vec![controller_reference(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: max + 1,
    };
    match api.create(&revision).await {
        Ok(created) => Ok(Ensured::Current(Box::new(created))),
        Err(e) if e.is_already_exists() => {
            // Our cache may trail our own create; anything else of that name is a collision.
            let uid = owner.metadata().uid.clone().unwrap_or_default();
            match api.get_opt(&name).await? {
                Some(r) if same(&r) && is_controlled_by(&r.metadata, &uid) => {
                    renumber(&api, r, max).await.map(|r| Ensured::Current(Box::new(r)))
                }
                _ => Ok(Ensured::Collision),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives `revision` the number after `max` unless it already is the newest.
async fn renumber(
    api: &rkube_client::Api<ControllerRevision>,
    revision: ControllerRevision,
    max: i64,
) -> Result<ControllerRevision, Error> {
    if revision.revision >= max {
        return Ok(revision);
    }
    let name = revision.metadata.name.clone().unwrap_or_default();
    Ok(api.patch(&name, PatchType::Merge, &json!({"revision": max + 1})).await?)
}

/// Deletes the oldest revisions beyond `limit`, sparing `current` and any revision a live
/// pod still runs (its hash in `live_hashes`).
pub async fn prune(
    client: &Client,
    revisions: &[Arc<ControllerRevision>],
    current: &str,
    live_hashes: &HashSet<String>,
    limit: i32,
) -> Result<(), Error> {
    let hash_of = |r: &ControllerRevision| r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)).cloned();
    let old: Vec<_> = revisions
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(current))
        .filter(|r| !hash_of(r).is_some_and(|h| live_hashes.contains(&h)))
        .collect();
    let excess = old.len().saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    for r in old.into_iter().take(excess) {
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let name = r.metadata.name.clone().unwrap_or_default();
        match client.api::<ControllerRevision>(Some(&ns)).delete(&name, &DeleteParams::default()).await {
            Ok(()) => tracing::debug!(namespace = %ns, revision = %name, "pruned old revision"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_safe_and_salted() {
        let t = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let h = hash(&t, None);
        assert_eq!(h, hash(&t, None));
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_ne!(h, hash(&t, Some(1)));
        assert_ne!(h, hash(&json!({"spec": {}}), None));
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    }
}
