//! Server-side Tables (`meta.k8s.io/v1` Table) printed the way kubectl prints them: upper-case
//! headers, Go tabwriter alignment with 3 spaces of padding, priority columns only with
//! `-o wide`, `NAMESPACE` first with `-A`, `LABELS` last with `--show-labels`, `kind/name` names
//! when several kinds are printed.

use serde_json::Value;

/// Options that change which columns a table shows.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// `-o wide`: include priority > 0 columns.
    pub wide: bool,
    /// `-A`: a leading NAMESPACE column.
    pub with_namespace: bool,
    /// `kind.group` prefix of the name column (several kinds requested).
    pub kind_prefix: Option<String>,
    /// `--show-labels`: a trailing LABELS column.
    pub show_labels: bool,
    /// `-L key`: one column per label key.
    pub label_columns: Vec<String>,
}

/// A table ready for alignment: header cells and row cells.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Header cells (upper-case).
    pub header: Vec<String>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
}

/// Converts a Table object into header + rows per `opts`.
pub fn rows(table: &Value, opts: &TableOptions) -> Rows {
    let empty = Vec::new();
    let columns = table["columnDefinitions"].as_array().unwrap_or(&empty);
    let shown: Vec<usize> =
        (0..columns.len()).filter(|&i| opts.wide || columns[i]["priority"].as_i64().unwrap_or(0) == 0).collect();
    let name_col =
        columns.iter().position(|c| c["format"] == "name").or_else(|| columns.iter().position(|c| c["name"] == "Name"));
    let mut header = Vec::new();
    if opts.with_namespace {
        header.push("NAMESPACE".to_string());
    }
    for &i in &shown {
        header.push(columns[i]["name"].as_str().unwrap_or("").to_uppercase());
    }
    for key in &opts.label_columns {
        header.push(key.rsplit('/').next().unwrap_or(key).to_uppercase());
    }
    if opts.show_labels {
        header.push("LABELS".to_string());
    }
    let mut out = Vec::new();
    for row in table["rows"].as_array().unwrap_or(&empty) {
        out.push(row_cells(row, &shown, name_col, opts));
    }
    Rows { header, rows: out }
}

/// The cells of one Table row per `opts` (used by watch, which prints rows one by one).
pub fn row_cells(row: &Value, shown: &[usize], name_col: Option<usize>, opts: &TableOptions) -> Vec<String> {
    let empty = Vec::new();
    let cells = row["cells"].as_array().unwrap_or(&empty);
    let meta = &row["object"]["metadata"];
    let mut line = Vec::new();
    if opts.with_namespace {
        line.push(meta["namespace"].as_str().unwrap_or("").to_string());
    }
    for &i in shown {
        let mut text = cells.get(i).map(cell_text).unwrap_or_default();
        if Some(i) == name_col
            && let Some(prefix) = &opts.kind_prefix
        {
            text = format!("{prefix}/{text}");
        }
        line.push(text);
    }
    for key in &opts.label_columns {
        line.push(meta["labels"][key.as_str()].as_str().unwrap_or("").to_string());
    }
    if opts.show_labels {
        line.push(format_labels(&meta["labels"]));
    }
    line
}

/// Indexes of the shown columns and of the name column for a Table's column definitions.
pub fn layout(table: &Value, wide: bool) -> (Vec<usize>, Option<usize>) {
    let empty = Vec::new();
    let columns = table["columnDefinitions"].as_array().unwrap_or(&empty);
    let shown = (0..columns.len()).filter(|&i| wide || columns[i]["priority"].as_i64().unwrap_or(0) == 0).collect();
    let name_col =
        columns.iter().position(|c| c["format"] == "name").or_else(|| columns.iter().position(|c| c["name"] == "Name"));
    (shown, name_col)
}

/// `k=v,k2=v2` sorted by key, or `<none>`.
pub fn format_labels(labels: &Value) -> String {
    match labels.as_object() {
        Some(map) if !map.is_empty() => {
            let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => "<none>".to_string(),
    }
}

fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\u{c}']) {
            Some(pos) => format!("{}...", &s[..pos]),
            None => s.clone(),
        },
        Value::Number(n) if n.is_f64() => super::yaml::go_float(n.as_f64().unwrap_or(0.0)),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => super::json::compact(other),
    }
}

