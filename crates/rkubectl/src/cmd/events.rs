//! `events`: kubectl's event table (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE) oldest first,
//! with `--for`, `--types`, `-A`, `-w` and `-o`.

use crate::cmd::describe::age;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::print::Format;
use crate::resource::{self, enc};
use clap::Args;
use serde_json::{Value, json};
use std::io::BufRead;

/// `events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// List the requested object(s) across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Filter events to only those pertaining to the specified resource.
    #[arg(long = "for")]
    pub for_: Option<String>,
    /// Output only events of given types.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// After listing the requested events, watch for more events.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// When using the default output format, don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Output format.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Return large lists in chunks rather than all at once.
    #[arg(long, default_value_t = 500)]
    pub chunk_size: u32,
}

/// Runs `events`.
pub fn run(ctx: &mut Ctx, a: EventsArgs) -> Result<()> {
    let format = match a.output.as_deref() {
        None | Some("") => None,
        Some(o) => Some(Format::parse(Some(o))?),
    };
    let mut field_selector = None;
    let mut wanted = None;
    if let Some(f) = a.for_.as_deref().filter(|f| !f.is_empty()) {
        let Some((ty, name)) = f.split_once('/') else {
            return Err(Error::usage("--for must be in resource/name form"));
        };
        if name.contains('/') {
            return Err(Error::usage("arguments in resource/name form may not have more than one slash"));
        }
        let r = ctx.resource(ty)?;
        field_selector = Some(format!("involvedObject.kind={},involvedObject.name={name}", r.kind));
        wanted = Some((r.kind.clone(), name.to_string()));
    }
    for t in &a.types {
        if !t.eq_ignore_ascii_case("Normal") && !t.eq_ignore_ascii_case("Warning") {
            return Err(Error::usage("valid --types are Normal or Warning"));
        }
    }
    let ns = ctx.namespace()?;
    let r = ctx.resource("events")?;
    let scope = (!a.all_namespaces).then_some(ns.as_str());
    // The field selector narrows on the server; the same test here keeps the answer right
    // from a server that ignores it.
    let keep = |e: &Value| -> bool {
        let type_ok =
            a.types.is_empty() || a.types.iter().any(|t| e["type"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(t)));
        let for_ok =
            wanted.as_ref().is_none_or(|(k, n)| e["involvedObject"]["kind"] == *k && e["involvedObject"]["name"] == *n);
        type_ok && for_ok
    };
    if a.watch {
        return watch(ctx, &a, format.as_ref(), scope, field_selector.as_deref(), &keep);
    }
    let query: Vec<(String, String)> =
        field_selector.iter().map(|s| ("fieldSelector".to_string(), s.clone())).collect();
    let (items, _) = resource::list_all(ctx, &r, scope, &query)?;
    let mut events: Vec<Value> = items.into_iter().filter(|e| keep(e)).collect();
    if events.is_empty() {
        if a.all_namespaces {
            ctx.eprintln("No events found.");
        } else {
            ctx.eprintln(&format!("No events found in {ns} namespace."));
        }
        return Ok(());
    }
    // A stable sort: Go's sort of a short list is an insertion sort, which keeps ties in order.
    events.sort_by_key(sort_time);
    match format {
        Some(f) => {
            let list = json!({"apiVersion": "v1", "items": events, "kind": "EventList", "metadata": {}});
            print_formatted(ctx, &f, list);
        }
        None => {
            let mut lines = Vec::new();
            if !a.no_headers {
                lines.push(header(a.all_namespaces));
            }
            lines.extend(events.iter().map(|e| row(e, a.all_namespaces)));
            let mut w = TabWriter::default();
            let mut text = w.write(&tabbed(&lines));
            text.push_str(&w.flush());
            ctx.print(&text);
        }
    }
    Ok(())
}

/// The table header.
fn header(all_namespaces: bool) -> Vec<String> {
    let mut h: Vec<String> = Vec::new();
    if all_namespaces {
        h.push("NAMESPACE".into());
    }
    h.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"].map(String::from));
    h
}

