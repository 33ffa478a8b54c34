//! Serves the OpenAPI v2 and v3 documents of the served types (rendered by rkube-openapi once
//! per process, on a background thread at start-up so the first kubectl call does not wait).

use bytes::Bytes;
use rkube_api::ApiError;
use rkube_api::custom::CustomVersion;
use rkube_openapi::Documents;
use std::sync::{Arc, OnceLock};

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(Documents::build)
}

/// Starts rendering the documents in the background.
pub fn warm_up() {
    std::thread::spawn(|| {
        documents();
    });
}

/// An OpenAPI response: body and ETag (the content hash, when the document has one).
pub struct Document {
    /// JSON body.
    pub body: Bytes,
    /// Content hash for ETag and `Cache-Control: immutable` of hashed v3 URLs.
    pub hash: Option<String>,
}

/// The document for a path under `/openapi/`, or None if the path is not one.
pub async fn document(path: &str, accept: &str) -> Option<Result<Document, ApiError>> {
    let docs = match DOCUMENTS.get() {
        Some(docs) => docs,
        // Still rendering (the first request after start-up): wait off the async workers.
        None => tokio::task::spawn_blocking(documents).await.ok()?,
    };
    lookup(docs, path, accept)
}

/// The served custom versions by their v3 document key (`apis/<group>/<version>`).
fn custom_group_versions() -> Vec<(String, Vec<Arc<CustomVersion>>)> {
    let mut out: Vec<(String, Vec<Arc<CustomVersion>>)> = Vec::new();
    for v in rkube_api::custom::versions() {
        let key = format!("apis/{}/{}", v.info.group, v.info.version);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(v),
            None => out.push((key, vec![v])),
        }
    }
    out
}

/// Custom documents are rendered per request: they are small, and definitions change at run time.
fn custom_document(docs: &Documents, versions: &[Arc<CustomVersion>]) -> (Vec<u8>, String) {
    let resources: Vec<(&rkube_api::ResourceInfo, &serde_json::Value)> =
        versions.iter().map(|v| (v.info, &v.openapi_schema)).collect();
    docs.custom_group_version(&resources)
}

fn lookup(docs: &'static Documents, path: &str, accept: &str) -> Option<Result<Document, ApiError>> {
    // The documents live for the whole process, so responses share their bytes.
    let plain = |b: &'static [u8]| Some(Ok(Document { body: Bytes::from_static(b), hash: None }));
    match path.trim_end_matches('/') {
        "/openapi/v2" => {
            // kubectl's fallback asks for the protobuf form only; we render JSON.
            let json_ok = accept.is_empty()
                || accept.split(',').any(|r| {
                    matches!(r.split(';').next().unwrap_or("").trim(), "application/json" | "*/*" | "application/*")
                });
            if !json_ok {
                return Some(Err(ApiError::NotAcceptable(format!(
                    "/openapi/v2 is served as application/json only (asked for {accept})"
                ))));
            }
            plain(docs.v2_json())
        }
        "/openapi/v3" => {
            let custom = custom_group_versions();
            if custom.is_empty() {
                return plain(docs.v3_root_json());
            }
            let hashes: Vec<(String, String)> =
                custom.iter().map(|(key, resources)| (key.clone(), custom_document(docs, resources).1)).collect();
            Some(Ok(Document { body: Bytes::from(docs.v3_root_with(&hashes)), hash: None }))
        }
        p => {
            let gv = p.strip_prefix("/openapi/v3/")?;
            if let Some((body, hash)) = docs.v3_group_version(gv) {
                return Some(Ok(Document { body: Bytes::from_static(body), hash: Some(hash.to_string()) }));
            }
            let gv = gv.trim_matches('/');
            match custom_group_versions().into_iter().find(|(key, _)| key == gv) {
                Some((_, resources)) => {
                    let (body, hash) = custom_document(docs, &resources);
                    Some(Ok(Document { body: Bytes::from(body), hash: Some(hash) }))
                }
                None => Some(Err(ApiError::NotFound { resource: String::new(), name: p.to_string() })),
            }
        }
    }
}
