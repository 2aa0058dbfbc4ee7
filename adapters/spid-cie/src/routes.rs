//! HTTP routes of the relying party under `/oidc/rp/`: entity configuration, login page,
//! authorization start, callback, session info and logout.
//!
//! Every refusal is a plain HTML page (or JSON for `/session`) naming what went wrong in
//! words an operator can act on; none echoes a parameter, token, code or attribute, and
//! the log lines say which rule failed, never the values involved.
use std::fmt::Write as _;

use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    Rp,
    config::{BASE_PATH, is_local_path},
    federation::{ENTITY_STATEMENT_CT, Provider, WELL_KNOWN},
    jose::{now, random_token},
    oidc::{self, FISCAL_NUMBER, Pending},
    session::{cookie, digest},
    store::LoginRequest,
};

/// The routes, to merge into the gateway's application.
pub fn router(rp: Rp) -> Router {
    Router::new()
        .route(&format!("{BASE_PATH}{WELL_KNOWN}"), get(entity_configuration))
        .route(BASE_PATH, get(login_page))
        .route(&format!("{BASE_PATH}login"), get(login_page))
        .route(&format!("{BASE_PATH}authorization"), get(authorization))
        .route(&format!("{BASE_PATH}callback"), get(callback))
        .route(&format!("{BASE_PATH}session"), get(session_info))
        .route(&format!("{BASE_PATH}logout"), post(logout))
        .route(&format!("{BASE_PATH}resolve"), get(resolve))
        .with_state(rp)
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} - SIGeSS</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         .btn{{display:inline-block;padding:.6rem 1rem;margin:.25rem 0;border:2px solid #06c;border-radius:4px;color:#06c;text-decoration:none;font-weight:600}}\
         .btn:focus,.btn:hover{{background:#06c;color:#fff}}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    // Pages of the login flow are never cached, and may not be framed (clickjacking).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn refuse(status: StatusCode, reason: &'static str, message: &str) -> Response {
    tracing::info!(reason, status = status.as_u16(), "SPID/CIE login refused");
    let back = format!("<p>{}</p><p><a class=\"btn\" href=\"{BASE_PATH}\">Torna all'accesso</a></p>", esc(message));
    page(status, "Accesso non riuscito", &back)
}

fn redirect(to: &str, cookies: &[HeaderValue]) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r
}

#[derive(Deserialize)]
struct ResolveQuery {
    sub: Option<String>,
    trust_anchor: Option<String>,
}

/// Media type of a resolve response (OpenID Federation 1.0, section 8.3).
const RESOLVE_CT: &str = "application/resolve-response+jwt";

/// `federation_resolve_endpoint`: the relying party's metadata as resolved through its
/// trust chain to the anchor, with the chain, signed with its federation key. It answers
/// about itself and its anchor only (404 `invalid_subject` / `invalid_trust_anchor` else).
async fn resolve(State(rp): State<Rp>, Query(q): Query<ResolveQuery>) -> Response {
    let cfg = rp.config();
    let fail = |status: StatusCode, error: &str, description: &str| {
        (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
    };
    if q.sub.as_deref() != Some(cfg.entity_id.as_str()) {
        return fail(StatusCode::NOT_FOUND, "invalid_subject", "this endpoint resolves only this relying party");
    }
    if q.trust_anchor.as_deref() != Some(cfg.trust_anchor.as_str()) {
        return fail(StatusCode::NOT_FOUND, "invalid_trust_anchor", "unknown trust anchor");
    }
    let t = now();
    let resolved = async {
        let own_ec = oidc::entity_configuration(cfg, rp.keys(), t)?;
        let docs = rp.resolver().chain_below_anchor(&cfg.entity_id, own_ec).await?;
        let mut settings = rp.resolver().settings().clone();
        settings.required_trust_marks.clear();
        let resolved = crate::federation::validate_chain(&cfg.entity_id, "openid_relying_party", &docs, &settings, t)?;
        let mut chain = vec![docs.leaf_ec.clone()];
        for (_, sup_ec, stmt) in &docs.levels {
            chain.push(stmt.clone());
            chain.push(sup_ec.clone());
        }
        // The chain ends with the anchor's configuration once, after its statement.
        chain.dedup();
        let claims = json!({
            "iss": cfg.entity_id, "sub": cfg.entity_id, "iat": t, "exp": resolved.expires_at,
            "metadata": { "openid_relying_party": resolved.metadata },
            "trust_marks": cfg.trust_marks,
            "trust_chain": chain,
        });
        let claims = claims.as_object().cloned().unwrap_or_default();
        crate::jose::sign(&claims, Some("resolve-response+jwt"), rp.keys().federation.current())
    }
    .await;
    match resolved {
        Ok(jwt) => ([(header::CONTENT_TYPE, RESOLVE_CT)], jwt).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot resolve the relying party's own trust chain");
            fail(StatusCode::BAD_GATEWAY, "server_error", "the trust chain cannot be resolved now")
        }
    }
}

async fn entity_configuration(State(rp): State<Rp>) -> Response {
    match oidc::entity_configuration(rp.config(), rp.keys(), now()) {
        Ok(jwt) => ([(header::CONTENT_TYPE, ENTITY_STATEMENT_CT)], jwt).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign the entity configuration");
            (StatusCode::INTERNAL_SERVER_ERROR, "entity configuration unavailable").into_response()
        }
    }
}

/// Providers the anchor lists whose chain is valid now, SPID first, then CIE.
async fn providers(rp: &Rp) -> Vec<(bool, std::sync::Arc<Provider>)> {
    let ids = match rp.resolver().listed_providers().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list providers at the trust anchor");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for id in ids {
        match rp.resolver().provider(&id).await {
            Ok(p) => out.push((rp.config().cie_providers.contains(&id), p)),
            Err(e) => tracing::warn!(provider = %id, error = %e, "provider left out: no valid trust chain"),
        }
    }
    out.sort_by(|a, b| (a.0, a.1.display_name()).cmp(&(b.0, b.1.display_name())));
    out
}

