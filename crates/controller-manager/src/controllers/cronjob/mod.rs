//! CronJob controller (batch/v1): creates a Job from `spec.jobTemplate` at every time the
//! schedule names (in `spec.timeZone`, else the controller-manager's local zone), named
//! `<cronjob>-<scheduled minutes since the epoch>` so that one scheduled time can never yield
//! two Jobs. It honours `suspend`, `concurrencyPolicy`, `startingDeadlineSeconds` and missed
//! starts (only the most recent missed time runs), keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, prunes finished Jobs beyond the history
//! limits, and requeues itself for the next scheduled time instead of polling.

mod schedule;

pub use schedule::Schedule;

use crate::informers::SharedInformers;
use crate::objects::{controller_key, controller_of, controller_reference, is_controlled_by};
use crate::{Action, Context, Controller, Error, Registration};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rkube_client::{DeleteParams, Event, EventType, Store, WorkQueue};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Annotation on each created Job: its nominal start time (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Index of Jobs by the uid of the CronJob that controls them.
const JOBS_BY_CRONJOB: &str = "cronjob-controller-uid";

/// Beyond this many missed start times, Kubernetes warns TooManyMissedTimes.
const TOO_MANY_MISSED: i64 = 100;

/// Waking slightly after the scheduled time makes sure the time has passed when we look.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// Missed times walked one by one; beyond this the walk starts near `now` (approximation).
const EXACT_WALK_LIMIT: i64 = 1000;

/// Runs CronJobs.
pub struct CronJobController {
    ctx: Context,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
}

/// Queues a CronJob when it changes and when one of its Jobs changes.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let jobs = informers.store::<Job>();
    jobs.add_index(JOBS_BY_CRONJOB, |j: &Job| {
        controller_of(&j.metadata).filter(|r| r.kind == "CronJob").map(|r| r.uid.clone()).into_iter().collect()
    });
    let q = queue.clone();
    informers.on_event::<CronJob>(move |e| {
        if let Event::Added(cj) | Event::Updated { new: cj, .. } = e {
            q.add(key_of(&cj.metadata));
        }
    });
    let q = queue.clone();
    informers.on_event::<Job>(move |e| {
        let job = match e {
            Event::Added(j) | Event::Deleted(j) | Event::Updated { new: j, .. } => j,
        };
        if let Some(key) = controller_key(&job.metadata, "CronJob") {
            q.add(key);
        }
    });
    let controller = CronJobController { ctx: ctx.clone(), cronjobs: informers.store(), jobs };
    Registration::new(Arc::new(controller), queue)
}

fn key_of(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

impl Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(cj) = self.cronjobs.get(key) else { return Ok(Action::Done) };
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let children = self.jobs.by_index(JOBS_BY_CRONJOB, &uid);
        let old = cj.status.clone().unwrap_or_default();
        let mut status = old.clone();
        if !self.sync_active(&cj, &children, &mut status).await? {
            // Our cache of the CronJob trails its status; its update event brings us back.
            return Ok(Action::Done);
        }
        let mut outcome = Ok(None);
        if cj.metadata.deletion_timestamp.is_none() {
            outcome = self.run_schedule(&cj, &mut status, Timestamp::now()).await;
            self.clean_up(&cj, &children, &mut status).await;
        }
        if status != old {
            let mut updated = (*cj).clone();
            updated.status = Some(status);
            let ns = cj.metadata.namespace.as_deref().unwrap_or_default();
            self.ctx.client.api::<CronJob>(Some(ns)).update_status(&updated).await?;
        }
        Ok(outcome?.map_or(Action::Done, Action::RequeueAfter))
    }
}