/// Prints a list (or one event while watching) in a `-o` format.
fn print_formatted(ctx: &mut Ctx, format: &Format, doc: Value) {
    match format {
        Format::Name => {
            for e in doc["items"].as_array().into_iter().flatten() {
                ctx.println(&format!("event/{}", resource::name_of(e)));
            }
            if doc["kind"] == "Event" {
                ctx.println(&format!("event/{}", resource::name_of(&doc)));
            }
        }
        Format::Json => ctx.print(&crate::print::json::to_string(&doc)),
        Format::Yaml => ctx.print(&crate::print::yaml::to_string(&doc)),
        Format::JsonPath(t) => ctx.print(&t.render(&doc)),
        Format::CustomColumns(cols) => {
            let items = doc["items"].as_array().cloned().unwrap_or_else(|| vec![doc.clone()]);
            ctx.print(&crate::print::custom_columns(cols, &items, false));
        }
        Format::Table | Format::Wide => {}
    }
}

/// When an event last happened, for sorting: the series' last observation, else
/// `lastTimestamp`, else `eventTime`; missing times sort first.
fn sort_time(e: &Value) -> jiff::Timestamp {
    let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok());
    if e["series"].is_object() {
        return parse(&e["series"]["lastObservedTime"]).unwrap_or(jiff::Timestamp::MIN);
    }
    parse(&e["lastTimestamp"]).or_else(|| parse(&e["eventTime"])).unwrap_or(jiff::Timestamp::MIN)
}

/// kubectl's age of a timestamp that may be absent.
fn since(v: &Value) -> String {
    match v.as_str().filter(|s| !s.is_empty()) {
        Some(ts) => age(ts),
        None => "<unknown>".into(),
    }
}

/// kubectl's LAST SEEN: `5m`, or `2m (x3 over 10m)` for repeated events.
fn interval(e: &Value) -> String {
    let first = if e["eventTime"].as_str().is_some_and(|s| !s.is_empty()) {
        since(&e["eventTime"])
    } else {
        since(&e["firstTimestamp"])
    };
    if e["series"].is_object() {
        let count = e["series"]["count"].as_i64().unwrap_or(0);
        return format!("{} (x{count} over {first})", since(&e["series"]["lastObservedTime"]));
    }
    let count = e["count"].as_i64().unwrap_or(0);
    if count > 1 {
        return format!("{} (x{count} over {first})", since(&e["lastTimestamp"]));
    }
    first
}

/// A cell's text (kubectl v1.33 prints it raw; a line break in it ends the table line).
fn cell(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// kubectl's tab writer for events: Go's text/tabwriter (min width 6, padding 3) that flushes
/// at every line of a single cell and remembers each column's widest width across flushes
/// (kubectl's fork's `RememberWidths`), so later blocks never shrink a column.
#[derive(Debug, Default)]
struct TabWriter {
    /// Lines not yet flushed, each split at tabs.
    pending: Vec<Vec<String>>,
    /// The widest width seen per column.
    remembered: Vec<usize>,
}

impl TabWriter {
    const MIN: usize = 6;
    const PADDING: usize = 3;

    /// Feeds tab-separated, newline-terminated text; returns what became printable.
    fn write(&mut self, text: &str) -> String {
        let mut out = String::new();
        for line in text.split_terminator('\n') {
            let cells: Vec<String> = line.split('\t').map(String::from).collect();
            let single = cells.len() == 1;
            self.pending.push(cells);
            if single {
                out.push_str(&self.flush());
            }
        }
        out
    }

    /// Formats and empties the pending lines.
    fn flush(&mut self) -> String {
        let lines = std::mem::take(&mut self.pending);
        let mut out = String::new();
        let mut widths = Vec::new();
        self.format(&lines, 0, lines.len(), &mut widths, &mut out);
        out
    }

    fn format(&mut self, lines: &[Vec<String>], line0: usize, line1: usize, widths: &mut Vec<usize>, out: &mut String) {
        let column = widths.len();
        let mut start = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            write_lines(lines, start, this, widths, out);
            start = this;
            let mut width = Self::MIN;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].chars().count() + Self::PADDING);
                this += 1;
            }
            if self.remembered.len() <= column {
                self.remembered.resize(column + 1, 0);
            }
            width = width.max(self.remembered[column]);
            self.remembered[column] = width;
            widths.push(width);
            self.format(lines, start, this, widths, out);
            widths.pop();
            start = this;
        }
        write_lines(lines, start, line1, widths, out);
    }
}

