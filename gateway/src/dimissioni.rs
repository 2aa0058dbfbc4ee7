//! Inbound protected hospital discharges (*dimissioni protette*) from Regione Lazio, as FHIR
//! messaging: `POST /fhir/regione/$process-message` with a `message` Bundle
//! (`application/fhir+json`), answered synchronously with a response message.
//!
//! The region is a system client: with PDND configured (`--pdnd-jwks`) only a PDND voucher
//! is admitted, and the request must carry a ModI `Agid-JWT-Signature` (INTEGRITY_REST_01)
//! over its body, verified by the authentication step with the client's registered keys;
//! without PDND (development, demo) any system credential is. The client needs role
//! `operatore`: recording the case is a write, audited by core as the client's.
//!
//! The message is parsed and checked by the adapter ([`regione_lazio::dimissione::parse`]),
//! pure; a bad one is answered 400 with an OperationOutcome listing every problem, and
//! nothing reaches core. A good one becomes one `CartellaService.RecordSegnalazione` call
//! (the gateway reaches core only over gRPC): core finds or creates the person, records an
//! accesso in the Municipio of the health district, and keeps the message id so the same
//! message twice is one case. Every answer that is not a response message is an
//! OperationOutcome; none repeats a value of the message.
use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use cartella_proto::v1::{self as pb, cartella_service_client::CartellaServiceClient};
use core_cartella::auth::{Caller, CallerKind};
use regione_lazio::dimissione::{self, Dimissione, ResponseCode};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tonic_types::StatusExt;

use crate::{
    auth::{Admission, AuthError, Authenticator, ClientCert, Credential, MAX_AUTH_BODY, modi},
    core_link::CoreLink,
    problem::http_status,
    stack::{
        limit::{Decision, Limiter},
        metrics::Metrics,
    },
};

/// The FHIR base of the region's inbound messages.
pub const BASE: &str = "/fhir/regione";
/// FHIR messaging's operation, on that base.
pub const PATH: &str = "/fhir/regione/$process-message";
pub const FHIR_JSON: &str = "application/fhir+json";
/// The sending system, as core keys message ids (`Segnalazione.origine`).
pub const ORIGINE: &str = regione_lazio::ID;

#[derive(Clone, Debug)]
struct Inbound {
    link: CoreLink,
    auth: Authenticator,
    /// With PDND configured, only PDND vouchers with a ModI signature are admitted.
    pdnd_only: bool,
    /// The gateway's per-client quota, shared with the other routes.
    limiter: Limiter,
    outcomes: prometheus::IntCounterVec,
}

/// How one message ended, as counted by `sigess_dimissioni_total{outcome}`.
#[derive(Clone, Copy, Debug)]
enum Esito {
    /// A new case recorded.
    Recorded,
    /// The same message again: answered with the case recorded the first time.
    Repeated,
    /// Refused before parsing: credentials, signature, role, media type, size.
    Refused,
    /// Over the client's quota.
    Limited,
    /// Not a valid discharge message.
    Invalid,
    /// Core refused or failed.
    Failed,
}

impl Esito {
    fn label(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::Repeated => "repeated",
            Self::Refused => "refused",
            Self::Limited => "limited",
            Self::Invalid => "invalid",
            Self::Failed => "failed",
        }
    }
}

/// The route, with its own authentication (its refusals are OperationOutcomes, as a FHIR
/// client expects, rather than problem documents). Each client's messages count against
/// the gateway's per-client quota (`--rate-per-minute`, `--rate-burst`), and every answer is
/// counted by outcome in `sigess_dimissioni_total`.
pub fn router(link: CoreLink, auth: Authenticator, limiter: Limiter, metrics: &Metrics) -> Result<Router, prometheus::Error> {
    let outcomes = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "dimissioni_total",
            "Protected discharge messages from Regione Lazio by outcome (recorded, repeated, refused, limited, invalid, failed)",
        ),
        &["outcome"],
    )?;
    metrics.registry().register(Box::new(outcomes.clone()))?;
    let state = Inbound { link, pdnd_only: auth.pdnd_enabled(), auth, limiter, outcomes };
    Ok(Router::new().route(PATH, post(process_message)).with_state(state))
}

