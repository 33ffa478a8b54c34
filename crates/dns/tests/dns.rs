//! The cluster DNS server against a real etcd and API server: Services and EndpointSlices
//! created through rkube_client reach the answers through the informers; names outside the
//! cluster go to a fake upstream resolver (a tiny hickory server run by the test); UDP, TCP,
//! EDNS and truncation as real clients see them.

mod common;

use common::{ask_tcp, ask_udp, data, fake_upstream, query, soa_in_authority, udp, until};
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{Client, DeleteParams};
use rkube_dns::{DnsServer, Forwarder, Zone, ZoneSettings};
use rkube_testkit::{ApiServer, Etcd};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

fn localhost() -> Vec<SocketAddr> {
    vec!["127.0.0.1:0".parse().unwrap()]
}

fn settings() -> ZoneSettings {
    ZoneSettings::new("cluster.local", 30, 5).unwrap()
}

// ---------------------------------------------------------------------------------------------

/// One API server with a `demo` namespace.
async fn cluster() -> (Etcd, ApiServer, Client) {
    let etcd = Etcd::start().expect("etcd starts");
    let api = ApiServer::start(&etcd).expect("apiserver starts");
    let client = Client::new(&api.url()).unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    client.api::<Namespace>(None).create(&ns).await.unwrap();
    (etcd, api, client)
}

async fn create_service(client: &Client, v: serde_json::Value) -> Service {
    let s: Service = serde_json::from_value(v).unwrap();
    client.api::<Service>(Some("demo")).create(&s).await.unwrap()
}

