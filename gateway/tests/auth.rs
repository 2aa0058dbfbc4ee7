//! Authentication of system clients at the gateway, against a real store: PDND vouchers
//! (accepted and mapped to the registered client; every refusal named), ModI integrity
//! signatures (by the calling client's own registered key only; accepted once, replay and
//! body tampering refused), OAuth2 client credentials (secret stored as an Argon2 hash,
//! token accepted, bad secret refused), mTLS mapping, and hub caller tokens still accepted.
#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use axum::{
    Extension, Json, Router,
    body::{Body, to_bytes},
    http::{HeaderMap, HeaderValue, Request, StatusCode},
    middleware,
    routing::get,
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    store::{Store, StoreOptions},
    testkit::TestDb,
};
use gateway::auth::{
    AccessTokens, Authenticator, ClientRegistry, JwksSource, NewClient, PdndConfig, PdndVerifier, Presented, cert_fingerprint,
    modi::digest_header_value, oauth_router, require_caller,
};
use gateway::edge_store::EdgeStore;
use josekit::{
    jwk::{Jwk, JwkSet},
    jws::{HS256, JwsHeader, JwsSigner, RS256},
    jwt::{self, JwtPayload},
};
use serde_json::{Value, json};
use tower::ServiceExt;

const AUD: &str = "https://hub.example.it/siuss/v1";
const ISS: &str = "interop.pagopa.it";
const KID: &str = "pdnd-key-1";
const PDND_CLIENT: &str = "6a1f3c2e-pdnd-client";
/// The kid of the key INPS signs ModI requests with (its PDND client key, not PDND's).
const INPS_KID: &str = "inps-modi-key-1";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RSA key pair as (private JWK, public JWK) with `kid`.
fn rsa_key(kid: &str) -> (Jwk, Jwk) {
    let pair = RS256.generate_key_pair(2048).unwrap();
    let mut private = pair.to_jwk_private_key();
    private.set_key_id(kid);
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_algorithm("RS256");
    public.set_key_use("sig");
    (private, public)
}

fn write_jwks(path: &Path, keys: &[&Jwk]) {
    let mut set = JwkSet::new();
    for k in keys {
        set.push_key((*k).clone());
    }
    std::fs::write(path, set.to_string()).unwrap();
}

fn sign(signer: &dyn JwsSigner, kid: &str, claims: Value) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id(kid);
    header.set_token_type("at+jwt");
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, signer).unwrap()
}

fn voucher_claims() -> Value {
    let t = now();
    json!({
        "iss": ISS, "aud": AUD, "client_id": PDND_CLIENT, "sub": PDND_CLIENT,
        "purposeId": "purpose-42", "jti": uuid::Uuid::new_v4().to_string(),
        "iat": t, "nbf": t, "exp": t + 600,
    })
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    if x.is_null() {
        v.as_object_mut().unwrap().remove(k);
    } else {
        v[k] = x;
    }
    v
}

struct Env {
    _dir: tempfile::TempDir,
    /// Core's store, behind the in-process core the WaaS routes call.
    store: Store,
    /// The edge store: clients and the ModI signature ids.
    edge: EdgeStore,
    registry: ClientRegistry,
    hub: TokenSigner,
    auth: Authenticator,
    app: Router,
    pdnd_private: Jwk,
    /// INPS's own ModI signing key; its public half is registered with the client.
    inps_private: Jwk,
    inps_public: Jwk,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreOptions::new(&format!("sqlite://{}", dir.path().join("hub.db").display()))).await.unwrap();
    let edge = EdgeStore::open(&format!("sqlite://{}", dir.path().join("edge.db").display()), 1).await.unwrap();
    let registry = ClientRegistry::new(edge.clone());
    let key_path = dir.path().join("hub-signing-key.pem");
    let hub = TokenSigner::load_or_create(&key_path).unwrap();
    let tokens = AccessTokens::load(&key_path, Duration::from_secs(900)).unwrap();
    let (pdnd_private, pdnd_public) = rsa_key(KID);
    let (inps_private, inps_public) = rsa_key(INPS_KID);
    let jwks = dir.path().join("pdnd-jwks.json");
    write_jwks(&jwks, &[&pdnd_public]);
    let mut cfg = PdndConfig::new(JwksSource::File(jwks), AUD);
    cfg.issuer = Some(ISS.into());
    let pdnd = PdndVerifier::from_config(cfg).await.unwrap();
    let auth = Authenticator::new(hub.verifier().unwrap())
        .accept_hub_tokens(true)
        .with_clients(registry.clone())
        .with_access_tokens(tokens.clone())
        .with_pdnd(pdnd);
    let protected =
        Router::new().route("/whoami", get(whoami).post(whoami)).route_layer(middleware::from_fn_with_state(auth.clone(), require_caller));
    let app = protected.merge(oauth_router(registry.clone(), tokens, gateway::auth::oauth::TokenLimits::default()));
    Env { _dir: dir, store, edge, registry, hub, auth, app, pdnd_private, inps_private, inps_public }
}

/// A JWK set (JSON) of these public keys, as `--modi-jwks` takes it.
fn jwks_json(keys: &[&Jwk]) -> String {
    let mut set = JwkSet::new();
    for k in keys {
        set.push_key((*k).clone());
    }
    set.to_string()
}

async fn whoami(Extension(c): Extension<Caller>) -> Json<Value> {
    Json(json!({
        "subject": c.subject, "ente": c.ente, "ufficio": c.ufficio, "purpose": c.purpose,
        "roles": c.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "sistema": c.kind == CallerKind::Sistema,
    }))
}

async fn register_pdnd_client(e: &Env) -> String {
    let (c, secret) = e
        .registry
        .create(NewClient {
            name: "INPS WaaS".into(),
            ente: "H501".into(),
            roles: vec![Role::Siuss],
            purpose: "alimentazione SIUSS".into(),
            pdnd_client_id: Some(PDND_CLIENT.into()),
            pdnd_purpose_id: Some("purpose-42".into()),
            modi_jwks: Some(jwks_json(&[&e.inps_public])),
            ..NewClient::default()
        })
        .await
        .unwrap();
    assert!(secret.is_none());
    c.client_id
}

