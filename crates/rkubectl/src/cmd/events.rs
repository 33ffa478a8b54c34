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
    let events: Vec<Value> = items.into_iter().filter(|e| keep(e)).collect();
    if events.is_empty() {
        if a.all_namespaces {
            ctx.eprintln("No events found.");
        } else {
            ctx.eprintln(&format!("No events found in {ns} namespace."));
        }
        return Ok(());
    }
    let mut keyed: Vec<(jiff::Timestamp, Value)> = events.into_iter().map(|e| (sort_time(&e), e)).collect();
    gosort::sort(&mut keyed, &|x, y| x.0 < y.0);
    let events: Vec<Value> = keyed.into_iter().map(|(_, e)| e).collect();
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

/// Prints a list (or one event while watching) in a `-o` format, shaped as kubectl's typed
/// objects print.
fn print_formatted(ctx: &mut Ctx, format: &Format, doc: Value) {
    let mut doc = doc;
    if let Some(items) = doc["items"].as_array_mut() {
        items.iter_mut().for_each(typed_event);
    } else {
        typed_event(&mut doc);
    }
    match format {
        Format::Name => {
            // kubectl v1.33 prints nothing for a listed EventList here (its name printer's
            // error is dropped); a watched event prints as `event/NAME`.
            if doc["kind"] == "Event" {
                ctx.println(&format!("event/{}", resource::name_of(&doc)));
            }
        }
        Format::Json => {
            let order = if doc["kind"] == "Event" { EVENT } else { LIST };
            ctx.print(&crate::print::json::serialize(&GoOrder { value: &doc, order }));
        }
        Format::Yaml => ctx.print(&crate::print::yaml::to_string(&doc)),
        Format::JsonPath(t) => ctx.print(&t.render(&doc)),
        Format::CustomColumns(cols) => {
            let items = doc["items"].as_array().cloned().unwrap_or_else(|| vec![doc.clone()]);
            ctx.print(&crate::print::custom_columns(cols, &items, false));
        }
        Format::Table | Format::Wide => {}
    }
}

/// The fields Go always writes for a typed Event (no `omitempty`, or a struct that is never
/// empty to encoding/json), added when the server left them out; managed fields dropped.
fn typed_event(e: &mut Value) {
    let Some(map) = e.as_object_mut() else { return };
    for (key, default) in [
        ("involvedObject", json!({})),
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        map.entry(key).or_insert(default);
    }
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
}

/// One object's key order (Go struct field order) and the orders of its nested objects.
struct Order {
    keys: &'static [&'static str],
    nested: &'static [(&'static str, &'static Order)],
}

const OBJECT_META: &Order = &Order {
    keys: &[
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ],
    nested: &[],
};
const OBJECT_REFERENCE: &Order =
    &Order { keys: &["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"], nested: &[] };
const EVENT: &Order = &Order {
    keys: &[
        "kind",
        "apiVersion",
        "metadata",
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ],
    nested: &[
        ("metadata", OBJECT_META),
        ("involvedObject", OBJECT_REFERENCE),
        ("source", &Order { keys: &["component", "host"], nested: &[] }),
        ("series", &Order { keys: &["count", "lastObservedTime"], nested: &[] }),
        ("related", OBJECT_REFERENCE),
    ],
};
const LIST: &Order = &Order {
    keys: &["kind", "apiVersion", "metadata", "items"],
    nested: &[("metadata", &Order { keys: &["selfLink", "resourceVersion", "continue"], nested: &[] })],
};

/// A JSON object written in a Go struct's field order (unknown keys after, sorted); `items`
/// of a list are Events.
struct GoOrder<'a> {
    value: &'a Value,
    order: &'a Order,
}

impl serde::Serialize for GoOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Items<'a>(&'a [Value]);
        impl serde::Serialize for Items<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for item in self.0 {
                    seq.serialize_element(&GoOrder { value: item, order: EVENT })?;
                }
                seq.end()
            }
        }
        let Some(obj) = self.value.as_object() else { return self.value.serialize(s) };
        let mut keys: Vec<&str> = self.order.keys.iter().copied().filter(|k| obj.contains_key(*k)).collect();
        let mut rest: Vec<&str> = obj.keys().map(String::as_str).filter(|k| !self.order.keys.contains(k)).collect();
        rest.sort_unstable();
        keys.extend(rest);
        let mut map = s.serialize_map(Some(keys.len()))?;
        for k in keys {
            let v = &obj[k];
            if let Some((_, nested)) = self.order.nested.iter().find(|(n, _)| *n == k) {
                map.serialize_entry(k, &GoOrder { value: v, order: nested })?;
            } else if k == "items"
                && let Some(items) = v.as_array()
            {
                map.serialize_entry(k, &Items(items))?;
            } else {
                map.serialize_entry(k, &crate::print::json::Sorted(v))?;
            }
        }
        map.end()
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

