//! A Deployment's status as Kubernetes reports it: replica counts summed over its
//! ReplicaSets, and the Available and Progressing conditions (reasons and messages as
//! Kubernetes words them, since `kubectl rollout status` and users read them), including the
//! progress deadline and pause / resume.

use super::{desired, is_paused, rolling, rs_actual, rs_available, rs_ready, rs_replicas};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// Condition: enough replicas are available.
pub(super) const AVAILABLE: &str = "Available";
/// Condition: the rollout moves (or is done, or stuck).
pub(super) const PROGRESSING: &str = "Progressing";
/// Condition: a ReplicaSet cannot create or delete pods.
pub(super) const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Available: at least replicas - maxUnavailable are available.
pub(super) const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available False: fewer than that.
pub(super) const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// Progressing: this sync created the new ReplicaSet.
pub(super) const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: the new ReplicaSet was found (first time progress is tracked).
pub(super) const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: the rollout made progress.
pub(super) const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing: the rollout is complete.
pub(super) const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing False: no progress within progressDeadlineSeconds.
pub(super) const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing Unknown: paused.
pub(super) const PAUSED: &str = "DeploymentPaused";
/// Progressing Unknown: resumed.
pub(super) const RESUMED: &str = "DeploymentResumed";
/// Progressing False (and a Warning event): the new ReplicaSet could not be created.
pub(super) const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

/// Now, to the second (what condition timestamps keep).
pub(super) fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// A condition stamped `now`.
pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of this type in a status.
fn get(status: &DeploymentStatus, type_: &str) -> Option<DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_).cloned()
}

/// The Deployment's condition of this type.
pub(super) fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    get(d.status.as_ref()?, type_)
}

/// Sets a condition as Kubernetes does: unchanged if status and reason are the same; the
/// transition time kept if only the reason changed.
fn set(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time;
        }
    }
    remove(status, &c.type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Sets a condition on the Deployment's status.
pub(super) fn set_condition(d: &mut Deployment, c: DeploymentCondition) {
    set(d.status.get_or_insert_with(Default::default), c);
}

/// Removes the condition of this type.
fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = status.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
    }
}

/// Whether progress is tracked (a deadline is set and is not "forever").
pub(super) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

/// 0 as absent, as Kubernetes' JSON omits zero counts.
fn nz(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// A status normalised for comparison (zero counts and no conditions spelt either way).
pub(super) fn comparable(status: &Option<DeploymentStatus>) -> DeploymentStatus {
    let mut s = status.clone().unwrap_or_default();
    for n in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *n == Some(0) {
            *n = None;
        }
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// Counts over `all` ReplicaSets (and `new` for updatedReplicas), the conditions carried over
/// from `d`, and Available set from availability against replicas - maxUnavailable.
pub(super) fn calculate_status(d: &Deployment, all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> DeploymentStatus {
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let previous = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nz(all.iter().map(|rs| rs_actual(rs)).sum()),
        updated_replicas: nz(new.map_or(0, rs_actual)),
        ready_replicas: nz(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: nz(available),
        unavailable_replicas: nz((total - available).max(0)),
        collision_count: previous.collision_count,
        conditions: previous.conditions,
        terminating_replicas: None,
    };
    let c = if available >= desired(d) - rolling::max_unavailable(d) {
        new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now())
    } else {
        new_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.", now())
    };
    set(&mut status, c);
    status
}

/// Every replica is updated and available, and the status is of the current generation.
pub(super) fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let n = desired(d);
    s.updated_replicas.unwrap_or(0) == n
        && s.replicas.unwrap_or(0) == n
        && s.available_replicas.unwrap_or(0) == n
        && s.observed_generation >= d.metadata.generation
}

/// Whether `new` shows progress against the Deployment's last status: more updated, ready
/// or available replicas, or fewer old ones.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// The progress deadline, if tracked.
fn deadline(d: &Deployment) -> Option<i64> {
    has_progress_deadline(d).then(|| i64::from(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(0)))
}

/// Whether the rollout made no progress for progressDeadlineSeconds since the Progressing
/// condition was last updated.
fn timed_out(d: &Deployment, s: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    let Some(deadline) = deadline(d) else { return false };
    let Some(c) = get(s, PROGRESSING) else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c.last_update_time.is_some_and(|t| t.0.as_second() + deadline < now.as_second()),
    }
}

