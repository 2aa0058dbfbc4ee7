//! The web console under `/console`: pages for the people who run the hub (overview, dead
//! letters, INPS flows, statistics, the registro degli accessi, the personas to merge,
//! clients and operators), in Bootstrap Italia, with no external asset and no inline script
//! (strict CSP).
//!
//! Pages are rendered here around one shell (header, navigation by role, footer); their
//! data comes from the browser calling `/api/v1` with the operator's session cookie (and the
//! session's CSRF token on writes), exactly as any SPID/CIE session does. Clients and
//! operators live in the edge store, so their routes (`admin`) are served here and not by
//! core. Assets (`/console/assets/…`) are embedded at build time (`build.rs`).
mod admin;
mod assets;
mod pages;

use axum::{
    Form, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use core_cartella::auth::{Caller, Role};
use serde::Deserialize;

use crate::{
    auth::{Authenticator, Presented},
    edge_store::{EdgeStore, OperatorRecord},
};

pub use pages::Page;

/// Mount point of the console.
pub const BASE: &str = "/console";

/// Everything the console's routes need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Console {
    pub edge: EdgeStore,
    pub auth: Authenticator,
    /// `sigess up --demo`: the login page offers demo sessions.
    pub demo: bool,
}

/// The operators `--demo` registers, one per console role: id, label, role.
pub const DEMO_OPERATORS: [(&str, &str, Role); 4] = [
    ("demo-amministratore", "Amministratore dell'hub", Role::Amministratore),
    ("demo-dpo", "Responsabile della protezione dei dati", Role::Dpo),
    ("demo-statistica", "Statistica (livello conoscitivo)", Role::Statistica),
    ("demo-anagrafe", "Anagrafe (persone da unificare)", Role::Anagrafe),
];

/// Registers the demo operators (ente-wide, fake codici fiscali) unless they exist.
pub async fn seed_demo_operators(edge: &EdgeStore) -> Result<(), crate::edge_store::EdgeStoreError> {
    for (i, (id, _, role)) in DEMO_OPERATORS.iter().enumerate() {
        if edge.operator_record(id).await?.is_some() {
            continue;
        }
        let day = u8::try_from(i + 1).unwrap_or(1);
        let cf = core_cartella::domain::codice_fiscale::compose("Demo", id, 1980, 1, day, false, "H501");
        edge.insert_operator(&OperatorRecord {
            operator_id: (*id).to_string(),
            codice_fiscale: cf,
            ente: core_cartella::demo::ENTE.to_string(),
            ufficio: None,
            roles: vec![*role],
            created_at: String::new(),
            disabled: false,
        })
        .await?;
    }
    Ok(())
}

pub fn router(c: Console) -> Router {
    Router::new()
        .route(BASE, get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(overview))
        .route("/console/accesso", get(login_page))
        .route("/console/accesso-demo", post(demo_login))
        .route("/console/assets/{*name}", get(assets::serve))
        .route("/console/{page}", get(page))
        .merge(admin::router(c.clone()))
        .with_state(c)
}

/// Headers of every console page: a CSP allowing only this origin (images also as `data:`,
/// which Bootstrap Italia's CSS uses for its small icons), no framing, no sniffing, and no
/// caching of pages that show who is logged in.
pub(crate) fn secure(mut r: Response, cache: bool) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if cache { "public, max-age=3600" } else { "no-store" }));
    r
}

/// The operator behind the request's session (or other credential), if any.
pub(crate) async fn who(auth: &Authenticator, headers: &HeaderMap, method: &str, path: &str) -> Option<Caller> {
    let p = Presented { headers, method, path, body: None, client_cert: None };
    auth.authenticate(&p).await.ok()
}

async fn overview(State(c): State<Console>, headers: HeaderMap) -> Response {
    render(&c, &headers, Page::Panoramica).await
}

async fn page(State(c): State<Console>, Path(slug): Path<String>, headers: HeaderMap) -> Response {
    match Page::ALL.into_iter().find(|p| p.slug() == slug) {
        Some(p) => render(&c, &headers, p).await,
        None => secure(pages::not_found().into_response(), false),
    }
}

