//! REST/JSON under `/api/v1`, translated to `cartella.v1` gRPC calls to core.
//!
//! One table (`routes::ROUTES`) says which HTTP method and path reach which gRPC method and
//! where path parameters and the body go; the JSON mapping, the query parameters and the
//! OpenAPI document are derived from the contract's descriptors (`mapping`, `openapi`), and
//! a single handler serves every row through a generic gRPC call (`grpc`). The caller comes
//! from the authentication middleware; core gets it as a freshly minted caller token.
//!
//! HTTP conventions: a record answers with `ETag: "<meta.version>"`; `PUT` takes the version
//! it updates from `If-Match` (a mismatch is 412) or from `meta.version` in the body (a stale
//! one is 409). Creating answers 201 with `Location` when the record has its own URL. Every
//! error is `application/problem+json`; input the schema refuses is a 400 naming each bad
//! field or parameter, and never reaches core.

pub mod download;
pub mod grpc;
pub mod importazioni;
pub mod mapping;
pub mod openapi;
pub mod routes;

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequestParts, Path, Query, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{Html, IntoResponse, Response},
    routing::{MethodFilter, MethodRouter, any, get},
};
use core_cartella::auth::Caller;
use prost_reflect::{DescriptorPool, FieldDescriptor, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};
use tonic::{Code, metadata::MetadataMap};
use tonic_types::StatusExt;

use crate::{
    auth::Authenticator,
    core_link::CoreLink,
    problem::{self, problem, problem_with},
};
use mapping::{QueryParam, Violation};
use routes::{ROUTES, Route, Verb};

/// Prefix of every REST path.
pub const BASE: &str = "/api/v1";

/// Largest JSON body accepted; records are small, and the stack may cut earlier.
pub const MAX_BODY: usize = 1024 * 1024;

/// Longest name of an unknown field or parameter echoed back in an error.
const MAX_ECHOED_NAME: usize = 64;

/// Why a REST request was refused or failed at the gateway. Core's own refusals travel as
/// `tonic::Status` and are mapped by `problem::from_status`.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{} invalid field(s) or parameter(s): see invalid_params", .0.len())]
    Invalid(Vec<Violation>),
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body exceeds {MAX_BODY} bytes")]
    TooLarge,
    #[error("If-Match does not name the current version of the record")]
    PreconditionFailed(Option<String>),
    #[error("the request carries no authenticated caller")]
    NoCaller,
    #[error("the gateway could not mint the caller token for core")]
    Mint,
    #[error("core answered with a record the gateway cannot write as JSON")]
    Encode,
    #[error("core refused the call")]
    Core(tonic::Status),
    #[error("the upload paused for more than {}", durata(.0))]
    UploadStalled(std::time::Duration),
    #[error("the call took too long: retry shortly")]
    TooSlow,
}

