//! Ingress throughput and latency beside a direct connection, in the same run: a small
//! HTTP/1.1 backend in a process of its own (this binary again, so the direct path crosses
//! processes as the ingress path does); the real rkube-ingress binary (release) routing to it
//! from a real etcd + rkube-apiserver (Service without selector, hand-written EndpointSlice,
//! Ingress); then, for each concurrency level, N keep-alive clients hammer (1) the backend
//! directly, (2) the backend through the ingress over HTTP and (3) over HTTPS (TLS
//! terminated by the ingress), each for the same duration. Prints requests/s, p50 and p99
//! and the ratios ingress / direct.
//!
//! Usage: cargo bench -p rkube-ingress --bench ingress -- [--concurrency 1,32] [--seconds 5]
//! (scripts/bench-ingress builds the release binaries first).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use rkube_client::Client;
use rkube_testkit::{ApiServer, Daemon, Etcd};
use rustls_pki_types::ServerName;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const HOST: &str = "bench.example.com";
const BODY: &[u8] = b"hello from the backend, 48 bytes of payload....\n";

struct Options {
    concurrency: Vec<usize>,
    seconds: f64,
}

fn options() -> Options {
    let mut o = Options { concurrency: vec![1, 32], seconds: 5.0 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--concurrency" => {
                o.concurrency = value.split(',').filter_map(|v| v.trim().parse().ok()).filter(|&n| n > 0).collect();
                i += 1;
            }
            "--seconds" => {
                o.seconds = value.parse().unwrap_or(o.seconds);
                i += 1;
            }
            // cargo bench passes --bench; anything else is ignored too.
            _ => {}
        }
        i += 1;
    }
    if o.concurrency.is_empty() {
        o.concurrency = vec![1, 32];
    }
    o
}

/// Set in the environment of the backend process.
const BACKEND_ENV: &str = "RKUBE_INGRESS_BENCH_BACKEND";

/// The backend process' main: answers every request with the same small body; prints its
/// port, then serves until its stdin closes (the bench exited).
async fn backend_main() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    Ok(())
}

/// The backend process; killed on drop.
struct BackendProcess(std::process::Child);

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the backend process; its address.
fn backend() -> anyhow::Result<(BackendProcess, SocketAddr)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe()?)
        .env(BACKEND_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("backend has no stdout"))?;
    let process = BackendProcess(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let port: u16 = line.trim().parse().map_err(|_| anyhow::anyhow!("backend printed {line:?}, not a port"))?;
    Ok((process, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// How a client connects.
#[derive(Clone)]
enum Target {
    Plain(SocketAddr),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(target: &Target) -> anyhow::Result<Sender> {
    match target {
        Target::Plain(addr) => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
        Target::Tls(addr, config) => {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let stream =
                tokio_rustls::TlsConnector::from(config.clone()).connect(ServerName::try_from(HOST)?, stream).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            Ok(sender)
        }
    }
}

struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// `clients` keep-alive connections sending GETs back to back for `seconds`.
async fn load(target: Target, clients: usize, seconds: f64) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            let mut sender = match connect(&target).await {
                Ok(s) => s,
                Err(_) => return (latencies, 1),
            };
            while Instant::now() < deadline {
                let req = hyper::Request::get("/bench")
                    .header("host", HOST)
                    .body(Empty::<Bytes>::new())
                    .expect("static request");
                let t = Instant::now();
                let ok = match sender.send_request(req).await {
                    Ok(response) => response.status().is_success() && response.into_body().collect().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                    match connect(&target).await {
                        Ok(s) => sender = s,
                        Err(_) => break,
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Run { requests: all.len(), errors, seconds, latencies_us: all }
}

async fn setup(client: &Client, backend: SocketAddr, crt: &str, key: &str) -> anyhow::Result<()> {
    let ns = Some("default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": backend.port()}]},
    }))?;
    client.api::<Service>(ns).create(&svc).await?;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "bench-1", "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": backend.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [backend.ip().to_string()], "conditions": {"ready": true}}],
    }))?;
    client.api::<EndpointSlice>(ns).create(&slice).await?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bench-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    }))?;
    client.api::<Secret>(ns).create(&secret).await?;
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {
            "ingressClassName": "rkube",
            "tls": [{"hosts": [HOST], "secretName": "bench-tls"}],
            "rules": [{"host": HOST, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bench", "port": {"number": 80}}}}]}}],
        },
    }))?;
    client.api::<Ingress>(ns).create(&ingress).await?;
    Ok(())
}

