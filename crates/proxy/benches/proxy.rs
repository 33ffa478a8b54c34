//! Rule sync time of rkube-proxy for N Services with 10 endpoints each, split into rkube's own
//! compute (Services and EndpointSlices -> model -> ruleset -> nft transaction text) and the
//! kernel apply (`nft -f` of that text), for a first full sync and for one endpoint changing.
//!
//! Baselines measured in the same run, in the same scratch network namespace:
//! - `nft -f` of an empty table: the fixed cost of one nft transaction;
//! - `iptables-restore` of the rules kube-proxy's iptables mode writes for the same Services
//!   (KUBE-SERVICES -> KUBE-SVC-* with `statistic` probabilities -> KUBE-SEP-* with DNAT):
//!   what loading the same routing costs the usual way (iptables-nft here).
//!
//! Everything runs inside a network namespace made for the run, so the host's rules are never
//! touched. Usage: `scripts/bench-proxy [--services 1000,10000] [--rounds 3]`.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::Store;
use rkube_proxy::nft::{self, Applied};
use rkube_proxy::proxier::{Proxier, SLICE_SERVICE_INDEX, collect_ports, slice_service};
use rkube_proxy::rules::{self, RulesConfig};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENDPOINTS: usize = 10;

fn main() {
    let mut sizes = vec![1000usize, 10000];
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--services" => {
                sizes = args.next().unwrap_or_default().split(',').filter_map(|s| s.trim().parse().ok()).collect()
            }
            "--rounds" => rounds = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds).max(1),
            "--bench" => {}
            "-h" | "--help" => {
                println!("usage: proxy [--services 1000,10000] [--rounds 3]");
                return;
            }
            other => eprintln!("ignoring argument {other:?}"),
        }
    }
    let ns = format!("rkbench-{}", std::process::id());
    run(&["ip", "netns", "add", &ns]);
    let entered = std::fs::File::open(format!("/run/netns/{ns}")).and_then(|f| {
        rustix::thread::move_into_link_name_space(f.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .map_err(std::io::Error::from)
    });
    if let Err(e) = entered {
        run(&["ip", "netns", "delete", &ns]);
        panic!("cannot enter the scratch namespace: {e}");
    }
    println!(
        "rkube-proxy rule sync, {ENDPOINTS} endpoints per Service, median of {rounds} rounds (scratch netns {ns})"
    );
    println!("load average at start: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("iptables baseline: {}", iptables_version());
    for &n in &sizes {
        bench(n, rounds);
    }
    run(&["ip", "netns", "delete", &ns]);
}

fn bench(n: usize, rounds: usize) {
    let (services, slices) = objects(n);
    let config = RulesConfig {
        node_name: "node-0".into(),
        cluster_cidrs: vec!["10.244.0.0/16".into()],
        nodeport_addresses: vec![],
        masquerade_all: false,
    };
    let table = "rkbench";

    // rkube's compute, full: caches -> model -> ruleset -> transaction text.
    let mut model_t = Vec::new();
    let mut build_t = Vec::new();
    let mut text_t = Vec::new();
    let mut script = String::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let ports = collect_ports(&services, &slices);
        model_t.push(t.elapsed());
        let t = Instant::now();
        let rs = rules::build(&config, &ports);
        build_t.push(t.elapsed());
        let t = Instant::now();
        script = nft::transaction(table, &Applied::default(), &rs).unwrap_or_default();
        text_t.push(t.elapsed());
    }
    let compute_full = median(&model_t) + median(&build_t) + median(&text_t);

    // Kernel apply of the full transaction into an empty table.
    let mut apply_full = Vec::new();
    let mut apply_cpu = Vec::new();
    for _ in 0..rounds {
        let _ = nft::delete_table(table);
        let (t, cpu) = (Instant::now(), children_cpu());
        nft::apply(&script).expect("nft applies the full ruleset");
        apply_full.push(t.elapsed());
        apply_cpu.push(children_cpu().saturating_sub(cpu));
    }
    let _ = nft::delete_table(table);

    // Through the Proxier: a first sync, then one endpoint changing at a time.
    let mut proxier = Proxier::new(table, config.clone());
    let first = proxier.sync(collect_ports(&services, &slices)).expect("first sync");
    let mut inc_compute = Vec::new();
    let mut inc_apply = Vec::new();
    let mut inc_bytes = 0;
    let mut nochange = Vec::new();
    for r in 0..rounds.max(5) {
        let key = format!("default/svc-{}-abcde", (r * 7919) % n);
        if let Some(old) = slices.get(&key) {
            let mut s = (*old).clone();
            if let Some(e) = s.endpoints.first_mut() {
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                e.conditions = Some(k8s_openapi::api::discovery::v1::EndpointConditions {
                    ready: Some(!ready),
                    serving: Some(!ready),
                    terminating: None,
                });
            }
            slices.insert(Arc::new(s));
        }
        let t = Instant::now();
        let ports = collect_ports(&services, &slices);
        let model = t.elapsed();
        let stats = proxier.sync(ports).expect("incremental sync");
        inc_compute.push(model + stats.compute);
        inc_apply.push(stats.apply);
        inc_bytes = stats.script_bytes;
        let t = Instant::now();
        let stats = proxier.sync(collect_ports(&services, &slices)).expect("no-op sync");
        assert!(!stats.changed);
        nochange.push(t.elapsed());
    }
    let _ = nft::delete_table(table);

    // Baselines.
    let mut empty = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        nft::apply("add table ip rkbench-empty\n").expect("empty table");
        empty.push(t.elapsed());
        let _ = nft::delete_table("rkbench-empty");
    }
    let restore_text = iptables_rules(&collect_ports(&services, &slices));
    let mut restore = Vec::new();
    let mut restore_cpu = Vec::new();
    for _ in 0..rounds {
        let (t, cpu) = (Instant::now(), children_cpu());
        if !iptables_restore(&restore_text) {
            break;
        }
        restore.push(t.elapsed());
        restore_cpu.push(children_cpu().saturating_sub(cpu));
    }
    let _ = iptables_restore("*nat\nCOMMIT\n");

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let apply_full = median(&apply_full);
    let empty = median(&empty);
    println!();
    println!(
        "== {n} Services x {ENDPOINTS} endpoints: {} chains, {} rules, {} KiB of nft text",
        first.chains,
        first.rules,
        script.len() / 1024
    );
    println!(
        "full sync   compute {:>10} (model {}, ruleset {}, text {})",
        ms(compute_full),
        ms(median(&model_t)),
        ms(median(&build_t)),
        ms(median(&text_t))
    );
    println!(
        "full sync   nft -f  {:>10} (nft CPU {})  = {:.0}x an empty-table transaction ({})",
        ms(apply_full),
        ms(median(&apply_cpu)),
        ratio(apply_full, empty),
        ms(empty)
    );
    if restore.is_empty() {
        println!("iptables-restore baseline unavailable");
    } else {
        let restore = median(&restore);
        println!(
            "baseline    iptables-restore of kube-proxy iptables-mode rules {:>10} (CPU {}); rkube full apply / that = {:.2} (CPU {:.2})",
            ms(restore),
            ms(median(&restore_cpu)),
            ratio(apply_full, restore),
            ratio(median(&apply_cpu), median(&restore_cpu))
        );
        println!(
            "one endpoint change: compute {} + nft -f {} ({} bytes) = {:.3} of a full iptables-restore",
            ms(median(&inc_compute)),
            ms(median(&inc_apply)),
            inc_bytes,
            ratio(median(&inc_compute) + median(&inc_apply), restore)
        );
    }
    println!("no-change sync (compute only, nft not run) {}", ms(median(&nochange)));
}

