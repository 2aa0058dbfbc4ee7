//! Authentication at the gateway: turns what a request presents into a verified `Caller`.
//!
//! `Authenticator::authenticate` tries, in order: a TLS client certificate registered to a
//! system client (`clients`); then the bearer token, routed by its protected header alone:
//! EdDSA with `typ: at+jwt` is an access token from the hub's `/oauth/token` (`oauth`), other
//! EdDSA tokens are hub caller tokens (`sigess token`, trusted scripts), RSA tokens are PDND
//! vouchers (`pdnd`). Every claim used for a decision is read only after the signature of
//! its kind has been verified. A request carrying `Agid-JWT-Signature` also passes the ModI
//! integrity checks (`modi`), with the keys of the client it authenticated as. Every refusal is a 401 problem+json with a stable `reason`.
use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use core_cartella::auth::{Caller, CallerKind, Role, TokenVerifier};

use crate::problem::problem_with;

pub mod clients;
pub(crate) mod jwt;
pub mod modi;
pub mod oauth;
pub mod pdnd;

pub use clients::{ClientRegistry, ClientSecret, NewClient, RegistryError, cert_fingerprint};
pub use modi::ModiError;
pub use oauth::{AccessTokens, oauth_router};
pub use pdnd::{JwksSource, PdndConfig, PdndError, PdndVerifier};

/// Largest body the authentication step buffers (ModI signatures cover the body).
pub const MAX_AUTH_BODY: usize = 8 * 1024 * 1024;

/// How often, at most, expired ModI signature ids are purged from the store.
const JTI_PURGE_EVERY_SECS: i64 = 300;

/// Why a request was refused. Each is a 401 problem+json saying which (`reason()`), except
/// `Unavailable` (a store the check needs is down: 503). Never a 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send Authorization: Bearer <token>")]
    Missing,
    #[error("token malformed")]
    Malformed,
    #[error("token signed with an algorithm that is not accepted")]
    AlgNotAllowed,
    #[error("token signed by a key (kid) that is not in the trusted key set")]
    UnknownKid,
    #[error("token signature invalid")]
    BadSignature,
    #[error("token issued by an issuer that is not accepted")]
    WrongIssuer,
    #[error("token intended for another audience")]
    WrongAudience,
    #[error("token expired or not yet valid")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token lacks claim {0}")]
    MissingClaim(&'static str),
    #[error("token kind not accepted by this gateway")]
    UnsupportedToken,
    #[error("hub caller tokens are not accepted by this gateway: use a client credential")]
    HubTokenNotAccepted,
    #[error("client not registered with the hub")]
    UnknownClient,
    #[error("client disabled")]
    ClientDisabled,
    #[error("the voucher's purposeId is not the PDND purpose registered for this client")]
    WrongPurpose,
    #[error("Agid-JWT-Signature: {0}")]
    Modi(ModiError),
    #[error("authentication temporarily unavailable")]
    Unavailable,
    #[error("{0}")]
    Other(String),
}

impl AuthError {
    /// Stable machine-readable reason, sent as the problem's `reason` member.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::Malformed => "malformed_token",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::UnsupportedToken => "unsupported_token",
            Self::HubTokenNotAccepted => "hub_token_not_accepted",
            Self::UnknownClient => "unknown_client",
            Self::ClientDisabled => "client_disabled",
            Self::WrongPurpose => "pdnd_purpose_mismatch",
            Self::Modi(m) => m.reason(),
            Self::Unavailable => "unavailable",
            Self::Other(_) => "refused",
        }
    }
}

impl From<jwt::TimeError> for AuthError {
    fn from(e: jwt::TimeError) -> Self {
        match e {
            jwt::TimeError::Missing(c) => Self::MissingClaim(c),
            jwt::TimeError::Expired => Self::Expired,
            jwt::TimeError::NotYetValid => Self::NotYetValid,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if self == Self::Unavailable {
            return crate::problem::problem_with(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                &self.to_string(),
                serde_json::json!({ "reason": self.reason() }),
            );
        }
        let mut r =
            problem_with(StatusCode::UNAUTHORIZED, "Unauthorized", &self.to_string(), serde_json::json!({ "reason": self.reason() }));
        r.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        r
    }
}

/// The ModI integrity check a request still needs once its credential is known.
#[derive(Clone, Debug, Default)]
pub struct IntegrityNeed {
    /// A signature is required (PDND voucher with `--pdnd-require-integrity`).
    pub required: bool,
    /// The registered client whose ModI keys verify a signature.
    pub client: Option<crate::edge_store::ClientRecord>,
}

impl IntegrityNeed {
    fn none() -> Self {
        Self::default()
    }

