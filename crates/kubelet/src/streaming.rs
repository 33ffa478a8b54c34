//! exec, attach and port-forward: the kubelet asks the CRI for a single-use URL on containerd's
//! stream server and relays the client's HTTP upgrade to it byte for byte.
//!
//! How a `kubectl exec` travels: kubectl first tries a WebSocket upgrade with the
//! `v5.channel.k8s.io` subprotocol (for port-forward, `SPDY/3.1+portforward.k8s.io` tunnelled in
//! a WebSocket). containerd 1.6's stream server does not speak either, so [`relay`] refuses such
//! a request with a 400 before touching the runtime; client-go treats any non-101 answer to its
//! WebSocket handshake as an upgrade failure and silently retries with SPDY/3.1
//! (`remotecommand.NewFallbackExecutor` / `portforward.NewFallbackDialer` with
//! `httpstream.IsUpgradeFailure`). The SPDY request (with its `X-Stream-Protocol-Version`
//! offers) is forwarded unchanged to containerd, whose `101 Switching Protocols` (with the version
//! it picked) goes back to the client, and from then on both connections are spliced. No stream
//! protocol is parsed here: TTYs, resize, stdin EOF and the exit-code status all work because
//! containerd and kubectl speak to each other directly. WebSocket clients that offer
//! `v4.channel.k8s.io` (the Python client) are relayed the same way, with the subprotocols
//! containerd refuses taken out of their offer.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// WebSocket subprotocols containerd 1.6's stream server refuses (with a 403).
const UNSUPPORTED_SUBPROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"];