/// The path of this site to return to after login (`?next=`), kept only when it is one.
#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

impl NextQuery {
    fn path(self) -> Option<String> {
        self.next.filter(|n| is_local_path(n))
    }
}

async fn login_page(State(rp): State<Rp>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    let next = q.path();
    if let Ok(s) = rp.live_session(&headers).await {
        // Already logged in: straight on to where the login was asked for.
        if let Some(n) = &next {
            return redirect(n, &[]);
        }
        let body = format!(
            "<p>Sei collegato come operatore <strong>{}</strong>.</p>\
             <form method=\"post\" action=\"{BASE_PATH}logout\"><input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
             <button class=\"btn\" type=\"submit\">Esci</button></form>",
            esc(&s.operator_id),
            esc(&s.csrf_token)
        );
        return page(StatusCode::OK, "SIGeSS - cartella sociale", &body);
    }
    let list = providers(&rp).await;
    let mut body = String::from("<p>Accedi con la tua identità digitale.</p>");
    for (cie, title) in [(false, "Entra con SPID"), (true, "Entra con CIE")] {
        let items: Vec<_> = list.iter().filter(|(c, _)| *c == cie).collect();
        if items.is_empty() {
            continue;
        }
        let _ = write!(body, "<section aria-labelledby=\"h-{k}\"><h2 id=\"h-{k}\">{title}</h2><ul>", k = if cie { "cie" } else { "spid" });
        for (_, p) in items {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("provider", &p.entity_id);
            if let Some(n) = &next {
                query.append_pair("next", n);
            }
            let href = format!("authorization?{}", query.finish());
            let _ = write!(body, "<li><a class=\"btn\" href=\"{}\">{}</a></li>", esc(&href), esc(p.display_name()));
        }
        body.push_str("</ul></section>");
    }
    if list.is_empty() {
        body.push_str("<p role=\"alert\">Nessun gestore di identità è disponibile in questo momento. Riprova più tardi.</p>");
    }
    page(StatusCode::OK, "SIGeSS - accesso operatori", &body)
}

#[derive(Deserialize)]
struct StartQuery {
    provider: Option<String>,
    /// Where to go after login: a path of this site, else ignored.
    next: Option<String>,
}

