//! The webhook adapter: posts each change it follows, as a JSON event of ids (never personal
//! data), to one URL — the way a municipal application learns that a cartella changed
//! without polling the feed, and the reference adapter of the delivery engine.
//!
//! Each request carries `Idempotency-Key` (the change's feed cursor, stable across
//! redeliveries and replays), `X-Sigess-Subject`, and, with a shared secret,
//! `X-Sigess-Signature: sha256=<hex HMAC-SHA256 of the body>`. Outcomes: 2xx and 409 (the
//! peer already had the key) are delivered; 429 and 503 are retried after `Retry-After`
//! when given; other 5xx, timeouts and connection errors are retried with the engine's
//! backoff; other 4xx are permanent (a dead letter naming the status).
use std::{future::Future, time::Duration};

use adapter_contract::{Adapter, Change, Health, Outcome, Planned, Reason, Source, kind};
use hmac::{Hmac, Mac};
use reqwest::{StatusCode, header};
use sha2::Sha256;

/// Flags of the webhook adapter (`sigess up`, `sigess worker`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WebhookArgs {
    /// URL that receives change events (POST, JSON). Without it the adapter is off.
    #[arg(long = "webhook-url", env = "SIGESS_WEBHOOK_URL")]
    pub url: Option<String>,
    /// Record kinds to send (comma-separated: persona, nucleo, accesso, cartella, diario,
    /// valutazione, pai, prestazione, condivisione); all when omitted.
    #[arg(long = "webhook-kinds", env = "SIGESS_WEBHOOK_KINDS", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Shared secret for the `X-Sigess-Signature` HMAC-SHA256 of each body.
    #[arg(long = "webhook-secret", env = "SIGESS_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Seconds a request may take before it counts as a timeout (retried).
    #[arg(long = "webhook-timeout", env = "SIGESS_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Why the webhook configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--webhook-url must be an http or https URL")]
    Url,
    #[error("--webhook-kinds: {0:?} is not a record kind")]
    Kind(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

pub struct Webhook {
    url: String,
    kinds: &'static [&'static str],
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).field("kinds", &self.kinds).finish_non_exhaustive()
    }
}

impl Webhook {
    /// The adapter, or None when no URL is configured.
    pub fn from_args(a: &WebhookArgs) -> Result<Option<Self>, ConfigError> {
        let Some(url) = a.url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::Url);
        }
        let mut kinds: Vec<&'static str> = Vec::new();
        for k in &a.kinds {
            let k = k.trim();
            let Some(known) = kind::ALL.iter().find(|x| **x == k) else { return Err(ConfigError::Kind(k.to_string())) };
            if !kinds.contains(known) {
                kinds.push(known);
            }
        }
        // Configured once per process: the contract lists followed kinds as static.
        let kinds: &'static [&'static str] = if kinds.is_empty() { &kind::ALL } else { Vec::leak(kinds) };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(a.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(a.timeout_secs.clamp(1, 5)))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(Some(Self { url: url.to_string(), kinds, secret: a.secret.as_ref().map(|s| s.as_bytes().to_vec()), client }))
    }
}

/// One event as posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub subject: String,
    pub body: Vec<u8>,
}

/// The event's JSON: the change as the feed gives it.
pub fn event_json(c: &Change) -> serde_json::Value {
    serde_json::json!({
        "cursor": c.cursor,
        "kind": c.kind,
        "id": c.id,
        "operazione": match c.op {
            1 => "create",
            3 => "merge",
            _ => "update",
        },
        "version": c.version,
        "ente": c.ente,
        "ufficio": c.ufficio,
        "persona_id": c.persona_id,
        "cartella_id": c.cartella_id,
        "occurred_at": c.occurred_at,
    })
}

/// `sha256=<hex>` HMAC of the body with the shared secret.
pub fn signature(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(body);
    Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())))
}

/// Seconds of a `Retry-After` header (delta-seconds form; an HTTP date is not honoured and
/// falls back to the engine's backoff).
fn retry_after(h: &header::HeaderMap) -> Option<Duration> {
    let s = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    s.parse::<u64>().ok().map(|n| Duration::from_secs(n.min(3600)))
}

/// How an HTTP answer ends a delivery.
pub fn classify(status: StatusCode, headers: &header::HeaderMap) -> Outcome {
    let code = format!("HTTP_{}", status.as_u16());
    if status.is_success() || status == StatusCode::CONFLICT {
        Outcome::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        Outcome::Retry { after: retry_after(headers), reason: Reason::new(code, "the peer asked to slow down") }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Outcome::Retry { after: None, reason: Reason::new(code, "the peer failed") }
    } else {
        Outcome::Permanent(Reason::new(code, "the peer refused the event"))
    }
}

impl Adapter for Webhook {
    type Input = ();
    type Delivery = Event;

