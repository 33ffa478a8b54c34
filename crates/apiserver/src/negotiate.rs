//! Response content negotiation: which representation the client's Accept header asks for
//! (JSON, Kubernetes protobuf, a meta.k8s.io Table, or PartialObjectMetadata), and rendering of
//! objects, lists and watch events in it.

use crate::watch::WatchEvent;
use bytes::Bytes;
use rkube_api::{ApiError, ResourceInfo};
use rkube_printers::IncludeObject;
use serde_json::{Value, json};

/// The representation a response is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// application/json.
    Json,
    /// application/vnd.kubernetes.protobuf.
    Protobuf,
    /// `as=Table` in meta.k8s.io `version` (v1 or v1beta1).
    Table { version: &'static str, include: IncludeObject },
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata { version: &'static str },
}

/// Picks the first representation of the Accept header that can be served; an empty header
/// means JSON. Nothing acceptable is 406, as in Kubernetes.
pub fn output(accept: &str, include_object: &str) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    // includeObject only means something for tables.
    let include = || match include_object {
        "" => Ok(IncludeObject::default()),
        s => IncludeObject::parse(s)
            .ok_or_else(|| ApiError::BadRequest(format!("includeObject {s:?} is not one of None, Metadata, Object"))),
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_kind, mut group, mut version) = ("", "", "");
        for p in parts {
            match p.split_once('=') {
                Some(("as", v)) => as_kind = v,
                Some(("g", v)) => group = v,
                Some(("v", v)) => version = v,
                _ => {}
            }
        }
        let meta_version = match (group, version) {
            ("meta.k8s.io", "v1") => Some("v1"),
            ("meta.k8s.io", "v1beta1") => Some("v1beta1"),
            _ => None,
        };
        match (essence.as_str(), as_kind, meta_version) {
            ("application/json" | "application/*" | "*/*", "", _) => return Ok(Output::Json),
            ("application/vnd.kubernetes.protobuf", "", _) => return Ok(Output::Protobuf),
            ("application/json", "Table", Some(v)) => return Ok(Output::Table { version: v, include: include()? }),
            ("application/json", "PartialObjectMetadata" | "PartialObjectMetadataList", Some(v)) => {
                return Ok(Output::Metadata { version: v });
            }
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(format!(
        "only the following media types are accepted: application/json, application/vnd.kubernetes.protobuf, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept})"
    )))
}

