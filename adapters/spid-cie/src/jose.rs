//! Signing and verifying the compact JWS the federation and OIDC exchange, on josekit.
//! Verification is strict by construction: only asymmetric algorithms (RS/PS/ES 256-512)
//! are accepted, so `none` and HMAC tokens are refused before any key is looked at; the
//! key is the one named by the header's `kid` in the key set the caller trusts for that
//! token, never one carried by the token itself.
use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use josekit::{
    jwk::Jwk,
    jws::{self, ES256, ES384, ES512, JwsHeader, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512},
};
use rand::RngCore;
use serde_json::{Map, Value};

use crate::{
    error::{Error, Result},
    keys::RpKey,
};

/// Clock skew tolerated on `iat`/`exp`/`nbf`, in seconds.
pub const LEEWAY: i64 = 60;

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `n` random bytes, base64url: state, nonce, PKCE verifier, session ids, CSRF tokens.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Signs `claims` as a compact JWS with the key's RS256 signer, its `kid`, and `typ`.
pub fn sign(claims: &Map<String, Value>, typ: Option<&str>, key: &RpKey) -> Result<String> {
    let mut header = JwsHeader::new();
    header.set_key_id(key.kid());
    if let Some(t) = typ {
        header.set_token_type(t);
    }
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Jose(e.to_string()))?;
    let signer = key.signer()?;
    jws::serialize_compact(&payload, &header, signer.as_ref()).map_err(|e| Error::Jose(e.to_string()))
}

fn b64_json(part: &str, what: &'static str) -> Result<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| Error::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::Malformed(what)),
    }
}

/// Header and payload of a compact JWS, NOT verified: only to find which keys to verify it
/// with (an entity configuration carries its own), never to trust what it says.
pub fn peek(token: &str, what: &'static str) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(_), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(Error::Malformed(what));
    };
    Ok((b64_json(h, what)?, b64_json(p, what)?))
}

fn verifier_for(alg: &str, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    fn boxed<V: JwsVerifier + 'static>(r: std::result::Result<V, josekit::JoseError>) -> Option<Box<dyn JwsVerifier>> {
        r.ok().map(|v| Box::new(v) as Box<dyn JwsVerifier>)
    }
    match alg {
        "RS256" => boxed(RS256.verifier_from_jwk(jwk)),
        "RS384" => boxed(RS384.verifier_from_jwk(jwk)),
        "RS512" => boxed(RS512.verifier_from_jwk(jwk)),
        "PS256" => boxed(PS256.verifier_from_jwk(jwk)),
        "PS384" => boxed(PS384.verifier_from_jwk(jwk)),
        "PS512" => boxed(PS512.verifier_from_jwk(jwk)),
        "ES256" => boxed(ES256.verifier_from_jwk(jwk)),
        "ES384" => boxed(ES384.verifier_from_jwk(jwk)),
        "ES512" => boxed(ES512.verifier_from_jwk(jwk)),
        _ => None,
    }
}

/// Verifies a compact JWS against `keys` (JWK objects) and returns its claims.
///
/// `what` names the token in errors; `typ`, when given, must equal the header's `typ`.
pub fn verify(token: &str, keys: &[Value], what: &'static str, typ: Option<&str>) -> Result<Map<String, Value>> {
    let (header, _) = peek(token, what)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if !matches!(alg, "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "ES512") {
        return Err(Error::Algorithm { what, alg: alg.chars().take(16).collect() });
    }
    if let Some(t) = typ
        && header.get("typ").and_then(Value::as_str) != Some(t)
    {
        return Err(Error::claim(what, "typ"));
    }
    if header.contains_key("crit") {
        // No extension is understood here, so a token that makes one critical is refused.
        return Err(Error::claim(what, "crit"));
    }
    let kid = header.get("kid").and_then(Value::as_str).ok_or(Error::claim(what, "kid"))?;
    let jwk_value = keys.iter().find(|k| k.get("kid").and_then(Value::as_str) == Some(kid)).ok_or(Error::UnknownKid(what))?;
    let mut map = jwk_value.as_object().cloned().ok_or(Error::UnknownKid(what))?;
    // A published key with `alg` other than the header's is not for this token; without
    // `alg` the key fits any algorithm of its type. An `enc` key never verifies.
    if let Some(a) = map.get("alg").and_then(Value::as_str)
        && a != alg
    {
        return Err(Error::Algorithm { what, alg: alg.to_string() });
    }
    if map.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return Err(Error::UnknownKid(what));
    }
    map.remove("key_ops");
    let jwk = Jwk::from_map(map).map_err(|_| Error::Malformed(what))?;
    let verifier = verifier_for(alg, &jwk).ok_or_else(|| Error::Algorithm { what, alg: alg.to_string() })?;
    let (payload, _) = jws::deserialize_compact(token, verifier.as_ref()).map_err(|_| Error::Signature(what))?;
    match serde_json::from_slice(&payload) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Error::Malformed(what)),
    }
}