    fn id(&self) -> &'static str {
        "webhook"
    }

    fn follows(&self) -> &'static [&'static str] {
        self.kinds
    }

    fn load<'a>(&'a self, _change: &'a Change, _source: &'a dyn Source) -> impl Future<Output = Result<(), Outcome>> + Send + 'a {
        std::future::ready(Ok(()))
    }

    fn map(&self, change: &Change, _input: ()) -> Result<Vec<Planned<Event>>, Reason> {
        let body =
            serde_json::to_vec(&event_json(change)).map_err(|_| Reason::new("EVENT_NOT_ENCODED", "the event could not be encoded"))?;
        Ok(vec![Planned { key: format!("change:{}", change.cursor), delivery: Event { subject: self.subject(change), body } }])
    }

    async fn deliver(&self, p: &Planned<Event>) -> Outcome {
        let mut req = self
            .client
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &p.key)
            .header("x-sigess-subject", &p.delivery.subject)
            .body(p.delivery.body.clone());
        if let Some(sig) = self.secret.as_deref().and_then(|s| signature(s, &p.delivery.body)) {
            req = req.header("x-sigess-signature", sig);
        }
        match req.send().await {
            Ok(resp) => classify(resp.status(), resp.headers()),
            Err(e) if e.is_timeout() => Outcome::retry("TIMEOUT", "the peer did not answer in time"),
            Err(e) if e.is_connect() => Outcome::retry("UNREACHABLE", "the peer cannot be reached"),
            Err(_) => Outcome::retry("TRANSPORT", "the request failed in transport"),
        }
    }

    async fn health(&self) -> Health {
        // A HEAD on the URL: any HTTP answer means the peer is there.
        match self.client.head(&self.url).send().await {
            Ok(r) if r.status().is_server_error() => Health::Down(format!("HTTP {}", r.status().as_u16())),
            Ok(_) => Health::Up,
            Err(e) if e.is_timeout() => Health::Down("timeout".into()),
            Err(_) => Health::Down("unreachable".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use adapter_contract::testkit::{MemorySource, check_contract};

    use super::*;

    fn hook() -> Webhook {
        Webhook::from_args(&WebhookArgs { url: Some("http://127.0.0.1:9/x".into()), timeout_secs: 1, ..WebhookArgs::default() })
            .expect("valid")
            .expect("configured")
    }

    fn change(kind: &str, seq: i64) -> Change {
        Change {
            cursor: format!("0.{seq}"),
            kind: kind.into(),
            id: format!("rec-{seq}"),
            op: 1,
            version: 1,
            ente: "H501".into(),
            ufficio: "M01".into(),
            persona_id: "p-1".into(),
            cartella_id: String::new(),
            occurred_at: "2026-11-28T10:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn passes_the_shared_adapter_suite() {
        let fixtures: Vec<Change> = kind::ALL.iter().enumerate().map(|(i, k)| change(k, i as i64 + 1)).collect();
        let v = check_contract(&hook(), &MemorySource::default(), &fixtures, &["RSSMRA80A01H501U", "Mario"]).await;
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn configuration_is_checked() {
        assert!(Webhook::from_args(&WebhookArgs::default()).expect("no url is fine").is_none());
        let bad = WebhookArgs { url: Some("ftp://x".into()), ..WebhookArgs::default() };
        assert!(matches!(Webhook::from_args(&bad), Err(ConfigError::Url)));
        let bad = WebhookArgs { url: Some("http://127.0.0.1:1/".into()), kinds: vec!["segreto".into()], ..WebhookArgs::default() };
        assert!(matches!(Webhook::from_args(&bad), Err(ConfigError::Kind(k)) if k == "segreto"));
        let some = WebhookArgs {
            url: Some("http://127.0.0.1:1/".into()),
            kinds: vec!["persona".into(), " cartella".into()],
            ..WebhookArgs::default()
        };
        let w = Webhook::from_args(&some).expect("valid").expect("on");
        assert_eq!(w.follows(), &["persona", "cartella"]);
    }

    #[test]
    fn answers_are_classified() {
        let none = header::HeaderMap::new();
        let mut later = header::HeaderMap::new();
        later.insert(header::RETRY_AFTER, header::HeaderValue::from_static("7"));
        assert_eq!(classify(StatusCode::OK, &none), Outcome::Delivered);
        assert_eq!(classify(StatusCode::NO_CONTENT, &none), Outcome::Delivered);
        assert_eq!(classify(StatusCode::CONFLICT, &none), Outcome::Delivered);
        assert!(
            matches!(classify(StatusCode::TOO_MANY_REQUESTS, &later), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, &none), Outcome::Retry { after: None, .. }));
        assert!(matches!(classify(StatusCode::INTERNAL_SERVER_ERROR, &later), Outcome::Retry { after: None, .. }));
        assert!(matches!(classify(StatusCode::BAD_REQUEST, &none), Outcome::Permanent(r) if r.code == "HTTP_400"));
    }

    #[test]
    fn events_carry_ids_only_and_are_signed() {
        let c = change("persona", 3);
        let planned = hook().map(&c, ()).expect("maps");
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].key, "change:0.3");
        assert_eq!(planned[0].delivery.subject, "persona:p-1");
        let v: serde_json::Value = serde_json::from_slice(&planned[0].delivery.body).expect("json");
        assert_eq!(v["id"], "rec-3");
        assert_eq!(v["operazione"], "create");
        for (op, name) in [(2, "update"), (3, "merge")] {
            let v = event_json(&Change { op, persona_id: "p-survivor".into(), ..c.clone() });
            assert_eq!((v["operazione"].as_str(), v["persona_id"].as_str()), (Some(name), Some("p-survivor")));
        }
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_retried() {
        let c = change("persona", 4);
        let w = hook();
        let p = w.map(&c, ()).expect("maps").remove(0);
        assert!(matches!(w.deliver(&p).await, Outcome::Retry { .. }));
        assert!(matches!(w.health().await, Health::Down(_)));
    }
}
