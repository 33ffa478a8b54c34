//! The Node `proxy` subresource: `/api/v1/nodes/{name}/proxy[/{path...}]` forwarded to that
//! node's kubelet as `/{path...}`, with any method, the query, the headers (credentials aside)
//! and the body streamed both ways. `kubectl get --raw /api/v1/nodes/N/proxy/healthz` reads the
//! kubelet's health through it, and `rkubectl image load` posts archives of hundreds of MB to the
//! kubelet's `/images/load` through it without the API server holding them.
//!
//! Authorization happens before, as in Kubernetes: `nodes/proxy` with the verb of the method
//! (get, create, update, patch, delete; see [`crate::requestinfo`]), which among the bootstrap
//! roles only cluster-admin has. The kubelet is found as for pod logs (the Node's address and
//! kubelet port) and dialled with the API server's kubelet client credentials. An upgrade request
//! is relayed as one; the kubelet's answers, errors included, reach the client unchanged. A
//! request refused here (unauthorized, no such node, kubelet unreachable) has its body read and
//! dropped first, so an uploading client gets the refusal rather than a broken pipe.

use crate::Server;
use crate::rest::error_response;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rkube_api::ApiError;
use std::sync::Arc;

/// Headers that describe one hop, not the message: never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The most of a refused request's body read before answering.
const DRAIN_LIMIT: u64 = 1 << 30;
/// The longest a refused request's body is read before answering.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(60);

/// `(node, kubelet path)` when `path` is under a Node's `proxy` subresource.
fn parse(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/nodes/")?;
    let (name, tail) = rest.split_once('/')?;
    let tail = tail.strip_prefix("proxy")?;
    if name.is_empty() || !(tail.is_empty() || tail.starts_with('/')) {
        return None;
    }
    Some((name, if tail.is_empty() { "/" } else { tail }))
}

/// Whether `path` is served here rather than by the object handlers.
pub fn matches(path: &str) -> bool {
    parse(path).is_some()
}

