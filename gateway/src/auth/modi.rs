//! ModI INTEGRITY_REST_01: the `Agid-JWT-Signature` header signs, through its
//! `signed_headers` claim, the request's `Digest` (RFC 3230, `SHA-256=<base64>`), which must
//! in turn be the SHA-256 of the body actually received.
//!
//! The signature is made by the consumer client with its own key, not by PDND: it is
//! verified with the public keys registered for the client the request authenticated as
//! (`sigess client add … --modi-jwks`, the keys the consumer registered on PDND, found by
//! `kid`), whatever credential it authenticated with (PDND voucher, access token, mTLS
//! certificate). A `kid` that is not one of that client's keys is refused, so a signature by
//! another client, or by PDND, does not pass; so is a signature from a client with no keys
//! registered, or from a caller that is no registered client (hub caller tokens). Only RSA
//! algorithms (RS/PS) are accepted. Its audience (`--modi-audience`, else the PDND audience)
//! and lifetime are checked, and its `jti` recorded in the store, under the client, with its
//! expiry: a second request with the same signature is refused, whichever gateway replica
//! it reaches.
use crate::edge_store::{ClientRecord, EdgeStore};
use axum::http::HeaderMap;
use base64::{Engine, engine::general_purpose::STANDARD};
use josekit::jwk::{Jwk, JwkSet};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    jwt::{TimeError, check_times, has_audience, now_secs, peek, str_claim},
    pdnd::{JwsFailure, PdndVerifier, rsa_verifier, verify_jws_with},
};

/// Signature algorithms accepted for `Agid-JWT-Signature`.
const MODI_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

pub const SIGNATURE_HEADER: &str = "agid-jwt-signature";
/// Oldest `iat` accepted (besides the clock leeway): a signature is made for one request,
/// so an old one can only be a replay attempt the `jti` ledger may no longer remember.
pub const MAX_SIGNATURE_AGE_SECS: i64 = 300;
pub const DIGEST_HEADER: &str = "digest";

/// Why an `Agid-JWT-Signature` was refused. Each names the check that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModiError {
    #[error("malformed")]
    Malformed,
    #[error("signature algorithm not allowed")]
    AlgNotAllowed,
    #[error("signed by a key (kid) that is not one registered for the calling client")]
    UnknownKid,
    #[error("the calling client has no ModI keys registered (sigess client add --modi-jwks)")]
    NoClientKeys,
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
    #[error("not accepted: PDND is not configured (--pdnd-jwks, --pdnd-audience)")]
    NotConfigured,
    #[error("required with a PDND voucher and missing")]
    Required,
    #[error("cannot be verified here: the body is streamed, not signed (gRPC ingress); use the REST API")]
    BodyNotSignable,
    #[error("issued by another client than the one the request authenticated as")]
    SignerMismatch,
    #[error("iat too old")]
    TooOld,
}

impl ModiError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "modi_malformed",
            Self::AlgNotAllowed => "modi_alg_not_allowed",
            Self::UnknownKid => "modi_unknown_kid",
            Self::NoClientKeys => "modi_no_client_keys",
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
            Self::BodyNotSignable => "modi_body_not_signable",
            Self::SignerMismatch => "modi_signer_mismatch",
            Self::TooOld => "modi_too_old",
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
        alg.trim().eq_ignore_ascii_case("SHA-256").then(|| value.trim())
    })
}

