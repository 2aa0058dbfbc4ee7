//! OAuth2 client credentials (RFC 6749 §4.4): `POST /oauth/token` issues registered system
//! clients an access token the gateway then accepts as a bearer.
//!
//! The access token is a JWT (RFC 9068 `at+jwt`) signed with the hub's EdDSA key, audience
//! `sigess-gateway`: core, which only accepts audience `sigess-core`, refuses it, so it cannot
//! bypass the gateway. It names the client and the granted roles; ente and ufficio are read
//! from the registry on each use, so disabling a client takes effect before its tokens expire.
use std::{fmt, fs, path::Path, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, Extension, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use core_cartella::auth::Role;

use crate::edge_store::ClientRecord;
use josekit::{
    jws::{
        EdDSA, JwsHeader,
        alg::eddsa::{EddsaJwsSigner, EddsaJwsVerifier},
    },
    jwt::{self, JwtPayload},
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::stack::limit::{Decision, Limiter, RateConfig};

use super::{
    AuthError,
    clients::{ClientRegistry, SecretCheck},
    jwt::{check_times, has_audience, is_signature_failure, now_secs, str_claim},
};

pub const ISSUER: &str = core_cartella::auth::ISSUER;
pub const AUDIENCE: &str = "sigess-gateway";
/// JWS `typ` of access tokens (RFC 9068); tells them apart from caller tokens before verifying.
pub const TOKEN_TYPE: &str = "at+jwt";
/// Default lifetime of an access token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Clock skew tolerated on `exp`/`iat`.
const LEEWAY_SECS: i64 = 60;
/// Longest client id and secret looked at; longer ones are refused without hashing.
const MAX_CLIENT_ID: usize = 128;
const MAX_SECRET: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read access-token key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("access-token key is not an Ed25519 PKCS#8 PEM key")]
    Invalid,
}

/// Issues and verifies the hub's access tokens. Cheap to clone.
#[derive(Clone)]
pub struct AccessTokens {
    signer: Arc<EddsaJwsSigner>,
    verifier: Arc<EddsaJwsVerifier>,
    ttl: Duration,
}

impl fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// What a verified access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    pub client_id: String,
    pub roles: Vec<Role>,
}

impl AccessTokens {
    /// From an Ed25519 private key in PKCS#8 PEM: the hub's signing key (`--signing-key`) or
    /// a key of its own.
    pub fn from_pem(private_pem: &[u8], ttl: Duration) -> Result<Self, KeyError> {
        let pair = EdDSA.key_pair_from_pem(private_pem).map_err(|_| KeyError::Invalid)?;
        let signer = EdDSA.signer_from_pem(private_pem).map_err(|_| KeyError::Invalid)?;
        let verifier = EdDSA.verifier_from_pem(pair.to_pem_public_key()).map_err(|_| KeyError::Invalid)?;
        Ok(Self { signer: Arc::new(signer), verifier: Arc::new(verifier), ttl })
    }

    /// Reads the key file at `path` (it is not created: the signing key exists by then).
    pub fn load(path: &Path, ttl: Duration) -> Result<Self, KeyError> {
        let pem = fs::read(path).map_err(|source| KeyError::Read { path: path.display().to_string(), source })?;
        Self::from_pem(&pem, ttl)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for `client` carrying `roles`.
    pub fn issue(&self, client: &ClientRecord, roles: &[Role]) -> Result<String, AuthError> {
        let mut header = JwsHeader::new();
        header.set_token_type(TOKEN_TYPE);
        let mut p = JwtPayload::new();
        let now = now_secs();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let scope = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" ");
        let claims = [
            ("iss", Value::from(ISSUER)),
            ("aud", Value::from(AUDIENCE)),
            ("sub", Value::from(client.client_id.clone())),
            ("client_id", Value::from(client.client_id.clone())),
            ("scope", Value::from(scope)),
            ("jti", Value::from(uuid::Uuid::new_v4().to_string())),
            ("iat", Value::from(now)),
            ("exp", Value::from(now.saturating_add(ttl))),
        ];
        for (k, v) in claims {
            p.set_claim(k, Some(v)).map_err(|_| AuthError::Other("cannot build access token".into()))?;
        }
        jwt::encode_with_signer(&p, &header, self.signer.as_ref()).map_err(|_| AuthError::Other("cannot sign access token".into()))
    }

