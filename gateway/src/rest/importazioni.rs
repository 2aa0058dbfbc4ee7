//! `/api/v1/importazioni`: import jobs (`ImportService`) over REST. Reading and cancelling
//! jobs are rows of the route table like any other call (`ROUTES`, chained to the main
//! table). Starting one uploads a whole export, far larger than any record, so it has a
//! handler of its own with its own body limit: a JSON body naming the ufficio and origine and
//! either the files (base64) or a folder under core's import root. It answers 202 with the
//! queued job and its `Location`.
use axum::{
    Router,
    body::Bytes,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use cartella_proto::v1::{self as pb, import_service_client::ImportServiceClient};
use core_cartella::auth::Caller;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value, json};

use super::{
    BASE, RestError, mapping,
    mapping::Violation,
    routes::{Route, Verb},
};
use crate::{auth::Authenticator, core_link::CoreLink, stack::limit::Limiter};

/// Largest body of `POST /api/v1/importazioni`: the 64 MiB of files core accepts, in base64.
pub const MAX_UPLOAD_BODY: usize = core_cartella::import::jobs::MAX_UPLOAD / 3 * 4 + 64 * 1024;

const fn route(verb: Verb, path: &'static str, rpc: &'static str, path_params: &'static [(&'static str, &'static str)]) -> Route {
    Route { verb, path, rpc, body: None, path_params, tag: "importazioni" }
}

/// The job routes served through the table (administrators).
pub const ROUTES: &[Route] = &[
    route(Verb::Get, "/importazioni", "cartella.v1.ImportService.ListImports", &[]),
    route(Verb::Get, "/importazioni/{id}", "cartella.v1.ImportService.GetImport", &[("id", "id")]),
    route(Verb::Get, "/importazioni/{id}/problemi", "cartella.v1.ImportService.ListImportProblems", &[("id", "id")]),
    route(Verb::Post, "/importazioni/{id}/annulla", "cartella.v1.ImportService.CancelImport", &[("id", "id")]),
];

/// `POST /api/v1/importazioni` behind authentication, the caller's quota and its own body
/// limit (the REST stack's is for records). Merge it next to the REST router.
/// The path of the upload: the stack's request timeout does not wrap it (see [`start`]).
pub const UPLOAD_PATH: &str = "/api/v1/importazioni";

pub fn router(link: CoreLink, auth: Authenticator, limiter: Option<Limiter>, stack: &crate::stack::StackConfig) -> Router {
    let timeout = stack.timeout;
    let mut r = Router::new().route(UPLOAD_PATH, post(move |req: Request| start(link.clone(), timeout, req)));
    // Route layers run last-added first: authentication, then the caller's rate quota.
    if let Some(l) = limiter {
        r = r.route_layer(middleware::from_fn_with_state(l, crate::stack::limit::per_caller));
    }
    let r = r.route_layer(middleware::from_fn_with_state(auth, crate::auth::require_caller));
    crate::stack::rest(r, &crate::stack::StackConfig { max_body: MAX_UPLOAD_BODY, ..stack.clone() })
}

