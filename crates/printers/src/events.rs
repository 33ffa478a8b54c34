//! Events. Kubernetes prints core/v1 and events.k8s.io/v1 events with one printer (both are
//! the same stored object); only the JSON field names differ between the two versions.

use jiff::Timestamp;
use serde_json::Value;

use crate::columns::{Col, NAME, Printer};
use crate::duration::since;
use crate::fields::{first_non_empty, int_at, name, opt_str, str_at};

/// Where each field lives in one API version's JSON.
struct Fields {
    object: &'static str,
    message: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    source: &'static str,
    reporting_controller: &'static str,
}

const CORE: Fields = Fields {
    object: "/involvedObject",
    message: "/message",
    first: "/firstTimestamp",
    last: "/lastTimestamp",
    count: "/count",
    source: "/source",
    reporting_controller: "/reportingComponent",
};

const EVENTS_K8S_IO: Fields = Fields {
    object: "/regarding",
    message: "/note",
    first: "/deprecatedFirstTimestamp",
    last: "/deprecatedLastTimestamp",
    count: "/deprecatedCount",
    source: "/deprecatedSource",
    reporting_controller: "/reportingController",
};

const COLUMNS: [Col; 10] = [
    Col::text("Last Seen", "Time since the event was last observed."),
    Col::text("Type", "Normal or Warning."),
    Col::text("Reason", "Short machine-readable reason for the event."),
    Col::text("Object", "The object the event is about."),
    Col::text("Subobject", "The part of the object the event is about.").wide(),
    Col::text("Source", "The component that reported the event.").wide(),
    Col::text("Message", "Human-readable description of the event."),
    Col::text("First Seen", "Time since the event was first observed.").wide(),
    Col::text("Count", "How many times the event was observed.").wide(),
    NAME.wide(),
];

/// core/v1 Events.
pub(crate) static EVENT: Printer = Printer::new(&COLUMNS, |obj, now| cells(obj, now, &CORE));

/// events.k8s.io/v1 Events.
pub(crate) static EVENTS_EVENT: Printer = Printer::new(&COLUMNS, |obj, now| cells(obj, now, &EVENTS_K8S_IO));

fn cells(obj: &Value, now: Timestamp, f: &Fields) -> Vec<Value> {
    // Events written through the newer API carry only eventTime and, when repeated, a series.
    let first = match opt_str(obj, f.first) {
        Some(t) => since(now, Some(t)),
        None => since(now, opt_str(obj, "/eventTime")),
    };
    let mut last = match opt_str(obj, f.last) {
        Some(t) => since(now, Some(t)),
        None => first.clone(),
    };
    let mut count = int_at(obj, f.count);
    if obj.get("series").is_some_and(|s| !s.is_null()) {
        last = since(now, opt_str(obj, "/series/lastObservedTime"));
        count = int_at(obj, "/series/count");
    } else if count == 0 {
        count = 1;
    }

    let object = |field: &str| str_at(obj, &format!("{}/{field}", f.object));
    let kind = object("kind").to_lowercase();
    let target = if object("name").is_empty() { kind } else { format!("{kind}/{}", object("name")) };

    let component =
        first_non_empty(str_at(obj, &format!("{}/component", f.source)), str_at(obj, f.reporting_controller));
    let host = first_non_empty(str_at(obj, &format!("{}/host", f.source)), str_at(obj, "/reportingInstance"));
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };

    vec![
        last.into(),
        str_at(obj, "/type").into(),
        str_at(obj, "/reason").into(),
        target.into(),
        object("fieldPath").into(),
        source.into(),
        str_at(obj, f.message).trim().into(),
        first.into(),
        count.into(),
        name(obj).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn core_event() {
        let e = json!({"metadata": {"name": "web.17c"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{nginx}"},
            "reason": "Pulled", "type": "Normal", "message": "Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:58:00Z", "count": 4});
        assert_eq!(
            Value::from((EVENT.cells)(&e, now())),
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{nginx}",
                "kubelet, node-1",
                "Successfully pulled image \"nginx\"",
                "60m",
                4,
                "web.17c"
            ])
        );
    }

    #[test]
    fn new_style_event_through_both_apis() {
        let core = json!({"metadata": {"name": "n1"}, "involvedObject": {"kind": "Node"}, "type": "Warning",
            "reason": "Rebooted", "message": "m", "eventTime": "2024-05-01T11:30:00.000000Z",
            "reportingComponent": "kubelet", "reportingInstance": "node-1",
            "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:00.000000Z"}});
        assert_eq!(
            Value::from((EVENT.cells)(&core, now())),
            json!(["60s", "Warning", "Rebooted", "node", "", "kubelet, node-1", "m", "30m", 7, "n1"])
        );
        let v1 = json!({"metadata": {"name": "n2"}, "regarding": {"kind": "Deployment", "name": "web"},
            "type": "Normal", "reason": "ScalingReplicaSet", "note": "Scaled up", "eventTime": "2024-05-01T11:55:00.000000Z",
            "reportingController": "deployment-controller"});
        assert_eq!(
            Value::from((EVENTS_EVENT.cells)(&v1, now())),
            json!([
                "5m",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "Scaled up",
                "5m",
                1,
                "n2"
            ])
        );
    }
}
