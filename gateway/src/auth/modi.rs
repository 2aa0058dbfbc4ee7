//! ModI INTEGRITY_REST_01: the `Agid-JWT-Signature` header signs, through its
//! `signed_headers` claim, the request's `Digest` (RFC 3230, `SHA-256=<base64>`), which must
//! in turn be the SHA-256 of the body actually received.
//!
//! The signature is verified with the PDND key set (by `kid`), its audience and lifetime
//! checked, and its `jti` recorded in the store with its expiry: a second request with the
//! same signature is refused, whichever gateway replica it reaches.
use axum::http::HeaderMap;
use base64::{Engine, engine::general_purpose::STANDARD};
use core_cartella::store::Store;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    jwt::{TimeError, check_times, has_audience, now_secs, peek, str_claim},
    pdnd::{JwsFailure, PdndVerifier, is_rsa_alg, verify_jws},
};

pub const SIGNATURE_HEADER: &str = "agid-jwt-signature";
pub const DIGEST_HEADER: &str = "digest";

/// Why an `Agid-JWT-Signature` was refused. Each names the check that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModiError {
    #[error("malformed")]
    Malformed,
    #[error("signature algorithm not allowed")]
    AlgNotAllowed,
    #[error("key id not in the PDND key set")]
    UnknownKid,
    #[error("signature invalid")]
    BadSignature,
    #[error("wrong audience")]
    WrongAudience,
    #[error("expired or not yet valid")]
    Expired,
    #[error("lacks claim {0}")]
    MissingClaim(&'static str),
    #[error("the request has no Digest header, or no SHA-256 digest in it")]
    MissingDigest,
    #[error("the Digest header does not match the request body")]
    DigestMismatch,
    #[error("signed_headers does not match the request headers")]
    SignedHeadersMismatch,
    #[error("already used (jti replayed)")]
    Replay,
    #[error("not accepted: no PDND key set is configured")]
    NotConfigured,
    #[error("required with a PDND voucher and missing")]
    Required,
}

impl ModiError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "modi_malformed",
            Self::AlgNotAllowed => "modi_alg_not_allowed",
            Self::UnknownKid => "modi_unknown_kid",
            Self::BadSignature => "modi_bad_signature",
            Self::WrongAudience => "modi_wrong_audience",
            Self::Expired => "modi_expired",
            Self::MissingClaim(_) => "modi_missing_claim",
            Self::MissingDigest => "modi_missing_digest",
            Self::DigestMismatch => "modi_digest_mismatch",
            Self::SignedHeadersMismatch => "modi_signed_headers_mismatch",
            Self::Replay => "modi_replay",
            Self::NotConfigured => "modi_not_configured",
            Self::Required => "modi_required",
        }
    }
}

/// What a verified integrity signature established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    pub jti: String,
    pub expires_at: i64,
}

/// The `SHA-256=` value of a `Digest` header (it may list several algorithms).
fn sha256_of_digest_header(v: &str) -> Option<&str> {
    v.split(',').map(str::trim).find_map(|part| {
        let (alg, value) = part.split_once('=')?;
        alg.trim()
            .eq_ignore_ascii_case("SHA-256")
            .then(|| value.trim())
    })
}

