//! The Recreate strategy: every old ReplicaSet goes to zero, and only once no pod of theirs
//! is left (terminating ones included) is the new ReplicaSet created and scaled up, so old
//! and new pods never run side by side.

use super::sync::parts;
use super::{DeploymentController, desired, rs_actual, rs_replicas, status};
use crate::objects::{Selector, controller_of, pod_terminated};
use crate::{Action, Error};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use rkube_client::store::NAMESPACE_INDEX;
use std::collections::HashSet;
use std::sync::Arc;

/// Whether any old ReplicaSet still has pods: by its status, or by a pod of it in `pods`
/// that has not finished (a pod being deleted still runs until it is gone).
pub(super) fn old_pods_running(new: Option<&ReplicaSet>, olds: &[ReplicaSet], pods: &[Arc<Pod>]) -> bool {
    if olds.iter().map(rs_actual).sum::<i32>() > 0 {
        return true;
    }
    let old_uids: HashSet<&str> = olds.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
    let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter().any(|pod| {
        controller_of(&pod.metadata)
            .is_some_and(|r| old_uids.contains(r.uid.as_str()) && Some(r.uid.as_str()) != new_uid)
            && !pod_terminated(pod)
    })
}

impl DeploymentController {
    /// One step of a Recreate rollout.
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<Action, Error> {
        // The new ReplicaSet is not created yet, so nothing scales up before the old are down.
        let mut new_name = self.sync_revision(d, rss, false).await?;
        let (_, olds) = parts(rss, new_name.as_deref());
        let mut scaled_down = false;
        for old in olds.iter().filter(|rs| rs_replicas(rs) > 0) {
            scaled_down |= self.scale_in(d, rss, old, 0).await?;
        }
        if scaled_down {
            return Ok(self.rollout_status(d, rss, new_name.as_deref()));
        }
        let (new, olds) = parts(rss, new_name.as_deref());
        if old_pods_running(new.as_ref(), &olds, &self.pods_of(d)) {
            return Ok(self.rollout_status(d, rss, new_name.as_deref()));
        }
        if new_name.is_none() {
            new_name = self.sync_revision(d, rss, true).await?;
        }
        if let (Some(new), _) = parts(rss, new_name.as_deref()) {
            self.scale_in(d, rss, &new, desired(d)).await?;
        }
        if d.status.as_ref().is_some_and(|s| status::complete(d, s)) {
            let (_, olds) = parts(rss, new_name.as_deref());
            self.cleanup(d, &olds).await?;
        }
        Ok(self.rollout_status(d, rss, new_name.as_deref()))
    }

    /// The pods of the Deployment's namespace its selector matches.
    fn pods_of(&self, d: &Deployment) -> Vec<Arc<Pod>> {
        let Some(spec) = d.spec.as_ref() else { return Vec::new() };
        let selector = Selector::new(Some(&spec.selector));
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        self.pods
            .by_index(NAMESPACE_INDEX, ns)
            .into_iter()
            .filter(|p| selector.matches(p.metadata.labels.as_ref()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::sync::tests::rs;
    use serde_json::json;

    fn pod(owner_uid: &str, phase: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": owner_uid, "controller": true}]},
                "status": {"phase": phase}}))
            .unwrap(),
        )
    }

    #[test]
    fn old_pods_count_until_they_are_gone_or_finished() {
        let mut old = rs("old", 0, 0, 0, json!({}));
        old.metadata.uid = Some("u-old".into());
        old.status.as_mut().unwrap().replicas = 0;
        let mut new = rs("new", 0, 0, 10, json!({}));
        new.metadata.uid = Some("u-new".into());
        let olds = std::slice::from_ref(&old);
        assert!(!old_pods_running(Some(&new), olds, &[]));
        assert!(old_pods_running(Some(&new), olds, &[pod("u-old", "Running")]));
        assert!(!old_pods_running(Some(&new), olds, &[pod("u-old", "Succeeded")]));
        assert!(!old_pods_running(Some(&new), olds, &[pod("u-new", "Running")]));
        let mut counted = old.clone();
        counted.status.as_mut().unwrap().replicas = 1;
        assert!(old_pods_running(None, &[counted], &[]));
    }
}
