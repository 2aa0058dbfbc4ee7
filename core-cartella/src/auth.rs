//! The verified caller of every core call, and the short-lived caller token the hub signs to
//! carry it (EdDSA JWS, josekit). The gateway mints; core only verifies, and never trusts an
//! unsigned header.
use std::{
    collections::HashMap,
    fmt, fs,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use josekit::{
    jwk::alg::ed::EdCurve,
    jws::{
        EdDSA, JwsHeader,
        alg::eddsa::{EddsaJwsSigner, EddsaJwsVerifier},
    },
    jwt::{self, JwtPayload, JwtPayloadValidator},
};
use serde_json::Value;

pub const ISSUER: &str = "sigess-hub";
pub const AUDIENCE: &str = "sigess-core";
/// Longest lifetime core accepts for a token, whatever its `exp` says.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest declared purpose, in characters. A purpose is copied into every audit row a call
/// writes (one per record read), so its size multiplies; 200 characters name any purpose of
/// processing an operator or a client declares.
pub const MAX_PURPOSE_CHARS: usize = 200;
/// Tokens whose signature a verifier remembers; past this, tokens no longer valid are
/// forgotten, and if that is not enough, all of them.
const VERIFIED_TOKENS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// A social worker (identified by the hub's operator id, not by codice fiscale).
    Operatore,
    /// A system client: a municipal app, an adapter, INPS through PDND.
    Sistema,
}

impl CallerKind {
    /// The name used in caller tokens (`knd`) and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operatore => "operatore",
            Self::Sistema => "sistema",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads and writes cartelle in scope.
    Operatore,
    /// Reads cartelle in scope.
    Consultazione,
    /// Reads aggregates only (conoscitivo level).
    Statistica,
    /// Operates the hub (deliveries, dead letters, replay); reads no records by this role.
    Amministratore,
    /// INPS's SIUSS consumer (WaaS): is served the ente's SIUSS flows and posts their esiti;
    /// reads no records by this role.
    Siuss,
    /// The data protection officer: reads the registro degli accessi (the audit trail about
    /// a person), no records by this role.
    Dpo,
    /// Keeps one anagrafica per person: decides the pairs record linkage left for review,
    /// merges personas found to be one and undoes merges, within its scope. Reads the
    /// personas of the pairs it examines (audited), no other records by this role.
    Anagrafe,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "operatore" => Some(Self::Operatore),
            "consultazione" => Some(Self::Consultazione),
            "statistica" => Some(Self::Statistica),
            "amministratore" => Some(Self::Amministratore),
            "siuss" => Some(Self::Siuss),
            "dpo" => Some(Self::Dpo),
            "anagrafe" => Some(Self::Anagrafe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operatore => "operatore",
            Self::Consultazione => "consultazione",
            Self::Statistica => "statistica",
            Self::Amministratore => "amministratore",
            Self::Siuss => "siuss",
            Self::Dpo => "dpo",
            Self::Anagrafe => "anagrafe",
        }
    }
}

/// Who is calling, as the hub verified it.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    pub kind: CallerKind,
    /// Opaque id: the hub's operator id or the system client id.
    pub subject: String,
    pub ente: String,
    /// None = the whole ente (e.g. the Social Policy Department, INPS).
    pub ufficio: Option<String>,
    pub roles: Vec<Role>,
    /// Declared purpose of processing, written to the audit trail.
    pub purpose: String,
    pub request_id: String,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("kind", &self.kind)
            .field("ente", &self.ente)
            .field("ufficio", &self.ufficio)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn can_read(&self) -> bool {
        self.has(Role::Operatore) || self.has(Role::Consultazione)
    }

    pub fn can_write(&self) -> bool {
        self.has(Role::Operatore)
    }

    /// The purpose a call that declares `requested` is audited with. An operator may name the
    /// purpose of each read; a system client acts only for the purpose it was registered
    /// with, so naming another is refused (naming none, or the same, is fine).
    pub fn purpose_for<'a>(&'a self, requested: &'a str) -> Result<&'a str, PurposeError> {
        check_purpose(requested)?;
        if requested.is_empty() {
            return Ok(&self.purpose);
        }
        if self.kind == CallerKind::Sistema && !self.purpose.is_empty() && requested != self.purpose {
            return Err(PurposeError::NotRegistered);
        }
        Ok(requested)
    }
}