/// A hub caller token for an ente-wide system caller with role consultazione.
fn system_hub_token(e: &Env, subject: &str) -> String {
    let caller = Caller {
        kind: CallerKind::Sistema,
        subject: subject.into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Consultazione],
        purpose: "alimentazione SIUSS".into(),
        request_id: String::new(),
    };
    e.hub.mint(&caller, Duration::from_secs(60)).unwrap()
}

/// Sends a request to the app; returns status, headers and JSON body.
async fn send(app: &Router, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = app.clone().oneshot(req.body(Body::from(body.to_vec())).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn with_bearer(e: &Env, token: &str) -> (StatusCode, HeaderMap, Value) {
    send(&e.app, "GET", "/whoami", &[("authorization", format!("Bearer {token}"))], b"").await
}

fn assert_refused(res: &(StatusCode, HeaderMap, Value), reason: &str) {
    assert_eq!(res.0, StatusCode::UNAUTHORIZED, "expected {reason}, got {:?}", res.2);
    assert_eq!(res.1["content-type"], "application/problem+json");
    assert_eq!(res.2["reason"], reason, "{:?}", res.2);
}

#[tokio::test]
async fn valid_voucher_is_accepted_reused_and_mapped_to_the_registered_client() {
    let e = env().await;
    let hub_id = register_pdnd_client(&e).await;
    let signer = RS256.signer_from_jwk(&e.pdnd_private).unwrap();
    let v = sign(&signer, KID, voucher_claims());
    for _ in 0..2 {
        let (status, _, body) = with_bearer(&e, &v).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["subject"], hub_id);
        assert_eq!(body["ente"], "H501");
        assert_eq!(body["ufficio"], Value::Null);
        assert_eq!(body["roles"], json!(["siuss"]));
        assert_eq!(body["purpose"], "alimentazione SIUSS");
        assert_eq!(body["sistema"], true);
    }
    // `sub` stands in for a missing `client_id`.
    let v = sign(&signer, KID, with(voucher_claims(), "client_id", Value::Null));
    assert_eq!(with_bearer(&e, &v).await.0, StatusCode::OK);
}

#[tokio::test]
async fn every_bad_voucher_is_refused_with_its_reason() {
    let e = env().await;
    register_pdnd_client(&e).await;
    let signer = RS256.signer_from_jwk(&e.pdnd_private).unwrap();
    let t = now();

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{KID}"}}"#)),
        URL_SAFE_NO_PAD.encode(voucher_claims().to_string())
    );
    assert_refused(&with_bearer(&e, &none).await, "alg_not_allowed");

    // HS256 keyed with the RSA public modulus: the classic key-confusion forgery.
    let n = e.pdnd_private.parameter("n").and_then(Value::as_str).unwrap().to_string();
    let hs = HS256.signer_from_bytes(n.as_bytes()).unwrap();
    assert_refused(&with_bearer(&e, &sign(&hs, KID, voucher_claims())).await, "alg_not_allowed");

    let (rogue, _) = rsa_key("rogue");
    let rogue_signer = RS256.signer_from_jwk(&rogue).unwrap();
    assert_refused(&with_bearer(&e, &sign(&rogue_signer, "rogue", voucher_claims())).await, "unknown_kid");
    // The right kid, the wrong key (josekit writes the signer's own kid into the header).
    let (impostor, _) = rsa_key(KID);
    let impostor = RS256.signer_from_jwk(&impostor).unwrap();
    assert_refused(&with_bearer(&e, &sign(&impostor, KID, voucher_claims())).await, "bad_signature");

    let cases = [
        (with(voucher_claims(), "aud", json!("https://other.example/api")), "wrong_audience"),
        (with(voucher_claims(), "iss", json!("someone-else")), "wrong_issuer"),
        (with(with(voucher_claims(), "exp", json!(t - 3600)), "iat", json!(t - 4000)), "expired"),
        (with(voucher_claims(), "nbf", json!(t + 3600)), "not_yet_valid"),
        (with(voucher_claims(), "exp", Value::Null), "missing_claim"),
        (with(voucher_claims(), "purposeId", Value::Null), "missing_claim"),
        (with(with(voucher_claims(), "client_id", json!("unknown-client")), "sub", json!("unknown-client")), "unknown_client"),
    ];
    for (claims, reason) in cases {
        assert_refused(&with_bearer(&e, &sign(&signer, KID, claims)).await, reason);
    }
    // Within the leeway an expiry just past is still accepted.
    let fresh = with(voucher_claims(), "exp", json!(t - 20));
    assert_eq!(with_bearer(&e, &sign(&signer, KID, fresh)).await.0, StatusCode::OK);

    // Tampered payload under a valid signature.
    let good = sign(&signer, KID, voucher_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(with(voucher_claims(), "client_id", json!("someone")).to_string());
    assert_refused(&with_bearer(&e, &format!("{}.{forged_payload}.{}", parts[0], parts[2])).await, "bad_signature");

    for malformed in ["abc", "a.b.c", "….….…", "eyJhbGciOiJSUzI1NiJ9.!!.x"] {
        assert_refused(&with_bearer(&e, malformed).await, "malformed_token");
    }
    assert_refused(&send(&e.app, "GET", "/whoami", &[], b"").await, "missing_credentials");
}

/// An `Agid-JWT-Signature` for `body`, signing `digest` (the body's by default).
fn modi_signature(signer: &dyn JwsSigner, body: &[u8], overrides: &[(&str, Value)]) -> (String, String) {
    let digest = digest_header_value(body);
    let t = now();
    let mut claims = json!({
        "iss": PDND_CLIENT, "aud": AUD, "jti": uuid::Uuid::new_v4().to_string(),
        "iat": t, "nbf": t, "exp": t + 300,
        "signed_headers": [{ "digest": digest }, { "content-type": "application/json" }],
    });
    for (k, v) in overrides {
        claims = with(claims, k, v.clone());
    }
    let mut header = JwsHeader::new();
    header.set_key_id(signer.key_id().unwrap_or(INPS_KID));
    header.set_token_type("JWT");
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    (jwt::encode_with_signer(&payload, &header, signer).unwrap(), digest)
}

async fn signed_post(e: &Env, voucher: &str, sig: &str, digest: &str, body: &[u8]) -> (StatusCode, HeaderMap, Value) {
    let headers = [
        ("authorization", format!("Bearer {voucher}")),
        ("agid-jwt-signature", sig.to_string()),
        ("digest", digest.to_string()),
        ("content-type", "application/json".to_string()),
    ];
    send(&e.app, "POST", "/whoami", &headers, body).await
}

#[tokio::test]
async fn modi_signature_is_verified_once_and_replays_and_tampering_are_refused() {
    let e = env().await;
    register_pdnd_client(&e).await;
    let pdnd_signer = RS256.signer_from_jwk(&e.pdnd_private).unwrap();
    let voucher = sign(&pdnd_signer, KID, voucher_claims());
    // INPS signs with its own key, registered with its client.
    let signer = RS256.signer_from_jwk(&e.inps_private).unwrap();
    let body = br#"{"esiti":[{"id":"H501.PS.INPS.20261123.000001","esito":"OK"}]}"#;

    let (sig, digest) = modi_signature(&signer, body, &[]);
    let first = signed_post(&e, &voucher, &sig, &digest, body).await;
    assert_eq!(first.0, StatusCode::OK, "{:?}", first.2);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_replay");

    // The signature and Digest agree, but the body is not the one they describe.
    let (sig, digest) = modi_signature(&signer, body, &[]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, br#"{"esiti":[]}"#).await, "modi_digest_mismatch");
    // Digest header recomputed for the new body, signature still over the old digest.
    let (sig, _) = modi_signature(&signer, body, &[]);
    let other = br#"{"esiti":[]}"#;
    assert_refused(&signed_post(&e, &voucher, &sig, &digest_header_value(other), other).await, "modi_signed_headers_mismatch");
    // A signed header whose value differs from the request's.
    let (sig, digest) = modi_signature(
        &signer,
        body,
        &[("signed_headers", json!([{ "digest": digest_header_value(body) }, { "content-type": "text/plain" }]))],
    );
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_signed_headers_mismatch");

    let (sig, digest) = modi_signature(&signer, body, &[("aud", json!("https://elsewhere.example"))]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_wrong_audience");
    let (sig, digest) = modi_signature(&signer, body, &[("exp", json!(now() - 3600)), ("iat", json!(now() - 4000))]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_expired");
    let (sig, digest) = modi_signature(&signer, body, &[("jti", Value::Null)]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_missing_claim");
    // Still within exp, but made long ago: refused.
    let (sig, digest) = modi_signature(&signer, body, &[("iat", json!(now() - 3600)), ("nbf", json!(now() - 3600))]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_too_old");
    // Signed by INPS's key, but naming another client as its issuer or subject.
    for claim in ["iss", "sub"] {
        let (sig, digest) = modi_signature(&signer, body, &[(claim, json!("regione-pdnd"))]);
        assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_signer_mismatch");
    }
    // Content-Type must be among the signed headers, and Content-Encoding when sent.
    let (sig, digest) = modi_signature(&signer, body, &[("signed_headers", json!([{ "digest": digest_header_value(body) }]))]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_signed_headers_mismatch");
    let (sig, digest) = modi_signature(&signer, body, &[]);
    let headers = [
        ("authorization", format!("Bearer {voucher}")),
        ("agid-jwt-signature", sig),
        ("digest", digest),
        ("content-type", "application/json".to_string()),
        ("content-encoding", "identity".to_string()),
    ];
    assert_refused(&send(&e.app, "POST", "/whoami", &headers, body).await, "modi_signed_headers_mismatch");
    // INPS's kid, another key.
    let (impostor, _) = rsa_key(INPS_KID);
    let (sig, digest) = modi_signature(&RS256.signer_from_jwk(&impostor).unwrap(), body, &[]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_bad_signature");
    let (rogue, _) = rsa_key("rogue");
    let (sig, digest) = modi_signature(&RS256.signer_from_jwk(&rogue).unwrap(), body, &[]);
    assert_refused(&signed_post(&e, &voucher, &sig, &digest, body).await, "modi_unknown_kid");
    // PDND's own key signs vouchers, not ModI requests: it is not one of INPS's keys.
    let (sig, digest) = modi_signature(&pdnd_signer, body, &[]);
    let res = signed_post(&e, &voucher, &sig, &digest, body).await;
    assert_refused(&res, "modi_unknown_kid");
    assert!(res.2["detail"].as_str().unwrap().contains("not one registered for the calling client"), "{:?}", res.2);

    let (sig, _) = modi_signature(&signer, body, &[]);
    let headers =
        [("authorization", format!("Bearer {voucher}")), ("agid-jwt-signature", sig), ("content-type", "application/json".into())];
    assert_refused(&send(&e.app, "POST", "/whoami", &headers, body).await, "modi_missing_digest");

    // The ledger is shared through the store and purged once expired.
    let n = |s: &EdgeStore| {
        let pool = s.pool().clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM modi_jti").fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(n(&e.edge).await, 1);
    assert!(e.edge.remember_jti("x", "old", now() - 10, now()).await.unwrap());
    assert!(e.edge.remember_jti("x", "live", now() + 100, now()).await.unwrap());
    assert!(!e.edge.remember_jti("x", "live", now() + 100, now()).await.unwrap());
    // An id whose earlier use has expired may be recorded again.
    assert!(e.edge.remember_jti("x", "old", now() + 100, now()).await.unwrap());
    assert!(e.edge.remember_jti("x", "gone", now() - 10, now()).await.unwrap());
    assert_eq!(e.edge.purge_jtis(now()).await.unwrap(), 1);
    assert_eq!(n(&e.edge).await, 3);
}

/// A ModI signature counts only for the client that signed it: another registered client's
/// key does not sign for INPS, a client without keys and a hub caller token cannot sign at
/// all, and a client authenticated by access token or certificate signs with its own keys.
#[tokio::test]
async fn modi_signature_must_be_by_the_calling_clients_own_key() {
    let e = env().await;
    register_pdnd_client(&e).await;
    let pdnd_signer = RS256.signer_from_jwk(&e.pdnd_private).unwrap();
    let inps_voucher = sign(&pdnd_signer, KID, voucher_claims());
    let body = br#"{"esiti":[]}"#;

    // A second PDND consumer with its own ModI key.
    let (other_private, other_public) = rsa_key("regione-modi-1");
    let (other, _) = e
        .registry
        .create(NewClient {
            name: "Regione".into(),
            ente: "H501".into(),
            roles: vec![Role::Statistica],
            purpose: "statistiche".into(),
            pdnd_client_id: Some("regione-pdnd".into()),
            pdnd_purpose_id: Some("purpose-42".into()),
            modi_jwks: Some(other_public.to_string()),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let other_signer = RS256.signer_from_jwk(&other_private).unwrap();
    let other_voucher =
        sign(&pdnd_signer, KID, with(with(voucher_claims(), "client_id", json!("regione-pdnd")), "sub", json!("regione-pdnd")));
    // Its signature on INPS's voucher: refused, though the key is registered (to the other).
    let (sig, digest) = modi_signature(&other_signer, body, &[]);
    assert_refused(&signed_post(&e, &inps_voucher, &sig, &digest, body).await, "modi_unknown_kid");
    // INPS's signature on the other client's voucher: refused too.
    let inps_signer = RS256.signer_from_jwk(&e.inps_private).unwrap();
    let (sig, digest) = modi_signature(&inps_signer, body, &[]);
    assert_refused(&signed_post(&e, &other_voucher, &sig, &digest, body).await, "modi_unknown_kid");
    // Each with its own: accepted (the jti ledger is per client, so the same jti from two
    // clients does not collide).
    let jti = json!(uuid::Uuid::new_v4().to_string());
    let (sig, digest) = modi_signature(&other_signer, body, &[("jti", jti.clone()), ("iss", json!("regione-pdnd"))]);
    let (status, _, who) = signed_post(&e, &other_voucher, &sig, &digest, body).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["subject"], other.client_id);
    let (sig, digest) = modi_signature(&inps_signer, body, &[("jti", jti)]);
    let (status, _, _) = signed_post(&e, &inps_voucher, &sig, &digest, body).await;
    assert_eq!(status, StatusCode::OK);

    // A PDND client registered without ModI keys: its voucher is fine, its signatures are not.
    e.registry
        .create(NewClient {
            name: "senza chiavi".into(),
            ente: "H501".into(),
            roles: vec![Role::Consultazione],
            purpose: "x".into(),
            pdnd_client_id: Some("nokeys-pdnd".into()),
            pdnd_purpose_id: Some("purpose-42".into()),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let nokeys_voucher =
        sign(&pdnd_signer, KID, with(with(voucher_claims(), "client_id", json!("nokeys-pdnd")), "sub", json!("nokeys-pdnd")));
    assert_eq!(with_bearer(&e, &nokeys_voucher).await.0, StatusCode::OK);
    let (sig, digest) = modi_signature(&inps_signer, body, &[]);
    let res = signed_post(&e, &nokeys_voucher, &sig, &digest, body).await;
    assert_refused(&res, "modi_no_client_keys");

    // A hub caller token is no registered client: no keys, refused the same way.
    let hub_token = system_hub_token(&e, "script");
    let (sig, digest) = modi_signature(&inps_signer, body, &[]);
    assert_refused(&signed_post(&e, &hub_token, &sig, &digest, body).await, "modi_no_client_keys");

    // An OAuth client with ModI keys: its access token and its own signature pass, another's
    // key does not, and a replay is refused.
    let (app_private, app_public) = rsa_key("app-modi-1");
    let (app, secret) = e
        .registry
        .create(NewClient {
            name: "Cartella app".into(),
            ente: "H501".into(),
            ufficio: Some("M03".into()),
            roles: vec![Role::Operatore],
            purpose: "presa in carico".into(),
            with_secret: true,
            modi_jwks: Some(jwks_json(&[&app_public])),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let (status, _, tok) = token_request(&e, Some(basic(&app.client_id, secret.unwrap().expose())), "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::OK, "{tok}");
    let access = tok["access_token"].as_str().unwrap().to_string();
    let app_signer = RS256.signer_from_jwk(&app_private).unwrap();
    let (sig, digest) = modi_signature(&app_signer, body, &[("iss", json!(app.client_id))]);
    let (status, _, who) = signed_post(&e, &access, &sig, &digest, body).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["subject"], app.client_id);
    assert_refused(&signed_post(&e, &access, &sig, &digest, body).await, "modi_replay");
    let (sig, digest) = modi_signature(&inps_signer, body, &[]);
    assert_refused(&signed_post(&e, &access, &sig, &digest, body).await, "modi_unknown_kid");

    // An mTLS client: its certificate picks the keys.
    let der = b"the certificate of an mTLS client".to_vec();
    let (tls_private, tls_public) = rsa_key("tls-modi-1");
    e.registry
        .create(NewClient {
            name: "mTLS".into(),
            ente: "H501".into(),
            roles: vec![Role::Statistica],
            purpose: "statistiche".into(),
            cert_sha256: Some(cert_fingerprint(&der)),
            modi_jwks: Some(jwks_json(&[&tls_public])),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let presented = |sig: String, digest: String| {
        let mut h = HeaderMap::new();
        h.insert("agid-jwt-signature", HeaderValue::from_str(&sig).unwrap());
        h.insert("digest", HeaderValue::from_str(&digest).unwrap());
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h
    };
    let tls_signer = RS256.signer_from_jwk(&tls_private).unwrap();
    let (sig, digest) = modi_signature(&tls_signer, body, &[("iss", Value::Null)]);
    let h = presented(sig, digest);
    let p = Presented { headers: &h, method: "POST", path: "/x", body: Some(body), client_cert: Some(&der) };
    assert!(e.auth.authenticate(&p).await.is_ok());
    let (sig, digest) = modi_signature(&app_signer, body, &[]);
    let h = presented(sig, digest);
    let p = Presented { headers: &h, method: "POST", path: "/x", body: Some(body), client_cert: Some(&der) };
    assert_eq!(e.auth.authenticate(&p).await.unwrap_err().reason(), "modi_unknown_kid");

    // Rotation: INPS's new key replaces the old one.
    let (new_private, new_public) = rsa_key("inps-modi-key-2");
    let inps = e.registry.by_pdnd_id(PDND_CLIENT).await.unwrap().unwrap();
    e.registry.set_modi_jwks(&inps.client_id, Some(&new_public.to_string())).await.unwrap();
    let (sig, digest) = modi_signature(&inps_signer, body, &[]);
    assert_refused(&signed_post(&e, &inps_voucher, &sig, &digest, body).await, "modi_unknown_kid");
    let (sig, digest) = modi_signature(&RS256.signer_from_jwk(&new_private).unwrap(), body, &[]);
    assert_eq!(signed_post(&e, &inps_voucher, &sig, &digest, body).await.0, StatusCode::OK);
    assert!(e.registry.set_modi_jwks(&inps.client_id, Some(&new_private.to_string())).await.is_err());
}

/// Registration refuses ModI key sets that are not RSA public keys with a kid, through the
/// registry and through `sigess client add --modi-jwks`.
#[tokio::test]
async fn client_registration_refuses_private_or_unusable_modi_keys() {
    let e = env().await;
    let new = |jwks: String| NewClient {
        name: "INPS".into(),
        ente: "H501".into(),
        roles: vec![Role::Consultazione],
        purpose: "SIUSS".into(),
        pdnd_client_id: Some(PDND_CLIENT.into()),
        pdnd_purpose_id: Some("purpose-42".into()),
        modi_jwks: Some(jwks),
        ..NewClient::default()
    };
    for (jwks, says) in [
        (e.inps_private.to_string(), "private key"),
        (jwks_json(&[&e.inps_public, &e.inps_private]), "private key"),
        (r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.to_string(), "no kid"),
        ("{not json".to_string(), "not JSON"),
    ] {
        match e.registry.create(new(jwks)).await {
            Err(gateway::auth::RegistryError::Invalid(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("expected a refusal saying {says:?}, got {other:?}"),
        }
    }
    assert!(e.registry.list().await.unwrap().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let add = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sigess"))
            .args(["client", "add", "--edge-database-url", &db, "--name", "INPS SIUSS"])
            .args(["--roles", "siuss", "--purpose", "alimentazione SIUSS"])
            .args(["--pdnd-client-id", PDND_CLIENT, "--pdnd-purpose-id", "purpose-42", "--modi-jwks"])
            .arg(file)
            .output()
            .unwrap()
    };
    let private = dir.path().join("private.json");
    std::fs::write(&private, e.inps_private.to_string()).unwrap();
    let out = add(&private);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("private key") && err.contains("private.json"), "{err}");
    let public = dir.path().join("public.json");
    std::fs::write(&public, jwks_json(&[&e.inps_public])).unwrap();
    let out = add(&public);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = EdgeStore::open(&db, 1).await.unwrap();
    let c = store.client_by_pdnd_id(PDND_CLIENT).await.unwrap().unwrap();
    let keys = JwkSet::from_bytes(c.modi_jwks.unwrap().as_bytes()).unwrap();
    assert_eq!(keys.get(INPS_KID).len(), 1);
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn token_request(e: &Env, auth: Option<String>, form: &str) -> (StatusCode, HeaderMap, Value) {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded".to_string())];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    send(&e.app, "POST", "/oauth/token", &headers, form.as_bytes()).await
}

#[tokio::test]
async fn client_credentials_issue_tokens_the_gateway_accepts() {
    let e = env().await;
    let (client, secret) = e
        .registry
        .create(NewClient {
            name: "Cartella app M03".into(),
            ente: "H501".into(),
            ufficio: Some("M03".into()),
            roles: vec![Role::Operatore, Role::Consultazione],
            purpose: "presa in carico".into(),
            with_secret: true,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let secret = secret.unwrap();
    let secret = secret.expose();

    // Only an Argon2id PHC string is stored.
    let stored: String = sqlx::query_scalar("SELECT secret_hash FROM hub_client WHERE client_id = $1")
        .bind(&client.client_id)
        .fetch_one(e.edge.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
    assert!(!stored.contains(secret));
    assert!(!format!("{client:?}").contains(&stored));

    let (status, headers, body) = token_request(&e, Some(basic(&client.client_id, secret)), "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "operatore consultazione");
    let token = body["access_token"].as_str().unwrap().to_string();
    let (status, _, who) = with_bearer(&e, &token).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["subject"], client.client_id);
    assert_eq!((who["ente"].as_str(), who["ufficio"].as_str()), (Some("H501"), Some("M03")));

    // Client id and secret as form fields, with a narrower scope.
    let form = format!("grant_type=client_credentials&client_id={}&client_secret={secret}&scope=consultazione", client.client_id);
    let (status, _, body) = token_request(&e, None, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, who) = with_bearer(&e, body["access_token"].as_str().unwrap()).await;
    assert_eq!(who["roles"], json!(["consultazione"]));

    let (status, headers, body) = token_request(&e, Some(basic(&client.client_id, "wrong-secret")), "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert!(body["error_description"].is_string());
    let (status, _, body) = token_request(&e, Some(basic("no-such-client", secret)), "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, _, body) = token_request(&e, None, "grant_type=client_credentials").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, _, body) = token_request(&e, Some(basic(&client.client_id, secret)), "grant_type=password").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let (status, _, body) = token_request(&e, Some(basic(&client.client_id, secret)), "scope=operatore").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let (status, _, body) =
        token_request(&e, Some(basic(&client.client_id, secret)), "grant_type=client_credentials&scope=statistica").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (status, _, body) = send(&e.app, "POST", "/oauth/token", &[("content-type", "application/json".into())], b"{}").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    // The access token is for the gateway only: core's verifier refuses it.
    assert!(e.hub.verifier().unwrap().verify(&token, "").is_err());
    // A signature that does not match is refused, as is a disabled client's token.
    let mut forged = token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    assert_refused(&with_bearer(&e, &forged).await, "bad_signature");
    e.registry.set_disabled(&client.client_id, true).await.unwrap();
    assert_refused(&with_bearer(&e, &token).await, "client_disabled");
    let (status, _, _) = token_request(&e, Some(basic(&client.client_id, secret)), "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Rotation: the old secret stops working, the new one works.
    e.registry.set_disabled(&client.client_id, false).await.unwrap();
    let fresh = e.registry.rotate_secret(&client.client_id).await.unwrap();
    let (status, _, _) = token_request(&e, Some(basic(&client.client_id, secret)), "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = token_request(&e, Some(basic(&client.client_id, fresh.expose())), "grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn hub_caller_tokens_and_registered_certificates_still_authenticate() {
    let e = env().await;
    let caller = Caller {
        kind: CallerKind::Operatore,
        subject: "op-7".into(),
        ente: "H501".into(),
        ufficio: Some("M02".into()),
        roles: vec![Role::Operatore],
        purpose: "presa in carico".into(),
        request_id: String::new(),
    };
    let t = e.hub.mint(&caller, Duration::from_secs(60)).unwrap();
    // Not at an edge that did not enable them: they can name any ente, ufficio and roles.
    let edge = Authenticator::new(e.hub.verifier().unwrap()).with_clients(e.registry.clone());
    let closed = Router::new().route("/whoami", get(whoami)).route_layer(middleware::from_fn_with_state(edge, require_caller));
    assert_refused(&send(&closed, "GET", "/whoami", &[("authorization", format!("Bearer {t}"))], b"").await, "hub_token_not_accepted");
    let (status, _, who) = with_bearer(&e, &t).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((who["subject"].as_str(), who["sistema"].as_bool()), (Some("op-7"), Some(false)));

    let der = b"a DER certificate as the TLS layer hands it over".to_vec();
    let (client, _) = e
        .registry
        .create(NewClient {
            name: "Regione Lazio FSE".into(),
            ente: "H501".into(),
            roles: vec![Role::Statistica],
            purpose: "statistiche".into(),
            cert_sha256: Some(cert_fingerprint(&der).to_uppercase()),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let headers = HeaderMap::new();
    let presented = Presented { headers: &headers, method: "GET", path: "/x", body: Some(b""), client_cert: Some(&der) };
    let c = e.auth.authenticate(&presented).await.unwrap();
    assert_eq!((c.subject.as_str(), c.roles.as_slice()), (client.client_id.as_str(), &[Role::Statistica][..]));
    // An unregistered certificate falls through to the bearer token, here missing.
    let other = b"another certificate".to_vec();
    let presented = Presented { headers: &headers, method: "GET", path: "/x", body: Some(b""), client_cert: Some(&other) };
    assert_eq!(e.auth.authenticate(&presented).await.unwrap_err().reason(), "missing_credentials");

    // Registering the same certificate twice is refused.
    let dup = e
        .registry
        .create(NewClient {
            name: "dup".into(),
            ente: "H501".into(),
            roles: vec![Role::Statistica],
            cert_sha256: Some(cert_fingerprint(&der)),
            ..NewClient::default()
        })
        .await;
    assert!(dup.is_err());
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Basic Zm9vOmJhcg=="));
    let presented = Presented { headers: &h, method: "GET", path: "/x", body: Some(b""), client_cert: None };
    assert_eq!(e.auth.authenticate(&presented).await.unwrap_err().reason(), "malformed_token");
}

#[tokio::test]
async fn key_set_over_http_is_reloaded_for_a_new_kid() {
    let (k1, p1) = rsa_key("k1");
    let (k2, p2) = rsa_key("k2");
    let served = std::sync::Arc::new(std::sync::Mutex::new(json!({ "keys": [serde_json::to_value(p1.as_ref()).unwrap()] })));
    let s = served.clone();
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let v = s.lock().unwrap().clone();
            async move { Json(v) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let source: JwksSource = format!("http://{addr}/jwks").parse().unwrap();
    assert!("http://pdnd.example/jwks".parse::<JwksSource>().is_err());
    let mut cfg = PdndConfig::new(source, AUD);
    cfg.issuer = Some(ISS.into());
    let pdnd = PdndVerifier::from_config(cfg).await.unwrap();
    let t1 = sign(&RS256.signer_from_jwk(&k1).unwrap(), "k1", voucher_claims());
    assert_eq!(pdnd.verify_voucher(&t1).await.unwrap().purpose_id, "purpose-42");

    // PDND rotates: the new key is published and a voucher names it.
    served.lock().unwrap()["keys"].as_array_mut().unwrap().push(serde_json::to_value(p2.as_ref()).unwrap());
    let t2 = sign(&RS256.signer_from_jwk(&k2).unwrap(), "k2", voucher_claims());
    let v = pdnd.verify_voucher(&t2).await.unwrap();
    assert_eq!(v.client_id, PDND_CLIENT);
}

#[tokio::test]
async fn refusals_through_post_are_never_server_errors() {
    let e = env().await;
    for token in ["", "Bearer", "Bearer .", "Bearer a.b", "Token abc"] {
        let res = send(&e.app, "POST", "/whoami", &[("authorization", token.to_string())], b"x").await;
        assert_eq!(res.0, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let res = send(&e.app, "POST", "/oauth/token", &[("content-type", "application/x-www-form-urlencoded".into())], b"%%%").await;
    assert!(res.0.is_client_error());
}

/// The registry and the jti ledger on PostgreSQL (the SQL is shared; the migrations and the
/// upsert semantics are what differ). Skips outside CI when PostgreSQL is not reachable.
#[tokio::test]
async fn registry_and_jti_ledger_on_postgres() {
    let Some(db) = TestDb::postgres("sigess_auth").await else { return };
    let store = EdgeStore::open(&db.url, 4).await.unwrap();
    let registry = ClientRegistry::new(store.clone());
    let (c, secret) = registry
        .create(NewClient {
            name: "INPS".into(),
            ente: "H501".into(),
            roles: vec![Role::Consultazione, Role::Statistica],
            purpose: "SIUSS".into(),
            with_secret: true,
            pdnd_client_id: Some(PDND_CLIENT.into()),
            pdnd_purpose_id: Some("purpose-42".into()),
            modi_jwks: Some(jwks_json(&[&rsa_key(INPS_KID).1])),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let found = registry.by_pdnd_id(PDND_CLIENT).await.unwrap().unwrap();
    let keys = JwkSet::from_bytes(found.modi_jwks.as_deref().unwrap().as_bytes()).unwrap();
    assert_eq!(keys.get(INPS_KID).len(), 1);
    let (_, rotated) = rsa_key("inps-modi-key-2");
    registry.set_modi_jwks(&c.client_id, Some(&rotated.to_string())).await.unwrap();
    let found = registry.find(&c.client_id).await.unwrap().unwrap();
    let keys = JwkSet::from_bytes(found.modi_jwks.as_deref().unwrap().as_bytes()).unwrap();
    assert_eq!((keys.get(INPS_KID).len(), keys.get("inps-modi-key-2").len()), (0, 1));
    assert_eq!((found.client_id.as_str(), found.roles.len()), (c.client_id.as_str(), 2));
    assert!(registry.authenticate_secret(&c.client_id, secret.unwrap().expose()).await.is_ok());
    assert!(registry.authenticate_secret(&c.client_id, "nope").await.is_err());
    let dup = NewClient {
        ente: "H501".into(),
        roles: vec![Role::Statistica],
        pdnd_client_id: Some(PDND_CLIENT.into()),
        pdnd_purpose_id: Some("purpose-42".into()),
        ..NewClient::default()
    };
    assert!(matches!(registry.create(dup).await, Err(gateway::auth::RegistryError::Invalid(_))));

    let t = now();
    assert!(store.remember_jti("iss", "j1", t + 100, t).await.unwrap());
    assert!(!store.remember_jti("iss", "j1", t + 100, t).await.unwrap());
    assert!(store.remember_jti("iss", "j2", t - 5, t).await.unwrap());
    assert!(store.remember_jti("iss", "j2", t + 100, t).await.unwrap());
    assert!(store.remember_jti("iss", "j3", t - 5, t).await.unwrap());
    assert_eq!(store.purge_jtis(t).await.unwrap(), 1);
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test]
async fn waas_admits_only_pdnd_vouchers_when_pdnd_is_configured() {
    let e = env().await;
    register_pdnd_client(&e).await;
    // WaaS reaches core's SIUSS ledger through core's gRPC routes, as the gateway does.
    let routes = core_cartella::server::routes(&e.store, e.hub.verifier().unwrap()).await.unwrap();
    let waas = gateway::waas::router(
        gateway::core_link::CoreLink::in_process(routes, e.hub.clone()),
        e.auth.clone(),
        gateway::stack::limit::Limiter::new(gateway::stack::limit::RateConfig::default()),
    );
    let get = |h: Vec<(&'static str, String)>| {
        let waas = waas.clone();
        async move { send(&waas, "GET", "/waas/v1/status", &h, b"").await }
    };
    let signer = RS256.signer_from_jwk(&e.pdnd_private).unwrap();
    let voucher = sign(&signer, KID, voucher_claims());
    let (status, _, body) = get(vec![("authorization", format!("Bearer {voucher}"))]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The same ente-wide reader, but with a hub token: refused, the voucher is required.
    let t = system_hub_token(&e, "inps");
    let (status, headers, body) = get(vec![("authorization", format!("Bearer {t}"))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body["detail"].as_str().unwrap().contains("voucher PDND"), "{body}");

    let (status, _, _) = get(vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // INPS's own PDND client, with a voucher PDND issued for another of its purposes.
    let other_purpose = sign(&signer, KID, with(voucher_claims(), "purposeId", json!("purpose-7")));
    let res = get(vec![("authorization", format!("Bearer {other_purpose}"))]).await;
    assert_refused(&res, "pdnd_purpose_mismatch");

    // An ente-wide reader with a valid voucher of its own, but not registered for SIUSS.
    e.registry
        .create(NewClient {
            name: "Osservatorio regionale".into(),
            ente: "H501".into(),
            roles: vec![Role::Consultazione, Role::Statistica],
            purpose: "programmazione".into(),
            pdnd_client_id: Some("reader-pdnd".into()),
            pdnd_purpose_id: Some("purpose-42".into()),
            ..NewClient::default()
        })
        .await
        .unwrap();
    let reader = sign(&signer, KID, with(with(voucher_claims(), "client_id", json!("reader-pdnd")), "sub", json!("reader-pdnd")));
    let (status, _, body) = get(vec![("authorization", format!("Bearer {reader}"))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("siuss"), "{body}");

    // A PDND client must be registered with its purpose, and only a PDND client has one.
    let half = |pdnd: Option<&str>, purpose: Option<&str>| NewClient {
        name: "x".into(),
        ente: "H501".into(),
        roles: vec![Role::Siuss],
        purpose: "x".into(),
        with_secret: true,
        pdnd_client_id: pdnd.map(Into::into),
        pdnd_purpose_id: purpose.map(Into::into),
        ..NewClient::default()
    };
    for (pdnd, purpose) in [(Some("p-1"), None), (None, Some("purpose-1"))] {
        match e.registry.create(half(pdnd, purpose)).await {
            Err(gateway::auth::RegistryError::Invalid(m)) => assert!(m.contains("pdnd_purpose_id"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// `/oauth/token` with tight bounds, over the same registry.
fn bounded_token_endpoint(e: &Env, limits: gateway::auth::oauth::TokenLimits) -> Router {
    let tokens = AccessTokens::load(&e._dir.path().join("hub-signing-key.pem"), Duration::from_secs(900)).unwrap();
    oauth_router(e.registry.clone(), tokens, limits)
}

fn limits(concurrent: usize, wait_ms: u64, source: (u32, u32), client: (u32, u32)) -> gateway::auth::oauth::TokenLimits {
    use gateway::stack::limit::RateConfig;
    gateway::auth::oauth::TokenLimits {
        concurrent_checks: concurrent,
        check_wait: Duration::from_millis(wait_ms),
        per_source: RateConfig { per_minute: source.0, burst: source.1 },
        per_client: RateConfig { per_minute: client.0, burst: client.1 },
    }
}

async fn token_at(app: &Router, id: &str, secret: &str) -> (StatusCode, HeaderMap, Value) {
    let headers = [("content-type", "application/x-www-form-urlencoded".to_string()), ("authorization", basic(id, secret))];
    send(app, "POST", "/oauth/token", &headers, b"grant_type=client_credentials").await
}

#[tokio::test]
async fn token_requests_are_limited_per_client_id_and_per_source_before_any_hashing() {
    let e = env().await;
    // Per client id: three tries, then 429 with Retry-After; another id is not affected.
    let app = bounded_token_endpoint(&e, limits(2, 2000, (1000, 1000), (1, 3)));
    for _ in 0..3 {
        assert_eq!(token_at(&app, "guessed-client", "x").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = token_at(&app, "guessed-client", "x").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(token_at(&app, "another-client", "x").await.0, StatusCode::UNAUTHORIZED);

    // Per source: five requests naming five different ids, then 429 whatever the id.
    let app = bounded_token_endpoint(&e, limits(2, 2000, (1, 5), (1000, 1000)));
    for i in 0..5 {
        assert_eq!(token_at(&app, &format!("id-{i}"), "x").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, _) = token_at(&app, "id-new", "x").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));

    // Over-long credentials are refused without being hashed or counted as a check.
    let app = bounded_token_endpoint(&e, limits(1, 1, (1000, 1000), (1000, 1000)));
    assert_eq!(token_at(&app, &"c".repeat(129), "x").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(token_at(&app, "c", &"s".repeat(257)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn secret_checks_run_a_few_at_a_time_and_the_rest_get_503_not_memory() {
    let e = env().await;
    let (client, secret) = e
        .registry
        .create(NewClient {
            name: "App M05".into(),
            ente: "H501".into(),
            ufficio: Some("M05".into()),
            roles: vec![Role::Operatore],
            purpose: "gestione".into(),
            with_secret: true,
            ..NewClient::default()
        })
        .await
        .unwrap();
    let secret = secret.unwrap().expose().to_string();
    // One check at a time, and a request waits at most 1 ms for it: of 24 bad requests at
    // once, most are answered 503 with Retry-After instead of each hashing.
    let app = bounded_token_endpoint(&e, limits(1, 1, (10_000, 10_000), (10_000, 10_000)));
    let answers = futures::future::join_all((0..24).map(|i| {
        let app = app.clone();
        async move { token_at(&app, &format!("flood-{i}"), "bad").await }
    }))
    .await;
    let unavailable = answers.iter().filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE).count();
    let refused = answers.iter().filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED).count();
    assert_eq!(unavailable + refused, 24, "only 401 or 503: {:?}", answers.iter().map(|a| a.0).collect::<Vec<_>>());
    assert!(unavailable >= 12, "most of the flood waits for no hashing: {unavailable} of 24 got 503");
    assert!(answers.iter().filter(|a| a.0 == StatusCode::SERVICE_UNAVAILABLE).all(|a| a.1.contains_key("retry-after")));
    // Once the flood is over, the real client gets its token.
    let (status, _, body) = token_at(&app, &client.client_id, &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_key_set_outage_serves_the_stale_set_with_one_reload_in_flight() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (k1, p1) = rsa_key("k1");
    let set = json!({ "keys": [serde_json::to_value(p1.as_ref()).unwrap()] });
    let hang = std::sync::Arc::new(AtomicBool::new(false));
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let (h, f) = (hang.clone(), fetches.clone());
    let app = Router::new().route(
        "/jwks",
        get(move || {
            let (set, hang) = (set.clone(), h.load(Ordering::SeqCst));
            f.fetch_add(1, Ordering::SeqCst);
            async move {
                if hang {
                    // Longer than the fetch timeout: PDND is down and the connection hangs.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Json(set)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cfg = PdndConfig::new(format!("http://{addr}/jwks").parse().unwrap(), AUD);
    cfg.issuer = Some(ISS.into());
    cfg.refresh = Duration::from_millis(500);
    let pdnd = PdndVerifier::from_config(cfg).await.unwrap();
    let token = sign(&RS256.signer_from_jwk(&k1).unwrap(), "k1", voucher_claims());
    pdnd.verify_voucher(&token).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The set goes stale while the key-set endpoint hangs: 50 checks at once all answer
    // from the stale set, without one of them waiting for the fetch (5 s timeout), and one
    // reload is tried, not fifty.
    hang.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = std::time::Instant::now();
    let results = futures::future::join_all((0..50).map(|_| pdnd.verify_voucher(&token))).await;
    let took = started.elapsed();
    assert!(results.iter().all(Result::is_ok));
    assert!(took < Duration::from_secs(3), "the checks waited for the hanging fetch: {took:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one background reload for the whole burst");
    // Later checks during the outage still answer at once and start no second reload
    // while the first is in flight.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        pdnd.verify_voucher(&token).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_read() {
    let e = env().await;
    // A body that never arrives (a slow client): without credentials the answer is 401 at
    // once, since the body is not read for a caller nobody knows.
    let never = Body::from_stream(futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>());
    let req = Request::builder().method("POST").uri("/whoami").header("content-type", "application/json").body(never).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), e.app.clone().oneshot(req)).await.expect("answered without the body").unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A known caller without a signature: its body is passed on unread, so the handler
    // gets it as it streams (here whoami ignores it and answers).
    let token = system_hub_token(&e, "script");
    let never = Body::from_stream(futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>());
    let req = Request::builder().method("POST").uri("/whoami").header("authorization", format!("Bearer {token}")).body(never).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), e.app.clone().oneshot(req)).await.expect("not buffered").unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A signature over a body that was not read (the gRPC ingress streams it): refused, not
    // verified over an empty body.
    register_pdnd_client(&e).await;
    let voucher = sign(&RS256.signer_from_jwk(&e.pdnd_private).unwrap(), KID, voucher_claims());
    let (sig, digest) = modi_signature(&RS256.signer_from_jwk(&e.inps_private).unwrap(), b"", &[]);
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_str(&format!("Bearer {voucher}")).unwrap());
    h.insert("agid-jwt-signature", HeaderValue::from_str(&sig).unwrap());
    h.insert("digest", HeaderValue::from_str(&digest).unwrap());
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    let p = Presented { headers: &h, method: "POST", path: "/cartella.v1.CartellaService/GetPersona", body: None, client_cert: None };
    assert_eq!(e.auth.authenticate(&p).await.unwrap_err().reason(), "modi_body_not_signable");
}