/// `d` as a person reads it: whole seconds, or milliseconds under a second's precision.
fn durata(d: &std::time::Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

impl RestError {
    fn invalid(name: &str, reason: &str) -> Self {
        Self::Invalid(vec![Violation::new(name, reason)])
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        match self {
            Self::Invalid(v) => {
                let params: Vec<Value> = v.iter().map(|x| json!({ "name": x.name, "reason": x.reason })).collect();
                problem_with(StatusCode::BAD_REQUEST, "Bad Request", &detail, json!({ "invalid_params": params }))
            }
            Self::UnsupportedMediaType => problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type", &detail),
            Self::TooLarge => problem(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", &detail),
            Self::PreconditionFailed(core_detail) => {
                problem_with(StatusCode::PRECONDITION_FAILED, "Precondition Failed", core_detail.as_deref().unwrap_or(&detail), json!({}))
            }
            Self::NoCaller => problem(StatusCode::UNAUTHORIZED, "Unauthorized", &detail),
            Self::Mint => problem(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", &detail),
            Self::Encode => problem(StatusCode::BAD_GATEWAY, "Bad Gateway", &detail),
            Self::Core(s) => problem::from_status(&s),
            Self::UploadStalled(_) => problem(StatusCode::REQUEST_TIMEOUT, "Request Timeout", &detail),
            Self::TooSlow => problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", &detail),
        }
    }
}

/// Why the route table does not fit the contract. Only a build with a mismatched table and
/// proto can produce one; a unit test keeps them in step.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("descriptor set: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    #[error("route {path}: {reason}")]
    Route { path: String, reason: String },
    #[error("OpenAPI document: {0}")]
    Json(#[from] serde_json::Error),
}

/// A path parameter bound to a field of the request message.
#[derive(Clone, Debug)]
pub struct PathParam {
    pub name: String,
    pub path: String,
    pub field: FieldDescriptor,
}

/// The JSON body of a route: the request field it fills and that field's message.
#[derive(Clone, Debug)]
pub struct BodyBinding {
    pub field: String,
    pub message: MessageDescriptor,
}

/// A row of the route table resolved against the descriptors.
#[derive(Clone, Debug)]
pub struct CompiledRoute {
    pub route: Route,
    pub method: MethodDescriptor,
    pub body: Option<BodyBinding>,
    pub query: Vec<QueryParam>,
    pub path_params: Vec<PathParam>,
    /// Path template of the created record (`/api/v1/persone/{id}`), for `Location`.
    pub location: Option<String>,
    /// Whether the output carries `meta.version` (and so gets an ETag).
    pub versioned: bool,
}

impl CompiledRoute {
    /// The full path template, `/api/v1/...`.
    pub fn full_path(&self) -> String {
        format!("{BASE}{}", self.route.path)
    }
}

/// The REST API: the contract's descriptors, the compiled route table, the OpenAPI document.
#[derive(Debug)]
pub struct Api {
    pub pool: DescriptorPool,
    pub routes: Vec<CompiledRoute>,
    openapi: String,
}

/// Every row: the main table and the import jobs' (kept in `importazioni`).
fn all_routes() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().chain(importazioni::ROUTES)
}

fn find_method(pool: &DescriptorPool, full: &str) -> Option<MethodDescriptor> {
    let (service, name) = full.rsplit_once('.')?;
    pool.get_service_by_name(service)?.methods().find(|m| m.name() == name)
}

fn field_at(desc: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut cur = desc.clone();
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        let f = cur.get_field_by_name(p)?;
        if parts.peek().is_none() {
            return Some(f);
        }
        cur = f.kind().as_message()?.clone();
    }
    None
}

fn compile(pool: &DescriptorPool, route: &Route) -> Result<CompiledRoute, TableError> {
    let err = |reason: String| TableError::Route { path: format!("{} {}", route.verb.as_str(), route.path), reason };
    let method = find_method(pool, route.rpc).ok_or_else(|| err(format!("no gRPC method {}", route.rpc)))?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(err("streaming methods cannot be REST routes".into()));
    }
    let input = method.input();
    let body = match route.body {
        Some(f) => {
            let field = input.get_field_by_name(f).ok_or_else(|| err(format!("no body field {f}")))?;
            let message = field.kind().as_message().cloned().ok_or_else(|| err(format!("body field {f} is not a message")))?;
            Some(BodyBinding { field: f.to_string(), message })
        }
        None => None,
    };
    let mut path_params = Vec::new();
    for (name, path) in route.path_params {
        if !route.path.contains(&format!("{{{name}}}")) {
            return Err(err(format!("path parameter {name} is not in the template")));
        }
        let field = field_at(&input, path).ok_or_else(|| err(format!("no field {path}")))?;
        path_params.push(PathParam { name: (*name).to_string(), path: (*path).to_string(), field });
    }
    let query = if body.is_some() {
        Vec::new()
    } else {
        let exclude: Vec<&str> = route.path_params.iter().map(|(_, p)| *p).collect();
        mapping::query_params(&input, &exclude).map_err(err)?
    };
    let location = routes::creates(route)
        .then(|| format!("{}/{{id}}", route.path))
        .filter(|item| all_routes().any(|r| r.verb == Verb::Get && r.path == item))
        .map(|item| format!("{BASE}{item}"));
    let versioned = method.output().get_field_by_name("meta").is_some();
    Ok(CompiledRoute { route: *route, method, body, query, path_params, location, versioned })
}

impl Api {
    pub fn new() -> Result<Self, TableError> {
        let pool = DescriptorPool::decode(cartella_proto::v1::FILE_DESCRIPTOR_SET)?;
        let routes = all_routes().map(|r| compile(&pool, r)).collect::<Result<Vec<_>, _>>()?;
        let mut api = Self { pool, routes, openapi: String::new() };
        api.openapi = serde_json::to_string(&openapi::document(&api))?;
        Ok(api)
    }

    /// The OpenAPI 3.1 document, as served at `/api/v1/openapi.json`.
    pub fn openapi_json(&self) -> &str {
        &self.openapi
    }
}

#[derive(Debug)]
struct Ctx {
    api: Api,
    link: CoreLink,
}

/// The `/api/v1` router: every route of the table behind `auth::require_caller`, plus the
/// OpenAPI document and the docs page without authentication. It sets no fallback, so it
/// merges into the binary's router; unknown paths under `/api/v1` answer a 404 problem here.
pub fn router(link: CoreLink, auth: Authenticator) -> Router {
    router_limited(link, auth, None)
}

