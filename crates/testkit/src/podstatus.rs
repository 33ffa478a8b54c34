//! The pod status a kubelet writes for a running pod, for tests that play the kubelet
//! (control-plane tests before a kubelet runs, and controller tests).

use serde_json::{Value, json};

/// A status patch: phase Running with pod IP `ip`, all conditions True except readiness,
/// which is `ready`.
pub fn running(ip: &str, ready: bool) -> Value {
    let now = jiff::Timestamp::now().to_string();
    let ready = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
            {"type": "Ready", "status": ready, "lastTransitionTime": now},
        ],
    }})
}
