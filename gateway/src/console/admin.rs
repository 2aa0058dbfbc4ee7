//! Clients and operators for the console (`/console/api/…`): list, register, disable or
//! enable, change roles. They live in the edge store, which the gateway owns, so these
//! routes use it directly. Only ente-wide administrators of the same ente may call them;
//! answers never carry a codice fiscale or a secret hash (a new client's secret is shown
//! once, in the answer that created it). Every change is a log line naming the ids.
use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use core_cartella::{
    auth::{Caller, Role},
    domain::codice_fiscale::CodiceFiscale,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use crate::{
    auth::{NewClient, RegistryError, clients::ClientRegistry, require_caller},
    edge_store::{ClientRecord, EdgeStoreError, OperatorRecord},
    problem::{problem, problem_with},
};

pub fn router(c: Console) -> Router<Console> {
    Router::new()
        .route("/console/api/operatori", get(list_operators).post(add_operator))
        .route("/console/api/operatori/{id}/disabilita", post(disable_operator))
        .route("/console/api/operatori/{id}/abilita", post(enable_operator))
        .route("/console/api/operatori/{id}/ruoli", post(operator_roles))
        .route("/console/api/client", get(list_clients).post(add_client))
        .route("/console/api/client/{id}/disabilita", post(disable_client))
        .route("/console/api/client/{id}/abilita", post(enable_client))
        .route("/console/api/client/{id}/ruoli", post(client_roles))
        .layer(middleware::from_fn_with_state(c.auth.clone(), require_caller))
}

fn role_name(r: &Role) -> &'static str {
    r.as_str()
}

fn operator_json(o: &OperatorRecord) -> Value {
    json!({
        "operator_id": o.operator_id,
        "ente": o.ente,
        "ufficio": o.ufficio,
        "roles": o.roles.iter().map(role_name).collect::<Vec<_>>(),
        "created_at": o.created_at,
        "disabled": o.disabled,
    })
}

fn client_json(c: &ClientRecord) -> Value {
    json!({
        "client_id": c.client_id,
        "name": c.name,
        "ente": c.ente,
        "ufficio": c.ufficio,
        "roles": c.roles.iter().map(role_name).collect::<Vec<_>>(),
        "purpose": c.purpose,
        "has_secret": c.secret_hash.is_some(),
        "has_certificate": c.cert_sha256.is_some(),
        "pdnd_client_id": c.pdnd_client_id,
        "pdnd_purpose_id": c.pdnd_purpose_id,
        "created_at": c.created_at,
        "disabled": c.disabled,
    })
}

/// One bad field, as the REST API reports them.
fn invalid(params: Vec<(&str, &str)>) -> Response {
    let list: Vec<Value> = params.into_iter().map(|(n, r)| json!({ "name": n, "reason": r })).collect();
    problem_with(StatusCode::BAD_REQUEST, "Bad Request", "the request has invalid fields", json!({ "invalid_params": list }))
}

/// Why a request is refused before it changes anything, answered as problem+json.
#[derive(Debug)]
enum Refusal {
    Forbidden,
    NotFound(&'static str),
    Unavailable,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Forbidden => problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "clients and operators are managed by ente-wide callers with role amministratore",
            ),
            Self::NotFound(what) => problem(StatusCode::NOT_FOUND, "Not Found", what),
            Self::Unavailable => problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "the edge store does not answer"),
        }
    }
}

/// Ente-wide administrators only.
fn admin(caller: &Caller) -> Result<(), Refusal> {
    if caller.ufficio.is_none() && caller.has(Role::Amministratore) { Ok(()) } else { Err(Refusal::Forbidden) }
}

fn unavailable<E: std::fmt::Display>(e: E) -> Response {
    tracing::error!(error = %e, "edge store unavailable for the console");
    Refusal::Unavailable.into_response()
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>, &'static str> {
    if names.is_empty() {
        return Err("give at least one role");
    }
    let mut out = Vec::new();
    for n in names {
        let r = Role::parse(n.trim()).ok_or("a role is not one of operatore, consultazione, statistica, amministratore, dpo, anagrafe")?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

fn ufficio(u: Option<&str>) -> Result<Option<String>, &'static str> {
    match u.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) if u.len() <= 16 && u.chars().all(|c| c.is_ascii_alphanumeric()) => Ok(Some(u.to_ascii_uppercase())),
        Some(_) => Err("letters and digits only, at most 16 (e.g. M01)"),
    }
}