/// As `router`, taking each authenticated call from its caller's rate quota.
pub fn router_limited(link: CoreLink, auth: Authenticator, limiter: Option<crate::stack::limit::Limiter>) -> Router {
    match Api::new() {
        Ok(api) => build(api, link, auth, limiter),
        Err(e) => {
            // Unreachable with a consistent build (a unit test compiles the table); refusing
            // with 503 keeps the rest of the hub serving instead of aborting it.
            tracing::error!(error = %e, "REST route table does not match the contract; /api/v1 disabled");
            Router::new().route(
                &format!("{BASE}/{{*rest}}"),
                any(|| async { problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the REST API is not available") }),
            )
        }
    }
}

fn filter(v: Verb) -> MethodFilter {
    match v {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
        Verb::Put => MethodFilter::PUT,
    }
}

fn build(api: Api, link: CoreLink, auth: Authenticator, limiter: Option<crate::stack::limit::Limiter>) -> Router {
    let ctx = Arc::new(Ctx { api, link });
    let mut paths: Vec<&'static str> = Vec::new();
    for r in all_routes() {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    let mut protected = Router::new();
    for path in paths {
        let mut mr: MethodRouter = MethodRouter::new();
        for (idx, c) in ctx.api.routes.iter().enumerate().filter(|(_, c)| c.route.path == path) {
            let ctx = ctx.clone();
            mr = mr.on(filter(c.route.verb), move |req: Request| {
                let ctx = ctx.clone();
                async move { handle(&ctx, idx, req).await }
            });
        }
        protected = protected.route(&format!("{BASE}{path}"), mr);
    }
    // Route layers run last-added first: authentication, then the caller's rate quota.
    if let Some(l) = limiter {
        protected = protected.route_layer(middleware::from_fn_with_state(l, crate::stack::limit::per_caller));
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(auth, crate::auth::require_caller));
    let doc = ctx.clone();
    let public = Router::new()
        .route(
            &format!("{BASE}/openapi.json"),
            get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc.api.openapi_json().to_string()).into_response() }
            }),
        )
        .route(&format!("{BASE}/docs"), get(|| async { Html(DOCS_HTML) }))
        .route(&format!("{BASE}/{{*rest}}"), any(|| async { problem(StatusCode::NOT_FOUND, "Not Found", "no such resource") }));
    protected.merge(public).layer(middleware::map_response(method_not_allowed))
}

/// The docs page: renders `openapi.json` in the browser with no external assets.
const DOCS_HTML: &str = include_str!("docs.html");

/// axum answers a known path with an unsupported method by an empty 405 (with `Allow`);
/// it becomes a problem document, keeping `Allow`.
async fn method_not_allowed(res: Response) -> Response {
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || res.headers().contains_key(header::CONTENT_TYPE) {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut p = problem(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "this resource does not support the method; see Allow");
    if let Some(a) = allow {
        p.headers_mut().insert(header::ALLOW, a);
    }
    p
}

async fn handle(ctx: &Ctx, idx: usize, req: Request) -> Response {
    let Some(route) = ctx.api.routes.get(idx) else {
        return problem(StatusCode::NOT_FOUND, "Not Found", "no such resource");
    };
    let mut res = match serve(ctx, route, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    // Records are personal data: no shared cache may keep them.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn echo(name: &str) -> String {
    name.chars().take(MAX_ECHOED_NAME).collect()
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else { return true };
    let Ok(ct) = ct.to_str() else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as JSON; a syntax error is reported by position, never by quoting the input.
pub(crate) fn parse_body(bytes: &Bytes) -> Result<Value, RestError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::invalid("body", "is required: a JSON object"));
    }
    serde_json::from_slice::<Value>(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "ends too early",
            _ => "is not valid JSON",
        };
        RestError::invalid("body", &format!("{what} (line {}, column {})", e.line(), e.column()))
    })
}

/// `If-Match` as the version it names; `None` for `*` (any current version: the body's
/// `meta.version` then governs). A well-formed tag that cannot match (weak, or version 0) is
/// a failed precondition; anything that is not one of our ETag forms is a bad request, since
/// the API only issues `"<version>"`.
fn if_match_version(v: &HeaderValue) -> Result<Option<i64>, RestError> {
    let malformed = || RestError::invalid("If-Match", "must be the ETag of the record (\"<meta.version>\") or *");
    let s = v.to_str().map_err(|_| malformed())?.trim();
    if s == "*" {
        return Ok(None);
    }
    let (weak, tag) = match s.strip_prefix("W/") {
        Some(t) => (true, t),
        None => (false, s),
    };
    let digits = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or_else(malformed)?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(malformed());
    }
    let n: i64 = digits.parse().map_err(|_| malformed())?;
    // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches; versions start at 1.
    if weak || n < 1 {
        return Err(RestError::PreconditionFailed(None));
    }
    Ok(Some(n))
}

