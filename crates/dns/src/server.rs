//! The DNS server: hickory-server's UDP and TCP listeners in front of a handler that answers
//! cluster names from the [`Zone`] and forwards the rest.

use crate::forward::{Forwarder, QueryFlags};
use crate::{Error, Zone};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, LowerName, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The largest UDP response we send, whatever the client advertises (DNS Flag Day 2020):
/// bigger answers are truncated and the client retries over TCP.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long an idle TCP connection stays open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many CNAME hops an ExternalName answer is followed inside the cluster.
const MAX_CNAME_HOPS: usize = 8;

/// A running DNS server.
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    task: JoinHandle<Result<(), Error>>,
}

impl DnsServer {
    /// Binds UDP and TCP on each of `listen` (port 0: a free port, the same for both) and
    /// serves until `token` is cancelled.
    pub async fn start(
        listen: &[SocketAddr],
        zone: Zone,
        forwarder: Forwarder,
        token: CancellationToken,
    ) -> Result<DnsServer, Error> {
        if listen.is_empty() {
            return Err(Error::NoListenAddress);
        }
        let mut server = hickory_server::Server::new(Handler { zone, forwarder });
        let mut addrs = Vec::new();
        for addr in listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            let bound = udp.local_addr().map_err(|source| Error::Bind { protocol: "udp", addr: *addr, source })?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64);
            addrs.push(bound);
        }
        tracing::info!(addrs = ?addrs, "cluster DNS listening (UDP and TCP)");
        let shutdown = server.shutdown_token().clone();
        let task = tokio::spawn(async move {
            tokio::select! {
                r = server.block_until_done() => r.map_err(|e| Error::Serve(e.to_string())),
                _ = token.cancelled() => {
                    shutdown.cancel();
                    server.block_until_done().await.map_err(|e| Error::Serve(e.to_string()))
                }
            }
        });
        Ok(DnsServer { addrs, task })
    }

    /// The addresses the server answers on (UDP and TCP each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Waits until the server has stopped (its token was cancelled, or its sockets failed).
    pub async fn wait(self) -> Result<(), Error> {
        self.task.await.map_err(|e| Error::Serve(e.to_string()))?
    }
}

/// A UDP socket and a TCP listener on the same address and port.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), Error> {
    let bind_err = |protocol, source| Error::Bind { protocol, addr, source };
    // A free UDP port may be taken for TCP: try a few.
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr).await.map_err(|e| bind_err("udp", e))?;
        let port = udp.local_addr().map_err(|e| bind_err("udp", e))?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_err("tcp", last.unwrap_or_else(|| std::io::Error::other("no attempt made"))))
}

/// Answers one request: cluster names from the zone, the rest from upstream.
struct Handler {
    zone: Zone,
    forwarder: Forwarder,
}

/// What goes into a response besides the request's header and question.
#[derive(Default)]
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    authentic_data: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn code(code: ResponseCode) -> Reply {
        Reply { code, ..Reply::default() }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns
        });
        let reply = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        metadata.response_code = reply.code;
        metadata.authoritative = reply.authoritative;
        metadata.authentic_data = reply.authentic_data;
        let message = MessageResponseBuilder::new(&request.queries, response_edns.as_ref()).build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            [],
            reply.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(client = %request.src(), error = %e, "sending a DNS response failed");
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Reply::code(ResponseCode::BADVERS);
        }
        if request.metadata.op_code != OpCode::Query {
            return Reply::code(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else { return Reply::code(ResponseCode::FormErr) };
        let query = info.query;
        let flags = QueryFlags {
            recursion_desired: request.metadata.recursion_desired,
            checking_disabled: request.metadata.checking_disabled,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        };
        let tcp = request.protocol() == Protocol::Tcp;
        if query.query_class() != DNSClass::IN {
            if self.zone.contains(query.name()) {
                return Reply::code(ResponseCode::Refused);
            }
            return self.forward(query.original(), flags, tcp).await;
        }
        let qtype = query.query_type();
        let Some(answer) = self.zone.lookup(query.name(), qtype) else {
            return self.forward(query.original(), flags, tcp).await;
        };
        let mut reply = Reply {
            code: answer.code,
            authoritative: answer.code != ResponseCode::ServFail,
            answers: answer.answers,
            authorities: answer.authorities,
            additionals: answer.additionals,
            ..Reply::default()
        };
        // An ExternalName is a CNAME: resolvers expect the records of its target too.
        let mut follow = answer.follow;
        for _ in 0..MAX_CNAME_HOPS {
            let Some(target) = follow.take() else { break };
            match self.zone.lookup(&LowerName::from(&target), qtype) {
                Some(next) => {
                    reply.code = next.code;
                    reply.answers.extend(next.answers);
                    reply.authorities = next.authorities;
                    reply.additionals = next.additionals;
                    follow = next.follow;
                }
                None => {
                    let outside = self.forward(&Query::query(target, qtype), flags, tcp).await;
                    // Upstream data is not ours to vouch for; a failed upstream leaves the CNAME alone.
                    if outside.code != ResponseCode::ServFail {
                        reply.authoritative = false;
                        reply.code = outside.code;
                        reply.answers.extend(outside.answers);
                        reply.authorities = outside.authorities;
                        reply.additionals = outside.additionals;
                    }
                }
            }
        }
        reply
    }

    async fn forward(&self, query: &Query, flags: QueryFlags, tcp: bool) -> Reply {
        match self.forwarder.forward(query, flags, tcp).await {
            Ok(message) => Reply {
                code: message.metadata.response_code,
                authoritative: message.metadata.authoritative,
                authentic_data: message.metadata.authentic_data,
                answers: message.answers,
                authorities: message.authorities,
                additionals: message.additionals,
            },
            Err(e) => {
                tracing::debug!(name = %query.name(), qtype = %query.query_type(), error = %e, "forwarding failed");
                Reply::code(ResponseCode::ServFail)
            }
        }
    }
}
