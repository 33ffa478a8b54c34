//! The RollingUpdate strategy: maxSurge / maxUnavailable resolved against the replica count
//! (surge rounds up, unavailable down, never both zero), scaling the new ReplicaSet up within
//! the surge, and the old ones down only as far as the availability floor allows, unhealthy
//! replicas first.
//!
//! One deliberate difference from Kubernetes, on the safe side: pod counts take a ReplicaSet's
//! `status.replicas` when it is above `spec.replicas` (pods of a scale-down not yet gone), and
//! availability never counts more than `spec.replicas` (pods about to be deleted), so a lagging
//! ReplicaSet status can neither push the pod count over the surge nor let availability drop
//! under the floor.

use super::{
    DeploymentController, desired, is_recreate, rs_actual, rs_available, rs_replicas, status, sync, sync::parts,
};
use crate::{Action, Error};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The default of both maxSurge and maxUnavailable.
const DEFAULT_PERCENT: &str = "25%";

/// An int, or a percentage of `total` rounded up or down; None for a malformed value
/// (validation keeps those out).
pub(super) fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => {
            let percent: f64 = s.strip_suffix('%')?.parse().ok()?;
            let value = percent * f64::from(total) / 100.0;
            Some(if round_up { value.ceil() } else { value.floor() } as i32)
        }
    }
}

/// maxSurge and maxUnavailable as numbers of pods; both zero resolves to one unavailable.
pub(super) fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String(DEFAULT_PERCENT.to_string());
    let surge_v = ru.map_or(Some(&default), |r| r.max_surge.as_ref());
    let unavailable_v = ru.map_or(Some(&default), |r| r.max_unavailable.as_ref());
    let resolve = |v: Option<&IntOrString>, up: bool| v.and_then(|v| scaled_value(v, desired(d), up)).unwrap_or(0);
    let surge = resolve(surge_v, true);
    let unavailable = resolve(unavailable_v, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// Pods the Deployment may run above its replica count during a rollout.
pub(super) fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// Pods that may be unavailable during a rollout (never more than the replica count).
pub(super) fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || desired(d) == 0 { 0 } else { fenceposts(d).1.min(desired(d)) }
}

/// Pods a ReplicaSet stands for: its size, or more while a scale-down is under way.
fn pods_of(rs: &ReplicaSet) -> i32 {
    rs_replicas(rs).max(rs_actual(rs))
}

/// Available pods a ReplicaSet keeps: never more than its size.
fn available_of(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs))
}

/// The size the new ReplicaSet may grow to now: the whole replica count for Recreate; for
/// RollingUpdate as far as replicas + maxSurge pods in total allow.
pub(super) fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    if is_recreate(d) {
        return desired(d);
    }
    let current: i32 = all.iter().map(|rs| pods_of(rs)).sum();
    let max_total = desired(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(desired(d) - rs_replicas(new));
    rs_replicas(new) + up.max(0)
}

/// The size the new ReplicaSet should get, if it should change.
pub(super) fn new_rs_target(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> Option<i32> {
    let target = if rs_replicas(new) > desired(d) { desired(d) } else { new_rs_new_replicas(d, all, new) };
    (target != rs_replicas(new)).then_some(target)
}

/// How far the old ReplicaSets (the active ones) can shrink now, as (name, new size): first
/// their unavailable replicas (they cannot lower availability), then available ones down to
/// the floor of replicas - maxUnavailable, oldest ReplicaSets first.
pub(super) fn plan_old_scale_down(d: &Deployment, new: &ReplicaSet, olds: &[ReplicaSet]) -> Vec<(String, i32)> {
    let old_pods: i32 = olds.iter().map(rs_replicas).sum();
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = old_pods + rs_replicas(new);
    let min_available = desired(d) - max_unavailable(d);
    // Unavailable new pods may yet become available; until then they hold the floor.
    let new_unavailable = rs_replicas(new) - rs_available(new);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut olds: Vec<ReplicaSet> = olds.to_vec();
    olds.sort_by(sync::by_creation);
    let mut sizes: Vec<i32> = olds.iter().map(rs_replicas).collect();

    let mut cleaned = 0;
    for (rs, size) in olds.iter().zip(sizes.iter_mut()) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - rs_available(rs);
        if *size == 0 || unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        *size -= n;
        cleaned += n;
    }

    let available: i32 =
        olds.iter().zip(&sizes).map(|(rs, size)| rs_available(rs).min(*size)).sum::<i32>() + available_of(new);
    if available > min_available {
        let to_scale = available - min_available;
        let mut scaled = 0;
        for size in sizes.iter_mut() {
            if scaled >= to_scale {
                break;
            }
            if *size == 0 {
                continue;
            }
            let n = (*size).min(to_scale - scaled);
            *size -= n;
            scaled += n;
        }
    }
    olds.iter()
        .zip(sizes)
        .filter(|(rs, size)| rs_replicas(rs) != *size)
        .map(|(rs, size)| (rs.metadata.name.clone().unwrap_or_default(), size))
        .collect()
}

