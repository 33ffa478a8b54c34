//! Disruption controller: keeps every PodDisruptionBudget's status true, so that the eviction
//! subresource can decide from it alone whether a pod may go.
//!
//! For each budget it counts the pods its selector matches: `expectedPods` (the matching pods,
//! or, when the budget is a percentage or a maxUnavailable, the summed `spec.replicas` of the
//! pods' controllers: Deployment, ReplicaSet, StatefulSet, ReplicationController),
//! `currentHealthy` (Ready pods that are not being deleted and not recently evicted),
//! `desiredHealthy` (from minAvailable or maxUnavailable, percentages rounded up), and
//! `disruptionsAllowed = max(0, currentHealthy - desiredHealthy)` (0 while nothing is
//! expected). `status.disruptedPods`, where evictions record the pods they let go, is pruned
//! of pods that are gone, being deleted, or still there two minutes on. A budget that cannot
//! be computed allows no disruption (condition `DisruptionAllowed=False`, reason SyncFailed).
//!
//! It also clears a pod's stale `DisruptionTarget` condition: one an eviction set two minutes
//! ago on a pod that was then not deleted after all.

use crate::informers::SharedInformers;
use crate::objects::{Selector, controller_of, pod_ready};
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{Event, EventType, PatchType, Store, WorkQueue, object_key};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long an evicted pod may stay before the budget counts it again (Kubernetes'
/// DeletionTimeout), and how long a pod's DisruptionTarget condition may stand without the
/// pod being deleted.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// The condition type on budgets.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// The condition type an eviction sets on the pod it deletes.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
/// Prefix of the queue keys of pods whose DisruptionTarget condition may be stale (namespaces
/// cannot contain ':', so these never collide with budget keys).
const POD_KEY: &str = "pod:";

/// Computes the status of PodDisruptionBudgets.
pub struct DisruptionController {
    ctx: Context,
    budgets: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    replica_sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    replication_controllers: Store<ReplicationController>,
}

/// Budgets in `pod`'s namespace whose selector matches it.
fn budgets_of(budgets: &Store<PodDisruptionBudget>, pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    budgets
        .by_index(NAMESPACE_INDEX, ns)
        .into_iter()
        .filter(|b| selector_of(b).matches(pod.metadata.labels.as_ref()))
        .map(|b| object_key(&b.metadata))
        .collect()
}

/// A budget's selector: none selects nothing, an empty one every pod of the namespace (policy/v1).
fn selector_of(pdb: &PodDisruptionBudget) -> Selector {
    Selector::new(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

/// Whether the pod carries a DisruptionTarget=True condition that may go stale.
fn may_have_stale_target(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && disruption_target(pod).is_some_and(|c| c.status == "True")
}

fn disruption_target(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == DISRUPTION_TARGET)
}

/// Queues the budgets of every pod change (both label sets on a relabel), the pod itself when
/// its DisruptionTarget condition may need clearing later, and every budget of a namespace
/// where a controller's scale changed.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let budgets: Store<PodDisruptionBudget> = informers.store();

    let q = queue.clone();
    informers.on_event::<PodDisruptionBudget>(move |e| {
        let (Event::Added(b) | Event::Updated { new: b, .. } | Event::Deleted(b)) = e;
        q.add(object_key(&b.metadata));
    });

    let (q, b) = (queue.clone(), budgets.clone());
    informers.on_event::<Pod>(move |e| {
        let mut keys = Vec::new();
        match e {
            Event::Added(pod) | Event::Deleted(pod) => keys.extend(budgets_of(&b, pod)),
            Event::Updated { old, new } => {
                keys.extend(budgets_of(&b, new));
                if old.metadata.labels != new.metadata.labels {
                    keys.extend(budgets_of(&b, old));
                }
            }
        }
        if let Event::Added(pod) | Event::Updated { new: pod, .. } = e
            && may_have_stale_target(pod)
        {
            keys.push(format!("{POD_KEY}{}", object_key(&pod.metadata)));
        }
        keys.into_iter().for_each(|k| q.add(k));
    });

    fn on_scale<K: crate::informers::Object>(
        informers: &SharedInformers,
        queue: &WorkQueue<String>,
        budgets: &Store<PodDisruptionBudget>,
        replicas: fn(&K) -> Option<i32>,
    ) {
        let (q, b) = (queue.clone(), budgets.clone());
        informers.on_event::<K>(move |e| {
            let changed = match e {
                Event::Updated { old, new } => replicas(old) != replicas(new),
                Event::Added(_) | Event::Deleted(_) => true,
            };
            let (Event::Added(o) | Event::Updated { new: o, .. } | Event::Deleted(o)) = e;
            if changed {
                let ns = o.metadata().namespace.as_deref().unwrap_or_default();
                b.by_index(NAMESPACE_INDEX, ns).iter().for_each(|pdb| q.add(object_key(&pdb.metadata)));
            }
        });
    }
    on_scale::<ReplicaSet>(informers, &queue, &budgets, |o| o.spec.as_ref().and_then(|s| s.replicas));
    on_scale::<Deployment>(informers, &queue, &budgets, |o| o.spec.as_ref().and_then(|s| s.replicas));
    on_scale::<StatefulSet>(informers, &queue, &budgets, |o| o.spec.as_ref().and_then(|s| s.replicas));
    on_scale::<ReplicationController>(informers, &queue, &budgets, |o| o.spec.as_ref().and_then(|s| s.replicas));

    let controller = DisruptionController {
        ctx: ctx.clone(),
        budgets,
        pods: informers.store(),
        replica_sets: informers.store(),
        deployments: informers.store(),
        stateful_sets: informers.store(),
        replication_controllers: informers.store(),
    };
    Registration::new(Arc::new(controller), queue)
}

/// Kubernetes' GetScaledValueFromIntOrPercent with rounding up: a count as it is, "N%" of
/// `total` rounded up.
pub fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = (percent * i64::from(total) + 99).div_euclid(100);
            i32::try_from(scaled)
                .map_err(|_| format!("invalid value for IntOrString: {s:?} of {total} is out of range"))
        }
    }
}

