//! `logs`: the REST `pods/{name}/log` subresource, streamed to stdout. One pod, a controller's
//! first pod, or every pod of a selector; one container, the default one, or all of them;
//! `-f` follows several streams at once (up to `--max-log-requests`), line by line.

use crate::cli::LogsArgs;
use crate::client::Client;
use crate::ctx::{Ctx, parse_duration};
use crate::error::{Error, Result};
use crate::resource::{enc, name_of};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};

/// One log stream: which pod and container, and the request path.
struct Source {
    pod: String,
    container: String,
    path: String,
}

/// Runs `logs`.
pub fn run(ctx: &mut Ctx, a: LogsArgs) -> Result<()> {
    let ns = ctx.namespace()?;
    let client = ctx.client()?;
    let pods = pods(ctx, &client, &a, &ns)?;
    if pods.is_empty() {
        ctx.eprintln(&format!("No resources found in {ns} namespace."));
        return Ok(());
    }
    let mut q = Vec::new();
    if a.follow {
        q.push("follow=true".to_string());
    }
    // kubectl shows the last 10 lines of each pod when a selector picks them.
    match a.tail.or(a.selector.is_some().then_some(10)) {
        Some(n) if n >= 0 => q.push(format!("tailLines={n}")),
        _ => {}
    }
    if a.previous {
        q.push("previous=true".into());
    }
    if a.timestamps {
        q.push("timestamps=true".into());
    }
    if let Some(s) = &a.since {
        q.push(format!("sinceSeconds={}", parse_duration(s)?.as_secs().max(1)));
    }
    if let Some(t) = &a.since_time {
        q.push(format!("sinceTime={}", enc(t)));
    }
    if let Some(n) = a.limit_bytes {
        q.push(format!("limitBytes={n}"));
    }
    let explicit = a.container.clone().or_else(|| a.args.get(1).cloned());
    let mut sources = Vec::new();
    for pod in &pods {
        let containers = if a.all_containers {
            ["initContainers", "containers", "ephemeralContainers"]
                .iter()
                .flat_map(|f| pod["spec"][*f].as_array().into_iter().flatten())
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        } else {
            let container = crate::cmd::stream::pick_container(ctx, pod, explicit.as_deref(), false)?;
            let known = ["initContainers", "containers", "ephemeralContainers"]
                .iter()
                .flat_map(|f| pod["spec"][*f].as_array().into_iter().flatten())
                .any(|c| c["name"] == container.as_str());
            if !known {
                return Err(Error::usage(format!("container {container} is not valid for pod {}", name_of(pod))));
            }
            vec![container]
        };
        for container in containers {
            let mut query = q.clone();
            query.push(format!("container={}", enc(&container)));
            let name = name_of(pod).to_string();
            let path = format!("/api/v1/namespaces/{ns}/pods/{}/log?{}", enc(&name), query.join("&"));
            sources.push(Source { pod: name, container, path });
        }
    }
    ctx.flush();
    if a.follow && sources.len() > 1 {
        if sources.len() > a.max_log_requests {
            return Err(Error::usage(format!(
                "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
                sources.len(),
                a.max_log_requests
            )));
        }
        return follow_all(&client, sources, a.prefix);
    }
    for source in &sources {
        copy_stream(&client, source, a.prefix)?;
    }
    Ok(())
}

