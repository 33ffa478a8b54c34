//! Shared harness of the API server's integration tests: a real etcd and a real
//! rkube-apiserver process, plus a small JSON client.
#![allow(dead_code)]

use rkube_testkit::{ApiServer, Etcd};
use serde_json::Value;

/// etcd + API server, stopped on drop.
pub struct Cluster {
    /// The API server process (dropped first).
    pub api: ApiServer,
    /// The etcd process.
    pub etcd: Etcd,
    /// HTTP client.
    pub http: reqwest::Client,
}

/// A response: status code, headers and JSON body (Null if not JSON).
pub struct Reply {
    /// HTTP status.
    pub code: u16,
    /// Body as JSON.
    pub body: Value,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Cluster {
    /// Starts etcd and an API server.
    pub fn start() -> Cluster {
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start(&etcd).expect("apiserver starts");
        Cluster { api, etcd, http: reqwest::Client::new() }
    }

    /// Restarts the API server process; pooled connections to the old one are dropped.
    pub fn restart_api(&mut self) {
        self.api.restart().expect("apiserver restarts");
        self.http = reqwest::Client::new();
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.url())
    }

    /// Sends a request with an optional body of a content type.
    pub async fn send(&self, method: &str, path: &str, content_type: &str, body: Option<Vec<u8>>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.send().await.expect("request sent");
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { code, body, headers }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, "", None).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, "application/json", Some(serde_json::to_vec(body).unwrap())).await
    }

    /// PUT JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, "application/json", Some(serde_json::to_vec(body).unwrap())).await
    }

    /// PATCH with a patch content type.
    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Reply {
        self.send("PATCH", path, content_type, Some(serde_json::to_vec(body).unwrap())).await
    }

    /// DELETE without a body.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, "", None).await
    }

    /// Opens a watch and returns a line reader over its events.
    pub async fn watch(&self, path: &str) -> WatchReader {
        let resp = self.http.get(self.url(path)).send().await.expect("watch opened");
        assert_eq!(resp.status().as_u16(), 200, "watch {path}");
        WatchReader { resp, buf: Vec::new() }
    }
}

/// Reads newline-delimited watch events.
pub struct WatchReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchReader {
    /// Reads events from an already-opened watch response.
    pub fn from_response(resp: reqwest::Response) -> Self {
        WatchReader { resp, buf: Vec::new() }
    }

    /// The next event, or None when the stream ends or nothing arrives within `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch event is JSON"));
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(secs), self.resp.chunk()).await.ok()?;
            match chunk {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    }
}

/// A ConfigMap manifest.
pub fn configmap(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// A Pod manifest with one container.
pub fn pod(name: &str, image: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image}]}})
}

/// A Deployment manifest.
pub fn deployment(name: &str, replicas: i64) -> Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}})
}