/// A budget's `expectedPods` and `desiredHealthy`. `matching` is the number of pods the
/// selector matches; `scale` sums the pods' controllers' replicas, asked for only when the
/// budget needs it (a percentage, or maxUnavailable).
pub fn expected_and_desired(
    spec: &PodDisruptionBudgetSpec,
    matching: i32,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    if let Some(max_unavailable) = &spec.max_unavailable {
        let expected = scale()?;
        let desired = (expected - scaled_value(max_unavailable, expected)?).max(0);
        return Ok((expected, desired));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((matching, *n)),
        Some(percent @ IntOrString::String(_)) => {
            let expected = scale()?;
            Ok((expected, scaled_value(percent, expected)?))
        }
        None => Ok((0, 0)),
    }
}

/// `currentHealthy - desiredHealthy`, but never negative, and 0 while no pod is expected (a
/// budget whose first pods just appeared is safe until it has been computed).
pub fn disruptions_allowed(current_healthy: i32, desired_healthy: i32, expected: i32) -> i32 {
    if expected <= 0 { 0 } else { (current_healthy - desired_healthy).max(0) }
}

/// The `disruptedPods` entries still standing at `now` (the pod exists, is not being deleted,
/// and was evicted less than [`DELETION_TIMEOUT`] ago), the names of the pods whose entries
/// timed out, and when the earliest standing entry will.
pub fn prune_disrupted(
    pods: &[Arc<Pod>],
    disrupted: Option<&BTreeMap<String, Time>>,
    now: jiff::Timestamp,
) -> (BTreeMap<String, Time>, Vec<String>, Option<jiff::Timestamp>) {
    let (mut kept, mut expired, mut recheck) = (BTreeMap::new(), Vec::new(), None::<jiff::Timestamp>);
    let Some(disrupted) = disrupted else { return (kept, expired, recheck) };
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(when) = disrupted.get(name) else { continue };
        let deadline = when.0.saturating_add(timeout).unwrap_or(when.0);
        if deadline < now {
            expired.push(name.to_string());
        } else {
            recheck = Some(recheck.map_or(deadline, |r| r.min(deadline)));
            kept.insert(name.to_string(), when.clone());
        }
    }
    (kept, expired, recheck)
}

