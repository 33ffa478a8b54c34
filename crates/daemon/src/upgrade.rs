//! Relaying an HTTP upgrade (SPDY, WebSocket) byte for byte: the API server does it towards the
//! kubelet, the kubelet towards containerd's stream server.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// Answers the client with `upstream`'s 101 (its headers included) and, once both sides have
/// switched protocols, copies bytes both ways until one side closes or `cancel` fires.
pub fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: &mut hyper::Response<hyper::body::Incoming>,
    cancel: CancellationToken,
) -> Response<Body> {
    let upstream_upgrade = hyper::upgrade::on(&mut *upstream);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in upstream.headers() {
        if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream_upgrade) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match r {
                Ok((up, down)) => tracing::debug!(bytes_up = up, bytes_down = down, "upgraded stream closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded stream ended with an error"),
            },
            _ = cancel.cancelled() => tracing::debug!("upgraded stream cut by shutdown"),
        }
    });
    out
}
