//! Test harness: plain HTTP backends on loopback ports that say who they are, Services
//! without selectors with hand-written EndpointSlices pointing at them, TLS Secrets from a
//! test CA, and an HTTP(S) client that reports the certificate it was served.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use rkube_client::{Client, DeleteParams};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// A backend HTTP server answering every request with JSON naming itself and echoing what
/// it received.
pub struct TestBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// TCP connections it accepted.
    pub connections: Arc<AtomicUsize>,
    /// Requests it answered.
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBackend {
    /// Starts a backend named `name` on a free loopback port.
    pub async fn start(name: &str) -> TestBackend {
        Self::start_with(name, None).await
    }

    /// Like [`TestBackend::start`]; with `idle_close`, connections idle that long are closed
    /// by the backend (as many servers do), racing the proxy's reuse of them.
    pub async fn start_with(name: &str, idle_close: Option<Duration>) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r, name) = (connections.clone(), requests.clone(), format!("{name}@{}", addr.port()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, name) = (r.clone(), name.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        let (r, name) = (r.clone(), name.clone());
                        async move {
                            r.fetch_add(1, Ordering::SeqCst);
                            if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
                                // An "echo" protocol: after 101, every byte comes back.
                                let upgrade = hyper::upgrade::on(&mut req);
                                tokio::spawn(async move {
                                    if let Ok(upgraded) = upgrade.await {
                                        let (mut rd, mut wr) = tokio::io::split(TokioIo::new(upgraded));
                                        let _ = tokio::io::copy(&mut rd, &mut wr).await;
                                    }
                                });
                                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                                response.headers_mut().insert("connection", "upgrade".parse().unwrap());
                                response.headers_mut().insert("upgrade", "echo".parse().unwrap());
                                return Ok(response);
                            }
                            let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(String::from);
                            let mut echo = json!({
                                "backend": name,
                                "method": req.method().as_str(),
                                "path": req.uri().to_string(),
                                "host": header("host"),
                                "x-forwarded-for": header("x-forwarded-for"),
                                "x-forwarded-proto": header("x-forwarded-proto"),
                                "x-forwarded-host": header("x-forwarded-host"),
                                "x-real-ip": header("x-real-ip"),
                                "connection": header("connection"),
                            });
                            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            echo["body"] = json!(String::from_utf8_lossy(&body));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                                echo.to_string(),
                            ))))
                        }
                    });
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    if let Some(idle) = idle_close {
                        builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(idle);
                    }
                    let _ = builder.serve_connection(TokioIo::new(stream), service).with_upgrades().await;
                });
            }
        });
        TestBackend { addr, connections, requests, task }
    }
}

/// A loopback port nothing listens on.
pub async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A Service without selector (port `http` 80 -> 8080), so its EndpointSlices are ours to write.
pub async fn create_service(client: &Client, ns: &str, name: &str) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }))
    .unwrap();
    client.api::<Service>(Some(ns)).create(&svc).await.unwrap();
}

/// Writes (creates or replaces) EndpointSlice `slice` of Service `service`: ready endpoints
/// at 127.0.0.1 on `port` (one per entry of `ready`).
pub async fn put_slice(client: &Client, ns: &str, service: &str, slice: &str, port: u16, ready: &[bool]) {
    let endpoints: Vec<Value> = ready
        .iter()
        .map(|r| json!({"addresses": ["127.0.0.1"], "conditions": {"ready": r, "serving": r, "terminating": false}}))
        .collect();
    let mut obj: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": slice, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap();
    let api = client.api::<EndpointSlice>(Some(ns));
    match api.get_opt(slice).await.unwrap() {
        Some(existing) => {
            obj.metadata.resource_version = existing.metadata.resource_version;
            api.update(&obj).await.unwrap();
        }
        None => {
            api.create(&obj).await.unwrap();
        }
    }
}

/// A Service `name` whose endpoints are `backends` (one EndpointSlice each, as each listens
/// on its own port).
pub async fn service_for(client: &Client, ns: &str, name: &str, backends: &[&TestBackend]) {
    create_service(client, ns, name).await;
    for (i, b) in backends.iter().enumerate() {
        put_slice(client, ns, name, &format!("{name}-{i}"), b.addr.port(), &[true]).await;
    }
}

