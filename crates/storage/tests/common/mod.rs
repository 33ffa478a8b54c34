//! Shared setup for the storage integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rkube_storage::{ResourceSpec, StorageError, Store};
use rkube_testkit::Etcd;

pub const PODS: &str = "/registry/core/pods/";
pub const CONFIGMAPS: &str = "/registry/core/configmaps/";

pub async fn etcd_and_store() -> (Etcd, Store) {
    // RUST_LOG=rkube_storage=debug shows the cache's reconnects and relists.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let etcd = Etcd::start().expect("start etcd");
    let store = Store::connect(&[etcd.endpoint()]).await.expect("connect");
    (etcd, store)
}

fn node_name(v: &serde_json::Value) -> Vec<(&'static str, String)> {
    let node = v.pointer("/spec/nodeName").and_then(|n| n.as_str()).unwrap_or("");
    vec![("spec.nodeName", node.to_string())]
}

fn no_fields(_: &serde_json::Value) -> Vec<(&'static str, String)> {
    Vec::new()
}

pub fn resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec { prefix: PODS.into(), index: node_name },
        ResourceSpec { prefix: CONFIGMAPS.into(), index: no_fields },
    ]
}

pub fn pod(name: &str, n: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web", "n": n.to_string()}},
        "spec": {"nodeName": format!("node-{}", n % 3)}
    }))
    .unwrap()
}

/// Retries `f` while storage reports Unavailable (e.g. right after an etcd restart).
pub async fn retry<T, F, Fut>(mut f: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Err(StorageError::Unavailable(e)) if Instant::now() < deadline => {
                eprintln!("retrying after: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// A TCP proxy in front of etcd that a test can cut and heal, to break one client's
/// connection while others keep writing.
pub struct Proxy {
    pub endpoint: String,
    enabled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream_endpoint: &str) -> Proxy {
        use std::sync::atomic::Ordering;
        let upstream = upstream_endpoint.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let enabled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (en, cs) = (enabled.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !en.load(Ordering::SeqCst) {
                    continue; // dropping the socket refuses the client
                }
                let upstream = upstream.clone();
                cs.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Proxy { endpoint, enabled, conns, accept }
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.enabled.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Accepts connections again.
    pub fn heal(&self) {
        self.enabled.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
