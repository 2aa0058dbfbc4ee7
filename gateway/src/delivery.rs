//! Running the delivery engine from the binary: its flags (`sigess up`, `sigess worker`),
//! and the small HTTP side of a worker running alone (`/metrics`, `/healthz`).
use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use core_cartella::delivery::EngineConfig;

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
    /// Days delivered and discarded deliveries are kept before they are deleted.
    #[arg(long = "delivery-retention-days", env = "SIGESS_DELIVERY_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u64,
}

impl EngineArgs {
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

/// `/metrics` and `/healthz` of a worker running alone.
pub fn worker_router(metrics: crate::stack::metrics::Metrics) -> Router {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/metrics", get(crate::stack::metrics::endpoint).with_state(metrics))
}

/// Serves [`worker_router`] on `addr` until `stop` resolves.
pub async fn serve_worker_http(
    addr: SocketAddr,
    metrics: crate::stack::metrics::Metrics,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
    axum::serve(listener, worker_router(metrics)).with_graceful_shutdown(stop).await
}
