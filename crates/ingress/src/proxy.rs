//! One request through the ingress: route by Host and path, then forward to the backend's
//! endpoints round-robin over kept-alive HTTP/1.1 connections, moving on to the next endpoint
//! when a connect fails. Adds X-Forwarded-For/-Proto/-Host/-Port and X-Real-IP, drops
//! hop-by-hop headers both ways, relays protocol upgrades (WebSocket), and answers itself
//! only when it must: 404 (no rule, no default backend), 503 (no ready endpoint), 502 (no
//! endpoint reachable, or the backend broke the exchange), 504 (no response in time).

use crate::metrics::Metrics;
use crate::pool::{Conn, Pool, UpstreamBody, UpstreamRequestBody};
use crate::routes::Router;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the proxy answers with: a backend's body, or its own short text.
pub type ResponseBody = Either<UpstreamBody, Full<Bytes>>;

/// How requests are forwarded.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// How long to wait for a backend's response head.
    pub response_timeout: Duration,
    /// Endpoints tried per request (the first plus retries after connect failures).
    pub max_attempts: usize,
    /// Keep the client's X-Forwarded-* headers (appending to X-Forwarded-For) instead of
    /// replacing them: only when a trusted proxy sits in front.
    pub trust_forwarded_headers: bool,
}

/// The client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// True on the HTTPS listener.
    pub tls: bool,
}

/// The request handler shared by all connections.
pub struct Proxy {
    router: Arc<Router>,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    config: ProxyConfig,
}