/// Go's `sort.Sort` (pattern-defeating quicksort), reproduced step for step: it is not stable,
/// and kubectl's event order among equal times is whatever it leaves, so only the same
/// algorithm gives the same table.
mod gosort {
    /// Sorts `v` by `less` exactly as Go's `sort.Sort` would.
    pub fn sort<T>(v: &mut [T], less: &dyn Fn(&T, &T) -> bool) {
        let n = v.len();
        if n <= 1 {
            return;
        }
        let limit = bit_len(n);
        let mut s = Sorter { v, less };
        s.pdqsort(0, n, limit);
    }

    /// Bits needed to represent `n` (Go's `bits.Len`).
    fn bit_len(n: usize) -> usize {
        (usize::BITS - n.leading_zeros()) as usize
    }

    #[derive(PartialEq, Eq, Clone, Copy)]
    enum Hint {
        Unknown,
        Increasing,
        Decreasing,
    }

    struct Sorter<'a, T> {
        v: &'a mut [T],
        less: &'a dyn Fn(&T, &T) -> bool,
    }

    impl<T> Sorter<'_, T> {
        fn lt(&self, i: usize, j: usize) -> bool {
            (self.less)(&self.v[i], &self.v[j])
        }

        fn swap(&mut self, i: usize, j: usize) {
            self.v.swap(i, j);
        }

        fn insertion(&mut self, a: usize, b: usize) {
            for i in a + 1..b {
                let mut j = i;
                while j > a && self.lt(j, j - 1) {
                    self.swap(j, j - 1);
                    j -= 1;
                }
            }
        }

        fn sift_down(&mut self, lo: usize, hi: usize, first: usize) {
            let mut root = lo;
            loop {
                let mut child = 2 * root + 1;
                if child >= hi {
                    return;
                }
                if child + 1 < hi && self.lt(first + child, first + child + 1) {
                    child += 1;
                }
                if !self.lt(first + root, first + child) {
                    return;
                }
                self.swap(first + root, first + child);
                root = child;
            }
        }

        fn heap(&mut self, a: usize, b: usize) {
            let hi = b - a;
            for i in (0..hi.div_ceil(2)).rev() {
                self.sift_down(i, hi, a);
            }
            for i in (0..hi).rev() {
                self.swap(a, a + i);
                self.sift_down(0, i, a);
            }
        }

        fn pdqsort(&mut self, mut a: usize, mut b: usize, mut limit: usize) {
            let (mut balanced, mut partitioned) = (true, true);
            loop {
                let len = b - a;
                if len <= 12 {
                    self.insertion(a, b);
                    return;
                }
                if limit == 0 {
                    self.heap(a, b);
                    return;
                }
                if !balanced {
                    self.break_patterns(a, b);
                    limit -= 1;
                }
                let (mut pivot, mut hint) = self.choose_pivot(a, b);
                if hint == Hint::Decreasing {
                    self.reverse(a, b);
                    pivot = (b - 1) - (pivot - a);
                    hint = Hint::Increasing;
                }
                if balanced && partitioned && hint == Hint::Increasing && self.partial_insertion(a, b) {
                    return;
                }
                if a > 0 && !self.lt(a - 1, pivot) {
                    a = self.partition_equal(a, b, pivot);
                    continue;
                }
                let (mid, already) = self.partition(a, b, pivot);
                partitioned = already;
                let (left, right) = (mid - a, b - mid);
                let threshold = len / 8;
                if left < right {
                    balanced = left >= threshold;
                    self.pdqsort(a, mid, limit);
                    a = mid + 1;
                } else {
                    balanced = right >= threshold;
                    self.pdqsort(mid + 1, b, limit);
                    b = mid;
                }
            }
        }

        fn partition(&mut self, a: usize, b: usize, pivot: usize) -> (usize, bool) {
            self.swap(a, pivot);
            // `j` may step below `a + 1` (to `a`), never below `a`: signed keeps it plain.
            let (mut i, mut j) = (a as isize + 1, b as isize - 1);
            let lt = |s: &Self, x: isize, y: usize| s.lt(x as usize, y);
            while i <= j && lt(self, i, a) {
                i += 1;
            }
            while i <= j && !lt(self, j, a) {
                j -= 1;
            }
            if i > j {
                self.swap(j as usize, a);
                return (j as usize, true);
            }
            self.swap(i as usize, j as usize);
            i += 1;
            j -= 1;
            loop {
                while i <= j && lt(self, i, a) {
                    i += 1;
                }
                while i <= j && !lt(self, j, a) {
                    j -= 1;
                }
                if i > j {
                    break;
                }
                self.swap(i as usize, j as usize);
                i += 1;
                j -= 1;
            }
            self.swap(j as usize, a);
            (j as usize, false)
        }

        fn partition_equal(&mut self, a: usize, b: usize, pivot: usize) -> usize {
            self.swap(a, pivot);
            let (mut i, mut j) = (a as isize + 1, b as isize - 1);
            loop {
                while i <= j && !self.lt(a, i as usize) {
                    i += 1;
                }
                while i <= j && self.lt(a, j as usize) {
                    j -= 1;
                }
                if i > j {
                    break;
                }
                self.swap(i as usize, j as usize);
                i += 1;
                j -= 1;
            }
            i as usize
        }

        fn partial_insertion(&mut self, a: usize, b: usize) -> bool {
            let mut i = a + 1;
            for _ in 0..5 {
                while i < b && !self.lt(i, i - 1) {
                    i += 1;
                }
                if i == b {
                    return true;
                }
                if b - a < 50 {
                    return false;
                }
                self.swap(i, i - 1);
                if i - a >= 2 {
                    let mut j = i - 1;
                    while j >= 1 {
                        if !self.lt(j, j - 1) {
                            break;
                        }
                        self.swap(j, j - 1);
                        j -= 1;
                    }
                }
                if b - i >= 2 {
                    for j in i + 1..b {
                        if !self.lt(j, j - 1) {
                            break;
                        }
                        self.swap(j, j - 1);
                    }
                }
            }
            false
        }

        fn break_patterns(&mut self, a: usize, b: usize) {
            let len = b - a;
            if len < 8 {
                return;
            }
            let mut random = len as u64;
            let modulus = 1usize << bit_len(len);
            let centre = a + (len / 4) * 2;
            for idx in centre - 1..=centre + 1 {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                let mut other = (random as usize) & (modulus - 1);
                if other >= len {
                    other -= len;
                }
                self.swap(idx, a + other);
            }
        }

        fn choose_pivot(&mut self, a: usize, b: usize) -> (usize, Hint) {
            let l = b - a;
            let mut swaps = 0;
            let (mut i, mut j, mut k) = (a + l / 4, a + l / 4 * 2, a + l / 4 * 3);
            if l >= 8 {
                if l >= 50 {
                    i = self.median(i - 1, i, i + 1, &mut swaps);
                    j = self.median(j - 1, j, j + 1, &mut swaps);
                    k = self.median(k - 1, k, k + 1, &mut swaps);
                }
                j = self.median(i, j, k, &mut swaps);
            }
            match swaps {
                0 => (j, Hint::Increasing),
                12 => (j, Hint::Decreasing),
                _ => (j, Hint::Unknown),
            }
        }

        fn order2(&self, a: usize, b: usize, swaps: &mut usize) -> (usize, usize) {
            if self.lt(b, a) {
                *swaps += 1;
                (b, a)
            } else {
                (a, b)
            }
        }

        fn median(&self, a: usize, b: usize, c: usize, swaps: &mut usize) -> usize {
            let (a, b) = self.order2(a, b, swaps);
            let (b, c) = self.order2(b, c, swaps);
            let _ = c;
            let (_, b) = self.order2(a, b, swaps);
            b
        }

        fn reverse(&mut self, a: usize, b: usize) {
            let (mut i, mut j) = (a, b - 1);
            while i < j {
                self.swap(i, j);
                i += 1;
                j -= 1;
            }
        }
    }
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
    fn go_sort_orders_long_and_tied_input() {
        let mut v: Vec<u32> = (0..200).map(|i| (i * 7919) % 101).collect();
        gosort::sort(&mut v, &|a, b| a < b);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        // Past 12 items the quicksort path runs; ties may move but keys must end in order.
        let mut t: Vec<(u8, u8)> = (0..15).map(|i| ((i % 3) as u8, i as u8)).collect();
        gosort::sort(&mut t, &|a, b| a.0 < b.0);
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0), "{t:?}");
    }

    #[test]
    fn widths_are_remembered_across_flushes() {
        let mut w = TabWriter::default();
        let text = w.write("LONG HEADER\tB\tC\nx\ty\tmessage\nsecond line\nz\tw\tm\n");
        let text = text + &w.flush();
        assert_eq!(text, "LONG HEADER   B     C\nx             y     message\nsecond line\nz             w     m\n");
    }
}
