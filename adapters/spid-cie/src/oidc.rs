//! The relying party's side of the SPID/CIE OpenID Connect profile: its entity
//! configuration, the signed request object with PKCE, the token request with a
//! `private_key_jwt` client assertion, the ID token checks, the encrypted userinfo and the
//! token revocation that ends a login at the provider.
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use josekit::jwe::{self, JweDecrypter, RSA_OAEP};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{
    config::RpConfig,
    error::{Error, Result, http_error},
    federation::{ENTITY_STATEMENT_TYP, Provider},
    http::{Http, check_url, read_text},
    jose::{self, LEEWAY, aud_contains, int_claim, random_token, str_claim},
    keys::{KeyRing, RpKeys},
};

pub const FISCAL_NUMBER: &str = "https://attributes.eid.gov.it/fiscal_number";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of request objects and client assertions.
const SHORT_LIVED: i64 = 120;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The relying party's own metadata, as its entity configuration publishes it: the
/// parameters the SPID/CIE technical rules require for onboarding (organisation, home page,
/// policy and logo, contacts with the PEC, the resolve endpoint, automatic registration).
pub fn own_metadata(cfg: &RpConfig, keys: &RpKeys) -> Value {
    let mut federation = obj(json!({
        "organization_name": cfg.organization_name,
        "homepage_uri": cfg.homepage(),
        "federation_resolve_endpoint": cfg.resolve_endpoint(),
    }));
    let mut rp = obj(json!({
        "client_id": cfg.entity_id,
        "client_name": cfg.client_name,
        "organization_name": cfg.organization_name,
        "application_type": "web",
        "client_registration_types": ["automatic"],
        "redirect_uris": [cfg.redirect_uri()],
        "response_types": ["code"],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "id_token_signed_response_alg": "RS256",
        "userinfo_signed_response_alg": "RS256",
        "userinfo_encrypted_response_alg": "RSA-OAEP",
        "userinfo_encrypted_response_enc": "A256CBC-HS512",
        "subject_type": "pairwise",
        "jwks": keys.metadata_jwks(),
    }));
    for (k, v) in [("policy_uri", &cfg.policy_uri), ("logo_uri", &cfg.logo_uri)] {
        if let Some(v) = v {
            federation.insert(k.into(), json!(v));
            rp.insert(k.into(), json!(v));
        }
    }
    if !cfg.contacts.is_empty() {
        federation.insert("contacts".into(), json!(cfg.contacts));
        rp.insert("contacts".into(), json!(cfg.contacts));
    }
    json!({ "openid_relying_party": rp, "federation_entity": federation })
}

/// The entity configuration served at `<entity id>.well-known/openid-federation`.
pub fn entity_configuration(cfg: &RpConfig, keys: &RpKeys, now: i64) -> Result<String> {
    let exp = now + i64::try_from(cfg.ec_lifetime.as_secs()).unwrap_or(86_400);
    let claims = obj(json!({
        "iss": cfg.entity_id,
        "sub": cfg.entity_id,
        "iat": now,
        "exp": exp,
        "jwks": keys.federation_jwks(),
        "authority_hints": [cfg.trust_anchor],
        "trust_marks": cfg.trust_marks,
        "metadata": own_metadata(cfg, keys),
    }));
    jose::sign(&claims, Some(ENTITY_STATEMENT_TYP), keys.federation.current())
}

/// What a started login remembers until its callback.
#[derive(Clone)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
    pub provider: String,
    pub acr: String,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("provider", &self.provider).field("acr", &self.acr).finish_non_exhaustive()
    }
}

pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The authorization URL for `provider`, with its signed request object.
pub fn authorization_url(cfg: &RpConfig, keys: &RpKeys, provider: &Provider, now: i64) -> Result<(String, Pending)> {
    let pending = Pending {
        // 32 random bytes: 43 characters, above the 32 the profile requires.
        state: random_token(32),
        nonce: random_token(32),
        code_verifier: random_token(48),
        provider: provider.entity_id.clone(),
        acr: cfg.acr.clone(),
    };
    let authz = provider.endpoint("authorization_endpoint")?;
    let challenge = pkce_challenge(&pending.code_verifier);
    let userinfo_claims = json!({
        FISCAL_NUMBER: {"essential": true},
        "given_name": null,
        "family_name": null,
    });
    let claims = obj(json!({
        "iss": cfg.entity_id,
        "client_id": cfg.entity_id,
        "aud": [provider.entity_id, authz],
        "iat": now,
        "exp": now + SHORT_LIVED,
        "jti": uuid::Uuid::new_v4().to_string(),
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": cfg.redirect_uri(),
        "nonce": pending.nonce,
        "state": pending.state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "consent login",
        "acr_values": pending.acr,
        "claims": {"id_token": {}, "userinfo": userinfo_claims},
    }));
    let request = jose::sign(&claims, None, keys.sig.current())?;
    let mut url = check_url(authz, cfg.allow_http_loopback)?;
    url.query_pairs_mut()
        .append_pair("client_id", &cfg.entity_id)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("request", &request);
    Ok((url.to_string(), pending))
}

/// A client assertion for `endpoint` (its exact URL goes in `aud`).
pub fn client_assertion(cfg: &RpConfig, sig: &KeyRing, endpoint: &str, now: i64) -> Result<String> {
    let claims = obj(json!({
        "iss": cfg.entity_id,
        "sub": cfg.entity_id,
        "aud": [endpoint],
        "iat": now,
        "exp": now + SHORT_LIVED,
        "jti": uuid::Uuid::new_v4().to_string(),
    }));
    jose::sign(&claims, None, sig.current())
}

/// Tokens from the token endpoint. Debug shows none of them.
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

/// Exchanges the authorization code (PKCE verifier + client assertion).
pub async fn exchange_code(http: &Http, cfg: &RpConfig, keys: &RpKeys, provider: &Provider, code: &str, verifier: &str) -> Result<Tokens> {
    let endpoint = provider.endpoint("token_endpoint")?;
    let url = check_url(endpoint, cfg.allow_http_loopback)?;
    let assertion = client_assertion(cfg, &keys.sig, endpoint, jose::now())?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("client_id", cfg.entity_id.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let r = http.client().post(url).form(&form).send().await.map_err(|e| http_error("token", &e))?;
    let body = read_text("token", r).await?;
    let v: Map<String, Value> = serde_json::from_str(&body).map_err(|_| Error::Malformed("token response"))?;
    let access_token = str_claim(&v, "access_token").ok_or(Error::claim("token response", "access_token"))?.to_string();
    let id_token = str_claim(&v, "id_token").ok_or(Error::claim("token response", "id_token"))?.to_string();
    if str_claim(&v, "token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(Error::claim("token response", "token_type"));
    }
    Ok(Tokens { access_token, id_token })
}

/// The checked claims of an ID token that the session needs.
#[derive(Clone)]
pub struct IdToken {
    /// Pairwise subject at the provider.
    pub sub: String,
    pub acr: String,
    pub exp: i64,
}

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdToken").field("acr", &self.acr).field("exp", &self.exp).finish_non_exhaustive()
    }
}

/// SPID levels in increasing strength; an ID token may not come back weaker than asked.
fn acr_rank(acr: &str) -> Option<u8> {
    match acr.rsplit('/').next() {
        Some("SpidL1") => Some(1),
        Some("SpidL2") => Some(2),
        Some("SpidL3") => Some(3),
        _ => None,
    }
}

