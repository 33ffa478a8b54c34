//! `get`: server-side tables for the default and `wide` output, JSON/YAML/name/JSONPath/
//! custom-columns from the objects, `-w` streaming rows as they change.

use crate::cli::GetArgs;
use crate::client::TABLE_ACCEPT;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::table::{self, TableOptions};
use crate::print::{Format, json, jsonpath, yaml};
use crate::resource::{self, Target, Targets, enc, fill_type};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead;

/// Runs `get`.
pub fn run(ctx: &mut Ctx, args: GetArgs) -> Result<()> {
    let format = Format::parse(args.output.output.as_deref())?;
    let targets = if !args.files.filename.is_empty() {
        targets_from_files(ctx, &args)?
    } else {
        if args.resources.is_empty() {
            return Err(Error::usage(
                "Required resource not specified.\nUse \"rkubectl explain <resource>\" for a detailed description of that resource (e.g. rkubectl explain pods).\nSee 'rkubectl get -h' for help and examples",
            ));
        }
        resource::parse(ctx, &args.resources)?
    };
    if args.all_namespaces && targets.items.iter().any(|t| t.name.is_some()) && args.files.filename.is_empty() {
        return Err(Error::usage("a resource cannot be retrieved by name across all namespaces"));
    }
    let ns = if args.all_namespaces { None } else { Some(ctx.namespace()?) };
    if args.watch || args.watch_only {
        return watch(ctx, &args, &format, &targets, ns.as_deref());
    }
    if format.is_table() {
        tables(ctx, &args, &format, &targets, ns.as_deref())
    } else {
        objects(ctx, &args, &format, &targets, ns.as_deref())
    }
}

fn targets_from_files(ctx: &mut Ctx, args: &GetArgs) -> Result<Targets> {
    let docs = crate::manifest::read(&args.files.filename, args.files.recursive)?;
    let mut items = Vec::new();
    for d in docs {
        let r = ctx.resource_for_kind(
            d.object["apiVersion"].as_str().unwrap_or(""),
            d.object["kind"].as_str().unwrap_or(""),
        )?;
        items.push(Target { resource: r, name: Some(resource::name_of(&d.object).to_string()) });
    }
    let mut kinds: Vec<&ApiResource> = Vec::new();
    for t in &items {
        if !kinds.contains(&&t.resource) {
            kinds.push(&t.resource);
        }
    }
    let distinct_types = kinds.len();
    let single_named = items.len() == 1;
    Ok(Targets { items, distinct_types, single_named })
}

fn selectors(args: &GetArgs) -> Vec<String> {
    let mut q = Vec::new();
    if let Some(l) = &args.selector {
        q.push(format!("labelSelector={}", enc(l)));
    }
    if let Some(f) = &args.field_selector {
        q.push(format!("fieldSelector={}", enc(f)));
    }
    q
}

/// Consecutive targets of the same type, printed as one table.
fn groups(targets: &Targets) -> Vec<(ApiResource, Vec<Option<String>>)> {
    let mut out: Vec<(ApiResource, Vec<Option<String>>)> = Vec::new();
    for t in &targets.items {
        match out.last_mut() {
            Some((r, names)) if *r == t.resource && t.name.is_some() && names.iter().all(Option::is_some) => {
                names.push(t.name.clone())
            }
            _ => out.push((t.resource.clone(), vec![t.name.clone()])),
        }
    }
    out
}

fn tables(ctx: &mut Ctx, args: &GetArgs, format: &Format, targets: &Targets, ns: Option<&str>) -> Result<()> {
    let client = ctx.client()?;
    let mut printed_any = false;
    let mut any_rows = false;
    let mut all_namespaced = true;
    let include = if args.sort_by.is_some() { "includeObject=Object" } else { "" };
    for (r, names) in groups(targets) {
        all_namespaced &= r.namespaced;
        let mut table: Option<Value> = None;
        for name in &names {
            let item_ns = ns.unwrap_or("");
            let result = match name {
                Some(n) => {
                    let q = if include.is_empty() { String::new() } else { format!("?{include}") };
                    client.json(Method::GET, &format!("{}{q}", r.item(item_ns, n)), TABLE_ACCEPT, None)
                }
                None => list_table(&client, &r, ns, args, include),
            };
            match result {
                Ok(t) => merge_table(&mut table, t),
                Err(e) if e.is_not_found() && args.ignore_not_found => {}
                Err(e) => ctx.report(&e),
            }
        }
        let Some(mut table) = table else { continue };
        if table["kind"] != "Table" {
            // The server cannot print tables: fall back to names only.
            table = name_only_table(&table);
        }
        if let Some(sort) = &args.sort_by {
            sort_rows(&mut table, sort)?;
        }
        let opts = TableOptions {
            wide: matches!(format, Format::Wide),
            with_namespace: ns.is_none() && r.namespaced,
            kind_prefix: (targets.distinct_types > 1 || args.show_kind).then(|| r.kind_group()),
            show_labels: args.show_labels,
            label_columns: args.label_columns.clone(),
        };
        let rows = table::rows(&table, &opts);
        if rows.rows.is_empty() {
            continue;
        }
        any_rows = true;
        if printed_any {
            ctx.print("\n");
        }
        printed_any = true;
        let text = table::render(&rows, args.no_headers);
        ctx.print(&text);
    }
    if !any_rows && !ctx.failed && !args.ignore_not_found {
        no_resources(ctx, ns, all_namespaced);
    }
    Ok(())
}

