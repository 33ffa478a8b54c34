//! The CronJob controller against a real API server. Waiting for real minute boundaries
//! would make tests slow, so each test creates its CronJob suspended, moves
//! `status.lastScheduleTime` two minutes back and resumes it: a missed start is then due at
//! once, exactly as after a controller outage.

mod common;

use common::Cluster;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Event;
use rkube_client::{ListParams, PatchType};
use serde_json::json;

const NS: &str = "default";
const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn template() -> serde_json::Value {
    json!({
        "metadata": {"labels": {"team": "ops"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    })
}

fn cronjob(name: &str, spec: serde_json::Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = template();
    serde_json::from_value(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("a valid CronJob")
}

/// A Job controlled by `cj`, as if the controller had created it.
fn child(cj: &CronJob, name: &str) -> Job {
    let mut job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": cj.metadata.name, "uid": cj.metadata.uid,
            "controller": true, "blockOwnerDeletion": true}]},
    }))
    .unwrap();
    job.spec = serde_json::from_value(template()["spec"].clone()).unwrap();
    job
}

fn minutes_ago(n: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second((now / 60 - n) * 60).unwrap().to_string()
}

/// Marks a Job finished ("Complete" or "Failed") as the Job controller would.
async fn finish(c: &Cluster, name: &str, condition: &str, started: &str, finished: &str) {
    let mut status = json!({"startTime": started, "conditions": [
        {"type": condition, "status": "True", "lastTransitionTime": finished}]});
    if condition == "Complete" {
        status["completionTime"] = json!(finished);
    }
    c.api::<Job>(Some(NS)).patch_status(name, PatchType::Merge, &json!({"status": status})).await.unwrap();
}

/// Clears `spec.suspend`: the tests create CronJobs suspended so that no minute boundary
/// passing before their status is arranged can start a Job early.
async fn resume(c: &Cluster, name: &str) {
    let patch = json!({"spec": {"suspend": false}});
    c.api::<CronJob>(Some(NS)).patch(name, PatchType::Merge, &patch).await.unwrap();
}

async fn children(c: &Cluster, cj: &CronJob) -> Vec<Job> {
    let jobs = c.api::<Job>(Some(NS)).list(&ListParams::default()).await.unwrap().items;
    jobs.into_iter()
        .filter(|j| j.metadata.owner_references.iter().flatten().any(|r| Some(&r.uid) == cj.metadata.uid.as_ref()))
        .collect()
}

