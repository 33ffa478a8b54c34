//! Forwarding of names outside the cluster to the upstream resolvers: UDP first (TCP when the
//! client came over TCP), TCP again when the UDP reply is truncated, one upstream after the
//! other until one answers within the timeout.

use crate::ForwardError;
use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The UDP payload size we advertise upstream: DNS Flag Day 2020's size, which does not
/// fragment on common paths.
const UPSTREAM_PAYLOAD: u16 = 1232;

/// Sends queries to the upstream resolvers; clones share the list.
#[derive(Debug, Clone)]
pub struct Forwarder {
    upstreams: Arc<[SocketAddr]>,
    timeout: Duration,
}

/// The header bits of the client's query that travel upstream with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryFlags {
    /// RD: the client wants recursion.
    pub recursion_desired: bool,
    /// CD: the client does its own DNSSEC validation.
    pub checking_disabled: bool,
    /// DO: the client wants DNSSEC records.
    pub dnssec_ok: bool,
}

impl Forwarder {
    /// A forwarder to `upstreams`, in order, waiting `timeout` for each.
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Forwarder {
        Forwarder { upstreams: upstreams.into(), timeout }
    }

    /// The upstream resolvers.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The first usable reply to `query`: the first upstream that answers with anything but
    /// SERVFAIL/REFUSED wins; if every one fails that way, the last such reply.
    pub async fn forward(&self, query: &Query, flags: QueryFlags, tcp: bool) -> Result<Message, ForwardError> {
        let id: u16 = rand::random();
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = flags.recursion_desired;
        message.metadata.checking_disabled = flags.checking_disabled;
        message.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_PAYLOAD);
        edns.set_dnssec_ok(flags.dnssec_ok);
        message.edns = Some(edns);
        let mut last = Err(ForwardError::NoUpstreams);
        for &upstream in self.upstreams.iter() {
            let bytes = message.to_vec().map_err(|e| ForwardError::Message { upstream, message: e.to_string() })?;
            let reply = if tcp {
                self.exchange_tcp(upstream, &bytes, id, query).await
            } else {
                match self.exchange_udp(upstream, &bytes, id, query).await {
                    // The whole answer needs TCP; the truncated one is better than none.
                    Ok(short) if short.metadata.truncation => {
                        self.exchange_tcp(upstream, &bytes, id, query).await.or(Ok(short))
                    }
                    other => other,
                }
            };
            match reply {
                Ok(reply) if matches!(reply.metadata.response_code, ResponseCode::ServFail | ResponseCode::Refused) => {
                    tracing::debug!(%upstream, code = %reply.metadata.response_code, "upstream failed the query; trying the next");
                    last = Ok(reply);
                }
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    tracing::debug!(%upstream, error = %e, "upstream did not answer; trying the next");
                    if last.is_err() {
                        last = Err(e);
                    }
                }
            }
        }
        last
    }

    async fn exchange_udp(
        &self,
        upstream: SocketAddr,
        bytes: &[u8],
        id: u16,
        query: &Query,
    ) -> Result<Message, ForwardError> {
        let io = |source| ForwardError::Io { upstream, source };
        let local: SocketAddr = match upstream {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let exchange = async {
            // A fresh socket per query: a random source port, and replies from anyone but the
            // upstream are filtered by the kernel (connect).
            let socket = UdpSocket::bind(local).await.map_err(io)?;
            socket.connect(upstream).await.map_err(io)?;
            socket.send(bytes).await.map_err(io)?;
            let mut buf = vec![0u8; 65535];
            loop {
                let n = socket.recv(&mut buf).await.map_err(io)?;
                // Stray or spoofed datagrams (wrong id or question) are ignored.
                if let Ok(reply) = Message::from_vec(&buf[..n])
                    && answers(&reply, id, query)
                {
                    return Ok(reply);
                }
            }
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ForwardError::Timeout(upstream))?
    }

    async fn exchange_tcp(
        &self,
        upstream: SocketAddr,
        bytes: &[u8],
        id: u16,
        query: &Query,
    ) -> Result<Message, ForwardError> {
        let io = |source| ForwardError::Io { upstream, source };
        let bad = |message: String| ForwardError::Message { upstream, message };
        let exchange = async {
            let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
            let len = u16::try_from(bytes.len()).map_err(|_| bad("query too long".into()))?;
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(bytes);
            stream.write_all(&framed).await.map_err(io)?;
            let len = stream.read_u16().await.map_err(io)?;
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await.map_err(io)?;
            let reply = Message::from_vec(&buf).map_err(|e| bad(e.to_string()))?;
            if !answers(&reply, id, query) {
                return Err(bad("reply does not match the query".into()));
            }
            Ok(reply)
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| ForwardError::Timeout(upstream))?
    }
}

/// Whether `reply` answers our query `id` for `query`.
fn answers(reply: &Message, id: u16, query: &Query) -> bool {
    reply.metadata.id == id
        && reply.queries.first().is_some_and(|q| {
            q.query_type() == query.query_type() && q.query_class() == query.query_class() && q.name() == query.name()
        })
}