/// Why a declared purpose is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PurposeError {
    #[error("is longer than 200 characters")]
    TooLong,
    #[error("contains control characters")]
    Control,
    #[error("differs from the purpose registered for this client")]
    NotRegistered,
}

/// Checks the shape of a declared purpose: at most [`MAX_PURPOSE_CHARS`] characters, none of
/// them a control character (line breaks and escapes would forge lines in exported audit
/// trails). Empty is accepted: the caller's own purpose is used instead.
pub fn check_purpose(purpose: &str) -> Result<(), PurposeError> {
    if purpose.chars().count() > MAX_PURPOSE_CHARS {
        return Err(PurposeError::TooLong);
    }
    if purpose.chars().any(char::is_control) {
        return Err(PurposeError::Control);
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("caller token missing")]
    Missing,
    #[error("caller token malformed or signature invalid")]
    Invalid,
    #[error("caller token expired or not yet valid")]
    Expired,
    #[error("caller token lacks claim {0}")]
    Claim(&'static str),
    #[error("key: {0}")]
    Key(String),
}

/// Verifies caller tokens. Cheap to clone; clones share what they remember.
#[derive(Clone)]
pub struct TokenVerifier {
    verifier: Arc<EddsaJwsVerifier>,
    kid: Arc<str>,
    /// Payloads of valid tokens whose signature this key verified, by the whole token. The
    /// same token presented again skips the signature check (the costly part, an Ed25519
    /// verification), never the checks of its claims and times.
    verified: Arc<Mutex<HashMap<String, Arc<JwtPayload>>>>,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenVerifier")
    }
}

/// Mints caller tokens. Only the gateway (and `sigess token`) hold one.
#[derive(Clone)]
pub struct TokenSigner {
    signer: Arc<EddsaJwsSigner>,
    public_pem: Vec<u8>,
    kid: String,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSigner")
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenSigner {
    /// Loads the Ed25519 private key (PKCS#8 PEM) at `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, TokenError> {
        let pem = if path.exists() {
            fs::read(path).map_err(|e| TokenError::Key(format!("cannot read {}: {e}", path.display())))?
        } else {
            let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(|e| TokenError::Key(e.to_string()))?;
            let pem = pair.to_pem_private_key();
            if let Some(dir) = path.parent() {
                crate::private_fs::create_dir(dir).map_err(|e| TokenError::Key(format!("cannot create {}: {e}", dir.display())))?;
            }
            write_private(path, &pem)?;
            pem
        };
        Self::from_pem(&pem)
    }

    pub fn from_pem(pem: &[u8]) -> Result<Self, TokenError> {
        let pair = EdDSA.key_pair_from_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?;
        let signer = EdDSA.signer_from_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?;
        let public_pem = pair.to_pem_public_key();
        Ok(Self { signer: Arc::new(signer), kid: key_id(&public_pem)?, public_pem })
    }

