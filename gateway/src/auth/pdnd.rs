//! PDND vouchers (AUTH_REST_01): RS256 access tokens that PDND issues to a consumer for one
//! purpose, verified against PDND's key set, and the key set itself.
//!
//! The key set comes from a file or an HTTPS URL (`--pdnd-jwks`). It is cached and reloaded
//! when older than the refresh interval, and at once (at most every few seconds) when a
//! token names a `kid` the cached set lacks, so a PDND key rotation needs no restart. When a
//! reload fails the last good set stays in use.
use std::{
    fmt,
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use josekit::{
    jwk::{Jwk, JwkSet},
    jws::{JwsAlgorithm, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512},
    jwt::{self, JwtPayload},
};
use tokio::sync::{Mutex, RwLock};

use super::{
    AuthError,
    jwt::{Peek, check_times, has_audience, is_signature_failure, str_claim},
};

/// Default clock-skew leeway on `exp`/`nbf`/`iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default age after which the key set is reloaded.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Least time between two reloads caused by an unknown `kid` (a flood of made-up kids must
/// not turn into a flood of fetches).
const MIN_RELOAD_GAP: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the PDND key set is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://…`; plain `http://` only to a loopback host.
    Url(String),
}

impl FromStr for JwksSource {
    type Err = PdndError;
    fn from_str(s: &str) -> Result<Self, PdndError> {
        if let Some(rest) = s.strip_prefix("http://") {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let host =
                host.rsplit_once(':').filter(|(h, p)| !h.is_empty() && p.bytes().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h);
            if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                return Err(PdndError::Config("the PDND key set URL must be https:// (http:// only on loopback)".into()));
            }
            Ok(Self::Url(s.to_string()))
        } else if s.starts_with("https://") {
            Ok(Self::Url(s.to_string()))
        } else if s.is_empty() {
            Err(PdndError::Config("empty PDND key set location".into()))
        } else {
            Ok(Self::File(PathBuf::from(s)))
        }
    }
}

/// How vouchers and ModI signatures are checked (`--pdnd-*` flags).
#[derive(Clone, Debug)]
pub struct PdndConfig {
    pub jwks: JwksSource,
    /// `aud` every voucher must carry (the e-service's audience on PDND).
    pub audience: String,
    /// `iss` every voucher must carry (e.g. `interop.pagopa.it`); None accepts any.
    pub issuer: Option<String>,
    /// `aud` of `Agid-JWT-Signature`; None means the voucher audience.
    pub modi_audience: Option<String>,
    /// Refuse vouchers whose request carries no `Agid-JWT-Signature`.
    pub require_integrity: bool,
    pub leeway: Duration,
    pub refresh: Duration,
}

impl PdndConfig {
    pub fn new(jwks: JwksSource, audience: impl Into<String>) -> Self {
        Self {
            jwks,
            audience: audience.into(),
            issuer: None,
            modi_audience: None,
            require_integrity: false,
            leeway: DEFAULT_LEEWAY,
            refresh: DEFAULT_REFRESH,
        }
    }

    pub(crate) fn leeway_secs(&self) -> i64 {
        i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PdndError {
    #[error("PDND configuration: {0}")]
    Config(String),
    #[error("cannot load the PDND key set: {0}")]
    Load(String),
}

struct Cached {
    set: Arc<JwkSet>,
    loaded: Instant,
}

/// PDND's key set, cached. Cheap to clone.
#[derive(Clone)]
pub struct PdndKeys {
    source: JwksSource,
    refresh: Duration,
    http: reqwest::Client,
    cached: Arc<RwLock<Cached>>,
    /// One reload at a time; holds when the last one was tried.
    reload: Arc<Mutex<Instant>>,
}

impl fmt::Debug for PdndKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdndKeys").field("source", &self.source).finish_non_exhaustive()
    }
}

