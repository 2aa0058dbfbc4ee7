//! The WaaS pull API INPS calls through PDND, exactly as INPS's `api-comuni.yaml` (2.0.1)
//! describes it, under the base path of its `servers` entry, `/waas/v1`:
//! `GET /flussi?since=&limit=`, `POST /esiti`, `GET /status`.
//!
//! Every call needs an authenticated caller (`auth::require_caller`) that is also allowed:
//! when the gateway accepts PDND vouchers (`--pdnd-jwks`), only a PDND voucher is admitted
//! (INPS registered as a client with its PDND client id); without PDND (development, demo)
//! a hub token is. The caller must be ente-wide (no ufficio) with role `consultazione` or
//! `operatore`; flows and esiti are those of the caller's ente. Problem
//! documents carry only the members the yaml's `Problem` schema allows (type, title,
//! status, detail, instance), and a refused body stores nothing. Requests are rate limited
//! per caller with the `X-RateLimit-*` headers the yaml declares.
//!
//! The flows and esiti live in core's SIUSS ledger; the gateway reaches them only through
//! `cartella.v1.SiussService` (`ServeFlussi`, `RegistraEsiti`, `StatoServizio`) with the
//! caller's token, as every other call to core.
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use cartella_proto::v1::{self as pb, siuss_service_client::SiussServiceClient};
use core_cartella::auth::Caller;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    auth::{Authenticator, Credential, require_caller},
    core_link::CoreLink,
    problem::CONTENT_TYPE as PROBLEM,
    stack::limit::{Decision, Limiter},
};

/// Base path, from the yaml's `servers` URL.
pub const BASE: &str = "/waas/v1";
/// `limit` when INPS sends none, and its maximum (yaml: default 10, maximum 100).
pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;
/// `elenco_esiti` holds at most 100 items.
pub const MAX_ESITI: usize = 100;
const MAX_DETAIL: usize = 4096;
const CODICI_ESITO: [&str; 4] = ["OK", "DATI_NON_TROVATI", "RICHIESTA_INVALIDA", "ERRORE_GENERICO"];

#[derive(Clone, Debug)]
struct Waas {
    link: CoreLink,
    limiter: Limiter,
    /// With PDND configured, only PDND vouchers are admitted.
    pdnd_only: bool,
}

/// A problem document limited to the yaml's `Problem` members.
fn problem(status: StatusCode, detail: &str) -> Response {
    let mut detail = detail.to_string();
    if detail.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL - 3;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push_str("...");
    }
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = (status, [(header::CONTENT_TYPE, PROBLEM)], body.to_string()).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(crate::problem::RETRY_AFTER_UNAVAILABLE));
    }
    r
}

/// The WaaS routes: authentication, then the permission check and the rate limit.
pub fn router(link: CoreLink, auth: Authenticator, limiter: Limiter) -> Router {
    let state = Waas { link, limiter, pdnd_only: auth.pdnd_enabled() };
    let api = Router::new()
        .route("/flussi", get(flussi))
        .route("/esiti", post(esiti))
        .route("/status", get(status))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .layer(middleware::from_fn_with_state(auth, require_caller))
        .with_state(state);
    Router::new().nest(BASE, api)
}

/// Whether an authenticated caller may use the WaaS API: an ente-wide client registered for
/// SIUSS (role `siuss`), not any reader of the ente.
pub fn allowed(c: &Caller) -> bool {
    c.ufficio.is_none() && c.has(core_cartella::auth::Role::Siuss)
}