    /// The `kid` of this key's tokens.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifier(&self) -> Result<TokenVerifier, TokenError> {
        TokenVerifier::from_public_pem(&self.public_pem)
    }

    pub fn public_pem(&self) -> &[u8] {
        &self.public_pem
    }

    pub fn mint(&self, caller: &Caller, ttl: Duration) -> Result<String, TokenError> {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let mut p = JwtPayload::new();
        let now = now_secs();
        let set = |p: &mut JwtPayload, k: &str, v: Value| p.set_claim(k, Some(v)).map_err(|e| TokenError::Key(e.to_string()));
        p.set_issuer(ISSUER);
        p.set_audience(vec![AUDIENCE]);
        p.set_subject(&caller.subject);
        set(&mut p, "iat", Value::from(now))?;
        set(&mut p, "exp", Value::from(now + ttl.as_secs()))?;
        // A jti names each token in logs and lets a verifier refuse one that was revoked.
        p.set_jwt_id(uuid::Uuid::new_v4().simple().to_string());
        set(&mut p, "knd", Value::from(caller.kind.as_str()))?;
        set(&mut p, "ente", Value::from(caller.ente.clone()))?;
        if let Some(u) = &caller.ufficio {
            set(&mut p, "uff", Value::from(u.clone()))?;
        }
        set(&mut p, "roles", Value::from(caller.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()))?;
        set(&mut p, "pur", Value::from(caller.purpose.clone()))?;
        jwt::encode_with_signer(&p, &header, self.signer.as_ref()).map_err(|e| TokenError::Key(e.to_string()))
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key (PEM): the `kid` of the tokens it
/// verifies. Verifiers refuse a token whose `kid` is another key's, which keeps a rotated
/// key's tokens apart and tells an operator which key signed a token.
fn key_id(public_pem: &[u8]) -> Result<String, TokenError> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest, Sha256};
    let der = pem_body(public_pem)?;
    // An Ed25519 SubjectPublicKeyInfo ends with the 32 bytes of the key.
    let x = der.get(12..).filter(|x| x.len() == 32).ok_or_else(|| TokenError::Key("not an Ed25519 public key".into()))?;
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(x));
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The DER inside a PEM block.
fn pem_body(pem: &[u8]) -> Result<Vec<u8>, TokenError> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let text = std::str::from_utf8(pem).map_err(|_| TokenError::Key("PEM is not text".into()))?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    STANDARD.decode(b64).map_err(|_| TokenError::Key("PEM body is not base64".into()))
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &[u8]) -> Result<(), TokenError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TokenError::Key(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(pem).map_err(|e| TokenError::Key(e.to_string()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &[u8]) -> Result<(), TokenError> {
    fs::write(path, pem).map_err(|e| TokenError::Key(e.to_string()))
}

impl TokenVerifier {
    pub fn from_public_pem(pem: &[u8]) -> Result<Self, TokenError> {
        let v = EdDSA.verifier_from_pem(pem).map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(Self { verifier: Arc::new(v), kid: key_id(pem)?.into(), verified: Arc::default() })
    }

    pub fn verify(&self, token: &str, request_id: &str) -> Result<Caller, TokenError> {
        let now = SystemTime::now();
        let remembered = self.verified.lock().ok().and_then(|m| m.get(token).cloned());
        let payload = match &remembered {
            Some(p) => p.clone(),
            None => {
                let (payload, header) = jwt::decode_with_verifier(token, self.verifier.as_ref()).map_err(|_| TokenError::Invalid)?;
                // The signature is this key's; a kid naming another key (or none) is a token
                // minted outside `TokenSigner::mint`.
                if header.key_id() != Some(&*self.kid) {
                    return Err(TokenError::Claim("kid"));
                }
                Arc::new(payload)
            }
        };
        let caller = match Self::caller(&payload, now, request_id) {
            Ok(c) => c,
            Err(e) => {
                if remembered.is_some() {
                    self.verified.lock().ok().map(|mut m| m.remove(token));
                }
                return Err(e);
            }
        };
        if remembered.is_none() {
            self.remember(token, payload, now);
        }
        Ok(caller)
    }

    fn remember(&self, token: &str, payload: Arc<JwtPayload>, now: SystemTime) {
        let Ok(mut m) = self.verified.lock() else { return };
        if m.len() >= VERIFIED_TOKENS {
            m.retain(|_, p| still_valid(p, now));
            if m.len() >= VERIFIED_TOKENS {
                m.clear();
            }
        }
        m.insert(token.to_string(), payload);
    }

    /// The caller a payload with a verified signature describes, if its claims and times
    /// are acceptable at `now`.
    fn caller(payload: &JwtPayload, now: SystemTime, request_id: &str) -> Result<Caller, TokenError> {
        let mut validator = JwtPayloadValidator::new();
        validator.set_issuer(ISSUER);
        validator.set_audience(AUDIENCE);
        validator.set_base_time(now);
        validator.set_min_issued_time(now - MAX_TTL);
        validator.set_max_issued_time(now + Duration::from_secs(60));
        // The validator checks aud and iat only when they are present: absent, they are refused.
        for (claim, present) in [
            ("exp", payload.expires_at().is_some()),
            ("iat", payload.issued_at().is_some()),
            ("aud", payload.audience().is_some()),
            ("jti", payload.jwt_id().is_some_and(|j| !j.is_empty())),
        ] {
            if !present {
                return Err(TokenError::Claim(claim));
            }
        }
        validator.validate(payload).map_err(|e| match e {
            josekit::JoseError::InvalidClaim(_) => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        let str_claim = |k: &'static str| payload.claim(k).and_then(Value::as_str).map(str::to_string);
        let kind = match str_claim("knd").as_deref() {
            Some("operatore") => CallerKind::Operatore,
            Some("sistema") => CallerKind::Sistema,
            _ => return Err(TokenError::Claim("knd")),
        };
        let subject = payload.subject().ok_or(TokenError::Claim("sub"))?.to_string();
        let ente = str_claim("ente").filter(|e| !e.is_empty()).ok_or(TokenError::Claim("ente"))?;
        let roles = payload
            .claim("roles")
            .and_then(Value::as_array)
            .ok_or(TokenError::Claim("roles"))?
            .iter()
            .filter_map(|r| r.as_str().and_then(Role::parse))
            .collect();
        Ok(Caller {
            kind,
            subject,
            ente,
            ufficio: str_claim("uff").filter(|u| !u.is_empty()),
            roles,
            purpose: match payload.claim("pur") {
                None => String::new(),
                Some(v) => v.as_str().filter(|p| check_purpose(p).is_ok()).ok_or(TokenError::Claim("pur"))?.to_string(),
            },
            request_id: request_id.to_string(),
        })
    }
}

/// Whether a token accepted earlier may still be accepted at `now` (it would be forgotten
/// otherwise; what is remembered is checked again on every use anyway).
fn still_valid(p: &JwtPayload, now: SystemTime) -> bool {
    p.expires_at().is_some_and(|exp| exp > now) && p.issued_at().is_none_or(|iat| iat + MAX_TTL > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            kind: CallerKind::Operatore,
            subject: "op-1".into(),
            ente: "H501".into(),
            ufficio: Some("M01".into()),
            roles: vec![Role::Operatore],
            purpose: "presa in carico".into(),
            request_id: String::new(),
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).expect("key");
        let again = TokenSigner::load_or_create(&dir.path().join("k.pem")).expect("key reloads");
        assert_eq!(signer.public_pem(), again.public_pem());
        let v = signer.verifier().expect("verifier");
        let t = signer.mint(&caller(), Duration::from_secs(60)).expect("mint");
        assert_eq!(v.verify(&t, "r1").expect("valid"), Caller { request_id: "r1".into(), ..caller() });

        let expired = signer.mint(&caller(), Duration::from_secs(0)).expect("mint");
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(v.verify(&expired, ""), Err(TokenError::Expired)));

        let other = TokenSigner::load_or_create(&dir.path().join("other.pem")).expect("key");
        let forged = other.mint(&caller(), Duration::from_secs(60)).expect("mint");
        assert!(matches!(v.verify(&forged, ""), Err(TokenError::Invalid)));

        let mut parts: Vec<&str> = t.split('.').collect();
        parts[2] = "";
        assert!(matches!(v.verify(&parts.join("."), ""), Err(TokenError::Invalid)));
        assert!(matches!(v.verify("garbage", ""), Err(TokenError::Invalid)));
    }

    /// A token signed by the right key is still refused when it lacks `aud`, `iat`, `jti` or
    /// this key's `kid`, or carries a purpose that is too long; `mint` writes all of them.
    #[test]
    fn tokens_need_aud_iat_jti_and_kid() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).expect("key");
        let v = signer.verifier().expect("verifier");
        let good = signer.mint(&caller(), Duration::from_secs(60)).expect("mint");
        let (payload, header) = jwt::decode_with_verifier(&good, v.verifier.as_ref()).expect("decodes");
        assert_eq!(header.key_id(), Some(signer.kid()));
        assert_eq!(signer.kid().len(), 43, "a base64url SHA-256 thumbprint");
        assert!(payload.jwt_id().is_some_and(|j| j.len() >= 32));
        let again = signer.mint(&caller(), Duration::from_secs(60)).expect("mint");
        let (p2, _) = jwt::decode_with_verifier(&again, v.verifier.as_ref()).expect("decodes");
        assert_ne!(payload.jwt_id(), p2.jwt_id(), "each token its own jti");

        let sign = |p: &JwtPayload, kid: Option<&str>| {
            let mut h = JwsHeader::new();
            h.set_token_type("JWT");
            if let Some(k) = kid {
                h.set_key_id(k);
            }
            jwt::encode_with_signer(p, &h, signer.signer.as_ref()).expect("sign")
        };
        let without = |claim: &str| {
            let mut p = payload.clone();
            let mut map = p.claims_set().clone();
            map.remove(claim);
            p = JwtPayload::from_map(map).expect("payload");
            sign(&p, Some(signer.kid()))
        };
        assert_eq!(v.verify(&sign(&payload, Some(signer.kid())), "").expect("the same claims, re-signed").subject, "op-1");
        for claim in ["aud", "iat", "jti", "exp"] {
            let r = v.verify(&without(claim), "");
            assert!(matches!(r, Err(TokenError::Claim(c)) if c == claim), "{claim}: {r:?}");
        }
        assert!(matches!(v.verify(&sign(&payload, None), ""), Err(TokenError::Claim("kid"))));
        assert!(matches!(v.verify(&sign(&payload, Some("another-key")), ""), Err(TokenError::Claim("kid"))));
        let mut long = payload.clone();
        long.set_claim("pur", Some(Value::from("x".repeat(MAX_PURPOSE_CHARS + 1)))).expect("claim");
        assert!(matches!(v.verify(&sign(&long, Some(signer.kid())), ""), Err(TokenError::Claim("pur"))));
    }

    #[test]
    fn purpose_shape_and_registered_purpose() {
        assert_eq!(check_purpose(""), Ok(()));
        assert_eq!(check_purpose(&"à".repeat(MAX_PURPOSE_CHARS)), Ok(()));
        assert_eq!(check_purpose(&"a".repeat(MAX_PURPOSE_CHARS + 1)), Err(PurposeError::TooLong));
        assert_eq!(check_purpose("riga\nnuova"), Err(PurposeError::Control));
        assert_eq!(check_purpose("tab\t"), Err(PurposeError::Control));
        let op = caller();
        assert_eq!(op.purpose_for(""), Ok("presa in carico"));
        assert_eq!(op.purpose_for("verifica"), Ok("verifica"));
        let sys = Caller { kind: CallerKind::Sistema, ..caller() };
        assert_eq!(sys.purpose_for(""), Ok("presa in carico"));
        assert_eq!(sys.purpose_for("presa in carico"), Ok("presa in carico"));
        assert_eq!(sys.purpose_for("verifica"), Err(PurposeError::NotRegistered));
        let unregistered = Caller { purpose: String::new(), ..sys };
        assert_eq!(unregistered.purpose_for("verifica"), Ok("verifica"));
    }

    /// A token seen before skips only the signature check: its times are checked on every
    /// use, another key's verifier does not share it, and a changed token is a new token.
    #[test]
    fn remembered_tokens_are_still_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let signer = TokenSigner::load_or_create(&dir.path().join("k.pem")).expect("key");
        let v = signer.verifier().expect("verifier");
        let t = signer.mint(&caller(), Duration::from_secs(2)).expect("mint");
        assert_eq!(v.verify(&t, "r1").expect("valid"), Caller { request_id: "r1".into(), ..caller() });
        assert_eq!(v.clone().verify(&t, "r2").expect("valid again").request_id, "r2");
        assert_eq!(v.verified.lock().expect("lock").len(), 1, "the clone shares what was verified");

        let mut parts: Vec<&str> = t.split('.').collect();
        let mut sig = parts[2].to_string();
        let flipped = if &sig[10..11] == "A" { "B" } else { "A" };
        sig.replace_range(10..11, flipped);
        parts[2] = &sig;
        assert!(matches!(v.verify(&parts.join("."), ""), Err(TokenError::Invalid)), "same payload, another signature");
        let other = TokenSigner::load_or_create(&dir.path().join("other.pem")).expect("key").verifier().expect("verifier");
        assert!(matches!(other.verify(&t, ""), Err(TokenError::Invalid)), "another key");

        std::thread::sleep(Duration::from_millis(2100));
        assert!(matches!(v.verify(&t, ""), Err(TokenError::Expired)), "expiry is checked on every use");
        assert!(v.verified.lock().expect("lock").is_empty(), "an expired token is forgotten");
    }
}