impl PdndKeys {
    /// Loads the key set once; fails when it cannot be read, so a misconfigured gateway
    /// does not start.
    pub async fn load(source: JwksSource, refresh: Duration) -> Result<Self, PdndError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PdndError::Load(e.to_string()))?;
        let set = fetch(&source, &http).await?;
        let now = Instant::now();
        Ok(Self {
            source,
            refresh,
            http,
            cached: Arc::new(RwLock::new(Cached { set: Arc::new(set), loaded: now })),
            // A kid unknown right after start may be a rotation in between: allow a reload at once.
            reload: Arc::new(Mutex::new(now.checked_sub(MIN_RELOAD_GAP).unwrap_or(now))),
        })
    }

    /// The keys named `kid`. A stale set still answers at once while one reload runs in
    /// the background (a PDND outage costs no request any time); a `kid` the set lacks waits
    /// for one reload, shared by every request that needs it, and reloads are tried at most
    /// every few seconds, so an outage never serialises voucher checks behind fetches.
    pub(crate) async fn keys_for(&self, kid: &str) -> Vec<Jwk> {
        let (set, loaded) = {
            let c = self.cached.read().await;
            (c.set.clone(), c.loaded)
        };
        let found: Vec<Jwk> = set.get(kid).into_iter().cloned().collect();
        if !found.is_empty() {
            if loaded.elapsed() >= self.refresh {
                self.reload_in_background();
            }
            return found;
        }
        let mut last_try = self.reload.lock().await;
        // Someone else may have reloaded while this waited.
        let current = self.cached.read().await.set.clone();
        if !Arc::ptr_eq(&current, &set) {
            return current.get(kid).into_iter().cloned().collect();
        }
        if last_try.elapsed() < MIN_RELOAD_GAP {
            return found;
        }
        *last_try = Instant::now();
        self.reload_now().await.map(|fresh| fresh.get(kid).into_iter().cloned().collect()).unwrap_or(found)
    }

    /// Starts one reload unless one is running or was tried within the last few seconds.
    fn reload_in_background(&self) {
        let Ok(mut last_try) = Arc::clone(&self.reload).try_lock_owned() else {
            return;
        };
        if last_try.elapsed() < MIN_RELOAD_GAP {
            return;
        }
        *last_try = Instant::now();
        let keys = self.clone();
        tokio::spawn(async move {
            let _ = keys.reload_now().await;
            drop(last_try);
        });
    }

    /// Fetches the set and keeps it; on failure keeps the last good one.
    async fn reload_now(&self) -> Option<Arc<JwkSet>> {
        match fetch(&self.source, &self.http).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.cached.write().await = Cached { set: fresh.clone(), loaded: Instant::now() };
                Some(fresh)
            }
            Err(e) => {
                tracing::warn!(error = %e, "PDND key set reload failed; keeping the last one");
                None
            }
        }
    }
}

async fn fetch(source: &JwksSource, http: &reqwest::Client) -> Result<JwkSet, PdndError> {
    let bytes = match source {
        JwksSource::File(path) => tokio::fs::read(path).await.map_err(|e| PdndError::Load(format!("{}: {e}", path.display())))?,
        JwksSource::Url(url) => {
            let res = http.get(url).send().await.map_err(|e| PdndError::Load(e.without_url().to_string()))?;
            if !res.status().is_success() {
                return Err(PdndError::Load(format!("HTTP {}", res.status())));
            }
            let b = res.bytes().await.map_err(|e| PdndError::Load(e.without_url().to_string()))?;
            b.to_vec()
        }
    };
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(PdndError::Load("key set too large".into()));
    }
    JwkSet::from_bytes(&bytes).map_err(|_| PdndError::Load("not a JWK set".into()))
}

/// The RSA signature algorithms accepted from PDND's keys and from clients' ModI keys.
/// Nothing symmetric, never `none`.
pub(crate) fn rsa_verifier(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    fn boxed<V: JwsVerifier + 'static>(r: Result<V, josekit::JoseError>) -> Option<Box<dyn JwsVerifier>> {
        r.ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>)
    }
    match alg {
        "RS256" => boxed(RS256.verifier_from_jwk(jwk)),
        "RS384" => boxed(RS384.verifier_from_jwk(jwk)),
        "RS512" => boxed(RS512.verifier_from_jwk(jwk)),
        "PS256" => boxed(PS256.verifier_from_jwk(jwk)),
        "PS384" => boxed(PS384.verifier_from_jwk(jwk)),
        "PS512" => boxed(PS512.verifier_from_jwk(jwk)),
        _ => None,
    }
}

/// Whether `alg` is one of the RSA algorithms above.
pub(crate) fn is_rsa_alg(alg: &str) -> bool {
    [RS256.name(), RS384.name(), RS512.name(), PS256.name(), PS384.name(), PS512.name()].contains(&alg)
}

/// Why a JWS against PDND's keys failed before its claims were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JwsFailure {
    Malformed,
    AlgNotAllowed,
    UnknownKid,
    BadSignature,
}

