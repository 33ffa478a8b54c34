//! Keep-alive HTTP/1.1 connections to backend endpoints. A connection goes back to its
//! endpoint's idle list when the response body has been read to the end, so the next request
//! reuses it; connections the backend closed are dropped when next looked at. Connecting is
//! separate from sending, so a refused connect can move on to the next endpoint before the
//! request body is touched. Endpoints that refused a connect are tried last for a while.

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The body sent upstream: the client's, or none (kept replayable for a retry).
pub type UpstreamRequestBody = Either<Incoming, Empty<Bytes>>;

/// Why a connection to an endpoint could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed (refused, unreachable).
    #[error("connecting to {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TCP connect took longer than the connect timeout.
    #[error("connecting to {0}: timed out")]
    Timeout(SocketAddr),
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        /// The endpoint.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// Pool limits.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// Idle connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// How long an endpoint that refused a connect is tried only after the others.
    pub fail_timeout: Duration,
}

struct Idle {
    sender: SendRequest<UpstreamRequestBody>,
    since: Instant,
}

#[derive(Default)]
struct EndpointState {
    idle: Vec<Idle>,
    down_until: Option<Instant>,
}

/// A connection handed out for one request.
pub struct Conn {
    /// The endpoint.
    pub addr: SocketAddr,
    /// The sender; ready for a request.
    pub sender: SendRequest<UpstreamRequestBody>,
    /// True when it served requests before (it may have been closed by the backend since).
    pub reused: bool,
}

/// Idle connections and endpoint health, shared by all requests.
pub struct Pool {
    config: PoolConfig,
    endpoints: Mutex<HashMap<SocketAddr, EndpointState>>,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool { config, endpoints: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, EndpointState>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `candidates` reordered so endpoints that recently refused connects come last.
    pub fn order(&self, candidates: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
        let now = Instant::now();
        let map = self.lock();
        let (mut up, down): (Vec<_>, Vec<_>) =
            candidates.partition(|a| map.get(a).and_then(|s| s.down_until).is_none_or(|until| until <= now));
        up.extend(down);
        up
    }

    /// Remembers that `addr` refused a connect.
    pub fn mark_down(&self, addr: SocketAddr) {
        self.lock().entry(addr).or_default().down_until = Some(Instant::now() + self.config.fail_timeout);
    }

    /// An idle connection to `addr`, if one is still open.
    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<UpstreamRequestBody>> {
        let mut map = self.lock();
        let state = map.get_mut(&addr)?;
        while let Some(idle) = state.idle.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < self.config.idle_timeout {
                return Some(idle.sender);
            }
        }
        None
    }

    /// A connection to `addr`: an idle one when there is one, else a new one.
    pub async fn checkout(&self, addr: SocketAddr) -> Result<Conn, ConnectError> {
        while let Some(mut sender) = self.take_idle(addr) {
            // A connection whose backend closed it fails here rather than on the request.
            if sender.ready().await.is_ok() {
                return Ok(Conn { addr, sender, reused: true });
            }
        }
        self.connect(addr).await
    }

    /// A new connection to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(self.config.connect_timeout, tokio::net::TcpStream::connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
            Err(_) => return Err(ConnectError::Timeout(addr)),
        };
        // Small request and response heads must not wait out Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(endpoint = %addr, error = %e, "backend connection ended with an error");
            }
        });
        if let Some(state) = self.lock().get_mut(&addr) {
            state.down_until = None;
        }
        Ok(Conn { addr, sender, reused: false })
    }

    /// Returns a connection whose last response was read to the end.
    pub fn checkin(&self, addr: SocketAddr, sender: SendRequest<UpstreamRequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut map = self.lock();
        let state = map.entry(addr).or_default();
        if state.idle.len() < self.config.max_idle_per_endpoint {
            state.idle.push(Idle { sender, since: Instant::now() });
        }
    }

    /// Idle connections kept, over all endpoints.
    pub fn idle_count(&self) -> usize {
        self.lock().values().map(|s| s.idle.len()).sum()
    }
}

/// A backend response body that hands its connection back to the pool once it has been read
/// to the end (a body dropped early takes its connection down with it).
pub struct UpstreamBody {
    inner: Incoming,
    finished: bool,
    checkin: Option<(Arc<Pool>, SocketAddr, SendRequest<UpstreamRequestBody>)>,
}

impl UpstreamBody {
    /// Wraps `inner`; `checkin` is where its connection goes when done (None: nowhere, as
    /// after an upgrade).
    pub fn new(inner: Incoming, checkin: Option<(Arc<Pool>, SocketAddr, SendRequest<UpstreamRequestBody>)>) -> Self {
        let mut body = UpstreamBody { finished: inner.is_end_stream(), inner, checkin };
        if body.finished {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((pool, addr, sender)) = self.checkin.take() {
            pool.checkin(addr, sender);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.finished = true;
                self.release();
            }
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.finished = true;
                self.release();
            }
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.finished || self.inner.is_end_stream() {
            self.release();
        }
    }
}
