//! Liveness and readiness. Ready means core answers its gRPC health check as SERVING (core's
//! health follows its store) and, when the gateway has the store itself, the store answers
//! and no adapter's oldest pending delivery is older than the configured bound.
use std::time::Duration;

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use core_cartella::store::Store;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::problem::problem;

#[derive(Clone, Debug)]
pub struct Readiness {
    pub core: crate::core_link::CoreChannel,
    pub store: Option<Store>,
    pub delivery_max_age: Option<Duration>,
    pub edge: Option<crate::edge_store::EdgeStore>,
}

pub fn router(ready: Readiness) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(readyz)).with_state(ready)
}

/// Why deliveries make the hub not ready, if they do.
pub async fn stale_deliveries(store: &Store, max: Duration) -> Option<String> {
    match core_cartella::delivery::stale_adapters(store, max).await {
        Ok(stale) if stale.is_empty() => None,
        Ok(stale) => Some(
            stale
                .iter()
                .map(|(a, age)| format!("adapter {a}: oldest pending delivery {} s old", age.as_secs()))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(_) => Some("the delivery queue cannot be read".into()),
    }
}

async fn readyz(State(r): State<Readiness>) -> Response {
    if let Some(store) = &r.store {
        if store.ping().await.is_err() {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the store does not answer");
        }
        if let Some(max) = r.delivery_max_age
            && let Some(why) = stale_deliveries(store, max).await
        {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", &why);
        }
    }
    if let Some(edge) = &r.edge
        && edge.ping().await.is_err()
    {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the edge store does not answer");
    }
    let mut client = HealthClient::new(r.core.clone());
    let check = client.check(HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(res)) if res.get_ref().status == ServingStatus::Serving as i32 => "ready\n".into_response(),
        _ => problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "core does not answer as serving"),
    }
}
