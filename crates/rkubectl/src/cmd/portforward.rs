//! `port-forward`: local listeners whose every accepted connection gets its own WebSocket to
//! `pods/{name}/portforward?ports=P` (`v4.channel.k8s.io`: channel 0 carries the data, channel
//! 1 errors, and each channel's first two bytes are the port, little endian).

use crate::cmd::stream::{block_on, target_pod};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::resource::{enc, name_of};
use crate::ws;
use clap::Args;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// `port-forward`.
#[derive(Debug, Clone, Args)]
pub struct PortForwardArgs {
    /// POD | TYPE/NAME
    pub target: String,
    /// [LOCAL_PORT:]REMOTE_PORT ... (`:REMOTE` picks a free local port)
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on (comma-separated); `localhost` means 127.0.0.1 and ::1.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub address: Vec<String>,
}

/// One requested forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSpec {
    local: u16,
    remote: String,
}

fn parse_spec(text: &str) -> Result<PortSpec> {
    let bad = || Error::usage(format!("invalid port format '{text}'"));
    let (local, remote) = match text.split_once(':') {
        Some(("", r)) => (0, r),
        Some((l, r)) => (l.parse::<u16>().map_err(|_| bad())?, r),
        None => (u16::MAX, text),
    };
    if remote.is_empty() {
        return Err(bad());
    }
    // A bare number listens on the same port locally.
    let local = if local == u16::MAX { remote.parse::<u16>().map_err(|_| bad())? } else { local };
    Ok(PortSpec { local, remote: remote.to_string() })
}

/// The container port a name refers to, from the pod's container specs.
fn named_port(pod: &Value, name: &str) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

/// Resolves a remote port: a number, a container port name, or (for a Service) a service
/// port mapped to its targetPort.
fn remote_port(pod: &Value, service: Option<&Value>, remote: &str) -> Result<u16> {
    if let Some(svc) = service {
        let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let port =
            ports.iter().find(|p| p["name"] == remote || p["port"].as_u64().is_some_and(|n| n.to_string() == remote));
        let Some(port) = port else {
            return Err(Error::usage(format!(
                "Service {} does not have a service port {remote}",
                svc["metadata"]["name"].as_str().unwrap_or("")
            )));
        };
        return match &port["targetPort"] {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| bad_port(remote)),
            Value::String(name) => named_port(pod, name)
                .ok_or_else(|| Error::usage(format!("Pod '{}' does not have a named port '{name}'", name_of(pod)))),
            _ => port["port"].as_u64().and_then(|n| u16::try_from(n).ok()).ok_or_else(|| bad_port(remote)),
        };
    }
    if let Ok(n) = remote.parse::<u16>() {
        return if n == 0 { Err(bad_port(remote)) } else { Ok(n) };
    }
    named_port(pod, remote)
        .ok_or_else(|| Error::usage(format!("Pod '{}' does not have a named port '{remote}'", name_of(pod))))
}

fn bad_port(text: &str) -> Error {
    Error::usage(format!("invalid port format '{text}'"))
}

fn addresses(list: &[String]) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for a in list {
        match a.as_str() {
            "localhost" => out.extend([IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]),
            other => out.push(other.parse().map_err(|_| Error::usage(format!("{other} is not a valid IP")))?),
        }
    }
    Ok(out)
}

