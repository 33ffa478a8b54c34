//! The root CA certificate publisher against a real API server: every namespace gets the
//! ConfigMap `kube-root-ca.crt` with the `--root-ca-file` bundle, edits and deletions are
//! undone, and without the flag the controller does not run.

mod common;

use common::Cluster;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{DeleteParams, PatchType};
use serde_json::json;
use std::time::Duration;

const PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBdTCCARugAwIBAgIBATAKBggqhkjOPQQDAjAAMB4XDTI0\n-----END CERTIFICATE-----\n";

fn ca_of(cm: &ConfigMap) -> Option<&str> {
    cm.data.as_ref().and_then(|d| d.get("ca.crt")).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_the_root_ca_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.crt");
    std::fs::write(&file, PEM).unwrap();
    let flag = format!("--root-ca-file={}", file.display());
    let c = Cluster::start("root-ca-cert-publisher", &[&flag]);
    let ns =
        Namespace { metadata: ObjectMeta { name: Some("team-a".into()), ..Default::default() }, ..Default::default() };
    c.api::<Namespace>(None).create(&ns).await.unwrap();
    let maps = c.api::<ConfigMap>(Some("team-a"));
    let first = c
        .eventually(20, "kube-root-ca.crt in team-a", || async { maps.get_opt("kube-root-ca.crt").await.unwrap() })
        .await;
    assert_eq!(ca_of(&first), Some(PEM));
    // The system namespaces have it too.
    for ns in ["default", "kube-system", "kube-public"] {
        let api = c.api::<ConfigMap>(Some(ns));
        c.eventually(20, &format!("kube-root-ca.crt in {ns}"), || async {
            api.get_opt("kube-root-ca.crt").await.unwrap().filter(|cm| ca_of(cm) == Some(PEM))
        })
        .await;
    }

    // An edit of the data is undone; a label someone added stays.
    let patch = json!({"metadata": {"labels": {"team": "a"}}, "data": {"ca.crt": "tampered"}});
    maps.patch("kube-root-ca.crt", PatchType::Merge, &patch).await.unwrap();
    let restored = c
        .eventually(20, "the CA restored", || async {
            maps.get_opt("kube-root-ca.crt").await.unwrap().filter(|cm| ca_of(cm) == Some(PEM))
        })
        .await;
    assert_eq!(restored.metadata.labels.unwrap_or_default().get("team").map(String::as_str), Some("a"));

    // A deleted one comes back.
    maps.delete("kube-root-ca.crt", &DeleteParams::default()).await.unwrap();
    let again = c
        .eventually(20, "kube-root-ca.crt recreated", || async {
            maps.get_opt("kube-root-ca.crt").await.unwrap().filter(|cm| cm.metadata.uid != first.metadata.uid)
        })
        .await;
    assert_eq!(ca_of(&again), Some(PEM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_root_ca_file_the_publisher_does_not_run() {
    let c = Cluster::start("root-ca-cert-publisher,serviceaccount", &[]);
    // The ServiceAccount controller runs, so the manager got going.
    let accounts = c.api::<k8s_openapi::api::core::v1::ServiceAccount>(Some("default"));
    c.eventually(20, "the default ServiceAccount", || async { accounts.get_opt("default").await.unwrap() }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let maps = c.api::<ConfigMap>(Some("default"));
    assert!(maps.get_opt("kube-root-ca.crt").await.unwrap().is_none());
    let log = c.cm.log_tail();
    assert!(log.contains("starting controllers") && !log.contains("root-ca-cert-publisher"), "{log}");
}