impl DeploymentController {
    /// One step of a rolling update: scale the new ReplicaSet up if the surge allows, else
    /// the old ones down if availability allows; once complete, prune history.
    pub(super) async fn rollout_rolling(&self, d: &mut Deployment, rss: &mut Vec<ReplicaSet>) -> Result<Action, Error> {
        let new_name = self.sync_revision(d, rss, true).await?;
        let (Some(new), olds) = parts(rss, new_name.as_deref()) else {
            return Ok(self.rollout_status(d, rss, new_name.as_deref()));
        };
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        if let Some(target) = new_rs_target(d, &all, &new)
            && self.scale_in(d, rss, &new, target).await?
        {
            return Ok(self.rollout_status(d, rss, new_name.as_deref()));
        }
        let active: Vec<ReplicaSet> = olds.iter().filter(|rs| rs_replicas(rs) > 0).cloned().collect();
        let mut scaled_down = false;
        for (name, size) in plan_old_scale_down(d, &new, &active) {
            let Some(rs) = active.iter().find(|rs| rs.metadata.name.as_deref() == Some(name.as_str())) else {
                continue;
            };
            scaled_down |= self.scale_in(d, rss, rs, size).await?;
        }
        if scaled_down {
            return Ok(self.rollout_status(d, rss, new_name.as_deref()));
        }
        if d.status.as_ref().is_some_and(|s| status::complete(d, s)) {
            let (_, olds) = parts(rss, new_name.as_deref());
            self.cleanup(d, &olds).await?;
        }
        Ok(self.rollout_status(d, rss, new_name.as_deref()))
    }

    /// Puts the rollout status into `d` and says when to look again for the progress deadline.
    pub(super) fn rollout_status(&self, d: &mut Deployment, rss: &[ReplicaSet], new_name: Option<&str>) -> Action {
        let (new, _) = parts(rss, new_name);
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        let (st, requeue) = status::rollout_status(d, &all, new.as_ref(), status::now());
        d.status = Some(st);
        match requeue {
            Some(after) => Action::RequeueAfter(after),
            None => Action::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::sync::tests::{deployment, rolling, rs};
    use serde_json::json;

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        assert_eq!(fenceposts(&rolling(10, json!("25%"), json!("25%"))), (3, 2));
        assert_eq!(fenceposts(&rolling(3, json!("25%"), json!("25%"))), (1, 0));
        assert_eq!(fenceposts(&rolling(4, json!(2), json!("50%"))), (2, 2));
        // Both zero would never move: one may be unavailable.
        assert_eq!(fenceposts(&rolling(3, json!(0), json!("10%"))), (0, 1));
        assert_eq!(max_unavailable(&rolling(2, json!(0), json!(5))), 2, "capped at replicas");
        assert_eq!(max_unavailable(&rolling(0, json!(0), json!(1))), 0);
        let recreate = deployment(
            json!({"spec": {"replicas": 3, "selector": {}, "template": {}, "strategy": {"type": "Recreate"}}}),
        );
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        assert_eq!(scaled_value(&IntOrString::String("x".into()), 10, true), None);
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let d = rolling(3, json!(1), json!(0));
        let old = rs("old", 3, 3, 0, json!({}));
        let new = rs("new", 0, 0, 10, json!({}));
        assert_eq!(new_rs_target(&d, &[&old, &new], &new), Some(1));
        let new1 = rs("new", 1, 0, 10, json!({}));
        assert_eq!(new_rs_target(&d, &[&old, &new1], &new1), None, "4 pods is the most");
        // The old one is scaled to 2 but still has 3 pods: wait for them to go.
        let mut shrinking = rs("old", 2, 2, 0, json!({}));
        shrinking.status.as_mut().unwrap().replicas = 3;
        assert_eq!(new_rs_target(&d, &[&shrinking, &new1], &new1), None);
        shrinking.status.as_mut().unwrap().replicas = 2;
        assert_eq!(new_rs_target(&d, &[&shrinking, &new1], &new1), Some(2));
        // Above the replica count (scaled down meanwhile): straight to it.
        let big = rs("new", 5, 5, 10, json!({}));
        assert_eq!(new_rs_target(&d, &[&big], &big), Some(3));
    }

    #[test]
    fn old_replica_sets_shrink_only_down_to_the_floor() {
        let d = rolling(3, json!(1), json!(0));
        let old = rs("old", 3, 3, 0, json!({}));
        // The new pod is not available yet: nothing may go.
        assert!(plan_old_scale_down(&d, &rs("new", 1, 0, 10, json!({})), std::slice::from_ref(&old)).is_empty());
        // It is: one old one may go.
        assert_eq!(
            plan_old_scale_down(&d, &rs("new", 1, 1, 10, json!({})), std::slice::from_ref(&old)),
            vec![("old".to_string(), 2)]
        );

        // Unhealthy old replicas go first, even with no room above the floor otherwise.
        let d = rolling(4, json!(1), json!(1));
        let sick = rs("old", 4, 2, 0, json!({}));
        assert_eq!(plan_old_scale_down(&d, &rs("new", 1, 0, 10, json!({})), &[sick]), vec![("old".to_string(), 3)]);

        // Several old ReplicaSets: the oldest goes first.
        let d = rolling(4, json!(0), json!(2));
        let a = rs("a", 2, 2, 0, json!({}));
        let b = rs("b", 2, 2, 5, json!({}));
        assert_eq!(plan_old_scale_down(&d, &rs("new", 0, 0, 10, json!({})), &[b, a]), vec![("a".to_string(), 0)]);
    }

    #[test]
    fn stale_availability_is_capped_by_size() {
        // Scaled to 2 but its status still says 3 available: 2 count, so the floor holds.
        let d = rolling(3, json!(1), json!(0));
        let old = rs("old", 2, 3, 0, json!({}));
        let new = rs("new", 2, 2, 10, json!({}));
        // 2 (capped) + 2 = 4 available, floor 3: one more may go, not two.
        assert_eq!(plan_old_scale_down(&d, &new, &[old]), vec![("old".to_string(), 1)]);
    }
}
