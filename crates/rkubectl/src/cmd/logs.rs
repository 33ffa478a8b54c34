//! `logs`: the REST `pods/{name}/log` subresource, streamed to stdout (`-f` follows).

use crate::cli::LogsArgs;
use crate::ctx::{Ctx, parse_duration};
use crate::error::{Error, Result};
use crate::resource::{enc, name_of};
use std::io::{Read, Write};

/// Runs `logs`.
pub fn run(ctx: &mut Ctx, a: LogsArgs) -> Result<()> {
    let Some(first) = a.args.first() else {
        return Err(Error::usage("expected POD or TYPE/NAME is a required argument for the logs command"));
    };
    let mut container = a.container.clone();
    if container.is_none() {
        container = a.args.get(1).cloned();
    }
    let ns = ctx.namespace()?;
    let client = ctx.client()?;
    let pod = match first.split_once('/') {
        None => first.clone(),
        Some((ty, name)) => {
            let r = ctx.resource(ty)?;
            if r.kind == "Pod" {
                name.to_string()
            } else {
                // A controller: the first of its pods, as kubectl picks one.
                let selector = crate::cmd::stream::controller_selector(&client, &r, &ns, name)?;
                let pods = ctx.resource("pods")?;
                let (items, _) =
                    crate::resource::list_all(ctx, &pods, Some(&ns), &[("labelSelector".into(), selector)])?;
                let Some(p) = items.first() else {
                    return Err(Error::usage(format!("no pods found for {ty}/{name}")));
                };
                name_of(p).to_string()
            }
        }
    };
    let mut q = Vec::new();
    if let Some(c) = &container {
        q.push(format!("container={}", enc(c)));
    }
    if a.follow {
        q.push("follow=true".into());
    }
    if a.tail >= 0 {
        q.push(format!("tailLines={}", a.tail));
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
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}/log{}{}", if q.is_empty() { "" } else { "?" }, q.join("&"));
    ctx.flush();
    let mut resp = client.stream(&path, "*/*")?;
    let mut buf = [0u8; 16 * 1024];
    let stdout = std::io::stdout();
    loop {
        let n = resp.read(&mut buf).map_err(|e| Error::Connect(format!("reading logs: {e}")))?;
        if n == 0 {
            break;
        }
        let mut lock = stdout.lock();
        if lock.write_all(&buf[..n]).and_then(|_| lock.flush()).is_err() {
            // The reader went away (`| head`): stop quietly.
            break;
        }
    }
    Ok(())
}