async fn authorization(State(rp): State<Rp>, Query(q): Query<StartQuery>) -> Response {
    let return_to = q.next.filter(|n| is_local_path(n));
    let Some(id) = q.provider.filter(|p| !p.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "no_provider", "Scegli un gestore di identità.");
    };
    let provider = match rp.resolver().listed_provider(&id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "provider not listed by the anchor or without a valid trust chain");
            return refuse(
                StatusCode::BAD_REQUEST,
                "untrusted_provider",
                "Il gestore di identità scelto non è riconosciuto dalla federazione.",
            );
        }
    };
    let t = now();
    let (url, pending) = match oidc::authorization_url(rp.config(), rp.keys(), &provider, t) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the authorization request");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "request_object", "Errore interno: riprova.");
        }
    };
    let browser = random_token(32);
    let ttl = i64::try_from(rp.config().login_timeout.as_secs()).unwrap_or(600);
    let rec = LoginRequest {
        state_hash: digest(&pending.state),
        browser_hash: digest(&browser),
        provider: pending.provider.clone(),
        nonce: pending.nonce.clone(),
        code_verifier: pending.code_verifier.clone(),
        acr: pending.acr.clone(),
        expires_at: t + ttl,
        return_to,
    };
    if rp.store().insert_login_request(&rec).await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "store", "Servizio momentaneamente non disponibile: riprova.");
    }
    let cookies: Vec<HeaderValue> = rp.set_cookie(rp.login_cookie_name(), &browser, ttl).into_iter().collect();
    redirect(&url, &cookies)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

async fn callback(State(rp): State<Rp>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let clear_login: Vec<HeaderValue> = rp.clear_cookie(rp.login_cookie_name()).into_iter().collect();
    let mut r = finish_login(&rp, &headers, q).await;
    for c in clear_login {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

async fn finish_login(rp: &Rp, headers: &HeaderMap, q: CallbackQuery) -> Response {
    let Some(state) = q.state.filter(|s| !s.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "no_state", "Risposta del gestore di identità incompleta.");
    };
    let Some(browser) = cookie(headers, rp.login_cookie_name()) else {
        return refuse(StatusCode::BAD_REQUEST, "no_login_cookie", "L'accesso non è stato avviato da questo browser, o è scaduto.");
    };
    let req = match rp.store().take_login_request(&digest(&state)).await {
        Ok(Some(r)) => r,
        Ok(None) => return refuse(StatusCode::BAD_REQUEST, "unknown_state", "Richiesta di accesso sconosciuta o già usata."),
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "store", "Servizio momentaneamente non disponibile: riprova."),
    };
    if !oidc::constant_time_eq(digest(browser).as_bytes(), req.browser_hash.as_bytes()) {
        return refuse(StatusCode::BAD_REQUEST, "browser_mismatch", "L'accesso non è stato avviato da questo browser.");
    }
    if req.expires_at < now() {
        return refuse(StatusCode::BAD_REQUEST, "login_expired", "La richiesta di accesso è scaduta: ricomincia.");
    }
    if let Some(err) = q.error {
        // Only the error code's shape is logged: the provider chose its words.
        let code: String = err.chars().filter(|c| c.is_ascii_lowercase() || *c == '_').take(40).collect();
        tracing::info!(error_code = %code, "provider returned an error");
        return refuse(StatusCode::UNAUTHORIZED, "provider_error", "Il gestore di identità non ha completato l'accesso.");
    }
    // RFC 9207: the response must come from the provider the login was sent to.
    if q.iss.as_deref() != Some(req.provider.as_str()) {
        return refuse(StatusCode::BAD_REQUEST, "wrong_iss", "La risposta non proviene dal gestore di identità scelto.");
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "no_code", "Risposta del gestore di identità incompleta.");
    };
    let provider = match rp.resolver().provider(&req.provider).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "provider chain no longer valid");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "untrusted_provider",
                "Il gestore di identità non è più riconosciuto dalla federazione.",
            );
        }
    };
    let return_to = req.return_to;
    let pending = Pending { state, nonce: req.nonce, code_verifier: req.code_verifier, provider: req.provider, acr: req.acr };
    let cfg = rp.config();
    let tokens = match oidc::exchange_code(rp.http(), cfg, rp.keys(), &provider, &code, &pending.code_verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e, "token request failed");
            return refuse(StatusCode::BAD_GATEWAY, "token", "Il gestore di identità non ha rilasciato i token.");
        }
    };
    let id = match oidc::validate_id_token(&tokens.id_token, &provider, &cfg.entity_id, &pending, Some(&tokens.access_token), now()) {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(error = %e, "ID token refused");
            return refuse(StatusCode::UNAUTHORIZED, "id_token", "Il token di identità non è valido.");
        }
    };
    let info = match oidc::userinfo(rp.http(), rp.keys(), &provider, &cfg.entity_id, &tokens.access_token, &id.sub).await {
        Ok(i) => i,
        Err(e) => {
            tracing::info!(error = %e, "userinfo refused");
            return refuse(StatusCode::BAD_GATEWAY, "userinfo", "Gli attributi dell'identità non sono validi.");
        }
    };
    let cf = info.get(FISCAL_NUMBER).and_then(|v| v.as_str()).and_then(oidc::codice_fiscale);
    let operator = match cf {
        Some(cf) => rp.store().operator_by_codice_fiscale(&cf).await,
        None => Ok(None),
    };
    let operator = match operator {
        Ok(Some(o)) if !o.disabled => o,
        Ok(_) => {
            // Nothing is kept for a person who is not an operator; the provider's token goes.
            let _ = oidc::revoke(rp.http(), cfg, rp.keys(), &provider, &tokens.access_token).await;
            tracing::info!(reason = "not_an_operator", "SPID/CIE login refused");
            return page(
                StatusCode::FORBIDDEN,
                "Accesso non consentito",
                "<p>La tua identità è stata verificata, ma non risulti tra gli operatori abilitati a SIGeSS. \
                 Se pensi che sia un errore, rivolgiti al referente del tuo Municipio.</p>",
            );
        }
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "store", "Servizio momentaneamente non disponibile: riprova."),
    };
    let Ok(set_cookie) = rp.open_session(headers, &operator.operator_id, &provider.entity_id, Some(tokens.access_token)).await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "store", "Servizio momentaneamente non disponibile: riprova.");
    };
    tracing::info!(operator = %operator.operator_id, acr = %id.acr, "operator logged in with SPID/CIE");
    let cookies: Vec<HeaderValue> = set_cookie.into_iter().collect();
    redirect(cfg.after_login(return_to.as_deref(), &operator.roles), &cookies)
}