/// Checks an ID token: signature with the provider's federation-resolved keys (RS/PS/ES
/// only), `iss`, `aud` (and `azp` when several), `exp`/`iat`, `nonce`, `acr` at least as
/// strong as requested, and `at_hash` against the access token when present.
pub fn validate_id_token(
    token: &str,
    provider: &Provider,
    client_id: &str,
    pending: &Pending,
    access_token: Option<&str>,
    now: i64,
) -> Result<IdToken> {
    const W: &str = "ID token";
    let c = jose::verify(token, &provider.jwks(), W, None)?;
    if str_claim(&c, "iss") != Some(provider.entity_id.as_str()) {
        return Err(Error::claim(W, "iss"));
    }
    if !aud_contains(&c, client_id) {
        return Err(Error::claim(W, "aud"));
    }
    if let Some(Value::Array(a)) = c.get("aud")
        && a.len() > 1
        && str_claim(&c, "azp") != Some(client_id)
    {
        return Err(Error::claim(W, "azp"));
    }
    let exp = jose::check_times(&c, W, now)?;
    // The OP issues ID tokens at the token request: one minted long ago is a replay.
    if int_claim(&c, "iat").is_some_and(|iat| iat + 600 + LEEWAY < now) {
        return Err(Error::Expired(W));
    }
    let nonce = str_claim(&c, "nonce").ok_or(Error::claim(W, "nonce"))?;
    if !constant_time_eq(nonce.as_bytes(), pending.nonce.as_bytes()) {
        return Err(Error::claim(W, "nonce"));
    }
    let acr = str_claim(&c, "acr").ok_or(Error::claim(W, "acr"))?;
    match (acr_rank(acr), acr_rank(&pending.acr)) {
        (Some(got), Some(want)) if got >= want => {}
        _ => return Err(Error::claim(W, "acr")),
    }
    let sub = str_claim(&c, "sub").filter(|s| !s.is_empty()).ok_or(Error::claim(W, "sub"))?;
    if let (Some(at_hash), Some(at)) = (str_claim(&c, "at_hash"), access_token) {
        let alg = jose::peek(token, W)?.0.get("alg").and_then(Value::as_str).unwrap_or_default().to_string();
        let digest: Vec<u8> = match &alg[alg.len().saturating_sub(3)..] {
            "384" => sha2::Sha384::digest(at.as_bytes()).to_vec(),
            "512" => sha2::Sha512::digest(at.as_bytes()).to_vec(),
            _ => Sha256::digest(at.as_bytes()).to_vec(),
        };
        if URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]) != at_hash {
            return Err(Error::claim(W, "at_hash"));
        }
    }
    Ok(IdToken { sub: sub.to_string(), acr: acr.to_string(), exp })
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decrypts a userinfo JWE with the `enc` key its `kid` names, verifies the inner JWS with
/// the provider's keys and checks `iss`, `aud` and that `sub` is the ID token's.
pub fn open_userinfo(jwe_text: &str, enc: &KeyRing, provider: &Provider, client_id: &str, sub: &str) -> Result<Map<String, Value>> {
    const W: &str = "userinfo";
    let mut decrypters: Vec<(String, Box<dyn JweDecrypter>)> = Vec::new();
    for k in enc.iter() {
        if let Ok(d) = RSA_OAEP.decrypter_from_jwk(k.private_jwk()) {
            decrypters.push((k.kid().to_string(), Box::new(d)));
        }
    }
    let (inner, header) = jwe::deserialize_compact_with_selector(jwe_text.trim(), |h| {
        // Only RSA-OAEP (the profile's algorithm); josekit checks `enc` itself.
        if h.algorithm() != Some("RSA-OAEP") {
            return Ok(None);
        }
        let kid = h.key_id().unwrap_or_default();
        Ok(decrypters.iter().find(|(k, _)| k == kid).map(|(_, d)| d.as_ref()))
    })
    .map_err(|_| Error::Decrypt(W))?;
    if !matches!(header.content_encryption(), Some("A256CBC-HS512" | "A128CBC-HS256" | "A256GCM" | "A128GCM")) {
        return Err(Error::Decrypt(W));
    }
    let inner = String::from_utf8(inner).map_err(|_| Error::Malformed(W))?;
    let c = jose::verify(inner.trim(), &provider.jwks(), W, None)?;
    if str_claim(&c, "sub") != Some(sub) {
        return Err(Error::claim(W, "sub"));
    }
    if c.contains_key("iss") && str_claim(&c, "iss") != Some(provider.entity_id.as_str()) {
        return Err(Error::claim(W, "iss"));
    }
    if c.contains_key("aud") && !aud_contains(&c, client_id) {
        return Err(Error::claim(W, "aud"));
    }
    Ok(c)
}

/// Calls userinfo with the access token and opens the answer.
pub async fn userinfo(
    http: &Http,
    keys: &RpKeys,
    provider: &Provider,
    client_id: &str,
    access_token: &str,
    sub: &str,
) -> Result<Map<String, Value>> {
    let url = http.check(provider.endpoint("userinfo_endpoint")?)?;
    let r = http.client().get(url).bearer_auth(access_token).send().await.map_err(|e| http_error("userinfo", &e))?;
    let body = read_text("userinfo", r).await?;
    open_userinfo(&body, &keys.enc, provider, client_id, sub)
}

