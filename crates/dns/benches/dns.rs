//! Cluster DNS throughput from the in-memory zone: many concurrent UDP clients on 127.0.0.1,
//! each sending one query and waiting for its answer, against the rkube-dns server and, in
//! the same run, against a minimal UDP echo server (the transport floor: the same sockets and
//! packets with no DNS work at all). Prints queries per second, p50 and p99 for each, and the
//! ratios to the floor.
//!
//! The runs alternate round after round and each figure is the median over the rounds, so a
//! burst of load from elsewhere on the machine skews one round, not one kind of run.
//!
//! Usage: scripts/bench-dns [--clients N] [--seconds S] [--services N] [--rounds N]

use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_dns::{DnsServer, Forwarder, Zone, ZoneSettings};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

struct Args {
    clients: usize,
    seconds: u64,
    services: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args { clients: 32, seconds: 3, services: 1000, rounds: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok());
        match flag.as_str() {
            "--clients" => a.clients = value().map_or(a.clients, |v| v as usize),
            "--seconds" => a.seconds = value().unwrap_or(a.seconds),
            "--services" => a.services = value().map_or(a.services, |v| v as usize),
            "--rounds" => a.rounds = value().map_or(a.rounds, |v| v as usize),
            // cargo bench passes --bench; anything else is ignored too.
            _ => {}
        }
    }
    a.clients = a.clients.max(1);
    a.services = a.services.max(100);
    a.rounds = a.rounds.max(1);
    a
}

/// `services` ClusterIP Services plus one headless Service with 10 endpoints per 100 of them.
fn fill(zone: &Zone, services: usize) {
    for i in 0..services {
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 20)},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80}]}}))
        .expect("valid Service");
        zone.apply_service(&svc, &[]);
    }
    for h in 0..services / 100 {
        let name = format!("hl-{h}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns-0"}, "spec": {"clusterIP": "None"}}))
        .expect("valid Service");
        let endpoints: Vec<_> = (0..10)
            .map(|e| json!({"addresses": [format!("10.250.{h}.{}", e + 1)], "hostname": format!("{name}-{e}")}))
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-x"), "namespace": "ns-0", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints}))
        .expect("valid EndpointSlice");
        zone.apply_service(&svc, &[Arc::new(slice)]);
    }
    zone.mark_synced();
}

/// The encoded queries of a workload (ids are rewritten per send).
fn workload(kind: &str, services: usize) -> Vec<Vec<u8>> {
    let encode = |name: String, qtype: RecordType| {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(&name).expect("valid name"), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        m.edns = Some(edns);
        m.to_vec().expect("encodable")
    };
    let svc = |i: usize| format!("svc-{i}.ns-{}.svc.cluster.local.", i % 20);
    match kind {
        "a" => (0..services).map(|i| encode(svc(i), RecordType::A)).collect(),
        // What pods send: hits, search-path misses (NXDOMAIN), AAAA NODATA, SRV, headless.
        _ => (0..services)
            .flat_map(|i| {
                let mut v = vec![
                    encode(svc(i), RecordType::A),
                    encode(svc(i), RecordType::AAAA),
                    encode(format!("svc-{i}.ns-{}.svc.cluster.local.ns-0.svc.cluster.local.", i % 20), RecordType::A),
                ];
                if i % 10 == 0 {
                    v.push(encode(format!("_http._tcp.{}", svc(i)), RecordType::SRV));
                    v.push(encode(
                        format!("hl-{}.ns-0.svc.cluster.local.", (i / 100) % (services / 100)),
                        RecordType::A,
                    ));
                }
                v
            })
            .collect(),
    }
}

/// A UDP echo server: the least a UDP request/response server can do.
async fn echo_server(token: CancellationToken) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = socket.local_addr().expect("echo address");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        let _ = socket.send_to(&buf[..n], from).await;
                    }
                }
                _ = token.cancelled() => break,
            }
        }
    });
    addr
}

struct Outcome {
    qps: f64,
    p50: Duration,
    p99: Duration,
    lost: usize,
}

