//! The actions probes and lifecycle hooks run against a container: exec (CRI ExecSync),
//! httpGet, tcpSocket, gRPC health and sleep.

use crate::cri::{Cri, CriError};
use k8s_openapi::api::core::v1::{Container, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::time::Duration;

/// What one handler run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded.
    Success,
    /// Failed, with Kubernetes' wording of why.
    Failure(String),
}

/// Resolves a port given by number or by the container's named port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name} in container {}", container.name))
        }
    }
}

/// Runs `cmd` in the container; success is exit code 0.
pub async fn exec(cri: &Cri, container_id: &str, action: &ExecAction, timeout: Duration) -> Outcome {
    let cmd = action.command.clone().unwrap_or_default();
    match cri.exec_sync(container_id, cmd.clone(), timeout).await {
        Ok((0, _, _)) => Outcome::Success,
        Ok((code, stdout, stderr)) => {
            let mut out = String::from_utf8_lossy(&stdout).into_owned();
            out.push_str(&String::from_utf8_lossy(&stderr));
            if out.trim().is_empty() {
                Outcome::Failure(format!("command {cmd:?} exited with {code}"))
            } else {
                Outcome::Failure(out.trim_end().to_string())
            }
        }
        Err(CriError::DeadlineExceeded(_)) => {
            Outcome::Failure(format!("command {cmd:?} timed out after {}s", timeout.as_secs()))
        }
        Err(e) => Outcome::Failure(e.to_string()),
    }
}

/// The HTTP client of httpGet probes and hooks. Like Kubernetes' kubelet, it does not verify
/// the certificates of HTTPS targets: a pod's serving certificate is rarely for its IP, and a
/// probe checks liveness, not identity.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().danger_accept_invalid_certs(true).build().unwrap_or_default()
}

/// GETs the URL; success is a status in 200..400.
pub async fn http_get(
    http: &reqwest::Client,
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
    timeout: Duration,
) -> Outcome {
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let scheme = action.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
    let host = action.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    let path = action.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let url = format!("{scheme}://{host}:{port}{path}");
    let mut req = http.get(&url).timeout(timeout).header("User-Agent", "kube-probe/1.33");
    for h in action.http_headers.iter().flatten() {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    match req.send().await {
        Ok(resp) if (200..400).contains(&resp.status().as_u16()) => Outcome::Success,
        Ok(resp) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", resp.status().as_u16())),
        Err(e) if e.is_timeout() => Outcome::Failure(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => Outcome::Failure(format!("Get \"{url}\": {}", root_cause(&e))),
    }
}

/// Opens a TCP connection; success is that it connects.
pub async fn tcp(action: &TCPSocketAction, container: &Container, pod_ip: &str, timeout: Duration) -> Outcome {
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e),
    };
    let host = action.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Calls grpc.health.v1.Health/Check; success is SERVING.
pub async fn grpc(action: &GRPCAction, pod_ip: &str, timeout: Duration) -> Outcome {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let addr = format!("http://{pod_ip}:{}", action.port);
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(addr.clone()).map_err(|e| e.to_string())?.connect().await;
        let channel =
            channel.map_err(|e| format!("failed to connect service {:?} within {}s: {e}", addr, timeout.as_secs()))?;
        let service = action.service.clone().unwrap_or_default();
        let resp = HealthClient::new(channel)
            .check(HealthCheckRequest { service })
            .await
            .map_err(|s| format!("rpc error: code = {:?} desc = {}", s.code(), s.message()))?;
        Ok::<_, String>(resp.into_inner().status)
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(s)) if s == ServingStatus::Serving as i32 => Outcome::Success,
        Ok(Ok(s)) => Outcome::Failure(format!(
            "service unhealthy (responded with {:?})",
            ServingStatus::try_from(s).map(|s| s.as_str_name()).unwrap_or("UNKNOWN")
        )),
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
    }
}

/// The innermost error's text (reqwest wraps hyper wraps io).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPGetAction;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTPS server with a self-signed certificate answering every request with `status`.
    async fn https_server(status: u16) -> u16 {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    fn action(port: u16) -> HTTPGetAction {
        HTTPGetAction {
            scheme: Some("HTTPS".into()),
            port: IntOrString::Int(i32::from(port)),
            path: Some("/healthz".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn https_probes_do_not_verify_the_certificate() {
        let container = Container { name: "c".into(), ..Default::default() };
        let ok = https_server(200).await;
        let outcome = http_get(&http_client(), &action(ok), &container, "127.0.0.1", Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Success);
        let failing = https_server(503).await;
        let outcome = http_get(&http_client(), &action(failing), &container, "127.0.0.1", Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Failure("HTTP probe failed with statuscode: 503".into()));
    }
}
