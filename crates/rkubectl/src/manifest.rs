//! Manifests from `-f`: files, directories (`.yaml`, `.yml`, `.json`; `-R` recurses), `-` for
//! stdin and http(s) URLs; multi-document YAML and `kind: List` expanded into objects.

use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One object and where it came from (for "error when creating \"f.yaml\"").
#[derive(Debug, Clone)]
pub struct Doc {
    /// The file name as given, or `STDIN`.
    pub source: String,
    /// The object.
    pub object: Value,
}

/// Reads every object named by `-f` arguments.
pub fn read(paths: &[String], recursive: bool) -> Result<Vec<Doc>> {
    if paths.is_empty() {
        return Err(Error::usage("must specify one of -f and -k"));
    }
    let mut docs = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            docs.extend(parse(&text, "STDIN")?);
            continue;
        }
        if p.starts_with("http://") || p.starts_with("https://") {
            let text = reqwest::blocking::get(p)
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.text())
                .map_err(|e| Error::usage(format!("unable to read URL \"{p}\": {e}")))?;
            docs.extend(parse(&text, p)?);
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|_| Error::usage(format!("the path \"{p}\" does not exist")))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, recursive, &mut files)?;
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f)?;
                docs.extend(parse(&text, &f.to_string_lossy())?);
            }
        } else {
            let text = std::fs::read_to_string(path)?;
            docs.extend(parse(&text, p)?);
        }
    }
    Ok(docs)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, out)?;
            }
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file's text: JSON (one object or several concatenated) or multi-document YAML.
pub fn parse(text: &str, source: &str) -> Result<Vec<Doc>> {
    let trimmed = text.trim_start();
    let mut values = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            values.push(v.map_err(|e| Error::usage(format!("error parsing {source}: {e}")))?);
        }
    } else {
        // The parser's default budget stops at 1,024 documents; a manifest of many objects is
        // legitimate, so the limits grow with the input (still bounded by its size).
        let mut budget = serde_saphyr::budget::Budget::default();
        budget.max_documents = text.len() / 8 + 1024;
        budget.max_nodes = text.len() + 250_000;
        budget.max_events = text.len() * 2 + 1_000_000;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        values = serde_saphyr::from_multiple_with_options::<Value>(text, options)
            .map_err(|e| Error::usage(format!("error parsing {source}: error converting YAML to JSON: {e}")))?;
    }
    let mut docs = Vec::new();
    for v in values {
        expand(v, source, &mut docs)?;
    }
    Ok(docs)
}

fn expand(v: Value, source: &str, docs: &mut Vec<Doc>) -> Result<()> {
    match v {
        Value::Null => Ok(()),
        Value::Object(ref map) if map.is_empty() => Ok(()),
        Value::Object(ref map)
            if map.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
                && map.contains_key("items") =>
        {
            for item in map["items"].as_array().cloned().unwrap_or_default() {
                expand(item, source, docs)?;
            }
            Ok(())
        }
        Value::Object(ref map) => {
            if map.get("kind").and_then(Value::as_str).unwrap_or("").is_empty() {
                return Err(Error::usage(format!(
                    "error validating \"{source}\": error validating data: kind not set"
                )));
            }
            if map.get("apiVersion").and_then(Value::as_str).unwrap_or("").is_empty() {
                return Err(Error::usage(format!(
                    "error validating \"{source}\": error validating data: apiVersion not set"
                )));
            }
            docs.push(Doc { source: source.to_string(), object: v });
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                expand(item, source, docs)?;
            }
            Ok(())
        }
        _ => Err(Error::usage(format!("error parsing {source}: not a Kubernetes object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {port: \"80\", n: 1}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n";
        let docs = parse(text, "f.yaml").expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].object["data"]["port"], "80");
        assert_eq!(docs[0].object["data"]["n"], 1);
        assert_eq!(docs[1].object["kind"], "Pod");
        assert!(parse("metadata: {name: x}\n", "g.yaml").is_err());
        let many: String =
            (0..3000).map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n")).collect();
        assert_eq!(parse(&many, "many.yaml").expect("3000 documents parse").len(), 3000);
    }
}