    /// Verifies signature, `typ`, issuer, audience and lifetime.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let (payload, header) = jwt::decode_with_verifier(token, self.verifier.as_ref())
            .map_err(|e| if is_signature_failure(&e) { AuthError::BadSignature } else { AuthError::Malformed })?;
        if header.token_type() != Some(TOKEN_TYPE) {
            return Err(AuthError::Malformed);
        }
        if payload.issuer() != Some(ISSUER) {
            return Err(AuthError::WrongIssuer);
        }
        if !has_audience(&payload, AUDIENCE) {
            return Err(AuthError::WrongAudience);
        }
        check_times(&payload, LEEWAY_SECS, true).map_err(AuthError::from)?;
        let client_id = str_claim(&payload, "client_id").ok_or(AuthError::MissingClaim("client_id"))?.to_string();
        let roles = str_claim(&payload, "scope").unwrap_or_default().split_whitespace().filter_map(Role::parse).collect();
        Ok(AccessClaims { client_id, roles })
    }
}

/// Bounds on the work `/oauth/token` does before a client is known. Checking a secret runs
/// Argon2id (about 19 MiB and tens of milliseconds each), so requests are first counted
/// against their source address and the client id they name, and only a few checks run at
/// once; past either bound the answer is 429 or 503 with `Retry-After`, before any hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLimits {
    /// Secret checks running at once, over the whole endpoint.
    pub concurrent_checks: usize,
    /// How long a request waits for a free check before it is answered 503.
    pub check_wait: Duration,
    /// Token requests per source address.
    pub per_source: RateConfig,
    /// Token requests naming one client id (known or not).
    pub per_client: RateConfig,
}

impl Default for TokenLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            concurrent_checks: cpus.clamp(2, 8),
            check_wait: Duration::from_secs(2),
            per_source: RateConfig { per_minute: 120, burst: 30 },
            per_client: RateConfig { per_minute: 60, burst: 10 },
        }
    }
}

/// The bounds of [`TokenLimits`] at run time.
#[derive(Clone, Debug)]
struct Guard {
    checks: Arc<Semaphore>,
    check_wait: Duration,
    per_source: Limiter,
    per_client: Limiter,
}

impl Guard {
    fn new(l: TokenLimits) -> Self {
        let per_source = Limiter::new(l.per_source);
        let per_client = Limiter::new(l.per_client);
        per_source.prune_periodically(Duration::from_secs(60));
        per_client.prune_periodically(Duration::from_secs(60));
        Self { checks: Arc::new(Semaphore::new(l.concurrent_checks.max(1))), check_wait: l.check_wait, per_source, per_client }
    }
}

/// State of the token endpoint.
#[derive(Clone, Debug)]
pub struct OAuthState {
    pub registry: ClientRegistry,
    pub tokens: AccessTokens,
    guard: Guard,
}

/// `POST /oauth/token`, outside the authentication middleware (it is where credentials are
/// exchanged). Mount it next to the REST router; serve it with connection info
/// (`into_make_service_with_connect_info::<SocketAddr>`) so requests are counted per source
/// address (without it every request counts against one shared source).
pub fn oauth_router(registry: ClientRegistry, tokens: AccessTokens, limits: TokenLimits) -> Router {
    Router::new().route("/oauth/token", post(token_endpoint)).with_state(OAuthState { registry, tokens, guard: Guard::new(limits) })
}

/// An RFC 6749 §5.2 error answer.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    /// Whether the client authenticated with HTTP Basic (then a 401 carries a challenge).
    basic: bool,
    /// Seconds for `Retry-After` on a 429.
    retry_after: u64,
}