    /// Whether the body must be read before the request can go on: a signature is sent
    /// or required.
    pub fn needs_body(&self, headers: &HeaderMap) -> bool {
        self.required || headers.contains_key(modi::SIGNATURE_HEADER)
    }
}

/// What a request presents: headers, the buffered body, and the TLS client certificate.
#[derive(Debug)]
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    pub path: &'a str,
    /// The body, when it was read: a ModI signature is verified over it. None for a body
    /// not read (yet): the credential is checked on headers alone, and a signature needs the
    /// body (the gRPC ingress streams it and refuses signatures).
    pub body: Option<&'a [u8]>,
    /// DER of the verified TLS client certificate, when the connection had one.
    pub client_cert: Option<&'a [u8]>,
}

/// DER client certificate of the connection, put in the request extensions by the TLS
/// acceptor.
#[derive(Clone, Debug)]
pub struct ClientCert(pub Vec<u8>);

/// Turns credentials into a `Caller`. Cheap to clone. Built with `new` (hub caller tokens
/// only, as before) and extended with the `with_*` methods.
#[derive(Clone, Debug)]
pub struct Authenticator {
    hub_tokens: TokenVerifier,
    /// Whether hub caller tokens (`sigess token`) are credentials at this edge. They name any
    /// ente, ufficio, roles and subject, so a deployment accepts them only when it says so
    /// (`--accept-hub-tokens`, on with `--demo`).
    accept_hub_tokens: bool,
    clients: Option<ClientRegistry>,
    access: Option<AccessTokens>,
    pdnd: Option<PdndVerifier>,
    last_purge: Arc<AtomicI64>,
    /// SPID/CIE operator sessions (cookie), when login is enabled.
    sessions: Option<spid_cie::Rp>,
}

fn unavailable<E: std::fmt::Display>(e: E) -> AuthError {
    tracing::error!(error = %e, "client registry unavailable during authentication");
    AuthError::Unavailable
}

impl Authenticator {
    pub fn new(hub_tokens: TokenVerifier) -> Self {
        Self {
            hub_tokens,
            accept_hub_tokens: false,
            clients: None,
            access: None,
            pdnd: None,
            last_purge: Arc::new(AtomicI64::new(0)),
            sessions: None,
        }
    }

    /// Accepts hub caller tokens as credentials (demos, tests and trusted scripts); refused
    /// with `hub_token_not_accepted` otherwise.
    pub fn accept_hub_tokens(mut self, accept: bool) -> Self {
        self.accept_hub_tokens = accept;
        self
    }

    /// Registered system clients: enables mTLS client certificates, and is needed by access
    /// tokens, PDND vouchers and ModI signatures (clients' keys, replay ledger).
    pub fn with_clients(mut self, clients: ClientRegistry) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Accepts the access tokens `/oauth/token` issues (needs `with_clients`).
    pub fn with_access_tokens(mut self, tokens: AccessTokens) -> Self {
        self.access = Some(tokens);
        self
    }

    /// Accepts SPID/CIE operator sessions; their login routes come with `session_routes`.
    pub fn with_sessions(mut self, rp: spid_cie::Rp) -> Self {
        self.sessions = Some(rp);
        self
    }

    /// The relying party holding operator sessions, when sessions are enabled.
    pub fn sessions(&self) -> Option<&spid_cie::Rp> {
        self.sessions.as_ref()
    }

    /// The SPID/CIE routes under `/oidc/rp/` (none when login is not enabled).
    pub fn session_routes(&self) -> axum::Router {
        self.sessions.as_ref().map(spid_cie::Rp::router).unwrap_or_default()
    }

    /// Accepts PDND vouchers and ModI signatures (needs `with_clients`).
    pub fn with_pdnd(mut self, pdnd: PdndVerifier) -> Self {
        self.pdnd = Some(pdnd);
        self
    }

    pub async fn authenticate(&self, p: &Presented<'_>) -> Result<Caller, AuthError> {
        self.authenticate_with(p).await.map(|(caller, _)| caller)
    }

    /// Whether PDND vouchers are accepted (`--pdnd-jwks`).
    pub fn pdnd_enabled(&self) -> bool {
        self.pdnd.is_some()
    }