/// The status after a rollout step: counts, Available, Progressing (complete, progressing or
/// timed out) and ReplicaFailure copied from the ReplicaSets; plus when to look again to
/// catch the deadline passing.
pub(super) fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let mut st = calculate_status(d, all, new);
    if !has_progress_deadline(d) {
        remove(&mut st, PROGRESSING);
    }
    let current = condition(d, PROGRESSING);
    let done_before = st.replicas == st.updated_replicas
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if has_progress_deadline(d) && !done_before {
        let subject = match new.and_then(|rs| rs.metadata.name.as_deref()) {
            Some(name) => format!("ReplicaSet \"{name}\""),
            None => format!("Deployment \"{}\"", d.metadata.name.as_deref().unwrap_or_default()),
        };
        if complete(d, &st) {
            let message = format!("{subject} has successfully progressed.");
            set(&mut st, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &message, now));
        } else if progressing(d, &st) {
            // Progress refreshes lastUpdateTime even with the same reason (that is what the
            // deadline counts from); the transition time stays while it is True.
            let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, &format!("{subject} is progressing."), now);
            if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                c.last_transition_time = cur.last_transition_time.clone();
            }
            remove(&mut st, PROGRESSING);
            set(&mut st, c);
        } else if timed_out(d, &st, now) {
            let message = format!("{subject} has timed out progressing.");
            set(&mut st, new_condition(PROGRESSING, "False", TIMED_OUT, &message, now));
        }
    }
    match replica_failure(all, new) {
        Some(c) => set(&mut st, c),
        None => remove(&mut st, REPLICA_FAILURE),
    }
    let requeue = match (deadline(d), get(&st, PROGRESSING)) {
        (Some(deadline), Some(c))
            if !complete(d, &st) && !matches!(c.reason.as_deref(), Some(TIMED_OUT | NEW_RS_AVAILABLE | PAUSED)) =>
        {
            let since = c.last_update_time.map_or(now.as_second(), |t| t.0.as_second());
            let left = (since + deadline - now.as_second()).max(0);
            Some(Duration::from_secs(left as u64 + 1))
        }
        _ => None,
    };
    (st, requeue)
}

/// The first ReplicaFailure condition of the new ReplicaSet, else of any, as a Deployment
/// condition.
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        let c = rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == REPLICA_FAILURE)?.clone();
        Some(DeploymentCondition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            message: c.message,
            last_update_time: c.last_transition_time.clone(),
            last_transition_time: c.last_transition_time,
        })
    };
    new.and_then(failure).or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// Marks a pause or a resume in the Progressing condition (unless it already timed out).