/// The `Digest` header value of `body` as ModI writes it.
pub fn digest_header_value(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Checks `signed_headers` against the request: it must sign the `Digest` header as sent,
/// and, as the AgID guidelines for INTEGRITY_REST_01 require, `Content-Type` and (when the
/// request has one) `Content-Encoding`; every header it names must carry the signed value.
fn check_signed_headers(claim: Option<&Value>, headers: &HeaderMap, digest: &str) -> Result<(), ModiError> {
    let entries = claim.and_then(Value::as_array).ok_or(ModiError::MissingClaim("signed_headers"))?;
    let named = |h: &str| entries.iter().filter_map(Value::as_object).any(|o| o.keys().any(|k| k.eq_ignore_ascii_case(h)));
    for h in ["content-type", "content-encoding"] {
        if headers.contains_key(h) && !named(h) {
            return Err(ModiError::SignedHeadersMismatch);
        }
    }
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
    if digest_signed { Ok(()) } else { Err(ModiError::SignedHeadersMismatch) }
}

/// Verifies the request's `Agid-JWT-Signature` (which must be present) with the keys of
/// `client`, the registered client the request authenticated as (None for a caller that is
/// none), and records its `jti`.
pub async fn verify_integrity(
    pdnd: &PdndVerifier,
    store: &EdgeStore,
    client: Option<&ClientRecord>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Integrity, super::AuthError> {
    let client = client.ok_or(super::AuthError::Modi(ModiError::NoClientKeys))?;
    let (jti, expires_at) = verify(pdnd, client, headers, body).map_err(super::AuthError::Modi)?;
    // Only a signature that passed every check may use up its jti.
    let leeway = pdnd.config().leeway_secs();
    match store.remember_jti(&client.client_id, &jti, expires_at.saturating_add(leeway), now_secs()).await {
        Ok(true) => Ok(Integrity { jti, expires_at }),
        Ok(false) => Err(super::AuthError::Modi(ModiError::Replay)),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a ModI signature id");
            Err(super::AuthError::Unavailable)
        }
    }
}

/// The key set registered for `client`; None when it has none (or, which registration
/// prevents, one that no longer parses).
fn client_keys(client: &ClientRecord) -> Option<JwkSet> {
    let text = client.modi_jwks.as_deref()?;
    match JwkSet::from_bytes(text.as_bytes()) {
        Ok(set) if !set.keys().is_empty() => Some(set),
        Ok(_) => None,
        Err(e) => {
            tracing::error!(client = %client.client_id, error = %e, "stored ModI key set does not parse");
            None
        }
    }
}

/// Every check but the replay one; returns the `jti` and expiry to record.
fn verify(pdnd: &PdndVerifier, client: &ClientRecord, headers: &HeaderMap, body: &[u8]) -> Result<(String, i64), ModiError> {
    let token = header_text(headers, SIGNATURE_HEADER).ok_or(ModiError::Required)?;
    let head = peek(token).ok_or(ModiError::Malformed)?;
    if !MODI_ALGS.contains(&head.alg.as_str()) {
        return Err(ModiError::AlgNotAllowed);
    }
    let keys = client_keys(client).ok_or(ModiError::NoClientKeys)?;
    let kid = head.kid.as_deref().ok_or(ModiError::UnknownKid)?;
    let payload = verify_jws_with(keys.get(kid), token, &head).map_err(|f| match f {
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
    let iat = payload.claim("iat").and_then(Value::as_i64).ok_or(ModiError::MissingClaim("iat"))?;
    if now_secs().saturating_sub(iat) > MAX_SIGNATURE_AGE_SECS.saturating_add(cfg.leeway_secs()) {
        return Err(ModiError::TooOld);
    }
    // The signer names itself as the client the request authenticated as (its PDND client
    // id, or its hub client id), when it names itself at all.
    for claim in ["iss", "sub"] {
        if let Some(who) = str_claim(&payload, claim)
            && who != client.client_id
            && client.pdnd_client_id.as_deref() != Some(who)
        {
            return Err(ModiError::SignerMismatch);
        }
    }
    let jti = str_claim(&payload, "jti").ok_or(ModiError::MissingClaim("jti"))?.to_string();
    let digest = header_text(headers, DIGEST_HEADER).ok_or(ModiError::MissingDigest)?;
    check_signed_headers(payload.claim("signed_headers"), headers, digest)?;
    let sent = sha256_of_digest_header(digest).ok_or(ModiError::MissingDigest)?;
    let actual = Sha256::digest(body);
    // Decoding before comparing tolerates padding differences; a value that is not base64 cannot match.
    if STANDARD.decode(sent).ok().as_deref() != Some(&actual[..]) {
        return Err(ModiError::DigestMismatch);
    }
    Ok((jti, expires_at))
}

/// Members that only a private (or symmetric) key has: a key set carrying any is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Reads the ModI keys a client registers (`sigess client add --modi-jwks FILE`): a JWK or
/// a JWK set (JSON) of RSA public keys, each with a `kid`, usable to verify signatures.
/// Returns the set as it is stored (JSON text); refuses private keys, keys without `kid`,
/// non-RSA keys, repeated `kid`s and anything that is not such JSON, saying which.
pub fn parse_client_jwks(json: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let objects: Vec<&Map<String, Value>> = match &value {
        Value::Object(o) if o.contains_key("keys") => o["keys"]
            .as_array()
            .ok_or("\"keys\" must be an array of JWKs")?
            .iter()
            .map(|k| k.as_object().ok_or("every member of \"keys\" must be a JWK (an object)"))
            .collect::<Result<_, _>>()?,
        Value::Object(o) if o.contains_key("kty") => vec![o],
        _ => return Err("expected a JWK or a JWK set ({\"keys\": [...]})".into()),
    };
    if objects.is_empty() {
        return Err("the key set has no keys".into());
    }
    let mut set = JwkSet::new();
    let mut kids: Vec<String> = Vec::new();
    for (i, o) in objects.into_iter().enumerate() {
        let which = o.get("kid").and_then(Value::as_str).map_or_else(|| format!("key {}", i + 1), |k| format!("key {k:?}"));
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| o.contains_key(**m)) {
            return Err(format!("{which} holds private key material (\"{m}\"): register only the public key"));
        }
        if o.get("kty").and_then(Value::as_str) != Some("RSA") {
            return Err(format!("{which} is not an RSA key (kty must be \"RSA\")"));
        }
        let kid = match o.get("kid").and_then(Value::as_str).map(str::trim) {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => {
                return Err(format!("{which} has no kid: each key needs the kid it has on PDND"));
            }
        };
        if kids.contains(&kid) {
            return Err(format!("{which}: kid repeated"));
        }
        let jwk = Jwk::from_map(o.clone()).map_err(|e| format!("{which}: not a valid JWK: {e}"))?;
        let alg = match o.get("alg").and_then(Value::as_str) {
            Some(a) if MODI_ALGS.contains(&a) => a,
            Some(a) => {
                return Err(format!("{which}: alg {a:?} is not an RSA signature algorithm"));
            }
            None => "RS256",
        };
        if rsa_verifier(alg, &jwk).is_none() {
            return Err(format!("{which} cannot verify signatures (check n, e, use and key_ops)"));
        }
        kids.push(kid);
        set.push_key(jwk);
    }
    Ok(set.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digest_header_parsing() {
        let v = digest_header_value(b"{}");
        assert!(v.starts_with("SHA-256="));
        assert_eq!(sha256_of_digest_header(&format!("MD5=abc, {v}")), v.strip_prefix("SHA-256="));
        assert_eq!(sha256_of_digest_header("MD5=abc"), None);
    }

    fn rsa_pair(kid: &str) -> (Jwk, Jwk) {
        let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        let mut private = pair.to_jwk_private_key();
        private.set_key_id(kid);
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        (private, public)
    }

    #[test]
    fn client_key_sets_hold_only_rsa_public_keys_with_a_kid() {
        let (private, public) = rsa_pair("inps-1");
        let (_, other) = rsa_pair("inps-2");
        // One JWK, or a set.
        let one = parse_client_jwks(public.to_string().as_bytes()).unwrap();
        assert_eq!(JwkSet::from_bytes(one.as_bytes()).unwrap().get("inps-1").len(), 1);
        let mut set = JwkSet::new();
        set.push_key(public.clone());
        set.push_key(other.clone());
        let two = parse_client_jwks(set.to_string().as_bytes()).unwrap();
        assert_eq!(JwkSet::from_bytes(two.as_bytes()).unwrap().keys().len(), 2);

        let refused = |json: String, says: &str| {
            let e = parse_client_jwks(json.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        refused(private.to_string(), "private key material (\"d\")");
        let mut set = JwkSet::new();
        set.push_key(public.clone());
        set.push_key(private.clone());
        refused(set.to_string(), "private key");
        let mut no_kid = public.clone();
        no_kid.set_key_id("");
        refused(no_kid.to_string(), "no kid");
        let mut map: Map<String, Value> = public.as_ref().clone();
        map.remove("kid");
        refused(Value::Object(map).to_string(), "no kid");
        let ec = josekit::jws::ES256.generate_key_pair().unwrap();
        let mut ec = ec.to_jwk_public_key();
        ec.set_key_id("ec");
        refused(ec.to_string(), "not an RSA key");
        refused(r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#.into(), "private key");
        refused("not json".into(), "not JSON");
        refused("[]".into(), "expected a JWK");
        refused(r#"{"keys":[]}"#.into(), "no keys");
        let mut set = JwkSet::new();
        set.push_key(public.clone());
        set.push_key(public.clone());
        refused(set.to_string(), "repeated");
        refused(r#"{"kty":"RSA","kid":"x","n":"AQ","e":"AQAB","alg":"HS256"}"#.into(), "alg");
    }
}
