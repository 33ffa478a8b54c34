//! Request body decoding (JSON and YAML) and response encoding.

use rkube_api::ApiError;
use serde_json::Value;

/// Media types a request body may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// application/json (and the patch types, which are JSON).
    Json,
    /// application/yaml.
    Yaml,
    /// application/vnd.kubernetes.protobuf.
    Protobuf,
}

impl BodyFormat {
    /// Picks the decoder for a Content-Type header; anything else is 415.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" | "*/*" => Ok(BodyFormat::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
            rkube_kubeproto::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            ))),
        }
    }
}

/// Decodes a request body; malformed input is a 400 with the parser's message.
pub fn decode(body: &[u8], format: BodyFormat) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))),
        BodyFormat::Yaml => {
            let text = std::str::from_utf8(body).map_err(|e| ApiError::BadRequest(format!("the request body is not UTF-8: {e}")))?;
            serde_saphyr::from_str(text).map_err(|e| ApiError::BadRequest(format!("the request body is not valid YAML: {e}")))
        }
        BodyFormat::Protobuf => rkube_kubeproto::decode(body)
            .map_err(|e| ApiError::BadRequest(format!("the request body is not a valid protobuf object: {e}"))),
    }
}

/// Decodes a patch document (JSON; YAML accepted for apply patches).
pub fn decode_patch(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) => match std::str::from_utf8(body).ok().and_then(|t| serde_saphyr::from_str::<Value>(t).ok()) {
            Some(v) if v.is_object() => Ok(v),
            _ => Err(ApiError::BadRequest(format!("the patch is not valid JSON: {json_err}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_are_bad_requests_with_parser_message() {
        let err = decode(b"{\"a\": ", BodyFormat::Json).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().contains("EOF"), "{err}");
        assert_eq!(decode(b"a: [1, 2", BodyFormat::Yaml).unwrap_err().code(), 400);
        assert_eq!(decode(b"kind: ConfigMap\nmetadata:\n  name: x\n", BodyFormat::Yaml).unwrap()["metadata"]["name"], "x");
        assert_eq!(BodyFormat::from_content_type("application/vnd.kubernetes.protobuf").unwrap(), BodyFormat::Protobuf);
        assert_eq!(BodyFormat::from_content_type("application/cbor").unwrap_err().code(), 415);
        assert_eq!(decode(b"k8s\0garbage", BodyFormat::Protobuf).unwrap_err().code(), 400);
        assert_eq!(BodyFormat::from_content_type("application/json; charset=utf-8").unwrap(), BodyFormat::Json);
    }
}