/// The pods whose logs are wanted: `-l`'s, else the named pod or a controller's first pod.
fn pods(ctx: &mut Ctx, client: &Client, a: &LogsArgs, ns: &str) -> Result<Vec<Value>> {
    let pods = ctx.resource("pods")?;
    if let Some(selector) = &a.selector {
        if !a.args.is_empty() {
            return Err(Error::usage("only a selector (-l) or a POD name is allowed"));
        }
        let (items, _) =
            crate::resource::list_all(ctx, &pods, Some(ns), &[("labelSelector".into(), selector.clone())])?;
        return Ok(items);
    }
    let Some(first) = a.args.first() else {
        return Err(Error::usage(
            "expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\n\
             POD or TYPE/NAME is a required argument for the logs command\n\
             See 'rkubectl logs -h' for help and examples",
        ));
    };
    let name = match first.split_once('/') {
        None => first.clone(),
        Some((ty, name)) => {
            let r = ctx.resource(ty)?;
            if r.kind == "Pod" {
                name.to_string()
            } else {
                // A controller: the first of its pods, as kubectl picks one.
                let selector = crate::cmd::stream::controller_selector(client, &r, ns, name)?;
                let (mut items, _) =
                    crate::resource::list_all(ctx, &pods, Some(ns), &[("labelSelector".into(), selector)])?;
                items.sort_by(by_logging);
                let Some(p) = items.into_iter().next() else {
                    return Err(Error::usage(format!("no pods found for {ty}/{name}")));
                };
                return Ok(vec![p]);
            }
        }
    };
    match client.get(&pods.item(ns, &name)) {
        Ok(pod) => Ok(vec![pod]),
        // kubectl's own wording when the named pod is missing.
        Err(e) if e.is_not_found() => Err(Error::usage(format!(
            "error from server (NotFound): pods \"{name}\" not found in namespace \"{ns}\""
        ))),
        Err(e) => Err(e),
    }
}

/// kubectl's order for picking pods to show logs of, best first: on a node, then Running
/// (Unknown, then Pending, after it), Ready, more restarts, older.
fn by_logging(a: &Value, b: &Value) -> std::cmp::Ordering {
    let on_node = |p: &Value| !p["spec"]["nodeName"].as_str().unwrap_or("").is_empty();
    let phase = |p: &Value| match p["status"]["phase"].as_str() {
        Some("Unknown") => 1,
        Some("Pending") => 2,
        _ => 0,
    };
    let ready = |p: &Value| {
        p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let restarts = |p: &Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["restartCount"].as_i64())
            .max()
    };
    let created = |p: &Value| p["metadata"]["creationTimestamp"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
    on_node(b)
        .cmp(&on_node(a))
        .then(phase(a).cmp(&phase(b)))
        .then(ready(b).cmp(&ready(a)))
        .then(restarts(b).unwrap_or(0).cmp(&restarts(a).unwrap_or(0)))
        // Empty timestamps last: None sorts after Some here.
        .then_with(|| match (created(a), created(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (x, y) => x.is_none().cmp(&y.is_none()),
        })
}

fn prefix_of(source: &Source) -> String {
    format!("[pod/{}/{}] ", source.pod, source.container)
}

/// Copies one stream to stdout as it arrives; a reader that went away (`| head`) ends it quietly.
fn copy_stream(client: &Client, source: &Source, prefix: bool) -> Result<()> {
    let resp = client.stream(&source.path, "*/*")?;
    let stdout = std::io::stdout();
    if prefix {
        let tag = prefix_of(source);
        for line in BufReader::new(resp).split(b'\n') {
            let line = line.map_err(|e| Error::Connect(format!("reading logs: {e}")))?;
            let mut lock = stdout.lock();
            if write_line(&mut lock, &tag, &line).is_err() {
                break;
            }
        }
        return Ok(());
    }
    let mut resp = resp;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = resp.read(&mut buf).map_err(|e| Error::Connect(format!("reading logs: {e}")))?;
        if n == 0 {
            break;
        }
        let mut lock = stdout.lock();
        if lock.write_all(&buf[..n]).and_then(|_| lock.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

fn write_line(out: &mut impl Write, tag: &str, line: &[u8]) -> std::io::Result<()> {
    out.write_all(tag.as_bytes())?;
    out.write_all(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Follows every stream at once on its own thread; whole lines go to stdout, so streams
/// interleave only between lines. Ends when all streams end; the first error is returned.
fn follow_all(client: &Client, sources: Vec<Source>, prefix: bool) -> Result<()> {
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|source| {
                scope.spawn(move || -> Result<()> {
                    let resp = client.stream(&source.path, "*/*")?;
                    let tag = if prefix { prefix_of(source) } else { String::new() };
                    for line in BufReader::new(resp).split(b'\n') {
                        let line = line.map_err(|e| Error::Connect(format!("reading logs: {e}")))?;
                        if write_line(&mut std::io::stdout().lock(), &tag, &line).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::usage("a log stream failed")))).collect()
    });
    results.into_iter().collect()
}