fn slice(service: &str, name: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "demo", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_every_record_kind_from_the_informers_and_follows_changes() {
    let (_etcd, _api, client) = cluster().await;
    let (upstream, _counts, _up) = fake_upstream().await;
    let web = create_service(
        &client,
        json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "UDP"}]}}),
    )
    .await;
    let web_ip = web.spec.unwrap().cluster_ip.unwrap();
    create_service(
        &client,
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    )
    .await;
    create_service(
        &client,
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
    )
    .await;
    let slices = client.api::<EndpointSlice>(Some("demo"));
    slices
        .create(&slice(
            "web",
            "web-abc",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            json!([{"addresses": ["10.250.7.5"], "conditions": {"ready": true}}]),
        ))
        .await
        .unwrap();
    let db_slice = slices
        .create(&slice(
            "db",
            "db-abc",
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
            json!([
                {"addresses": ["10.250.7.10"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.250.7.11"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["10.250.7.12"], "hostname": "db-2", "conditions": {"ready": false}},
            ]),
        ))
        .await
        .unwrap();

    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let zone = Zone::new(settings());
    let server = DnsServer::start(
        &localhost(),
        zone.clone(),
        Forwarder::new(vec![upstream], Duration::from_secs(2)),
        token.clone(),
    )
    .await
    .unwrap();
    let dns = server.local_addrs()[0];
    tokio::spawn({
        let (client, token, zone) = (client.clone(), token.clone(), zone.clone());
        async move { rkube_dns::sync_zone(&client, zone, token).await }
    });
    until("the zone to sync", || async { zone.is_synced() }).await;

    // ClusterIP Service: A to the ClusterIP, authoritative, over UDP and TCP.
    let a = udp(dns, "web.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative && a.metadata.recursion_available);
    assert_eq!(data(&a), [web_ip.as_str()]);
    assert!(a.edns.is_some(), "EDNS in, EDNS out");
    let a = ask_tcp(dns, &query("web.demo.svc.cluster.local.", RecordType::A, None)).await;
    assert_eq!(data(&a), [web_ip.as_str()]);
    // Existing name, other type: NOERROR, no answers, SOA in authority.
    let txt = udp(dns, "web.demo.svc.cluster.local.", RecordType::TXT).await;
    assert_eq!(txt.metadata.response_code, ResponseCode::NoError);
    assert!(txt.answers.is_empty() && soa_in_authority(&txt));
    // Unknown names inside the domain: NXDOMAIN with SOA (the search-path misses included).
    // A resolver with `search demo.svc.cluster.local svc.cluster.local cluster.local` and
    // ndots:5 tries `web.demo` as web.demo.demo.svc.cluster.local first: NXDOMAIN, then
    // web.demo.svc.cluster.local (answered above).
    for name in [
        "nope.demo.svc.cluster.local.",
        "web.demo.svc.cluster.local.demo.svc.cluster.local.",
        "web.demo.demo.svc.cluster.local.",
        "web.demo.cluster.local.",
    ] {
        let nx = udp(dns, name, RecordType::A).await;
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(soa_in_authority(&nx), "{name}");
    }
    // SRV for named ports, with the target's address in the additional section.
    let srv = udp(dns, "_http._tcp.web.demo.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(data(&srv), ["0 100 80 web.demo.svc.cluster.local."]);
    assert_eq!(srv.additionals.iter().map(|r| r.data.to_string()).collect::<Vec<_>>(), [web_ip.as_str()]);
    let srv = udp(dns, "_metrics._udp.web.demo.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(data(&srv), ["0 100 9090 web.demo.svc.cluster.local."]);
    // PTR of the ClusterIP and of an endpoint.
    let octets: Vec<&str> = web_ip.split('.').rev().collect();
    let ptr = udp(dns, &format!("{}.in-addr.arpa.", octets.join(".")), RecordType::PTR).await;
    assert_eq!(data(&ptr), ["web.demo.svc.cluster.local."]);
    let ptr = udp(dns, "10.7.250.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(data(&ptr), ["db-0.db.demo.svc.cluster.local."]);

    // Headless Service: the ready endpoints only.
    let a = udp(dns, "db.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&a), ["10.250.7.10", "10.250.7.11"]);
    // StatefulSet-style names: <hostname>.<subdomain>.<ns>.svc.<domain>.
    let a = udp(dns, "db-1.db.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&a), ["10.250.7.11"]);
    let a = udp(dns, "db-2.db.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NXDomain, "an unready endpoint has no name");
    // SRV per endpoint, targets by hostname, their addresses as additionals.
    let srv = udp(dns, "_pg._tcp.db.demo.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(data(&srv), ["0 50 5432 db-0.db.demo.svc.cluster.local.", "0 50 5432 db-1.db.demo.svc.cluster.local."]);
    let mut extra: Vec<String> = srv.additionals.iter().map(|r| format!("{} {}", r.name, r.data)).collect();
    extra.sort();
    assert_eq!(extra, ["db-0.db.demo.svc.cluster.local. 10.250.7.10", "db-1.db.demo.svc.cluster.local. 10.250.7.11"]);

    // ExternalName: a CNAME, followed upstream to the target's address.
    let a = udp(dns, "ext.demo.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(a.answers[0].data.to_string(), "db.example.com.");
    assert_eq!(a.answers[1].data.to_string(), "192.0.2.50");

    // Changes show up: db-2 becomes ready and a fourth endpoint appears.
    let mut changed = db_slice.clone();
    changed.endpoints[2].conditions.as_mut().unwrap().ready = Some(true);
    changed.endpoints.push(serde_json::from_value(json!({"addresses": ["10.250.7.13"], "hostname": "db-3"})).unwrap());
    slices.update(&changed).await.unwrap();
    until("db-2 and db-3 in the headless answer", || async {
        data(&udp(dns, "db.demo.svc.cluster.local.", RecordType::A).await).len() == 4
    })
    .await;
    assert_eq!(data(&udp(dns, "db-3.db.demo.svc.cluster.local.", RecordType::A).await), ["10.250.7.13"]);
    // A deleted Service is gone, its PTR too.
    client.api::<Service>(Some("demo")).delete("web", &DeleteParams::default()).await.unwrap();
    until("web to be NXDOMAIN", || async {
        udp(dns, "web.demo.svc.cluster.local.", RecordType::A).await.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    let ptr = udp(dns, &format!("{}.in-addr.arpa.", octets.join(".")), RecordType::PTR).await;
    assert!(ptr.answers.is_empty(), "the ClusterIP's PTR went with the Service: {ptr:?}");
    // A new Service appears.
    create_service(&client, json!({"metadata": {"name": "late"}, "spec": {"ports": [{"port": 80}]}})).await;
    until("the new Service to resolve", || async {
        udp(dns, "late.demo.svc.cluster.local.", RecordType::A).await.answers.len() == 1
    })
    .await;
    // The apiserver's own `kubernetes` Service is there as in any cluster.
    let k = udp(dns, "kubernetes.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(data(&k), ["10.96.0.1"]);

    token.cancel();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_outside_names_with_tcp_fallback_and_timeouts() {
    let (upstream, counts, _up) = fake_upstream().await;
    // An upstream that never answers: its socket is bound but nobody reads it.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let zone = Zone::new(settings());
    zone.mark_synced();
    let forwarder = Forwarder::new(vec![dead_addr, upstream], Duration::from_millis(300));
    let server = DnsServer::start(&localhost(), zone.clone(), forwarder, token.clone()).await.unwrap();
    let dns = server.local_addrs()[0];

    // The dead upstream costs one timeout; the next one answers.
    let started = Instant::now();
    let a = udp(dns, "example.test.", RecordType::A).await;
    assert_eq!(data(&a), ["192.0.2.1"]);
    assert!(!a.metadata.authoritative && a.metadata.recursion_available);
    assert!(started.elapsed() >= Duration::from_millis(300), "the first upstream was tried first");
    assert_eq!(counts.udp.load(Ordering::Relaxed), 1);
    let nx = udp(dns, "missing.example.test.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain, "upstream NXDOMAIN is passed on");

    // A big answer: the UDP reply upstream is truncated, so the forwarder asks again over
    // TCP; a TCP client gets all of it, a UDP client a truncated reply and retries.
    let over_tcp = ask_tcp(dns, &query("big.example.test.", RecordType::A, None)).await;
    assert_eq!(over_tcp.answers.len(), 100);
    assert!(!over_tcp.metadata.truncation);
    let tcp_before = counts.tcp.load(Ordering::Relaxed);
    let over_udp = ask_udp(dns, &query("big.example.test.", RecordType::A, Some(1232))).await;
    assert!(over_udp.metadata.truncation, "100 A records do not fit 1232 bytes");
    assert!(over_udp.answers.len() < 100);
    assert_eq!(counts.tcp.load(Ordering::Relaxed), tcp_before + 1, "upstream UDP truncated -> TCP");
    let small = ask_udp(dns, &query("big.example.test.", RecordType::A, None)).await;
    assert!(small.metadata.truncation && small.to_vec().unwrap().len() <= 512, "no EDNS: 512 bytes at most");

    // Without upstreams, or when all of them time out: SERVFAIL.
    let lonely =
        DnsServer::start(&localhost(), zone.clone(), Forwarder::new(vec![], Duration::from_secs(1)), token.clone())
            .await
            .unwrap();
    let r = udp(lonely.local_addrs()[0], "example.test.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let deaf = DnsServer::start(
        &localhost(),
        zone.clone(),
        Forwarder::new(vec![dead_addr], Duration::from_millis(200)),
        token.clone(),
    )
    .await
    .unwrap();
    let r = udp(deaf.local_addrs()[0], "example.test.", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    drop(dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_truncation_and_malformed_queries() {
    let token = CancellationToken::new();
    let _guard = token.clone().drop_guard();
    let zone = Zone::new(settings());
    zone.mark_synced();
    // A headless Service with 100 ready endpoints: about 1.6 KB of A records.
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "many", "namespace": "demo"},
        "spec": {"clusterIP": "None"}}))
    .unwrap();
    let endpoints: Vec<serde_json::Value> =
        (0..100).map(|i| json!({"addresses": [format!("10.250.9.{}", i + 1)]})).collect();
    let slice = Arc::new(slice("many", "many-1", json!([]), json!(endpoints)));
    zone.apply_service(&svc, &[slice]);
    let server = DnsServer::start(&localhost(), zone, Forwarder::new(vec![], Duration::from_secs(1)), token.clone())
        .await
        .unwrap();
    let dns = server.local_addrs()[0];
    let name = "many.demo.svc.cluster.local.";

    let plain = ask_udp(dns, &query(name, RecordType::A, None)).await;
    assert!(plain.metadata.truncation, "100 A records do not fit 512 bytes");
    assert!(plain.edns.is_none(), "no EDNS in, none out");
    let big = ask_udp(dns, &query(name, RecordType::A, Some(4096))).await;
    assert!(big.metadata.truncation, "capped at 1232 bytes whatever the client says");
    assert!(big.answers.len() > plain.answers.len());
    assert_eq!(big.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let tcp = ask_tcp(dns, &query(name, RecordType::A, None)).await;
    assert_eq!(tcp.answers.len(), 100);
    assert!(!tcp.metadata.truncation);

    // EDNS version 1 is not spoken: BADVERS.
    let mut v1 = query(name, RecordType::A, Some(1232));
    v1.edns.as_mut().unwrap().set_version(1);
    let r = ask_udp(dns, &v1).await;
    // 16 is both BADVERS and BADSIG; decoders pick the latter name.
    assert_eq!(u16::from(r.metadata.response_code), u16::from(ResponseCode::BADVERS));
    assert!(r.edns.is_some(), "an extended RCODE needs the OPT record");
    // Opcodes other than QUERY: NOTIMP.
    let mut notify = query(name, RecordType::SOA, None);
    notify.metadata.op_code = OpCode::Notify;
    assert_eq!(ask_udp(dns, &notify).await.metadata.response_code, ResponseCode::NotImp);
    // Two questions in one message: FORMERR.
    let mut two = query(name, RecordType::A, None);
    two.add_query(Query::query(Name::from_ascii("x.cluster.local.").unwrap(), RecordType::A));
    assert_eq!(ask_udp(dns, &two).await.metadata.response_code, ResponseCode::FormErr);
    // Cluster names in another class: REFUSED, not forwarded.
    let mut chaos = query(name, RecordType::A, None);
    chaos.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(ask_udp(dns, &chaos).await.metadata.response_code, ResponseCode::Refused);
    // Garbage gets no answer and does not hurt the server.
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    junk.send_to(&[1, 2, 3], dns).await.unwrap();
    let plain = ask_udp(dns, &query(name, RecordType::A, None)).await;
    assert_eq!(plain.metadata.message_type, MessageType::Response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_from_flags_until_cancelled() {
    use clap::Parser;
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        dns: rkube_dns::Config,
    }
    let (_etcd, _api, client) = cluster().await;
    let (upstream, _counts, _up) = fake_upstream().await;
    // A port free for UDP and TCP at the moment.
    let port = loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let listen = format!("127.0.0.1:{port}");
    let flags = Flags::parse_from([
        "x",
        "--dns-listen",
        &listen,
        "--dns-upstream",
        &upstream.to_string(),
        "--cluster-domain",
        "corp.example",
        "--dns-ttl",
        "7s",
    ]);
    let token = CancellationToken::new();
    let run = tokio::spawn(rkube_dns::run(flags.dns, client, token.clone()));
    let dns: SocketAddr = listen.parse().unwrap();
    // Cluster names answer once the first lists are in; poll with short timeouts until then.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        assert!(Instant::now() < deadline, "no answer for kubernetes.default.svc.corp.example");
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let q = query("kubernetes.default.svc.corp.example.", RecordType::A, Some(1232));
        socket.send_to(&q.to_vec().unwrap(), dns).await.unwrap();
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await {
            let m = Message::from_vec(&buf[..n]).unwrap();
            if m.answers.len() == 1 {
                break m;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.answers[0].ttl, 7);
    assert_eq!(data(&udp(dns, "example.test.", RecordType::A).await), ["192.0.2.1"]);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("run stops when cancelled").unwrap().unwrap();
}
