//! Job controller (batch/v1): runs a Job's pods to completion. It creates pods from
//! `spec.template` (at most `parallelism` at a time, until `completions` succeed; for a
//! work-queue Job without completions, until one succeeds and none runs), numbers them in
//! Indexed mode, stops on `backoffLimit` failures or `activeDeadlineSeconds`, honours
//! `suspend`, writes the status and conditions Kubernetes writes, and deletes the finished
//! Job after `ttlSecondsAfterFinished` (the garbage collector removes its pods).
//!
//! Succeeded and failed pods are counted from the pods the informer sees (no
//! `batch.kubernetes.io/job-tracking` finalizers); counts never go down, so pods removed
//! after they were counted do not undo progress.

use crate::expectations::Expectations;
use crate::informers::SharedInformers;
use crate::objects::{controller_key, controller_of, controller_reference, pod_active, pod_ready, pod_terminated};
use crate::{Action, Context, Controller, Error, Registration};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_client::{DeleteParams, Event, EventType, Store, WorkQueue};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Label (and selector key) with the uid of the Job that owns a pod.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Label with the name of the Job that owns a pod.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The pre-1.27 spelling of [`CONTROLLER_UID_LABEL`], still set for old selectors.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// The pre-1.27 spelling of [`JOB_NAME_LABEL`].
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// Annotation and label with an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The `spec.managedBy` value of Jobs this controller runs (also the default).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

/// Index of pods by the uid of the Job that controls them.
const PODS_BY_JOB: &str = "job-controller-uid";
/// `spec.backoffLimit` when unset.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// At most this many pods are created or deleted per reconcile.
const MAX_BATCH: usize = 500;

/// Runs Jobs.
pub struct JobController {
    ctx: Context,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
}

/// Queues a Job when it changes and when one of its pods changes.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let expectations = Arc::new(Expectations::default());
    let pods = informers.store::<Pod>();
    pods.add_index(PODS_BY_JOB, |p: &Pod| {
        controller_of(&p.metadata).filter(|r| r.kind == "Job").map(|r| r.uid.clone()).into_iter().collect()
    });
    let q = queue.clone();
    informers.on_event::<Job>(move |e| {
        let job = match e {
            Event::Added(j) | Event::Deleted(j) | Event::Updated { new: j, .. } => j,
        };
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        q.add(format!("{ns}/{}", job.metadata.name.as_deref().unwrap_or_default()));
    });
    let (q, exp) = (queue.clone(), expectations.clone());
    informers.on_event::<Pod>(move |e| match e {
        Event::Added(p) => {
            if let Some(key) = controller_key(&p.metadata, "Job") {
                exp.creation_observed(&key);
                q.add(key);
            }
        }
        Event::Updated { old, new } => {
            if let Some(key) = controller_key(&new.metadata, "Job") {
                if old.metadata.deletion_timestamp.is_none() && new.metadata.deletion_timestamp.is_some() {
                    exp.deletion_observed(&key);
                }
                q.add(key);
            }
            if let Some(key) = controller_key(&old.metadata, "Job")
                && controller_key(&new.metadata, "Job").as_ref() != Some(&key)
            {
                q.add(key);
            }
        }
        Event::Deleted(p) => {
            if let Some(key) = controller_key(&p.metadata, "Job") {
                // Counted here and (for graceful deletions) when the deletion started: seeing a
                // deletion twice only lets the Job be looked at a little earlier, never stalls it.
                exp.deletion_observed(&key);
                q.add(key);
            }
        }
    });
    let controller = JobController { ctx: ctx.clone(), jobs: informers.store(), pods, expectations };
    Registration::new(Arc::new(controller), queue)
}

/// The Job's finished condition (Complete or Failed with status True), if any.
pub fn finished_condition(job: &Job) -> Option<&JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// A pod's completion index, when it carries a valid one.
fn pod_index(pod: &Pod) -> Option<i32> {
    let annotations = pod.metadata.annotations.as_ref()?;
    annotations.get(COMPLETION_INDEX)?.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// Parses a `completedIndexes` string ("0-2,5").
fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
            set.extend(a..=b);
        }
    }
    set
}