async fn list_operators(State(c): State<Console>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = admin(&caller) {
        return r.into_response();
    }
    match c.edge.list_operators().await {
        Ok(ops) => Json(json!({ "operatori": ops.iter().filter(|o| o.ente == caller.ente).map(operator_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct NewOperator {
    #[serde(default)]
    operator_id: String,
    #[serde(default)]
    codice_fiscale: String,
    ufficio: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

async fn add_operator(State(c): State<Console>, Extension(caller): Extension<Caller>, body: Option<Json<NewOperator>>) -> Response {
    if let Err(r) = admin(&caller) {
        return r.into_response();
    }
    let Some(Json(n)) = body else {
        return invalid(vec![("body", "a JSON object with operator_id, codice_fiscale, ufficio, roles")]);
    };
    let mut bad = Vec::new();
    let id = n.operator_id.trim();
    if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bad.push(("operator_id", "1 to 64 characters, no spaces"));
    }
    let raw = n.codice_fiscale.trim();
    let cf = CodiceFiscale::parse(raw.strip_prefix("TINIT-").unwrap_or(raw));
    if cf.is_err() {
        bad.push(("codice_fiscale", "is not a valid codice fiscale"));
    }
    let uff = ufficio(n.ufficio.as_deref()).unwrap_or_else(|e| {
        bad.push(("ufficio", e));
        None
    });
    let roles = parse_roles(&n.roles).unwrap_or_else(|e| {
        bad.push(("roles", e));
        Vec::new()
    });
    let Ok(cf) = cf else { return invalid(bad) };
    if !bad.is_empty() {
        return invalid(bad);
    }
    let rec = OperatorRecord {
        operator_id: id.to_string(),
        codice_fiscale: cf.expose().to_string(),
        ente: caller.ente.clone(),
        ufficio: uff,
        roles,
        created_at: String::new(),
        disabled: false,
    };
    match c.edge.insert_operator(&rec).await {
        Ok(o) => {
            tracing::info!(by = %caller.subject, operator = %o.operator_id, "operator registered from the console");
            (StatusCode::CREATED, Json(operator_json(&o))).into_response()
        }
        Err(EdgeStoreError::Invalid(why)) => problem(StatusCode::CONFLICT, "Conflict", why),
        Err(e) => unavailable(e),
    }
}

/// The operator `id` of the caller's ente, or the answer to give.
async fn own_operator(c: &Console, caller: &Caller, id: &str) -> Result<OperatorRecord, Refusal> {
    admin(caller)?;
    match c.edge.operator_record(id).await {
        Ok(Some(o)) if o.ente == caller.ente => Ok(o),
        Ok(_) => Err(Refusal::NotFound("no such operator")),
        Err(e) => {
            tracing::error!(error = %e, "edge store unavailable for the console");
            Err(Refusal::Unavailable)
        }
    }
}

async fn set_operator(c: Console, caller: Caller, id: String, disabled: bool) -> Response {
    if let Err(r) = own_operator(&c, &caller, &id).await {
        return r.into_response();
    }
    if disabled && id == caller.subject {
        return problem(StatusCode::CONFLICT, "Conflict", "an administrator cannot disable themselves");
    }
    match c.edge.set_operator_disabled(&id, disabled).await {
        Ok(_) => {
            tracing::info!(by = %caller.subject, operator = %id, disabled, "operator changed from the console");
            match c.edge.operator_record(&id).await {
                Ok(Some(o)) => Json(operator_json(&o)).into_response(),
                Ok(None) => problem(StatusCode::NOT_FOUND, "Not Found", "no such operator"),
                Err(e) => unavailable(e),
            }
        }
        Err(e) => unavailable(e),
    }
}

async fn disable_operator(State(c): State<Console>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    set_operator(c, caller, id, true).await
}

async fn enable_operator(State(c): State<Console>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    set_operator(c, caller, id, false).await
}

#[derive(Deserialize)]
struct Roles {
    #[serde(default)]
    roles: Vec<String>,
}

async fn operator_roles(
    State(c): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<Roles>>,
) -> Response {
    if let Err(r) = own_operator(&c, &caller, &id).await {
        return r.into_response();
    }
    let roles = match parse_roles(&body.map(|b| b.0.roles).unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return invalid(vec![("roles", e)]),
    };
    if id == caller.subject && !roles.contains(&Role::Amministratore) {
        return problem(StatusCode::CONFLICT, "Conflict", "an administrator cannot remove their own amministratore role");
    }
    match c.edge.set_operator_roles(&id, &roles).await {
        Ok(_) => {
            tracing::info!(by = %caller.subject, operator = %id, "operator roles changed from the console");
            match c.edge.operator_record(&id).await {
                Ok(Some(o)) => Json(operator_json(&o)).into_response(),
                Ok(None) => problem(StatusCode::NOT_FOUND, "Not Found", "no such operator"),
                Err(e) => unavailable(e),
            }
        }
        Err(e) => unavailable(e),
    }
}

async fn list_clients(State(c): State<Console>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = admin(&caller) {
        return r.into_response();
    }
    match c.edge.list_clients().await {
        Ok(all) => {
            Json(json!({ "client": all.iter().filter(|x| x.ente == caller.ente).map(client_json).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct NewClientBody {
    #[serde(default)]
    name: String,
    ufficio: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    purpose: String,
    pdnd_client_id: Option<String>,
    #[serde(default)]
    pdnd_purpose_id: Option<String>,
    #[serde(default)]
    secret: bool,
}

async fn add_client(State(c): State<Console>, Extension(caller): Extension<Caller>, body: Option<Json<NewClientBody>>) -> Response {
    if let Err(r) = admin(&caller) {
        return r.into_response();
    }
    let Some(Json(n)) = body else {
        return invalid(vec![("body", "a JSON object with name, ufficio, roles, purpose, pdnd_client_id, pdnd_purpose_id, secret")]);
    };
    let mut bad = Vec::new();
    let name = n.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        bad.push(("name", "1 to 200 characters"));
    }
    let purpose = n.purpose.trim();
    if core_cartella::auth::check_purpose(purpose).is_err() || purpose.chars().count() < 3 {
        bad.push(("purpose", "3 to 200 characters, no control characters"));
    }
    let uff = ufficio(n.ufficio.as_deref()).unwrap_or_else(|e| {
        bad.push(("ufficio", e));
        None
    });
    let roles = parse_roles(&n.roles).unwrap_or_else(|e| {
        bad.push(("roles", e));
        Vec::new()
    });
    let pdnd = n.pdnd_client_id.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
    let purpose_id = n.pdnd_purpose_id.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
    if pdnd.is_some() != purpose_id.is_some() {
        bad.push(("pdnd_purpose_id", "a PDND client needs its PDND purpose id, and only a PDND client has one"));
    }
    if !n.secret && pdnd.is_none() {
        bad.push(("secret", "a client needs a secret or a PDND client id (certificates are registered with `sigess client add`)"));
    }
    if !bad.is_empty() {
        return invalid(bad);
    }
    let new = NewClient {
        client_id: None,
        name: name.to_string(),
        ente: caller.ente.clone(),
        ufficio: uff,
        roles,
        purpose: purpose.to_string(),
        with_secret: n.secret,
        cert_sha256: None,
        pdnd_client_id: pdnd,
        pdnd_purpose_id: purpose_id,
        modi_jwks: None,
    };
    match ClientRegistry::new(c.edge.clone()).create(new).await {
        Ok((rec, secret)) => {
            tracing::info!(by = %caller.subject, client = %rec.client_id, "client registered from the console");
            let mut body = client_json(&rec);
            if let (Some(s), Some(o)) = (secret, body.as_object_mut()) {
                o.insert("secret".into(), Value::String(s.expose().to_string()));
            }
            let mut r = (StatusCode::CREATED, Json(body)).into_response();
            r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            r
        }
        Err(RegistryError::Invalid(why)) => invalid(vec![("body", why.as_str())]),
        Err(e) => unavailable(e),
    }
}

async fn own_client(c: &Console, caller: &Caller, id: &str) -> Result<ClientRecord, Refusal> {
    admin(caller)?;
    match c.edge.client(id).await {
        Ok(Some(x)) if x.ente == caller.ente => Ok(x),
        Ok(_) => Err(Refusal::NotFound("no such client")),
        Err(e) => {
            tracing::error!(error = %e, "edge store unavailable for the console");
            Err(Refusal::Unavailable)
        }
    }
}

async fn set_client(c: Console, caller: Caller, id: String, disabled: bool) -> Response {
    if let Err(r) = own_client(&c, &caller, &id).await {
        return r.into_response();
    }
    match c.edge.set_client_disabled(&id, disabled).await {
        Ok(_) => {
            tracing::info!(by = %caller.subject, client = %id, disabled, "client changed from the console");
            match own_client(&c, &caller, &id).await {
                Ok(x) => Json(client_json(&x)).into_response(),
                Err(r) => r.into_response(),
            }
        }
        Err(e) => unavailable(e),
    }
}

async fn disable_client(State(c): State<Console>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    set_client(c, caller, id, true).await
}

async fn enable_client(State(c): State<Console>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    set_client(c, caller, id, false).await
}

async fn client_roles(
    State(c): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Option<Json<Roles>>,
) -> Response {
    if let Err(r) = own_client(&c, &caller, &id).await {
        return r.into_response();
    }
    let roles = match parse_roles(&body.map(|b| b.0.roles).unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return invalid(vec![("roles", e)]),
    };
    match c.edge.set_client_roles(&id, &roles).await {
        Ok(_) => {
            tracing::info!(by = %caller.subject, client = %id, "client roles changed from the console");
            match own_client(&c, &caller, &id).await {
                Ok(x) => Json(client_json(&x)).into_response(),
                Err(r) => r.into_response(),
            }
        }
        Err(e) => unavailable(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_uffici_are_checked() {
        assert_eq!(parse_roles(&["dpo".into(), "dpo".into()]), Ok(vec![Role::Dpo]));
        assert!(parse_roles(&[]).is_err());
        assert!(parse_roles(&["root".into()]).is_err());
        assert_eq!(parse_roles(&["anagrafe".into(), "operatore".into()]), Ok(vec![Role::Anagrafe, Role::Operatore]));
        assert_eq!(ufficio(Some(" m01 ")), Ok(Some("M01".into())));
        assert_eq!(ufficio(Some("")), Ok(None));
        assert!(ufficio(Some("M01; DROP")).is_err());
    }
}
