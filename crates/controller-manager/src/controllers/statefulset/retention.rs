//! persistentVolumeClaimRetentionPolicy: claims are never deleted by this controller; the
//! garbage collector deletes them through ownerReferences, as in Kubernetes. `whenDeleted:
//! Delete` makes the set an owner of its pods' claims; `whenScaled: Delete` makes a condemned
//! pod (ordinal out of range) the owner of its claims just before it is deleted. With the
//! default Retain/Retain claims carry neither reference.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::{Metadata, Resource};

/// A plain (non-controller) owner reference to `owner`.
fn reference<K: Resource + Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(
    owner: &K,
) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.metadata().name.clone().unwrap_or_default(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// The (whenDeleted, whenScaled) policies, "Retain" when unset.
fn policy(set: &StatefulSet) -> (&str, &str) {
    let p = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let when_deleted = p.and_then(|p| p.when_deleted.as_deref()).unwrap_or("Retain");
    let when_scaled = p.and_then(|p| p.when_scaled.as_deref()).unwrap_or("Retain");
    (when_deleted, when_scaled)
}

/// The ownerReferences `claim` (of `pod`) should carry under the set's policy, or None when
/// they already do. `scaled_down`: the pod's ordinal is out of the set's range.
pub fn owner_refs(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: Option<&Pod>,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let (when_deleted, when_scaled) = policy(set);
    let by_pod = when_scaled == "Delete" && scaled_down && pod.is_some();
    let by_set = when_deleted == "Delete" && !by_pod;
    let current = claim.metadata.owner_references.clone().unwrap_or_default();
    let mut refs = current.clone();
    let mut want = |r: OwnerReference, on: bool| {
        let has = refs.iter().any(|x| x.uid == r.uid);
        if on && !has {
            refs.push(r);
        } else if !on && has {
            refs.retain(|x| x.uid != r.uid);
        }
    };
    want(reference(set), by_set);
    if let Some(pod) = pod {
        want(reference(pod), by_pod);
    }
    (refs != current).then_some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(deleted: &str, scaled: &str) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "s", "uid": "set-uid"}, "spec": {
            "selector": {}, "template": {},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": deleted, "whenScaled": scaled}}}))
        .unwrap()
    }

    #[test]
    fn references_follow_the_policy() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "s-1", "uid": "pod-uid"}})).unwrap();
        let claim = PersistentVolumeClaim::default();
        assert_eq!(owner_refs(&claim, &set("Retain", "Retain"), Some(&pod), true), None);
        let refs = owner_refs(&claim, &set("Delete", "Retain"), Some(&pod), false).unwrap();
        assert_eq!(refs.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(), vec!["set-uid"]);
        let owned = PersistentVolumeClaim {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                owner_references: Some(refs),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(owner_refs(&owned, &set("Delete", "Retain"), Some(&pod), false), None, "already right");
        let scaled = owner_refs(&owned, &set("Delete", "Delete"), Some(&pod), true).unwrap();
        assert_eq!(scaled.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(), vec!["pod-uid"]);
        assert_eq!(owner_refs(&owned, &set("Retain", "Retain"), Some(&pod), false), Some(vec![]), "policy relaxed");
    }
}