/// Formats indexes as Kubernetes does: ascending, runs written "first-last".
fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in set {
        run = match run {
            Some((a, b)) if i == b + 1 => Some((a, i)),
            Some((a, b)) => {
                parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    parts.join(",")
}

/// Sorts pods so that the ones cheapest to lose come first: unscheduled, then pending,
/// then not ready, then the most recently created.
fn sort_for_deletion(pods: &mut [&Arc<Pod>]) {
    pods.sort_by_key(|p| {
        let scheduled = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| !n.is_empty());
        let phase_rank = match phase(p) {
            "Pending" | "" => 0,
            "Unknown" => 1,
            _ => 2,
        };
        let created = p.metadata.creation_timestamp.as_ref().map_or(i64::MAX, |t| t.0.as_second());
        (scheduled, phase_rank, pod_ready(p), std::cmp::Reverse(created))
    });
}

/// Sets condition `type_` to `status`, keeping its transition time when the status is unchanged.
fn set_condition(status: &mut JobStatus, type_: &str, value: &str, reason: &str, message: &str, now: Timestamp) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let fresh = JobCondition {
        type_: type_.into(),
        status: value.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == value => {
            if c.reason.as_deref() != Some(reason) || c.message.as_deref() != Some(message) {
                c.reason = fresh.reason;
                c.message = fresh.message;
                c.last_probe_time = fresh.last_probe_time;
            }
        }
        Some(c) => *c = fresh,
        None => conditions.push(fresh),
    }
}

fn condition_true(status: &JobStatus, type_: &str) -> bool {
    status.conditions.as_ref().is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The pod a Job runs (for `index` in Indexed mode).
fn pod_for(job: &Job, spec: &JobSpec, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mut meta = spec.template.metadata.clone().unwrap_or_default();
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (CONTROLLER_UID_LABEL, &uid),
        (JOB_NAME_LABEL, &name),
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (LEGACY_JOB_NAME_LABEL, &name),
    ] {
        labels.insert(k.into(), v.clone());
    }
    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    meta.generate_name = Some(format!("{name}-"));
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        meta.annotations.get_or_insert_with(BTreeMap::new).insert(COMPLETION_INDEX.into(), i.to_string());
        meta.generate_name = Some(format!("{name}-{i}-"));
        if pod_spec.hostname.as_deref().is_none_or(str::is_empty) {
            pod_spec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                }),
                ..Default::default()
            }),
        };
        let inits = pod_spec.init_containers.iter_mut().flatten();
        for c in pod_spec.containers.iter_mut().chain(inits) {
            let vars = c.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == env.name) {
                vars.push(env.clone());
            }
        }
    }
    meta.name = None;
    meta.namespace = job.metadata.namespace.clone();
    meta.owner_references = Some(vec![controller_reference(job)]);
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    Pod { metadata: meta, spec: Some(pod_spec), status: None }
}

/// Container restarts of pods still running, which count against `backoffLimit` when the
/// kubelet restarts failed containers in place (restartPolicy OnFailure).
fn restarts(pods: &[Arc<Pod>]) -> i32 {
    pods.iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten()))
        .map(|c| c.restart_count)
        .sum()
}