async fn event_reasons(c: &Cluster, name: &str) -> Vec<String> {
    let params = ListParams::fields(&format!("involvedObject.name={name}"));
    let events = c.api::<Event>(Some(NS)).list(&params).await.expect("events listed").items;
    events.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_start_creates_the_job_at_once() {
    let c = Cluster::start("cronjob", &[]);
    let cjs = c.api::<CronJob>(Some(NS));
    let spec = json!({"schedule": "* * * * *", "timeZone": "Asia/Kolkata", "suspend": true});
    let cj = cjs.create(&cronjob("tick", spec)).await.unwrap();
    let last = minutes_ago(2);
    cjs.patch_status("tick", PatchType::Merge, &json!({"status": {"lastScheduleTime": last}})).await.unwrap();
    resume(&c, "tick").await;

    let job = c.eventually(20, "a job", || async { children(&c, &cj).await.into_iter().next() }).await;
    let stamp = job.metadata.annotations.as_ref().and_then(|a| a.get(SCHEDULED)).cloned().unwrap();
    // The annotation is in the CronJob's zone (India has no daylight saving).
    assert!(stamp.ends_with("+05:30"), "{stamp}");
    let scheduled: jiff::Timestamp = stamp.parse().unwrap();
    assert!(scheduled > last.parse().unwrap() && scheduled <= jiff::Timestamp::now());
    assert_eq!(scheduled.as_second() % 60, 0);
    assert_eq!(job.metadata.name, Some(format!("tick-{}", scheduled.as_second() / 60)));
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("CronJob", Some(true)));
    assert_eq!(job.metadata.labels.as_ref().and_then(|l| l.get("team")).map(String::as_str), Some("ops"));

    let status = c
        .eventually(20, "status lists the job", || async {
            let s = cjs.get("tick").await.unwrap().status?;
            s.active.as_ref().is_some_and(|a| a.iter().any(|r| r.uid == job.metadata.uid)).then_some(s)
        })
        .await;
    // A minute boundary may pass meanwhile (then a later Job may follow), never an earlier one.
    assert!(status.last_schedule_time.is_some_and(|t| t.0 >= scheduled));
    let earlier = format!("tick-{}", scheduled.as_second() / 60 - 1);
    let names: Vec<_> = children(&c, &cj).await.into_iter().filter_map(|j| j.metadata.name).collect();
    assert!(!names.contains(&earlier), "only the most recent missed time runs: {names:?}");
    c.eventually(20, "SuccessfulCreate event", || async {
        event_reasons(&c, "tick").await.iter().any(|r| r == "SuccessfulCreate").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_waits_for_the_active_job() {
    let c = Cluster::start("cronjob", &[]);
    let cjs = c.api::<CronJob>(Some(NS));
    let cj = cjs
        .create(&cronjob("solo", json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "suspend": true})))
        .await
        .unwrap();
    let running = c.api::<Job>(Some(NS)).create(&child(&cj, "solo-running")).await.unwrap();
    let reference = json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": NS, "name": "solo-running",
        "uid": running.metadata.uid});
    let status = json!({"status": {"lastScheduleTime": minutes_ago(2), "active": [reference]}});
    cjs.patch_status("solo", PatchType::Merge, &status).await.unwrap();
    resume(&c, "solo").await;

    c.eventually(20, "JobAlreadyActive event", || async {
        event_reasons(&c, "solo").await.iter().any(|r| r == "JobAlreadyActive").then_some(())
    })
    .await;
    assert_eq!(children(&c, &cj).await.len(), 1, "no second job while one runs");

    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap().to_string();
    finish(&c, "solo-running", "Complete", &minutes_ago(1), &now).await;
    let next = c
        .eventually(20, "the next job", || async {
            children(&c, &cj).await.into_iter().find(|j| j.metadata.name.as_deref() != Some("solo-running"))
        })
        .await;
    let status = c
        .eventually(20, "status after the run", || async {
            cjs.get("solo").await.unwrap().status.filter(|s| {
                s.active.as_ref().is_some_and(|a| a.len() == 1 && a[0].uid == next.metadata.uid)
                    && s.last_successful_time.is_some()
            })
        })
        .await;
    assert_eq!(status.last_successful_time.map(|t| t.0.to_string()), Some(now));
    let reasons = event_reasons(&c, "solo").await;
    assert!(reasons.iter().any(|r| r == "SawCompletedJob"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_the_active_job_before_starting_the_next() {
    let c = Cluster::start("cronjob", &[]);
    let cjs = c.api::<CronJob>(Some(NS));
    let spec = json!({"schedule": "* * * * *", "concurrencyPolicy": "Replace", "suspend": true});
    let cj = cjs.create(&cronjob("swap", spec)).await.unwrap();
    let old = c.api::<Job>(Some(NS)).create(&child(&cj, "swap-old")).await.unwrap();
    let reference = json!({"apiVersion": "batch/v1", "kind": "Job", "namespace": NS, "name": "swap-old",
        "uid": old.metadata.uid});
    let status = json!({"status": {"lastScheduleTime": minutes_ago(2), "active": [reference]}});
    cjs.patch_status("swap", PatchType::Merge, &status).await.unwrap();
    resume(&c, "swap").await;

    let new = c
        .eventually(20, "the old job replaced", || async {
            let jobs = children(&c, &cj).await;
            (jobs.len() == 1 && jobs[0].metadata.name.as_deref() != Some("swap-old")).then(|| jobs[0].clone())
        })
        .await;
    c.eventually(20, "status lists only the new job", || async {
        let s = cjs.get("swap").await.unwrap().status?;
        s.active.filter(|a| a.len() == 1 && a[0].uid == new.metadata.uid)
    })
    .await;
    let reasons = event_reasons(&c, "swap").await;
    assert!(reasons.iter().any(|r| r == "SuccessfulDelete"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limits_prune_the_oldest_finished_jobs() {
    let c = Cluster::start("cronjob", &[]);
    let cjs = c.api::<CronJob>(Some(NS));
    let spec =
        json!({"schedule": "@hourly", "suspend": true, "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1});
    let cj = cjs.create(&cronjob("hist", spec)).await.unwrap();
    let jobs = c.api::<Job>(Some(NS));
    for name in ["hist-ok-1", "hist-ok-2", "hist-ok-3", "hist-bad-1", "hist-bad-2"] {
        jobs.create(&child(&cj, name)).await.unwrap();
    }
    // Oldest first, so that whatever the controller sees in between, it prunes the oldest.
    let mut newest_success = String::new();
    for (i, name) in ["hist-ok-1", "hist-ok-2", "hist-ok-3"].iter().enumerate() {
        let hours = 3 - i64::try_from(i).unwrap();
        newest_success = minutes_ago(60 * hours - 5);
        finish(&c, name, "Complete", &minutes_ago(60 * hours), &newest_success).await;
    }
    finish(&c, "hist-bad-1", "Failed", &minutes_ago(120), &minutes_ago(110)).await;
    finish(&c, "hist-bad-2", "Failed", &minutes_ago(60), &minutes_ago(50)).await;

    c.eventually(20, "only the newest of each kind left", || async {
        let mut names: Vec<String> = children(&c, &cj).await.into_iter().filter_map(|j| j.metadata.name).collect();
        names.sort();
        (names == ["hist-bad-2", "hist-ok-3"]).then_some(())
    })
    .await;
    let status = c
        .eventually(20, "lastSuccessfulTime of the newest success", || async {
            let s = cjs.get("hist").await.unwrap().status?;
            (s.last_successful_time.as_ref().map(|t| t.0.to_string()) == Some(newest_success.clone())).then_some(s)
        })
        .await;
    assert_eq!(status.last_schedule_time, None, "a suspended CronJob schedules nothing");
    c.eventually(20, "SuccessfulDelete event", || async {
        event_reasons(&c, "hist").await.iter().any(|r| r == "SuccessfulDelete").then_some(())
    })
    .await;
}
