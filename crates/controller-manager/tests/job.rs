//! The Job controller against a real API server, with the test playing the kubelet: pods
//! run `parallelism` at a time until `completions` succeed; failures beyond `backoffLimit`
//! and an expired `activeDeadlineSeconds` fail the Job and remove its pods; a suspended Job
//! runs nothing until resumed; Indexed Jobs number their pods; `ttlSecondsAfterFinished`
//! deletes the finished Job.

mod common;

use common::Cluster;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use rkube_client::{ListParams, PatchType};
use serde_json::json;

const NS: &str = "default";

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]},
    });
    serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}))
        .expect("a valid Job")
}

async fn pods_of(c: &Cluster, name: &str) -> Vec<Pod> {
    let params = ListParams::labels(&format!("batch.kubernetes.io/job-name={name}"));
    c.api::<Pod>(Some(NS)).list(&params).await.expect("pods listed").items
}

fn active(pods: &[Pod]) -> Vec<Pod> {
    pods.iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
        })
        .cloned()
        .collect()
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn has_condition(job: &Job, type_: &str, reason: &str) -> bool {
    condition(job, type_).is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some(reason))
}

async fn event_reasons(c: &Cluster, name: &str) -> Vec<String> {
    let params = ListParams::fields(&format!("involvedObject.name={name}"));
    let events = c.api::<Event>(Some(NS)).list(&params).await.expect("events listed").items;
    events.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_completions_at_most_parallelism_at_a_time() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    let created = jobs.create(&job("pi", json!({"completions": 3, "parallelism": 2}))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    let first = c
        .eventually(20, "two active pods", || async {
            let pods = pods_of(&c, "pi").await;
            assert!(active(&pods).len() <= 2, "more than parallelism pods: {}", pods.len());
            (active(&pods).len() == 2).then_some(pods)
        })
        .await;
    let pod = &first[0];
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("batch.kubernetes.io/controller-uid"), Some(&uid));
    assert_eq!(labels.get("controller-uid"), Some(&uid));
    assert_eq!(labels.get("job-name").map(String::as_str), Some("pi"));
    assert_eq!(labels.get("app").map(String::as_str), Some("pi"));
    assert!(pod.metadata.name.as_deref().unwrap().starts_with("pi-"));
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Job", uid.as_str(), Some(true)));

    for done in 1..=3i32 {
        let pods = pods_of(&c, "pi").await;
        let running = active(&pods);
        assert!(!running.is_empty() && running.len() <= 2, "active pods: {}", running.len());
        c.set_pod_finished(&running[0], "Succeeded").await;
        c.eventually(20, "the success counted", || async {
            let pods = pods_of(&c, "pi").await;
            assert!(active(&pods).len() <= 2, "more than parallelism pods");
            let j = jobs.get("pi").await.unwrap();
            let s = j.status.clone().unwrap_or_default();
            assert!(s.active.unwrap_or(0) <= 2);
            // The last round needs no replacement; the others wait for one.
            let settled = done == 3 || active(&pods).len() == usize::try_from((3 - done).min(2)).unwrap();
            (s.succeeded == Some(done) && settled).then_some(())
        })
        .await;
    }
    let done = c
        .eventually(20, "Complete condition", || async {
            Some(jobs.get("pi").await.unwrap()).filter(|j| has_condition(j, "Complete", "CompletionsReached"))
        })
        .await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let conditions: Vec<&str> = status.conditions.iter().flatten().map(|c| c.type_.as_str()).collect();
    assert_eq!(conditions, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(pods_of(&c, "pi").await.len(), 3, "exactly completions pods were created");
    c.eventually(20, "Completed event", || async {
        event_reasons(&c, "pi").await.iter().any(|r| r == "Completed").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_beyond_backoff_limit_fail_the_job() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    jobs.create(&job("flaky", json!({"backoffLimit": 1}))).await.unwrap();
    for failures in 1..=2 {
        let pod = c
            .eventually(20, "a pod to fail", || async { active(&pods_of(&c, "flaky").await).into_iter().next() })
            .await;
        c.set_pod_finished(&pod, "Failed").await;
        c.eventually(20, "the failure counted", || async {
            let j = jobs.get("flaky").await.unwrap();
            (j.status.and_then(|s| s.failed) == Some(failures)).then_some(())
        })
        .await;
    }
    let failed = c
        .eventually(20, "Failed condition", || async {
            Some(jobs.get("flaky").await.unwrap()).filter(|j| has_condition(j, "Failed", "BackoffLimitExceeded"))
        })
        .await;
    assert!(has_condition(&failed, "FailureTarget", "BackoffLimitExceeded"));
    let message = condition(&failed, "Failed").and_then(|c| c.message.clone());
    assert_eq!(message.as_deref(), Some("Job has reached the specified backoff limit"));
    assert_eq!(failed.status.as_ref().and_then(|s| s.completion_time.as_ref()), None);
    c.eventually(20, "BackoffLimitExceeded event", || async {
        event_reasons(&c, "flaky").await.iter().any(|r| r == "BackoffLimitExceeded").then_some(())
    })
    .await;
    let pods = pods_of(&c, "flaky").await;
    assert_eq!(pods.len(), 2, "no pod after the limit");
    assert!(active(&pods).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_job_and_removes_its_pods() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    jobs.create(&job("slow", json!({"completions": 4, "parallelism": 2, "activeDeadlineSeconds": 2}))).await.unwrap();
    let failed = c
        .eventually(20, "DeadlineExceeded", || async {
            Some(jobs.get("slow").await.unwrap()).filter(|j| has_condition(j, "Failed", "DeadlineExceeded"))
        })
        .await;
    let message = condition(&failed, "Failed").and_then(|c| c.message.clone());
    assert_eq!(message.as_deref(), Some("Job was active longer than specified deadline"));
    let started = failed.status.as_ref().and_then(|s| s.start_time.clone()).unwrap();
    let at = condition(&failed, "Failed").and_then(|c| c.last_transition_time.clone()).unwrap();
    assert!(at.0.as_second() - started.0.as_second() >= 2, "failed only after the deadline");
    c.eventually(20, "pods deleted", || async { pods_of(&c, "slow").await.is_empty().then_some(()) }).await;
    // The pods ran until the deadline (the events outlive them) and were then deleted.
    c.eventually(20, "create, delete and DeadlineExceeded events", || async {
        let reasons = event_reasons(&c, "slow").await;
        let count = |reason: &str| reasons.iter().filter(|r| *r == reason).count();
        (count("SuccessfulCreate") == 2 && count("SuccessfulDelete") == 2 && count("DeadlineExceeded") == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_job_runs_nothing_until_resumed() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    jobs.create(&job("later", json!({"parallelism": 2, "completions": 2, "suspend": true}))).await.unwrap();
    let suspended = c
        .eventually(20, "Suspended condition", || async {
            Some(jobs.get("later").await.unwrap()).filter(|j| has_condition(j, "Suspended", "JobSuspended"))
        })
        .await;
    assert_eq!(suspended.status.as_ref().and_then(|s| s.start_time.as_ref()), None);
    assert!(pods_of(&c, "later").await.is_empty(), "a suspended job creates no pods");

    jobs.patch("later", PatchType::Merge, &json!({"spec": {"suspend": false}})).await.unwrap();
    c.eventually(20, "pods after resume", || async { (active(&pods_of(&c, "later").await).len() == 2).then_some(()) })
        .await;
    let resumed = jobs.get("later").await.unwrap();
    let cond = condition(&resumed, "Suspended").unwrap();
    assert_eq!((cond.status.as_str(), cond.reason.as_deref()), ("False", Some("JobResumed")));
    assert!(resumed.status.as_ref().and_then(|s| s.start_time.as_ref()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_numbers_its_pods() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    jobs.create(&job("idx", json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}))).await.unwrap();
    let pods = c
        .eventually(20, "three pods", || async { Some(active(&pods_of(&c, "idx").await)).filter(|p| p.len() == 3) })
        .await;
    let mut indexes: Vec<String> = pods
        .iter()
        .map(|p| {
            let i = p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone();
            assert_eq!(p.spec.as_ref().unwrap().hostname, Some(format!("idx-{i}")));
            assert!(p.metadata.name.as_deref().unwrap().starts_with(&format!("idx-{i}-")));
            i
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    let by_index =
        |i: &str| pods.iter().find(|p| p.metadata.name.as_deref().unwrap().starts_with(&format!("idx-{i}-")));
    c.set_pod_finished(by_index("1").unwrap(), "Succeeded").await;
    c.eventually(20, "index 1 completed", || async {
        let j = jobs.get("idx").await.unwrap();
        (j.status.and_then(|s| s.completed_indexes).as_deref() == Some("1")).then_some(())
    })
    .await;
    // A failed index is run again by a new pod with the same index.
    c.set_pod_finished(by_index("0").unwrap(), "Failed").await;
    let retry = c
        .eventually(20, "index 0 again", || async {
            active(&pods_of(&c, "idx").await).into_iter().find(|p| {
                p.metadata.name.as_deref().unwrap().starts_with("idx-0-")
                    && p.metadata.uid != by_index("0").unwrap().metadata.uid
            })
        })
        .await;
    c.set_pod_finished(&retry, "Succeeded").await;
    c.set_pod_finished(by_index("2").unwrap(), "Succeeded").await;
    let done = c
        .eventually(20, "Complete", || async {
            Some(jobs.get("idx").await.unwrap()).filter(|j| has_condition(j, "Complete", "CompletionsReached"))
        })
        .await;
    let status = done.status.unwrap();
    assert_eq!((status.completed_indexes.as_deref(), status.succeeded, status.failed), (Some("0-2"), Some(3), Some(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_job_is_deleted_after_its_ttl() {
    let c = Cluster::start("job", &[]);
    let jobs = c.api::<Job>(Some(NS));
    // Two seconds, not one: times are stored to the second, so a one-second TTL may expire
    // within milliseconds of completion, before a poll could see the Complete Job.
    jobs.create(&job("brief", json!({"ttlSecondsAfterFinished": 2}))).await.unwrap();
    let pod = c.eventually(20, "a pod", || async { active(&pods_of(&c, "brief").await).into_iter().next() }).await;
    c.set_pod_finished(&pod, "Succeeded").await;
    let done = c
        .eventually(20, "Complete", || async {
            Some(jobs.get_opt("brief").await.unwrap()?).filter(|j| has_condition(j, "Complete", "CompletionsReached"))
        })
        .await;
    let finished = condition(&done, "Complete").and_then(|c| c.last_transition_time.clone()).unwrap();
    c.eventually(20, "the job deleted", || async { jobs.get_opt("brief").await.unwrap().is_none().then_some(()) })
        .await;
    let elapsed = jiff::Timestamp::now().as_millisecond() - finished.0.as_millisecond();
    assert!(elapsed >= 2000, "deleted only after the TTL ({elapsed} ms)");
}
