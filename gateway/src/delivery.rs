//! Running the delivery engine from the binary: its flags (`sigess up`, `sigess worker`),
//! and the small HTTP side of a worker running alone (`/metrics`, `/healthz`).
use std::time::Duration;

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use core_cartella::{delivery::EngineConfig, store::Store};

/// How the delivery engine runs. Every outbound adapter (SIUSS, webhook, the regional FHIR
/// record) is delivered by it.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Milliseconds between looks at the outbox when no write was signalled in this process
    /// (writes of other processes are seen within this).
    #[arg(long = "delivery-poll-ms", env = "SIGESS_DELIVERY_POLL_MS", default_value_t = 100)]
    pub poll_ms: u64,
    /// Deliveries in flight at once per adapter in this process.
    #[arg(long = "delivery-concurrency", env = "SIGESS_DELIVERY_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds a worker holds a claimed delivery; a worker that dies loses its claims after this.
    #[arg(long = "delivery-lease", env = "SIGESS_DELIVERY_LEASE", default_value_t = 60)]
    pub lease_secs: u64,
    /// Attempts before a failure that may pass becomes a dead letter.
    #[arg(long = "delivery-max-attempts", env = "SIGESS_DELIVERY_MAX_ATTEMPTS", default_value_t = 12)]
    pub max_attempts: u32,
    /// Seconds of the first retry delay (doubled per attempt, with jitter).
    #[arg(long = "delivery-backoff", env = "SIGESS_DELIVERY_BACKOFF", default_value_t = 1)]
    pub backoff_secs: u64,
    /// Longest retry delay in seconds.
    #[arg(long = "delivery-backoff-cap", env = "SIGESS_DELIVERY_BACKOFF_CAP", default_value_t = 600)]
    pub backoff_cap_secs: u64,
    /// Seconds the oldest pending delivery of an adapter may wait before readiness (`/readyz`
    /// of `sigess up` and of a worker) reports the hub not ready; 0 turns the check off.
    #[arg(long = "delivery-max-age", env = "SIGESS_DELIVERY_MAX_AGE", default_value_t = 900)]
    pub max_age_secs: u64,
    /// Days delivered and discarded deliveries are kept before they are deleted.
    #[arg(long = "delivery-retention-days", env = "SIGESS_DELIVERY_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u64,
}

impl EngineArgs {
    /// The readiness bound, None when off.
    pub fn max_age(&self) -> Option<Duration> {
        (self.max_age_secs > 0).then(|| Duration::from_secs(self.max_age_secs))
    }

    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            poll: Duration::from_millis(self.poll_ms.max(1)),
            concurrency: self.concurrency.max(1),
            lease: Duration::from_secs(self.lease_secs.max(5)),
            max_attempts: self.max_attempts.max(1),
            backoff_base: Duration::from_secs(self.backoff_secs.max(1)),
            backoff_cap: Duration::from_secs(self.backoff_cap_secs.max(self.backoff_secs.max(1))),
            retention: Duration::from_secs(self.retention_days.max(1) * 24 * 3600),
            ..EngineConfig::default()
        }
    }
}

/// `/metrics`, `/healthz` and `/readyz` of a worker running alone. Ready: the store answers
/// and no adapter's oldest pending delivery is older than `max_age`.
pub fn worker_router(metrics: crate::stack::metrics::Metrics, store: Store, max_age: Option<Duration>) -> Router {
    let ready = move || {
        let store = store.clone();
        async move {
            if store.ping().await.is_err() {
                return crate::problem::problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the store does not answer");
            }
            let stale = match max_age {
                Some(m) => crate::http::stale_deliveries(&store, m).await,
                None => None,
            };
            match stale {
                Some(why) => crate::problem::problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", &why),
                None => "ready\n".into_response(),
            }
        }
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(crate::stack::metrics::endpoint).with_state(metrics))
}

/// Serves [`worker_router`] on `listener` until `stop` resolves.
pub async fn serve_worker_http(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(stop).await
}