/// `clients` closed-loop clients sending `queries` round robin to `server` for `seconds`.
async fn load(server: SocketAddr, queries: Arc<Vec<Vec<u8>>>, clients: usize, seconds: u64) -> Outcome {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let queries = queries.clone();
        tasks.spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client bind");
            socket.connect(server).await.expect("client connect");
            let mut buf = vec![0u8; 4096];
            let (mut latencies, mut lost) = (Vec::with_capacity(100_000), 0usize);
            let mut i = c * 7919;
            let mut id: u16 = (c as u16).wrapping_mul(977);
            while Instant::now() < deadline {
                let mut q = queries[i % queries.len()].clone();
                i += 1;
                id = id.wrapping_add(1);
                q[..2].copy_from_slice(&id.to_be_bytes());
                let sent = Instant::now();
                if socket.send(&q).await.is_err() {
                    lost += 1;
                    continue;
                }
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
                        Ok(Ok(n)) if n >= 2 && buf[..2] == id.to_be_bytes() => {
                            latencies.push(sent.elapsed());
                            break;
                        }
                        // A late answer to an earlier, timed-out query.
                        Ok(Ok(_)) => continue,
                        _ => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            (latencies, lost)
        });
    }
    let (mut all, mut lost) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        let (l, n) = r.expect("client task");
        all.extend(l);
        lost += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    Outcome {
        qps: all.len() as f64 / elapsed,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
        lost,
    }
}

fn main() {
    let a = args();
    // The server gets its own two-thread runtime, the clients theirs: both compete for the
    // machine's cores the same way in every measurement.
    let server_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let client_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let token = CancellationToken::new();
    let zone = Zone::new(ZoneSettings::new("cluster.local", 30, 5).expect("domain"));
    let fill_started = Instant::now();
    fill(&zone, a.services);
    let fill_time = fill_started.elapsed();
    let (dns, echo) = server_rt.block_on(async {
        let server = DnsServer::start(
            &["127.0.0.1:0".parse().expect("address")],
            zone.clone(),
            Forwarder::new(vec![], Duration::from_secs(1)),
            token.clone(),
        )
        .await
        .expect("DNS server starts");
        (server.local_addrs()[0], echo_server(token.clone()).await)
    });
    println!(
        "rkube-dns bench: {} services (+{} headless x 10 endpoints) loaded in {:.1} ms; {} clients, {} s per run, UDP on 127.0.0.1",
        a.services,
        a.services / 100,
        fill_time.as_secs_f64() * 1e3,
        a.clients,
        a.seconds
    );
    let a_queries = Arc::new(workload("a", a.services));
    let mixed = Arc::new(workload("mixed", a.services));
    let runs =
        [("udp echo (floor)", echo, a_queries.clone()), ("dns A ClusterIP", dns, a_queries), ("dns mixed", dns, mixed)];
    // A short warm-up of each, not measured.
    for (_, addr, queries) in &runs {
        client_rt.block_on(load(*addr, queries.clone(), a.clients, 1));
    }
    let mut results: Vec<Vec<Outcome>> = runs.iter().map(|_| Vec::new()).collect();
    for round in 0..a.rounds {
        for (i, (name, addr, queries)) in runs.iter().enumerate() {
            let o = client_rt.block_on(load(*addr, queries.clone(), a.clients, a.seconds));
            println!("  round {}: {name:<18} {:>8.0} q/s", round + 1, o.qps);
            results[i].push(o);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{:<18} {:>10} {:>9} {:>9} {:>6} {:>9}",
        "median of rounds", "q/s", "p50 us", "p99 us", "lost", "vs floor"
    );
    let mut floor = None;
    for ((name, _, _), outcomes) in runs.iter().zip(results) {
        let qps = median(outcomes.iter().map(|o| o.qps).collect());
        let p50 = median(outcomes.iter().map(|o| o.p50.as_secs_f64() * 1e6).collect());
        let p99 = median(outcomes.iter().map(|o| o.p99.as_secs_f64() * 1e6).collect());
        let lost: usize = outcomes.iter().map(|o| o.lost).sum();
        let base = *floor.get_or_insert(qps);
        println!("{name:<18} {qps:>10.0} {p50:>9.0} {p99:>9.0} {lost:>6} {:>8.2}x", qps / base);
    }
    token.cancel();
}
