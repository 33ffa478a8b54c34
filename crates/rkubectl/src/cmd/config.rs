//! `config`: view (redacted, `--minify`, `--raw`, `--flatten`), contexts, and edits written
//! back to the file that defines each stanza.

use crate::cli::{ConfigCommand, ConfigViewArgs, GetContextsArgs};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::kubeconfig::{self, Cluster, Config, Context, NamedCluster, NamedContext, NamedUser, User};
use crate::print::table::align;
use crate::print::{Format, json, yaml};

/// Runs a `config` subcommand.
pub fn run(ctx: &mut Ctx, cmd: ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::View(a) => view(ctx, a),
        ConfigCommand::GetContexts(a) => get_contexts(ctx, a),
        ConfigCommand::GetClusters => {
            let names: Vec<String> = ctx.kubeconfig()?.merged.clusters.iter().map(|c| c.name.clone()).collect();
            ctx.println("NAME");
            for n in names {
                ctx.println(&n);
            }
            Ok(())
        }
        ConfigCommand::GetUsers => {
            let names: Vec<String> = ctx.kubeconfig()?.merged.users.iter().map(|c| c.name.clone()).collect();
            ctx.println("NAME");
            for n in names {
                ctx.println(&n);
            }
            Ok(())
        }
        ConfigCommand::CurrentContext => {
            let cur = ctx.kubeconfig()?.merged.current_context.clone();
            if cur.is_empty() {
                return Err(Error::usage("current-context is not set"));
            }
            ctx.println(&cur);
            Ok(())
        }
        ConfigCommand::UseContext { name } => {
            let loaded = ctx.kubeconfig()?.clone();
            if loaded.merged.context(&name).is_none() {
                return Err(Error::usage(format!("no context exists with the name: \"{name}\"")));
            }
            let path = loaded.file_for_current_context();
            let mut file = loaded.file(&path);
            file.current_context = name.clone();
            kubeconfig::write(&path, &file)?;
            ctx.println(&format!("Switched to context \"{name}\"."));
            Ok(())
        }
        ConfigCommand::SetContext(a) => {
            let loaded = ctx.kubeconfig()?.clone();
            let name = if a.current {
                let cur = loaded.merged.current_context.clone();
                if cur.is_empty() {
                    return Err(Error::usage("no current context is set"));
                }
                cur
            } else {
                a.name.clone().ok_or_else(|| Error::usage("you must specify a non-empty context name or --current"))?
            };
            let existed = loaded.merged.context(&name).is_some();
            let path = loaded.file_for("contexts", &name);
            let mut file = loaded.file(&path);
            let mut entry =
                file.context(&name).cloned().or_else(|| loaded.merged.context(&name).cloned()).unwrap_or_default();
            let g = &ctx.global;
            if let Some(c) = &g.cluster {
                entry.cluster = c.clone();
            }
            if let Some(u) = &g.user {
                entry.user = u.clone();
            }
            if let Some(n) = &g.namespace {
                entry.namespace = n.clone();
            }
            upsert_context(&mut file, &name, entry);
            kubeconfig::write(&path, &file)?;
            let verb = if existed { "modified" } else { "created" };
            ctx.println(&format!("Context \"{name}\" {verb}."));
            Ok(())
        }
        ConfigCommand::SetCluster(a) => {
            let loaded = ctx.kubeconfig()?.clone();
            let path = loaded.file_for("clusters", &a.name);
            let mut file = loaded.file(&path);
            let mut entry: Cluster = file.cluster(&a.name).cloned().unwrap_or_default();
            let g = &ctx.global;
            if let Some(s) = &g.server {
                entry.server = s.clone();
            }
            if g.insecure_skip_tls_verify {
                entry.insecure_skip_tls_verify = true;
            }
            if let Some(tls) = &g.tls_server_name {
                entry.tls_server_name = tls.clone();
            }
            if let Some(ca) = &g.certificate_authority {
                if a.embed_certs {
                    use base64::Engine as _;
                    let bytes = std::fs::read(ca).map_err(|e| {
                        Error::usage(format!("could not read certificate-authority data from {ca}: {e}"))
                    })?;
                    entry.certificate_authority_data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    entry.certificate_authority.clear();
                } else {
                    entry.certificate_authority = absolute(ca);
                }
            }
            match file.clusters.iter_mut().find(|c| c.name == a.name) {
                Some(c) => c.cluster = entry,
                None => file.clusters.push(NamedCluster { name: a.name.clone(), cluster: entry }),
            }
            kubeconfig::write(&path, &file)?;
            ctx.println(&format!("Cluster \"{}\" set.", a.name));
            Ok(())
        }
        ConfigCommand::SetCredentials(a) => {
            let loaded = ctx.kubeconfig()?.clone();
            let path = loaded.file_for("users", &a.name);
            let mut file = loaded.file(&path);
            let mut entry: User = file.user(&a.name).cloned().unwrap_or_default();
            let g = ctx.global.clone();
            if let Some(t) = g.token {
                entry.token = t;
            }
            if let Some(u) = g.username {
                entry.username = u;
            }
            if let Some(p) = g.password {
                entry.password = p;
            }
            use base64::Engine as _;
            let b64 = |p: &str| -> Result<String> {
                let bytes = std::fs::read(p).map_err(|e| Error::usage(format!("error reading {p}: {e}")))?;
                Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
            };
            if let Some(c) = g.client_certificate {
                if a.embed_certs {
                    entry.client_certificate_data = b64(&c)?;
                } else {
                    entry.client_certificate = absolute(&c);
                }
            }
            if let Some(k) = g.client_key {
                if a.embed_certs {
                    entry.client_key_data = b64(&k)?;
                } else {
                    entry.client_key = absolute(&k);
                }
            }
            match file.users.iter_mut().find(|u| u.name == a.name) {
                Some(u) => u.user = entry,
                None => file.users.push(NamedUser { name: a.name.clone(), user: entry }),
            }
            kubeconfig::write(&path, &file)?;
            ctx.println(&format!("User \"{}\" set.", a.name));
            Ok(())
        }
        ConfigCommand::DeleteContext { name } => {
            let loaded = ctx.kubeconfig()?.clone();
            if loaded.merged.context(&name).is_none() {
                return Err(Error::usage(format!("cannot delete context {name}, not in {}", chain_text(&loaded))));
            }
            let path = loaded.file_for("contexts", &name);
            let mut file = loaded.file(&path);
            file.contexts.retain(|c| c.name != name);
            if loaded.merged.current_context == name {
                ctx.eprintln("warning: this removed your active context, use \"rkubectl config use-context\" to select a different one");
            }
            kubeconfig::write(&path, &file)?;
            ctx.println(&format!("deleted context {name} from {}", path.display()));
            Ok(())
        }
        ConfigCommand::RenameContext { old, new } => {
            let loaded = ctx.kubeconfig()?.clone();
            if loaded.merged.context(&old).is_none() {
                return Err(Error::usage(format!(
                    "cannot rename the context \"{old}\", it's not in {}",
                    chain_text(&loaded)
                )));
            }
            if loaded.merged.context(&new).is_some() {
                return Err(Error::usage(format!(
                    "cannot rename the context \"{old}\", the context \"{new}\" already exists in {}",
                    chain_text(&loaded)
                )));
            }
            let path = loaded.file_for("contexts", &old);
            let mut file = loaded.file(&path);
            for c in &mut file.contexts {
                if c.name == old {
                    c.name = new.clone();
                }
            }
            if file.current_context == old {
                file.current_context = new.clone();
            }
            kubeconfig::write(&path, &file)?;
            ctx.println(&format!("Context \"{old}\" renamed to \"{new}\"."));
            Ok(())
        }
    }
}