impl OAuthError {
    fn bad(error: &'static str, description: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error, description, basic: false, retry_after: 0 }
    }

    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed",
            basic,
            retry_after: 0,
        }
    }

    fn unavailable(description: &'static str) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, error: "temporarily_unavailable", description, basic: false, retry_after: 0 }
    }

    fn too_many(description: &'static str, retry_after: u64) -> Self {
        Self { status: StatusCode::TOO_MANY_REQUESTS, error: "temporarily_unavailable", description, basic: false, retry_after }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({ "error": self.error, "error_description": self.description }))).into_response();
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic { r#"Basic realm="sigess""# } else { r#"Bearer realm="sigess""# };
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::problem::RETRY_AFTER_UNAVAILABLE));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after.max(1)));
        }
        r
    }
}

/// Client id and secret from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded before base64).
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| ());
    Some(decoded.and_then(|raw| {
        let text = String::from_utf8(raw).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        let unescape = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    }))
}

async fn token_endpoint(
    State(st): State<OAuthState>,
    source: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = source.map_or_else(|| "unknown".to_string(), |Extension(ConnectInfo(a))| a.ip().to_string());
    match grant(&st, &source, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = e.error, "token request refused");
            e.into_response()
        }
    }
}

async fn grant(st: &OAuthState, source: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    if let Decision::Limited { retry_after_secs } = st.guard.per_source.check(source) {
        return Err(OAuthError::too_many("too many token requests from this address", retry_after_secs));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(OAuthError::bad("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if params.iter().any(|(seen, _)| *seen == k) {
            return Err(OAuthError::bad("invalid_request", "a parameter is repeated"));
        }
        params.push((k.into_owned(), v.into_owned()));
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    match param("grant_type") {
        None => return Err(OAuthError::bad("invalid_request", "grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::bad("unsupported_grant_type", "only client_credentials is supported"));
        }
    }
    let basic = basic_credentials(headers);
    let (client_id, secret, used_basic) = match (basic, param("client_id"), param("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::bad("invalid_request", "use one client authentication method, not both"));
        }
        (Some(Err(())), _, _) => return Err(OAuthError::invalid_client(true)),
        (Some(Ok((id, secret))), form_id, None) => {
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::bad("invalid_request", "client_id does not match the Basic credentials"));
            }
            (id, secret, true)
        }
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string(), false),
        (None, _, _) => return Err(OAuthError::invalid_client(false)),
    };
    if client_id.len() > MAX_CLIENT_ID || secret.len() > MAX_SECRET {
        return Err(OAuthError::invalid_client(used_basic));
    }
    if let Decision::Limited { retry_after_secs } = st.guard.per_client.check(&client_id) {
        return Err(OAuthError::too_many("too many token requests for this client", retry_after_secs));
    }
    let permit = match tokio::time::timeout(st.guard.check_wait, Arc::clone(&st.guard.checks).acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => return Err(OAuthError::unavailable("too many token requests at once")),
    };
    let checked = st.registry.authenticate_secret(&client_id, &secret).await;
    drop(permit);
    let client = match checked {
        Ok(c) => c,
        Err(SecretCheck::Refused) => return Err(OAuthError::invalid_client(used_basic)),
        Err(SecretCheck::Unavailable) => return Err(OAuthError::unavailable("the client registry is unavailable")),
    };
    let roles = match param("scope") {
        None => client.roles.clone(),
        Some(scope) => {
            let mut granted = Vec::new();
            for s in scope.split_whitespace() {
                match Role::parse(s) {
                    Some(r) if client.roles.contains(&r) => {
                        if !granted.contains(&r) {
                            granted.push(r);
                        }
                    }
                    _ => {
                        return Err(OAuthError::bad("invalid_scope", "the scope asks for a role the client does not hold"));
                    }
                }
            }
            granted
        }
    };
    let token = st.tokens.issue(&client, &roles).map_err(|_| OAuthError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: "server_error",
        description: "the token could not be signed",
        basic: false,
        retry_after: 0,
    })?;
    tracing::info!(client = %client.client_id, "access token issued");
    let scope = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" ");
    let body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": st.tokens.ttl().as_secs(),
        "scope": scope,
    });
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}
