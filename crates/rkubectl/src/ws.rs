//! WebSocket streams to the API server for exec, attach and port-forward, with the channel
//! protocol `v4.channel.k8s.io`: every binary message starts with a channel byte (0 stdin,
//! 1 stdout, 2 stderr, 3 a `metav1.Status` ending the command, 4 terminal resize; port-forward
//! uses 0 data and 1 error). The API server and the kubelet relay the upgrade to containerd's
//! stream server as it is, and containerd 1.6 speaks v4 but refuses v5, so v4 is all that is
//! offered. v4 has no way to close stdin alone: see [`run_session`].

use crate::client::UpgradeTarget;
use crate::error::{ApiError, Error, Result};
use futures::{SinkExt as _, StreamExt as _};
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::io::Write;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

/// The one subprotocol offered.
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";
/// Channel bytes of the remote-command protocol.
pub const STDIN: u8 = 0;
/// Standard output of the remote process.
pub const STDOUT: u8 = 1;
/// Standard error of the remote process.
pub const STDERR: u8 = 2;
/// The final `metav1.Status`.
pub const STATUS: u8 = 3;
/// Terminal size changes (`{"Width":..,"Height":..}`).
pub const RESIZE: u8 = 4;
/// The largest stdin payload sent in one message.
const MAX_CHUNK: usize = 32 * 1024;

/// A byte stream a WebSocket can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open channel-protocol connection.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Opens a WebSocket to `path` (with its query) on the API server, offering `v4.channel.k8s.io`.
pub async fn connect(target: &UpgradeTarget, path: &str) -> Result<Socket> {
    let url = format!("{}{}", target.base.trim_end_matches('/'), path);
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| Error::Config(format!("invalid server URL {:?}", target.base)))?;
    let tls = match scheme {
        "https" => true,
        "http" => false,
        other => return Err(Error::Config(format!("unsupported server URL scheme {other:?}"))),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
    let mut request = format!("{}://{rest}", if tls { "wss" } else { "ws" })
        .into_client_request()
        .map_err(|e| Error::Config(format!("invalid stream URL {url:?}: {e}")))?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(V4_CHANNEL));
    for (name, value) in [("Authorization", &target.auth), ("Impersonate-User", &target.impersonate)] {
        if let Some(v) = value {
            let v = HeaderValue::from_str(v).map_err(|e| Error::Config(format!("invalid {name} header: {e}")))?;
            headers.insert(name, v);
        }
    }
    tracing::debug!(%url, "websocket upgrade");
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| connect_error(authority, &e))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let name = target.tls_server_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| host.clone());
        let name = ServerName::try_from(name).map_err(|e| Error::Config(format!("invalid TLS server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(target.tls.clone()).connect(name, tcp).await.map_err(|e| {
            Error::Connect(format!("Unable to connect to the server: {}", crate::client::error_chain(&e)))
        })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (socket, _) = tokio_tungstenite::client_async(request, io).await.map_err(upgrade_error)?;
    Ok(socket)
}

fn split_host_port(authority: &str, default: u16) -> Result<(String, u16)> {
    let bad = || Error::Config(format!("invalid server address {authority:?}"));
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => default,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().map_err(|_| bad())?)),
        None => Ok((authority.to_string(), default)),
    }
}

fn connect_error(hostport: &str, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Error::Connect(format!(
            "The connection to the server {hostport} was refused - did you specify the right host or port?"
        ))
    } else {
        Error::Connect(format!("Unable to connect to the server: dial tcp {hostport}: {e}"))
    }
}

/// A refused upgrade reads like client-go's: the server's Status message after
/// "unable to upgrade connection".
fn upgrade_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(resp) => {
            let body = resp.body().clone().unwrap_or_default();
            let api = ApiError::from_response(resp.status().as_u16(), &body);
            let is_status = serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["kind"] == "Status");
            if is_status || matches!(api.code, 401 | 403 | 404) {
                Error::Api(api)
            } else {
                Error::usage(format!("unable to upgrade connection: {}", api.message))
            }
        }
        other => Error::usage(format!("unable to upgrade connection: {other}")),
    }
}

/// How a remote command ended, from the status channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0 (or the stream ended without a status).
    Success,
    /// A non-zero exit code.
    Exit(i32),
    /// Any other failure, with the server's message.
    Failure(String),
}