pub(super) fn check_paused_conditions(d: &mut Deployment, now: jiff::Timestamp) {
    if !has_progress_deadline(d) {
        return;
    }
    let reason = condition(d, PROGRESSING).and_then(|c| c.reason);
    if reason.as_deref() == Some(TIMED_OUT) {
        return;
    }
    let paused_noted = reason.as_deref() == Some(PAUSED);
    if is_paused(d) && !paused_noted {
        set_condition(d, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now));
    } else if !is_paused(d) && paused_noted {
        set_condition(d, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::deployment::sync::tests::{deployment, rs};
    use serde_json::json;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn web(extra: serde_json::Value) -> Deployment {
        let mut v = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3,
            "progressDeadlineSeconds": 10, "selector": {"matchLabels": {"app": "web"}}, "template": {},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                m.insert(k.clone(), val.clone());
            }
        }
        deployment(v)
    }

    fn reason(s: &DeploymentStatus, type_: &str) -> (String, String) {
        let c = get(s, type_).unwrap();
        (c.status, c.reason.unwrap())
    }

    #[test]
    fn counts_and_availability_sum_over_replica_sets() {
        let d = web(json!({}));
        let old = rs("web-a", 2, 2, 0, json!({}));
        let new = rs("web-b", 2, 1, 10, json!({}));
        let s = calculate_status(&d, &[&old, &new], Some(&new));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!((s.replicas, s.updated_replicas, s.ready_replicas), (Some(4), Some(2), Some(3)));
        assert_eq!((s.available_replicas, s.unavailable_replicas), (Some(3), Some(1)));
        assert_eq!(reason(&s, AVAILABLE), ("True".into(), MIN_AVAILABLE.into()));
        let s = calculate_status(&d, &[&new], Some(&new));
        assert_eq!(reason(&s, AVAILABLE), ("False".into(), MIN_UNAVAILABLE.into()));
        assert_eq!(
            get(&s, AVAILABLE).unwrap().message.as_deref(),
            Some("Deployment does not have minimum availability.")
        );
    }

    #[test]
    fn progressing_moves_to_complete_or_times_out() {
        let created = new_condition(PROGRESSING, "True", NEW_RS_CREATED, "Created new replica set \"web-b\"", at(0));
        let mut d = web(json!({}));
        let counts = (Some(3), Some(3));
        d.status = Some(DeploymentStatus {
            replicas: counts.0,
            updated_replicas: counts.1,
            conditions: Some(vec![created]),
            ..Default::default()
        });
        let new = rs("web-b", 3, 0, 0, json!({}));
        // Nothing ready, within the deadline: unchanged, look again when it passes.
        let (s, requeue) = rollout_status(&d, &[&new], Some(&new), at(5));
        assert_eq!(reason(&s, PROGRESSING).1, NEW_RS_CREATED);
        assert_eq!(requeue, Some(Duration::from_secs(6)));
        // Past it: timed out.
        let (s, requeue) = rollout_status(&d, &[&new], Some(&new), at(11));
        let c = get(&s, PROGRESSING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some(TIMED_OUT)));
        assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-b\" has timed out progressing."));
        assert_eq!(requeue, None);
        // Some progress: ReplicaSetUpdated, stamped now.
        let ready = rs("web-b", 3, 1, 0, json!({}));
        let (s, _) = rollout_status(&d, &[&ready], Some(&ready), at(11));
        let c = get(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.reason.as_deref(), c.message.as_deref()),
            (Some(RS_UPDATED), Some("ReplicaSet \"web-b\" is progressing."))
        );
        assert_eq!(c.last_update_time, Some(Time(at(11))));
        assert_eq!(c.last_transition_time, Some(Time(at(0))));
        // All available: complete.
        let done = rs("web-b", 3, 3, 0, json!({}));
        let (s, requeue) = rollout_status(&d, &[&done], Some(&done), at(12));
        let c = get(&s, PROGRESSING).unwrap();
        assert_eq!(c.message.as_deref(), Some("ReplicaSet \"web-b\" has successfully progressed."));
        assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(requeue, None);
    }

    #[test]
    fn pause_and_resume_are_noted() {
        let mut d = web(json!({}));
        d.spec.as_mut().unwrap().paused = Some(true);
        check_paused_conditions(&mut d, at(0));
        assert_eq!(condition(&d, PROGRESSING).unwrap().reason.as_deref(), Some(PAUSED));
        d.spec.as_mut().unwrap().paused = Some(false);
        check_paused_conditions(&mut d, at(1));
        let c = condition(&d, PROGRESSING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("Unknown", Some(RESUMED)));
        assert_eq!(c.message.as_deref(), Some("Deployment is resumed"));
    }

    #[test]
    fn zero_counts_compare_equal_to_absent_ones() {
        let a = DeploymentStatus { replicas: Some(0), conditions: Some(vec![]), ..Default::default() };
        assert_eq!(comparable(&Some(a)), comparable(&None));
    }
}