fn no_resources(ctx: &mut Ctx, ns: Option<&str>, all_namespaced: bool) {
    match ns {
        Some(ns) if all_namespaced => ctx.eprintln(&format!("No resources found in {ns} namespace.")),
        _ => ctx.eprintln("No resources found"),
    }
}

fn list_table(
    client: &crate::client::Client,
    r: &ApiResource,
    ns: Option<&str>,
    args: &GetArgs,
    include: &str,
) -> Result<Value> {
    let mut table: Option<Value> = None;
    let mut cont = String::new();
    loop {
        let mut q = selectors(args);
        q.push(format!("limit={}", args.chunk_size));
        if !include.is_empty() {
            q.push(include.to_string());
        }
        if !cont.is_empty() {
            q.push(format!("continue={}", enc(&cont)));
        }
        let page = client.json(Method::GET, &format!("{}?{}", r.collection(ns), q.join("&")), TABLE_ACCEPT, None)?;
        cont = page["metadata"]["continue"].as_str().unwrap_or("").to_string();
        merge_table(&mut table, page);
        if cont.is_empty() || args.chunk_size == 0 {
            return Ok(table.unwrap_or(Value::Null));
        }
    }
}

fn merge_table(acc: &mut Option<Value>, next: Value) {
    match acc {
        None => *acc = Some(next),
        Some(t) => {
            let rows = next["rows"].as_array().cloned().unwrap_or_default();
            if let Some(existing) = t["rows"].as_array_mut() {
                existing.extend(rows);
            }
        }
    }
}

fn name_only_table(obj: &Value) -> Value {
    let items: Vec<Value> = match obj["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![obj.clone()],
    };
    let rows: Vec<Value> = items.iter().map(|i| json!({"cells": [resource::name_of(i)], "object": i})).collect();
    json!({"kind": "Table", "columnDefinitions": [{"name": "Name", "format": "name", "priority": 0}], "rows": rows})
}

fn sort_rows(table: &mut Value, spec: &str) -> Result<()> {
    let expr = if spec.starts_with('{') { spec.to_string() } else { format!("{{{spec}}}") };
    let t = jsonpath::Template::parse(&expr).map_err(|e| Error::usage(e.to_string()))?;
    if let Some(rows) = table["rows"].as_array_mut() {
        rows.sort_by(|a, b| compare_values(&t.values(&a["object"]), &t.values(&b["object"])));
    }
    Ok(())
}

fn compare_values(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    let (Some(x), Some(y)) = (a.first(), b.first()) else { return a.len().cmp(&b.len()) };
    match (x, y) {
        (Value::Number(p), Value::Number(q)) => {
            p.as_f64().partial_cmp(&q.as_f64()).unwrap_or(std::cmp::Ordering::Equal)
        }
        _ => jsonpath::text_of(x).cmp(&jsonpath::text_of(y)),
    }
}

/// Removes metadata.managedFields, as kubectl does unless --show-managed-fields.
pub fn strip_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

fn objects(ctx: &mut Ctx, args: &GetArgs, format: &Format, targets: &Targets, ns: Option<&str>) -> Result<()> {
    let client = ctx.client()?;
    let mut items: Vec<Value> = Vec::new();
    let mut all_namespaced = true;
    for t in &targets.items {
        all_namespaced &= t.resource.namespaced;
        match &t.name {
            Some(n) => match client.get(&t.resource.item(ns.unwrap_or(""), n)) {
                Ok(mut obj) => {
                    fill_type(&mut obj, &t.resource);
                    items.push(obj);
                }
                Err(e) if e.is_not_found() && args.ignore_not_found => {}
                Err(e) => ctx.report(&e),
            },
            None => {
                let mut query = Vec::new();
                if let Some(l) = &args.selector {
                    query.push(("labelSelector".to_string(), l.clone()));
                }
                if let Some(f) = &args.field_selector {
                    query.push(("fieldSelector".to_string(), f.clone()));
                }
                match resource::list_all(ctx, &t.resource, ns, &query) {
                    Ok((list, _)) => items.extend(list),
                    Err(e) => ctx.report(&e),
                }
            }
        }
    }
    if !args.show_managed_fields {
        items.iter_mut().for_each(strip_managed_fields);
    }
    if let Some(sort) = &args.sort_by {
        let expr = if sort.starts_with('{') { sort.clone() } else { format!("{{{sort}}}") };
        let t = jsonpath::Template::parse(&expr).map_err(|e| Error::usage(e.to_string()))?;
        items.sort_by(|a, b| compare_values(&t.values(a), &t.values(b)));
    }
    let single = targets.single_named && items.len() == 1;
    if items.is_empty() && !single && matches!(format, Format::Name | Format::CustomColumns(_)) {
        if !ctx.failed && !args.ignore_not_found {
            no_resources(ctx, ns, all_namespaced);
        }
        return Ok(());
    }
    if items.is_empty() && targets.single_named {
        return Ok(());
    }
    print_objects(ctx, format, items, single, args.no_headers);
    Ok(())
}

