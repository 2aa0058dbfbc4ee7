//! Assembles the gateway's HTTP application: health, metrics, gRPC ingress and the REST API,
//! behind the tower stack.
use axum::{Router, http::StatusCode, routing::get};
use core_cartella::store::Store;

use crate::edge_store::EdgeStore;

use crate::{
    auth::Authenticator,
    core_link::CoreLink,
    grpc_ingress::{self, Ingress},
    http::{self, Readiness},
    problem::problem,
    stack::{
        self, StackConfig,
        limit::{Limiter, RateConfig},
        metrics::{self, Metrics},
    },
};

#[derive(Clone, Debug, Default)]
pub struct AppConfig {
    pub stack: StackConfig,
    pub rate: RateConfig,
    /// Readiness fails while an adapter's oldest pending delivery is older than this (checked
    /// when the gateway runs next to the store, as in `sigess up`).
    pub delivery_max_age: Option<std::time::Duration>,
}

/// What the application is built from.
#[derive(Clone, Debug)]
pub struct Parts {
    pub link: CoreLink,
    pub auth: Authenticator,
    /// Core's store, when core runs in the same process (`sigess up`): readiness checks it.
    pub store: Option<Store>,
    /// The edge store (clients, operators, sessions); readiness checks it.
    pub edge: Option<EdgeStore>,
}

#[derive(Debug)]
pub struct App {
    pub router: Router,
    pub metrics: Metrics,
    pub limiter: Limiter,
}

pub fn build(parts: Parts, cfg: &AppConfig) -> Result<App, prometheus::Error> {
    build_full(parts, cfg, None)
}

/// As `build`, also serving the OAuth2 token endpoint (outside authentication, behind the
/// REST stack).
pub fn build_full(parts: Parts, cfg: &AppConfig, token_endpoint: Option<Router>) -> Result<App, prometheus::Error> {
    let metrics = Metrics::new()?;
    let limiter = Limiter::new(cfg.rate);
    let ingress = Ingress { link: parts.link.clone(), auth: parts.auth.clone(), limiter: limiter.clone(), metrics: metrics.clone() };
    let api = crate::rest::router_limited(parts.link.clone(), parts.auth.clone(), Some(limiter.clone()));
    let api = stack::rest(api.merge(token_endpoint.unwrap_or_default()), &cfg.stack);
    let router = Router::new()
        .merge(http::router(Readiness {
            core: parts.link.channel(),
            store: parts.store.clone(),
            edge: parts.edge.clone(),
            delivery_max_age: cfg.delivery_max_age,
        }))
        .route("/metrics", get(metrics::endpoint).with_state(metrics.clone()))
        .merge(grpc_ingress::router(ingress))
        .merge(api)
        .merge(crate::waas::router(parts.link.clone(), parts.auth.clone(), limiter.clone()))
        .merge(crate::dimissioni::router(parts.link.clone(), parts.auth.clone()))
        .merge(parts.auth.session_routes())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not Found", "no such resource") });
    let router = stack::outer(router, &cfg.stack, metrics.clone());
    // Quota state of idle clients is dropped once a minute, until the server has stopped.
    limiter.prune_periodically(std::time::Duration::from_secs(60));
    Ok(App { router, metrics, limiter })
}