/// Reads the `metav1.Status` of channel 3 as client-go's v4 decoder does.
pub fn parse_status(bytes: &[u8]) -> Outcome {
    let Ok(status) = serde_json::from_slice::<Value>(bytes) else {
        return Outcome::Failure(format!("error stream protocol error: {:?}", String::from_utf8_lossy(bytes)));
    };
    match status["status"].as_str() {
        Some("Success") => Outcome::Success,
        Some("Failure") if status["reason"] == "NonZeroExitCode" => {
            let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
            let code = causes
                .iter()
                .find(|c| c["reason"] == "ExitCode")
                .and_then(|c| c["message"].as_str())
                .and_then(|m| m.parse::<u8>().ok());
            match code {
                Some(c) => Outcome::Exit(i32::from(c)),
                None => Outcome::Failure("error stream protocol error: no ExitCode cause given".into()),
            }
        }
        Some("Failure") => Outcome::Failure(status["message"].as_str().unwrap_or("unknown error").to_string()),
        _ => Outcome::Failure("error stream protocol error: unknown error".into()),
    }
}

/// The local ends of one remote-command session.
pub struct Session {
    /// Bytes for the remote stdin; `None` when stdin is not attached.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Terminal sizes (columns, rows) to send; `None` without a TTY.
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
    /// Where the remote stdout goes.
    pub stdout: Box<dyn Write + Send>,
    /// Where the remote stderr goes.
    pub stderr: Box<dyn Write + Send>,
    /// End the session this long after the local stdin ends (attach: containerd ends an
    /// attach when its stdin closes, which v4 cannot say, so the client does it).
    pub end_after_stdin: Option<std::time::Duration>,
}

/// Relays a session until the server closes the connection and returns the status it sent.
///
/// When the local stdin ends, nothing is sent: `v4.channel.k8s.io` cannot close one channel
/// (that came with v5, which containerd refuses), and closing the WebSocket would lose the
/// output and the exit code. A remote command that reads its input to the end therefore keeps
/// waiting; callers that know the length of their input (cp) bound it on the remote side.
pub async fn run_session(mut socket: Socket, mut s: Session) -> Result<Outcome> {
    let mut outcome = Outcome::Success;
    let mut status_seen = false;
    let mut stdout_ok = true;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            msg = socket.next() => {
                let Some(msg) = msg else { break };
                let msg = match msg {
                    Ok(m) => m,
                    // The server may drop the connection right after the status.
                    Err(_) if status_seen => break,
                    Err(e) => return Err(Error::Connect(format!("error reading the stream: {e}"))),
                };
                let data = match msg {
                    Message::Binary(b) => b.to_vec(),
                    Message::Text(t) => t.as_bytes().to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Some((&channel, payload)) = data.split_first() else { continue };
                match channel {
                    STDOUT if stdout_ok => {
                        stdout_ok = s.stdout.write_all(payload).and_then(|_| s.stdout.flush()).is_ok();
                    }
                    STDERR => {
                        let _ = s.stderr.write_all(payload).and_then(|_| s.stderr.flush());
                    }
                    STATUS if !payload.is_empty() => {
                        outcome = parse_status(payload);
                        status_seen = true;
                    }
                    _ => {}
                }
            }
            chunk = recv(&mut s.stdin) => {
                match chunk {
                    Some(bytes) => {
                        for part in bytes.chunks(MAX_CHUNK) {
                            let mut frame = Vec::with_capacity(part.len() + 1);
                            frame.push(STDIN);
                            frame.extend_from_slice(part);
                            if socket.send(Message::Binary(frame.into())).await.is_err() {
                                break;
                            }
                        }
                    }
                    None => {
                        s.stdin = None;
                        deadline = s.end_after_stdin.map(|d| tokio::time::Instant::now() + d);
                    }
                }
            }
            _ = until(deadline) => break,
            size = recv(&mut s.resize) => {
                match size {
                    Some((cols, rows)) => {
                        let mut frame = vec![RESIZE];
                        frame.extend_from_slice(format!("{{\"Width\":{cols},\"Height\":{rows}}}").as_bytes());
                        let _ = socket.send(Message::Binary(frame.into())).await;
                    }
                    None => s.resize = None,
                }
            }
        }
    }
    let _ = socket.close(None).await;
    Ok(outcome)
}

/// Sleeps until the deadline; pends forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Receives from an optional channel; pends forever when there is none.
async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_client_go() {
        assert_eq!(parse_status(br#"{"metadata":{},"status":"Success"}"#), Outcome::Success);
        let exit = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(parse_status(exit), Outcome::Exit(3));
        let failed = br#"{"status":"Failure","message":"OCI runtime exec failed: exec: \"nope\": not found"}"#;
        assert_eq!(parse_status(failed), Outcome::Failure("OCI runtime exec failed: exec: \"nope\": not found".into()));
        assert!(matches!(parse_status(b"garbage"), Outcome::Failure(_)));
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("127.0.0.1:6443", 443).ok(), Some(("127.0.0.1".into(), 6443)));
        assert_eq!(split_host_port("[::1]:8080", 443).ok(), Some(("::1".into(), 8080)));
        assert_eq!(split_host_port("example.com", 443).ok(), Some(("example.com".into(), 443)));
        assert!(split_host_port("h:x", 80).is_err());
    }
}
