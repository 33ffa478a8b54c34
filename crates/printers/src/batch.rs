//! Jobs and CronJobs: STATUS from the job conditions, COMPLETIONS, DURATION, and the schedule.

use jiff::Timestamp;
use serde_json::Value;

use crate::columns::{AGE, CONTAINERS, Col, IMAGES, NAME, Printer, SELECTOR, workload_wide};
use crate::duration::{age, between, human_duration, parse_time, since};
use crate::fields::{deleting, int_at, list, name, opt_bool, opt_int, opt_str, str_at};

/// Jobs.
pub(crate) static JOB: Printer = Printer::new(
    &[
        NAME,
        Col::text("Status", "Summary of the job's conditions."),
        Col::text("Completions", "Succeeded pods out of the completions asked for."),
        Col::text("Duration", "How long the job ran, or has been running."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    job,
);

/// Whether the job's first condition of `kind` has status True.
fn job_condition(job: &Value, kind: &str) -> bool {
    list(job, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job_status(job: &Value) -> &'static str {
    // Terminal conditions win over deletion; deletion wins over the transient conditions.
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(obj, "/status/succeeded");
    let completions = match opt_int(obj, "/spec/completions") {
        Some(n) => format!("{succeeded}/{n}"),
        // Without a completion count the job is done after one success, however many pods
        // run in parallel.
        None => match opt_int(obj, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let started = opt_str(obj, "/status/startTime").and_then(parse_time);
    let finished = opt_str(obj, "/status/completionTime").and_then(parse_time);
    let duration = match (started, finished) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(between(s, now)),
        (Some(s), Some(f)) => human_duration(between(s, f)),
    };
    let mut cells = vec![name(obj).into(), job_status(obj).into(), completions.into(), duration.into(), age(obj, now)];
    cells.extend(workload_wide(obj, "/spec/template", "/spec/selector"));
    cells
}

/// CronJobs.
pub(crate) static CRON_JOB: Printer = Printer::new(
    &[
        NAME,
        Col::text("Schedule", "The cron schedule."),
        Col::text("Timezone", "The time zone the schedule is read in."),
        Col::boolean("Suspend", "Whether new runs are held back."),
        Col::int("Active", "Number of jobs currently running."),
        Col::text("Last Schedule", "Time since a job was last scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |obj, now| {
        let suspend = match opt_bool(obj, "/spec/suspend") {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let last = match opt_str(obj, "/status/lastScheduleTime") {
            Some(t) => since(now, Some(t)),
            None => "<none>".into(),
        };
        let mut cells: Vec<Value> = vec![
            name(obj).into(),
            str_at(obj, "/spec/schedule").into(),
            opt_str(obj, "/spec/timeZone").unwrap_or("<none>").into(),
            suspend.into(),
            (list(obj, "/status/active").len() as i64).into(),
            last.into(),
            age(obj, now),
        ];
        cells.extend(workload_wide(obj, "/spec/jobTemplate/spec/template", "/spec/jobTemplate/spec/selector"));
        cells
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn job_rows() {
        let done = json!({"metadata": {"name": "pi", "creationTimestamp": "2024-05-01T11:50:00Z"},
            "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:50:00Z", "completionTime": "2024-05-01T11:50:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        assert_eq!(
            Value::from(job(&done, now())),
            json!(["pi", "Complete", "1/1", "42s", "10m", "pi", "perl:5.34", "batch.kubernetes.io/controller-uid=u1"])
        );
        let running = json!({"metadata": {"name": "w"}, "spec": {"parallelism": 3},
            "status": {"startTime": "2024-05-01T11:55:00Z", "succeeded": 0}});
        let r = job(&running, now());
        assert_eq!((r[1].as_str(), r[2].as_str(), r[3].as_str()), (Some("Running"), Some("0/1 of 3"), Some("5m")));
        let new = json!({"metadata": {"name": "n"}, "spec": {}});
        assert_eq!(job(&new, now())[3], "");
        let failed =
            json!({"metadata": {"name": "f"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(job(&failed, now())[1], "Failed");
        let suspended =
            json!({"metadata": {"name": "s"}, "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job(&suspended, now())[1], "Suspended");
        let deleting = json!({"metadata": {"name": "d", "deletionTimestamp": "2024-05-01T11:00:00Z"}, "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(job(&deleting, now())[1], "Terminating");
    }

    #[test]
    fn cron_job_row() {
        let cj = json!({"metadata": {"name": "nightly", "creationTimestamp": "2024-04-01T00:00:00Z"},
            "spec": {"schedule": "0 3 * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "backup:2"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-05-01T03:00:00Z"}});
        assert_eq!(
            Value::from((CRON_JOB.cells)(&cj, now())),
            json!(["nightly", "0 3 * * *", "<none>", "False", 1, "9h", "30d", "b", "backup:2", "<none>"])
        );
    }
}