/// The JSON body as the gRPC request; every bad member at once, never quoting a value.
fn start_request(body: &Value) -> Result<pb::StartImportRequest, Vec<Violation>> {
    let mut v = Vec::new();
    let Some(o) = body.as_object() else { return Err(vec![Violation::new("body", "must be a JSON object")]) };
    for k in o.keys() {
        if !["ufficio", "origine", "dry_run", "cartella", "files", "linkage"].contains(&k.as_str()) {
            v.push(Violation::new(k.chars().take(64).collect::<String>(), "is not a field of this operation"));
        }
    }
    let text = |name: &str, v: &mut Vec<Violation>| match o.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            v.push(Violation::new(name, "must be a string"));
            String::new()
        }
    };
    let ufficio = text("ufficio", &mut v);
    let origine = text("origine", &mut v);
    let dry_run = match o.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            v.push(Violation::new("dry_run", "must be true or false"));
            false
        }
    };
    let source = match (o.get("cartella").filter(|c| !c.is_null()), o.get("files").filter(|f| !f.is_null())) {
        (Some(_), Some(_)) => {
            v.push(Violation::new("files", "give either files or cartella, not both"));
            None
        }
        (Some(_), None) => Some(pb::start_import_request::Source::Cartella(text("cartella", &mut v))),
        (None, Some(Value::Array(files))) => {
            let mut out = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let name = f.get("name").and_then(Value::as_str);
                let content = f.get("content").and_then(Value::as_str).map(|c| base64::engine::general_purpose::STANDARD.decode(c));
                let extra = f.as_object().is_none_or(|m| m.keys().any(|k| k != "name" && k != "content"));
                match (name, content) {
                    (Some(n), Some(Ok(c))) if !extra => out.push(pb::ImportFile { name: n.to_string(), content: c }),
                    (_, Some(Err(_))) => v.push(Violation::new(format!("files[{i}].content"), "must be base64 (RFC 4648, with padding)")),
                    _ => v.push(Violation::new(format!("files[{i}]"), "must be an object with name and content (base64)")),
                }
            }
            Some(pb::start_import_request::Source::Files(pb::ImportFiles { files: out }))
        }
        (None, Some(_)) => {
            v.push(Violation::new("files", "must be an array of {name, content}"));
            None
        }
        (None, None) => None,
    };
    let linkage = linkage_settings(o.get("linkage"), &mut v);
    if v.is_empty() { Ok(pb::StartImportRequest { ufficio, origine, dry_run, source, linkage }) } else { Err(v) }
}

/// The `linkage` member: numbers of the right kind only; core checks their ranges.
fn linkage_settings(value: Option<&Value>, v: &mut Vec<Violation>) -> Option<pb::LinkageSettings> {
    let o = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(o)) => o,
        Some(_) => {
            v.push(Violation::new("linkage", "must be an object"));
            return None;
        }
    };
    const FIELDS: [&str; 6] = ["link_threshold", "review_threshold", "max_block", "training_max_block", "u_sample_pairs", "em_iterations"];
    for k in o.keys() {
        if !FIELDS.contains(&k.as_str()) {
            v.push(Violation::new(format!("linkage.{}", k.chars().take(64).collect::<String>()), "is not a linkage setting"));
        }
    }
    let probability = |name: &str, v: &mut Vec<Violation>| match o.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_f64().is_some() => n.as_f64(),
        Some(_) => {
            v.push(Violation::new(format!("linkage.{name}"), "must be a number between 0 and 1"));
            None
        }
    };
    let link_threshold = probability("link_threshold", v);
    let review_threshold = probability("review_threshold", v);
    let count = |name: &str, v: &mut Vec<Violation>| match o.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            v.push(Violation::new(format!("linkage.{name}"), "must be a whole number"));
            None
        }
    };
    let n32 = |x: Option<u64>| x.map(|x| u32::try_from(x).unwrap_or(u32::MAX));
    Some(pb::LinkageSettings {
        link_threshold,
        review_threshold,
        max_block: n32(count("max_block", v)),
        training_max_block: n32(count("training_max_block", v)),
        u_sample_pairs: count("u_sample_pairs", v),
        em_iterations: n32(count("em_iterations", v)),
    })
}

/// A job as the table's routes answer it: the proto JSON mapping.
fn job_json(job: &pb::ImportJob) -> Result<Value, RestError> {
    static POOL: std::sync::OnceLock<Option<DescriptorPool>> = std::sync::OnceLock::new();
    let pool =
        POOL.get_or_init(|| DescriptorPool::decode(cartella_proto::v1::FILE_DESCRIPTOR_SET).ok()).as_ref().ok_or(RestError::Encode)?;
    let desc = pool.get_message_by_name("cartella.v1.ImportJob").ok_or(RestError::Encode)?;
    let msg = DynamicMessage::decode(desc, job.encode_to_vec().as_slice()).map_err(|_| RestError::Encode)?;
    mapping::to_json(&msg).map_err(|_| RestError::Encode)
}

