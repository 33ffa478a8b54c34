//! Test harness: a private network per test (a bridge with endpoint network namespaces on it
//! and a routed "outside" client namespace), real servers inside the namespaces, a real etcd
//! and API server, and the proxy programming a table of its own. Everything is named after
//! the test process and a counter so tests run in parallel, and removed on drop.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::Client;
use rkube_testkit::{ApiServer, Etcd};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The port every test server listens on, TCP and UDP.
pub const SERVER_PORT: u16 = 8080;
/// The node name the proxy runs as.
pub const NODE: &str = "node-a";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command, failing the test with its output when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("command runs");
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a command and returns its stdout, or its stderr as the error.
pub fn sh_out(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A private test network:
/// - bridge `rkp<pid><n>` with 172.X.Y.1/25 (the "pod network", hairpin on every port);
/// - endpoint namespaces at 172.X.Y.10+i, default route via the bridge;
/// - a client namespace at 172.X.Y.130/30 on its own veth (host side 172.X.Y.129, which
///   stands for the node address), so its traffic is routed, not bridged;
/// - a route for the Service range 10.A.Y.0/24 into the bridge, so the host's own traffic to
///   Service IPs does not depend on the machine's default route.
pub struct Net {
    /// Unique suffix, `<pid>-<n>`.
    pub id: String,
    /// The bridge.
    pub bridge: String,
    /// First three octets of the pod network.
    pub prefix: [u8; 3],
    /// The Service CIDR the API server allocates from.
    pub service_range: String,
    namespaces: Vec<String>,
    links: Vec<String>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A number unique among the tests running at once (process id and a counter), as
/// (high, low) parts: high < 16. Tests name their addresses and devices after it.
pub fn unique_slot() -> (usize, u8, u8) {
    let pid = std::process::id() as usize;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let index = (pid * 8 + n) % 4096;
    (n, (index / 256) as u8, (index % 256) as u8)
}

impl Net {
    /// Creates the bridge and the client namespace.
    pub fn new() -> Net {
        let pid = std::process::id();
        let (n, hi, lo) = unique_slot();
        let prefix = [172, 16 + hi, lo];
        let bridge = format!("rkp{pid:x}{n}");
        let mut net = Net {
            id: format!("{pid}-{n}"),
            bridge: bridge.clone(),
            prefix,
            service_range: format!("10.{}.{lo}.0/24", 128 + hi),
            namespaces: Vec::new(),
            links: vec![bridge.clone()],
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        // Devices left by a killed earlier run whose pid has come round again.
        for stale in [format!("{bridge}c"), bridge.clone()] {
            let _ = sh_out(&["ip", "link", "delete", &stale]);
        }
        sh(&["ip", "link", "add", &bridge, "type", "bridge"]);
        sh(&["ip", "addr", "add", &format!("{}/25", net.ip(1)), "dev", &bridge]);
        sh(&["ip", "link", "set", &bridge, "up"]);
        sh(&["ip", "route", "add", &net.service_range, "dev", &bridge]);

        let client = net.add_namespace("client");
        let host_end = format!("{bridge}c");
        sh(&["ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &client]);
        net.links.push(host_end.clone());
        sh(&["ip", "addr", "add", &format!("{}/30", net.node_ip()), "dev", &host_end]);
        sh(&["ip", "link", "set", &host_end, "up"]);
        sh(&["ip", "-n", &client, "addr", "add", &format!("{}/30", net.client_ip()), "dev", "eth0"]);
        sh(&["ip", "-n", &client, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &client, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &client, "route", "add", "default", "via", &net.node_ip().to_string()]);
        net
    }

    /// 172.X.Y.`last`.
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], last)
    }

    /// The pod network, for --cluster-cidr.
    pub fn pod_cidr(&self) -> String {
        format!("{}/25", self.ip(0))
    }

    /// The node address the outside client reaches node ports on.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.ip(129)
    }

    /// The outside client's address.
    pub fn client_ip(&self) -> Ipv4Addr {
        self.ip(130)
    }

    /// The outside client's namespace.
    pub fn client_ns(&self) -> String {
        format!("rkt-{}-client", self.id)
    }

    fn add_namespace(&mut self, suffix: &str) -> String {
        let name = format!("rkt-{}-{suffix}", self.id);
        // A namespace left by a killed earlier run with a recycled pid.
        let _ = sh_out(&["ip", "netns", "delete", &name]);
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        name
    }

    /// Endpoint `i`: a namespace on the bridge at 172.X.Y.(10+i) running TCP and UDP servers
    /// on [`SERVER_PORT`] that answer with `name` and the peer address they see.
    pub fn endpoint(&mut self, i: u8, name: &str) -> Ipv4Addr {
        let ns = self.add_namespace(&format!("ep{i}"));
        let host_end = format!("{}v{i}", self.bridge);
        let _ = sh_out(&["ip", "link", "delete", &host_end]);
        let ip = self.ip(10 + i);
        sh(&["ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        self.links.push(host_end.clone());
        sh(&["ip", "link", "set", &host_end, "master", &self.bridge]);
        sh(&["ip", "link", "set", &host_end, "type", "bridge_slave", "hairpin", "on"]);
        sh(&["ip", "link", "set", &host_end, "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/25"), "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns, "route", "add", "default", "via", &self.ip(1).to_string()]);
        self.serve(&ns, name);
        ip
    }

    /// The namespace of endpoint `i`.
    pub fn endpoint_ns(&self, i: u8) -> String {
        format!("rkt-{}-ep{i}", self.id)
    }

    fn serve(&mut self, ns: &str, name: &str) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for udp in [false, true] {
            let (ns, name, stop, ready) = (ns.to_string(), name.to_string(), self.stop.clone(), ready_tx.clone());
            self.threads.push(std::thread::spawn(move || {
                enter(&ns);
                if udp {
                    let socket = UdpSocket::bind(("0.0.0.0", SERVER_PORT)).expect("udp bind");
                    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                    ready.send(()).unwrap();
                    let mut buf = [0u8; 1500];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                            let _ = socket.send_to(format!("{name} {}", peer.ip()).as_bytes(), peer);
                        }
                    }
                } else {
                    let listener = TcpListener::bind(("0.0.0.0", SERVER_PORT)).expect("tcp bind");
                    listener.set_nonblocking(true).unwrap();
                    ready.send(()).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((conn, peer)) => {
                                let (name, stop) = (name.clone(), stop.clone());
                                std::thread::spawn(move || talk(conn, &name, peer, &stop));
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(5)),
                        }
                    }
                }
            }));
        }
        for _ in 0..2 {
            ready_rx.recv_timeout(Duration::from_secs(5)).expect("server listens");
        }
    }

    /// Runs `f` on a thread inside namespace `ns`.
    pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = ns.to_string();
        std::thread::spawn(move || {
            enter(&ns);
            f()
        })
        .join()
        .expect("namespace thread")
    }
}