/// Integer claim (`iat`, `exp`): floats are truncated since some issuers write them.
pub fn int_claim(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// `iat` not in the future and `exp` present and not past (both with `LEEWAY`).
pub fn check_times(claims: &Map<String, Value>, what: &'static str, now: i64) -> Result<i64> {
    let exp = int_claim(claims, "exp").ok_or(Error::claim(what, "exp"))?;
    let iat = int_claim(claims, "iat").ok_or(Error::claim(what, "iat"))?;
    if exp + LEEWAY < now || iat - LEEWAY > now {
        return Err(Error::Expired(what));
    }
    if let Some(nbf) = int_claim(claims, "nbf")
        && nbf - LEEWAY > now
    {
        return Err(Error::Expired(what));
    }
    Ok(exp)
}

pub fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// True when `aud` (a string or a list) contains `who`.
pub fn aud_contains(claims: &Map<String, Value>, who: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(s)) => s == who,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(who)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyUse, RpKey};
    use serde_json::json;

    fn claims() -> Map<String, Value> {
        let now = now();
        json!({"iss": "a", "iat": now, "exp": now + 60}).as_object().cloned().expect("obj")
    }

    #[test]
    fn sign_verify_and_refusals() {
        let k = RpKey::generate(KeyUse::Sig).expect("key");
        let other = RpKey::generate(KeyUse::Sig).expect("key");
        let t = sign(&claims(), Some("entity-statement+jwt"), &k).expect("sign");
        let keys = vec![k.public_jwk()];
        assert_eq!(verify(&t, &keys, "t", Some("entity-statement+jwt")).expect("ok")["iss"], "a");
        assert!(matches!(verify(&t, &keys, "t", Some("other")), Err(Error::Claim { claim: "typ", .. })));
        assert!(matches!(verify(&t, &[other.public_jwk()], "t", None), Err(Error::UnknownKid(_))));
        // Same kid, other key: the signature fails.
        let mut impostor = other.public_jwk();
        impostor["kid"] = json!(k.kid());
        assert!(matches!(verify(&t, &[impostor], "t", None), Err(Error::Signature(_))));
        // Tampered payload.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"b"}"#);
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(matches!(verify(&tampered, &keys, "t", None), Err(Error::Signature(_))));
        // alg none and HS256 are refused whatever the key set holds.
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, k.kid()));
            let t = format!("{h}.{}.{}", parts[1], if alg == "none" { "" } else { parts[2] });
            assert!(matches!(verify(&t, &keys, "t", None), Err(Error::Algorithm { .. })), "{alg}");
        }
        assert!(verify("a.b", &keys, "t", None).is_err());
    }

    #[test]
    fn times() {
        let now = now();
        let mut c = claims();
        assert!(check_times(&c, "t", now).is_ok());
        c.insert("exp".into(), json!(now - 120));
        assert!(matches!(check_times(&c, "t", now), Err(Error::Expired(_))));
        c.insert("exp".into(), json!(now + 120));
        c.insert("iat".into(), json!(now + 600));
        assert!(matches!(check_times(&c, "t", now), Err(Error::Expired(_))));
        c.remove("exp");
        assert!(matches!(check_times(&c, "t", now), Err(Error::Claim { claim: "exp", .. })));
    }
}
