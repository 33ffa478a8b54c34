//! `top pod|node`: usage from `metrics.k8s.io/v1beta1` in kubectl's columns (CPU in
//! millicores rounded up, memory in MiB rounded down, node percentages of allocatable).

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::resource::enc;
use clap::{Args, Subcommand};
use serde_json::Value;

/// `top ...`.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Display resource (CPU/memory) usage of pods.
    #[command(alias = "pods", alias = "po")]
    Pod(TopPodArgs),
    /// Display resource (CPU/memory) usage of nodes.
    #[command(alias = "nodes", alias = "no")]
    Node(TopNodeArgs),
}

/// `top pod`.
#[derive(Debug, Clone, Args)]
pub struct TopPodArgs {
    /// Pod name (all pods when omitted).
    pub name: Option<String>,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Print usage per container.
    #[arg(long)]
    pub containers: bool,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by `cpu` or `memory` (highest first).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Print the sum of the usage.
    #[arg(long)]
    pub sum: bool,
}

/// `top node`.
#[derive(Debug, Clone, Args)]
pub struct TopNodeArgs {
    /// Node name (all nodes when omitted).
    pub name: Option<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by `cpu` or `memory` (highest first).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Percentages of capacity instead of allocatable.
    #[arg(long)]
    pub show_capacity: bool,
}

/// Runs `top`.
pub fn run(ctx: &mut Ctx, cmd: TopCommand) -> Result<()> {
    match cmd {
        TopCommand::Pod(a) => pods(ctx, a),
        TopCommand::Node(a) => nodes(ctx, a),
    }
}

/// A quantity in billionths of its unit (nanocores, nanobytes), exact for every suffix.
pub fn nano(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (num, suffix) = text.split_at(split);
    let scale: i128 = match suffix {
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "" => 1_000_000_000,
        "k" => 1_000_000_000_000,
        "M" => 1_000_000_000_000_000,
        "G" => 1_000_000_000_000_000_000,
        "T" => 1_000_000_000_000_000_000_000,
        "P" => 1_000_000_000_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000_000_000_000,
        "Ki" => 1_000_000_000 << 10,
        "Mi" => 1_000_000_000 << 20,
        "Gi" => 1_000_000_000 << 30,
        "Ti" => 1_000_000_000 << 40,
        "Pi" => 1_000_000_000 << 50,
        "Ei" => 1_000_000_000 << 60,
        _ => return None,
    };
    let (neg, num) = match num.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let divisor = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    // Rounded up, as Quantity.ScaledValue does.
    let v = (mantissa.checked_mul(scale)? + divisor - 1) / divisor;
    Some(if neg { -v } else { v })
}

fn milli(q: &Value) -> i128 {
    q.as_str().and_then(nano).map(|n| (n + 999_999).div_euclid(1_000_000)).unwrap_or(0)
}

fn bytes(q: &Value) -> i128 {
    q.as_str().and_then(nano).map(|n| (n + 999_999_999).div_euclid(1_000_000_000)).unwrap_or(0)
}

/// Lines whose every cell is tab-terminated in kubectl's top printer, so the last column is
/// padded too.
fn print_padded(ctx: &mut Ctx, mut lines: Vec<Vec<String>>) {
    for l in &mut lines {
        l.push(String::new());
    }
    let text = crate::print::table::tabwrite_min(&lines, 6, 3);
    ctx.print(&text);
}

fn metrics_get(ctx: &mut Ctx, path: &str) -> Result<Value> {
    let client = ctx.client()?;
    client.get(path).map_err(|e| match e.api() {
        Some(api) if api.code == 404 && api.reason == "NotFound" && !api.message.contains('"') => {
            Error::usage("Metrics API not available")
        }
        _ => e,
    })
}

fn sort_rows<T>(rows: &mut [T], sort_by: Option<&str>, key: impl Fn(&T) -> (i128, i128)) -> Result<()> {
    match sort_by {
        None | Some("") => {}
        Some("cpu") => rows.sort_by_key(|r| std::cmp::Reverse(key(r).0)),
        Some("memory") => rows.sort_by_key(|r| std::cmp::Reverse(key(r).1)),
        Some(_) => return Err(Error::usage("--sort-by accepts only cpu or memory")),
    }
    Ok(())
}

