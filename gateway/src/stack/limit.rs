//! Per-client rate limiting (GCRA, governor) with the headers INPS's `api-comuni.yaml` uses:
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`, and `Retry-After` on 429.
use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use crate::problem::problem_with;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Sustained requests per minute per client.
    pub per_minute: u32,
    /// Requests a client may send at once before being slowed to the sustained rate.
    pub burst: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self { per_minute: 600, burst: 60 }
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Keyed>,
    config: RateConfig,
    /// Time for one request's worth of quota to come back.
    replenish: Duration,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The outcome of a check: headers to add, or the 429 to answer.
#[derive(Debug)]
pub enum Decision {
    Allowed { remaining: u32, reset_secs: u64 },
    Limited { retry_after_secs: u64 },
}

impl Limiter {
    pub fn new(config: RateConfig) -> Self {
        let per_minute = NonZeroU32::new(config.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        let replenish = quota.replenish_interval();
        let inner = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Self { inner: Arc::new(inner), config: RateConfig { per_minute: per_minute.get(), burst: burst.get() }, replenish }
    }

    pub fn config(&self) -> RateConfig {
        self.config
    }

    /// Takes one request from `client`'s quota.
    pub fn check(&self, client: &str) -> Decision {
        match self.inner.check_key(&client.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.config.burst.saturating_sub(remaining);
                Decision::Allowed { remaining, reset_secs: (self.replenish * used).as_secs_f64().ceil() as u64 }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision::Limited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 }
            }
        }
    }

    /// Drops state of clients whose quota is full again, bounding memory.
    pub fn prune(&self) {
        self.inner.retain_recent();
    }

    /// Prunes every `every` in a task that ends once the server holding this limiter has
    /// shut down and dropped it (the task keeps only a weak reference).
    pub fn prune_periodically(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match weak.upgrade() {
                    Some(keyed) => keyed.retain_recent(),
                    None => break,
                }
            }
        })
    }

    pub fn headers(&self, d: &Decision, h: &mut HeaderMap) {
        h.insert("x-ratelimit-limit", HeaderValue::from(self.config.burst));
        match d {
            Decision::Allowed { remaining, reset_secs } => {
                h.insert("x-ratelimit-remaining", HeaderValue::from(*remaining));
                h.insert("x-ratelimit-reset", HeaderValue::from(*reset_secs));
            }
            Decision::Limited { retry_after_secs } => {
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
                h.insert("x-ratelimit-reset", HeaderValue::from(*retry_after_secs));
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
        }
    }

    /// The 429 problem for a limited decision.
    pub fn too_many(&self, d: &Decision) -> Response {
        let mut r = problem_with(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "the client's request quota is used up: retry after the time in Retry-After",
            serde_json::json!({ "reason": "rate_limited" }),
        );
        self.headers(d, r.headers_mut());
        r
    }
}

/// Middleware for routes behind authentication: takes one request from the quota of the
/// authenticated caller (kind and subject), adds the `X-RateLimit-*` headers, answers 429
/// when the quota is used up.
pub async fn per_caller(
    axum::extract::State(l): axum::extract::State<Limiter>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(key) = req.extensions().get::<core_cartella::auth::Caller>().map(|c| format!("{:?}:{}:{}", c.kind, c.ente, c.subject)) else {
        return next.run(req).await;
    };
    let d = l.check(&key);
    if matches!(d, Decision::Limited { .. }) {
        return l.too_many(&d);
    }
    let mut res = next.run(req).await;
    l.headers(&d, res.headers_mut());
    res
}

/// Middleware for routes reached before anyone is authenticated (the SPID/CIE login
/// routes): takes one request from the quota of the source address. Without connection info
/// (a server not built with it) every request counts against one shared source.
pub async fn per_source(
    axum::extract::State(l): axum::extract::State<Limiter>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let key = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| format!("source:{}", c.0.ip()));
    let d = l.check(&key);
    if matches!(d, Decision::Limited { .. }) {
        return l.too_many(&d);
    }
    let mut res = next.run(req).await;
    l.headers(&d, res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_with_headers() {
        let l = Limiter::new(RateConfig { per_minute: 60, burst: 3 });
        for expected in [2, 1, 0] {
            match l.check("a") {
                Decision::Allowed { remaining, .. } => assert_eq!(remaining, expected),
                d => panic!("unexpected {d:?}"),
            }
        }
        let d = l.check("a");
        let Decision::Limited { retry_after_secs } = d else { panic!("should be limited") };
        assert!((1..=2).contains(&retry_after_secs));
        let r = l.too_many(&d);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        assert!(r.headers().contains_key(header::RETRY_AFTER));
        assert!(matches!(l.check("b"), Decision::Allowed { remaining: 2, .. }), "clients have separate quotas");
    }
}