fn non_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// User-visible events, recorded once the status that reflects them has been written.
type Pending = Vec<(EventType, &'static str, String)>;

impl Controller for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(job) = self.jobs.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let Some(spec) = job.spec.as_ref() else { return Ok(Action::Done) };
        if job.metadata.deletion_timestamp.is_some() || spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
            return Ok(Action::Done);
        }
        let now = Timestamp::now();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods = self.pods.by_index(PODS_BY_JOB, &uid);
        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| pod_active(p)).collect();
        if let Some(done) = finished_condition(&job) {
            let at = done.last_transition_time.as_ref().map(|t| t.0);
            let (_, result) = self.delete_pods(&job, key, active).await;
            result?;
            return self.expire(&job, spec, at, now).await;
        }

        let old = job.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let mut events: Pending = Vec::new();
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let suspended = spec.suspend == Some(true);
        let terminating = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some() && !pod_terminated(p)).count();
        let failed_pods = pods.iter().filter(|p| phase(p) == "Failed").count();
        let failed = old.failed.unwrap_or(0).max(to_i32(failed_pods));
        let mut completed = BTreeSet::new();
        let succeeded = if indexed {
            let limit = spec.completions.unwrap_or(0);
            completed = parse_indexes(old.completed_indexes.as_deref().unwrap_or_default());
            completed.extend(pods.iter().filter(|p| phase(p) == "Succeeded").filter_map(|p| pod_index(p)));
            completed.retain(|i| *i < limit);
            to_i32(completed.len())
        } else {
            let n = pods.iter().filter(|p| phase(p) == "Succeeded").count();
            old.succeeded.unwrap_or(0).max(to_i32(n))
        };

        // Suspension: pods go away and the active deadline restarts on resume.
        let was_suspended = condition_true(&old, "Suspended");
        if suspended && !was_suspended {
            set_condition(&mut status, "Suspended", "True", "JobSuspended", "Job suspended", now);
            events.push((EventType::Normal, "Suspended", "Job suspended".into()));
        } else if !suspended && was_suspended {
            set_condition(&mut status, "Suspended", "False", "JobResumed", "Job resumed", now);
            status.start_time = Some(Time(now));
            events.push((EventType::Normal, "Resumed", "Job resumed".into()));
        }
        if !suspended && status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }

        let backoff_limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
        let on_failure = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure");
        let restarted = if on_failure { restarts(&pods) } else { 0 };
        let past_on_failure = on_failure && if backoff_limit == 0 { restarted > 0 } else { restarted >= backoff_limit };
        let deadline_left = match (spec.active_deadline_seconds, status.start_time.as_ref()) {
            (Some(secs), Some(start)) if !suspended => {
                let end = start.0.as_millisecond().saturating_add(secs.saturating_mul(1000));
                Some(end - now.as_millisecond())
            }
            _ => None,
        };
        let failure = if failed > backoff_limit || past_on_failure {
            Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        } else if deadline_left.is_some_and(|ms| ms <= 0) {
            Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
        } else {
            None
        };
        let complete = match spec.completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };

        let satisfied = self.expectations.satisfied(key);
        let mut active_count = to_i32(active.len());
        let mut error = None;
        if let Some((reason, message)) = failure {
            let (deleted, result) = self.delete_pods(&job, key, active.clone()).await;
            active_count -= deleted;
            error = result.err();
            if error.is_none() {
                // FailureTarget first (since 1.31), then Failed once the pods are being removed.
                set_condition(&mut status, "FailureTarget", "True", reason, message, now);
                set_condition(&mut status, "Failed", "True", reason, message, now);
                events.push((EventType::Warning, reason, message.into()));
            }
        } else if complete {
            let (deleted, result) = self.delete_pods(&job, key, active.clone()).await;
            active_count -= deleted;
            error = result.err();
            if error.is_none() {
                let message = "Reached expected number of succeeded pods";
                set_condition(&mut status, "SuccessCriteriaMet", "True", "CompletionsReached", message, now);
                set_condition(&mut status, "Complete", "True", "CompletionsReached", message, now);
                status.completion_time = Some(Time(now));
                events.push((EventType::Normal, "Completed", "Job completed".into()));
            }
        } else if satisfied {
            let (delta, result) = if suspended {
                let (deleted, result) = self.delete_pods(&job, key, active.clone()).await;
                (-deleted, result)
            } else {
                self.manage(&job, spec, key, &active, succeeded, &completed).await
            };
            active_count += delta;
            error = result.err();
        }

        status.active = non_zero(active_count.max(0));
        status.ready = Some(to_i32(active.iter().filter(|p| pod_ready(p)).count()));
        status.terminating = Some(to_i32(terminating));
        status.succeeded = non_zero(succeeded);
        status.failed = non_zero(failed);
        if indexed {
            status.completed_indexes = Some(format_indexes(&completed));
        }
        if status != old {
            let mut updated = (*job).clone();
            updated.status = Some(status.clone());
            let ns = job.metadata.namespace.as_deref().unwrap_or_default();
            self.ctx.client.api::<Job>(Some(ns)).update_status(&updated).await?;
            for (t, reason, message) in events {
                self.ctx.recorder.record(&*job, t, reason, &message);
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        match deadline_left {
            Some(ms) if ms > 0 && failure.is_none() && !complete => {
                Ok(Action::RequeueAfter(Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
            }
            _ => Ok(Action::Done),
        }
    }
}

impl JobController {
    /// Creates or deletes pods so that the right number run; returns the change in active
    /// pods and the first error.
    async fn manage(
        &self,
        job: &Job,
        spec: &JobSpec,
        key: &str,
        active: &[&Arc<Pod>],
        succeeded: i32,
        completed: &BTreeSet<i32>,
    ) -> (i32, Result<(), Error>) {
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let want = match spec.completions {
            _ if parallelism == 0 => 0,
            // A work queue: once one pod succeeded, no new ones start; the rest finish.
            None if succeeded > 0 => to_i32(active.len()),
            None => parallelism,
            Some(c) => (c - succeeded).clamp(0, parallelism),
        };
        if spec.completion_mode.as_deref() != Some("Indexed") {
            let have = to_i32(active.len());
            if have > want {
                let mut doomed = active.to_vec();
                sort_for_deletion(&mut doomed);
                doomed.truncate(usize::try_from(have - want).unwrap_or(0));
                let (deleted, result) = self.delete_pods(job, key, doomed).await;
                return (-deleted, result);
            }
            let missing = usize::try_from(want - have).unwrap_or(0).min(MAX_BATCH);
            return self.create_pods(job, spec, key, vec![None; missing]).await;
        }
        // Indexed: one active pod per index still to complete.
        let completions = spec.completions.unwrap_or(0);
        let mut by_index: BTreeMap<i32, Vec<&Arc<Pod>>> = BTreeMap::new();
        let mut doomed = Vec::new();
        for p in active {
            match pod_index(p) {
                Some(i) if i < completions && !completed.contains(&i) => by_index.entry(i).or_default().push(p),
                _ => doomed.push(*p),
            }
        }
        for pods in by_index.values_mut() {
            // Keep the most advanced pod of an index; the duplicates go.
            sort_for_deletion(pods);
            let keep = pods.len().saturating_sub(1);
            doomed.extend(pods.drain(..keep));
        }
        let mut running: Vec<i32> = by_index.iter().filter(|(_, v)| !v.is_empty()).map(|(i, _)| *i).collect();
        let excess = running.len().saturating_sub(usize::try_from(want).unwrap_or(0));
        for i in running.split_off(running.len() - excess) {
            doomed.extend(by_index.get(&i).into_iter().flatten().copied());
        }
        if !doomed.is_empty() {
            let (deleted, result) = self.delete_pods(job, key, doomed).await;
            return (-deleted, result);
        }
        let room = usize::try_from(want).unwrap_or(0).saturating_sub(running.len()).min(MAX_BATCH);
        let indexes: Vec<Option<i32>> = (0..completions)
            .filter(|i| !completed.contains(i) && !by_index.contains_key(i))
            .take(room)
            .map(Some)
            .collect();
        self.create_pods(job, spec, key, indexes).await
    }

    /// Creates one pod per entry, in batches of 1, 2, 4, ... that stop at the first failure
    /// (a quota or admission error then costs one request, not hundreds).
    async fn create_pods(
        &self,
        job: &Job,
        spec: &JobSpec,
        key: &str,
        indexes: Vec<Option<i32>>,
    ) -> (i32, Result<(), Error>) {
        if indexes.is_empty() {
            return (0, Ok(()));
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api = self.ctx.client.api::<Pod>(Some(ns));
        self.expectations.expect(key, to_i32(indexes.len()).into(), 0);
        let (mut created, mut first_error, mut next, mut batch) = (0, None, 0, 1);
        while next < indexes.len() {
            let chunk = &indexes[next..(next + batch).min(indexes.len())];
            next += chunk.len();
            let pods: Vec<Pod> = chunk.iter().map(|i| pod_for(job, spec, *i)).collect();
            let results = futures::future::join_all(pods.iter().map(|p| api.create(p))).await;
            for r in results {
                match r {
                    Ok(pod) => {
                        created += 1;
                        let name = pod.metadata.name.unwrap_or_default();
                        self.ctx.recorder.record(
                            job,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        );
                    }
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        // A terminating namespace refuses every create; that is no news.
                        if e.code() != Some(403) {
                            self.ctx.recorder.record(
                                job,
                                EventType::Warning,
                                "FailedCreate",
                                &format!("Error creating: {e}"),
                            );
                        }
                        first_error.get_or_insert(Error::from(e));
                    }
                }
            }
            if first_error.is_some() {
                for _ in next..indexes.len() {
                    self.expectations.creation_observed(key);
                }
                break;
            }
            batch *= 2;
        }
        tracing::debug!(job = key, created, "created pods");
        (created, first_error.map_or(Ok(()), Err))
    }

    /// Deletes these pods; returns how many went and the first error.
    async fn delete_pods(&self, job: &Job, key: &str, pods: Vec<&Arc<Pod>>) -> (i32, Result<(), Error>) {
        if pods.is_empty() {
            return (0, Ok(()));
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api = self.ctx.client.api::<Pod>(Some(ns));
        self.expectations.expect(key, 0, to_i32(pods.len().min(MAX_BATCH)).into());
        let deletes = pods.iter().take(MAX_BATCH).map(|p| {
            let api = api.clone();
            let params = DeleteParams { precondition_uid: p.metadata.uid.clone(), ..Default::default() };
            let name = p.metadata.name.clone().unwrap_or_default();
            async move { (api.delete(&name, &params).await, name) }
        });
        let (mut deleted, mut first_error) = (0, None);
        for (r, name) in futures::future::join_all(deletes).await {
            match r {
                Ok(()) => {
                    deleted += 1;
                    self.ctx.recorder.record(
                        job,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    );
                }
                Err(e) if e.is_not_found() || e.is_conflict() => {
                    self.expectations.deletion_observed(key);
                    deleted += 1;
                }
                Err(e) => {
                    self.expectations.deletion_observed(key);
                    self.ctx.recorder.record(job, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"));
                    first_error.get_or_insert(Error::from(e));
                }
            }
        }
        tracing::debug!(job = key, deleted, "deleted pods");
        (deleted, first_error.map_or(Ok(()), Err))
    }

    /// ttlSecondsAfterFinished: deletes a finished Job once its time is up.
    async fn expire(
        &self,
        job: &Job,
        spec: &JobSpec,
        finished: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Action, Error> {
        let (Some(ttl), Some(finished)) = (spec.ttl_seconds_after_finished, finished) else { return Ok(Action::Done) };
        let expires = finished.as_millisecond().saturating_add(i64::from(ttl) * 1000);
        let left = expires - now.as_millisecond();
        if left > 0 {
            return Ok(Action::RequeueAfter(Duration::from_millis(u64::try_from(left).unwrap_or(0))));
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        // The preconditions make sure the Job we judged (its TTL unchanged) is the one deleted.
        let params = DeleteParams {
            propagation_policy: Some("Background".into()),
            precondition_uid: job.metadata.uid.clone(),
            precondition_resource_version: job.metadata.resource_version.clone(),
            ..Default::default()
        };
        match self.ctx.client.api::<Job>(Some(ns)).delete(name, &params).await {
            Ok(()) => tracing::info!(namespace = ns, job = name, ttl, "deleted finished job after its TTL"),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip() {
        let set = parse_indexes("0-2,5,7-8");
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![0, 1, 2, 5, 7, 8]);
        assert_eq!(format_indexes(&set), "0-2,5,7-8");
        assert_eq!(format_indexes(&BTreeSet::from([1, 2])), "1-2");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn pods_carry_job_labels_and_indexes() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let spec = job.spec.as_ref().unwrap();
        let pod = pod_for(&job, spec, None);
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
        assert_eq!(labels.get(CONTROLLER_UID_LABEL).map(String::as_str), Some("u1"));
        assert_eq!(labels.get(LEGACY_JOB_NAME_LABEL).map(String::as_str), Some("pi"));
        assert_eq!(labels.get("app").map(String::as_str), Some("pi"));
        assert_eq!(controller_key(&pod.metadata, "Job").as_deref(), Some("ns/pi"));
        let pod = pod_for(&job, spec, Some(3));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(pod_index(&pod), Some(3));
        let pod_spec = pod.spec.unwrap();
        assert_eq!(pod_spec.hostname.as_deref(), Some("pi-3"));
        assert!(pod_spec.containers[0].env.as_ref().unwrap().iter().any(|e| e.name == "JOB_COMPLETION_INDEX"));
    }
}