fn write_lines(lines: &[Vec<String>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, c) in line.iter().enumerate() {
            out.push_str(c);
            if j + 1 < line.len() {
                let pad = widths.get(j).copied().unwrap_or(0).saturating_sub(c.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

/// Joins rows into tab-separated lines.
fn tabbed(rows: &[Vec<String>]) -> String {
    rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect()
}

/// One table row.
fn row(e: &Value, all_namespaces: bool) -> Vec<String> {
    let mut r = Vec::new();
    if all_namespaces {
        r.push(resource::namespace_of(e).to_string());
    }
    let message = json!(e["message"].as_str().unwrap_or("").trim());
    r.push(interval(e));
    r.push(cell(&e["type"]));
    r.push(cell(&e["reason"]));
    r.push(format!("{}/{}", cell(&e["involvedObject"]["kind"]), cell(&e["involvedObject"]["name"])));
    r.push(cell(&message));
    r
}

/// `events -w`: a watch from now on (the server replays the current events first), one
/// aligned block per event as kubectl flushes after each.
fn watch(
    ctx: &mut Ctx,
    a: &EventsArgs,
    format: Option<&Format>,
    scope: Option<&str>,
    field_selector: Option<&str>,
    keep: &dyn Fn(&Value) -> bool,
) -> Result<()> {
    let r = ctx.resource("events")?;
    let client = ctx.client()?;
    let mut q = vec!["watch=1".to_string()];
    if let Some(fs) = field_selector {
        q.push(format!("fieldSelector={}", enc(fs)));
    }
    let resp = client.stream(&format!("{}?{}", r.collection(scope), q.join("&")), "application/json")?;
    let mut header_done = a.no_headers;
    let mut w = TabWriter::default();
    for line in std::io::BufReader::new(resp).lines() {
        let line = line.map_err(|e| Error::Connect(format!("watch stream: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(ev) = serde_json::from_str::<Value>(&line) else { continue };
        if ev["type"] == "DELETED" || ev["type"] == "BOOKMARK" || ev["type"] == "ERROR" {
            continue;
        }
        let mut obj = ev["object"].clone();
        if !keep(&obj) {
            continue;
        }
        resource::fill_type(&mut obj, &r);
        match format {
            Some(f) => print_formatted(ctx, f, obj),
            None => {
                let mut lines = Vec::new();
                if !header_done {
                    lines.push(header(a.all_namespaces));
                    header_done = true;
                }
                lines.push(row(&obj, a.all_namespaces));
                let mut text = w.write(&tabbed(&lines));
                text.push_str(&w.flush());
                ctx.print(&text);
            }
        }
        ctx.flush();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_events_show_their_count() {
        let e = json!({"count": 1, "firstTimestamp": null});
        assert_eq!(interval(&e), "<unknown>");
        let e = json!({"series": {"count": 3, "lastObservedTime": null}});
        assert_eq!(interval(&e), "<unknown> (x3 over <unknown>)");
    }

    #[test]
    fn sorting_prefers_series_then_last_timestamp() {
        let a = json!({"lastTimestamp": "2024-01-01T00:00:10Z"});
        let b = json!({"eventTime": "2024-01-01T00:00:05.000000Z"});
        let c = json!({"series": {"lastObservedTime": "2024-01-01T00:00:01.000000Z"}, "lastTimestamp": "2024-01-01T00:00:20Z"});
        let mut v = [a.clone(), b.clone(), c.clone()];
        v.sort_by_key(sort_time);
        assert_eq!(v, [c, b, a]);
    }

    #[test]
    fn widths_are_remembered_across_flushes() {
        let mut w = TabWriter::default();
        let text = w.write("LONG HEADER\tB\tC\nx\ty\tmessage\nsecond line\nz\tw\tm\n");
        let text = text + &w.flush();
        assert_eq!(text, "LONG HEADER   B     C\nx             y     message\nsecond line\nz             w     m\n");
    }
}
