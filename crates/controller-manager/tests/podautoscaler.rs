//! The HorizontalPodAutoscaler controller against a real API server, with a fake
//! metrics.k8s.io server in the test process: scale-up bounded by the scale-up policy,
//! scale-down to minReplicas after a short stabilization window, and no scaling (with
//! FailedGetResourceMetric) while the metrics API is missing. The tests play the kubelet.

mod common;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::Cluster;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition};
use k8s_openapi::api::core::v1::{Event, Pod};
use rkube_client::{Client, ListParams, PatchType};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const NS: &str = "default";

/// What the fake metrics API answers: per-pod CPU usage in millicores, or 404.
#[derive(Clone, Copy)]
enum Serve {
    Cpu(i64),
    NotFound,
}

#[derive(Clone)]
struct Fake {
    serve: Arc<Mutex<Serve>>,
    /// Set once the cluster is up: the pods a PodMetricsList reports on.
    client: Arc<Mutex<Option<Client>>>,
    /// Requests served (one per HPA sync).
    requests: Arc<AtomicUsize>,
}

impl Fake {
    fn set(&self, serve: Serve) {
        *self.serve.lock().unwrap() = serve;
    }
}

async fn pod_metrics(
    State(fake): State<Fake>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let serve = *fake.serve.lock().unwrap();
    let client = fake.client.lock().unwrap().clone();
    let (Serve::Cpu(milli), Some(client)) = (serve, client) else {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    };
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let pods = client.api::<Pod>(Some(&ns)).list(&ListParams::labels(&selector)).await.unwrap().items;
    // Samples are fresh, over a 1 s window, so they count one second after a pod turns Ready.
    let now = jiff::Timestamp::now().to_string();
    let items: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({
                "metadata": {"name": p.metadata.name, "namespace": ns},
                "timestamp": now, "window": "1s",
                "containers": [{"name": "c", "usage": {"cpu": format!("{milli}m"), "memory": "10Mi"}}],
            })
        })
        .collect();
    let body = json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": items});
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Starts the fake metrics API and a cluster whose HPA controller reads it (1 s sync period).
async fn start(serve: Serve) -> (Cluster, Fake) {
    let fake = Fake { serve: Arc::new(Mutex::new(serve)), client: Arc::default(), requests: Arc::default() };
    let app = axum::Router::new()
        .route("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods", axum::routing::get(pod_metrics))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("--metrics-api-url=http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c =
        Cluster::start("replicaset,horizontalpodautoscaling", &["--horizontal-pod-autoscaler-sync-period=1s", &url]);
    *fake.client.lock().unwrap() = Some(c.client.clone());
    (c, fake)
}

fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]},
            },
        },
    }))
    .unwrap()
}

fn hpa(name: &str, min: i32, max: i32, behavior: Value) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name},
            "minReplicas": min, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 100},
            }}],
            "behavior": behavior,
        },
    }))
    .unwrap()
}

/// Plays the kubelet: every pod of `app` not yet Running becomes Running and Ready.
async fn run_pods(c: &Cluster, app: &str) -> usize {
    let pods = c.api::<Pod>(Some(NS)).list(&ListParams::labels(&format!("app={app}"))).await.unwrap().items;
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    for p in &live {
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            c.set_pod_running(p, "node-1", true).await;
        }
    }
    live.len()
}

async fn replicas(c: &Cluster, name: &str) -> i32 {
    let rs = c.api::<ReplicaSet>(Some(NS)).get(name).await.unwrap();
    rs.spec.and_then(|s| s.replicas).unwrap_or(1)
}

fn condition<'a>(h: &'a HorizontalPodAutoscaler, type_: &str) -> Option<&'a HorizontalPodAutoscalerCondition> {
    h.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

fn has(h: &HorizontalPodAutoscaler, type_: &str, status: &str, reason: &str) -> bool {
    condition(h, type_).is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason))
}