fn chain_text(loaded: &kubeconfig::Loaded) -> String {
    loaded.chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn absolute(p: &str) -> String {
    let path = std::path::Path::new(p);
    if path.is_absolute() {
        return p.to_string();
    }
    std::env::current_dir().map(|d| d.join(path).display().to_string()).unwrap_or_else(|_| p.to_string())
}

fn upsert_context(file: &mut Config, name: &str, entry: Context) {
    match file.contexts.iter_mut().find(|c| c.name == name) {
        Some(c) => c.context = entry,
        None => file.contexts.push(NamedContext { name: name.to_string(), context: entry }),
    }
}

fn view(ctx: &mut Ctx, a: ConfigViewArgs) -> Result<()> {
    let loaded = ctx.kubeconfig()?.clone();
    let mut cfg = loaded.merged.clone();
    if a.minify {
        let name = ctx.global.context.clone().unwrap_or_else(|| cfg.current_context.clone());
        cfg = kubeconfig::minify(&cfg, &name)?;
    }
    if a.flatten {
        kubeconfig::flatten(&loaded, &mut cfg)?;
    } else if !a.raw {
        kubeconfig::redact(&mut cfg);
    }
    let format = match a.output.output.as_deref() {
        None | Some("yaml") => Format::Yaml,
        Some(o) => Format::parse(Some(o))?,
    };
    match format {
        Format::Yaml => ctx.print(&cfg.to_yaml()),
        Format::Json => ctx.print(&json::serialize(&cfg)),
        Format::JsonPath(t) => {
            let v = serde_json::to_value(&cfg).unwrap_or_default();
            ctx.print(&t.render(&v));
        }
        _ => {
            let v = serde_json::to_value(&cfg).unwrap_or_default();
            ctx.print(&yaml::to_string(&v));
        }
    }
    Ok(())
}

fn get_contexts(ctx: &mut Ctx, a: GetContextsArgs) -> Result<()> {
    let loaded = ctx.kubeconfig()?.clone();
    let cur = loaded.merged.current_context.clone();
    let mut contexts: Vec<&NamedContext> = loaded.merged.contexts.iter().collect();
    if !a.names.is_empty() {
        for n in &a.names {
            if loaded.merged.context(n).is_none() {
                return Err(Error::usage(format!("context {n} not found")));
            }
        }
        contexts.retain(|c| a.names.contains(&c.name));
    }
    if a.output.output.as_deref() == Some("name") {
        for c in contexts {
            ctx.println(&c.name);
        }
        return Ok(());
    }
    let mut lines = Vec::new();
    if !a.no_headers {
        lines.push(vec!["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"].into_iter().map(String::from).collect());
    }
    for c in contexts {
        lines.push(vec![
            if c.name == cur { "*".to_string() } else { String::new() },
            c.name.clone(),
            c.context.cluster.clone(),
            c.context.user.clone(),
            c.context.namespace.clone(),
        ]);
    }
    let text = align(&lines);
    ctx.print(&text);
    Ok(())
}