/// Serves a request whose path [`matches`].
pub async fn handle(server: &Arc<Server>, req: Request) -> Response {
    match serve(server, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// Refuses a request whose path [`matches`] (authentication or authorization failed), after
/// reading what the client sends: see [`drain`].
pub async fn refuse(req: Request, err: &ApiError) -> Response {
    drain(req.into_body()).await;
    error_response(err)
}

/// Reads and drops a request body the proxy will not forward, within [`DRAIN_LIMIT`] and
/// [`DRAIN_TIME`]. An HTTP/1.1 client still sending an upload (an image archive) when the
/// connection closes under it sees a broken pipe, not the refusal; one that may finish sending
/// reads the Status.
async fn drain(body: Body) {
    let mut chunks = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut read = 0u64;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, chunks.next()).await {
        read += chunk.len() as u64;
        if read > DRAIN_LIMIT {
            return;
        }
    }
}

/// The client's headers the kubelet gets: not the hop-by-hop ones (an upgrade keeps `Upgrade`
/// and `Connection`), not the client's credentials (the API server authenticates to the kubelet
/// itself, and Kubernetes drops them once authenticated too), not `Host`.
fn forwarded_headers(headers: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        let hop = HOP_BY_HOP.contains(&n) || n == "upgrade";
        let credential = n == "authorization" || n == "cookie" || n.starts_with("impersonate-");
        let kept_for_upgrade = upgrade && (n == "upgrade" || n == "connection");
        if (hop && !kept_for_upgrade) || credential || n == "host" {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

async fn serve(server: &Arc<Server>, mut req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let (node, kubelet_path) =
        parse(&path).ok_or_else(|| ApiError::NotFound { resource: String::new(), name: path.clone() })?;
    let target = match req.uri().query() {
        Some(q) if !q.is_empty() => format!("{kubelet_path}?{q}"),
        _ => kubelet_path.to_string(),
    };
    let upgrade = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = if upgrade { req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() } else { None };
    let (parts, body) = req.into_parts();
    let ready = async {
        if upgrade && client_upgrade.is_none() {
            return Err(ApiError::BadRequest("this connection cannot be upgraded (use HTTP/1.1)".into()));
        }
        let address = crate::podproxy::kubelet_address(server, node).await?;
        let sender = server.kubelet.dial(&address).await?;
        Ok((address, sender))
    };
    let (address, mut sender) = match ready.await {
        Ok(r) => r,
        Err(e) => {
            drain(body).await;
            return Err(e);
        }
    };
    let headers = forwarded_headers(&parts.headers, upgrade);
    let method = parts.method.clone();
    tracing::debug!(node, kubelet = %address, %method, target = %target, "proxying to the kubelet");
    let body = if upgrade { Body::empty() } else { body };
    let mut upstream = hyper::Request::builder()
        .method(method.clone())
        .uri(&target)
        .body(body)
        .map_err(|e| ApiError::BadRequest(format!("cannot proxy {path}: {e}")))?;
    *upstream.headers_mut() = headers;
    if let Ok(host) = HeaderValue::from_str(&address) {
        upstream.headers_mut().insert(header::HOST, host);
    }
    let mut resp = sender.send_request(upstream).await.map_err(|e| {
        ApiError::ServiceUnavailable(format!(
            "error trying to reach the kubelet: {method} \"{}://{address}{target}\": {e}",
            server.kubelet.scheme()
        ))
    })?;
    if let Some(client_upgrade) = client_upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        return Ok(rkube_daemon::upgrade::splice(client_upgrade, &mut resp, server.shutdown.clone()));
    }
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in resp.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != header::UPGRADE {
            out_headers.append(HeaderName::clone(name), value.clone());
        }
    }
    // A stream the kubelet keeps open (a followed log) must not hold up the server's shutdown.
    let chunks = http_body_util::BodyStream::new(resp.into_body())
        .filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok::<_, hyper::Error>),
                Err(e) => Some(Err(e)),
            }
        })
        .take_until(server.shutdown.clone().cancelled_owned());
    let mut out = Response::new(Body::from_stream(chunks));
    *out.status_mut() = status;
    *out.headers_mut() = out_headers;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_node_proxy_subresource_matches() {
        assert_eq!(parse("/api/v1/nodes/n1/proxy"), Some(("n1", "/")));
        assert_eq!(parse("/api/v1/nodes/n1/proxy/"), Some(("n1", "/")));
        assert_eq!(parse("/api/v1/nodes/n1/proxy/healthz"), Some(("n1", "/healthz")));
        assert_eq!(parse("/api/v1/nodes/n1/proxy/images/load"), Some(("n1", "/images/load")));
        assert_eq!(parse("/api/v1/nodes/n1/proxy/containerLogs/a/b/c"), Some(("n1", "/containerLogs/a/b/c")));
        assert_eq!(parse("/api/v1/nodes/n1"), None);
        assert_eq!(parse("/api/v1/nodes/n1/status"), None);
        assert_eq!(parse("/api/v1/nodes/n1/proxyx"), None);
        assert_eq!(parse("/api/v1/nodes//proxy"), None);
        assert_eq!(parse("/api/v1/namespaces/d/pods/p/proxy"), None);
        assert_eq!(parse("/apis/x/v1/nodes/n1/proxy"), None);
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_here() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer secret"),
            ("impersonate-user", "bob"),
            ("cookie", "a=b"),
            ("host", "api:6443"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/x-tar"),
            ("content-length", "10"),
            ("accept", "*/*"),
            ("upgrade", "websocket"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let names = |m: &HeaderMap| {
            let mut v: Vec<String> = m.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(names(&forwarded_headers(&h, false)), ["accept", "content-length", "content-type"]);
        assert_eq!(
            names(&forwarded_headers(&h, true)),
            ["accept", "connection", "content-length", "content-type", "upgrade"]
        );
    }
}
