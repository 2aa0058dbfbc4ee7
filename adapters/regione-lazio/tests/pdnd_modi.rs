//! Outbound security against a local PDND token endpoint and a local e-service (axum on
//! 127.0.0.1:0) that verify what the adapter sends with the hub's public key: the client
//! assertion (RS256, kid, iss = sub = client id, aud, jti, purposeId, and the digest of the
//! tracking evidence), the voucher as bearer token, `Digest` against the body,
//! `Agid-JWT-Signature` (signed_headers with digest and content-type, audience) and
//! `Agid-JWT-TrackingEvidence` (bound to the voucher, naming the system user and purpose).
mod common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use adapter_contract::{Adapter, Outcome};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use josekit::{
    jws::RS256,
    jwt::{self, JwtPayload},
};
use regione_lazio::{
    Config, RegioneLazio,
    config::PdndConfig,
    mapping::Writes,
    plan,
    security::{SYSTEM_USER, digest_header},
};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Peer {
    public_pem: Vec<u8>,
    tokens_issued: AtomicUsize,
    /// Digest claims of the client assertions, by voucher issued.
    bound: Mutex<Vec<String>>,
    refuse_next: AtomicBool,
    /// What the e-service found wrong (empty when every check passed).
    problems: Mutex<Vec<String>>,
    deliveries: AtomicUsize,
}

fn verify(peer: &Peer, token: &str) -> Result<(JwtPayload, Option<String>), String> {
    let verifier = RS256.verifier_from_pem(&peer.public_pem).map_err(|e| e.to_string())?;
    let (payload, header) = jwt::decode_with_verifier(token, &verifier).map_err(|e| format!("signature: {e}"))?;
    let exp = payload.expires_at().ok_or("no exp")?;
    if exp < std::time::SystemTime::now() {
        return Err("expired".into());
    }
    if payload.jwt_id().is_none_or(str::is_empty) {
        return Err("no jti".into());
    }
    Ok((payload, header.key_id().map(str::to_string)))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).expect("hex"));
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            (k.to_string(), String::from_utf8(out).expect("utf8"))
        })
        .collect()
}

