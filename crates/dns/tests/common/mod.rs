//! Shared by the DNS tests: a DNS client speaking raw hickory messages (so every header bit
//! is visible) and a fake upstream resolver (a tiny hickory server with fixed answers).

#![allow(dead_code)]

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Message, Metadata, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A recursive query for `name` with EDNS advertising `payload` (None: no EDNS, 512 bytes).
pub fn query(name: &str, qtype: RecordType, payload: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand_id();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(p) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(p);
        m.edns = Some(edns);
    }
    m
}

pub fn rand_id() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    (NEXT.fetch_add(1, Ordering::Relaxed) % 65000) as u16 + 1
}

pub async fn ask_udp(server: SocketAddr, q: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("a UDP answer within 10s")
        .unwrap();
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(reply.metadata.id, q.metadata.id);
    reply
}

pub async fn ask_tcp(server: SocketAddr, q: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = q.to_vec().unwrap();
    stream.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; len as usize];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), read).await.expect("a TCP answer within 10s");
    let reply = Message::from_vec(&buf).unwrap();
    assert_eq!(reply.metadata.id, q.metadata.id);
    reply
}

pub async fn udp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    ask_udp(server, &query(name, qtype, Some(1232))).await
}

/// The answer section's data, sorted.
pub fn data(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

pub fn soa_in_authority(m: &Message) -> bool {
    m.authorities.iter().any(|r| r.record_type() == RecordType::SOA)
}

/// Polls until `f` holds, failing after 10 s with `what`.
pub async fn until<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// A fake upstream resolver: a hickory server with fixed answers, counting what it is asked.

/// How many queries the fake upstream got, by transport.
#[derive(Default)]
pub struct Counts {
    pub udp: AtomicUsize,
    pub tcp: AtomicUsize,
}

/// The fake upstream's handler: example.test, db.example.com, big.example.test (100 A records).
pub struct FakeUpstream {
    counts: Arc<Counts>,
}

#[async_trait::async_trait]
impl RequestHandler for FakeUpstream {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        match request.protocol() {
            Protocol::Tcp => self.counts.tcp.fetch_add(1, Ordering::Relaxed),
            _ => self.counts.udp.fetch_add(1, Ordering::Relaxed),
        };
        let query = request.request_info().unwrap().query;
        let name = query.name().to_string();
        let owner = Name::from(query.name());
        let a = |ip: Ipv4Addr| Record::from_rdata(owner.clone(), 60, RData::A(A(ip)));
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let answers: Vec<Record> = match (name.as_str(), query.query_type()) {
            ("example.test.", RecordType::A) => vec![a(Ipv4Addr::new(192, 0, 2, 1))],
            ("db.example.com.", RecordType::A) => vec![a(Ipv4Addr::new(192, 0, 2, 50))],
            // 100 addresses: more than fits the 1232 bytes a UDP query advertises.
            ("big.example.test.", RecordType::A) => (0..100u8).map(|i| a(Ipv4Addr::new(198, 51, 100, i))).collect(),
            _ => {
                metadata.response_code = ResponseCode::NXDomain;
                vec![]
            }
        };
        let edns = request.edns.as_ref().map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(e.max_payload());
            out
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        response.send_response(builder.build(metadata, answers.iter(), [], [], [])).await.unwrap()
    }
}

/// Starts the fake upstream on 127.0.0.1 (UDP and TCP on one free port).
pub async fn fake_upstream() -> (SocketAddr, Arc<Counts>, hickory_server::Server<FakeUpstream>) {
    let counts = Arc::new(Counts::default());
    let mut server = hickory_server::Server::new(FakeUpstream { counts: counts.clone() });
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let Ok(tcp) = TcpListener::bind(addr).await else { continue };
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        return (addr, counts, server);
    }
}