/// Runs `port-forward` until interrupted.
pub fn run(ctx: &mut Ctx, a: PortForwardArgs) -> Result<()> {
    let specs = a.ports.iter().map(|p| parse_spec(p)).collect::<Result<Vec<_>>>()?;
    let addrs = addresses(&a.address)?;
    let service = match a.target.split_once('/') {
        Some((ty, name)) => {
            let r = ctx.resource(ty)?;
            if r.kind == "Service" {
                let ns = ctx.namespace()?;
                Some(ctx.client()?.get(&r.item(&ns, name))?)
            } else {
                None
            }
        }
        None => None,
    };
    let (ns, pod) = target_pod(ctx, &a.target)?;
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if phase != "Running" {
        return Err(Error::usage(format!("unable to forward port because pod is not running. Current status={phase}")));
    }
    let mut forwards = Vec::new();
    for spec in &specs {
        forwards.push((spec.local, remote_port(&pod, service.as_ref(), &spec.remote)?));
    }
    let target = ctx.client()?.upgrade_target();
    let base = format!("/api/v1/namespaces/{}/pods/{}/portforward", enc(&ns), enc(name_of(&pod)));
    ctx.flush();
    block_on(async move {
        // A failed connection ends the whole command, as kubectl 1.33 does.
        let (lost_tx, mut lost_rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut tasks = Vec::new();
        for (mut local, remote) in forwards {
            let mut bound = 0;
            for ip in &addrs {
                let listener = match tokio::net::TcpListener::bind(SocketAddr::new(*ip, local)).await {
                    Ok(l) => l,
                    // ::1 may not exist (no IPv6): like kubectl, one working address is enough.
                    Err(e) if addrs.len() > 1 => {
                        tracing::debug!(address = %ip, error = %e, "cannot listen");
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::usage(format!("unable to listen on port {local}: {e}")));
                    }
                };
                let addr = listener.local_addr().map_err(Error::Io)?;
                // A free port picked for the first address is used for the others too.
                local = addr.port();
                bound += 1;
                println!("Forwarding from {addr} -> {remote}");
                let _ = std::io::stdout().flush();
                let (target, path) = (target.clone(), format!("{base}?ports={remote}"));
                tasks.push(tokio::spawn(accept_loop(listener, target, path, local, remote, lost_tx.clone())));
            }
            if bound == 0 {
                return Err(Error::usage(format!("unable to listen on any of the requested ports: [{local}]")));
            }
        }
        let lost = tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = lost_rx.recv() => true,
        };
        for t in tasks {
            t.abort();
        }
        if lost { Err(Error::usage("lost connection to pod")) } else { Ok(()) }
    })?
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    target: crate::client::UpgradeTarget,
    path: String,
    local: u16,
    remote: u16,
    lost: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        println!("Handling connection for {local}");
        let _ = std::io::stdout().flush();
        let (target, path, lost) = (target.clone(), path.clone(), lost.clone());
        tokio::spawn(async move {
            if let Err(e) = forward(conn, &target, &path, remote).await {
                let text = match e {
                    Error::Usage(m) => m,
                    other => other.to_string(),
                };
                eprintln!("an error occurred forwarding {local} -> {remote}: {text}");
                let _ = lost.try_send(());
            }
        });
    }
}

/// Relays one local connection over its own WebSocket until the pod side closes.
async fn forward(
    conn: tokio::net::TcpStream,
    target: &crate::client::UpgradeTarget,
    path: &str,
    remote: u16,
) -> Result<()> {
    let _ = conn.set_nodelay(true);
    let socket = ws::connect(target, path).await?;
    let (mut sink, mut stream) = socket.split();
    let (mut rd, mut wr) = conn.into_split();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // v4 cannot pass a half-close on: at EOF we stop sending and wait for the pod.
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut frame = Vec::with_capacity(n + 1);
            frame.push(0u8);
            frame.extend_from_slice(&buf[..n]);
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        sink
    });
    // Each channel starts with the 2-byte port; count what is still to skip per channel.
    let mut skip = [2usize, 2usize];
    let mut error = Vec::new();
    while let Some(msg) = stream.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b.to_vec(),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Some((&channel, mut payload)) = data.split_first() else { continue };
        let idx = usize::from(channel & 1);
        if channel > 1 {
            continue;
        }
        let n = skip[idx].min(payload.len());
        skip[idx] -= n;
        payload = &payload[n..];
        if payload.is_empty() {
            continue;
        }
        if idx == 0 {
            if wr.write_all(payload).await.is_err() {
                break;
            }
        } else {
            error.extend_from_slice(payload);
        }
    }
    let _ = wr.shutdown().await;
    up.abort();
    if !error.is_empty() {
        return Err(Error::usage(String::from_utf8_lossy(&error).trim().to_string()));
    }
    tracing::debug!(remote, "connection closed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn specs() {
        assert_eq!(parse_spec("8080").ok(), Some(PortSpec { local: 8080, remote: "8080".into() }));
        assert_eq!(parse_spec(":8080").ok(), Some(PortSpec { local: 0, remote: "8080".into() }));
        assert_eq!(parse_spec("5000:http").ok(), Some(PortSpec { local: 5000, remote: "http".into() }));
        assert!(parse_spec("x:80").is_err() && parse_spec("80:").is_err() && parse_spec("http").is_err());
    }

    #[test]
    fn remote_ports_resolve_names_and_service_targets() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]}});
        assert_eq!(remote_port(&pod, None, "80").ok(), Some(80));
        assert_eq!(remote_port(&pod, None, "web").ok(), Some(8080));
        assert!(remote_port(&pod, None, "nope").is_err());
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web"}, {"port": 81, "targetPort": 9000}]}});
        assert_eq!(remote_port(&pod, Some(&svc), "80").ok(), Some(8080));
        assert_eq!(remote_port(&pod, Some(&svc), "http").ok(), Some(8080));
        assert_eq!(remote_port(&pod, Some(&svc), "81").ok(), Some(9000));
        assert!(remote_port(&pod, Some(&svc), "82").is_err());
    }
}
