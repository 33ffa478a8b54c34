//! rkube-bench: measures the API server against the raw etcd it stores into, in one run, on
//! the same machine, with the same value size and concurrency, and prints ratios.
//!
//! It starts its own etcd and rkube-apiserver (from the same target dir as this binary, or
//! `$RKUBE_BIN_DIR`), so the numbers compare like with like.

use anyhow::Context;
use clap::Parser;
use rkube_bench::{cpu_seconds, percentile, run_closed_loop};
use futures::StreamExt;
use rkube_rpc::v1 as pb;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(about = "rkube API server benchmark against raw etcd")]
struct Args {
    /// Operations per measured phase.
    #[arg(long, default_value_t = 4000)]
    ops: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Bytes of payload per object (ConfigMap data / etcd value).
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Watchers for the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Events sent to the watchers.
    #[arg(long, default_value_t = 50)]
    watch_events: usize,
}

/// Throughput, latency and server CPU of one phase.
struct Phase {
    name: &'static str,
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// CPU microseconds per operation spent by (etcd, rkube-apiserver).
    cpu_us_per_op: (f64, f64),
}

/// The processes whose CPU time each phase accounts.
#[derive(Clone, Copy)]
struct Pids {
    etcd: u32,
    apiserver: u32,
}

static PIDS: std::sync::OnceLock<Pids> = std::sync::OnceLock::new();

fn cpu_snapshot() -> (f64, f64) {
    PIDS.get().map(|p| (cpu_seconds(p.etcd), cpu_seconds(p.apiserver))).unwrap_or((0.0, 0.0))
}

/// Runs `op(i)` for i in 0..ops with `concurrency` workers; records each latency.
async fn measure<F, Fut>(name: &'static str, ops: usize, concurrency: usize, op: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let cpu_before = cpu_snapshot();
    let (elapsed, all) = run_closed_loop(ops, concurrency, op).await?;
    let cpu_after = cpu_snapshot();
    let per_op = |before: f64, after: f64| (after - before) * 1e6 / ops as f64;
    Ok(Phase {
        name,
        ops_per_sec: ops as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        cpu_us_per_op: (per_op(cpu_before.0, cpu_after.0), per_op(cpu_before.1, cpu_after.1)),
    })
}

