//! `set env`, `set resources` and `set serviceaccount`: change the pod template of workload
//! objects (or a Pod's spec) as kubectl does, sending only what changed as a merge patch.

use crate::cli::{OutputArgs, SetCommand};
use crate::cmd::rollout_pause::{finish, go_error};
use crate::cmd::write::report_written;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::Format;
use crate::resource::{self, enc, name_of, namespace_of};
use clap::{ArgAction, Args};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::io::BufRead;

/// `set env`.
#[derive(Debug, Clone, Args)]
pub struct SetEnvArgs {
    /// TYPE/NAME ... KEY_1=VAL_1 ... KEY_N=VAL_N | KEY-
    pub args: Vec<String>,
    /// The names of containers in the selected pod templates to change - may use wildcards.
    #[arg(short = 'c', long = "containers", default_value = "*")]
    pub containers: String,
    /// The name of a resource from which to inject environment variables.
    #[arg(long)]
    pub from: Option<String>,
    /// Prefix to append to variable names.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Specify a key-value pair for an environment variable to set into each container.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Comma-separated list of keys to import from specified resource.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Display the environment and any changes in the standard format.
    #[arg(long)]
    pub list: bool,
    /// Show secret or configmap references when listing variables (accepted, not resolved).
    #[arg(long)]
    pub resolve: bool,
    /// Select all resources in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
    /// Allow environment to be overwritten (default true).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", require_equals = true)]
    pub overwrite: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// `-o`, `--dry-run`, `--field-manager`.
    #[command(flatten)]
    pub write: WriteFlags,
}

/// `set resources`.
#[derive(Debug, Clone, Args)]
pub struct SetResourcesArgs {
    /// TYPE NAME | TYPE/NAME ...
    pub resources: Vec<String>,
    /// The resource requirement limits for this container, e.g. `cpu=200m,memory=512Mi`.
    #[arg(long, default_value = "")]
    pub limits: String,
    /// The resource requirement requests for this container, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long, default_value = "")]
    pub requests: String,
    /// The names of containers to change, all by default - may use wildcards.
    #[arg(short = 'c', long = "containers", default_value = "*")]
    pub containers: String,
    /// Select all resources in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// `-o`, `--dry-run`, `--field-manager`.
    #[command(flatten)]
    pub write: WriteFlags,
}

/// `set serviceaccount`.
#[derive(Debug, Clone, Args)]
pub struct SetServiceAccountArgs {
    /// TYPE NAME | TYPE/NAME ... SERVICE_ACCOUNT
    pub args: Vec<String>,
    /// Select all resources in the namespace of the specified resource types.
    #[arg(long)]
    pub all: bool,
    /// `-o`, `--dry-run`, `--field-manager`.
    #[command(flatten)]
    pub write: WriteFlags,
}

/// How every `set` verb writes and reports.
#[derive(Debug, Clone, Args)]
pub struct WriteFlags {
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    /// Name of the manager used to track field ownership.
    #[arg(long, default_value = "kubectl-set")]
    pub field_manager: String,
}

/// Runs `set env|resources|serviceaccount` (`set image` lives in `ops`).
pub fn run(ctx: &mut Ctx, cmd: SetCommand) -> Result<()> {
    match cmd {
        SetCommand::Env(a) => env(ctx, a),
        SetCommand::Resources(a) => resources(ctx, a),
        SetCommand::Serviceaccount(a) => serviceaccount(ctx, a),
        SetCommand::Image(a) => crate::cmd::ops::set_image(ctx, a),
    }
}

/// How the change is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DryRun {
    None,
    Client,
    Server,
}