/// An OperationOutcome of one issue. `text` is fixed or names fields, never values.
fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let oo = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "details": { "text": text } }],
    });
    fhir(status, &oo)
}

fn fhir(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}

fn unauthorized(text: &str) -> Response {
    let mut r = outcome(StatusCode::UNAUTHORIZED, "login", text);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

fn is_fhir_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(FHIR_JSON) || m.trim().eq_ignore_ascii_case("application/json"))
}

/// The hub's endpoint as the response message names it: this base on the host the region
/// called.
fn hub_endpoint(h: &HeaderMap, tls: bool) -> String {
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).unwrap_or("localhost");
    let proto = h.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or(if tls { "https" } else { "http" });
    format!("{proto}://{host}{BASE}")
}

/// The referral core records for a discharge.
pub fn segnalazione(d: &Dimissione) -> pb::Segnalazione {
    pb::Segnalazione {
        origine: ORIGINE.to_string(),
        id_messaggio: d.message_id.clone(),
        persona: Some(pb::Persona {
            codice_fiscale: d.codice_fiscale.clone(),
            cognome: d.cognome.clone(),
            nome: d.nome.clone(),
            sesso: d.sesso as i32,
            data_nascita: d.data_nascita.clone(),
            cittadinanza: d.cittadinanza.clone().unwrap_or_default(),
            ..pb::Persona::default()
        }),
        ufficio: d.municipio.to_string(),
        data: String::new(),
        segnalante: format!("Regione Lazio: dimissione protetta (distretto sanitario {})", d.distretto),
        motivo: format!(
            "Dimissione protetta del {}: richiesta di valutazione sociale {} (messaggio {})",
            d.data_dimissione, d.richiesta_id, d.message_id
        ),
    }
}

/// Where in the message a field core refused comes from.
fn expression(field: &str) -> &'static str {
    if field.starts_with("segnalazione.persona") { "Bundle.entry.resource.ofType(Patient)" } else { "Bundle" }
}

/// The answer to a refusal or failure of core: its field violations as issues, a retry
/// invitation when the store is unavailable.
fn core_refusal(s: &tonic::Status) -> Response {
    let status = http_status(s.code());
    let violations = s.get_error_details().bad_request().map(|b| b.field_violations.clone()).unwrap_or_default();
    if !violations.is_empty() {
        let issues: Vec<Value> = violations
            .iter()
            .map(|v| {
                json!({
                    "severity": "error",
                    "code": "business-rule",
                    "details": { "text": format!("{}: {}", v.field, v.description) },
                    "expression": [expression(&v.field)],
                })
            })
            .collect();
        return fhir(status, &json!({ "resourceType": "OperationOutcome", "issue": issues }));
    }
    match s.code() {
        tonic::Code::Unavailable => {
            let mut r = outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", "the hub cannot record the message now: send it again");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::problem::RETRY_AFTER_UNAVAILABLE));
            r
        }
        tonic::Code::PermissionDenied => outcome(status, "forbidden", "this client may not record this case"),
        tonic::Code::Unauthenticated => unauthorized("the hub could not authenticate the call to core"),
        _ => outcome(status, "exception", "the message could not be recorded"),
    }
}

async fn process_message(State(s): State<Inbound>, req: Request) -> Response {
    let (esito, response) = answer(&s, req).await;
    s.outcomes.with_label_values(&[esito.label()]).inc();
    response
}

