//! Small JWT helpers shared by every bearer kind: reading the protected header before any
//! key is chosen, and checking the time and audience claims with a leeway.
//!
//! The unverified header only routes a token to the verifier of its kind; no decision about
//! who the caller is rests on anything read before the signature has been checked.
use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use josekit::{JoseError, jwt::JwtPayload};
use serde_json::Value;

/// The routing fields of a JWS protected header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peek {
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// Reads the protected header of a compact JWS. `None` when the token is not three
/// base64url parts with a JSON object header naming its `alg`.
pub(crate) fn peek(token: &str) -> Option<Peek> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let b64 = |x: &str| x.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if h.is_empty() || p.is_empty() || !b64(h) || !b64(p) || !b64(s) {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(h).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let o = v.as_object()?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Peek { alg: text("alg")?, kid: text("kid"), typ: text("typ") })
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why the time claims were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeError {
    Missing(&'static str),
    Expired,
    NotYetValid,
}

fn seconds(payload: &JwtPayload, name: &str) -> Result<Option<i64>, TimeError> {
    match payload.claim(name) {
        None => Ok(None),
        // Whole seconds are what RFC 7519 means; fractions (josekit writes floats) are cut.
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Some).ok_or(TimeError::Expired),
        Some(_) => Err(TimeError::Missing(match name {
            "exp" => "exp",
            "iat" => "iat",
            _ => "nbf",
        })),
    }
}

/// Checks `exp` (required), `nbf` and `iat` (required when `need_iat`) against now, each
/// with `leeway` seconds for clock skew. Returns `exp`.
pub(crate) fn check_times(payload: &JwtPayload, leeway: i64, need_iat: bool) -> Result<i64, TimeError> {
    let now = now_secs();
    let exp = seconds(payload, "exp")?.ok_or(TimeError::Missing("exp"))?;
    if now > exp.saturating_add(leeway) {
        return Err(TimeError::Expired);
    }
    if let Some(nbf) = seconds(payload, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(TimeError::NotYetValid);
    }
    match seconds(payload, "iat")? {
        Some(iat) if iat > now.saturating_add(leeway) => return Err(TimeError::NotYetValid),
        None if need_iat => return Err(TimeError::Missing("iat")),
        _ => {}
    }
    Ok(exp)
}

/// Whether `aud` (a string or an array of strings) names `audience`.
pub(crate) fn has_audience(payload: &JwtPayload, audience: &str) -> bool {
    match payload.claim("aud") {
        Some(Value::String(s)) => s == audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(audience)),
        _ => false,
    }
}

pub(crate) fn str_claim<'a>(payload: &'a JwtPayload, name: &str) -> Option<&'a str> {
    payload.claim(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Whether a josekit decoding failure was the signature itself (as opposed to the shape).
pub(crate) fn is_signature_failure(e: &JoseError) -> bool {
    matches!(e, JoseError::InvalidSignature(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_routing_fields_and_refuses_shapes() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#);
        let p = URL_SAFE_NO_PAD.encode(b"{}");
        let t = format!("{h}.{p}.c2ln");
        assert_eq!(peek(&t), Some(Peek { alg: "RS256".into(), kid: Some("k1".into()), typ: Some("at+jwt".into()) }));
        assert_eq!(peek("a.b"), None);
        assert_eq!(peek(&format!("{h}.{p}.c2ln.x")), None);
        assert_eq!(peek(&format!("{h}.{p}.c2l+")), None);
        let no_alg = URL_SAFE_NO_PAD.encode(br#"{"kid":"k1"}"#);
        assert_eq!(peek(&format!("{no_alg}.{p}.")), None);
    }
}
