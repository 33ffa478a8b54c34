//! `rollout pause|resume`: flips a Deployment's `spec.paused`, as kubectl does; other kinds
//! are refused the way kubectl refuses them.

use crate::cli::{OutputArgs, RolloutCommand};
use crate::cmd::write::report_written;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::print::Format;
use crate::resource::{self, enc, name_of};
use clap::Args;
use reqwest::Method;
use serde_json::json;

/// Arguments of `rollout pause` and `rollout resume`.
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = "kubectl-rollout")]
    pub field_manager: String,
}

/// Which way the verb flips `spec.paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Pause,
    Resume,
}

/// Runs `rollout pause` or `rollout resume`; other rollout verbs are not routed here.
pub fn run(ctx: &mut Ctx, cmd: RolloutCommand) -> Result<()> {
    match cmd {
        RolloutCommand::Pause(a) => flip(ctx, a, Direction::Pause),
        RolloutCommand::Resume(a) => flip(ctx, a, Direction::Resume),
        _ => Err(Error::usage("unsupported rollout verb")),
    }
}

fn flip(ctx: &mut Ctx, a: PauseArgs, dir: Direction) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    if a.resources.is_empty() {
        return Err(Error::usage("required resource not specified"));
    }
    // kubectl's builder accepts a bare type here and selects every object of it.
    let objs = resource::fetch(ctx, &a.resources, true, None)?;
    let client = ctx.client()?;
    let mut errors = Vec::new();
    for (r, obj) in objs {
        let name = name_of(&obj).to_string();
        let is_deployment = r.group == "apps" && r.kind == "Deployment";
        let paused = obj["spec"]["paused"].as_bool().unwrap_or(false);
        let problem = match (is_deployment, dir, paused) {
            (false, Direction::Pause, _) => Some("pausing is not supported"),
            (false, Direction::Resume, _) => Some("resuming is not supported"),
            (true, Direction::Pause, true) => Some("is already paused"),
            (true, Direction::Resume, false) => Some("is not paused"),
            _ => None,
        };
        if let Some(p) = problem {
            errors.push(format!("error: {} \"{name}\" {p}", r.resource_group()));
            continue;
        }
        // A merge patch: `null` drops the field, as the typed `false` (omitempty) does.
        let patch = match dir {
            Direction::Pause => json!({"spec": {"paused": true}}),
            Direction::Resume => json!({"spec": {"paused": null}}),
        };
        let ns = resource::namespace_of(&obj).to_string();
        let path = format!("{}?fieldManager={}", r.item(&ns, &name), enc(&a.field_manager));
        match client.json(Method::PATCH, &path, "application/json", Some(("application/merge-patch+json", &patch))) {
            Ok(updated) => {
                tracing::debug!(object = %name, ?dir, "rollout flipped");
                let verb = if dir == Direction::Pause { "paused" } else { "resumed" };
                report_written(ctx, &format, a.output.output.as_deref(), &updated, &r, verb);
            }
            Err(e) => errors.push(format!("failed to patch: {}", go_error(&e))),
        }
    }
    finish(errors)
}

/// kubectl's aggregate of per-object errors: each on its own line, `error: `-prefixed.
pub fn finish(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let e = e.trim_end().to_string();
            if e.starts_with("error: ") || e.starts_with("Error from server") { e } else { format!("error: {e}") }
        })
        .collect();
    Err(Error::Exit { code: 1, message: lines.join("\n") })
}

/// An error as Go's `err.Error()` reads inside a wrapping message: an API error is its
/// Status message alone, a usage error has no `error: ` prefix.
pub fn go_error(e: &Error) -> String {
    match e {
        Error::Api(a) => a.message.clone(),
        Error::Usage(m) => m.clone(),
        other => other.to_string(),
    }
}
