//! Encode+decode round trips of a typical Pod in Kubernetes protobuf and in JSON (serde_json
//! Value, as the API server handles objects), measured in one run; prints both and the ratio.
//! Run with `scripts/bench-codec` (release build).

use serde_json::{Value, json};
use std::time::Instant;

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                     "uid": "5c1b0f0e-6a39-4b53-9d0e-3f3f2b2b1a11", "resourceVersion": "12345",
                     "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "env": [{"name": "MODE", "value": "prod"}],
                 "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
                 "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
                 "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "nodeName": "node-1", "schedulerName": "default-scheduler"},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.168.0.10", "qosClass": "Burstable",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-02T03:04:09Z"}]}
    })
}

fn measure(rounds: u32, mut round_trip: impl FnMut() -> usize) -> (f64, usize) {
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes = round_trip();
    }
    (start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds), bytes)
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let pod = pod();
    let (json_us, json_bytes) = measure(rounds, || {
        let encoded = serde_json::to_vec(&pod).expect("JSON encodes");
        std::hint::black_box(serde_json::from_slice::<Value>(&encoded).expect("JSON decodes"));
        encoded.len()
    });
    let (proto_us, proto_bytes) = measure(rounds, || {
        let encoded = rkube_kubeproto::encode(&pod).expect("protobuf encodes");
        std::hint::black_box(rkube_kubeproto::decode(&encoded).expect("protobuf decodes"));
        encoded.len()
    });
    println!("Pod encode+decode, {rounds} rounds each");
    println!("  json      {json_us:7.2} µs/round trip  {json_bytes} bytes");
    println!("  protobuf  {proto_us:7.2} µs/round trip  {proto_bytes} bytes");
    println!("  protobuf/json time ratio {:.2}, size ratio {:.2}", proto_us / json_us, proto_bytes as f64 / json_bytes as f64);
}