/// The gRPC request as JSON, from path, query, body and `If-Match`.
fn request_json(
    route: &CompiledRoute,
    params: Vec<(String, String)>,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
    body: Option<Bytes>,
) -> Result<(Value, bool), RestError> {
    let mut violations = Vec::new();
    let mut root = Map::new();
    if let (Some(b), Some(bytes)) = (&route.body, body) {
        let value = parse_body(&bytes)?;
        mapping::check_message(&value, &b.message, &b.field, &mut violations);
        if !value.is_object() {
            return Err(RestError::Invalid(violations));
        }
        root.insert(b.field.clone(), value);
    }
    // Query parameters, repeated ones gathered into arrays.
    let mut seen: Vec<&str> = Vec::new();
    for (k, raw) in &pairs {
        let Some(q) = route.query.iter().find(|q| &q.name == k) else {
            violations.push(Violation::new(echo(k), "is not a parameter of this operation"));
            continue;
        };
        match mapping::query_value(raw, &q.field, &q.name) {
            Ok(v) if q.field.is_list() => {
                let mut arr = match mapping::get_path(&Value::Object(root.clone()), &q.path) {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                arr.push(v);
                mapping::set_path(&mut root, &q.path, Value::Array(arr));
            }
            Ok(_) if seen.contains(&q.name.as_str()) => violations.push(Violation::new(&q.name, "is given more than once")),
            Ok(v) => {
                seen.push(&q.name);
                mapping::set_path(&mut root, &q.path, v);
            }
            Err(e) => violations.push(e),
        }
    }
    // Path parameters win over the body, which may repeat them but not contradict them.
    for (name, value) in params {
        let Some(p) = route.path_params.iter().find(|p| p.name == name) else { continue };
        if let Some(prev) = mapping::set_path(&mut root, &p.path, Value::String(value.clone()))
            && prev.as_str() != Some(value.as_str())
        {
            violations.push(Violation::new(&p.path, format!("differs from the {name} in the path")));
        }
    }
    // If-Match names the version the update applies to. A request that is malformed is
    // answered 400 even when its precondition would also fail.
    let mut conditional = false;
    let mut failed_precondition = None;
    if let (Some(b), Some(h)) = (&route.body, headers.get(header::IF_MATCH))
        && route.route.verb == Verb::Put
        && route.versioned
    {
        match if_match_version(h) {
            Ok(Some(n)) => {
                let path = format!("{}.meta.version", b.field);
                if let Some(prev) = mapping::set_path(&mut root, &path, Value::from(n))
                    && prev.as_i64() != Some(n)
                {
                    violations.push(Violation::new(path, "differs from the version in If-Match"));
                }
                conditional = true;
            }
            Ok(None) => {}
            Err(RestError::Invalid(mut v)) => violations.append(&mut v),
            Err(e) => failed_precondition = Some(e),
        }
    }
    if !violations.is_empty() {
        return Err(RestError::Invalid(violations));
    }
    if let Some(e) = failed_precondition {
        return Err(e);
    }
    Ok((Value::Object(root), conditional))
}

/// Core names its field violations by request field path (`page.page_token`); over REST a
/// field bound to a query or path parameter is named by that parameter.
fn rename_violations(route: &CompiledRoute, s: tonic::Status) -> tonic::Status {
    let mut details = s.get_error_details();
    let Some(br) = details.bad_request() else { return s };
    let param = |field: &str| -> Option<String> {
        route
            .query
            .iter()
            .find(|q| q.path == field)
            .map(|q| q.name.clone())
            .or_else(|| route.path_params.iter().find(|p| p.path == field).map(|p| p.name.clone()))
    };
    if !br.field_violations.iter().any(|v| param(&v.field).is_some()) {
        return s;
    }
    let renamed: Vec<tonic_types::FieldViolation> = br
        .field_violations
        .iter()
        .map(|v| tonic_types::FieldViolation::new(param(&v.field).unwrap_or_else(|| v.field.clone()), v.description.clone()))
        .collect();
    details.set_bad_request(renamed);
    tonic::Status::with_error_details(s.code(), s.message(), details)
}

async fn serve(ctx: &Ctx, route: &CompiledRoute, req: Request) -> Result<Response, RestError> {
    let (mut parts, body) = req.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned().ok_or(RestError::NoCaller)?;
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| RestError::invalid("path", "a path parameter is not valid percent-encoded UTF-8"))?;
    let Query(mut pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map_err(|_| RestError::invalid("query", "is not a valid URL-encoded query string"))?;
    let download = if route.method.full_name() == download::RPC {
        download::formato(&mut pairs, &parts.headers).map_err(|_| RestError::invalid("format", "must be csv, xlsx or json"))?
    } else {
        None
    };
    let body = if route.body.is_some() {
        if !is_json(&parts.headers) {
            return Err(RestError::UnsupportedMediaType);
        }
        Some(axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| RestError::TooLarge)?)
    } else {
        None
    };
    let (value, conditional) = request_json(route, params, pairs, &parts.headers, body)?;
    let msg = mapping::to_message(value, &route.method.input()).map_err(|v| RestError::Invalid(vec![v]))?;

    let mut md = MetadataMap::new();
    let bearer = ctx.link.bearer_for(&caller).map_err(|_| RestError::Mint)?;
    md.insert("authorization", bearer.parse().map_err(|_| RestError::Mint)?);
    if let Some(rid) = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        md.insert("x-request-id", rid);
    }

    let out = match grpc::unary(ctx.link.channel(), &route.method, msg, md).await {
        Ok(m) => m,
        Err(s) if conditional && s.code() == Code::Aborted => return Err(RestError::PreconditionFailed(Some(s.message().to_string()))),
        Err(s) => return Err(RestError::Core(rename_violations(route, s))),
    };
    let json = mapping::to_json(&out).map_err(|_| RestError::Encode)?;
    if let Some(f) = download {
        let bytes = download::render(&json, f).map_err(|_| RestError::Encode)?;
        let disposition = format!("attachment; filename=\"{}\"", download::nome_file(&json, f));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(f.media_type()));
        if let Ok(h) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, h);
        }
        return Ok((StatusCode::OK, headers, bytes).into_response());
    }
    let status = if routes::creates(&route.route) { StatusCode::CREATED } else { StatusCode::OK };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if route.versioned
        && let Some(v) = json.get("meta").and_then(|m| m.get("version")).and_then(Value::as_i64)
        && let Ok(h) = HeaderValue::from_str(&format!("\"{v}\""))
    {
        headers.insert(header::ETAG, h);
    }
    if let (Some(tpl), Some(id)) = (&route.location, json.get("meta").and_then(|m| m.get("id")).and_then(Value::as_str))
        && let Ok(h) = HeaderValue::from_str(&tpl.replace("{id}", id))
    {
        headers.insert(header::LOCATION, h);
    }
    Ok((status, headers, json.to_string()).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn table_matches_the_contract_and_covers_every_unary_method() {
        let api = Api::new().unwrap();
        for svc in ["cartella.v1.CartellaService", "cartella.v1.StatsService", "cartella.v1.RevisioneService"] {
            for m in api.pool.get_service_by_name(svc).unwrap().methods() {
                assert!(api.routes.iter().any(|r| r.method.full_name() == m.full_name()), "{} has no REST route", m.full_name());
            }
        }
        let doc: Value = serde_json::from_str(api.openapi_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for svc in ["cartella.v1.CartellaService", "cartella.v1.StatsService", "cartella.v1.ImportService"] {
            for m in api.pool.get_service_by_name(svc).unwrap().methods() {
                // StartImport has a handler of its own (uploads), documented by hand.
                let own = m.full_name() == "cartella.v1.ImportService.StartImport"
                    && doc["paths"]["/api/v1/importazioni"]["post"]["operationId"] == "StartImport";
                assert!(own || api.routes.iter().any(|r| r.method.full_name() == m.full_name()), "{} has no REST route", m.full_name());
            }
        }
    }

    #[test]
    fn if_match_forms() {
        let v = |s: &str| if_match_version(&HeaderValue::from_str(s).unwrap());
        assert_eq!(v("\"3\"").unwrap(), Some(3));
        assert_eq!(v("*").unwrap(), None);
        assert!(matches!(v("W/\"3\""), Err(RestError::PreconditionFailed(_))));
        assert!(matches!(v("\"0\""), Err(RestError::PreconditionFailed(_))));
        for bad in ["3", "", "\"abc\"", "\"1\", \"2\"", "\"9999999999999999999\""] {
            assert!(matches!(v(bad), Err(RestError::Invalid(_))), "{bad}");
        }
    }
}
