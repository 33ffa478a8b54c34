//! `edit`: fetch an object, hand it to the user's editor as YAML (or JSON), write back what
//! comes out with a PUT; and `diff`: what `apply` would change, shown by an external diff.

use crate::cli::{FileArgs, OutputArgs};
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::manifest;
use crate::print::yaml;
use crate::resource::{self, name_of};
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// kubectl's explanation at the top of the file being edited.
const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
";

/// `edit`.
#[derive(Debug, Clone, Default, Args)]
pub struct EditArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// The format the object is edited in: yaml (default) or json.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `diff`.
#[derive(Debug, Clone, Default, Args)]
pub struct DiffArgs {
    /// Manifests to compare with the live objects.
    #[command(flatten)]
    pub files: FileArgs,
    /// Accepted for kubectl compatibility: rkubectl always diffs a server-side apply.
    #[arg(long)]
    pub server_side: bool,
    /// Accepted for kubectl compatibility: the dry-run apply always forces conflicts.
    #[arg(long)]
    pub force_conflicts: bool,
}

/// The editor command line: `$KUBE_EDITOR`, else `$EDITOR`, else `vi`; a value with spaces is
/// split on them, unless it has quotes or backslashes, which only a shell can read.
fn editor_command(path: &Path) -> Command {
    let value = ["KUBE_EDITOR", "EDITOR"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    if value.contains(['"', '\'', '\\']) {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!("{value} {:?}", path.display().to_string()));
        return cmd;
    }
    let mut words = value.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or("vi"));
    cmd.args(words).arg(path);
    cmd
}

/// The file without its comment lines, which is what counts as the user's edit.
fn strip_comments(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| format!("{l}\n")).collect()
}

/// Runs `edit`.
pub fn edit(ctx: &mut Ctx, a: EditArgs) -> Result<()> {
    let json = match a.output.output.as_deref() {
        None | Some("yaml") => false,
        Some("json") => true,
        Some(o) => return Err(Error::usage(format!("the flag 'output' must be one of yaml|json, not {o:?}"))),
    };
    let targets = resource::parse(ctx, &a.resources)?;
    let client = ctx.client()?;
    for t in targets.items {
        let Some(name) = t.name else {
            return Err(Error::usage("resource(s) were provided, but no name was specified"));
        };
        let ns = if t.resource.namespaced { client.namespace.clone() } else { String::new() };
        let path = t.resource.item(&ns, &name);
        let mut obj = client.get(&path)?;
        resource::fill_type(&mut obj, &t.resource);
        crate::cmd::get::strip_managed_fields(&mut obj);
        let body = if json { format!("{}\n", crate::print::json::to_string(&obj)) } else { yaml::to_string(&obj) };
        let file = tempfile::Builder::new()
            .prefix("rkubectl-edit-")
            .suffix(if json { ".json" } else { ".yaml" })
            .tempfile()?;
        let (_, file_path) = file.keep().map_err(|e| Error::Io(e.error))?;
        std::fs::write(&file_path, format!("{HEADER}{body}"))?;
        // kubectl's loop: a failed save reopens the file with the failure in its header; saving
        // the same text again gives up, keeping the file.
        let mut last_failed: Option<String> = None;
        loop {
            if let Err(e) = run_editor(&file_path) {
                let _ = std::fs::remove_file(&file_path);
                return Err(e);
            }
            let edited = strip_comments(&std::fs::read_to_string(&file_path)?);
            if edited.trim().is_empty() {
                let _ = std::fs::remove_file(&file_path);
                ctx.eprintln("Edit cancelled, saved file was empty.");
                break;
            }
            if last_failed.as_deref() == Some(edited.as_str()) {
                ctx.eprintln(&format!(
                    "A copy of your changes has been stored to {:?}",
                    file_path.display().to_string()
                ));
                return Err(Error::usage("Edit cancelled, no valid changes were saved."));
            }
            if last_failed.is_none() && edited == strip_comments(&body) {
                let _ = std::fs::remove_file(&file_path);
                ctx.eprintln("Edit cancelled, no changes made.");
                break;
            }
            match put_edited(ctx, &t.resource, &ns, &name, &edited) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&file_path);
                    break;
                }
                Err(e) => {
                    tracing::info!(file = %file_path.display(), error = %e, "edit failed; reopening the file");
                    std::fs::write(&file_path, format!("{HEADER}{}{edited}", failure_header(&e, &t.resource)))?;
                    last_failed = Some(edited);
                }
            }
        }
    }
    Ok(())
}