/// N Services (ClusterIP, one TCP port) with one EndpointSlice of 10 ready endpoints each.
fn objects(n: usize) -> (Store<Service>, Store<EndpointSlice>) {
    let services = Store::new();
    let slices = Store::new();
    slices.add_index(SLICE_SERVICE_INDEX, slice_service);
    for i in 0..n {
        let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
        let name = format!("svc-{i}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        }))
        .expect("service");
        services.insert(Arc::new(svc));
        let endpoints: Vec<_> = (0..ENDPOINTS)
            .map(|e| {
                let k = i * ENDPOINTS + e;
                json!({"addresses": [format!("10.{}.{}.{}", 128 + k / 65536, (k / 256) % 256, k % 256)],
                       "conditions": {"ready": true}, "nodeName": format!("node-{}", e % 3)})
            })
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints,
        }))
        .expect("slice");
        slices.insert(Arc::new(slice));
    }
    (services, slices)
}

/// kube-proxy iptables-mode rules for the same Service ports (nat table only).
fn iptables_rules(ports: &[rkube_proxy::model::ServicePort]) -> String {
    let mut out = String::from("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n");
    let mut rules = String::new();
    for (i, sp) in ports.iter().enumerate() {
        let svc = format!("KUBE-SVC-{i:08X}");
        let _ = writeln!(out, ":{svc} - [0:0]");
        for ip in &sp.cluster_ips {
            let _ = writeln!(rules, "-A KUBE-SERVICES -d {ip}/32 -p tcp -m tcp --dport {} -j {svc}", sp.port);
            let _ = writeln!(
                rules,
                "-A {svc} ! -s 10.244.0.0/16 -d {ip}/32 -p tcp -m tcp --dport {} -j KUBE-MARK-MASQ",
                sp.port
            );
        }
        let eps = sp.usable_endpoints(None);
        for (j, e) in eps.iter().enumerate() {
            let sep = format!("KUBE-SEP-{i:08X}{j:02X}");
            let _ = writeln!(out, ":{sep} - [0:0]");
            let left = eps.len() - j;
            if left > 1 {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / left as f64
                );
            } else {
                let _ = writeln!(rules, "-A {svc} -j {sep}");
            }
            let _ = writeln!(rules, "-A {sep} -s {}/32 -j KUBE-MARK-MASQ", e.ip);
            let _ = writeln!(rules, "-A {sep} -p tcp -m tcp -j DNAT --to-destination {}:{}", e.ip, e.port);
        }
    }
    out.push_str(&rules);
    out.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    out.push_str("-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\nCOMMIT\n");
    out
}

fn iptables_restore(text: &str) -> bool {
    let child =
        Command::new("iptables-restore").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!("iptables-restore failed: {}", String::from_utf8_lossy(&o.stderr));
            false
        }
        Err(_) => false,
    }
}

fn iptables_version() -> String {
    Command::new("iptables-restore")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "not installed".into())
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status();
    assert!(status.is_ok_and(|s| s.success()), "{args:?} failed");
}

/// CPU time (user + system) of the children this process has waited for, from
/// /proc/self/stat (cutime, cstime; 100 ticks a second): nft's own cost, independent of how
/// busy the machine is.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    // cutime and cstime are fields 16 and 17 of the whole line, 14th and 15th after ')'.
    let ticks = fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
