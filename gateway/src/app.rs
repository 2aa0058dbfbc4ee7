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

#[derive(Clone, Debug)]
pub struct AppConfig {
    pub stack: StackConfig,
    pub rate: RateConfig,
    /// Readiness fails while an adapter's oldest pending delivery is older than this (checked
    /// when the gateway runs next to the store, as in `sigess up`).
    pub delivery_max_age: Option<std::time::Duration>,
    /// Bounds on change-feed streams through the gRPC ingress.
    pub streams: grpc_ingress::StreamLimits,
    /// Requests per source address on the SPID/CIE login routes (`/oidc/rp/`), which run
    /// before anyone is authenticated and make the hub fetch federation documents.
    pub login_rate: RateConfig,
    /// Demo mode (`sigess up --demo`): the console's login page offers demo sessions.
    pub console_demo: bool,
}

/// Default quota of the login routes per source address: a person logs in with a handful of
/// requests; a whole office behind one address still fits.
pub const LOGIN_RATE: RateConfig = RateConfig { per_minute: 120, burst: 30 };

/// The SPID/CIE routes behind a per-source rate limit.
pub fn login_routes(routes: Router, rate: RateConfig) -> Router {
    let limiter = Limiter::new(rate);
    limiter.prune_periodically(std::time::Duration::from_secs(60));
    routes.layer(axum::middleware::from_fn_with_state(limiter, stack::limit::per_source))
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            stack: StackConfig::default(),
            rate: RateConfig::default(),
            delivery_max_age: None,
            streams: grpc_ingress::StreamLimits::default(),
            login_rate: LOGIN_RATE,
            console_demo: false,
        }
    }
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
    let ingress = Ingress {
        link: parts.link.clone(),
        auth: parts.auth.clone(),
        limiter: limiter.clone(),
        metrics: metrics.clone(),
        streams: cfg.streams.clone(),
        timeout: cfg.stack.timeout,
    };
    let api = crate::rest::router_limited(parts.link.clone(), parts.auth.clone(), Some(limiter.clone()));
    let api = stack::rest(api.merge(token_endpoint.unwrap_or_default()), &cfg.stack)
        // Uploads of office exports, with a body limit of their own.
        .merge(crate::rest::importazioni::router(parts.link.clone(), parts.auth.clone(), Some(limiter.clone()), &cfg.stack));
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
        .merge(crate::dimissioni::router(parts.link.clone(), parts.auth.clone(), limiter.clone(), &metrics)?)
        .merge(login_routes(parts.auth.session_routes(), cfg.login_rate))
        // The web console, where the gateway holds the edge store its clients and operators
        // live in; its pages and assets are public, its data needs a session.
        .merge(match &parts.edge {
            Some(edge) => {
                crate::console::router(crate::console::Console { edge: edge.clone(), auth: parts.auth.clone(), demo: cfg.console_demo })
            }
            None => Router::new(),
        })
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not Found", "no such resource") });
    let router = stack::outer(router, &cfg.stack, metrics.clone());
    // Quota state of idle clients is dropped once a minute, until the server has stopped.
    limiter.prune_periodically(std::time::Duration::from_secs(60));
    Ok(App { router, metrics, limiter })
}