async fn event(c: &Cluster, reason: &str, message: &str) -> Option<Event> {
    let events = c.api::<Event>(Some(NS)).list(&ListParams::default()).await.unwrap().items;
    events
        .into_iter()
        .find(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref().is_some_and(|m| m.contains(message)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_up_within_the_policy_and_down_after_the_stabilization_window() {
    let (c, fake) = start(Serve::Cpu(200)).await;
    c.api::<ReplicaSet>(Some(NS)).create(&replica_set("web", 2)).await.unwrap();
    c.eventually(20, "two running pods", || async { (run_pods(&c, "web").await == 2).then_some(()) }).await;

    // 200% of requests against a 100% target asks for 4; the policy allows one pod per 10 min.
    let behavior = json!({
        "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 600}]},
        "scaleDown": {"stabilizationWindowSeconds": 2},
    });
    let hpas = c.api::<HorizontalPodAutoscaler>(Some(NS));
    hpas.create(&hpa("web", 1, 5, behavior)).await.unwrap();
    c.eventually(20, "the ReplicaSet scaled to 3", || async {
        run_pods(&c, "web").await;
        (replicas(&c, "web").await == 3).then_some(())
    })
    .await;
    let message = "New size: 3; reason: cpu resource utilization (percentage of request) above target";
    c.eventually(10, "SuccessfulRescale event", || event(&c, "SuccessfulRescale", message)).await;

    // A later sync sees 3 replicas, still wants more and is held by the policy.
    let h = c
        .eventually(20, "HPA status at 3 replicas, limited by the policy", || async {
            run_pods(&c, "web").await;
            let h = hpas.get("web").await.unwrap();
            let s = h.status.as_ref()?;
            (s.current_replicas == Some(3) && has(&h, "ScalingLimited", "True", "ScaleUpLimit")).then_some(h)
        })
        .await;
    let s = h.status.as_ref().unwrap();
    assert_eq!(s.desired_replicas, 3);
    assert!(s.last_scale_time.is_some());
    assert_eq!(s.observed_generation, h.metadata.generation);
    assert!(has(&h, "ScalingActive", "True", "ValidMetricFound"), "{:?}", s.conditions);
    assert!(has(&h, "AbleToScale", "True", "ReadyForNewScale") || has(&h, "AbleToScale", "True", "SucceededGetScale"));
    let metric = &s.current_metrics.as_ref().unwrap()[0];
    let current = &metric.resource.as_ref().unwrap().current;
    assert_eq!(
        (current.average_utilization, current.average_value.as_ref().map(|q| q.0.as_str())),
        (Some(200), Some("200m"))
    );
    assert_eq!(replicas(&c, "web").await, 3, "the policy holds the ReplicaSet at 3");

    // 10% of requests: down to minReplicas once the 2 s window has forgotten the higher
    // recommendations.
    fake.set(Serve::Cpu(10));
    c.eventually(20, "the ReplicaSet scaled to 1", || async { (replicas(&c, "web").await == 1).then_some(()) }).await;
    c.eventually(10, "scale-down event", || {
        event(&c, "SuccessfulRescale", "New size: 1; reason: All metrics below target")
    })
    .await;
    let h = c
        .eventually(20, "HPA status at 1 replica", || async {
            let h = hpas.get("web").await.unwrap();
            let s = h.status.as_ref()?;
            (s.current_replicas == Some(1) && s.desired_replicas == 1).then_some(h)
        })
        .await;

    // Steady state: later syncs leave the status (and so the object) alone.
    let seen = fake.requests.load(Ordering::SeqCst);
    c.eventually(20, "three more syncs", || async { (fake.requests.load(Ordering::SeqCst) >= seen + 3).then_some(()) })
        .await;
    let again = hpas.get("web").await.unwrap();
    assert_eq!(again.metadata.resource_version, h.metadata.resource_version, "no status write without a change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_metrics_api_stops_scaling_but_max_replicas_still_applies() {
    let (c, _fake) = start(Serve::NotFound).await;
    c.api::<ReplicaSet>(Some(NS)).create(&replica_set("api", 2)).await.unwrap();
    c.eventually(20, "two running pods", || async { (run_pods(&c, "api").await == 2).then_some(()) }).await;
    let hpas = c.api::<HorizontalPodAutoscaler>(Some(NS));
    hpas.create(&hpa("api", 1, 5, Value::Null)).await.unwrap();

    let h = c
        .eventually(20, "ScalingActive False FailedGetResourceMetric", || async {
            let h = hpas.get("api").await.unwrap();
            has(&h, "ScalingActive", "False", "FailedGetResourceMetric").then_some(h)
        })
        .await;
    let message = condition(&h, "ScalingActive").and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("unable to fetch metrics from resource metrics API"), "{message}");
    assert_eq!(h.status.as_ref().unwrap().current_replicas, Some(2));
    c.eventually(10, "FailedGetResourceMetric event", || event(&c, "FailedGetResourceMetric", "could not find")).await;
    // Several syncs later, still no change.
    c.eventually(10, "repeated FailedGetResourceMetric events", || async {
        event(&c, "FailedGetResourceMetric", "could not find").await.filter(|e| e.count.unwrap_or(1) >= 3)
    })
    .await;
    assert_eq!(replicas(&c, "api").await, 2);

    // Above maxReplicas the HPA scales down without metrics.
    hpas.patch("api", PatchType::Merge, &json!({"spec": {"maxReplicas": 1}})).await.unwrap();
    c.eventually(20, "the ReplicaSet scaled to maxReplicas", || async {
        (replicas(&c, "api").await == 1).then_some(())
    })
    .await;
    let message = "New size: 1; reason: Current number of replicas above Spec.MaxReplicas";
    c.eventually(10, "SuccessfulRescale event", || event(&c, "SuccessfulRescale", message)).await;
}