/// 403 for callers that are not ente-wide readers; 429 beyond the caller's quota; the
/// `X-RateLimit-*` headers on every answer.
async fn admit(State(w): State<Waas>, req: axum::extract::Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return problem(StatusCode::UNAUTHORIZED, "credenziali mancanti");
    };
    let credential = req.extensions().get::<Credential>().copied();
    if w.pdnd_only && credential != Some(Credential::PdndVoucher) {
        return problem(StatusCode::FORBIDDEN, "il servizio è riservato a INPS: serve un voucher PDND");
    }
    if !allowed(&caller) {
        return problem(
            StatusCode::FORBIDDEN,
            "il servizio è riservato a un client dell'intero ente (senza ufficio) registrato per SIUSS (ruolo siuss)",
        );
    }
    let d = w.limiter.check(&format!("waas:{}:{}", caller.ente, caller.subject));
    let mut r = match d {
        Decision::Limited { .. } => {
            problem(StatusCode::TOO_MANY_REQUESTS, "quota di richieste esaurita: riprovare dopo i secondi indicati in Retry-After")
        }
        Decision::Allowed { .. } => next.run(req).await,
    };
    w.limiter.headers(&d, r.headers_mut());
    r
}

/// `ts_flusso` as the yaml's `date-time`, with milliseconds, in UTC.
pub fn ts_iso(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
            t.format(&f).ok()
        })
        .unwrap_or_default()
}

/// `since` and `limit` of `GET /flussi`, every problem at once. INPS's own spec example
/// spells `limit` as `max_entries`; it is accepted as an alias.
fn parse_query(raw: Option<&str>) -> Result<(i64, u32), Vec<String>> {
    let mut since = None;
    let mut limit = None;
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "since" => since = Some(v.into_owned()),
            "limit" => limit = Some(v.into_owned()),
            "max_entries" if limit.is_none() => limit = Some(v.into_owned()),
            _ => {}
        }
    }
    let since = match since.as_deref().map(str::parse::<i64>) {
        None => {
            errors.push("since: parametro obbligatorio (timestamp in millisecondi, 0 alla prima acquisizione)".into());
            0
        }
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => {
            errors.push("since: atteso un intero in millisecondi maggiore o uguale a 0".into());
            0
        }
    };
    let limit = match limit.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (0..=i64::from(MAX_LIMIT)).contains(&n) => u32::try_from(n).unwrap_or(DEFAULT_LIMIT),
        Some(_) => {
            errors.push(format!("limit: atteso un intero tra 0 e {MAX_LIMIT}"));
            DEFAULT_LIMIT
        }
    };
    if errors.is_empty() { Ok((since, limit)) } else { Err(errors) }
}