/// Moves this thread into network namespace `ns`.
fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns exists");
    rustix::thread::move_into_link_name_space(file.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .expect("setns");
}

/// One TCP connection: a greeting `<name> <peer ip>`, then `<name>` for every line received.
fn talk(conn: TcpStream, name: &str, peer: SocketAddr, stop: &AtomicBool) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    if writeln!(writer, "{name} {}", peer.ip()).is_err() {
        return;
    }
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                if writeln!(writer, "{name}").is_err() {
                    return;
                }
                line.clear();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for ns in &self.namespaces {
            let _ = sh_out(&["ip", "netns", "delete", ns]);
        }
        for link in self.links.iter().rev() {
            let _ = sh_out(&["ip", "link", "delete", link]);
        }
    }
}

/// Connects to `addr` and reads the greeting: (server name, the client address it saw).
pub fn tcp_hello(addr: SocketAddr) -> std::io::Result<(String, String)> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    parse_greeting(&line)
}

/// Sends one datagram to `addr` and reads the answer: (server name, the client address it saw).
pub fn udp_hello(addr: SocketAddr) -> std::io::Result<(String, String)> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    socket.send(b"hi")?;
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf)?;
    parse_greeting(&String::from_utf8_lossy(&buf[..n]))
}

fn parse_greeting(text: &str) -> std::io::Result<(String, String)> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(name), Some(peer)) => Ok((name.to_string(), peer.to_string())),
        _ => Err(std::io::Error::other(format!("bad greeting {text:?}"))),
    }
}