/// Ready pods that are neither being deleted nor standing in `disrupted`.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>) -> i32 {
    let healthy = pods.iter().filter(|p| {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        p.metadata.deletion_timestamp.is_none() && !disrupted.contains_key(name) && pod_ready(p)
    });
    i32::try_from(healthy.count()).unwrap_or(i32::MAX)
}

/// Sets a budget condition (metav1.Condition semantics: the transition time moves only when
/// the status does).
fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    value: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) {
    let observed_generation = status.observed_generation;
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(c) => {
            if c.status != value {
                c.status = value.into();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation,
        }),
    }
}

/// The DisruptionAllowed condition as `disruptionsAllowed` implies it.
pub fn set_disruption_allowed(status: &mut PodDisruptionBudgetStatus, now: jiff::Timestamp) {
    if status.disruptions_allowed > 0 {
        set_condition(status, "True", "SufficientPods", "", now);
    } else {
        set_condition(status, "False", "InsufficientPods", "", now);
    }
}

/// Whether the condition already says what the status and generation imply.
fn condition_up_to_date(status: &PodDisruptionBudgetStatus, generation: Option<i64>) -> bool {
    let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == DISRUPTION_ALLOWED) else { return false };
    if status.observed_generation != generation || c.observed_generation != generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == "SufficientPods"
    } else {
        c.status == "False" && c.reason == "InsufficientPods"
    }
}

/// What one sync found.
struct Computed {
    status: PodDisruptionBudgetStatus,
    recheck: Option<jiff::Timestamp>,
    unmanaged: Vec<String>,
    expired: Vec<String>,
    no_pods: bool,
}