/// CPU time (user + system) a process has used so far, in microseconds (USER_HZ is 100 on
/// Linux).
fn cpu_micros(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    ticks * 10_000
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os(BACKEND_ENV).is_some() {
        return backend_main().await;
    }
    let o = options();
    let etcd = Etcd::start()?;
    let api = ApiServer::start(&etcd)?;
    let client = Client::new(&api.url())?;
    let (_backend_process, backend) = backend()?;

    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = rcgen::CertificateParams::new(vec![HOST.to_string()])?.signed_by(&leaf_key, &issuer)?;
    setup(&client, backend, &leaf.pem(), &leaf_key.serialize_pem()).await?;

    let (http_port, https_port) = (free_port()?, free_port()?);
    let mut ingress = Daemon::start(
        "rkube-ingress",
        &api,
        &[
            "--listen-address=127.0.0.1",
            &format!("--http-port={http_port}"),
            &format!("--https-port={https_port}"),
            "--log-level=warn",
        ],
    )?;
    let via_http: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let via_https: SocketAddr = ([127, 0, 0, 1], https_port).into();
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = load(Target::Plain(via_http), 1, 0.05).await;
        if probe.requests > 0 {
            break;
        }
        if Instant::now() > ready_by || !ingress.is_running() {
            anyhow::bail!("rkube-ingress did not start routing:\n{}", ingress.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(rkube_ingress::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    println!(
        "rkube-ingress benchmark: GET of a {}-byte body from a backend process, keep-alive clients, {} s per run, {} cores",
        BODY.len(),
        o.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "{:>5}  {:<14} {:>10} {:>9} {:>9} {:>9} {:>7}   {:>11} {:>10}   {:>14}",
        "conns",
        "path",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "rate/direct",
        "p99/direct",
        "ingress cpu/req"
    );
    for &clients in &o.concurrency {
        // Warm up connections and caches on every path first.
        for t in [Target::Plain(backend), Target::Plain(via_http), Target::Tls(via_https, tls.clone())] {
            load(t, clients, 0.5).await;
        }
        let pid = ingress.pid();
        let direct = load(Target::Plain(backend), clients, o.seconds).await;
        let cpu = cpu_micros(pid);
        let http = load(Target::Plain(via_http), clients, o.seconds).await;
        let http_cpu = cpu_micros(pid) - cpu;
        let cpu = cpu_micros(pid);
        let https = load(Target::Tls(via_https, tls.clone()), clients, o.seconds).await;
        let https_cpu = cpu_micros(pid) - cpu;
        let per_request = |micros: u64, run: &Run| format!("{:.1} us", micros as f64 / run.requests.max(1) as f64);
        let rows = [
            ("direct", &direct, "-".to_string()),
            ("ingress http", &http, per_request(http_cpu, &http)),
            ("ingress https", &https, per_request(https_cpu, &https)),
        ];
        for (name, run, cpu) in rows {
            println!(
                "{:>5}  {:<14} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7}   {:>11.2} {:>10.2}   {:>14}",
                clients,
                name,
                run.rate(),
                run.percentile(0.50),
                run.percentile(0.90),
                run.percentile(0.99),
                run.errors,
                run.rate() / direct.rate(),
                run.percentile(0.99) / direct.percentile(0.99),
                cpu,
            );
        }
    }
    ingress.terminate();
    Ok(())
}
