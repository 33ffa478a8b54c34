//! etcd over TLS with client certificates (`--etcd-cafile`, `--etcd-certfile`,
//! `--etcd-keyfile`): the API server serves from a TLS etcd that refuses clients without a
//! certificate of its CA.

use rkube_storage::{EtcdTls, Store};
use rkube_testkit::{ApiServer, Etcd, TestPki};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_reaches_etcd_over_tls_with_its_client_certificate() {
    let pki = TestPki::new().unwrap();
    let etcd = Etcd::start_tls(&pki).unwrap();
    assert!(etcd.endpoint().starts_with("https://"));
    let files = etcd.tls_files().unwrap().clone();
    let endpoints = [etcd.endpoint()];

    // Without a client certificate etcd refuses the connection; with one it answers.
    let ca_pem = std::fs::read(&files.ca).unwrap();
    let anonymous = EtcdTls { ca_pem: ca_pem.clone(), cert_pem: None, key_pem: None };
    assert!(Store::connect_with(&endpoints, Some(&anonymous)).await.is_err(), "etcd requires a client certificate");
    let tls = EtcdTls {
        ca_pem,
        cert_pem: Some(std::fs::read(&files.client_cert).unwrap()),
        key_pem: Some(std::fs::read(&files.client_key).unwrap()),
    };
    Store::connect_with(&endpoints, Some(&tls)).await.expect("a client certificate of the CA is accepted");

    let args = [
        "--etcd-cafile".to_string(),
        files.ca.display().to_string(),
        "--etcd-certfile".to_string(),
        files.client_cert.display().to_string(),
        "--etcd-keyfile".to_string(),
        files.client_key.display().to_string(),
    ];
    let api = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ApiServer::start_with(&etcd, &args).map(|a| (a, etcd))
    })
    .await
    .unwrap()
    .expect("the API server starts against the TLS etcd");
    let (api, _etcd) = api;
    let client = reqwest::Client::new();
    let cm =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tls"}, "data": {"a": "b"}});
    let created =
        client.post(format!("{}/api/v1/namespaces/default/configmaps", api.url())).json(&cm).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let read: serde_json::Value = client
        .get(format!("{}/api/v1/namespaces/default/configmaps/tls", api.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["data"]["a"], "b");
}