/// Request headers that carry the upgrade negotiation; everything else stays on this hop.
const FORWARDED_REQUEST_HEADERS: [&str; 7] = [
    "upgrade",
    "connection",
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// How long connecting to the stream server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a refusal's body that is passed back.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Why a stream could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The request is not an HTTP/1.1 upgrade.
    #[error("unable to upgrade: missing upgrade headers in request")]
    NotUpgrade,
    /// Only subprotocols the runtime does not speak were offered.
    #[error(
        "none of the offered WebSocket subprotocols {offered:?} is supported by this node's container runtime; use SPDY/3.1 (kubectl falls back to it by itself)"
    )]
    UnsupportedSubprotocol {
        /// What the client offered.
        offered: Vec<String>,
    },
    /// The connection cannot be taken over (e.g. an HTTP/2 request).
    #[error("this connection cannot be upgraded")]
    NoUpgradeHandle,
    /// The runtime returned a URL that cannot be dialled.
    #[error("invalid stream URL {0:?} from the container runtime")]
    BadUrl(String),
    /// The stream server could not be reached.
    #[error("connecting to the container runtime's stream server at {addr}: {message}")]
    Connect {
        /// host:port.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The HTTP exchange with the stream server failed.
    #[error("talking to the container runtime's stream server: {0}")]
    Http(#[from] hyper::Error),
}

impl StreamError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            StreamError::NotUpgrade | StreamError::UnsupportedSubprotocol { .. } | StreamError::NoUpgradeHandle => {
                StatusCode::BAD_REQUEST
            }
            StreamError::BadUrl(_) | StreamError::Connect { .. } | StreamError::Http(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// Comma-separated tokens of every value of a header.
fn tokens(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether the request asks to switch protocols (`Connection: Upgrade` plus an `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && tokens(headers, header::CONNECTION).iter().any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Whether the upgrade asked for is a WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    tokens(headers, header::UPGRADE).iter().any(|t| t.eq_ignore_ascii_case("websocket"))
}

/// Checks that the request can be relayed to containerd: it must be an upgrade, and a WebSocket
/// upgrade must offer a subprotocol containerd speaks. Call it before asking the runtime for a
/// URL, so a request that will be refused costs nothing.
pub fn check(headers: &HeaderMap) -> Result<(), StreamError> {
    if !is_upgrade(headers) {
        return Err(StreamError::NotUpgrade);
    }
    if is_websocket(headers) {
        let offered = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL);
        if !offered.is_empty() && offered.iter().all(|p| UNSUPPORTED_SUBPROTOCOLS.contains(&p.as_str())) {
            return Err(StreamError::UnsupportedSubprotocol { offered });
        }
    }
    Ok(())
}

/// The headers sent upstream: the negotiation headers, with refused subprotocols dropped from
/// a WebSocket offer.
fn upstream_headers(headers: &HeaderMap, host: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in FORWARDED_REQUEST_HEADERS {
        for v in headers.get_all(name) {
            out.append(header::HeaderName::from_static(name), v.clone());
        }
    }
    if is_websocket(headers) {
        let kept: Vec<String> = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL)
            .into_iter()
            .filter(|p| !UNSUPPORTED_SUBPROTOCOLS.contains(&p.as_str()))
            .collect();
        out.remove(header::SEC_WEBSOCKET_PROTOCOL);
        if let Ok(v) = HeaderValue::from_str(&kept.join(", "))
            && !kept.is_empty()
        {
            out.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        out.insert(header::HOST, v);
    }
    out
}

/// Relays the upgrade request `req` to the stream server URL `target` (with `extra_query`
/// appended, for port-forward's `ports`). On `101 Switching Protocols` the returned response
/// carries upstream's negotiation headers and a task splices the two connections until either
/// side closes or `token` is cancelled; any other answer is passed back as it came.
pub async fn relay(
    mut req: Request<Body>,
    target: &str,
    extra_query: Option<&str>,
    token: CancellationToken,
) -> Result<Response<Body>, StreamError> {
    check(req.headers())?;
    let uri: Uri = target.parse().map_err(|_| StreamError::BadUrl(target.to_string()))?;
    let authority = uri.authority().ok_or_else(|| StreamError::BadUrl(target.to_string()))?.clone();
    if uri.scheme_str() != Some("http") {
        // containerd's stream server is plain HTTP on loopback unless TLS is configured for it.
        return Err(StreamError::BadUrl(target.to_string()));
    }
    let mut path = uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
    if let Some(q) = extra_query.filter(|q| !q.is_empty()) {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(q);
    }
    let client_upgrade =
        req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>().ok_or(StreamError::NoUpgradeHandle)?;

    let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let connect_err = |message: String| StreamError::Connect { addr: addr.clone(), message };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addr))
        .await
        .map_err(|_| connect_err(format!("timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "stream server connection ended");
        }
    });
    let mut upstream_req = Request::builder()
        .method(req.method().clone())
        .uri(path.as_str())
        .body(Body::empty())
        .map_err(|_| StreamError::BadUrl(target.to_string()))?;
    *upstream_req.headers_mut() = upstream_headers(req.headers(), authority.as_str());
    let mut resp = sender.send_request(upstream_req).await?;

    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let body = read_limited(resp.into_body()).await;
        tracing::debug!(%status, body = %String::from_utf8_lossy(&body), "stream server refused the upgrade");
        let mut out = Response::new(Body::from(body));
        *out.status_mut() = status;
        if let Some(ct) = content_type {
            out.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        return Ok(out);
    }

    Ok(rkube_daemon::upgrade::splice(client_upgrade, &mut resp, token))
}

/// The body of a refusal, or a note that it could not be read (it is only an error message).
async fn read_limited(body: hyper::body::Incoming) -> Bytes {
    axum::body::to_bytes(Body::new(body), MAX_ERROR_BODY)
        .await
        .unwrap_or_else(|e| Bytes::from(format!("(unreadable error body: {e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn spdy_upgrades_pass_and_plain_requests_do_not() {
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ]);
        assert!(check(&spdy).is_ok());
        let up = upstream_headers(&spdy, "127.0.0.1:1234");
        assert_eq!(up.get_all("x-stream-protocol-version").iter().count(), 2);
        assert_eq!(up.get(header::HOST).unwrap(), "127.0.0.1:1234");
        assert!(matches!(check(&headers(&[("upgrade", "SPDY/3.1")])), Err(StreamError::NotUpgrade)));
        assert!(matches!(check(&HeaderMap::new()), Err(StreamError::NotUpgrade)));
    }

    #[test]
    fn websocket_offers_lose_what_containerd_refuses() {
        // kubectl 1.33: v5 only for exec, tunnelled SPDY for port-forward: refused, so it falls back.
        for offer in ["v5.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"] {
            let ws = headers(&[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-protocol", offer),
            ]);
            assert!(matches!(check(&ws), Err(StreamError::UnsupportedSubprotocol { .. })), "{offer}");
        }
        // The Python client offers v4: relayed, without the v5 it may offer too.
        let ws = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "v5.channel.k8s.io, v4.channel.k8s.io"),
            ("sec-websocket-key", "abc"),
        ]);
        assert!(check(&ws).is_ok());
        let up = upstream_headers(&ws, "h:1");
        assert_eq!(up.get(header::SEC_WEBSOCKET_PROTOCOL).unwrap(), "v4.channel.k8s.io");
        assert_eq!(up.get(header::SEC_WEBSOCKET_KEY).unwrap(), "abc");
    }
}