/// Prints objects in a non-table format; `single` prints the one object instead of a List.
pub fn print_objects(ctx: &mut Ctx, format: &Format, items: Vec<Value>, single: bool, no_headers: bool) {
    match format {
        Format::Name => {
            for i in &items {
                ctx.println(&name_line(i));
            }
        }
        Format::CustomColumns(cols) => {
            let text = crate::print::custom_columns(cols, &items, no_headers);
            ctx.print(&text);
        }
        _ => {
            let doc = if single { items.into_iter().next().unwrap_or(Value::Null) } else { as_list(items) };
            match format {
                Format::Json => ctx.print(&json::to_string(&doc)),
                Format::Yaml => ctx.print(&yaml::to_string(&doc)),
                Format::JsonPath(t) => ctx.print(&t.render(&doc)),
                _ => {}
            }
        }
    }
}

/// kubectl's client-side List of several objects.
pub fn as_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// `kind.group/name` for `-o name`.
pub fn name_line(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or("").to_lowercase();
    let group = obj["apiVersion"].as_str().and_then(|v| v.rsplit_once('/').map(|(g, _)| g)).unwrap_or("");
    let kg = if group.is_empty() { kind } else { format!("{kind}.{group}") };
    format!("{kg}/{}", resource::name_of(obj))
}

fn watch(ctx: &mut Ctx, args: &GetArgs, format: &Format, targets: &Targets, ns: Option<&str>) -> Result<()> {
    let gs = groups(targets);
    if gs.len() != 1 || gs[0].1.len() > 1 {
        return Err(Error::usage(format!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            targets.items.len()
        )));
    }
    let (r, names) = &gs[0];
    let name = names[0].clone();
    let client = ctx.client()?;
    let opts = TableOptions {
        wide: matches!(format, Format::Wide),
        with_namespace: ns.is_none() && r.namespaced,
        kind_prefix: args.show_kind.then(|| r.kind_group()),
        show_labels: args.show_labels,
        label_columns: args.label_columns.clone(),
    };
    let mut q = selectors(args);
    if let Some(n) = &name {
        q.push(format!("fieldSelector={}", enc(&format!("metadata.name={n}"))));
    }
    let mut header_printed = args.no_headers;
    let mut rv = String::new();
    if !args.watch_only {
        let accept = if format.is_table() { TABLE_ACCEPT } else { "application/json" };
        let mut lq = q.clone();
        lq.push("limit=500".into());
        let list = client.json(Method::GET, &format!("{}?{}", r.collection(ns), lq.join("&")), accept, None)?;
        rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
        if format.is_table() {
            let rows = table::rows(&list, &opts);
            if rows.rows.is_empty() {
                no_resources(ctx, ns, r.namespaced);
            } else {
                let text = table::render(&rows, args.no_headers);
                ctx.print(&text);
                header_printed = true;
            }
        } else {
            for mut item in list["items"].as_array().cloned().unwrap_or_default() {
                fill_type(&mut item, r);
                if !args.show_managed_fields {
                    strip_managed_fields(&mut item);
                }
                print_objects(ctx, format, vec![item], true, true);
            }
        }
        ctx.flush();
    }
    q.push("watch=1".into());
    q.push("allowWatchBookmarks=true".into());
    if !rv.is_empty() {
        q.push(format!("resourceVersion={}", enc(&rv)));
    }
    let accept = if format.is_table() { TABLE_ACCEPT } else { "application/json" };
    let resp = client.stream(&format!("{}?{}", r.collection(ns), q.join("&")), accept)?;
    let reader = std::io::BufReader::new(resp);
    for line in reader.lines() {
        let line = line.map_err(|e| Error::Connect(format!("watch stream: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        match event["type"].as_str().unwrap_or("") {
            "BOOKMARK" => continue,
            "ERROR" => {
                let status = serde_json::to_vec(&event["object"]).unwrap_or_default();
                let code = event["object"]["code"].as_u64().unwrap_or(500) as u16;
                return Err(Error::Api(crate::error::ApiError::from_response(code, &status)));
            }
            _ => {}
        }
        let mut obj = event["object"].clone();
        if format.is_table() {
            let (shown, name_col) = table::layout(&obj, opts.wide);
            let mut lines = Vec::new();
            if !header_printed {
                lines.push(table::rows(&obj, &opts).header);
                header_printed = true;
            }
            for row in obj["rows"].as_array().cloned().unwrap_or_default() {
                lines.push(table::row_cells(&row, &shown, name_col, &opts));
            }
            let text = table::align(&lines);
            ctx.print(&text);
        } else {
            fill_type(&mut obj, r);
            if !args.show_managed_fields {
                strip_managed_fields(&mut obj);
            }
            print_objects(ctx, format, vec![obj], true, true);
        }
        ctx.flush();
    }
    Ok(())
}
