//! Operator sessions without a provider: expiry (idle and absolute), CSRF on writes and on
//! logout, ids that only the server issues, and log lines free of tokens, codes and
//! fiscal numbers.
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Request, StatusCode, header},
};
use spid_cie::{
    OperatorIdentity, Rp, RpConfig, SessionRefused,
    jose::now,
    keys::RpKeys,
    session::digest,
    store::{MemoryStore, Session},
};
use tower::ServiceExt;

const RP: &str = "http://127.0.0.1:18999/oidc/rp/";

async fn rp() -> (MemoryStore, Rp) {
    let store = MemoryStore::default();
    store.add_operator(
        "VRDLGU75B12H501Z",
        OperatorIdentity {
            operator_id: "op-m03-7".into(),
            ente: "H501".into(),
            ufficio: Some("M03".into()),
            roles: vec!["operatore".into(), "statistica".into()],
            disabled: false,
        },
    );
    let mut cfg = RpConfig::new(RP, "http://127.0.0.1:18998/");
    cfg.allow_http_loopback = true;
    cfg.cookie_secure = false;
    cfg.idle_timeout = Duration::from_secs(600);
    let rp = Rp::with_keys(cfg, RpKeys::generate().expect("keys"), Arc::new(store.clone())).expect("rp");
    (store, rp)
}

async fn session(rp: &Rp, sid: &str, last_seen_ago: i64, expires_in: i64) {
    let t = now();
    rp.store()
        .insert_session(&Session {
            id_hash: digest(sid),
            operator_id: "op-m03-7".into(),
            csrf_token: "csrf-0123456789".into(),
            provider: "http://127.0.0.1:18997/oidc/op/".into(),
            access_token: None,
            created_at: t - last_seen_ago,
            last_seen: t - last_seen_ago,
            expires_at: t + expires_in,
        })
        .await
        .expect("session");
}