/// Verifies the signature of `token` with the key its `kid` names in `keys`, accepting only
/// the algorithms in `allowed`.
pub(crate) async fn verify_jws(keys: &PdndKeys, token: &str, peek: &Peek, allowed: &[&str]) -> Result<JwtPayload, JwsFailure> {
    if !allowed.contains(&peek.alg.as_str()) {
        return Err(JwsFailure::AlgNotAllowed);
    }
    let kid = peek.kid.as_deref().ok_or(JwsFailure::UnknownKid)?;
    let candidates = keys.keys_for(kid).await;
    verify_jws_with(candidates.iter(), token, peek)
}

/// Verifies the signature of `token` with one of `candidates` (the keys its `kid` names, in
/// whichever set the caller trusts), with the algorithm of its header, which the caller has
/// already checked against its allow-list. `UnknownKid` when there is no candidate.
pub(crate) fn verify_jws_with<'a>(
    candidates: impl IntoIterator<Item = &'a Jwk>,
    token: &str,
    peek: &Peek,
) -> Result<JwtPayload, JwsFailure> {
    let mut candidates = candidates.into_iter().peekable();
    if candidates.peek().is_none() {
        return Err(JwsFailure::UnknownKid);
    }
    let mut failure = JwsFailure::BadSignature;
    for jwk in candidates {
        // A key of the wrong type or use for this alg cannot verify it: not a forgery, but no match.
        let Some(verifier) = rsa_verifier(&peek.alg, jwk) else {
            continue;
        };
        match jwt::decode_with_verifier(token, verifier.as_ref()) {
            Ok((payload, _)) => return Ok(payload),
            Err(e) if is_signature_failure(&e) => failure = JwsFailure::BadSignature,
            Err(_) => failure = JwsFailure::Malformed,
        }
    }
    Err(failure)
}

/// What a verified voucher says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voucher {
    /// PDND's id of the consumer client (claim `client_id`, else `sub`).
    pub client_id: String,
    pub purpose_id: String,
    pub expires_at: i64,
}

/// Verifies PDND vouchers, and holds the audience and leeway ModI signatures are checked with
/// (their keys are the calling client's own, see `modi`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct PdndVerifier {
    cfg: Arc<PdndConfig>,
    keys: PdndKeys,
}

impl PdndVerifier {
    /// Loads the key set named by `cfg`.
    pub async fn from_config(cfg: PdndConfig) -> Result<Self, PdndError> {
        if cfg.audience.is_empty() {
            return Err(PdndError::Config("--pdnd-audience is required with --pdnd-jwks".into()));
        }
        let keys = PdndKeys::load(cfg.jwks.clone(), cfg.refresh).await?;
        Ok(Self { cfg: Arc::new(cfg), keys })
    }

    pub fn config(&self) -> &PdndConfig {
        &self.cfg
    }

    /// Verifies a voucher: RS256 signature by a key of the set, `iss`, `aud`, lifetime,
    /// `purposeId` and the client id.
    pub async fn verify_voucher(&self, token: &str) -> Result<Voucher, AuthError> {
        let head = super::jwt::peek(token).ok_or(AuthError::Malformed)?;
        self.verify_voucher_peeked(token, &head).await
    }

    pub(crate) async fn verify_voucher_peeked(&self, token: &str, peek: &Peek) -> Result<Voucher, AuthError> {
        let payload = verify_jws(&self.keys, token, peek, &["RS256"]).await.map_err(|f| match f {
            JwsFailure::Malformed => AuthError::Malformed,
            JwsFailure::AlgNotAllowed => AuthError::AlgNotAllowed,
            JwsFailure::UnknownKid => AuthError::UnknownKid,
            JwsFailure::BadSignature => AuthError::BadSignature,
        })?;
        if let Some(iss) = &self.cfg.issuer
            && payload.issuer() != Some(iss.as_str())
        {
            return Err(AuthError::WrongIssuer);
        }
        if !has_audience(&payload, &self.cfg.audience) {
            return Err(AuthError::WrongAudience);
        }
        let expires_at = check_times(&payload, self.cfg.leeway_secs(), false).map_err(AuthError::from)?;
        let purpose_id = str_claim(&payload, "purposeId").ok_or(AuthError::MissingClaim("purposeId"))?.to_string();
        let client_id = str_claim(&payload, "client_id")
            .or_else(|| str_claim(&payload, "sub"))
            .ok_or(AuthError::MissingClaim("client_id"))?
            .to_string();
        Ok(Voucher { client_id, purpose_id, expires_at })
    }
}