/// RFC 7009 revocation of the access token (the providers have no end-session endpoint).
pub async fn revoke(http: &Http, cfg: &RpConfig, keys: &RpKeys, provider: &Provider, access_token: &str) -> Result<()> {
    let endpoint = provider.endpoint("revocation_endpoint")?;
    let url = check_url(endpoint, cfg.allow_http_loopback)?;
    let assertion = client_assertion(cfg, &keys.sig, endpoint, jose::now())?;
    let form = [
        ("token", access_token),
        ("token_type_hint", "access_token"),
        ("client_id", cfg.entity_id.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let r = http.client().post(url).form(&form).send().await.map_err(|e| http_error("revocation", &e))?;
    read_text("revocation", r).await.map(|_| ())
}

/// The codice fiscale in a SPID/CIE fiscal number (`TINIT-<16 characters>`), upper case.
pub fn codice_fiscale(fiscal_number: &str) -> Option<String> {
    let cf = fiscal_number.trim().strip_prefix("TINIT-").unwrap_or(fiscal_number.trim()).to_ascii_uppercase();
    (cf.len() == 16 && cf.chars().all(|c| c.is_ascii_alphanumeric())).then_some(cf)
}

#[cfg(test)]
mod tests {
    use josekit::jwe::{JweHeader, RSA_OAEP};

    use super::*;
    use crate::{
        federation::verify_self_signed,
        jose::now,
        keys::{KeyUse, RpKey},
        testkit::{Fed, OP, obj},
    };

    const RP: &str = "https://sigess.example.org/oidc/rp/";

    fn cfg() -> RpConfig {
        RpConfig::new(RP, "https://ta.example.org/")
    }

    fn pending() -> Pending {
        Pending {
            state: random_token(32),
            nonce: random_token(32),
            code_verifier: random_token(48),
            provider: OP.into(),
            acr: "https://www.spid.gov.it/SpidL2".into(),
        }
    }

    fn id_claims(p: &Pending) -> Map<String, Value> {
        let t = now();
        obj(json!({
            "iss": OP, "sub": "a".repeat(64), "aud": [RP], "iat": t, "exp": t + 1980,
            "nonce": p.nonce, "acr": "https://www.spid.gov.it/SpidL2", "jti": "x",
        }))
    }

    #[test]
    fn entity_configuration_is_self_signed_with_required_metadata() {
        let keys = RpKeys::generate().expect("keys");
        let mut c = cfg();
        c.trust_marks = vec![json!({"trust_mark_type": "tm", "trust_mark": "x.y.z"})];
        let jwt = entity_configuration(&c, &keys, now()).expect("ec");
        let (h, _) = jose::peek(&jwt, "ec").expect("peek");
        assert_eq!(h["typ"], "entity-statement+jwt");
        assert_eq!(h["kid"], keys.federation.current().kid());
        let st = verify_self_signed(&jwt, RP, now()).expect("self-signed");
        assert_eq!(st.authority_hints(), vec!["https://ta.example.org/".to_string()]);
        let md = st.metadata("openid_relying_party").expect("rp metadata");
        assert_eq!(md["client_id"], RP);
        assert_eq!(md["redirect_uris"], json!([format!("{RP}callback")]));
        assert_eq!(md["response_types"], json!(["code"]));
        assert_eq!(md["token_endpoint_auth_method"], "private_key_jwt");
        assert!(md.get("scope").is_none_or(Value::is_array), "scope must be a list or absent");
        let uses: Vec<&str> = md["jwks"]["keys"].as_array().expect("keys").iter().filter_map(|k| k["use"].as_str()).collect();
        assert_eq!(uses, vec!["sig", "enc"]);
        assert!(md["jwks"]["keys"].as_array().expect("keys").iter().all(|k| k.get("kid").is_some() && k.get("d").is_none()));
        assert_eq!(st.claims["trust_marks"], json!(c.trust_marks));
    }

    #[test]
    fn request_object_carries_the_profile() {
        let f = Fed::new();
        let p = f.provider();
        let keys = RpKeys::generate().expect("keys");
        let (url, pend) = authorization_url(&cfg(), &keys, &p, now()).expect("url");
        assert!(url.starts_with(&format!("{OP}authorization?")));
        let u = reqwest::Url::parse(&url).expect("url");
        let q: std::collections::HashMap<String, String> = u.query_pairs().into_owned().collect();
        let ro = jose::verify(&q["request"], &keys.sig.public_jwks(), "ro", None).expect("signed by our sig key");
        assert_eq!(ro["iss"], RP);
        assert_eq!(ro["client_id"], RP);
        assert_eq!(ro["aud"], json!([OP, format!("{OP}authorization")]));
        assert_eq!(ro["redirect_uri"], format!("{RP}callback"));
        assert_eq!(ro["state"], pend.state);
        assert_eq!(ro["nonce"], pend.nonce);
        assert!(pend.state.len() >= 32 && pend.nonce.len() >= 32);
        assert_eq!(ro["code_challenge"], pkce_challenge(&pend.code_verifier));
        assert_eq!(q["code_challenge"], pkce_challenge(&pend.code_verifier));
        assert_eq!(ro["code_challenge_method"], "S256");
        assert_eq!(ro["prompt"], "consent login");
        assert_eq!(ro["acr_values"], "https://www.spid.gov.it/SpidL2");
        assert!(ro["claims"]["userinfo"].get(FISCAL_NUMBER).is_some());
        assert!(ro.get("sub").is_none());
        // A tampered request object no longer verifies.
        let parts: Vec<&str> = q["request"].split('.').collect();
        let mut claims = ro.clone();
        claims.insert("redirect_uri".into(), json!("https://evil.example/cb"));
        let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json")), parts[2]);
        assert!(matches!(jose::verify(&forged, &keys.sig.public_jwks(), "ro", None), Err(Error::Signature(_))));
        // BASE64URL(SHA-256(verifier)), value computed with Python's hashlib.
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWXOEjXk"), "ixTXRNjcs2t268cvWnWX5VszIOQVHn11amyq8l3uFfA");
    }

    #[test]
    fn client_assertion_names_the_endpoint() {
        let keys = RpKeys::generate().expect("keys");
        let a = client_assertion(&cfg(), &keys.sig, "https://op/token", now()).expect("a");
        let c = jose::verify(&a, &keys.sig.public_jwks(), "a", None).expect("ok");
        assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some(RP), Some(RP)));
        assert_eq!(c["aud"], json!(["https://op/token"]));
    }

    #[test]
    fn id_token_checks() {
        let f = Fed::new();
        let p = f.provider();
        let pend = pending();
        let sign = |c: &Map<String, Value>| jose::sign(c, None, &f.op_sig_key).expect("sign");
        let good = sign(&id_claims(&pend));
        let id = validate_id_token(&good, &p, RP, &pend, None, now()).expect("valid");
        assert_eq!(id.sub.len(), 64);

        let refused = |c: Map<String, Value>| validate_id_token(&sign(&c), &p, RP, &pend, None, now());
        let mut c = id_claims(&pend);
        c.insert("nonce".into(), json!(random_token(32)));
        assert!(matches!(refused(c), Err(Error::Claim { claim: "nonce", .. })), "wrong nonce");
        let mut c = id_claims(&pend);
        c.insert("aud".into(), json!(["https://other-rp.example.org/"]));
        assert!(matches!(refused(c), Err(Error::Claim { claim: "aud", .. })), "wrong audience");
        let mut c = id_claims(&pend);
        c.insert("iss".into(), json!("https://evil.example.org/"));
        assert!(matches!(refused(c), Err(Error::Claim { claim: "iss", .. })));
        let mut c = id_claims(&pend);
        c.insert("exp".into(), json!(now() - 3600));
        c.insert("iat".into(), json!(now() - 5000));
        assert!(matches!(refused(c), Err(Error::Expired(_))), "expired");
        let mut c = id_claims(&pend);
        c.insert("acr".into(), json!("https://www.spid.gov.it/SpidL1"));
        assert!(matches!(refused(c), Err(Error::Claim { claim: "acr", .. })), "weaker acr");
        let mut c = id_claims(&pend);
        c.insert("aud".into(), json!([RP, "https://other/"]));
        assert!(matches!(refused(c), Err(Error::Claim { claim: "azp", .. })));
        // Signed by a key that is not the provider's.
        let other = RpKey::generate(KeyUse::Sig).expect("key");
        let t = jose::sign(&id_claims(&pend), None, &other).expect("sign");
        assert!(matches!(validate_id_token(&t, &p, RP, &pend, None, now()), Err(Error::UnknownKid(_))));
        // at_hash must match the access token.
        let mut c = id_claims(&pend);
        c.insert("at_hash".into(), json!(URL_SAFE_NO_PAD.encode(&Sha256::digest(b"the-access-token")[..16])));
        let t = sign(&c);
        assert!(validate_id_token(&t, &p, RP, &pend, Some("the-access-token"), now()).is_ok());
        assert!(matches!(validate_id_token(&t, &p, RP, &pend, Some("another"), now()), Err(Error::Claim { claim: "at_hash", .. })));
        // alg none and HS256 (keyed with the provider's public key material) are refused.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&id_claims(&pend)).expect("json"));
        let kid = f.op_sig_key.kid();
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#));
            let sig = if alg == "none" { String::new() } else { URL_SAFE_NO_PAD.encode([7u8; 32]) };
            let t = format!("{h}.{body}.{sig}");
            assert!(matches!(validate_id_token(&t, &p, RP, &pend, None, now()), Err(Error::Algorithm { .. })), "{alg}");
        }
    }

    fn encrypt_to(key: &RpKey, inner: &str) -> String {
        let mut h = JweHeader::new();
        h.set_content_encryption("A256CBC-HS512");
        h.set_content_type("JWT");
        h.set_key_id(key.kid());
        let mut jwk = josekit::jwk::Jwk::from_map(key.public_jwk().as_object().cloned().expect("obj")).expect("jwk");
        jwk.set_key_use("enc");
        let enc = RSA_OAEP.encrypter_from_jwk(&jwk).expect("encrypter");
        jwe::serialize_compact(inner.as_bytes(), &h, &enc).expect("jwe")
    }

    #[test]
    fn userinfo_nested_jwe() {
        let f = Fed::new();
        let p = f.provider();
        let keys = RpKeys::generate().expect("keys");
        let sub = "b".repeat(64);
        let claims = obj(json!({"sub": sub, FISCAL_NUMBER: "TINIT-RSSMRA80A01H501U", "iss": OP, "aud": RP}));
        let inner = jose::sign(&claims, None, &f.op_sig_key).expect("sign");
        let jwe_text = encrypt_to(keys.enc.current(), &inner);
        let got = open_userinfo(&jwe_text, &keys.enc, &p, RP, &sub).expect("opens");
        assert_eq!(codice_fiscale(got[FISCAL_NUMBER].as_str().expect("str")).as_deref(), Some("RSSMRA80A01H501U"));

        // Encrypted for another key (same kid or not): refused.
        let stranger = RpKey::generate(KeyUse::Enc).expect("key");
        assert!(matches!(open_userinfo(&encrypt_to(&stranger, &inner), &keys.enc, &p, RP, &sub), Err(Error::Decrypt(_))));
        // Rotation: an older enc key still in the ring decrypts, picked by kid.
        let ring = crate::keys::KeyRing::new(vec![RpKey::generate(KeyUse::Enc).expect("k"), keys.enc.current().clone()]).expect("ring");
        assert!(open_userinfo(&jwe_text, &ring, &p, RP, &sub).is_ok());
        // Inner JWS by someone else, or about another subject.
        let other = RpKey::generate(KeyUse::Sig).expect("key");
        let forged = jose::sign(&claims, None, &other).expect("sign");
        assert!(open_userinfo(&encrypt_to(keys.enc.current(), &forged), &keys.enc, &p, RP, &sub).is_err());
        assert!(matches!(open_userinfo(&jwe_text, &keys.enc, &p, RP, &"c".repeat(64)), Err(Error::Claim { claim: "sub", .. })));
    }

    #[test]
    fn fiscal_numbers() {
        assert_eq!(codice_fiscale("TINIT-rssmra80a01h501u").as_deref(), Some("RSSMRA80A01H501U"));
        assert_eq!(codice_fiscale("RSSMRA80A01H501U").as_deref(), Some("RSSMRA80A01H501U"));
        assert_eq!(codice_fiscale("TINIT-short"), None);
        assert_eq!(codice_fiscale("TINIT-RSSMRA80A01H50;U"), None);
    }
}