/// The upload is timed here, not by the stack: `timeout` bounds any pause in the body (a
/// large export over a slow line is not cut, a stalled one is answered 408) and, once the
/// body is in, core's answer (503 past it).
async fn start(link: CoreLink, timeout: std::time::Duration, req: Request) -> Response {
    let mut res = match start_job(&link, timeout, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The body, allowing `timeout` for every pause between its pieces.
async fn read_upload(mut body: axum::body::Body, timeout: std::time::Duration) -> Result<Bytes, RestError> {
    use http_body::Body as _;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(timeout, next).await {
            Err(_) => return Err(RestError::UploadStalled(timeout)),
            Ok(None) => return Ok(Bytes::from(buf)),
            // The body limit's refusal, or a client gone mid-upload.
            Ok(Some(Err(_))) => return Err(RestError::TooLarge),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > MAX_UPLOAD_BODY {
                        return Err(RestError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

async fn start_job(link: &CoreLink, timeout: std::time::Duration, req: Request) -> Result<Response, RestError> {
    let (parts, body) = req.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned().ok_or(RestError::NoCaller)?;
    if !super::is_json(&parts.headers) {
        return Err(RestError::UnsupportedMediaType);
    }
    let bytes = read_upload(body, timeout).await?;
    let value = super::parse_body(&bytes)?;
    let msg = start_request(&value).map_err(RestError::Invalid)?;
    let mut call = tonic::Request::new(msg);
    let bearer = link.bearer_for(&caller).map_err(|_| RestError::Mint)?;
    call.metadata_mut().insert("authorization", bearer.parse().map_err(|_| RestError::Mint)?);
    if let Some(rid) = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        call.metadata_mut().insert("x-request-id", rid);
    }
    let mut client = ImportServiceClient::new(link.channel()).max_encoding_message_size(MAX_UPLOAD_BODY);
    let job = tokio::time::timeout(timeout, client.start_import(call))
        .await
        .map_err(|_| RestError::TooSlow)?
        .map_err(RestError::Core)?
        .into_inner();
    let json = job_json(&job)?;
    let mut res = (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], json.to_string()).into_response();
    if let Ok(h) = HeaderValue::from_str(&format!("{BASE}/importazioni/{}", job.id)) {
        res.headers_mut().insert(header::LOCATION, h);
    }
    Ok(res)
}

/// The hand-written operation of `POST /api/v1/importazioni` and its body schema, added to
/// the generated document (the other import routes are generated from the table).
pub fn document(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    schemas.insert(
        "StartImportJson".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["ufficio", "origine"],
            "description": "An office's export to import: the files (base64), or a folder under core's import root. The layout of the files is in conformance/linkage/README.md.",
            "properties": {
                "ufficio": { "type": "string", "minLength": 1, "maxLength": 16, "description": "The ufficio the records belong to (e.g. M01)." },
                "origine": { "type": "string", "minLength": 1, "maxLength": 64, "description": "The source office, identifying its rows across runs (e.g. M01-A)." },
                "dry_run": { "type": "boolean", "description": "Check and report only; write nothing." },
                "cartella": { "type": "string", "description": "A relative folder under the hub's import root (--import-root)." },
                "linkage": {
                    "type": "object",
                    "additionalProperties": false,
                    "description": "Record-linkage settings for this job; each one left out takes the hub's default (those of sigess import).",
                    "properties": {
                        "link_threshold": { "type": "number", "minimum": 0, "maximum": 1, "description": "A pair whose match probability is at least this is the same person (default 0.9)." },
                        "review_threshold": { "type": "number", "minimum": 0, "maximum": 1, "description": "A pair at least this, and below link_threshold, goes to the review queue (default 0.5)." },
                        "max_block": { "type": "integer", "minimum": 2, "maximum": 100000, "description": "Records sharing a blocking key are compared only when there are at most this many (default 2000)." },
                        "training_max_block": { "type": "integer", "minimum": 2, "maximum": 100000, "description": "The same limit for the blocks that train the m probabilities by EM, at most max_block (default 100)." },
                        "u_sample_pairs": { "type": "integer", "minimum": 1000, "maximum": 100000000, "description": "Random pairs drawn to estimate the u probabilities (default 1000000)." },
                        "em_iterations": { "type": "integer", "minimum": 1, "maximum": 1000, "description": "Rounds of expectation-maximisation per training session (default 25)." }
                    }
                },
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["name", "content"],
                        "properties": {
                            "name": { "type": "string", "enum": ["persone.csv", "nuclei.csv", "cartelle.csv", "prestazioni.csv"] },
                            "content": { "type": "string", "contentEncoding": "base64" }
                        }
                    }
                }
            },
            "not": { "required": ["cartella", "files"] }
        }),
    );
    let errors = ["400", "401", "403", "413", "415", "429", "503"];
    let names =
        ["BadRequest", "Unauthorized", "Forbidden", "PayloadTooLarge", "UnsupportedMediaType", "TooManyRequests", "ServiceUnavailable"];
    let mut responses = Map::new();
    responses.insert(
        "202".into(),
        json!({
            "description": "The job, queued. Follow it at Location.",
            "headers": { "Location": { "description": "URL of the job.", "schema": { "type": "string" } } },
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ImportJob" } } }
        }),
    );
    for (code, name) in errors.iter().zip(names) {
        responses.insert((*code).into(), json!({ "$ref": format!("#/components/responses/{name}") }));
    }
    responses.insert("default".into(), json!({ "$ref": "#/components/responses/Error" }));
    let op = json!({
        "operationId": "StartImport",
        "summary": "Start import",
        "description": "Queues an import job of an office's export (administrators, ente-wide): persons linked against the hub, each person with their rows of every file and their household in one transaction; a dry run only reports. A folder import needs core's import root; without one the answer is 422 (FAILED_PRECONDITION). The body may be up to 96 MiB.\n\ngRPC: `cartella.v1.ImportService/StartImport`.",
        "tags": ["importazioni"],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StartImportJson" } } } },
        "responses": responses,
    });
    let item = paths.entry(UPLOAD_PATH.to_string()).or_insert_with(|| json!({}));
    item["post"] = op;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_upload_path_is_under_the_base() {
        assert_eq!(UPLOAD_PATH, format!("{BASE}/importazioni"));
    }

    #[test]
    fn start_bodies() {
        let ok = start_request(&json!({
            "ufficio": "M01", "origine": "M01-A", "dry_run": true,
            "files": [{ "name": "persone.csv", "content": "aWRfcGVyc29uYQo=" }]
        }))
        .unwrap();
        let Some(pb::start_import_request::Source::Files(f)) = ok.source else { panic!("files") };
        assert_eq!(f.files[0].content, b"id_persona\n");
        assert!(ok.dry_run);
        let folder = start_request(&json!({ "ufficio": "M01", "origine": "M01-A", "cartella": "M01-A" })).unwrap();
        assert_eq!(folder.source, Some(pb::start_import_request::Source::Cartella("M01-A".into())));
        let bad = start_request(&json!({
            "ufficio": 1, "dry_run": "ROSSI", "colore": "x", "cartella": "a",
            "files": [{ "name": "persone.csv", "content": "%%%ROSSI" }]
        }))
        .unwrap_err();
        let names: Vec<&str> = bad.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["colore", "ufficio", "dry_run", "files"]);
        let bad =
            start_request(&json!({ "ufficio": "M01", "origine": "A", "files": [{ "name": "persone.csv", "content": "%%%ROSSI" }, 3] }))
                .unwrap_err();
        let names: Vec<&str> = bad.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["files[0].content", "files[1]"]);
        assert!(!bad.iter().any(|v| v.reason.contains("ROSSI")));
    }
}