/// Aligns lines like Go's tabwriter(minwidth 0, padding 3), as kubectl's tables do.
pub fn align(lines: &[Vec<String>]) -> String {
    tabwrite(lines, 3)
}

/// Go's text/tabwriter: every cell but a line's last is tab-terminated; a column's width is
/// taken over the run of consecutive lines that have a terminated cell in that column, so a
/// line with fewer cells (a section header in `describe`) ends the alignment block.
pub fn tabwrite(lines: &[Vec<String>], padding: usize) -> String {
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(lines, 0, lines.len(), 0, padding, &mut widths, &mut out);
    out
}

fn format_block(
    lines: &[Vec<String>],
    line0: usize,
    line1: usize,
    column: usize,
    padding: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) -> usize {
    let mut pos = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, pos, this, widths, out);
        pos = this;
        let mut width = 0;
        let mut end = this;
        while end < line1 && column + 1 < lines[end].len() {
            width = width.max(lines[end][column].chars().count() + padding);
            end += 1;
        }
        widths.push(width);
        pos = format_block(lines, pos, end, column + 1, padding, widths, out);
        widths.pop();
        this = end;
    }
    write_lines(lines, pos, line1, widths, out);
    line1
}

fn write_lines(lines: &[Vec<String>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths.get(j).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

/// Go's tabwriter with a minimum cell width (kubectl's `GetNewTabWriter`: 6, padding 3) over
/// lines that all belong to one alignment block.
pub fn tabwrite_min(lines: &[Vec<String>], min: usize, padding: usize) -> String {
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for l in lines {
        for (i, c) in l.iter().enumerate().take(l.len().saturating_sub(1)) {
            widths[i] = widths[i].max((c.chars().count() + padding).max(min));
        }
    }
    let mut out = String::new();
    for l in lines {
        for (i, c) in l.iter().enumerate() {
            out.push_str(c);
            if i + 1 < l.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Header (unless `no_headers`) and rows, aligned.
pub fn render(rows: &Rows, no_headers: bool) -> String {
    let mut lines = Vec::with_capacity(rows.rows.len() + 1);
    if !no_headers {
        lines.push(rows.header.clone());
    }
    lines.extend(rows.rows.iter().cloned());
    align(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_like_tabwriter() {
        let lines =
            vec![vec!["NAME".into(), "READY".into(), "AGE".into()], vec!["web-long".into(), "0/1".into(), "2s".into()]];
        assert_eq!(align(&lines), "NAME       READY   AGE\nweb-long   0/1     2s\n");
    }

    #[test]
    fn tabwriter_blocks_end_at_lines_without_cells() {
        let lines: Vec<Vec<String>> = [
            vec!["Name:", "web"],
            vec!["Service Account:", "default"],
            vec!["Containers:"],
            vec!["  c:"],
            vec!["    Image:", "nginx"],
        ]
        .iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect();
        assert_eq!(
            tabwrite(&lines, 2),
            "Name:             web\nService Account:  default\nContainers:\n  c:\n    Image:  nginx\n"
        );
    }

    #[test]
    fn wide_namespace_kind_and_labels() {
        let table = json!({
            "columnDefinitions": [
                {"name": "Name", "format": "name", "priority": 0},
                {"name": "Ready", "format": "", "priority": 0},
                {"name": "IP", "format": "", "priority": 1}
            ],
            "rows": [{"cells": ["web", "0/1", "10.0.0.1"], "object": {"metadata": {"namespace": "ns", "labels": {"b": "2", "a": "1"}}}}]
        });
        let opts = TableOptions {
            with_namespace: true,
            kind_prefix: Some("pod".into()),
            show_labels: true,
            ..Default::default()
        };
        let r = rows(&table, &opts);
        assert_eq!(r.header, ["NAMESPACE", "NAME", "READY", "LABELS"]);
        assert_eq!(r.rows[0], ["ns", "pod/web", "0/1", "a=1,b=2"]);
        let wide = rows(&table, &TableOptions { wide: true, ..Default::default() });
        assert_eq!(wide.header, ["NAME", "READY", "IP"]);
    }
}
