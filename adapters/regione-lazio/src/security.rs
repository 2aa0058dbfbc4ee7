//! Outbound security of a regional e-service call: the PDND voucher, and the ModI headers.
//!
//! - **PDND voucher**: a client assertion (RS256 with the hub's key and `kid`; `iss` = `sub`
//!   = client id, `aud` = PDND's audience, `jti`, `purposeId`) exchanged at the configured
//!   token endpoint for a voucher (`client_credentials`), cached until 60 s before it
//!   expires.
//! - **AUDIT_REST_02**: `Agid-JWT-TrackingEvidence` names who acts and why (`userID`,
//!   `userLocation`, `LoA`, `purposeId`, `dnonce`). Deliveries are made by the hub's own
//!   system user, not by an operator, so one tracking evidence serves every call made with
//!   one voucher: it is made with the voucher, bound to it through the assertion's `digest`
//!   claim (SHA-256 of the evidence), and cached with it.
//! - **INTEGRITY_REST_01**: `Digest: SHA-256=<base64>` of the body, and `Agid-JWT-Signature`
//!   whose `signed_headers` carries that digest and the `content-type`; one per request.
use std::time::{Duration, Instant, SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD};
use josekit::{
    jws::{JwsHeader, RS256, alg::rsassa::RsassaJwsSigner},
    jwt::{self, JwtPayload},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::config::PdndConfig;

/// How long a client assertion, a tracking evidence and an integrity signature live.
const ASSERTION_TTL: Duration = Duration::from_secs(300);
const TRACKING_TTL: Duration = Duration::from_secs(600);
const SIGNATURE_TTL: Duration = Duration::from_secs(300);
/// A voucher is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// The system user named in the tracking evidence: deliveries are the hub's, not a person's.
pub const SYSTEM_USER: &str = "sigess-hub/regione-lazio";

/// Why a voucher could not be had. No values of the request or of the answer are kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("cannot sign with the configured key")]
    Sign,
    #[error("PDND token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("PDND token endpoint answered HTTP {0}")]
    Refused(u16),
    #[error("PDND token endpoint answered without a usable access_token/expires_in")]
    BadAnswer,
}

/// The hub's signing identity on PDND.
pub struct Signer {
    client_id: String,
    kid: String,
    signer: RsassaJwsSigner,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("client_id", &self.client_id).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(cfg: &PdndConfig) -> Result<Self, SecurityError> {
        let signer = RS256.signer_from_pem(&cfg.key_pem).map_err(|_| SecurityError::Sign)?;
        Ok(Self { client_id: cfg.client_id.clone(), kid: cfg.kid.clone(), signer })
    }

    /// A signed JWT with the standard claims (`iss`, `sub` = client id; `aud`; `iat`, `nbf`,
    /// `exp`; a fresh `jti`) plus `claims`.
    fn sign(&self, audience: &str, ttl: Duration, claims: Value) -> Result<String, SecurityError> {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let mut p = JwtPayload::new();
        let now = SystemTime::now();
        p.set_issuer(&self.client_id);
        p.set_subject(&self.client_id);
        p.set_audience(vec![audience]);
        p.set_issued_at(&now);
        p.set_not_before(&now);
        p.set_expires_at(&(now + ttl));
        p.set_jwt_id(uuid::Uuid::new_v4().to_string());
        if let Value::Object(map) = claims {
            for (k, v) in map {
                p.set_claim(&k, Some(v)).map_err(|_| SecurityError::Sign)?;
            }
        }
        jwt::encode_with_signer(&p, &header, &self.signer).map_err(|_| SecurityError::Sign)
    }
}