async fn flussi(State(w): State<Waas>, Extension(caller): Extension<Caller>, RawQuery(q): RawQuery) -> Response {
    let (since, limit) = match parse_query(q.as_deref()) {
        Ok(x) => x,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.join("; ")),
    };
    if limit == 0 {
        return axum::Json(json!({ "elenco_flussi": [] })).into_response();
    }
    let flows = match core_request(&w, &caller, pb::ServeFlussiRequest { since, limit }) {
        Some(req) => SiussServiceClient::new(w.link.channel()).serve_flussi(req).await,
        None => return mint_failed(),
    };
    let flows = match flows {
        Ok(f) => f.into_inner().flussi,
        Err(s) => {
            tracing::error!(code = ?s.code(), error = %s.message(), "GET /flussi failed");
            return core_refusal(&s);
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let elenco: Vec<Value> = flows
        .iter()
        .map(|f| {
            json!({
                "codice_ente": f.codice_ente,
                "denominazione_ente": f.denominazione_ente,
                "id_flusso": f.id_flusso,
                "tipo": if f.tipo == "SINBA" { "SINBA" } else { "PS_PSA_SINA" },
                "ts_flusso": ts_iso(f.ts_flusso),
                "flusso": b64.encode(&f.xml),
            })
        })
        .collect();
    axum::Json(json!({ "elenco_flussi": elenco })).into_response()
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn text_field(o: &serde_json::Map<String, Value>, name: &str, path: &str, required: bool, errors: &mut Vec<String>) -> String {
    match o.get(name) {
        None if required => {
            errors.push(format!("{path}.{name}: obbligatorio"));
            String::new()
        }
        None | Some(Value::Null) if !required => String::new(),
        Some(Value::String(s)) => s.clone(),
        _ => {
            errors.push(format!("{path}.{name}: attesa una stringa"));
            String::new()
        }
    }
}

fn date_time(s: &str) -> bool {
    OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

/// The esiti of a `POST /esiti` body, or every reason it does not fit `ElencoEsiti`.
/// Messages name fields and positions, never values.
pub fn parse_esiti(body: &[u8]) -> Result<Vec<pb::EsitoSiuss>, Vec<String>> {
    let v: Value = serde_json::from_slice(body).map_err(|_| vec!["il corpo non è un documento JSON valido".to_string()])?;
    let Value::Object(root) = v else { return Err(vec!["atteso un oggetto con la proprietà elenco_esiti".into()]) };
    let mut errors = Vec::new();
    for k in root.keys() {
        if k != "elenco_esiti" {
            errors.push("proprietà non ammessa nell'oggetto radice (ammessa solo elenco_esiti)".to_string());
        }
    }
    let items = match root.get("elenco_esiti") {
        None => return if errors.is_empty() { Ok(Vec::new()) } else { Err(errors) },
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => {
            errors.push("elenco_esiti: atteso un array".into());
            return Err(errors);
        }
    };
    if items.len() > MAX_ESITI {
        errors.push(format!("elenco_esiti: al massimo {MAX_ESITI} esiti per richiesta"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = format!("elenco_esiti[{i}]");
        let Value::Object(o) = item else {
            errors.push(format!("{p}: atteso un oggetto"));
            continue;
        };
        let id_flusso = text_field(o, "id_flusso", &p, true, &mut errors);
        let tipo = text_field(o, "tipo", &p, true, &mut errors);
        let ts_flusso = text_field(o, "ts_flusso", &p, true, &mut errors);
        let ts_acquisizione = text_field(o, "ts_acquisizione", &p, true, &mut errors);
        let codice_esito = text_field(o, "codice_esito", &p, true, &mut errors);
        let descrizione_esito = text_field(o, "descrizione_esito", &p, false, &mut errors);
        let id_acquisizione_siuss = text_field(o, "id_acquisizione_siuss", &p, false, &mut errors);
        if o.contains_key("ts_flusso") && !ts_flusso.is_empty() && !date_time(&ts_flusso) {
            errors.push(format!("{p}.ts_flusso: attesa una data-ora RFC 3339"));
        }
        if o.contains_key("ts_acquisizione") && !ts_acquisizione.is_empty() && !date_time(&ts_acquisizione) {
            errors.push(format!("{p}.ts_acquisizione: attesa una data-ora RFC 3339"));
        }
        if o.contains_key("codice_esito") && !CODICI_ESITO.contains(&codice_esito.as_str()) {
            errors.push(format!("{p}.codice_esito: valore non ammesso ({})", CODICI_ESITO.join(", ")));
        }
        let _ = tipo;
        out.push(pb::EsitoSiuss { id_flusso, codice_esito, descrizione_esito, id_acquisizione_siuss, ts_acquisizione });
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

async fn esiti(State(w): State<Waas>, Extension(caller): Extension<Caller>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "il corpo deve essere application/json");
    }
    let esiti = match parse_esiti(&body) {
        Ok(e) => e,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.join("; ")),
    };
    let res = match core_request(&w, &caller, pb::RegistraEsitiRequest { esiti }) {
        Some(req) => SiussServiceClient::new(w.link.channel()).registra_esiti(req).await,
        None => return mint_failed(),
    };
    match res {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(s) if s.code() == Code::InvalidArgument => {
            // Core names each unknown flow as `esiti[i]`; INPS knows them as `elenco_esiti[i]`.
            let pos: Vec<String> = s
                .get_error_details()
                .bad_request()
                .map(|b| b.field_violations.iter().map(|v| format!("elenco_{}", v.field)).collect())
                .unwrap_or_default();
            problem(
                StatusCode::BAD_REQUEST,
                &format!("id_flusso non prodotto da questo ente in {}: nessun esito registrato", pos.join(", ")),
            )
        }
        Err(s) => {
            tracing::error!(code = ?s.code(), error = %s.message(), "POST /esiti failed");
            core_refusal(&s)
        }
    }
}

async fn status(State(w): State<Waas>, Extension(caller): Extension<Caller>) -> Response {
    let res = match core_request(&w, &caller, pb::StatoServizioRequest {}) {
        Some(req) => SiussServiceClient::new(w.link.channel()).stato_servizio(req).await,
        None => return mint_failed(),
    };
    match res {
        Ok(r) if r.get_ref().serving => problem(StatusCode::OK, "il servizio funziona correttamente"),
        _ => problem(StatusCode::SERVICE_UNAVAILABLE, "archivio dei flussi non disponibile"),
    }
}

/// A request to core carrying the caller's token; None when no token could be minted.
fn core_request<T>(w: &Waas, caller: &Caller, msg: T) -> Option<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    let bearer = w.link.bearer_for(caller).ok().and_then(|b| b.parse().ok())?;
    req.metadata_mut().insert("authorization", bearer);
    if let Ok(rid) = caller.request_id.parse()
        && !caller.request_id.is_empty()
    {
        req.metadata_mut().insert("x-request-id", rid);
    }
    Some(req)
}

fn mint_failed() -> Response {
    tracing::error!("cannot mint a caller token for core");
    problem(StatusCode::INTERNAL_SERVER_ERROR, "errore interno")
}

/// The WaaS answer to a refusal or failure of core: a denial stays a denial, anything else
/// means the flow archive cannot be reached now.
fn core_refusal(s: &tonic::Status) -> Response {
    match s.code() {
        Code::PermissionDenied => problem(StatusCode::FORBIDDEN, "operazione non consentita a questo chiamante"),
        Code::Unauthenticated => problem(StatusCode::UNAUTHORIZED, "credenziali non valide"),
        _ => problem(StatusCode::SERVICE_UNAVAILABLE, "archivio dei flussi non disponibile: riprovare"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_table() {
        assert_eq!(parse_query(Some("since=0")), Ok((0, 10)));
        assert_eq!(parse_query(Some("since=1490000000000&limit=100")), Ok((1_490_000_000_000, 100)));
        assert_eq!(parse_query(Some("since=5&max_entries=7")), Ok((5, 7)));
        assert_eq!(parse_query(Some("limit=0&since=1")), Ok((1, 0)));
        assert!(parse_query(Some("since=0&limit=101")).is_err());
        assert!(parse_query(Some("since=-1")).is_err());
        assert!(parse_query(Some("since=abc")).is_err());
        assert_eq!(parse_query(None).unwrap_err().len(), 1);
    }

    #[test]
    fn ts_has_milliseconds() {
        assert_eq!(ts_iso(1_701_083_096_852), "2023-11-27T11:04:56.852Z");
    }

    #[test]
    fn esiti_table() {
        let ok = br#"{"elenco_esiti":[{"id_flusso":"H501.PS.20210520.0000002","ts_flusso":"2023-11-27T11:04:56.852Z","ts_acquisizione":"2023-11-27T11:04:56.852Z","tipo":"PS_PSA_SINA","codice_esito":"OK","id_acquisizione_siuss":"22738"}]}"#;
        assert_eq!(parse_esiti(ok).unwrap()[0].id_acquisizione_siuss, "22738");
        assert_eq!(parse_esiti(b"{}").unwrap().len(), 0);
        let bad = br#"{"elenco_esiti":[{"id_flusso":"x","tipo":"PS_PSA_SINA","ts_flusso":"ieri","codice_esito":"FORSE"}], "altro": 1}"#;
        let e = parse_esiti(bad).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(parse_esiti(b"not json").is_err());
    }
}
