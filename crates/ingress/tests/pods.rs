//! End to end with real pods: a Deployment of busybox httpd pods run by a real rkube-kubelet on
//! containerd, its EndpointSlices written by the real controller-manager, and rkube-ingress
//! routing a host and a path to them. Requests spread over every replica, a scale-up is
//! served within seconds, and a rolling update loses no request.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use rkube_client::{Client, PatchType};
use rkube_testkit::{ApiServer, Daemon, Etcd, KubeletNode, images};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

/// Distinct answers of `n` requests to `host` `path`; panics on any non-200.
async fn answers(http: std::net::SocketAddr, host: &str, path: &str, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = http_get(http, host, path).await;
        assert_eq!(r.status, 200, "{host}{path}: {r:?}");
        seen.insert(r.text.trim().to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_behind_an_ingress_spreads_scales_and_rolls_without_errors() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let node = KubeletNode::start(&api, "ingress-node", &[]).expect("kubelet starts");
    let controllers =
        Daemon::start("rkube-controller-manager", &api, &["--leader-elect=false"]).expect("controller-manager");
    let client = Client::new(&api.url()).unwrap();

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeName": node.name(),
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "httpd",
                        "image": images::BUSYBOX_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "mkdir -p /www/api && hostname > /www/index.html && \
                            echo api-$(hostname) > /www/api/index.html && exec httpd -f -p 8080 -h /www"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }))
    .unwrap();
    client.api::<Deployment>(Some(NS)).create(&deployment).await.unwrap();
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    client.api::<k8s_openapi::api::core::v1::Service>(Some(NS)).create(&svc).await.unwrap();
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "rkube", "rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
            ]}}]},
        }),
    )
    .await;

    let cancel = CancellationToken::new();
    let ingress = rkube_ingress::start(ingress_config(&api.url(), &[]), cancel.clone()).await.unwrap();
    let http = ingress.http;
    let logs = || format!("kubelet:\n{}\ncontroller-manager:\n{}", node.kubelet.log_tail(), controllers.log_tail());

    // Both replicas answer, through the Service's named port resolved to the pods' port.
    let mut seen = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while seen.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "replicas seen: {seen:?}\n{}", logs());
        let r = http_get(http, "web.example.com", "/").await;
        if r.status == 200 {
            seen.insert(r.text.trim().to_string());
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(answers(http, "web.example.com", "/", 6).await.len(), 2, "round-robin reaches both replicas");
    let api_answer = answers(http, "web.example.com", "/api/", 1).await;
    assert!(api_answer.iter().all(|a| a.starts_with("api-web-")), "{api_answer:?}");

    // Scale to 3: the new replica is served as soon as it is ready.
    let deployments = client.api::<Deployment>(Some(NS));
    deployments.patch("web", PatchType::Merge, &json!({"spec": {"replicas": 3}})).await.unwrap();
    let (_, took) = eventually(Duration::from_secs(60), "a third replica to be served", || async move {
        (answers(http, "web.example.com", "/", 6).await.len() == 3).then_some(())
    })
    .await;
    eprintln!("scale-up served after {took:?}");

    // A rolling update (maxUnavailable 0) loses no request.
    let before = answers(http, "web.example.com", "/", 6).await;
    deployments
        .patch("web", PatchType::Merge, &json!({"spec": {"template": {"metadata": {"annotations": {"roll": "1"}}}}}))
        .await
        .unwrap();
    let mut requests = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = answers(http, "web.example.com", "/", 3).await;
        requests += 3;
        let current = answers(http, "web.example.com", "/", 6).await;
        requests += 6;
        if now.is_disjoint(&before) && current.is_disjoint(&before) && current.len() == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rollout not finished: {current:?} vs {before:?}\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("rolling update: {requests} requests through the ingress, all 200");
    cancel.cancel();
    ingress.wait().await;
}