/// Creates or replaces an Ingress from JSON.
pub async fn put_ingress(client: &Client, ns: &str, value: Value) -> Ingress {
    let mut ing: Ingress = serde_json::from_value(value).unwrap();
    ing.metadata.namespace = Some(ns.into());
    let api = client.api::<Ingress>(Some(ns));
    let name = ing.metadata.name.clone().unwrap();
    match api.get_opt(&name).await.unwrap() {
        Some(existing) => {
            ing.metadata.resource_version = existing.metadata.resource_version;
            api.update(&ing).await.unwrap()
        }
        None => api.create(&ing).await.unwrap(),
    }
}

/// Deletes an object, ignoring "not found".
pub async fn delete<K>(client: &Client, ns: &str, name: &str)
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + k8s_openapi::serde::Serialize
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    match client.api::<K>(Some(ns)).delete(name, &DeleteParams::default()).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("deleting {name}: {e}"),
    }
}

/// A test CA issuing server certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate.
    pub cert: CertificateDer<'static>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "rkube ingress test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        TestCa { issuer: rcgen::Issuer::new(params, key), cert }
    }

    /// A certificate for `hosts`: (DER, PEM chain, PEM key).
    pub fn issue(&self, hosts: &[&str]) -> (CertificateDer<'static>, String, String) {
        let mut params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, hosts[0]);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), cert.pem(), key.serialize_pem())
    }

    /// A client configuration trusting only this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(rkube_ingress::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every handshake a full one, so each shows the certificate served now.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

/// Creates or replaces a kubernetes.io/tls Secret.
pub async fn put_tls_secret(client: &Client, ns: &str, name: &str, crt: &str, key: &str) {
    let data = BTreeMap::from([
        ("tls.crt".to_string(), k8s_openapi::ByteString(crt.as_bytes().to_vec())),
        ("tls.key".to_string(), k8s_openapi::ByteString(key.as_bytes().to_vec())),
    ]);
    let mut secret = Secret { data: Some(data), type_: Some("kubernetes.io/tls".into()), ..Default::default() };
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(ns.into());
    let api = client.api::<Secret>(Some(ns));
    match api.get_opt(name).await.unwrap() {
        Some(existing) => {
            secret.metadata.resource_version = existing.metadata.resource_version;
            api.update(&secret).await.unwrap();
        }
        None => {
            api.create(&secret).await.unwrap();
        }
    }
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON when it is JSON (a backend's echo), else Null.
    pub json: Value,
    /// The body.
    pub text: String,
    /// The certificate the server presented (HTTPS only).
    pub cert: Option<CertificateDer<'static>>,
}

impl Reply {
    /// The backend that answered (`name@port`), or "" for the proxy's own answers.
    pub fn backend(&self) -> &str {
        self.json["backend"].as_str().unwrap_or_default()
    }
}

async fn exchange<S>(io: S, host: &str, path: &str) -> anyhow::Result<(u16, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path).header("host", host).body(http_body_util::Empty::<Bytes>::new())?;
    let response = sender.send_request(req).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn reply(status: u16, text: String, cert: Option<CertificateDer<'static>>) -> Reply {
    Reply { status, json: serde_json::from_str(&text).unwrap_or(Value::Null), text, cert }
}

/// GET `path` from `addr` over plain HTTP with `Host: host`, on a new connection.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (status, text) = exchange(stream, host, path).await.unwrap();
    reply(status, text, None)
}

/// GET over HTTPS with SNI `host` (verified against `tls`' roots), on a new connection.
pub async fn https_get(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>, host: &str, path: &str) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let name = ServerName::try_from(host.to_string()).unwrap();
    let stream = connector.connect(name, stream).await.unwrap();
    let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
    let (status, text) = exchange(stream, host, path).await.unwrap();
    reply(status, text, cert)
}

/// Polls `check` every 20 ms until it returns Some, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The flags of an in-process ingress on free loopback ports against `api`.
pub fn ingress_config(api_url: &str, extra: &[&str]) -> rkube_ingress::Config {
    use clap::Parser;
    let mut args = vec![
        "rkube-ingress",
        "--master",
        api_url,
        "--listen-address",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "0",
        "--secure-port",
        "0",
        "--publish-address",
        "192.0.2.10",
    ];
    args.extend_from_slice(extra);
    rkube_ingress::Config::parse_from(args)
}