impl DryRun {
    fn parse(v: Option<&str>) -> Result<DryRun> {
        match v {
            None | Some("none") | Some("false") => Ok(DryRun::None),
            Some("client") | Some("true") => Ok(DryRun::Client),
            Some("server") => Ok(DryRun::Server),
            Some(o) => {
                Err(Error::usage(format!("Invalid dry-run value ({o}). Must be \"none\", \"server\", or \"client\".")))
            }
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }
}

/// The pod spec inside an object of a kind kubectl can update, else kubectl's error text.
fn pod_spec<'a>(obj: &'a mut Value, r: &ApiResource) -> std::result::Result<&'a mut Value, String> {
    let path: &[&str] = match (r.group.as_str(), r.kind.as_str()) {
        ("", "Pod") => &["spec"],
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        ("", "ReplicationController")
        | ("apps", "Deployment" | "DaemonSet" | "ReplicaSet" | "StatefulSet")
        | ("batch", "Job") => &["spec", "template", "spec"],
        _ => {
            return Err(format!("the object is not a pod or does not have a pod template: *v1.{}", r.kind));
        }
    };
    let mut spec = obj;
    for p in path {
        spec = &mut spec[*p];
    }
    Ok(spec)
}

/// kubectl's container name match: `*` matches anything, otherwise `*` is a non-greedy wildcard.
fn select(name: &str, spec: &str) -> bool {
    if spec == "*" {
        return true;
    }
    if !spec.contains('*') {
        return name == spec;
    }
    let parts: Vec<&str> = spec.split('*').collect();
    let mut pos = 0usize;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        let Some(found) = name.get(pos..).and_then(|rest| rest.find(part)).map(|f| f + pos) else { return false };
        if i == 0 && found != 0 {
            return false;
        }
        if i == parts.len() - 1 && found + part.len() != name.len() {
            return false;
        }
        pos = found + part.len();
    }
    true
}

/// Indexes of the selected containers: regular ones first, then init containers.
fn selected(spec: &Value, selector: &str) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    for field in ["containers", "initContainers"] {
        for (i, c) in spec[field].as_array().into_iter().flatten().enumerate() {
            if select(c["name"].as_str().unwrap_or(""), selector) {
                out.push((field, i));
            }
        }
    }
    out
}

