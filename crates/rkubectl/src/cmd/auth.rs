//! `auth can-i` (SelfSubjectAccessReview; `--list` through SelfSubjectRulesReview, printed
//! with kubectl's breakdown, compaction and ordering of rules) and `auth whoami`
//! (SelfSubjectReview).

use crate::ctx::Ctx;
use crate::discovery::strings;
use crate::error::{Error, Result};
use crate::print::Format;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

/// `auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Check whether an action is allowed.
    CanI(CanIArgs),
    /// Experimental: check self subject attributes.
    Whoami(WhoamiArgs),
}

/// `auth can-i`.
#[derive(Debug, Clone, Args)]
pub struct CanIArgs {
    /// VERB [TYPE | TYPE/NAME | NONRESOURCEURL]
    pub args: Vec<String>,
    /// Check in all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// List all allowed actions.
    #[arg(long)]
    pub list: bool,
    /// Output nothing; the exit code says yes (0) or no (1).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// SubResource such as pod/log or deployment/scale.
    #[arg(long)]
    pub subresource: Option<String>,
    /// Don't print headers (with --list).
    #[arg(long)]
    pub no_headers: bool,
}

/// `auth whoami`.
#[derive(Debug, Clone, Args)]
pub struct WhoamiArgs {
    /// Output format: json or yaml.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

/// Runs `auth`.
pub fn run(ctx: &mut Ctx, cmd: AuthCommand) -> Result<()> {
    match cmd {
        AuthCommand::CanI(a) => can_i(ctx, a),
        AuthCommand::Whoami(a) => whoami(ctx, a),
    }
}

fn can_i(ctx: &mut Ctx, a: CanIArgs) -> Result<()> {
    let ns = if a.all_namespaces { String::new() } else { ctx.namespace()? };
    let client = ctx.client()?;
    if a.list {
        let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": ns}});
        let path = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
        let resp = client.json(Method::POST, path, "application/json", Some(("application/json", &review)))?;
        if resp["status"]["incomplete"] == true {
            let why = resp["status"]["evaluationError"].as_str().unwrap_or("");
            ctx.eprintln(&format!("Warning: the list may be incomplete: {why}"));
        }
        print_rules(ctx, &resp["status"], a.no_headers);
        return Ok(());
    }
    let (verb, what) = match a.args.as_slice() {
        [verb, what] => (verb.clone(), what.clone()),
        [_] => {
            return Err(Error::usage("you must specify two arguments: verb resource or verb resource/resourceName."));
        }
        _ => return Err(Error::usage("you must specify two arguments: verb resource or verb resource/resourceName.")),
    };
    let attrs = if what.starts_with('/') {
        json!({"nonResourceAttributes": {"path": what, "verb": verb}})
    } else {
        let (ty, name) = match what.split_once('/') {
            Some((t, n)) => (t.to_string(), n.to_string()),
            None => (what.clone(), String::new()),
        };
        let (group, resource) = match ctx.resource(&ty) {
            Ok(r) => {
                if !r.verbs.is_empty() && verb != "*" && !r.verbs.iter().any(|v| v == &verb) && !a.quiet {
                    ctx.eprintln(&format!("Warning: verb '{verb}' is not a known verb\n"));
                }
                (r.group.clone(), r.plural.clone())
            }
            Err(_) => {
                if !a.quiet && ty != "*" {
                    ctx.eprintln(&format!("Warning: the server doesn't have a resource type '{ty}'\n"));
                }
                // "pods.apps"-style input still names a group.
                match ty.split_once('.') {
                    Some((r, g)) => (g.to_string(), r.to_string()),
                    None => (String::new(), ty.clone()),
                }
            }
        };
        let mut ra = json!({"namespace": ns, "verb": verb, "group": group, "resource": resource});
        if let Some(s) = &a.subresource {
            ra["subresource"] = json!(s);
        }
        if !name.is_empty() {
            ra["name"] = json!(name);
        }
        json!({"resourceAttributes": ra})
    };
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": attrs});
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let resp = client.json(Method::POST, path, "application/json", Some(("application/json", &review)))?;
    let status = &resp["status"];
    if status["allowed"] == true {
        if !a.quiet {
            ctx.println("yes");
        }
        return Ok(());
    }
    if !a.quiet {
        let mut line = "no".to_string();
        for field in ["reason", "evaluationError"] {
            if let Some(t) = status[field].as_str().filter(|t| !t.is_empty()) {
                line.push_str(&format!(" - {t}"));
            }
        }
        ctx.println(&line);
    }
    Err(Error::Exit { code: 1, message: String::new() })
}

fn print_rules(ctx: &mut Ctx, status: &Value, no_headers: bool) {
    let mut lines: Vec<Vec<String>> = Vec::new();
    if !no_headers {
        lines.push(
            ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"].iter().map(|s| s.to_string()).collect(),
        );
    }
    let listed = ["resourceRules", "nonResourceRules"].map(|f| status[f].as_array().cloned().unwrap_or_default());
    for r in crate::policy::rules(listed.iter().flatten()) {
        lines.push(r.cells().to_vec());
    }
    // kubectl's tabwriter for this table has a minimum cell width of 6 (padding included).
    let text = crate::print::table::tabwrite_min(&lines, 6, 3);
    ctx.print(&text);
}

fn whoami(ctx: &mut Ctx, a: WhoamiArgs) -> Result<()> {
    let format = Format::parse(a.output.as_deref())?;
    let client = ctx.client()?;
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let resp = client.json(Method::POST, path, "application/json", Some(("application/json", &review)))?;
    let info = &resp["status"]["userInfo"];
    match format {
        Format::Json => {
            // kubectl prints the typed object: Go's field order, not sorted keys.
            let extra: std::collections::BTreeMap<String, Vec<String>> =
                info["extra"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), strings(v))).collect();
            let review = Review {
                kind: "SelfSubjectReview",
                api_version: "authentication.k8s.io/v1",
                metadata: Meta { creation_timestamp: None },
                status: ReviewStatus {
                    user_info: UserInfo {
                        username: info["username"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                        uid: info["uid"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                        groups: strings(&info["groups"]),
                        extra,
                    },
                },
            };
            let text = crate::print::json::serialize(&review);
            ctx.print(&text);
            return Ok(());
        }
        Format::Yaml => {
            let mut obj = resp.clone();
            obj["metadata"] = json!({"creationTimestamp": null});
            crate::cmd::get::print_objects(ctx, &format, vec![obj], true, false);
            return Ok(());
        }
        _ => {}
    }
    let mut lines = vec![vec!["ATTRIBUTE".to_string(), "VALUE".to_string()]];
    if let Some(u) = info["username"].as_str().filter(|u| !u.is_empty()) {
        lines.push(vec!["Username".into(), u.into()]);
    }
    if let Some(u) = info["uid"].as_str().filter(|u| !u.is_empty()) {
        lines.push(vec!["UID".into(), u.into()]);
    }
    let groups = strings(&info["groups"]);
    if !groups.is_empty() {
        lines.push(vec!["Groups".into(), format!("[{}]", groups.join(" "))]);
    }
    if let Some(extra) = info["extra"].as_object() {
        let mut keys: Vec<&String> = extra.keys().collect();
        keys.sort();
        for k in keys {
            lines.push(vec![format!("Extra: {k}"), format!("[{}]", strings(&extra[k]).join(" "))]);
        }
    }
    let text = crate::print::table::align(&lines);
    ctx.print(&text);
    Ok(())
}

/// SelfSubjectReview in Go's field order.
#[derive(serde::Serialize)]
struct Review {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Meta,
    status: ReviewStatus,
}

#[derive(serde::Serialize)]
struct Meta {
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: Option<String>,
}

#[derive(serde::Serialize)]
struct ReviewStatus {
    #[serde(rename = "userInfo")]
    user_info: UserInfo,
}

#[derive(serde::Serialize)]
struct UserInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extra: std::collections::BTreeMap<String, Vec<String>>,
}