/// Runs the editor on `path` and waits for it.
fn run_editor(path: &Path) -> Result<()> {
    let status =
        editor_command(path).status().map_err(|e| Error::usage(format!("unable to launch the editor: {e}")))?;
    if status.success() { Ok(()) } else { Err(Error::usage(format!("there was a problem with the editor {status}"))) }
}

/// The header lines explaining why a save failed: an invalid object lists its causes by
/// field, anything else gives its message.
fn failure_header(e: &Error, r: &ApiResource) -> String {
    let commented = |text: &str| text.replace('\n', "\n# ");
    let (head, causes): (String, Vec<String>) = match e {
        Error::Api(api) if api.reason == "Invalid" && api.details["causes"].is_array() => (
            format!(
                "{} {:?} was not valid",
                r.resource_group(),
                api.details["name"].as_str().unwrap_or_default()
            ),
            api.details["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["field"].as_str().unwrap_or_default(),
                        c["message"].as_str().unwrap_or_default()
                    )
                })
                .collect(),
        ),
        Error::Api(api) => (api.message.clone(), Vec::new()),
        other => (other.to_string().trim_start_matches("error: ").to_string(), Vec::new()),
    };
    let mut out = format!("# {}{}\n", commented(&head), if causes.is_empty() { "" } else { ":" });
    for cause in causes {
        out.push_str(&format!("# * {}\n", commented(&cause)));
    }
    out.push_str("#\n");
    out
}

fn put_edited(ctx: &mut Ctx, r: &ApiResource, ns: &str, name: &str, edited: &str) -> Result<()> {
    let docs = manifest::parse(edited, "edited file")?;
    let [doc] = docs.as_slice() else {
        return Err(Error::usage("the edited file must hold exactly one object"));
    };
    let client = ctx.client()?;
    if name_of(&doc.object) != name {
        return Err(Error::usage(format!(
            "At least one of apiVersion, kind and name was changed: the name of {}/{name} may not change",
            r.kind_group()
        )));
    }
    let after =
        client.json(Method::PUT, &r.item(ns, name), "application/json", Some(("application/json", &doc.object)))?;
    let mut after = after;
    resource::fill_type(&mut after, r);
    ctx.println(&format!("{}/{} edited", r.kind_group(), name_of(&after)));
    Ok(())
}

/// Where `diff` writes one side: a fresh temp dir named like kubectl's (`LIVE-...`).
fn side_dir(prefix: &str) -> Result<PathBuf> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    Ok(dir.keep())
}

/// kubectl's file name for an object: `[group.]version.Kind.namespace.name`.
fn diff_name(r: &ApiResource, ns: &str, name: &str) -> String {
    let group = if r.group.is_empty() { String::new() } else { format!("{}.", r.group) };
    format!("{group}{}.{}.{ns}.{name}", r.version, r.kind)
}

/// The diff program: `$KUBECTL_EXTERNAL_DIFF` split on whitespace, else `diff -u -N`.
/// Hides a Secret's values as kubectl diff does: `***` for a key whose value is the same on
/// both sides or exists on one only, `*** (before)`/`*** (after)` for a changed value, so the
/// diff still shows which keys change without printing what they hold.
fn mask_secret_data(live: Option<&mut Value>, merged: &mut Value) {
    let before = live.as_ref().and_then(|l| l["data"].as_object().cloned()).unwrap_or_default();
    let after = merged["data"].as_object().cloned().unwrap_or_default();
    let mask = |own: &Value, other: Option<&Value>, suffix: &str| match other {
        Some(o) if o != own => Value::from(format!("*** ({suffix})")),
        _ => Value::from("***"),
    };
    if let Some(live) = live
        && let Some(data) = live.get_mut("data").and_then(Value::as_object_mut)
    {
        for (key, value) in data.iter_mut() {
            *value = mask(value, after.get(key), "before");
        }
    }
    if let Some(data) = merged.get_mut("data").and_then(Value::as_object_mut) {
        for (key, value) in data.iter_mut() {
            *value = mask(value, before.get(key), "after");
        }
    }
}

