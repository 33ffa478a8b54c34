//! HorizontalPodAutoscalers: the TARGETS column pairs each metric's current value with its
//! target ("cpu: 45%/80%"), reading autoscaling/v2 JSON (and v1's single CPU target).

use serde_json::{Value, json};

use crate::columns::{AGE, Col, NAME, Printer};
use crate::duration::age;
use crate::fields::{at, int_at, list, name, opt_int, quantity_ptr, str_at};

/// HorizontalPodAutoscalers.
pub(crate) static HORIZONTAL_POD_AUTOSCALER: Printer = Printer::new(
    &[
        NAME,
        Col::text("Reference", "The scaled object, as kind/name."),
        Col::text("Targets", "Current and target values of the metrics."),
        Col::text("MinPods", "Lower replica bound."),
        Col::text("MaxPods", "Upper replica bound."),
        Col::text("Replicas", "Current number of replicas."),
        AGE,
    ],
    |obj, now| {
        let reference =
            format!("{}/{}", str_at(obj, "/spec/scaleTargetRef/kind"), str_at(obj, "/spec/scaleTargetRef/name"));
        let min = opt_int(obj, "/spec/minReplicas").map_or("<unset>".into(), |n| n.to_string());
        vec![
            name(obj).into(),
            reference.into(),
            targets(obj).into(),
            min.into(),
            int_at(obj, "/spec/maxReplicas").into(),
            int_at(obj, "/status/currentReplicas").into(),
            age(obj, now),
        ]
    },
);

/// The metric specs and statuses in v2 form; autoscaling/v1's CPU percentage is the single
/// resource metric it stands for.
fn metrics(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    if let Some(target) = opt_int(obj, "/spec/targetCPUUtilizationPercentage") {
        let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
        let status = match opt_int(obj, "/status/currentCPUUtilizationPercentage") {
            Some(current) => vec![
                json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}),
            ],
            None => Vec::new(),
        };
        return (vec![spec], status);
    }
    (list(obj, "/spec/metrics").to_vec(), list(obj, "/status/currentMetrics").to_vec())
}

fn targets(obj: &Value) -> String {
    const MAX: usize = 2;
    let (specs, statuses) = metrics(obj);
    if specs.is_empty() {
        return "<none>".into();
    }
    let entries: Vec<String> = specs.iter().enumerate().map(|(i, spec)| metric(spec, statuses.get(i))).collect();
    let joined = entries[..entries.len().min(MAX)].join(", ");
    if entries.len() > MAX { format!("{joined} + {} more...", entries.len() - MAX) } else { joined }
}

/// One metric as "current/target"; resource metrics are prefixed with the resource name.
/// The status at the same index is taken to describe the spec (as Kubernetes assumes); a
/// status without the metric's source reads "<unknown>", a missing quantity "<nil>".
fn metric(spec: &Value, status: Option<&Value>) -> String {
    let (source, resource) = match str_at(spec, "/type") {
        "External" => ("external", false),
        "Pods" => ("pods", false),
        "Object" => ("object", false),
        "Resource" => ("resource", true),
        "ContainerResource" => ("containerResource", true),
        _ => return "<unknown type>".into(),
    };
    let target = |f: &str| at(spec, &format!("/{source}/target/{f}"));
    let observed = status.and_then(|s| at(s, &format!("/{source}")));
    let current = |f: &str| observed.map_or("<unknown>".into(), |o| quantity_ptr(at(o, &format!("/current/{f}"))));

    if source == "pods" {
        return format!("{}/{}", current("averageValue"), quantity_ptr(target("averageValue")));
    }
    if resource {
        let name = str_at(spec, &format!("/{source}/name"));
        if target("averageValue").is_some() {
            return format!("{name}: {}/{}", current("averageValue"), quantity_ptr(target("averageValue")));
        }
        let percent =
            |v: Option<&Value>, absent: &str| v.and_then(Value::as_i64).map_or(absent.into(), |p| format!("{p}%"));
        let now = percent(observed.and_then(|o| at(o, "/current/averageUtilization")), "<unknown>");
        return format!("{name}: {now}/{}", percent(target("averageUtilization"), "<auto>"));
    }
    if target("averageValue").is_some() {
        // Only an observed average counts here; a status carrying just a value is unknown.
        let now =
            observed.and_then(|o| at(o, "/current/averageValue")).map_or("<unknown>".into(), |q| quantity_ptr(Some(q)));
        return format!("{now}/{} (avg)", quantity_ptr(target("averageValue")));
    }
    format!("{}/{}", current("value"), quantity_ptr(target("value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(obj: Value) -> Value {
        let now: jiff::Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        Value::from((HORIZONTAL_POD_AUTOSCALER.cells)(&obj, now))
    }

    #[test]
    fn v2_metrics() {
        let hpa = json!({"metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "90m"}}}]}});
        assert_eq!(
            row(hpa),
            json!([
                "web",
                "Deployment/web",
                "cpu: 45%/80%, memory: <unknown>/500Mi + 1 more...",
                "1",
                10,
                2,
                "<unknown>"
            ])
        );
    }

    #[test]
    fn other_metric_kinds() {
        let ext = json!({"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}});
        let ext_status = json!({"type": "External", "external": {"current": {"value": "12"}}});
        assert_eq!(metric(&ext, Some(&ext_status)), "12/30");
        let obj = json!({"type": "Object", "object": {"target": {"type": "AverageValue", "averageValue": "2k"}}});
        assert_eq!(metric(&obj, None), "<unknown>/2k (avg)");
        let auto = json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization"}}});
        assert_eq!(metric(&auto, None), "cpu: <unknown>/<auto>");
        assert_eq!(metric(&json!({"type": "Magic"}), None), "<unknown type>");
    }

    #[test]
    fn v1_cpu_target_and_no_metrics() {
        let v1 = json!({"metadata": {"name": "old"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "old"},
            "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}, "status": {"currentCPUUtilizationPercentage": 20, "currentReplicas": 1}});
        assert_eq!(row(v1), json!(["old", "Deployment/old", "cpu: 20%/50%", "<unset>", 3, 1, "<unknown>"]));
        let none = json!({"metadata": {"name": "n"}, "spec": {"maxReplicas": 1}});
        assert_eq!(row(none)[2], "<none>");
    }
}