/// The `Digest` header value of `body` (RFC 3230, as ModI writes it).
pub fn digest_header(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// INTEGRITY_REST_01 for one request: (`Digest`, `Agid-JWT-Signature`).
pub fn integrity(signer: &Signer, audience: &str, body: &[u8], content_type: &str) -> Result<(String, String), SecurityError> {
    let digest = digest_header(body);
    let jws =
        signer.sign(audience, SIGNATURE_TTL, json!({ "signed_headers": [{ "digest": digest }, { "content-type": content_type }] }))?;
    Ok((digest, jws))
}

/// A voucher with the tracking evidence it is bound to (when ModI is on).
#[derive(Clone, Debug)]
pub struct Voucher {
    pub access_token: String,
    pub tracking_evidence: Option<String>,
    renew_at: Instant,
}

/// Obtains and caches PDND vouchers.
#[derive(Debug)]
pub struct Pdnd {
    cfg: PdndConfig,
    signer: Signer,
    modi_audience: Option<String>,
    cache: Mutex<Option<Voucher>>,
}

impl Pdnd {
    pub fn new(cfg: PdndConfig, modi_audience: Option<String>) -> Result<Self, SecurityError> {
        let signer = Signer::new(&cfg)?;
        Ok(Self { cfg, signer, modi_audience, cache: Mutex::new(None) })
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Drops the cached voucher (the region refused it).
    pub async fn forget(&self) {
        *self.cache.lock().await = None;
    }

    /// The cached voucher, or a new one from the token endpoint.
    pub async fn voucher(&self, http: &reqwest::Client) -> Result<Voucher, SecurityError> {
        let mut cache = self.cache.lock().await;
        if let Some(v) = cache.as_ref()
            && Instant::now() < v.renew_at
        {
            return Ok(v.clone());
        }
        let v = self.fetch(http).await?;
        *cache = Some(v.clone());
        Ok(v)
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Voucher, SecurityError> {
        let tracking = match &self.modi_audience {
            Some(aud) => Some(self.signer.sign(
                aud,
                TRACKING_TTL,
                json!({
                    "purposeId": self.cfg.purpose_id,
                    "dnonce": rand::random_range(1_000_000_000_000u64..10_000_000_000_000),
                    "userID": SYSTEM_USER,
                    "userLocation": "sigess-hub",
                    "LoA": "substantial",
                }),
            )?),
            None => None,
        };
        let mut claims = json!({ "purposeId": self.cfg.purpose_id });
        if let Some(t) = &tracking {
            let hex: String = Sha256::digest(t.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            claims["digest"] = json!({ "alg": "SHA256", "value": hex });
        }
        let assertion = self.signer.sign(&self.cfg.audience, ASSERTION_TTL, claims)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ];
        let body = form.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect::<Vec<_>>().join("&");
        let resp = http
            .post(&self.cfg.token_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| SecurityError::Unreachable(transport_kind(&e).into()))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(SecurityError::Refused(status));
        }
        let bytes = resp.bytes().await.map_err(|_| SecurityError::BadAnswer)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| SecurityError::BadAnswer)?;
        let token = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or(SecurityError::BadAnswer)?;
        let expires_in = v.get("expires_in").and_then(Value::as_u64).ok_or(SecurityError::BadAnswer)?;
        let mut lifetime = Duration::from_secs(expires_in);
        if tracking.is_some() {
            lifetime = lifetime.min(TRACKING_TTL);
        }
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        Ok(Voucher { access_token: token.to_string(), tracking_evidence: tracking, renew_at })
    }
}

/// A reqwest error's kind, without the URL or anything it may quote.
pub fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused or failed"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "answer unreadable"
    } else {
        "transport error"
    }
}

/// application/x-www-form-urlencoded encoding of one value.
fn url_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> (PdndConfig, Vec<u8>) {
        let kp = RS256.generate_key_pair(2048).expect("key");
        let cfg = PdndConfig {
            token_url: "http://127.0.0.1:9/token".into(),
            client_id: "client-1".into(),
            kid: "kid-1".into(),
            key_pem: kp.to_pem_private_key(),
            audience: "pdnd-aud".into(),
            purpose_id: "purpose-1".into(),
        };
        (cfg, kp.to_pem_public_key())
    }

    #[test]
    fn integrity_signs_digest_and_content_type() {
        let (cfg, public) = cfg();
        let signer = Signer::new(&cfg).expect("signer");
        let body = br#"{"resourceType":"Bundle"}"#;
        let (digest, jws) = integrity(&signer, "modi-aud", body, "application/fhir+json").expect("signed");
        assert_eq!(digest, format!("SHA-256={}", STANDARD.encode(Sha256::digest(body))));
        let verifier = RS256.verifier_from_pem(&public).expect("verifier");
        let (payload, header) = jwt::decode_with_verifier(&jws, &verifier).expect("valid signature");
        assert_eq!(header.key_id(), Some("kid-1"));
        assert_eq!(payload.audience(), Some(vec!["modi-aud"]));
        assert_eq!(payload.issuer(), Some("client-1"));
        assert_eq!(payload.claim("signed_headers"), Some(&json!([{ "digest": digest }, { "content-type": "application/fhir+json" }])));
        // A different key does not verify it.
        let other = RS256.generate_key_pair(2048).expect("key");
        let wrong = RS256.verifier_from_pem(other.to_pem_public_key()).expect("verifier");
        assert!(jwt::decode_with_verifier(&jws, &wrong).is_err());
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(url_encode("a b/c=d&e"), "a+b%2Fc%3Dd%26e");
    }
}