impl DisruptionController {
    /// The replicas of the workload controlling pods through `r`, keyed by its uid; None when
    /// `r` is not a workload this controller knows (or not the cached object with that uid).
    fn controller_scale(&self, namespace: &str, r: &OwnerReference) -> Option<(String, i32)> {
        let key = format!("{namespace}/{}", r.name);
        let group = r.api_version.split_once('/').map_or("", |(g, _)| g);
        let uid_matches = |meta: &ObjectMeta| meta.uid.as_deref() == Some(r.uid.as_str());
        match (group, r.kind.as_str()) {
            ("", "ReplicationController") => {
                let rc = self.replication_controllers.get(&key).filter(|o| uid_matches(&o.metadata))?;
                Some((r.uid.clone(), rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)))
            }
            ("apps" | "extensions", "ReplicaSet") => {
                let rs = self.replica_sets.get(&key).filter(|o| uid_matches(&o.metadata))?;
                match controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    // A Deployment's ReplicaSets share its scale.
                    Some(d) => {
                        let deployment = self
                            .deployments
                            .get(&format!("{namespace}/{}", d.name))
                            .filter(|o| o.metadata.uid.as_deref() == Some(d.uid.as_str()))?;
                        Some((d.uid.clone(), deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)))
                    }
                    None => Some((r.uid.clone(), rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))),
                }
            }
            ("apps", "StatefulSet") => {
                let sts = self.stateful_sets.get(&key).filter(|o| uid_matches(&o.metadata))?;
                Some((r.uid.clone(), sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)))
            }
            _ => None,
        }
    }

    /// The summed scale of the pods' controllers (each counted once), and the pods without
    /// a controller; an error when a pod's controller is not a known workload.
    fn expected_scale(&self, namespace: &str, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>), String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let Some(r) = controller_of(&pod.metadata) else {
                unmanaged.push(name.to_string());
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            let (uid, scale) =
                self.controller_scale(namespace, r).ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
            scales.insert(uid, scale);
        }
        Ok((scales.values().sum(), unmanaged))
    }

    /// The status `pdb` should have now.
    fn compute(&self, pdb: &PodDisruptionBudget, now: jiff::Timestamp) -> Result<Computed, String> {
        let namespace = pdb.metadata.namespace.as_deref().unwrap_or_default();
        let selector = selector_of(pdb);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .by_index(NAMESPACE_INDEX, namespace)
            .into_iter()
            .filter(|p| selector.matches(p.metadata.labels.as_ref()))
            .collect();
        let spec = pdb.spec.clone().unwrap_or_default();
        let matching = i32::try_from(pods.len()).unwrap_or(i32::MAX);
        let mut unmanaged = Vec::new();
        let (expected, desired) = expected_and_desired(&spec, matching, || {
            let (scale, without) = self.expected_scale(namespace, &pods)?;
            unmanaged = without;
            Ok(scale)
        })?;
        let old = pdb.status.clone().unwrap_or_default();
        let (disrupted, expired, recheck) = prune_disrupted(&pods, old.disrupted_pods.as_ref(), now);
        let current = count_healthy(&pods, &disrupted);
        let mut status = PodDisruptionBudgetStatus {
            current_healthy: current,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: disruptions_allowed(current, desired, expected),
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            observed_generation: pdb.metadata.generation,
            conditions: old.conditions.clone(),
        };
        if !condition_up_to_date(&status, pdb.metadata.generation) {
            set_disruption_allowed(&mut status, now);
        }
        Ok(Computed { status, recheck, unmanaged, expired, no_pods: pods.is_empty() })
    }

    /// Writes `status` unless the budget already has it.
    async fn write_status(&self, pdb: &PodDisruptionBudget, status: PodDisruptionBudgetStatus) -> Result<bool, Error> {
        let old = pdb.status.clone().unwrap_or_default();
        let same_disrupted =
            old.disrupted_pods.unwrap_or_default() == status.disrupted_pods.clone().unwrap_or_default();
        if old.current_healthy == status.current_healthy
            && old.desired_healthy == status.desired_healthy
            && old.expected_pods == status.expected_pods
            && old.disruptions_allowed == status.disruptions_allowed
            && same_disrupted
            && old.observed_generation == status.observed_generation
            && old.conditions == status.conditions
        {
            return Ok(false);
        }
        let namespace = pdb.metadata.namespace.as_deref().unwrap_or_default();
        let mut new = pdb.clone();
        new.status = Some(status);
        self.ctx.client.api::<PodDisruptionBudget>(Some(namespace)).update_status(&new).await?;
        Ok(true)
    }

    /// Computes and writes one budget's status.
    async fn sync_budget(&self, key: &str) -> Result<Action, Error> {
        let Some(pdb) = self.budgets.get(key) else { return Ok(Action::Done) };
        let now = jiff::Timestamp::now();
        let computed = match self.compute(&pdb, now) {
            Ok(c) => c,
            Err(message) => return self.fail_safe(&pdb, &message, now).await,
        };
        let status = computed.status;
        let (allowed, current, desired, expected) =
            (status.disruptions_allowed, status.current_healthy, status.desired_healthy, status.expected_pods);
        if self.write_status(&pdb, status).await? {
            tracing::info!(pdb = key, allowed, current, desired, expected, "budget status updated");
            if computed.no_pods {
                self.ctx.recorder.record(&*pdb, EventType::Normal, "NoPods", "No matching pods found");
            }
            if !computed.unmanaged.is_empty() {
                let selector =
                    serde_json::to_string(&pdb.spec.as_ref().and_then(|s| s.selector.as_ref())).unwrap_or_default();
                let message = format!(
                    "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value."
                );
                self.ctx.recorder.record(&*pdb, EventType::Warning, "UnmanagedPods", &message);
            }
            let namespace = pdb.metadata.namespace.as_deref().unwrap_or_default();
            for name in &computed.expired {
                if let Some(pod) = self.pods.get(&format!("{namespace}/{name}")) {
                    let message = format!("Pod was expected by PDB {key} to be deleted but it wasn't");
                    self.ctx.recorder.record(&*pod, EventType::Warning, "NotDeleted", &message);
                }
            }
        }
        // Look again when the first recorded eviction times out.
        Ok(match computed.recheck {
            Some(at) => Action::RequeueAfter(Duration::try_from(at.duration_since(now)).unwrap_or_default()),
            None => Action::Done,
        })
    }

    /// A budget that cannot be computed allows no disruption; the error is retried with back-off.
    async fn fail_safe(&self, pdb: &PodDisruptionBudget, message: &str, now: jiff::Timestamp) -> Result<Action, Error> {
        let key = object_key(&pdb.metadata);
        tracing::warn!(pdb = %key, error = message, "cannot compute the budget; allowing no disruption");
        let event = format!("Failed to calculate the number of expected pods: {message}");
        self.ctx.recorder.record(pdb, EventType::Warning, "CalculateExpectedPodCountFailed", &event);
        let mut status = pdb.status.clone().unwrap_or_default();
        status.disruptions_allowed = 0;
        set_condition(&mut status, "False", "SyncFailed", message, now);
        self.write_status(pdb, status).await?;
        Err(Error::Invalid(format!("PodDisruptionBudget {key}: {message}")))
    }

    /// Clears a pod's DisruptionTarget condition when an eviction set it long ago and the pod
    /// was never deleted.
    async fn sync_pod(&self, key: &str) -> Result<Action, Error> {
        let Some(pod) = self.pods.get(key) else { return Ok(Action::Done) };
        let terminal = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
        let Some(target) = disruption_target(&pod).filter(|c| c.status == "True") else { return Ok(Action::Done) };
        // A kubelet's own disruption marks are not stale: the pod may take long to terminate.
        if pod.metadata.deletion_timestamp.is_some()
            || terminal
            || target.reason.as_deref() == Some("TerminationByKubelet")
        {
            return Ok(Action::Done);
        }
        let now = jiff::Timestamp::now();
        let since = target.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
        let waited = Duration::try_from(now.duration_since(since)).unwrap_or_default();
        if waited < DELETION_TIMEOUT {
            return Ok(Action::RequeueAfter(DELETION_TIMEOUT - waited));
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": [{"type": DISRUPTION_TARGET, "status": "False", "lastTransitionTime": now.to_string()}]},
        });
        match self.ctx.client.api::<Pod>(Some(namespace)).patch_status(name, PatchType::StrategicMerge, &patch).await {
            Ok(_) => tracing::info!(pod = key, "cleared a stale DisruptionTarget condition"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::Done)
    }
}