/// A rendered body and its Content-Type.
pub struct Rendered {
    /// Content-Type header value.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

fn json_body(v: &Value) -> Rendered {
    Rendered { content_type: "application/json", body: Bytes::from(serde_json::to_vec(v).unwrap_or_default()) }
}

fn protobuf_body(v: &Value) -> Result<Rendered, ApiError> {
    let bytes = rkube_kubeproto::encode_with(v, rkube_kubeproto::EncodeOptions { drop_unknown_fields: true })
        .map_err(|e| ApiError::Internal(format!("encoding the response as protobuf: {e}")))?;
    Ok(Rendered { content_type: rkube_kubeproto::MEDIA_TYPE, body: Bytes::from(bytes) })
}

fn partial_metadata(version: &str, obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn table(res: &ResourceInfo, version: &str, include: IncludeObject, objects: &[Value], list_meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    let mut t = match rkube_api::custom::version_of(res) {
        Some(custom) => {
            // A column the table cannot use falls back to the default Age column, with a log line
            // (Kubernetes also keeps serving the table rather than failing the request).
            let columns = rkube_printers::CustomColumn::from_crd(Some(&custom.columns)).unwrap_or_else(|e| {
                tracing::warn!(crd = %custom.definition, error = %e, "unusable additionalPrinterColumns");
                rkube_printers::CustomColumn::from_crd(None).unwrap_or_default()
            });
            rkube_printers::custom_table(&columns, objects, list_meta, include, false, now)
        }
        None => rkube_printers::table(res.group, res.kind, objects, list_meta, include, false, now),
    };
    t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
    t
}

/// Renders one object (a GET or the result of a write).
pub fn object(out: Output, res: &ResourceInfo, obj: &Value) -> Result<Rendered, ApiError> {
    // Status objects (errors, delete results) and Scale are not tables or protobuf-typed here.
    let is_own_kind = obj.get("kind").and_then(Value::as_str) == Some(res.kind);
    Ok(match out {
        Output::Json => json_body(obj),
        Output::Protobuf
            if rkube_kubeproto::supports(
                obj["apiVersion"].as_str().unwrap_or(""),
                obj["kind"].as_str().unwrap_or(""),
            ) =>
        {
            protobuf_body(obj)?
        }
        Output::Protobuf => json_body(obj),
        Output::Table { version, include } if is_own_kind => {
            json_body(&table(res, version, include, std::slice::from_ref(obj), json!({})))
        }
        Output::Metadata { version } if is_own_kind => json_body(&partial_metadata(version, obj)),
        Output::Table { .. } | Output::Metadata { .. } => json_body(obj),
    })
}

/// Renders a list whose JSON body the registry produced.
pub fn list(out: Output, res: &ResourceInfo, body: Bytes) -> Result<Rendered, ApiError> {
    let parse = || -> Result<Value, ApiError> {
        serde_json::from_slice(&body).map_err(|e| ApiError::Internal(format!("decoding a stored list: {e}")))
    };
    let items = |list: &Value| list["items"].as_array().cloned().unwrap_or_default();
    Ok(match out {
        Output::Json => Rendered { content_type: "application/json", body },
        Output::Protobuf => protobuf_body(&parse()?)?,
        Output::Table { version, include } => {
            let list = parse()?;
            json_body(&table(res, version, include, &items(&list), list["metadata"].clone()))
        }
        Output::Metadata { version } => {
            let list = parse()?;
            let items: Vec<Value> = items(&list).iter().map(|o| partial_metadata(version, o)).collect();
            json_body(
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": list["metadata"], "items": items}),
            )
        }
    })
}

/// Content-Type of a watch stream in this representation.
pub fn watch_content_type(out: Output) -> &'static str {
    match out {
        Output::Protobuf => rkube_kubeproto::WATCH_MEDIA_TYPE,
        _ => "application/json",
    }
}

/// One frame of a watch stream: a JSON line, or a length-prefixed protobuf WatchEvent.
pub fn watch_frame(out: Output, res: &ResourceInfo, ev: &WatchEvent) -> Bytes {
    match out {
        Output::Json => ev.to_json_line(),
        Output::Protobuf | Output::Table { .. } | Output::Metadata { .. } => {
            let Ok(obj) = serde_json::from_slice::<Value>(&ev.object) else { return ev.to_json_line() };
            // ERROR events carry a Status, which is never converted.
            let converted = match out {
                _ if ev.kind == "ERROR" => obj,
                Output::Table { version, include } => {
                    table(res, version, include, std::slice::from_ref(&obj), json!({}))
                }
                Output::Metadata { version } => partial_metadata(version, &obj),
                _ => obj,
            };
            if out == Output::Protobuf {
                match rkube_kubeproto::encode_watch_event_with(
                    ev.kind,
                    &converted,
                    rkube_kubeproto::EncodeOptions { drop_unknown_fields: true },
                ) {
                    Ok(frame) => return Bytes::from(frame),
                    Err(e) => tracing::warn!(error = %e, "watch event not encodable as protobuf"),
                }
            }
            WatchEvent { kind: ev.kind, object: Bytes::from(serde_json::to_vec(&converted).unwrap_or_default()) }
                .to_json_line()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_first_servable_representation() {
        assert_eq!(output("", "").unwrap(), Output::Json);
        assert_eq!(output("application/json, */*", "").unwrap(), Output::Json);
        assert_eq!(output("application/vnd.kubernetes.protobuf, */*", "").unwrap(), Output::Protobuf);
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            output(kubectl_get, "Object").unwrap(),
            Output::Table { version: "v1", include: IncludeObject::Object }
        );
        assert_eq!(
            output("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "").unwrap(),
            Output::Metadata { version: "v1" }
        );
        assert_eq!(output("text/html", "").unwrap_err().code(), 406);
        assert_eq!(output(kubectl_get, "Everything").unwrap_err().code(), 400);
        assert_eq!(output("application/json", "Everything").unwrap(), Output::Json);
    }
}
