//! The gateway's tower stack, written once as ordered lists. `outer` wraps every request
//! (REST, gRPC ingress, health, metrics); `rest` adds what only request/response calls
//! want (a gRPC stream must not time out or be compressed by HTTP rules).

pub mod limit;
pub mod metrics;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::problem::problem;

#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Longest a call may take to its response head before the gateway answers 503 (gRPC:
    /// UNAVAILABLE). For the gRPC ingress it counts from the end of the request's upload,
    /// and also bounds any pause in the upload.
    pub timeout: Duration,
    /// Largest request body accepted (413 beyond).
    pub max_body: usize,
    /// Requests served at once; beyond it new ones are shed with 503.
    pub max_concurrency: usize,
    /// Origins allowed by CORS (the web console's); empty = none.
    pub cors_origins: Vec<String>,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_body: 1024 * 1024, max_concurrency: 1024, cors_origins: Vec::new() }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Answers 503 when the response head is not ready within `timeout`, slow request bodies
/// included. Uploads time themselves, from the end of the upload and for any pause in it:
/// calls to the gRPC ingress (paths `/cartella.v1.…`, see `grpc_ingress`) and
/// `POST /api/v1/importazioni` (see `rest::importazioni`).
async fn timed(timeout: Duration, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with(crate::grpc_ingress::PATH_PREFIX)
        || (req.method() == axum::http::Method::POST && path == crate::rest::importazioni::UPLOAD_PATH)
    {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the call took too long: retry shortly"),
    }
}

/// Serves at most as many requests at once as the semaphore has permits and answers the
/// rest 503 at once: queueing would only turn overload into timeouts. The permit is held
/// until the response head is ready (a long stream does not hold a slot).
async fn shed(slots: Arc<Semaphore>, req: Request, next: Next) -> Response {
    match slots.try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the gateway is at capacity: retry shortly"),
    }
}

/// 413 as problem+json when the declared length is already too big; bodies without a
/// length are cut by `RequestBodyLimitLayer` as they stream.
async fn declared_length(max: usize, req: Request, next: Next) -> Response {
    let too_big = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64);
    if too_big {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", &format!("the request body exceeds {max} bytes"));
    }
    next.run(req).await
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::IF_MATCH, REQUEST_ID])
        .expose_headers([header::ETAG, header::RETRY_AFTER, REQUEST_ID])
        .max_age(Duration::from_secs(600))
}

/// Layers for request/response routes (REST, token endpoint), innermost last.
pub fn rest(router: Router, cfg: &StackConfig) -> Router {
    let max = cfg.max_body;
    router.layer(
        ServiceBuilder::new()
            // Compress JSON responses for clients that ask.
            .layer(CompressionLayer::new())
            // Refuse oversized bodies early, with a problem document...
            .layer(middleware::from_fn(move |req, next| declared_length(max, req, next)))
            // ...and cut streamed bodies that grow past the limit.
            .layer(RequestBodyLimitLayer::new(max)),
    )
}

/// Layers every request goes through, outermost first.
pub fn outer(router: Router, cfg: &StackConfig, metrics: metrics::Metrics) -> Router {
    let slots = Arc::new(Semaphore::new(cfg.max_concurrency.max(1)));
    let timeout = cfg.timeout;
    router.layer(
        ServiceBuilder::new()
            // A request id before anything else, so every log line and response carries it.
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // One span per request: id, method and route template; never the URI, whose
            // query may hold a codice fiscale.
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
                        let rid = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                        tracing::info_span!("request", request_id = %rid, method = %req.method(), route = %route)
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            // Metrics also count what the layers below refuse.
            .layer(middleware::from_fn_with_state(metrics, metrics::record))
            // Preflights are answered before limits and authentication.
            .layer(cors(&cfg.cors_origins))
            // Beyond capacity, shed at once (503) instead of queueing. One semaphore for
            // the whole application (axum may build route layers per request).
            .layer(middleware::from_fn(move |req, next| shed(slots.clone(), req, next)))
            // Every route (REST, WaaS, sessions, health): a call whose response is not ready
            // within the timeout, slow request bodies included, is answered 503 rather than
            // left hanging. A response already streaming is not cut: the timeout covers the
            // time to its head. The gRPC ingress and the REST import upload apply the same
            // timeout from the end of the upload, and to any pause in the upload.
            .layer(middleware::from_fn(move |req, next| timed(timeout, req, next))),
    )
}