/// RFC 7386 merge patch turning `before` into `after` (arrays replace wholesale); `None`
/// when they are equal.
pub fn merge_diff(before: &Value, after: &Value) -> Option<Value> {
    if before == after {
        return None;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut patch = Map::new();
            for (k, bv) in b {
                match a.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(av) => {
                        if let Some(d) = merge_diff(bv, av) {
                            patch.insert(k.clone(), d);
                        }
                    }
                }
            }
            for (k, av) in a {
                if !b.contains_key(k) {
                    patch.insert(k.clone(), av.clone());
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(after.clone()),
    }
}

/// Writes `after` (the changed `before`) per the dry-run mode and prints it with `verb`.
#[allow(clippy::too_many_arguments)]
fn write(
    ctx: &mut Ctx,
    r: &ApiResource,
    (before, after): (&Value, &Value),
    dry: DryRun,
    flags: &WriteFlags,
    verb: &str,
) -> std::result::Result<(), String> {
    let (field_manager, output) = (flags.field_manager.as_str(), flags.output.output.as_deref());
    let format = Format::parse(output).map_err(|e| go_error(&e))?;
    let verb = format!("{verb}{}", dry.suffix());
    if dry == DryRun::Client {
        let mut shown = after.clone();
        typed_templates(&mut shown);
        report_written(ctx, &format, output, &shown, r, &verb);
        return Ok(());
    }
    let patch = merge_diff(before, after).unwrap_or_else(|| json!({}));
    let client = ctx.client().map_err(|e| go_error(&e))?;
    let mut path = format!("{}?fieldManager={}", r.item(namespace_of(before), name_of(before)), enc(field_manager));
    if dry == DryRun::Server {
        path.push_str("&dryRun=All");
    }
    let written = client
        .json(Method::PATCH, &path, "application/json", Some(("application/merge-patch+json", &patch)))
        .map_err(|e| go_error(&e))?;
    tracing::debug!(object = name_of(before), kind = %r.kind, "pod template updated");
    report_written(ctx, &format, output, &written, r, &verb);
    Ok(())
}

/// kubectl prints a client-side result from its typed object, where an embedded template's
/// metadata always carries `creationTimestamp` (`null` when unset).
fn typed_templates(obj: &mut Value) {
    for pointer in ["/spec/template", "/spec/jobTemplate", "/spec/jobTemplate/spec/template"] {
        if let Some(map) = obj.pointer_mut(pointer).and_then(Value::as_object_mut) {
            let meta = map.entry("metadata").or_insert_with(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.entry("creationTimestamp").or_insert(Value::Null);
            }
        }
    }
}

/// `plural/NAME` (no group), as kubectl names an object in `set` errors.
fn object_name(r: &ApiResource, obj: &Value) -> String {
    format!("{}/{}", r.plural, name_of(obj))
}

// ---------------------------------------------------------------------------------------
// set env

/// kubectl's split of arguments: resources first, then `KEY=VAL` / `KEY-` changes.
fn split_env_args(args: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    let (mut res, mut env) = (Vec::new(), Vec::new());
    for a in args {
        let is_env = a.find('=').is_some_and(|i| i > 0) || a.ends_with('-');
        if is_env {
            env.push(a.clone());
        } else if env.is_empty() {
            res.push(a.clone());
        } else {
            return None;
        }
    }
    Some((res, env))
}

/// Whether `name` is a valid environment variable name (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_alphabetic() || matches!(first, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Parses `KEY=VAL`, `KEY-` and `-` (stdin) into variables to set and names to remove.
fn parse_env(specs: &[String]) -> Result<(Vec<Value>, Vec<String>)> {
    let mut env = Vec::new();
    let mut set_names = Vec::new();
    let mut remove = Vec::new();
    for spec in specs {
        if spec == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.split('#').next().unwrap_or("");
                if let Some((k, v)) = line.split_once('=') {
                    env.push(json!({"name": k, "value": v}));
                }
            }
        } else if let Some((k, v)) = spec.split_once('=') {
            if !valid_env_name(k) {
                return Err(Error::usage(format!(
                    "{k:?} is not a valid key name: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
                )));
            }
            set_names.push(k.to_string());
            env.push(json!({"name": k, "value": v}));
        } else if let Some(k) = spec.strip_suffix('-') {
            remove.push(k.to_string());
        } else {
            return Err(Error::usage(format!("unknown environment variable: {spec}")));
        }
    }
    if remove.iter().any(|r| set_names.contains(r)) {
        return Err(Error::usage("can not both modify and remove the same environment variable in the same command"));
    }
    Ok((env, remove))
}