fn print(p: &Phase) {
    println!(
        "{:<28} {:>8.0} ops/s   p50 {:>6.2} ms   p99 {:>6.2} ms   cpu/op: etcd {:>5.0} us, apiserver {:>5.0} us",
        p.name,
        p.ops_per_sec,
        ms(p.p50),
        ms(p.p99),
        p.cpu_us_per_op.0,
        p.cpu_us_per_op.1
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let etcd = rkube_testkit::Etcd::start()?;
    let api = rkube_testkit::ApiServer::start(&etcd)?;
    let _ = PIDS.set(Pids { etcd: etcd.pid().unwrap_or(0), apiserver: api.pid().unwrap_or(0) });
    let payload = "x".repeat(args.value_size);
    println!(
        "rkube-bench: {} ops per phase, {} clients, {} B values, {} watchers, {} cores",
        args.ops,
        args.concurrency,
        args.value_size,
        args.watchers,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    // Raw etcd: the same kind of value the API server stores for one ConfigMap.
    let sample = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bench-000000", "namespace": "default", "uid": "00000000-0000-0000-0000-000000000000", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"v": payload}}))?;
    let etcd_client = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let value = Arc::new(sample);
    let c = etcd_client.clone();
    let v = value.clone();
    let etcd_put = measure("etcd put (raw)", args.ops, args.concurrency, move |i| {
        let (mut c, v) = (c.clone(), v.clone());
        async move {
            c.put(format!("/bench/raw/{i:06}"), v.as_slice().to_vec(), None).await?;
            Ok(())
        }
    })
    .await?;
    // The same atomic create the API server does: put only if the key does not exist.
    let c = etcd_client.clone();
    let v = value.clone();
    let etcd_txn = measure("etcd create txn (raw)", args.ops, args.concurrency, move |i| {
        let (mut c, v) = (c.clone(), v.clone());
        async move {
            let key = format!("/bench/txn/{i:06}");
            let txn = etcd_client::Txn::new()
                .when([etcd_client::Compare::create_revision(key.clone(), etcd_client::CompareOp::Equal, 0)])
                .and_then([etcd_client::TxnOp::put(key, v.as_slice().to_vec(), None)]);
            anyhow::ensure!(c.txn(txn).await?.succeeded(), "txn create failed");
            Ok(())
        }
    })
    .await?;
    let c = etcd_client.clone();
    let etcd_get = measure("etcd range (raw)", args.ops, args.concurrency, move |i| {
        let mut c = c.clone();
        async move {
            c.get(format!("/bench/raw/{i:06}"), None).await?;
            Ok(())
        }
    })
    .await?;

    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;
    let base = api.url();
    let (h, b, p) = (http.clone(), base.clone(), payload.clone());
    let create = measure("apiserver create (REST)", args.ops, args.concurrency, move |i| {
        let (h, b, p) = (h.clone(), b.clone(), p.clone());
        async move {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("bench-{i:06}")}, "data": {"v": p}});
            let r = h.post(format!("{b}/api/v1/namespaces/default/configmaps")).json(&body).send().await?;
            anyhow::ensure!(r.status().as_u16() == 201, "create answered {}", r.status());
            Ok(())
        }
    })
    .await?;
    let (h, b) = (http.clone(), base.clone());
    let get = measure("apiserver get (REST)", args.ops, args.concurrency, move |i| {
        let (h, b) = (h.clone(), b.clone());
        async move {
            let r = h.get(format!("{b}/api/v1/namespaces/default/configmaps/bench-{i:06}")).send().await?;
            anyhow::ensure!(r.status().is_success(), "get answered {}", r.status());
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;

    let channel = tonic::transport::Endpoint::from_shared(base.clone())?.connect().await?;
    let grpc = pb::resource_service_client::ResourceServiceClient::new(channel);
    let p = payload.clone();
    let grpc_create = measure("apiserver create (gRPC)", args.ops, args.concurrency, move |i| {
        let (mut g, p) = (grpc.clone(), p.clone());
        async move {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("grpc-{i:06}")}, "data": {"v": p}});
            g.create(pb::CreateRequest {
                r#ref: Some(pb::ResourceRef { version: "v1".into(), resource: "configmaps".into(), namespace: "default".into(), ..Default::default() }),
                object: Some(pb::Object { data: serde_json::to_vec(&body)?, content_type: "application/json".into() }),
                options: None,
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    let list_ops = (args.ops / 10).max(10);
    let (h, b) = (http.clone(), base.clone());
    let list = measure("apiserver list 500 (REST)", list_ops, 4, move |_| {
        let (h, b) = (h.clone(), b.clone());
        async move {
            let r = h.get(format!("{b}/api/v1/namespaces/default/configmaps?limit=500")).send().await?;
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;

    let fanout = watch_fanout(&base, &args, &payload).await.context("watch fan-out")?;

    println!();
    for p in [&etcd_put, &etcd_txn, &etcd_get, &create, &grpc_create, &get, &list] {
        print(p);
    }
    println!(
        "watch fan-out: {} watchers x {} events, delivery latency p50 {:.2} ms  p99 {:.2} ms  ({} deliveries)",
        args.watchers,
        args.watch_events,
        ms(fanout.0),
        ms(fanout.1),
        fanout.2
    );
    println!();
    println!("ratio create(REST) / etcd put : {:.2}", create.ops_per_sec / etcd_put.ops_per_sec);
    println!("ratio create(gRPC) / etcd put : {:.2}", grpc_create.ops_per_sec / etcd_put.ops_per_sec);
    println!("ratio get(REST) / etcd range  : {:.2}", get.ops_per_sec / etcd_get.ops_per_sec);
    println!("ratio create(REST) / etcd create txn : {:.2}", create.ops_per_sec / etcd_txn.ops_per_sec);
    Ok(())
}

/// Opens `watchers` REST watches, writes `watch_events` updates each stamped with the send
/// time, and returns the p50/p99 of send-to-receive delay over all deliveries.
async fn watch_fanout(base: &str, args: &Args, payload: &str) -> anyhow::Result<(Duration, Duration, usize)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.watchers + 8).build()?;
    let path = format!("{base}/api/v1/namespaces/default/configmaps");
    let created = http.post(&path).json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fanout"}})).send().await?;
    anyhow::ensure!(created.status().as_u16() == 201, "fanout object: {}", created.status());
    let rv = created.json::<serde_json::Value>().await?["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let expected = args.watch_events;
    let mut tasks = Vec::new();
    let ready = Arc::new(AtomicUsize::new(0));
    for _ in 0..args.watchers {
        let url = format!("{path}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dfanout");
        let (http, ready) = (http.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let resp = http.get(url).send().await?;
            ready.fetch_add(1, Ordering::SeqCst);
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut delays = Vec::new();
            while delays.len() < expected {
                let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await? else { break };
                buf.extend_from_slice(&chunk?);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let received = now_micros();
                    let ev: serde_json::Value = serde_json::from_slice(&line)?;
                    if let Some(sent) = ev["object"]["data"]["sent"].as_str().and_then(|s| s.parse::<u128>().ok()) {
                        delays.push(Duration::from_micros(received.saturating_sub(sent) as u64));
                    }
                }
            }
            Ok::<_, anyhow::Error>(delays)
        }));
    }
    while ready.load(Ordering::SeqCst) < args.watchers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..args.watch_events {
        let body = json!({"data": {"sent": now_micros().to_string(), "i": i.to_string(), "pad": payload}});
        http.patch(format!("{path}/fanout"))
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(&body)?)
            .send()
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok((percentile(&all, 0.5), percentile(&all, 0.99), all.len()))
}