/// The finished condition of a Job ("Complete" or "Failed"), if it has one.
fn finished(job: &Job) -> Option<&str> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find_map(|c| {
        ((c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True").then_some(c.type_.as_str())
    })
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The name of the Job for `scheduled`: minutes since the epoch make it deterministic.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 layout: "Z" for a zero offset, else "+hh:mm".
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// What the schedule says about the times between the last run and now.
#[derive(Debug, PartialEq)]
struct Missed {
    /// Where the search started (last schedule time, creation, or the starting deadline).
    earliest: Timestamp,
    /// The latest scheduled time at or before now, if any was missed.
    most_recent: Option<Timestamp>,
    /// Roughly how many scheduled times were missed.
    count: i64,
}

/// Finds the latest scheduled time in (`earliest`, `now`], as Kubernetes does: `earliest`
/// is the last schedule time (or creation), moved up to `now - startingDeadlineSeconds`.
fn missed_times(
    schedule: &Schedule,
    earliest: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
) -> Result<Missed, String> {
    let mut earliest = earliest;
    if let Some(d) = starting_deadline
        && let Ok(limit) = Timestamp::from_second(now.as_second().saturating_sub(d))
        && limit > earliest
    {
        earliest = limit;
    }
    let none = |count| Ok(Missed { earliest, most_recent: None, count });
    let Some(t1) = schedule.next_after(earliest).filter(|t1| *t1 <= now) else { return none(0) };
    let Some(t2) = schedule.next_after(t1).filter(|t2| *t2 <= now) else {
        return Ok(Missed { earliest, most_recent: Some(t1), count: 1 });
    };
    let period = t2.as_second() - t1.as_second();
    if period < 1 {
        return Err("time difference between two schedules is less than 1 second".into());
    }
    let count = (now.as_second() - t1.as_second()) / period + 1;
    // Walk from t1, or (for a long outage) from just before the approximate last time.
    let mut cursor = if count <= EXACT_WALK_LIMIT {
        Some(t1)
    } else {
        Timestamp::from_second(t1.as_second() + (count - 2) * period).ok().and_then(|t| schedule.next_after(t))
    };
    let mut most_recent = None;
    let mut steps = 0;
    while let Some(t) = cursor.filter(|t| *t <= now) {
        most_recent = Some(t);
        steps += 1;
        if steps > 10 * EXACT_WALK_LIMIT {
            break;
        }
        cursor = schedule.next_after(t);
    }
    Ok(Missed { earliest, most_recent, count })
}

/// How long until the next scheduled time after the last one that should have run.
fn requeue_delay(schedule: &Schedule, earliest: Timestamp, now: Timestamp) -> Option<Duration> {
    let base = match missed_times(schedule, earliest, None, now) {
        Ok(Missed { most_recent: Some(t), .. }) => t,
        Ok(Missed { earliest, count: 0, .. }) => earliest,
        _ => now,
    };
    let next = schedule.next_after(base)?;
    let wait = Duration::from_secs(u64::try_from(next.as_second() - now.as_second()).unwrap_or(0));
    Some(
        wait.saturating_sub(Duration::from_nanos(u64::try_from(now.subsec_nanosecond()).unwrap_or(0)))
            + NEXT_SCHEDULE_DELTA,
    )
}

impl CronJobController {
    fn event(&self, cj: &CronJob, warning: bool, reason: &str, message: &str) {
        let t = if warning { EventType::Warning } else { EventType::Normal };
        self.ctx.recorder.record(cj, t, reason, message);
    }

    /// Brings `status.active` in line with the Jobs that exist and records successes.
    /// Returns false when the cached CronJob is known to be stale.
    async fn sync_active(
        &self,
        cj: &CronJob,
        children: &[Arc<Job>],
        status: &mut CronJobStatus,
    ) -> Result<bool, Error> {
        let ns = cj.metadata.namespace.as_deref().unwrap_or_default();
        let mut active = status.active.take().unwrap_or_default();
        let mut uids = HashSet::new();
        for job in children {
            let uid = job.metadata.uid.clone().unwrap_or_default();
            let name = job.metadata.name.as_deref().unwrap_or_default();
            let listed = active.iter().any(|r| r.uid.as_deref() == Some(uid.as_str()));
            uids.insert(uid.clone());
            match finished(job) {
                None if !listed && job.metadata.deletion_timestamp.is_none() => {
                    // Usually our cache of the CronJob trails the status write that listed
                    // the Job; ask the API server before warning.
                    let fresh = self
                        .ctx
                        .client
                        .api::<CronJob>(Some(ns))
                        .get_opt(cj.metadata.name.as_deref().unwrap_or_default())
                        .await?;
                    let fresh_lists = fresh
                        .as_ref()
                        .and_then(|c| c.status.as_ref())
                        .and_then(|s| s.active.as_ref())
                        .is_some_and(|a| a.iter().any(|r| r.uid.as_deref() == Some(uid.as_str())));
                    if fresh_lists
                        && fresh.as_ref().and_then(|c| c.metadata.resource_version.as_ref())
                            != cj.metadata.resource_version.as_ref()
                    {
                        return Ok(false);
                    }
                    self.event(
                        cj,
                        true,
                        "UnexpectedJob",
                        &format!("Saw a job that the controller did not create or forgot: {name}"),
                    );
                }
                Some(condition) if listed => {
                    active.retain(|r| r.uid.as_deref() != Some(uid.as_str()));
                    self.event(
                        cj,
                        false,
                        "SawCompletedJob",
                        &format!("Saw completed job: {name}, condition: {condition}"),
                    );
                }
                _ => {}
            }
            if finished(job) == Some("Complete")
                && let Some(done) = job.status.as_ref().and_then(|s| s.completion_time.as_ref())
                && status.last_successful_time.as_ref().is_none_or(|last| done.0 > last.0)
            {
                status.last_successful_time = Some(done.clone());
            }
        }
        let mut kept = Vec::with_capacity(active.len());
        for r in active {
            if r.uid.as_ref().is_some_and(|u| uids.contains(u)) {
                kept.push(r);
                continue;
            }
            // Not in the cache: a slow watch, or really gone. Ask the API server.
            let name = r.name.clone().unwrap_or_default();
            let job_ns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
            match self.ctx.client.api::<Job>(Some(&job_ns)).get_opt(&name).await? {
                Some(j) if j.metadata.uid == r.uid => kept.push(r),
                _ => self.event(cj, false, "MissingJob", &format!("Active job went missing: {name}")),
            }
        }
        status.active = (!kept.is_empty()).then_some(kept);
        Ok(true)
    }

    /// Starts the Job for the latest due scheduled time, if any; returns when to look again.
    async fn run_schedule(
        &self,
        cj: &CronJob,
        status: &mut CronJobStatus,
        now: Timestamp,
    ) -> Result<Option<Duration>, Error> {
        let Some(spec) = cj.spec.as_ref() else { return Ok(None) };
        let cj_name = cj.metadata.name.as_deref().unwrap_or_default();
        let ns = cj.metadata.namespace.as_deref().unwrap_or_default();
        let (tz, annotation_tz) = match spec.time_zone.as_deref() {
            Some(name) => match TimeZone::get(name) {
                Ok(tz) => (tz.clone(), tz),
                Err(e) => {
                    self.event(cj, true, "UnknownTimeZone", &format!("invalid timeZone: {name:?}: {e}"));
                    return Ok(None);
                }
            },
            None => (TimeZone::system(), TimeZone::UTC),
        };
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let schedule = match Schedule::parse(&spec.schedule, tz) {
            Ok(s) => s,
            Err(e) => {
                self.event(
                    cj,
                    true,
                    "UnparseableSchedule",
                    &format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok(None);
            }
        };
        let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
        let earliest = |status: &CronJobStatus| status.last_schedule_time.as_ref().map_or(created, |t| t.0);
        let missed = match missed_times(&schedule, earliest(status), spec.starting_deadline_seconds, now) {
            Ok(m) => m,
            Err(e) => {
                self.event(cj, true, "InvalidSchedule", &format!("invalid schedule: {} : {e}", spec.schedule));
                return Ok(None);
            }
        };
        let Some(scheduled) = missed.most_recent else {
            return Ok(requeue_delay(&schedule, earliest(status), now));
        };
        if missed.count > TOO_MANY_MISSED {
            self.event(
                cj,
                true,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            );
            tracing::info!(cronjob = key_of(&cj.metadata), missed = missed.count, "too many missed start times");
        }
        if let Some(d) = spec.starting_deadline_seconds
            && scheduled.as_second().saturating_add(d) < now.as_second()
        {
            let at = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000");
            self.event(cj, true, "MissSchedule", &format!("Missed scheduled time to start a job: {at}"));
            return Ok(requeue_delay(&schedule, earliest(status), now));
        }
        let name = job_name(cj_name, scheduled);
        let active = status.active.clone().unwrap_or_default();
        if active.iter().any(|r| r.name.as_deref() == Some(name.as_str()))
            || status.last_schedule_time.as_ref().is_some_and(|t| t.0 == scheduled)
        {
            return Ok(requeue_delay(&schedule, earliest(status), now));
        }
        match spec.concurrency_policy.as_deref() {
            Some("Forbid") if !active.is_empty() => {
                self.event(
                    cj,
                    false,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid",
                );
                return Ok(requeue_delay(&schedule, earliest(status), now));
            }
            Some("Replace") => {
                for r in &active {
                    let job_name = r.name.clone().unwrap_or_default();
                    self.delete_job(cj, r.namespace.as_deref().unwrap_or(ns), &job_name, r.uid.clone()).await?;
                    if let Some(a) = status.active.as_mut() {
                        a.retain(|x| x.uid != r.uid);
                    }
                }
                if status.active.as_ref().is_some_and(Vec::is_empty) {
                    status.active = None;
                }
            }
            _ => {}
        }
        let template = spec.job_template.metadata.clone().unwrap_or_default();
        let mut annotations = template.annotations.unwrap_or_default();
        annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), rfc3339_in(scheduled, &annotation_tz));
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.to_string()),
                labels: template.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![controller_reference(cj)]),
                ..Default::default()
            },
            spec: spec.job_template.spec.clone(),
            status: None,
        };
        let jobs = self.ctx.client.api::<Job>(Some(ns));
        let created = match jobs.create(&job).await {
            Ok(created) => {
                tracing::info!(cronjob = key_of(&cj.metadata), job = name, "created job");
                self.event(cj, false, "SuccessfulCreate", &format!("Created job {name}"));
                created
            }
            Err(e) if e.is_already_exists() => {
                let Some(existing) = jobs.get_opt(&name).await? else { return Err(e.into()) };
                let uid = cj.metadata.uid.as_deref().unwrap_or_default();
                let listed = active.iter().any(|r| r.uid == existing.metadata.uid);
                if !is_controlled_by(&existing.metadata, uid) || listed {
                    return Ok(requeue_delay(&schedule, earliest(status), now));
                }
                existing
            }
            Err(e) => {
                if e.code() != Some(403) {
                    self.event(cj, true, "FailedCreate", &format!("Error creating job: {e}"));
                }
                return Err(e.into());
            }
        };
        status.active.get_or_insert_with(Vec::new).push(reference(&created));
        status.last_schedule_time = Some(Time(scheduled));
        Ok(requeue_delay(&schedule, earliest(status), now))
    }

    /// Deletes a Job (its pods follow through the garbage collector).
    async fn delete_job(&self, cj: &CronJob, ns: &str, name: &str, uid: Option<String>) -> Result<(), Error> {
        let params =
            DeleteParams { propagation_policy: Some("Background".into()), precondition_uid: uid, ..Default::default() };
        match self.ctx.client.api::<Job>(Some(ns)).delete(name, &params).await {
            Ok(()) => {
                self.event(cj, false, "SuccessfulDelete", &format!("Deleted job {name}"));
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => {
                self.event(cj, true, "FailedDelete", &format!("Deleted job: {e}"));
                Err(e.into())
            }
        }
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn clean_up(&self, cj: &CronJob, children: &[Arc<Job>], status: &mut CronJobStatus) {
        let Some(spec) = cj.spec.as_ref() else { return };
        let ns = cj.metadata.namespace.as_deref().unwrap_or_default();
        for (condition, limit) in
            [("Complete", spec.successful_jobs_history_limit), ("Failed", spec.failed_jobs_history_limit)]
        {
            let Some(limit) = limit else { continue };
            let mut done: Vec<&Arc<Job>> = children
                .iter()
                .filter(|j| j.metadata.deletion_timestamp.is_none() && finished(j) == Some(condition))
                .collect();
            let excess = done.len().saturating_sub(usize::try_from(limit).unwrap_or(0));
            if excess == 0 {
                continue;
            }
            // Oldest first by start time; Jobs that never started sort last, then by name.
            done.sort_by(|a, b| {
                let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
                match (start(a), start(b)) {
                    (Some(x), Some(y)) if x != y => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    _ => a.metadata.name.cmp(&b.metadata.name),
                }
            });
            for job in done.into_iter().take(excess) {
                let name = job.metadata.name.as_deref().unwrap_or_default();
                if let Err(e) = self.delete_job(cj, ns, name, job.metadata.uid.clone()).await {
                    tracing::warn!(cronjob = key_of(&cj.metadata), job = name, error = %e, "pruning failed");
                    continue;
                }
                if let Some(a) = status.active.as_mut() {
                    a.retain(|r| r.uid != job.metadata.uid);
                }
            }
        }
        if status.active.as_ref().is_some_and(Vec::is_empty) {
            status.active = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn missed_times_pick_the_most_recent() {
        let every_minute = Schedule::parse("* * * * *", TimeZone::UTC).unwrap();
        let m = missed_times(&every_minute, at("2026-01-01T00:00:30Z"), None, at("2026-01-01T00:00:50Z")).unwrap();
        assert_eq!(m.most_recent, None);
        let m = missed_times(&every_minute, at("2026-01-01T00:00:30Z"), None, at("2026-01-01T00:03:10Z")).unwrap();
        assert_eq!((m.most_recent, m.count), (Some(at("2026-01-01T00:03:00Z")), 3));
        // Years of downtime: many missed, still only the last runs.
        let m = missed_times(&every_minute, at("2020-01-01T00:00:00Z"), None, at("2026-01-01T00:03:10Z")).unwrap();
        assert_eq!(m.most_recent, Some(at("2026-01-01T00:03:00Z")));
        assert!(m.count > TOO_MANY_MISSED);
        // startingDeadlineSeconds moves the start of the search forward.
        let m = missed_times(&every_minute, at("2020-01-01T00:00:00Z"), Some(30), at("2026-01-01T00:03:10Z")).unwrap();
        assert_eq!((m.most_recent, m.count), (Some(at("2026-01-01T00:03:00Z")), 1));
        let m = missed_times(&every_minute, at("2020-01-01T00:00:00Z"), Some(5), at("2026-01-01T00:03:10Z")).unwrap();
        assert_eq!(m.most_recent, None);
    }

    #[test]
    fn requeue_waits_for_the_next_time() {
        let every_minute = Schedule::parse("* * * * *", TimeZone::UTC).unwrap();
        let d = requeue_delay(&every_minute, at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:45Z")).unwrap();
        assert_eq!(d, Duration::from_secs(15) + NEXT_SCHEDULE_DELTA);
        let hourly = Schedule::parse("@hourly", TimeZone::UTC).unwrap();
        let d = requeue_delay(&hourly, at("2026-01-01T00:00:00Z"), at("2026-01-01T00:30:00Z")).unwrap();
        assert_eq!(d, Duration::from_secs(1800) + NEXT_SCHEDULE_DELTA);
    }

    #[test]
    fn names_and_annotations() {
        assert_eq!(job_name("backup", at("2026-01-01T00:03:00Z")), "backup-29453763");
        assert_eq!(rfc3339_in(at("2026-01-01T00:03:00Z"), &TimeZone::UTC), "2026-01-01T00:03:00Z");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(rfc3339_in(at("2026-01-01T00:03:00Z"), &berlin), "2026-01-01T01:03:00+01:00");
    }
}