    /// Authenticates and says with which credential: [`Authenticator::identify`], then the
    /// ModI signature over `p.body`.
    pub async fn authenticate_with(&self, p: &Presented<'_>) -> Result<(Caller, Credential), AuthError> {
        let (caller, credential, need) = self.identify(p).await?;
        self.integrity(p, &need).await?;
        Ok((caller, credential))
    }

    /// Checks the credential on the request's headers alone, and says what ModI integrity
    /// check the body still needs ([`IntegrityNeed::needs_body`]).
    pub async fn identify(&self, p: &Presented<'_>) -> Result<(Caller, Credential, IntegrityNeed), AuthError> {
        let request_id = p.headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
        // SPID/CIE operator session cookie, only when no Authorization header is sent.
        if let Some(rp) = self.sessions.as_ref().filter(|_| !p.headers.contains_key(axum::http::header::AUTHORIZATION))
            && let Some(op) = rp.session_operator(p.headers, p.method).await.map_err(|e| AuthError::Other(e.to_string()))?
        {
            return Ok((operator_caller(op, &rp.config().purpose, request_id), Credential::Session, IntegrityNeed::none()));
        }
        if let (Some(der), Some(registry)) = (p.client_cert, &self.clients)
            && let Some(client) = registry.by_certificate(der).await.map_err(unavailable)?
        {
            if client.disabled {
                return Err(AuthError::ClientDisabled);
            }
            let caller = clients::caller_for(&client, client.roles.clone(), "", request_id);
            return Ok((caller, Credential::Certificate, IntegrityNeed { required: false, client: Some(client) }));
        }
        let token = bearer(p.headers)?;
        let head = jwt::peek(token).ok_or(AuthError::Malformed)?;
        match head.alg.as_str() {
            "EdDSA" if head.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(oauth::TOKEN_TYPE)) => {
                let (Some(access), Some(registry)) = (&self.access, &self.clients) else {
                    return Err(AuthError::UnsupportedToken);
                };
                let claims = access.verify(token)?;
                let client = registry.find(&claims.client_id).await.map_err(unavailable)?.ok_or(AuthError::UnknownClient)?;
                if client.disabled {
                    return Err(AuthError::ClientDisabled);
                }
                // Roles withdrawn from the client since the token was issued are not granted.
                let roles = claims.roles.into_iter().filter(|r| client.roles.contains(r)).collect();
                let caller = clients::caller_for(&client, roles, "", request_id);
                Ok((caller, Credential::AccessToken, IntegrityNeed { required: false, client: Some(client) }))
            }
            "EdDSA" => {
                if !self.accept_hub_tokens {
                    return Err(AuthError::HubTokenNotAccepted);
                }
                let caller = self.hub_tokens.verify(token, request_id).map_err(|e| match e {
                    core_cartella::auth::TokenError::Expired => AuthError::Expired,
                    core_cartella::auth::TokenError::Invalid => AuthError::BadSignature,
                    core_cartella::auth::TokenError::Claim(c) => AuthError::MissingClaim(c),
                    other => AuthError::Other(other.to_string()),
                })?;
                // No registered client, so no ModI keys: a signature it carries is refused.
                Ok((caller, Credential::HubToken, IntegrityNeed::none()))
            }
            alg if pdnd::is_rsa_alg(alg) => {
                let (Some(pdnd), Some(registry)) = (&self.pdnd, &self.clients) else {
                    return Err(AuthError::UnsupportedToken);
                };
                let voucher = pdnd.verify_voucher_peeked(token, &head).await?;
                let client = registry.by_pdnd_id(&voucher.client_id).await.map_err(unavailable)?.ok_or(AuthError::UnknownClient)?;
                if client.disabled {
                    return Err(AuthError::ClientDisabled);
                }
                // A voucher is for one purpose: PDND issues the same client vouchers for each
                // purpose it subscribed, and only the registered one is accepted here.
                if client.pdnd_purpose_id.as_deref() != Some(voucher.purpose_id.as_str()) {
                    return Err(AuthError::WrongPurpose);
                }
                let purpose = if client.purpose.is_empty() { format!("PDND purposeId {}", voucher.purpose_id) } else { String::new() };
                let caller = clients::caller_for(&client, client.roles.clone(), &purpose, request_id);
                let need = IntegrityNeed { required: pdnd.config().require_integrity, client: Some(client) };
                Ok((caller, Credential::PdndVoucher, need))
            }
            _ => Err(AuthError::AlgNotAllowed),
        }
    }

    /// ModI integrity: checked whenever `Agid-JWT-Signature` is present, with the ModI keys
    /// of the registered client the request authenticated as (none: no keys to verify
    /// with); a required one refuses its absence. A request whose body was not read cannot
    /// carry a signature over it.
    pub async fn integrity(&self, p: &Presented<'_>, need: &IntegrityNeed) -> Result<(), AuthError> {
        if !p.headers.contains_key(modi::SIGNATURE_HEADER) {
            return if need.required { Err(AuthError::Modi(ModiError::Required)) } else { Ok(()) };
        }
        let (Some(pdnd), Some(registry)) = (&self.pdnd, &self.clients) else {
            return Err(AuthError::Modi(ModiError::NotConfigured));
        };
        let body = p.body.ok_or(AuthError::Modi(ModiError::BodyNotSignable))?;
        modi::verify_integrity(pdnd, registry.store(), need.client.as_ref(), p.headers, body).await?;
        self.purge_jtis(registry);
        Ok(())
    }

    /// Drops expired signature ids now and then, off the request's path.
    fn purge_jtis(&self, registry: &ClientRegistry) {
        let now = jwt::now_secs();
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < JTI_PURGE_EVERY_SECS || self.last_purge.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let store = registry.store().clone();
        tokio::spawn(async move {
            if let Err(e) = store.purge_jtis(now).await {
                tracing::warn!(error = %e, "purging expired ModI signature ids failed");
            }
        });
    }
}