/// The session as JSON, for the web console: who is logged in and the CSRF token its
/// state-changing calls must send. No personal data.
async fn session_info(State(rp): State<Rp>, headers: HeaderMap) -> Response {
    match rp.live_session(&headers).await {
        Ok(s) => {
            let op = rp.store().operator(&s.operator_id).await.ok().flatten();
            let mut r = axum::Json(json!({
                "operator_id": s.operator_id,
                "ente": op.as_ref().map(|o| o.ente.clone()),
                "ufficio": op.as_ref().and_then(|o| o.ufficio.clone()),
                "roles": op.as_ref().map(|o| o.roles.clone()),
                "csrf_token": s.csrf_token,
                "expires_at": s.expires_at,
            }))
            .into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": e.to_string() }))).into_response(),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf_token: Option<String>,
    /// Where to go afterwards: a path of this site (the web console's), else the login page.
    next: Option<String>,
}

/// `next` when it is a path on this site (see [`is_local_path`]), else the login page.
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| is_local_path(n)).unwrap_or(BASE_PATH)
}

async fn logout(State(rp): State<Rp>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    let Some(id) = cookie(&headers, rp.session_cookie_name()) else {
        return redirect(BASE_PATH, &[]);
    };
    let hash = digest(id);
    let s = match rp.store().session(&hash).await {
        Ok(Some(s)) => s,
        Ok(None) => return redirect(BASE_PATH, &rp.clear_cookie(rp.session_cookie_name()).into_iter().collect::<Vec<_>>()),
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "store", "Servizio momentaneamente non disponibile: riprova."),
    };
    let sent = f.csrf_token.unwrap_or_default();
    if !oidc::constant_time_eq(sent.as_bytes(), s.csrf_token.as_bytes()) {
        return refuse(StatusCode::FORBIDDEN, "csrf", "Richiesta di uscita non valida: usa il pulsante Esci della pagina.");
    }
    let ended = rp.store().delete_session(&hash).await.ok().flatten();
    if let Some(at) = ended.and_then(|s| s.access_token) {
        match rp.resolver().provider(&s.provider).await {
            Ok(p) => {
                if let Err(e) = oidc::revoke(rp.http(), rp.config(), rp.keys(), &p, &at).await {
                    tracing::warn!(error = %e, "token revocation at the provider failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot revoke: provider chain not valid"),
        }
    }
    tracing::info!(operator = %s.operator_id, "operator logged out");
    redirect(local_path(f.next.as_deref()), &rp.clear_cookie(rp.session_cookie_name()).into_iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::{BASE_PATH, local_path};

    #[test]
    fn logout_goes_only_to_paths_of_this_site() {
        assert_eq!(local_path(Some("/console/")), "/console/");
        for other in
            [None, Some("https://evil.example/"), Some("//evil.example/"), Some("/\\evil.example/"), Some("console"), Some("/a\r\nb")]
        {
            assert_eq!(local_path(other), BASE_PATH, "{other:?}");
        }
    }
}