/// The `Digest` header value of `body` as ModI writes it.
pub fn digest_header_value(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Checks `signed_headers` against the request: it must sign the `Digest` header as sent,
/// and every other header it names must carry the signed value.
fn check_signed_headers(
    claim: Option<&Value>,
    headers: &HeaderMap,
    digest: &str,
) -> Result<(), ModiError> {
    let entries = claim
        .and_then(Value::as_array)
        .ok_or(ModiError::MissingClaim("signed_headers"))?;
    let mut digest_signed = false;
    for entry in entries {
        let obj = entry.as_object().ok_or(ModiError::Malformed)?;
        for (name, value) in obj {
            let value = value.as_str().ok_or(ModiError::Malformed)?.trim();
            let name = name.to_ascii_lowercase();
            if name == DIGEST_HEADER {
                if value != digest {
                    return Err(ModiError::SignedHeadersMismatch);
                }
                digest_signed = true;
            } else if header_text(headers, &name) != Some(value) {
                return Err(ModiError::SignedHeadersMismatch);
            }
        }
    }
    if digest_signed {
        Ok(())
    } else {
        Err(ModiError::SignedHeadersMismatch)
    }
}

/// Verifies the request's `Agid-JWT-Signature` (which must be present) and records its `jti`.
pub async fn verify_integrity(
    pdnd: &PdndVerifier,
    store: &Store,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Integrity, super::AuthError> {
    let (issuer, jti, expires_at) = verify(pdnd, headers, body)
        .await
        .map_err(super::AuthError::Modi)?;
    // Only a signature that passed every check may use up its jti.
    let leeway = pdnd.config().leeway_secs();
    match store
        .remember_jti(&issuer, &jti, expires_at.saturating_add(leeway), now_secs())
        .await
    {
        Ok(true) => Ok(Integrity { jti, expires_at }),
        Ok(false) => Err(super::AuthError::Modi(ModiError::Replay)),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a ModI signature id");
            Err(super::AuthError::Unavailable)
        }
    }
}

/// Every check but the replay one; returns the issuer, `jti` and expiry to record.
async fn verify(
    pdnd: &PdndVerifier,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String, i64), ModiError> {
    let token = header_text(headers, SIGNATURE_HEADER).ok_or(ModiError::Required)?;
    let head = peek(token).ok_or(ModiError::Malformed)?;
    if !is_rsa_alg(&head.alg) {
        return Err(ModiError::AlgNotAllowed);
    }
    let payload = verify_jws(
        pdnd.keys(),
        token,
        &head,
        &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
    )
    .await
    .map_err(|f| match f {
        JwsFailure::Malformed => ModiError::Malformed,
        JwsFailure::AlgNotAllowed => ModiError::AlgNotAllowed,
        JwsFailure::UnknownKid => ModiError::UnknownKid,
        JwsFailure::BadSignature => ModiError::BadSignature,
    })?;
    let cfg = pdnd.config();
    let audience = cfg.modi_audience.as_deref().unwrap_or(&cfg.audience);
    if !has_audience(&payload, audience) {
        return Err(ModiError::WrongAudience);
    }
    let expires_at = check_times(&payload, cfg.leeway_secs(), true).map_err(|e| match e {
        TimeError::Missing(c) => ModiError::MissingClaim(c),
        TimeError::Expired | TimeError::NotYetValid => ModiError::Expired,
    })?;
    let jti = str_claim(&payload, "jti")
        .ok_or(ModiError::MissingClaim("jti"))?
        .to_string();
    let digest = header_text(headers, DIGEST_HEADER).ok_or(ModiError::MissingDigest)?;
    check_signed_headers(payload.claim("signed_headers"), headers, digest)?;
    let sent = sha256_of_digest_header(digest).ok_or(ModiError::MissingDigest)?;
    let actual = Sha256::digest(body);
    // Decoding before comparing tolerates padding differences; a value that is not base64 cannot match.
    if STANDARD.decode(sent).ok().as_deref() != Some(&actual[..]) {
        return Err(ModiError::DigestMismatch);
    }
    let issuer = str_claim(&payload, "iss")
        .or(head.kid.as_deref())
        .unwrap_or_default()
        .to_string();
    Ok((issuer, jti, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_header_parsing() {
        let v = digest_header_value(b"{}");
        assert!(v.starts_with("SHA-256="));
        assert_eq!(
            sha256_of_digest_header(&format!("MD5=abc, {v}")),
            v.strip_prefix("SHA-256=")
        );
        assert_eq!(sha256_of_digest_header("MD5=abc"), None);
    }
}
