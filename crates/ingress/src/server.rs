//! The client-facing listeners: plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge) and
//! HTTPS (TLS by SNI, HTTP/2 or HTTP/1.1 by ALPN), each connection served by hyper with
//! upgrades allowed. On shutdown the listeners close, open connections finish the requests
//! in flight (up to a grace period) and then close.

use crate::proxy::{ConnInfo, Proxy};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head (also bounds idle keep-alive).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection settings shared by both listeners.
fn connection_builder(http2: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    if http2 { builder } else { builder.http1_only() }
}

/// Accepts connections on `listener` until `cancel` fires, then drains them. With `tls`,
/// connections are TLS first.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    tls: Option<TlsAcceptor>,
    http2: bool,
    cancel: CancellationToken,
) {
    let builder = Arc::new(connection_builder(http2));
    let graceful = GracefulShutdown::new();
    let is_tls = tls.is_some();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else { continue };
        let info = ConnInfo { remote, local, tls: is_tls };
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, info).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await,
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(client = %remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!(tls = is_tls, "connections still open after the shutdown grace period; closing them");
    }
}
