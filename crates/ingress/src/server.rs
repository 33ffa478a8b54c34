//! The client-facing listeners: plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge) and
//! HTTPS (TLS by SNI, HTTP/2 or HTTP/1.1 by ALPN), served by rkube-daemon's connection loop.

use crate::proxy::{ConnInfo, Proxy};
use rkube_daemon::serve::{Connection, connection_builder};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Accepts connections on `listener` until `cancel` fires, then drains them. With `tls`,
/// connections are TLS first.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    tls: Option<TlsAcceptor>,
    http2: bool,
    cancel: CancellationToken,
) {
    let handler = move |req, c: Arc<Connection>| {
        let proxy = proxy.clone();
        async move { proxy.handle(req, ConnInfo { remote: c.remote, local: c.local, tls: c.tls }).await }
    };
    rkube_daemon::serve::serve(listener, tls, connection_builder(http2), handler, cancel).await;
}