/// The caller core sees for an operator logged in with SPID/CIE. Role names the edge store
/// does not know are dropped (it writes only known ones).
pub fn operator_caller(op: spid_cie::OperatorIdentity, purpose: &str, request_id: &str) -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: op.operator_id,
        ente: op.ente,
        ufficio: op.ufficio,
        roles: op.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        purpose: purpose.to_string(),
        request_id: request_id.to_string(),
    }
}

/// The bearer token of the Authorization header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let v = headers.get(axum::http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let v = v.to_str().map_err(|_| AuthError::Malformed)?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).ok_or(AuthError::Malformed)?.trim();
    if t.is_empty() { Err(AuthError::Malformed) } else { Ok(t) }
}

/// The credential a request was authenticated with (in the request's extensions next to the
/// `Caller`), for routes that accept only some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A caller token signed by the hub (`sigess token`).
    HubToken,
    /// An access token from the hub's `/oauth/token`.
    AccessToken,
    /// A PDND voucher.
    PdndVoucher,
    /// An mTLS client certificate.
    Certificate,
    /// An SPID/CIE operator session.
    Session,
}

/// Why [`Authenticator::admit`] turned a request away.
#[derive(Debug)]
pub enum Admission {
    Refused(AuthError),
    /// The body a ModI signature covers is over [`MAX_AUTH_BODY`].
    TooLarge,
}

impl Authenticator {
    /// Authenticates a request as it arrives: the credential on its headers first (nobody
    /// unknown gets a body read), then, only when a ModI signature covers the body, the body
    /// buffered and the signature checked. Returns the body to pass on, buffered or not.
    pub async fn admit(&self, parts: &axum::http::request::Parts, body: Body) -> Result<(Caller, Credential, Body), Admission> {
        let cert = parts.extensions.get::<ClientCert>().map(|c| c.0.clone());
        let unread = Presented {
            headers: &parts.headers,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            body: None,
            client_cert: cert.as_deref(),
        };
        let (caller, credential, need) = self.identify(&unread).await.map_err(Admission::Refused)?;
        if !need.needs_body(&parts.headers) {
            return Ok((caller, credential, body));
        }
        let bytes: Bytes = axum::body::to_bytes(body, MAX_AUTH_BODY).await.map_err(|_| Admission::TooLarge)?;
        self.integrity(&Presented { body: Some(&bytes), ..unread }, &need).await.map_err(Admission::Refused)?;
        Ok((caller, credential, Body::from(bytes)))
    }
}

/// Middleware: authenticates the request ([`Authenticator::admit`]) and puts the `Caller` and
/// its [`Credential`] in its extensions.
pub async fn require_caller(State(auth): State<Authenticator>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match auth.admit(&parts, body).await {
        Ok((caller, credential, body)) => {
            parts.extensions.insert(caller);
            parts.extensions.insert(credential);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(Admission::TooLarge) => {
            crate::problem::problem(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", "the request body is too large")
        }
        Err(Admission::Refused(e)) => {
            tracing::info!(reason = e.reason(), "request refused at authentication");
            e.into_response()
        }
    }
}
