//! `autoscale` (an autoscaling/v2 HorizontalPodAutoscaler for a scalable object) and
//! `completion` (shell completion scripts generated from the clap definition).

use crate::cmd::write::report_written;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::print::Format;
use clap::Args;
use reqwest::Method;
use serde_json::json;

/// `autoscale`.
#[derive(Debug, Clone, Args)]
pub struct AutoscaleArgs {
    /// TYPE NAME | TYPE/NAME (deployment, replicaset, replicationcontroller, statefulset)
    pub resources: Vec<String>,
    /// The lower limit for the number of pods (-1: the server's default, 1).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub min: i64,
    /// The upper limit for the number of pods.
    #[arg(long, allow_negative_numbers = true)]
    pub max: Option<i64>,
    /// The target average CPU utilization over all the pods (-1: the server's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub cpu_percent: i64,
    /// The name for the autoscaler (default: the object's).
    #[arg(long)]
    pub name: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

/// Runs `autoscale`.
pub fn autoscale(ctx: &mut Ctx, a: AutoscaleArgs) -> Result<()> {
    let Some(max) = a.max else {
        return Err(Error::usage("required flag(s) \"max\" not set"));
    };
    if max < 1 {
        return Err(Error::usage(format!("--max=MAXPODS is required and must be at least 1, max: {max}")));
    }
    if max < a.min {
        return Err(Error::usage(format!(
            "--max=MAXPODS must be larger or equal to --min=MINPODS, max: {max}, min: {}",
            a.min
        )));
    }
    let (ty, name) = match a.resources.as_slice() {
        [one] if one.contains('/') => one.split_once('/').map(|(t, n)| (t.to_string(), n.to_string())),
        [t, n] => Some((t.clone(), n.clone())),
        _ => None,
    }
    .ok_or_else(|| Error::usage("you must provide one or more resources by argument or filename"))?;
    let format = Format::parse(a.output.as_deref())?;
    let target = ctx.resource(&ty)?;
    if !matches!(target.kind.as_str(), "Deployment" | "ReplicaSet" | "ReplicationController" | "StatefulSet") {
        return Err(Error::usage(format!("cannot autoscale a {}: cannot autoscale a {}", target.kind, target.kind)));
    }
    let ns = ctx.namespace()?;
    let client = ctx.client()?;
    // The target must exist, as kubectl checks.
    client.get(&target.item(&ns, &name))?;
    let hpa_name = a.name.clone().unwrap_or_else(|| name.clone());
    let mut spec = json!({
        "maxReplicas": max,
        "scaleTargetRef": {"apiVersion": target.api_version(), "kind": target.kind, "name": name},
    });
    if a.min > 0 {
        spec["minReplicas"] = json!(a.min);
    }
    if a.cpu_percent >= 0 {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": a.cpu_percent}}}]);
    }
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name, "namespace": ns}, "spec": spec});
    let hpas = ctx.resource("horizontalpodautoscalers.autoscaling")?;
    let dry = a.dry_run.as_deref().unwrap_or("none");
    let (written, suffix) = match dry {
        "client" => {
            // What kubectl prints for an object it never sent: no namespace, empty status.
            let mut local = hpa;
            local["metadata"] = json!({"name": hpa_name, "creationTimestamp": null});
            local["status"] = json!({"currentMetrics": null, "desiredReplicas": 0});
            (local, "")
        }
        "none" | "server" => {
            let mut q = vec!["fieldManager=kubectl-autoscale".to_string()];
            if dry == "server" {
                q.push("dryRun=All".into());
            }
            let path = format!("{}?{}", hpas.collection(Some(&ns)), q.join("&"));
            let created = client.json(Method::POST, &path, "application/json", Some(("application/json", &hpa)))?;
            (created, if dry == "server" { " (server dry run)" } else { "" })
        }
        other => {
            return Err(Error::usage(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            )));
        }
    };
    // kubectl's own wording differs between the dry-run kinds.
    let verb = if dry == "client" { "created (dry run)".to_string() } else { format!("autoscaled{suffix}") };
    report_written(ctx, &format, a.output.as_deref(), &written, &hpas, &verb);
    Ok(())
}

/// `completion`.
#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: String,
}

/// Prints the completion script for a shell.
pub fn completion(ctx: &mut Ctx, a: CompletionArgs) -> Result<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let shell = match a.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        "elvish" => Shell::Elvish,
        "powershell" => Shell::PowerShell,
        other => return Err(Error::usage(format!("Unsupported shell type \"{other}\"."))),
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::Cli::command(), "rkubectl", &mut buf);
    ctx.print(&String::from_utf8_lossy(&buf));
    Ok(())
}