/// An open connection to a test server through which lines can be echoed.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The server that answered.
    pub server: String,
}

impl Session {
    /// Opens a connection and reads the greeting.
    pub fn open(addr: SocketAddr) -> std::io::Result<Session> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let (server, _) = parse_greeting(&line)?;
        Ok(Session { reader, writer, server })
    }

    /// Sends a line and returns the server name it echoes.
    pub fn ping(&mut self) -> std::io::Result<String> {
        writeln!(self.writer, "ping")?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        Ok(line.trim().to_string())
    }

    /// Drains anything pending (unused; keeps the reader borrowed mutably in one place).
    pub fn close(mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
    }
}

/// A control plane (etcd + API server allocating Service IPs from the test's range) and a
/// client of it.
pub struct ControlPlane {
    /// The API client.
    pub client: Client,
    /// The API server.
    pub api: ApiServer,
    _etcd: Etcd,
}

impl ControlPlane {
    /// Starts etcd and an API server whose Service IPs come from `net`'s range.
    pub fn start(net: &Net) -> ControlPlane {
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start_with(&etcd, &["--service-cluster-ip-range", &net.service_range]).expect("apiserver");
        let client = Client::new(&api.url()).expect("client");
        ControlPlane { client, api, _etcd: etcd }
    }

    /// Creates a Service in `default` from a JSON spec; returns it as stored.
    pub async fn service(&self, name: &str, spec: Value) -> Service {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})).unwrap();
        self.client.api::<Service>(Some("default")).create(&svc).await.expect("service created")
    }

    /// Creates or replaces EndpointSlice `name` of Service `service` with `ports` and `endpoints`.
    pub async fn slice(&self, name: &str, service: &str, ports: Value, endpoints: Value) {
        let api = self.client.api::<EndpointSlice>(Some("default"));
        let mut slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
        }))
        .unwrap();
        match api.get_opt(name).await.unwrap() {
            Some(old) => {
                slice.metadata.resource_version = old.metadata.resource_version;
                api.update(&slice).await.expect("slice updated");
            }
            None => {
                api.create(&slice).await.expect("slice created");
            }
        }
    }
}

/// One endpoint entry for a slice.
pub fn endpoint(ip: Ipv4Addr, ready: bool, node: &str) -> Value {
    json!({"addresses": [ip.to_string()], "conditions": {"ready": ready, "serving": ready, "terminating": false}, "nodeName": node})
}

/// The proxy running in this process on its own table, removed on drop.
pub struct Proxy {
    /// The table.
    pub table: String,
    token: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), rkube_proxy::ProxyError>>>,
}