/// Variables from every key of a Secret or ConfigMap (`--from`), names upper-cased with
/// characters outside `[a-zA-Z0-9_]` turned into `_`.
fn env_from(ctx: &mut Ctx, from: &str, keys: &[String]) -> Result<Vec<Value>> {
    let targets = resource::parse(ctx, &[from.to_string()])?;
    let client = ctx.client()?;
    let ns = ctx.namespace()?;
    let mut env = Vec::new();
    for t in targets.items {
        let Some(name) = t.name else {
            return Err(Error::usage("resource(s) were provided, but no name was specified"));
        };
        let obj = client.get(&t.resource.item(&ns, &name))?;
        let ref_field = match (t.resource.group.as_str(), t.resource.kind.as_str()) {
            ("", "Secret") => "secretKeyRef",
            ("", "ConfigMap") => "configMapKeyRef",
            _ => return Err(Error::usage("unsupported resource specified in --from")),
        };
        // Go walks the map in random order; sorted keys make the result repeatable.
        let mut data: Vec<&String> = obj["data"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
        data.sort();
        for key in data {
            if !keys.is_empty() && !keys.contains(key) {
                continue;
            }
            let env_name: String =
                key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
            let env_name = env_name.to_uppercase();
            if env_name != *key {
                ctx.eprintln(&format!("Warning: key {key} transferred to {env_name}"));
            }
            env.push(json!({
                "name": env_name,
                "valueFrom": {ref_field: {"key": key, "name": name}},
            }));
        }
    }
    Ok(env)
}

/// kubectl's merge of a container's variables: removals drop, same names replace in place,
/// new names append in order.
fn update_env(existing: &[Value], env: &[Value], remove: &[String]) -> Vec<Value> {
    let name = |v: &Value| v["name"].as_str().unwrap_or("").to_string();
    let mut covered: Vec<String> = remove.to_vec();
    let mut out = Vec::new();
    for e in existing {
        let n = name(e);
        if covered.contains(&n) {
            continue;
        }
        if let Some(newer) = env.iter().find(|v| name(v) == n) {
            covered.push(n);
            out.push(newer.clone());
        } else {
            out.push(e.clone());
        }
    }
    for e in env {
        let n = name(e);
        if !covered.contains(&n) {
            covered.push(n);
            out.push(e.clone());
        }
    }
    out
}

/// How `--list` shows a variable that comes from a reference.
fn ref_string(from: &Value) -> String {
    if let Some(r) = from["configMapKeyRef"].as_object() {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return format!("configmap {}, key {}", s("name"), s("key"));
    }
    if let Some(r) = from["secretKeyRef"].as_object() {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return format!("secret {}, key {}", s("name"), s("key"));
    }
    if let Some(r) = from["fieldRef"].as_object() {
        return format!("field path {}", r.get("fieldPath").and_then(Value::as_str).unwrap_or(""));
    }
    if let Some(r) = from["resourceFieldRef"].as_object() {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return format!("resource {}", s("resource"));
    }
    "invalid valueFrom".to_string()
}

fn env(ctx: &mut Ctx, a: SetEnvArgs) -> Result<()> {
    if a.all && a.selector.is_some() {
        return Err(Error::usage("cannot set --all and --selector at the same time"));
    }
    let Some((res_args, env_args)) = split_env_args(&a.args) else {
        return Err(Error::usage(format!(
            "all resources must be specified before environment changes: {}",
            a.args.join(" ")
        )));
    };
    let dry = DryRun::parse(a.write.dry_run.as_deref())?;
    Format::parse(a.write.output.output.as_deref())?;
    if res_args.is_empty() {
        return Err(Error::usage("one or more resources must be specified as <resource> <name> or <resource>/<name>"));
    }
    if a.list && a.write.output.output.as_deref().is_some_and(|o| !o.is_empty()) {
        return Err(Error::usage("--list and --output may not be specified together"));
    }
    if !a.keys.is_empty() && a.from.is_none() {
        return Err(Error::usage("when specifying --keys, a configmap or secret must be provided with --from"));
    }
    let mut specs = a.env.clone();
    specs.extend(env_args.iter().cloned());
    let (mut env, remove) = parse_env(&specs)?;
    if let Some(from) = a.from.as_deref().filter(|f| !f.is_empty()) {
        env.extend(env_from(ctx, from, &a.keys)?);
    }
    if !a.prefix.is_empty() {
        for e in &mut env {
            let n = e["name"].as_str().unwrap_or("").to_string();
            e["name"] = json!(format!("{}{n}", a.prefix));
        }
    }
    let objs = resource::fetch(ctx, &res_args, a.all || a.selector.is_some(), a.selector.as_deref())?;
    let mut errors = Vec::new();
    for (r, before) in objs {
        let mut after = before.clone();
        let name = name_of(&before).to_string();
        let spec = match pod_spec(&mut after, &r) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("error: {} {e}", object_name(&r, &before)));
                continue;
            }
        };
        let chosen = selected(spec, &a.containers);
        if chosen.is_empty() {
            ctx.eprintln(&format!(
                "Warning: {}/{name} does not have any containers matching {:?}",
                r.kind, a.containers
            ));
            continue;
        }
        let mut failed = None;
        for (field, i) in chosen {
            let c = &mut spec[field][i];
            let existing: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
            if !a.overwrite {
                for e in &env {
                    let clash = existing.iter().find(|x| x["name"] == e["name"]);
                    if let Some(cur) = clash
                        && cur["value"].as_str().unwrap_or("") != e["value"].as_str().unwrap_or("")
                    {
                        failed = Some(format!(
                            "'{}' already has a value ({}), and --overwrite is false",
                            cur["name"].as_str().unwrap_or(""),
                            cur["value"].as_str().unwrap_or("")
                        ));
                        break;
                    }
                }
                if failed.is_some() {
                    break;
                }
            }
            let updated = update_env(&existing, &env, &remove);
            if a.list {
                let cname = c["name"].as_str().unwrap_or("").to_string();
                ctx.println(&format!("# {} {name}, container {cname}", r.kind));
                for e in &updated {
                    let en = e["name"].as_str().unwrap_or("");
                    if e["valueFrom"].is_object() {
                        ctx.println(&format!("# {en} from {}", ref_string(&e["valueFrom"])));
                    } else {
                        ctx.println(&format!("{en}={}", e["value"].as_str().unwrap_or("")));
                    }
                }
            }
            if let Some(map) = c.as_object_mut() {
                if updated.is_empty() {
                    map.remove("env");
                } else {
                    map.insert("env".into(), Value::Array(updated));
                }
            }
        }
        if let Some(f) = failed {
            errors.push(format!("error: {} {f}", object_name(&r, &before)));
            continue;
        }
        if a.list || before == after {
            continue;
        }
        if let Err(e) = write(ctx, &r, (&before, &after), dry, &a.write, "env updated") {
            errors.push(format!("failed to patch env update to pod template: {e}"));
        }
    }
    finish(errors)
}

