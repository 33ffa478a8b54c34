//! Serves the OpenAPI v2 and v3 documents of the served types (rendered by rkube-openapi once
//! per process, on a background thread at start-up so the first kubectl call does not wait).

use bytes::Bytes;
use rkube_api::ApiError;
use rkube_openapi::Documents;
use std::sync::OnceLock;

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

fn lookup(docs: &'static Documents, path: &str, accept: &str) -> Option<Result<Document, ApiError>> {
    // The documents live for the whole process, so responses share their bytes.
    let plain = |b: &'static [u8]| Some(Ok(Document { body: Bytes::from_static(b), hash: None }));
    match path.trim_end_matches('/') {
        "/openapi/v2" => {
            // kubectl's fallback asks for the protobuf form only; we render JSON.
            let json_ok = accept.is_empty()
                || accept.split(',').any(|r| matches!(r.split(';').next().unwrap_or("").trim(), "application/json" | "*/*" | "application/*"));
            if !json_ok {
                return Some(Err(ApiError::NotAcceptable(format!(
                    "/openapi/v2 is served as application/json only (asked for {accept})"
                ))));
            }
            plain(docs.v2_json())
        }
        "/openapi/v3" => plain(docs.v3_root_json()),
        p => {
            let gv = p.strip_prefix("/openapi/v3/")?;
            match docs.v3_group_version(gv) {
                Some((body, hash)) => Some(Ok(Document { body: Bytes::from_static(body), hash: Some(hash.to_string()) })),
                None => Some(Err(ApiError::NotFound { resource: String::new(), name: p.to_string() })),
            }
        }
    }
}