async fn render(c: &Console, headers: &HeaderMap, p: Page) -> Response {
    match who(&c.auth, headers, "GET", BASE).await {
        Some(caller) => secure(pages::page(p, &caller).into_response(), false),
        None => secure(Redirect::to("/console/accesso").into_response(), false),
    }
}

async fn login_page(State(c): State<Console>, headers: HeaderMap) -> Response {
    let caller = who(&c.auth, &headers, "GET", BASE).await;
    secure(pages::login(c.demo, c.auth.sessions().is_some(), caller.as_ref()).into_response(), false)
}

#[derive(Deserialize)]
struct DemoLogin {
    operatore: String,
}

/// Demo mode only: opens a session for one of the demo operators.
async fn demo_login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<DemoLogin>) -> Response {
    let Some(rp) = c.auth.sessions().filter(|_| c.demo) else {
        return secure((StatusCode::NOT_FOUND, "not found").into_response(), false);
    };
    if !DEMO_OPERATORS.iter().any(|(id, _, _)| *id == f.operatore) {
        return secure(pages::login_error("Scegli uno degli operatori dimostrativi.").into_response(), false);
    }
    match rp.open_session(&headers, &f.operatore, "demo", None).await {
        Ok(Some(cookie)) => {
            tracing::info!(operator = %f.operatore, "demo session opened for the web console");
            let mut r = Redirect::to("/console/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            secure(r, false)
        }
        _ => secure(
            (StatusCode::SERVICE_UNAVAILABLE, pages::login_error("Servizio momentaneamente non disponibile: riprova.")).into_response(),
            false,
        ),
    }
}

/// Where operators land after an SPID/CIE login that named no return path: the holders of
/// a role some console page is for go to the console (the others to the login page, which
/// shows their session).
pub fn landing() -> Vec<(String, String)> {
    let mut roles: Vec<Role> = Vec::new();
    for r in Page::ALL.iter().flat_map(|p| p.roles()) {
        if !roles.contains(r) {
            roles.push(*r);
        }
    }
    roles.into_iter().map(|r| (r.as_str().to_string(), format!("{BASE}/"))).collect()
}

/// Session settings for `sigess up --demo` without SPID/CIE flags: the console's demo login
/// opens sessions through them, with the same cookie, timeouts and CSRF rules as SPID/CIE
/// sessions. The relying party's keys are created once in `key_dir`; its Trust Anchor is
/// a loopback address where none answers, so the SPID/CIE login page lists no provider.
pub fn demo_login_config(http_addr: std::net::SocketAddr, key_dir: &std::path::Path) -> spid_cie::RpConfig {
    let mut c = spid_cie::RpConfig::new(&format!("http://127.0.0.1:{}/oidc/rp/", http_addr.port()), "http://127.0.0.1:9/");
    c.cookie_secure = false;
    // Demo only, on loopback: the login routes serve plain http and the anchor nothing answers.
    c.allow_http_loopback = true;
    c.federation_keys = vec![key_dir.join("demo-rp-federation.pem")];
    c.sig_keys = vec![key_dir.join("demo-rp-sig.pem")];
    c.enc_keys = vec![key_dir.join("demo-rp-enc.pem")];
    c.purpose = "gestione dell'hub (dimostrazione)".into();
    c.landing = landing();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_roles_land_on_the_console_after_login() {
        let rp = demo_login_config("127.0.0.1:8080".parse().expect("addr"), std::path::Path::new("."));
        let roles = |r: &[Role]| r.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>();
        for r in [Role::Amministratore, Role::Statistica, Role::Dpo] {
            assert_eq!(rp.after_login(None, &roles(&[Role::Operatore, r])), "/console/", "{r:?}");
        }
        assert_eq!(rp.after_login(None, &roles(&[Role::Operatore, Role::Consultazione])), "/oidc/rp/");
        assert_eq!(rp.after_login(Some("/console/registro"), &roles(&[Role::Dpo])), "/console/registro");
        assert_eq!(rp.after_login(Some("//evil.example/"), &roles(&[Role::Dpo])), "/console/");
        assert!(rp.validate().is_ok());
    }
}