/// The parts of a request needed to send it again (only for requests without a body).
struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn build(&self) -> Request<UpstreamRequestBody> {
        let mut req = Request::new(Either::Right(Empty::new()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// How one endpoint attempt ended.
enum Attempt {
    Answered(Response<Incoming>, Conn),
    /// No connection could be made, or the request was never sent: try the next endpoint.
    Refused(Request<UpstreamRequestBody>),
    /// The exchange broke after the request was (maybe partly) sent: not safe to repeat.
    Failed(hyper::Error),
    TimedOut,
}

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

impl Proxy {
    /// A proxy routing by `router`'s table through `pool`.
    pub fn new(router: Arc<Router>, pool: Arc<Pool>, metrics: Arc<Metrics>, config: ProxyConfig) -> Proxy {
        Proxy { router, pool, metrics, config }
    }

    /// Serves one request.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<ResponseBody> {
        let started = Instant::now();
        let host = request_host(&req).to_string();
        let path = req.uri().path().to_string();
        let response = self.forward(req, conn, &host).await;
        self.metrics.record_response(response.status().as_u16(), started.elapsed());
        tracing::debug!(
            client = %conn.remote, host = %host, path = %path, status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64, "request"
        );
        response
    }

    async fn forward(&self, mut req: Request<Incoming>, conn: ConnInfo, host: &str) -> Response<ResponseBody> {
        let table = self.router.table();
        let Some(backend) = table.route(host, req.uri().path()).cloned() else {
            return text(StatusCode::NOT_FOUND, "no Ingress rule matches this host and path\n");
        };
        drop(table);
        if backend.endpoints.is_empty() {
            return text(StatusCode::SERVICE_UNAVAILABLE, &format!("no ready endpoints for {}\n", backend.name));
        }
        let upgrade = (req.version() == Version::HTTP_11).then(|| upgrade_protocol(req.headers())).flatten();
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let headers =
            upstream_headers(&parts.headers, &parts.uri, host, conn, upgrade, self.config.trust_forwarded_headers);
        let uri = parts.uri.path_and_query().map(|pq| Uri::from(pq.clone())).unwrap_or_else(|| Uri::from_static("/"));
        let template = Template { method: parts.method, uri, headers };
        // A request without a body can be sent again if a kept-alive connection turns out to
        // have been closed by the backend just as it was used.
        let (mut pending, replayable) = if body.is_end_stream() {
            (template.build(), Some(&template))
        } else {
            let mut req = template.build();
            *req.body_mut() = Either::Left(body);
            (req, None)
        };
        let order = self.pool.order(backend.rotation());
        for (i, addr) in order.into_iter().take(self.config.max_attempts.max(1)).enumerate() {
            if i > 0 {
                self.metrics.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match self.attempt(addr, pending, replayable).await {
                Attempt::Answered(response, upstream) => return self.respond(response, upstream, client_upgrade),
                Attempt::Refused(req) => pending = req,
                Attempt::Failed(e) => {
                    tracing::warn!(backend = %backend.name, endpoint = %addr, error = %e, "backend exchange failed");
                    return text(StatusCode::BAD_GATEWAY, &format!("backend {} failed\n", backend.name));
                }
                Attempt::TimedOut => {
                    tracing::warn!(backend = %backend.name, endpoint = %addr, "backend response timed out");
                    return text(StatusCode::GATEWAY_TIMEOUT, &format!("backend {} timed out\n", backend.name));
                }
            }
        }
        text(StatusCode::BAD_GATEWAY, &format!("no endpoint of {} accepted a connection\n", backend.name))
    }

    async fn attempt(
        &self,
        addr: SocketAddr,
        mut req: Request<UpstreamRequestBody>,
        replayable: Option<&Template>,
    ) -> Attempt {
        let mut conn = match self.pool.checkout(addr).await {
            Ok(c) => c,
            Err(e) => {
                self.refused(addr, &e);
                return Attempt::Refused(req);
            }
        };
        let mut fresh_tried = false;
        loop {
            let reused = conn.reused;
            let sent = tokio::time::timeout(self.config.response_timeout, conn.sender.try_send_request(req)).await;
            let mut error = match sent {
                Err(_) => return Attempt::TimedOut,
                Ok(Ok(response)) => return Attempt::Answered(response, conn),
                Ok(Err(e)) => e,
            };
            let again = error.take_message().or_else(|| reused.then(|| replayable.map(Template::build)).flatten());
            let Some(again) = again else { return Attempt::Failed(error.into_error()) };
            if fresh_tried {
                return Attempt::Refused(again);
            }
            fresh_tried = true;
            req = again;
            conn = match self.pool.connect(addr).await {
                Ok(c) => c,
                Err(e) => {
                    self.refused(addr, &e);
                    return Attempt::Refused(req);
                }
            };
        }
    }

    fn refused(&self, addr: SocketAddr, error: &crate::pool::ConnectError) {
        self.metrics.connect_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pool.mark_down(addr);
        tracing::warn!(endpoint = %addr, error = %error, "endpoint refused a connection; trying the next");
    }

    fn respond(
        &self,
        mut response: Response<Incoming>,
        upstream: Conn,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = client_upgrade
        {
            let backend = hyper::upgrade::on(&mut response);
            let addr = upstream.addr;
            tokio::spawn(async move {
                match tokio::try_join!(client, backend) {
                    Ok((client, backend)) => {
                        let (mut c, mut b) = (TokioIo::new(client), TokioIo::new(backend));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                            tracing::debug!(endpoint = %addr, error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => tracing::debug!(endpoint = %addr, error = %e, "upgrade failed"),
                }
            });
            let (parts, body) = response.into_parts();
            return Response::from_parts(parts, Either::Left(UpstreamBody::new(body, None)));
        }
        strip_hop_by_hop(response.headers_mut());
        let (parts, body) = response.into_parts();
        let checkin = Some((self.pool.clone(), upstream.addr, upstream.sender));
        Response::from_parts(parts, Either::Left(UpstreamBody::new(body, checkin)))
    }
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form) or the Host header.
fn request_host<B>(req: &Request<B>) -> &str {
    if let Some(authority) = req.uri().authority() {
        return authority.as_str();
    }
    req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default()
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if asks { headers.get(header::UPGRADE).cloned() } else { None }
}

/// Removes hop-by-hop headers: the fixed list and whatever `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The headers a request goes upstream with.
fn upstream_headers(
    incoming: &HeaderMap,
    uri: &Uri,
    host: &str,
    conn: ConnInfo,
    upgrade: Option<HeaderValue>,
    trust: bool,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    if !headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, v);
    }
    let client_ip = conn.remote.ip().to_string();
    let forwarded_for = match incoming.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) if trust && !earlier.is_empty() => format!("{earlier}, {client_ip}"),
        _ => client_ip.clone(),
    };
    let mut set = |name: HeaderName, value: &str, keep_incoming: bool| {
        if keep_incoming && trust && incoming.contains_key(&name) {
            return;
        }
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(X_FORWARDED_FOR, &forwarded_for, false);
    set(X_FORWARDED_PROTO, if conn.tls { "https" } else { "http" }, true);
    if !host.is_empty() {
        set(X_FORWARDED_HOST, host, true);
    }
    set(X_FORWARDED_PORT, &conn.local.port().to_string(), true);
    set(X_REAL_IP, &client_ip, false);
    headers
}

/// A short plain-text answer of the proxy's own.
fn text(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "{} {}: {message}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(tls: bool) -> ConnInfo {
        ConnInfo { remote: "10.1.2.3:5555".parse().unwrap(), local: "0.0.0.0:443".parse().unwrap(), tls }
    }

    #[test]
    fn forwarded_headers_replace_untrusted_ones_and_hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.com"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("gopher"));
        h.insert("x-app", HeaderValue::from_static("kept"));
        let uri = Uri::from_static("/p");
        let out = upstream_headers(&h, &uri, "a.com", conn(true), None, false);
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-forwarded-host"], "a.com");
        assert_eq!(out["x-forwarded-port"], "443");
        assert_eq!(out["x-real-ip"], "10.1.2.3");
        assert_eq!(out["host"], "a.com");
        assert_eq!(out["x-app"], "kept");
        for gone in ["connection", "x-secret", "keep-alive"] {
            assert!(!out.contains_key(gone), "{gone} must not go upstream");
        }
        let trusted = upstream_headers(&h, &uri, "a.com", conn(false), None, true);
        assert_eq!(trusted["x-forwarded-for"], "6.6.6.6, 10.1.2.3");
        assert_eq!(trusted["x-forwarded-proto"], "gopher");
    }

    #[test]
    fn upgrades_keep_their_headers_and_http2_authority_becomes_host() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let upgrade = upgrade_protocol(&h);
        assert_eq!(upgrade.as_ref().map(|v| v.to_str().unwrap()), Some("websocket"));
        let uri = Uri::from_static("https://b.com:8443/ws");
        let out = upstream_headers(&h, &uri, "b.com:8443", conn(true), upgrade, false);
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
        assert_eq!(out["host"], "b.com:8443");
        assert_eq!(upgrade_protocol(&HeaderMap::new()), None);
    }

    #[test]
    fn hosts_come_from_the_authority_else_the_host_header() {
        let req = Request::builder().uri("https://x.com/p").header("host", "y.com").body(()).unwrap();
        assert_eq!(request_host(&req), "x.com");
        let req = Request::builder().uri("/p").header("host", "y.com:80").body(()).unwrap();
        assert_eq!(request_host(&req), "y.com:80");
        let req = Request::builder().uri("/p").body(()).unwrap();
        assert_eq!(request_host(&req), "");
    }
}