impl Proxy {
    /// The flags every test proxy gets: its own table, the test's pod network and node address.
    pub fn flags(net: &Net, cp: &ControlPlane) -> Vec<String> {
        [
            "--master",
            &cp.api.url(),
            "--nftables-table",
            &format!("rkt-{}", net.id),
            "--healthz-port",
            "0",
            "--dns=false",
            "--hostname-override",
            NODE,
            "--cluster-cidr",
            &net.pod_cidr(),
            "--nodeport-addresses",
            &format!("{}/32", net.node_ip()),
            "--min-sync-period",
            "50ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts the proxy with [`Proxy::flags`] plus `extra`, and waits for its table.
    pub async fn start(net: &Net, cp: &ControlPlane, extra: &[&str]) -> Proxy {
        let mut flags = Self::flags(net, cp);
        flags.extend(extra.iter().map(|s| s.to_string()));
        Self::start_with(flags).await
    }

    /// Starts the proxy with exactly `flags`, and waits for its table.
    pub async fn start_with(flags: Vec<String>) -> Proxy {
        let mut args = vec!["rkube-proxy".to_string()];
        args.extend(flags);
        // Later flags win, as with the daemon's own parsing.
        let config: rkube_proxy::Config =
            rkube_daemon::load_config_from(args.into_iter().map(Into::into).collect()).expect("flags parse");
        let table = config.nftables_table.clone();
        let token = CancellationToken::new();
        let task = Some(tokio::spawn(rkube_proxy::run(config, token.clone())));
        let proxy = Proxy { table, token, task };
        proxy.wait_rules("the table", |t| t.contains("chain nat-prerouting")).await;
        proxy
    }

    /// Stops the proxy (the table stays, as when the daemon exits).
    pub async fn stop(&mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("proxy task").expect("proxy ran");
        }
    }

    /// The table as nft lists it.
    pub fn listing(&self) -> String {
        sh_out(&["nft", "list", "table", "ip", &self.table]).unwrap_or_default()
    }

    /// Waits until the table listing satisfies `pred`; returns how long it took.
    pub async fn wait_rules(&self, what: &str, pred: impl Fn(&str) -> bool) -> Duration {
        wait_table(&self.table, what, pred).await
    }
}

/// Waits until table `table`'s listing satisfies `pred`; returns how long it took.
pub async fn wait_table(table: &str, what: &str, pred: impl Fn(&str) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let listing = sh_out(&["nft", "list", "table", "ip", table]).unwrap_or_default();
        if pred(&listing) {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(20) {
            panic!("timed out waiting for {what} in table {table}:\n{listing}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.token.cancel();
        // A sync already under way when the token fired could recreate the table.
        if self.task.is_some() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = sh_out(&["nft", "delete", "table", "ip", &self.table]);
    }
}

/// Runs blocking network calls off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The cluster IP of a stored Service.
pub fn cluster_ip(svc: &Service) -> Ipv4Addr {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).and_then(|ip| ip.parse().ok()).expect("cluster IP")
}

/// The node port of a stored Service's first port.
pub fn node_port(svc: &Service) -> u16 {
    let port = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).and_then(|p| p.first()).and_then(|p| p.node_port);
    u16::try_from(port.expect("node port")).expect("node port fits")
}

/// Asks the DNS server at `server` (UDP) for the A records of `name`.
pub fn dns_a(server: SocketAddr, name: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    // Header: id 0x1234, recursion desired, one question.
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send(&query)?;
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf)?;
    let msg = &buf[..n];
    let bad = || std::io::Error::other(format!("malformed DNS answer {msg:?}"));
    if n < 12 || msg[0..2] != [0x12, 0x34] {
        return Err(bad());
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(std::io::Error::other(format!("rcode {rcode}")));
    }
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    // Skip the question (our own encoding) and read each answer.
    let mut at = query.len();
    let mut out = Vec::new();
    for _ in 0..answers {
        // Name: a pointer (2 bytes) or labels ending in 0.
        loop {
            let len = *msg.get(at).ok_or_else(bad)?;
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + len as usize;
            if len == 0 {
                break;
            }
        }
        let field = |i: usize| msg.get(i).copied().ok_or_else(bad);
        let kind = u16::from_be_bytes([field(at)?, field(at + 1)?]);
        let len = u16::from_be_bytes([field(at + 8)?, field(at + 9)?]) as usize;
        at += 10;
        if kind == 1 && len == 4 {
            out.push(Ipv4Addr::new(field(at)?, field(at + 1)?, field(at + 2)?, field(at + 3)?));
        }
        at += len;
    }
    Ok(out)
}

/// Deletes an nftables table on drop: for a proxy run as a separate process, declare it before
/// the process so the process is killed first.
pub struct TableGuard(pub String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = sh_out(&["nft", "delete", "table", "ip", &self.0]);
    }
}