// ---------------------------------------------------------------------------------------
// set resources

/// Parses `cpu=200m,memory=512Mi` into a resource list.
fn resource_list(spec: &str) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    if spec.is_empty() {
        return Ok(out);
    }
    for statement in spec.split(',') {
        let parts: Vec<&str> = statement.split('=').collect();
        if parts.len() != 2 {
            return Err(Error::usage(format!("Invalid argument syntax {statement}, expected <resource>=<value>")));
        }
        if !is_quantity(parts[1]) {
            return Err(Error::usage(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ));
        }
        out.insert(parts[0].to_string(), json!(parts[1]));
    }
    Ok(out)
}

/// A loose check of Kubernetes' quantity syntax (number, then an optional suffix).
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits);
    !num.is_empty()
        && num.chars().any(|c| c.is_ascii_digit())
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u"
        )
}

fn resources(ctx: &mut Ctx, a: SetResourcesArgs) -> Result<()> {
    let dry = DryRun::parse(a.write.dry_run.as_deref())?;
    Format::parse(a.write.output.output.as_deref())?;
    let objs = resource::fetch(ctx, &a.resources, a.all || a.selector.is_some(), a.selector.as_deref())?;
    if a.all && a.selector.is_some() {
        return Err(Error::usage("cannot set --all and --selector at the same time"));
    }
    if a.limits.is_empty() && a.requests.is_empty() {
        return Err(Error::usage(
            "you must specify an update to requests or limits (in the form of --requests/--limits)",
        ));
    }
    let limits = resource_list(&a.limits)?;
    let requests = resource_list(&a.requests)?;
    let mut errors = Vec::new();
    for (r, before) in objs {
        let mut after = before.clone();
        let spec = match pod_spec(&mut after, &r) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("error: {} {e}", object_name(&r, &before)));
                continue;
            }
        };
        let chosen = selected(spec, &a.containers);
        if chosen.is_empty() {
            errors.push(format!("error: unable to find container named {}", a.containers));
            continue;
        }
        for (field, i) in chosen {
            let res = &mut spec[field][i]["resources"];
            for (key, list) in [("limits", &limits), ("requests", &requests)] {
                if list.is_empty() {
                    continue;
                }
                if !res[key].is_object() {
                    res[key] = json!({});
                }
                for (k, v) in list {
                    res[key][k] = v.clone();
                }
            }
        }
        if before == after {
            continue;
        }
        if let Err(e) = write(ctx, &r, (&before, &after), dry, &a.write, "resource requirements updated") {
            errors.push(format!("failed to patch resources update to pod template {e}"));
        }
    }
    finish(errors)
}

