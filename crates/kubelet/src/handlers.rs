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