async fn answer(s: &Inbound, req: Request) -> (Esito, Response) {
    use Esito::{Invalid, Refused};
    let (parts, body) = req.into_parts();
    let too_large = || outcome(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "the message is too large");
    let (caller, credential, body) = match s.auth.admit(&parts, body).await {
        Ok(x) => x,
        Err(Admission::TooLarge) => return (Refused, too_large()),
        Err(Admission::Refused(AuthError::Unavailable)) => {
            return (Esito::Failed, outcome(StatusCode::SERVICE_UNAVAILABLE, "transient", "authentication temporarily unavailable"));
        }
        Err(Admission::Refused(e)) => {
            tracing::info!(reason = e.reason(), "discharge message refused at authentication");
            return (Refused, unauthorized(&e.to_string()));
        }
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_AUTH_BODY).await else {
        return (Refused, too_large());
    };
    let cert = parts.extensions.get::<ClientCert>().is_some();
    if s.pdnd_only && credential != Credential::PdndVoucher {
        return (Refused, unauthorized("a PDND voucher is required"));
    }
    // Authentication verified the signature when present; here its presence is required.
    if s.pdnd_only && !parts.headers.contains_key(modi::SIGNATURE_HEADER) {
        return (Refused, unauthorized("Agid-JWT-Signature (ModI INTEGRITY_REST_01) is required"));
    }
    if caller.kind != CallerKind::Sistema || !caller.can_write() {
        return (Refused, outcome(StatusCode::FORBIDDEN, "forbidden", "only a system client with role operatore may send discharges"));
    }
    let quota = s.limiter.check(&format!("regione:{}:{}", caller.ente, caller.subject));
    if let Decision::Limited { .. } = quota {
        let mut r = outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "the client's message quota is used up: retry after Retry-After");
        s.limiter.headers(&quota, r.headers_mut());
        return (Esito::Limited, r);
    }
    if !is_fhir_json(&parts.headers) {
        return (Refused, outcome(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported", "the message must be application/fhir+json"));
    }
    let d = match dimissione::parse(&bytes) {
        Ok(d) => d,
        Err(invalid) => {
            tracing::info!(issues = invalid.0.len(), "discharge message refused as invalid");
            return (Invalid, fhir(StatusCode::BAD_REQUEST, &invalid.operation_outcome()));
        }
    };
    let endpoint = hub_endpoint(&parts.headers, cert);
    let (esito, mut r) = record(&s.link, &caller, &d, &endpoint).await;
    s.limiter.headers(&quota, r.headers_mut());
    (esito, r)
}

async fn record(link: &CoreLink, caller: &Caller, d: &Dimissione, endpoint: &str) -> (Esito, Response) {
    let mut req = tonic::Request::new(pb::RecordSegnalazioneRequest { segnalazione: Some(segnalazione(d)) });
    let Some(bearer) = link.bearer_for(caller).ok().and_then(|b| b.parse().ok()) else {
        tracing::error!("cannot mint a caller token for core");
        return (Esito::Failed, outcome(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal error"));
    };
    req.metadata_mut().insert("authorization", bearer);
    if let Ok(rid) = caller.request_id.parse()
        && !caller.request_id.is_empty()
    {
        req.metadata_mut().insert("x-request-id", rid);
    }
    let done = match CartellaServiceClient::new(link.channel()).record_segnalazione(req).await {
        Ok(r) => r.into_inner(),
        Err(st) => {
            tracing::warn!(code = ?st.code(), "discharge message not recorded");
            return (Esito::Failed, core_refusal(&st));
        }
    };
    let accesso_id = done.accesso.and_then(|a| a.meta).map(|m| m.id).unwrap_or_default();
    tracing::info!(
        accesso = %accesso_id,
        municipio = d.municipio,
        nuova_persona = done.nuova_persona,
        gia_registrata = done.gia_registrata,
        "protected discharge recorded"
    );
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let response_id = uuid::Uuid::new_v4().to_string();
    let body = dimissione::response_message(&d.message_id, ResponseCode::Ok, Some(&accesso_id), None, &response_id, &now, endpoint);
    (if done.gia_registrata { Esito::Repeated } else { Esito::Recorded }, fhir(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn core_fields_point_into_the_message() {
        assert_eq!(expression("segnalazione.persona.codice_fiscale"), "Bundle.entry.resource.ofType(Patient)");
        assert_eq!(expression("segnalazione.ufficio"), "Bundle");
    }

    #[test]
    fn content_types() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_fhir_json(&m)
        };
        assert!(h("application/fhir+json"));
        assert!(h("application/fhir+json; charset=utf-8"));
        assert!(h("application/json"));
        assert!(!h("text/plain"));
        assert!(!is_fhir_json(&HeaderMap::new()));
    }
}