// ---------------------------------------------------------------------------------------
// set serviceaccount

fn serviceaccount(ctx: &mut Ctx, a: SetServiceAccountArgs) -> Result<()> {
    let dry = DryRun::parse(a.write.dry_run.as_deref())?;
    Format::parse(a.write.output.output.as_deref())?;
    let Some((sa, res_args)) = a.args.split_last() else {
        return Err(Error::usage("serviceaccount is required"));
    };
    let objs = resource::fetch(ctx, res_args, a.all, None)?;
    let mut errors = Vec::new();
    for (r, before) in objs {
        let mut after = before.clone();
        match pod_spec(&mut after, &r) {
            Ok(spec) => spec["serviceAccountName"] = json!(sa),
            Err(e) => {
                errors.push(format!("error: {} {e}", object_name(&r, &before)));
                continue;
            }
        }
        if let Err(e) = write(ctx, &r, (&before, &after), dry, &a.write, "serviceaccount updated") {
            errors.push(format!("failed to patch ServiceAccountName {e}"));
        }
    }
    finish(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_kubectl() {
        assert!(select("web", "*"));
        assert!(select("web", "web"));
        assert!(!select("web", "we"));
        assert!(select("web-sidecar", "web*"));
        assert!(select("my-web", "*web"));
        assert!(!select("web-x", "*web"));
        assert!(select("a-b-c", "a*c"));
        assert!(!select("xa-b-c", "a*c"));
    }

    #[test]
    fn arguments_split_resources_from_changes() {
        let args: Vec<String> = ["deploy/x", "A=1", "B-"].iter().map(|s| s.to_string()).collect();
        assert_eq!(split_env_args(&args), Some((vec!["deploy/x".into()], vec!["A=1".into(), "B-".into()])));
        let bad: Vec<String> = ["A=1", "deploy/x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(split_env_args(&bad), None);
    }

    #[test]
    fn env_updates_replace_in_place_and_append() {
        let existing = vec![json!({"name": "A", "value": "1"}), json!({"name": "B", "value": "2"})];
        let env = vec![json!({"name": "C", "value": "3"}), json!({"name": "A", "value": "9"})];
        let out = update_env(&existing, &env, &["B".to_string()]);
        assert_eq!(out, vec![json!({"name": "A", "value": "9"}), json!({"name": "C", "value": "3"})]);
    }

    #[test]
    fn bad_env_names_and_conflicts_are_refused() {
        assert!(parse_env(&["1A=x".to_string()]).is_err());
        assert!(parse_env(&["A=x".to_string(), "A-".to_string()]).is_err());
        let (env, remove) = parse_env(&["A=x=y".to_string(), "B-".to_string()]).unwrap_or_default();
        assert_eq!(env, vec![json!({"name": "A", "value": "x=y"})]);
        assert_eq!(remove, vec!["B".to_string()]);
    }

    #[test]
    fn merge_diff_sends_only_changes() {
        let before = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": true});
        let after = json!({"a": 1, "b": {"c": [1, 3], "d": "x"}, "f": 2});
        assert_eq!(merge_diff(&before, &after), Some(json!({"b": {"c": [1, 3]}, "e": null, "f": 2})));
        assert_eq!(merge_diff(&before, &before), None);
    }

    #[test]
    fn resource_lists_parse() {
        let l = resource_list("cpu=200m,memory=512Mi").unwrap_or_default();
        assert_eq!(l.get("cpu"), Some(&json!("200m")));
        assert!(resource_list("cpu").is_err());
        assert!(resource_list("cpu=lots").is_err());
    }
}
