//! Output formats: server-side tables, JSON and YAML shaped like kubectl's, `-o name`,
//! JSONPath and custom columns.

pub mod json;
pub use rkube_printers::jsonpath;
pub mod table;
pub mod yaml;

use crate::error::{Error, Result};
use serde_json::Value;

/// A parsed `-o` value.
#[derive(Debug, Clone)]
pub enum Format {
    /// Server table (default).
    Table,
    /// Server table with priority columns.
    Wide,
    /// `-o json`.
    Json,
    /// `-o yaml`.
    Yaml,
    /// `-o name`.
    Name,
    /// `-o jsonpath=...`.
    JsonPath(jsonpath::Template),
    /// `-o custom-columns=HEADER:path,...`.
    CustomColumns(Vec<(String, jsonpath::Template)>),
}

impl Format {
    /// Parses `-o` (None: the table).
    pub fn parse(output: Option<&str>) -> Result<Format> {
        let Some(o) = output else { return Ok(Format::Table) };
        match o {
            "" => Ok(Format::Table),
            "wide" => Ok(Format::Wide),
            "json" => Ok(Format::Json),
            "yaml" => Ok(Format::Yaml),
            "name" => Ok(Format::Name),
            _ => {
                if let Some(t) = o.strip_prefix("jsonpath=").or_else(|| o.strip_prefix("jsonpath-as-json=")) {
                    let t = jsonpath::Template::parse(t).map_err(|e| Error::usage(e.to_string()))?;
                    return Ok(Format::JsonPath(t));
                }
                if let Some(spec) = o.strip_prefix("custom-columns=") {
                    return Ok(Format::CustomColumns(parse_custom_columns(spec)?));
                }
                Err(Error::usage(format!(
                    "unable to match a printer suitable for the output format \"{o}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"
                )))
            }
        }
    }

    /// Whether the server's Table is printed.
    pub fn is_table(&self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

fn parse_custom_columns(spec: &str) -> Result<Vec<(String, jsonpath::Template)>> {
    let mut cols = Vec::new();
    for part in spec.split(',') {
        let Some((header, path)) = part.split_once(':') else {
            return Err(Error::usage(format!(
                "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )));
        };
        let expr = if path.starts_with('{') { path.to_string() } else { format!("{{{path}}}") };
        let t = jsonpath::Template::parse(&expr).map_err(|e| Error::usage(e.to_string()))?;
        cols.push((header.to_string(), t));
    }
    Ok(cols)
}

/// Custom-columns rows for `items` (values joined by `,`, `<none>` when missing).
pub fn custom_columns(cols: &[(String, jsonpath::Template)], items: &[Value], no_headers: bool) -> String {
    let mut lines = Vec::new();
    if !no_headers {
        lines.push(cols.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>());
    }
    for item in items {
        let row = cols
            .iter()
            .map(|(_, t)| {
                let vals = t.values(item);
                if vals.is_empty() {
                    "<none>".to_string()
                } else {
                    vals.iter().map(jsonpath::text_of).collect::<Vec<_>>().join(",")
                }
            })
            .collect();
        lines.push(row);
    }
    table::align(&lines)
}