fn cookie(rp: &Rp, sid: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {}={sid}", rp.session_cookie_name())).expect("hv"));
    h
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn session_to_caller_with_timeouts_and_csrf() {
    // Tests here share tracing's global callsite cache: run them one at a time.
    let _serial = SERIAL.lock().await;
    let (store, rp) = rp().await;
    assert_eq!(rp.session_operator(&HeaderMap::new(), "GET").await, Ok(None), "no cookie: other credentials apply");

    session(&rp, "live", 10, 3600).await;
    let c = rp.session_operator(&cookie(&rp, "live"), "GET").await.expect("ok").expect("operator");
    assert_eq!((c.operator_id.as_str(), c.ente.as_str(), c.ufficio.as_deref()), ("op-m03-7", "H501", Some("M03")));
    assert_eq!(c.roles, ["operatore", "statistica"]);

    // Writes need the CSRF token as a header.
    assert_eq!(rp.session_operator(&cookie(&rp, "live"), "POST").await, Err(SessionRefused::Csrf));
    let mut h = cookie(&rp, "live");
    h.insert("x-csrf-token", HeaderValue::from_static("csrf-wrong"));
    assert_eq!(rp.session_operator(&h, "PUT").await, Err(SessionRefused::Csrf));
    h.insert("x-csrf-token", HeaderValue::from_static("csrf-0123456789"));
    assert!(rp.session_operator(&h, "PUT").await.expect("ok").is_some());

    // Idle too long: refused and gone.
    session(&rp, "idle", 601, 3600).await;
    assert_eq!(rp.session_operator(&cookie(&rp, "idle"), "GET").await, Err(SessionRefused::Expired));
    assert!(rp.store().session(&digest("idle")).await.expect("q").is_none());
    // Past the absolute end, even if used a second ago.
    session(&rp, "old", 1, -1).await;
    assert_eq!(rp.session_operator(&cookie(&rp, "old"), "GET").await, Err(SessionRefused::Expired));
    // An id the server never issued (planted by someone) is nobody's session.
    assert_eq!(rp.session_operator(&cookie(&rp, "planted"), "GET").await, Err(SessionRefused::Unknown));
    // A disabled operator's sessions end.
    store.set_disabled("op-m03-7", true);
    assert_eq!(rp.session_operator(&cookie(&rp, "live"), "GET").await, Err(SessionRefused::Unknown));
}

async fn call(rp: &Rp, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let res = rp.router().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn logout(rp: &Rp, sid: &str, form: &str) -> Request<Body> {
    Request::post("/oidc/rp/logout")
        .header(header::COOKIE, format!("{}={sid}", rp.session_cookie_name()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .expect("req")
}

#[tokio::test]
async fn logout_needs_the_csrf_token() {
    // Tests here share tracing's global callsite cache: run them one at a time.
    let _serial = SERIAL.lock().await;
    let (_d, rp) = rp().await;
    session(&rp, "s1", 0, 3600).await;
    let (status, _, page) = call(
        &rp,
        Request::get("/oidc/rp/").header(header::COOKIE, format!("{}=s1", rp.session_cookie_name())).body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"name="csrf_token" value="csrf-0123456789""#), "the logout form carries the token");

    for form in ["", "csrf_token=", "csrf_token=csrf-0123456780"] {
        let (status, _, _) = call(&rp, logout(&rp, "s1", form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(rp.store().session(&digest("s1")).await.expect("q").is_some(), "session survives a forged logout");
    }
    let (status, headers, _) = call(&rp, logout(&rp, "s1", "csrf_token=csrf-0123456789")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(
        set.starts_with("sigess_rp_session=;") && set.contains("Max-Age=0") && set.contains("HttpOnly") && set.contains("SameSite=Lax")
    );
    assert!(rp.store().session(&digest("s1")).await.expect("q").is_none());
}

#[tokio::test]
async fn secure_cookie_and_entity_configuration() {
    // Tests here share tracing's global callsite cache: run them one at a time.
    let _serial = SERIAL.lock().await;
    let store: Arc<MemoryStore> = Arc::default();
    let mut cfg = RpConfig::new("https://sigess.example.org/oidc/rp/", "https://ta.example.org/");
    cfg.cookie_secure = false;
    assert!(Rp::with_keys(cfg.clone(), RpKeys::generate().expect("k"), store.clone()).is_err(), "no plain cookie on https");
    cfg.cookie_secure = true;
    let rp = Rp::with_keys(cfg, RpKeys::generate().expect("k"), store).expect("rp");
    assert_eq!(rp.session_cookie_name(), "__Host-sigess_rp_session");
    let (status, headers, body) = call(&rp, Request::get("/oidc/rp/.well-known/openid-federation").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/entity-statement+jwt");
    assert_eq!(body.matches('.').count(), 2);
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_log_no_secrets() {
    // Tests here share tracing's global callsite cache: run them one at a time.
    let _serial = SERIAL.lock().await;
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let (_d, rp) = rp().await;
    let code = "CODE-7f3a9d2e1b";
    let state = "STATE-4c8e2a6f0d9b1e3a5c7e9f1b3d5a7c9e";
    let fiscal = "TINIT-VRDLGU75B12H501Z";
    let sid = "SESSION-9a8b7c6d5e4f";
    session(&rp, sid, 0, 3600).await;
    let cb = format!("/oidc/rp/callback?code={code}&state={state}&iss=http://127.0.0.1:18997/oidc/op/&error_description={fiscal}");
    let (status, _, page) =
        call(&rp, Request::get(&cb).header(header::COOKIE, "sigess_rp_login=LOGIN-1a2b3c").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) =
        call(&rp, Request::get(format!("/oidc/rp/authorization?provider=http://127.0.0.1:9/{fiscal}/")).body(Body::empty()).expect("req"))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(&rp, logout(&rp, sid, "csrf_token=nope")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&rp, logout(&rp, sid, "csrf_token=csrf-0123456789")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let log = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
    assert!(log.contains("SPID/CIE login refused"), "refusals are logged: {log}");
    for secret in [code, state, "VRDLGU75B12H501Z", sid, "LOGIN-1a2b3c", "csrf-0123456789"] {
        assert!(!log.contains(secret), "{secret} reached the log");
        assert!(!page.contains(secret), "{secret} echoed in the page");
    }
}

#[tokio::test]
async fn a_logged_in_operator_goes_on_only_to_paths_of_this_site() {
    let _serial = SERIAL.lock().await;
    let (_d, rp) = rp().await;
    session(&rp, "s3", 0, 3600).await;
    let get = |uri: &str, sid: Option<&str>| {
        let mut r = Request::get(uri);
        if let Some(sid) = sid {
            r = r.header(header::COOKIE, format!("{}={sid}", rp.session_cookie_name()));
        }
        r.body(Body::empty()).expect("req")
    };
    let (status, headers, _) = call(&rp, get("/oidc/rp/?next=/console/statistiche", Some("s3"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/console/statistiche"));
    for other in ["https://evil.example/", "//evil.example/", "/%5Cevil.example/", "/a%0D%0ALocation:%20x", "console"] {
        let (status, headers, page) = call(&rp, get(&format!("/oidc/rp/?next={other}"), Some("s3"))).await;
        assert_eq!(status, StatusCode::OK, "{other}");
        assert!(headers.get(header::LOCATION).is_none(), "{other}");
        assert!(page.contains("Sei collegato") && !page.contains("evil"), "{other}");
    }
    // Without a session the login page is shown, whatever the return path.
    let (status, headers, _) = call(&rp, get("/oidc/rp/?next=/console/", None)).await;
    assert_eq!((status, headers.get(header::LOCATION).is_none()), (StatusCode::OK, true));
}