fn pods(ctx: &mut Ctx, a: TopPodArgs) -> Result<()> {
    let ns = ctx.namespace()?;
    let base = "/apis/metrics.k8s.io/v1beta1";
    let items = if let Some(name) = &a.name {
        vec![metrics_get(ctx, &format!("{base}/namespaces/{}/pods/{}", enc(&ns), enc(name)))?]
    } else {
        let mut path =
            if a.all_namespaces { format!("{base}/pods") } else { format!("{base}/namespaces/{}/pods", enc(&ns)) };
        if let Some(l) = &a.selector {
            path.push_str(&format!("?labelSelector={}", enc(l)));
        }
        metrics_get(ctx, &path)?["items"].as_array().cloned().unwrap_or_default()
    };
    if items.is_empty() {
        if a.all_namespaces {
            ctx.eprintln("No resources found");
        } else {
            ctx.eprintln(&format!("No resources found in {ns} namespace."));
        }
        return Ok(());
    }
    // (namespace, pod, container, cpu milli, memory bytes)
    let mut rows: Vec<(String, String, String, i128, i128)> = Vec::new();
    for m in &items {
        let pns = m["metadata"]["namespace"].as_str().unwrap_or("").to_string();
        let pod = m["metadata"]["name"].as_str().unwrap_or("").to_string();
        let containers = m["containers"].as_array().cloned().unwrap_or_default();
        if a.containers {
            for c in &containers {
                let name = c["name"].as_str().unwrap_or("").to_string();
                rows.push((pns.clone(), pod.clone(), name, milli(&c["usage"]["cpu"]), bytes(&c["usage"]["memory"])));
            }
        } else {
            let cpu = containers.iter().map(|c| milli(&c["usage"]["cpu"])).sum();
            let mem = containers.iter().map(|c| bytes(&c["usage"]["memory"])).sum();
            rows.push((pns, pod, String::new(), cpu, mem));
        }
    }
    sort_rows(&mut rows, a.sort_by.as_deref(), |r| (r.3, r.4))?;
    let mut lines = Vec::new();
    if !a.no_headers {
        let mut h = Vec::new();
        if a.all_namespaces {
            h.push("NAMESPACE".to_string());
        }
        if a.containers {
            h.push("POD".into());
        }
        h.extend(["NAME".into(), "CPU(cores)".into(), "MEMORY(bytes)".into()]);
        lines.push(h);
    }
    for (pns, pod, container, cpu, mem) in &rows {
        let mut l = Vec::new();
        if a.all_namespaces {
            l.push(pns.clone());
        }
        l.push(pod.clone());
        if a.containers {
            l.push(container.clone());
        }
        l.extend([format!("{cpu}m"), format!("{}Mi", mem / (1024 * 1024))]);
        lines.push(l);
    }
    if a.sum {
        let cpu: i128 = rows.iter().map(|r| r.3).sum();
        let mem: i128 = rows.iter().map(|r| r.4).sum();
        let lead = usize::from(a.all_namespaces) + usize::from(a.containers) + 1;
        let mut dashes = vec![String::new(); lead];
        dashes.extend(["________".to_string(), "________".to_string()]);
        lines.push(dashes);
        let mut total = vec![String::new(); lead];
        total.extend([format!("{cpu}m"), format!("{}Mi", mem / (1024 * 1024))]);
        lines.push(total);
    }
    print_padded(ctx, lines);
    Ok(())
}

fn nodes(ctx: &mut Ctx, a: TopNodeArgs) -> Result<()> {
    let base = "/apis/metrics.k8s.io/v1beta1/nodes";
    let client = ctx.client()?;
    let (metrics, nodes) = if let Some(name) = &a.name {
        let m = metrics_get(ctx, &format!("{base}/{}", enc(name)))?;
        let n = client.get(&format!("/api/v1/nodes/{}", enc(name)))?;
        (vec![m], vec![n])
    } else {
        let q = a.selector.as_ref().map(|l| format!("?labelSelector={}", enc(l))).unwrap_or_default();
        let m = metrics_get(ctx, &format!("{base}{q}"))?["items"].as_array().cloned().unwrap_or_default();
        let n = client.get(&format!("/api/v1/nodes{q}"))?["items"].as_array().cloned().unwrap_or_default();
        (m, n)
    };
    if metrics.is_empty() {
        ctx.eprintln("No resources found");
        return Ok(());
    }
    let field = if a.show_capacity { "capacity" } else { "allocatable" };
    // (name, cpu milli, memory bytes, cpu total milli, memory total bytes)
    let mut rows: Vec<(String, i128, i128, i128, i128)> = Vec::new();
    for m in &metrics {
        let name = m["metadata"]["name"].as_str().unwrap_or("").to_string();
        let node = nodes.iter().find(|n| n["metadata"]["name"] == name.as_str());
        let total = node.map(|n| &n["status"][field]);
        rows.push((
            name,
            milli(&m["usage"]["cpu"]),
            bytes(&m["usage"]["memory"]),
            total.map(|t| milli(&t["cpu"])).unwrap_or(0),
            total.map(|t| bytes(&t["memory"])).unwrap_or(0),
        ));
    }
    sort_rows(&mut rows, a.sort_by.as_deref(), |r| (r.1, r.2))?;
    let pct = |used: i128, total: i128| {
        if total > 0 { format!("{}%", (used as f64 / total as f64 * 100.0) as i64) } else { "<unknown>".into() }
    };
    let mut lines = Vec::new();
    if !a.no_headers {
        lines.push(
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"].iter().map(|s| s.to_string()).collect(),
        );
    }
    for (name, cpu, mem, cpu_total, mem_total) in rows {
        lines.push(vec![
            name,
            format!("{cpu}m"),
            pct(cpu, cpu_total),
            format!("{}Mi", mem / (1024 * 1024)),
            pct(mem, mem_total),
        ]);
    }
    print_padded(ctx, lines);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_scale_exactly() {
        assert_eq!(nano("736524772n"), Some(736_524_772));
        assert_eq!(nano("100m"), Some(100_000_000));
        assert_eq!(nano("1.5"), Some(1_500_000_000));
        assert_eq!(nano("2224Ki"), Some(2224 * 1024 * 1_000_000_000));
        assert_eq!(nano("1Gi"), Some((1i128 << 30) * 1_000_000_000));
        assert_eq!(nano("x"), None);
        assert_eq!(nano("5Q"), None);
        // Millicores round up, MiB round down (as kubectl prints them).
        assert_eq!(milli(&json!("736524772n")), 737);
        assert_eq!(milli(&json!("0n")), 0);
        assert_eq!(milli(&json!("100m")), 100);
        assert_eq!(bytes(&json!("2224Ki")) / (1024 * 1024), 2);
    }
}