async fn token(State(peer): State<Arc<Peer>>, body: Bytes) -> (StatusCode, String) {
    let f = form(&body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if get("grant_type") != "client_credentials" || get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#.into());
    }
    let (p, kid) = match verify(&peer, &get("client_assertion")) {
        Ok(x) => x,
        Err(_) => return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#.into()),
    };
    let ok = kid.as_deref() == Some("kid-1")
        && p.issuer() == Some("client-1")
        && p.subject() == Some("client-1")
        && get("client_id") == "client-1"
        && p.audience() == Some(vec!["pdnd-aud"])
        && p.claim("purposeId") == Some(&json!("purpose-1"));
    let digest = p.claim("digest").and_then(|d| (d["alg"] == "SHA256").then(|| d["value"].as_str().map(str::to_string)).flatten());
    let Some(digest) = digest.filter(|_| ok) else { return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#.into()) };
    let n = peer.tokens_issued.fetch_add(1, Ordering::SeqCst);
    peer.bound.lock().expect("lock").push(digest);
    (StatusCode::OK, json!({ "access_token": format!("voucher-{n}"), "expires_in": 600, "token_type": "Bearer" }).to_string())
}

async fn fhir(State(peer): State<Arc<Peer>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    peer.deliveries.fetch_add(1, Ordering::SeqCst);
    if peer.refuse_next.swap(false, Ordering::SeqCst) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut problems = Vec::new();
    let issued = peer.tokens_issued.load(Ordering::SeqCst);
    if h("authorization") != format!("Bearer voucher-{}", issued.saturating_sub(1)) {
        problems.push("bearer is not the latest voucher".to_string());
    }
    let digest = h("digest");
    if digest != format!("SHA-256={}", STANDARD.encode(Sha256::digest(&body))) {
        problems.push("Digest does not match the body".into());
    }
    match verify(&peer, &h("agid-jwt-signature")) {
        Ok((p, kid)) => {
            if kid.as_deref() != Some("kid-1") || p.audience() != Some(vec!["modi-aud"]) || p.issuer() != Some("client-1") {
                problems.push("signature: kid, aud or iss".into());
            }
            if p.claim("signed_headers") != Some(&json!([{ "digest": digest }, { "content-type": h("content-type") }])) {
                problems.push("signed_headers".into());
            }
        }
        Err(e) => problems.push(format!("Agid-JWT-Signature {e}")),
    }
    let tracking = h("agid-jwt-trackingevidence");
    match verify(&peer, &tracking) {
        Ok((p, _)) => {
            if p.claim("userID") != Some(&json!(SYSTEM_USER))
                || p.claim("purposeId") != Some(&json!("purpose-1"))
                || p.audience() != Some(vec!["modi-aud"])
            {
                problems.push("tracking evidence claims".into());
            }
            let hex: String = Sha256::digest(tracking.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            if peer.bound.lock().expect("lock").last() != Some(&hex) {
                problems.push("tracking evidence not bound to the voucher".into());
            }
        }
        Err(e) => problems.push(format!("Agid-JWT-TrackingEvidence {e}")),
    }
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    peer.problems.lock().expect("lock").extend(problems);
    (status, json!({ "resourceType": "Bundle", "type": "transaction-response" }).to_string())
}

async fn serve(peer: Arc<Peer>) -> String {
    let app = Router::new().route("/token", post(token)).route("/fhir/", post(fhir)).with_state(peer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

fn config(base: &str, key_pem: Vec<u8>) -> Config {
    let mut cfg = Config::plain(format!("{base}/fhir"));
    cfg.pdnd = Some(PdndConfig {
        token_url: format!("{base}/token"),
        client_id: "client-1".into(),
        kid: "kid-1".into(),
        key_pem,
        audience: "pdnd-aud".into(),
        purpose_id: "purpose-1".into(),
    });
    cfg.modi_audience = Some("modi-aud".into());
    cfg
}

#[tokio::test]
async fn voucher_and_modi_headers_verify_with_the_hub_public_key() {
    let kp = RS256.generate_key_pair(2048).expect("key");
    let peer = Arc::new(Peer { public_pem: kp.to_pem_public_key(), ..Default::default() });
    let base = serve(peer.clone()).await;
    let adapter = RegioneLazio::new(config(&base, kp.to_pem_private_key())).expect("adapter");
    let planned = plan(&[common::shared_view()], "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps").pop().expect("one");

    assert_eq!(adapter.deliver(&planned).await, Outcome::Delivered, "{:?}", peer.problems.lock().expect("lock"));
    assert_eq!(adapter.deliver(&planned).await, Outcome::Delivered, "{:?}", peer.problems.lock().expect("lock"));
    assert!(peer.problems.lock().expect("lock").is_empty(), "{:?}", peer.problems.lock().expect("lock"));
    assert_eq!(peer.tokens_issued.load(Ordering::SeqCst), 1, "the voucher is cached");

    // The region refuses the voucher: retry, and the next delivery fetches a new one.
    peer.refuse_next.store(true, Ordering::SeqCst);
    match adapter.deliver(&planned).await {
        Outcome::Retry { reason, .. } => assert_eq!(reason.code, "FHIR_UNAUTHORIZED"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(adapter.deliver(&planned).await, Outcome::Delivered);
    assert_eq!(peer.tokens_issued.load(Ordering::SeqCst), 2);
    assert!(peer.problems.lock().expect("lock").is_empty(), "{:?}", peer.problems.lock().expect("lock"));
    assert_eq!(digest_header(b"x"), format!("SHA-256={}", STANDARD.encode(Sha256::digest(b"x"))));
}

#[tokio::test]
async fn a_key_pdnd_does_not_know_gets_no_voucher_and_nothing_is_sent() {
    let registered = RS256.generate_key_pair(2048).expect("key");
    let other = RS256.generate_key_pair(2048).expect("key");
    let peer = Arc::new(Peer { public_pem: registered.to_pem_public_key(), ..Default::default() });
    let base = serve(peer.clone()).await;
    let adapter = RegioneLazio::new(config(&base, other.to_pem_private_key())).expect("adapter");
    let planned = plan(&[common::shared_view()], "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps").pop().expect("one");
    match adapter.deliver(&planned).await {
        Outcome::Retry { reason, .. } => {
            assert_eq!(reason.code, "PDND_VOUCHER");
            assert!(reason.message.contains("401"), "{}", reason.message);
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(peer.tokens_issued.load(Ordering::SeqCst), 0);
    assert_eq!(peer.deliveries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_or_a_401_without_pdnd_is_permanent_and_nothing_is_resent_as_get() {
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    let app = Router::new()
        .route("/moved/", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere/")], "") }))
        .route(
            "/elsewhere/",
            axum::routing::any(move || {
                g.fetch_add(1, Ordering::SeqCst);
                async { (StatusCode::OK, "{}") }
            }),
        )
        .route("/locked/", post(|| async { (StatusCode::UNAUTHORIZED, "") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let planned = plan(&[common::shared_view()], "REGIONE", "2026-02-01", Writes::ById, 50).expect("maps").pop().expect("one");
    let moved = RegioneLazio::new(Config::plain(format!("http://{addr}/moved"))).expect("adapter");
    match moved.deliver(&planned).await {
        Outcome::Permanent(r) => assert_eq!(r.code, "FHIR_REDIRECT"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert_eq!(gets.load(Ordering::SeqCst), 0, "the redirect was followed");
    let locked = RegioneLazio::new(Config::plain(format!("http://{addr}/locked"))).expect("adapter");
    match locked.deliver(&planned).await {
        Outcome::Permanent(r) => assert_eq!(r.code, "FHIR_UNAUTHORIZED"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}