impl Controller for DisruptionController {
    fn name(&self) -> &'static str {
        "disruption"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        match key.strip_prefix(POD_KEY) {
            Some(pod) => self.sync_pod(pod).await,
            None => self.sync_budget(key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn spec(v: serde_json::Value) -> PodDisruptionBudgetSpec {
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ready: bool, deleting: bool) -> Arc<Pod> {
        let mut v = json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn percentages_round_up() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&pct("50%"), 3), Ok(2));
        assert_eq!(scaled_value(&pct("10%"), 3), Ok(1));
        assert_eq!(scaled_value(&pct("34%"), 3), Ok(2));
        assert_eq!(scaled_value(&pct("33%"), 3), Ok(1));
        assert_eq!(scaled_value(&pct("100%"), 7), Ok(7));
        assert_eq!(scaled_value(&pct("0%"), 7), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(4), 7), Ok(4));
        assert!(scaled_value(&pct("half"), 7).is_err());
        assert!(scaled_value(&pct("50"), 7).is_err());
    }

    #[test]
    fn expected_and_desired_follow_the_kind_of_budget() {
        let no_scale = || -> Result<i32, String> { panic!("an integer minAvailable needs no scale") };
        // minAvailable as a count: the matching pods are what is expected.
        assert_eq!(expected_and_desired(&spec(json!({"minAvailable": 2})), 3, no_scale), Ok((3, 2)));
        // Percentages and maxUnavailable use the controllers' scale, rounding up.
        assert_eq!(expected_and_desired(&spec(json!({"minAvailable": "50%"})), 2, || Ok(5)), Ok((5, 3)));
        assert_eq!(expected_and_desired(&spec(json!({"maxUnavailable": "50%"})), 2, || Ok(5)), Ok((5, 2)));
        assert_eq!(expected_and_desired(&spec(json!({"maxUnavailable": 1})), 2, || Ok(4)), Ok((4, 3)));
        assert_eq!(expected_and_desired(&spec(json!({"maxUnavailable": 9})), 2, || Ok(4)), Ok((4, 0)));
        assert_eq!(expected_and_desired(&spec(json!({"maxUnavailable": 0})), 2, || Ok(4)), Ok((4, 4)));
        assert_eq!(expected_and_desired(&spec(json!({})), 2, no_scale), Ok((0, 0)));
        let err = expected_and_desired(&spec(json!({"maxUnavailable": 1})), 2, || Err("found no controllers".into()));
        assert_eq!(err, Err("found no controllers".to_string()));
    }

    #[test]
    fn allowed_disruptions_are_never_negative_and_need_expected_pods() {
        assert_eq!(disruptions_allowed(3, 2, 3), 1);
        assert_eq!(disruptions_allowed(1, 2, 3), 0);
        assert_eq!(disruptions_allowed(2, 0, 0), 0);
        assert_eq!(disruptions_allowed(2, 0, 2), 2);
    }

    #[test]
    fn disrupted_pods_are_pruned_and_not_counted_as_healthy() {
        let now = at("2025-06-01T12:00:00Z");
        let pods = vec![pod("a", true, false), pod("b", true, false), pod("c", true, false), pod("d", true, true)];
        let disrupted = BTreeMap::from([
            ("a".to_string(), Time(at("2025-06-01T11:59:30Z"))),
            ("b".to_string(), Time(at("2025-06-01T11:57:00Z"))),
            ("d".to_string(), Time(at("2025-06-01T11:59:30Z"))),
            ("gone".to_string(), Time(at("2025-06-01T11:59:30Z"))),
        ]);
        let (kept, expired, recheck) = prune_disrupted(&pods, Some(&disrupted), now);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(expired, ["b"]);
        assert_eq!(recheck, Some(at("2025-06-01T12:01:30Z")));
        // a is on its way out, d is being deleted: b and c are healthy.
        assert_eq!(count_healthy(&pods, &kept), 2);
        let unready = vec![pod("x", false, false)];
        assert_eq!(count_healthy(&unready, &BTreeMap::new()), 0);
        assert_eq!(prune_disrupted(&pods, None, now).0, BTreeMap::new());
    }

    #[test]
    fn the_condition_moves_only_when_its_status_does() {
        let t0 = at("2025-06-01T12:00:00Z");
        let t1 = at("2025-06-01T12:05:00Z");
        let mut status =
            PodDisruptionBudgetStatus { disruptions_allowed: 1, observed_generation: Some(2), ..Default::default() };
        assert!(!condition_up_to_date(&status, Some(2)));
        set_disruption_allowed(&mut status, t0);
        assert!(condition_up_to_date(&status, Some(2)));
        assert!(!condition_up_to_date(&status, Some(3)));
        let c = &status.conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.observed_generation), ("True", "SufficientPods", Some(2)));
        set_disruption_allowed(&mut status, t1);
        assert_eq!(status.conditions.as_ref().unwrap()[0].last_transition_time.0, t0);
        status.disruptions_allowed = 0;
        assert!(!condition_up_to_date(&status, Some(2)));
        set_disruption_allowed(&mut status, t1);
        let c = &status.conditions.as_ref().unwrap()[0];
        assert_eq!((c.status.as_str(), c.reason.as_str(), c.last_transition_time.0), ("False", "InsufficientPods", t1));
    }
}