fn diff_command() -> Command {
    match std::env::var("KUBECTL_EXTERNAL_DIFF").ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => {
            let mut words = v.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap_or("diff"));
            cmd.args(words);
            cmd
        }
        None => {
            let mut cmd = Command::new("diff");
            cmd.args(["-u", "-N"]);
            cmd
        }
    }
}

/// Runs `diff`: exits 0 when nothing would change, 1 when something would, >1 on errors.
pub fn diff(ctx: &mut Ctx, a: DiffArgs) -> Result<()> {
    let outcome = diff_inner(ctx, a);
    match outcome {
        Ok(0) => Ok(()),
        Ok(code) => Err(Error::Exit { code, message: String::new() }),
        // kubectl reserves 1 for "different", so its own failures exit with more.
        Err(Error::Exit { code, message }) => Err(Error::Exit { code, message }),
        Err(e) => Err(Error::Exit { code: 2, message: e.to_string() }),
    }
}

fn diff_inner(ctx: &mut Ctx, a: DiffArgs) -> Result<i32> {
    let docs = manifest::read(&a.files.filename, a.files.recursive)?;
    let client = ctx.client()?;
    let live_dir = side_dir("LIVE-")?;
    let merged_dir = side_dir("MERGED-")?;
    let cleanup = |_: ()| {
        let _ = std::fs::remove_dir_all(&live_dir);
        let _ = std::fs::remove_dir_all(&merged_dir);
    };
    let written = (|| -> Result<()> {
        for d in &docs {
            let r = ctx.resource_for_kind(
                d.object["apiVersion"].as_str().unwrap_or(""),
                d.object["kind"].as_str().unwrap_or(""),
            )?;
            let ns = crate::cmd::write::object_namespace(ctx, &r, &d.object)?;
            let name = name_of(&d.object).to_string();
            let path = r.item(&ns, &name);
            let live = match client.get(&path) {
                Ok(mut obj) => {
                    crate::cmd::get::strip_managed_fields(&mut obj);
                    Some(obj)
                }
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
            let mut merged = client.json(
                Method::PATCH,
                &format!("{path}?fieldManager=rkubectl&force=true&dryRun=All"),
                "application/json",
                Some(("application/apply-patch+yaml", &d.object)),
            )?;
            crate::cmd::get::strip_managed_fields(&mut merged);
            let mut live = live;
            if r.group.is_empty() && r.kind == "Secret" {
                mask_secret_data(live.as_mut(), &mut merged);
            }
            let file = diff_name(&r, &ns, &name);
            let live_text = live.as_ref().map(yaml::to_string).unwrap_or_default();
            std::fs::write(live_dir.join(&file), live_text)?;
            std::fs::write(merged_dir.join(&file), yaml::to_string(&merged))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        cleanup(());
        return Err(e);
    }
    ctx.flush();
    let status = diff_command().arg(&live_dir).arg(&merged_dir).status();
    cleanup(());
    let status = status.map_err(|e| Error::usage(format!("failed to run the diff program: {e}")))?;
    Ok(status.code().unwrap_or(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_are_masked_like_kubectl_diff() {
        let mut live = json!({"data": {"same": "YQ==", "changed": "Yg==", "gone": "Yw=="}, "type": "Opaque"});
        let mut merged = json!({"data": {"same": "YQ==", "changed": "ZA==", "new": "ZQ=="}, "type": "Opaque"});
        mask_secret_data(Some(&mut live), &mut merged);
        assert_eq!(live["data"], json!({"same": "***", "changed": "*** (before)", "gone": "***"}));
        assert_eq!(merged["data"], json!({"same": "***", "changed": "*** (after)", "new": "***"}));
        assert_eq!(merged["type"], "Opaque");
        let mut created = json!({"data": {"a": "YQ=="}});
        mask_secret_data(None, &mut created);
        assert_eq!(created["data"], json!({"a": "***"}));
        let mut no_data = json!({"type": "Opaque"});
        mask_secret_data(None, &mut no_data);
        assert_eq!(no_data, json!({"type": "Opaque"}));
    }
}
