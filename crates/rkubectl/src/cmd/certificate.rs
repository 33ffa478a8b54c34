//! `certificate approve|deny`: adds the Approved or Denied condition to CertificateSigningRequests
//! through their `approval` subresource, as kubectl does.

use crate::cli::OutputArgs;
use crate::cmd::rollout_pause::finish;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::print::Format;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

/// `certificate ...`.
#[derive(Debug, Subcommand)]
pub enum CertificateCommand {
    /// Approve a certificate signing request.
    Approve(CertificateArgs),
    /// Deny a certificate signing request.
    Deny(CertificateArgs),
}

/// Arguments of `certificate approve` and `certificate deny`.
#[derive(Debug, Clone, Args)]
pub struct CertificateArgs {
    /// CSR names.
    pub names: Vec<String>,
    /// Update the CSR even if it is already approved (denied).
    #[arg(long)]
    pub force: bool,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What one verb writes.
struct Decision {
    /// The condition type added.
    condition: &'static str,
    /// The condition type that makes the verb refuse.
    opposite: &'static str,
    reason: &'static str,
    message: &'static str,
    /// The word printed after the object name.
    verb: &'static str,
}

const APPROVE: Decision = Decision {
    condition: "Approved",
    opposite: "Denied",
    reason: "KubectlApprove",
    message: "This CSR was approved by kubectl certificate approve.",
    verb: "approved",
};

const DENY: Decision = Decision {
    condition: "Denied",
    opposite: "Approved",
    reason: "KubectlDeny",
    message: "This CSR was denied by kubectl certificate deny.",
    verb: "denied",
};

/// Runs `certificate approve` or `certificate deny`.
pub fn run(ctx: &mut Ctx, cmd: CertificateCommand) -> Result<()> {
    match cmd {
        CertificateCommand::Approve(a) => decide(ctx, a, &APPROVE),
        CertificateCommand::Deny(a) => decide(ctx, a, &DENY),
    }
}

fn decide(ctx: &mut Ctx, a: CertificateArgs, d: &Decision) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    if a.names.is_empty() {
        return Err(Error::usage("one or more CSRs must be specified as <name> or -f <filename>"));
    }
    let r = ctx.resource("certificatesigningrequests.certificates.k8s.io")?;
    let client = ctx.client()?;
    let mut errors = Vec::new();
    for name in &a.names {
        let path = r.item("", name);
        let outcome = (|| -> Result<Value> {
            let fetched = client.get(&path)?;
            let mut csr = fetched.clone();
            // Retries on a conflict with a fresh copy, as kubectl does (ten times).
            for attempt in 0.. {
                let conditions = csr["status"]["conditions"].as_array().cloned().unwrap_or_default();
                if let Some(c) = conditions.iter().find(|c| c["type"] == d.opposite) {
                    return Err(Error::usage(format!(
                        "certificate signing request {name:?} is already {}",
                        c["type"].as_str().unwrap_or(d.opposite)
                    )));
                }
                let has = conditions.iter().any(|c| c["type"] == d.condition);
                if has && !a.force {
                    break;
                }
                if !has {
                    let mut conditions = conditions;
                    conditions.push(json!({
                        "type": d.condition,
                        "status": "True",
                        "reason": d.reason,
                        "message": d.message,
                        "lastUpdateTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    }));
                    csr["status"]["conditions"] = Value::Array(conditions);
                }
                let approval = format!("{path}/approval");
                match client.json(Method::PUT, &approval, "application/json", Some(("application/json", &csr))) {
                    Ok(_) => {
                        tracing::debug!(csr = %name, condition = d.condition, "approval updated");
                        break;
                    }
                    Err(e) if e.api().is_some_and(|e| e.code == 409) && attempt < 10 => {
                        csr = client.get(&path)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            // kubectl prints the object as it read it before the update.
            Ok(fetched)
        })();
        match outcome {
            Ok(obj) => crate::cmd::write::report_written(ctx, &format, a.output.output.as_deref(), &obj, &r, d.verb),
            Err(e) => errors.push(e.to_string()),
        }
    }
    finish(errors)
}
