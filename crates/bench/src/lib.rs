//! Measurement helpers the rkube benchmarks share: CPU time of a process, percentiles, and a
//! closed-loop load generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// User + system CPU seconds a process has used, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    ticks / 100.0
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `op(i)` for i in 0..ops on `concurrency` workers; returns the elapsed time and every
/// operation's latency, sorted.
pub async fn run_closed_loop<F, Fut>(ops: usize, concurrency: usize, op: F) -> anyhow::Result<(Duration, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(ops);
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = start.elapsed();
    all.sort();
    Ok((elapsed, all))
}

/// Busy and total CPU seconds of the whole machine since boot, from the aggregate `cpu` line of
/// /proc/stat; the difference of two readings says how saturated the cores were in between.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return (0.0, 0.0) };
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    let idle = field(3) + field(4);
    let total: f64 = (0..8).map(field).sum();
    ((total - idle) / 100.0, total / 100.0)
}

/// The 50th and 99th percentiles of unsorted samples.
pub fn p50_p99(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (percentile(&sorted, 0.5), percentile(&sorted, 0.99))
}

/// A duration in milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One live process: its parent, command line, and the CPU seconds it and the children it
/// has reaped used.
struct ProcCpu {
    pid: u32,
    ppid: u32,
    cmdline: String,
    seconds: f64,
}

fn live_processes() -> Vec<ProcCpu> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // A process may exit between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let ppid = fields.get(1).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        // utime, stime, cutime, cstime in USER_HZ (100).
        out.push(ProcCpu { pid, ppid, cmdline, seconds: (num(11) + num(12) + num(13) + num(14)) / 100.0 });
    }
    out
}

/// CPU seconds of the live processes `pick(pid, cmdline)` selects and all their live
/// descendants, each counted with the children it has reaped. Short-lived helpers (runc, CNI
/// plugins) thus count once their parent has waited for them; a process that reparents itself
/// to init (a containerd shim) must be picked by its command line.
pub fn tree_cpu_seconds(pick: impl Fn(u32, &str) -> bool) -> f64 {
    let procs = live_processes();
    let mut children: std::collections::HashMap<u32, Vec<usize>> = std::collections::HashMap::new();
    for (i, p) in procs.iter().enumerate() {
        children.entry(p.ppid).or_default().push(i);
    }
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<usize> = (0..procs.len()).filter(|&i| pick(procs[i].pid, &procs[i].cmdline)).collect();
    let mut total = 0.0;
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        total += procs[i].seconds;
        stack.extend(children.get(&procs[i].pid).into_iter().flatten().copied());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_unsorted_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(p50_p99(&samples), (Duration::from_millis(51), Duration::from_millis(99)));
        assert_eq!(p50_p99(&[]), (Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn tree_cpu_counts_children_the_picked_process_has_reaped() {
        let marker = format!("rkube-bench-tree-test-{}", std::process::id());
        // A subshell burns CPU and exits (reaped by the outer shell), then the shell idles.
        let script = format!(": {marker}; (i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done); sleep 5");
        let mut child = std::process::Command::new("sh").arg("-c").arg(&script).spawn().expect("sh runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut used = 0.0;
        while std::time::Instant::now() < deadline {
            // Once the subshell (a fork carrying the same command line) is gone, its CPU is
            // only in the outer shell's reaped-children time.
            let marked = live_processes().iter().filter(|p| p.cmdline.contains(&marker)).count();
            used = tree_cpu_seconds(|_, cmdline| cmdline.contains(&marker));
            if marked == 1 && used >= 0.4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(used >= 0.4, "counted {used} s for a shell whose child burned CPU");
        assert_eq!(tree_cpu_seconds(|_, cmdline| cmdline.contains("no-such-process-anywhere-xyz")), 0.0);
    }
}
