//! gRPC ingress for municipal apps: the `cartella.v1` services on the gateway's port,
//! authenticated here and forwarded to core with a freshly minted caller token. Bodies are
//! streamed through untouched, so server streaming (`WatchChanges`) works as it does on core.
use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tower::ServiceExt;

use crate::{
    auth::{Authenticator, ClientCert, Presented},
    core_link::CoreLink,
    stack::{
        limit::{Decision, Limiter},
        metrics::Metrics,
    },
};

#[derive(Clone, Debug)]
pub struct Ingress {
    pub link: CoreLink,
    pub auth: Authenticator,
    pub limiter: Limiter,
    pub metrics: Metrics,
}

/// Services forwarded to core.
pub const SERVICES: [&str; 3] = ["cartella.v1.CartellaService", "cartella.v1.FeedService", "cartella.v1.StatsService"];

pub fn router(ingress: Ingress) -> Router {
    let mut r = Router::new();
    for s in SERVICES {
        r = r.route(&format!("/{s}/{{method}}"), post(forward));
    }
    r.with_state(ingress)
}

/// A trailers-only gRPC error response.
fn grpc_error(code: tonic::Code, message: &str) -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(code as i32));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    r
}

async fn forward(State(ing): State<Ingress>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let cert = parts.extensions.get::<ClientCert>().map(|c| c.0.clone());
    let presented = Presented {
        headers: &parts.headers,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        // gRPC messages are streamed, not covered by a body signature: authenticate on
        // headers, and refuse a signature (or a caller that must sign) rather than accept
        // one over an empty body.
        body: None,
        client_cert: cert.as_deref(),
    };
    let caller = match ing.auth.authenticate(&presented).await {
        Ok(c) => c,
        Err(e) => {
            ing.metrics.refused(e.reason());
            return grpc_error(tonic::Code::Unauthenticated, &e.to_string());
        }
    };
    let decision = ing.limiter.check(&caller.subject);
    if let Decision::Limited { .. } = decision {
        ing.metrics.refused("rate_limited");
        let mut r = grpc_error(tonic::Code::ResourceExhausted, "the client's request quota is used up");
        ing.limiter.headers(&decision, r.headers_mut());
        return r;
    }
    let bearer = match ing.link.bearer_for(&caller).ok().and_then(|b| HeaderValue::from_str(&b).ok()) {
        Some(b) => b,
        None => return grpc_error(tonic::Code::Internal, "cannot mint the caller token"),
    };
    parts.headers.insert(header::AUTHORIZATION, bearer);
    // Core's address, not the gateway's, is the authority of the forwarded call.
    parts.uri = match format!("http://core{}", parts.uri.path_and_query().map_or("/", |p| p.as_str())).parse() {
        Ok(u) => u,
        Err(_) => return grpc_error(tonic::Code::InvalidArgument, "bad request path"),
    };
    let upstream = http::Request::from_parts(parts, tonic::body::Body::new(body));
    match ing.link.channel().oneshot(upstream).await {
        Ok(res) => {
            let mut res = res.map(Body::new).into_response();
            ing.limiter.headers(&decision, res.headers_mut());
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "core unreachable from gRPC ingress");
            grpc_error(tonic::Code::Unavailable, "core is unavailable: retry shortly")
        }
    }
}
