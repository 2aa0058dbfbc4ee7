//! Trust chains: how the relying party comes to trust an OpenID Provider through the Trust
//! Anchor, and the metadata it then uses.
//!
//! For a provider the chain is built upwards: its entity configuration (self-signed), then
//! for each authority hint the superior's entity configuration and the subordinate
//! statement the superior's fetch endpoint issues about it, until the Trust Anchor is
//! reached. Each statement is verified with the keys of the one above it: the subordinate
//! statement with the superior's keys, the entity configuration with the keys the
//! superior vouches for (not the ones it claims for itself), and the Trust Anchor's own
//! configuration with the pinned keys when they are configured. Every statement must be
//! unexpired; the chain lives until its earliest `exp`. The metadata policies are then
//! applied from the Trust Anchor down, and the required trust marks are checked.
//!
//! Resolved providers are cached until the chain expires or `max_age` passes, whichever
//! comes first; the next use after that resolves again.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Map, Value};

use crate::{
    error::{Error, Result},
    http::{Http, check_url},
    jose::{self, now, str_claim},
    policy,
};

pub const ENTITY_STATEMENT_TYP: &str = "entity-statement+jwt";
pub const ENTITY_STATEMENT_CT: &str = "application/entity-statement+jwt";
pub const WELL_KNOWN: &str = ".well-known/openid-federation";
/// Longest chain followed above the provider (provider, intermediates, anchor).
pub const MAX_DEPTH: usize = 4;

/// A verified entity statement (entity configuration or subordinate statement).
#[derive(Clone, Debug)]
pub struct Statement {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub claims: Map<String, Value>,
}

impl Statement {
    pub fn jwks(&self) -> Vec<Value> {
        self.claims.get("jwks").and_then(|j| j.get("keys")).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    pub fn metadata(&self, entity_type: &str) -> Option<&Map<String, Value>> {
        self.claims.get("metadata").and_then(|m| m.get(entity_type)).and_then(Value::as_object)
    }

    pub fn authority_hints(&self) -> Vec<String> {
        self.claims
            .get("authority_hints")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// Verifies an entity statement with `keys`; `iss` and `sub` must be the expected ones.
pub fn verify_statement(jwt: &str, keys: &[Value], iss: &str, sub: &str, now: i64) -> Result<Statement> {
    let claims = jose::verify(jwt, keys, "entity statement", Some(ENTITY_STATEMENT_TYP))?;
    if str_claim(&claims, "iss") != Some(iss) {
        return Err(Error::claim("entity statement", "iss"));
    }
    if str_claim(&claims, "sub") != Some(sub) {
        return Err(Error::claim("entity statement", "sub"));
    }
    let exp = jose::check_times(&claims, "entity statement", now)?;
    Ok(Statement { iss: iss.to_string(), sub: sub.to_string(), exp, claims })
}

/// Verifies an entity configuration against the keys it carries itself. Only proves the
/// document is consistent; trust comes from a superior vouching for those keys.
pub fn verify_self_signed(jwt: &str, entity_id: &str, now: i64) -> Result<Statement> {
    let (_, payload) = jose::peek(jwt, "entity configuration")?;
    let keys = payload.get("jwks").and_then(|j| j.get("keys")).and_then(Value::as_array).cloned().unwrap_or_default();
    verify_statement(jwt, &keys, entity_id, entity_id, now)
}

/// What the relying party knows about one provider once its chain is valid.
#[derive(Clone, Debug)]
pub struct Provider {
    pub entity_id: String,
    /// `openid_provider` metadata after the policies.
    pub metadata: Map<String, Value>,
    /// `federation_entity` metadata of the provider, for display.
    pub organization_name: Option<String>,
    /// Types of the valid trust marks it carries.
    pub trust_marks: Vec<String>,
    /// Earliest `exp` of the chain.
    pub expires_at: i64,
}

impl Provider {
    pub fn endpoint(&self, name: &'static str) -> Result<&str> {
        str_claim(&self.metadata, name).ok_or(Error::Trust(format!("provider metadata lacks {name}")))
    }

    /// The provider's signing keys (ID token, userinfo inner JWS), from its metadata.
    pub fn jwks(&self) -> Vec<Value> {
        self.metadata.get("jwks").and_then(|j| j.get("keys")).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    /// Display name: organisation name from the metadata, else the entity id.
    pub fn display_name(&self) -> &str {
        self.organization_name.as_deref().or_else(|| str_claim(&self.metadata, "organization_name")).unwrap_or(&self.entity_id)
    }
}

/// Pure chain validation over documents already fetched: `chain[0]` is the leaf's entity
/// configuration, then for each level a (superior entity configuration, subordinate
/// statement about the level below) pair, the last superior being the Trust Anchor.
#[derive(Clone, Debug)]
pub struct ChainDocs {
    pub leaf_ec: String,
    pub levels: Vec<(String, String, String)>, // (superior id, superior EC, statement)
}

/// Settings of the chain check.
#[derive(Clone, Debug)]
pub struct TrustSettings {
    pub trust_anchor: String,
    /// Keys the Trust Anchor's configuration must be signed with. Empty = take the keys it
    /// publishes at its configured URL (the anchor URL itself is then the root of trust).
    pub anchor_keys: Vec<Value>,
    /// Trust mark types a provider must carry, issued by the anchor.
    pub required_trust_marks: Vec<String>,
    /// Intermediates a chain may pass through; authority hints naming anything else (but
    /// the anchor) are not followed.
    pub intermediates: Vec<String>,
    /// Plain http to loopback peers (tests only).
    pub allow_http_loopback: bool,
}

/// Validates the chain for `leaf` of entity type `entity_type` and returns the provider.
pub fn validate_chain(leaf: &str, entity_type: &str, docs: &ChainDocs, s: &TrustSettings, now: i64) -> Result<Provider> {
    let (last_id, _, _) = docs.levels.last().ok_or(Error::Trust("no superior".into()))?;
    if last_id != &s.trust_anchor {
        return Err(Error::Trust("chain does not end at the trust anchor".into()));
    }
    let leaf_unverified = verify_self_signed(&docs.leaf_ec, leaf, now)?;
    let mut expires_at = leaf_unverified.exp;
    let mut below = leaf.to_string();
    let mut below_ec_jwt = docs.leaf_ec.clone();
    let mut policies: Vec<(Map<String, Value>, Vec<String>)> = Vec::new();
    let mut overrides: Option<Map<String, Value>> = None;
    let mut anchor: Option<Statement> = None;
    for (i, (sup_id, sup_ec, stmt)) in docs.levels.iter().enumerate() {
        let is_anchor = i + 1 == docs.levels.len();
        let sup = if is_anchor && !s.anchor_keys.is_empty() {
            verify_statement(sup_ec, &s.anchor_keys, sup_id, sup_id, now)?
        } else {
            verify_self_signed(sup_ec, sup_id, now)?
        };
        let below_ec = verify_self_signed(&below_ec_jwt, &below, now)?;
        if !below_ec.authority_hints().iter().any(|h| h == sup_id) {
            return Err(Error::Trust("superior is not among the authority hints".into()));
        }
        let st = verify_statement(stmt, &sup.jwks(), sup_id, &below, now)?;
        // The entity's own configuration must be signed by a key its superior vouches for.
        verify_statement(&below_ec_jwt, &st.jwks(), &below, &below, now)?;
        expires_at = expires_at.min(st.exp).min(sup.exp);
        if let Some(p) = st.claims.get("metadata_policy").and_then(|m| m.get(entity_type)).and_then(Value::as_object) {
            let crit = st
                .claims
                .get("metadata_policy_crit")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            policies.push((p.clone(), crit));
        }
        if i == 0 {
            overrides = st.metadata(entity_type).cloned();
        }
        below = sup_id.clone();
        below_ec_jwt = sup_ec.clone();
        if is_anchor {
            anchor = Some(sup);
        }
    }
    let anchor = anchor.ok_or(Error::Trust("no trust anchor".into()))?;
    let mut metadata = leaf_unverified.metadata(entity_type).cloned().ok_or(Error::Trust(format!("no {entity_type} metadata")))?;
    if let Some(o) = overrides {
        metadata.extend(o);
    }
    // The policies merged from the anchor down (a level may only narrow what the levels
    // above set), then applied once.
    let mut merged = Map::new();
    let mut crit: Vec<String> = Vec::new();
    for (p, c) in policies.iter().rev() {
        merged = policy::merge(&merged, p)?;
        crit.extend(c.iter().cloned());
    }
    policy::apply(&mut metadata, &merged, &crit)?;
    let trust_marks = valid_trust_marks(&leaf_unverified, &anchor, now);
    for required in &s.required_trust_marks {
        if !trust_marks.contains(required) {
            return Err(Error::Trust("a required trust mark is missing or invalid".into()));
        }
    }
    if str_claim(&metadata, "issuer").is_some_and(|i| i != leaf) {
        return Err(Error::Trust("metadata issuer differs from the entity id".into()));
    }
    let organization_name =
        leaf_unverified.metadata("federation_entity").and_then(|m| str_claim(m, "organization_name")).map(str::to_string);
    Ok(Provider { entity_id: leaf.to_string(), metadata, organization_name, trust_marks, expires_at })
}

/// Types of the trust marks in `ec` that the anchor signed, about this entity, unexpired.
fn valid_trust_marks(ec: &Statement, anchor: &Statement, now: i64) -> Vec<String> {
    let Some(marks) = ec.claims.get("trust_marks").and_then(Value::as_array) else {
        return Vec::new();
    };
    let keys = anchor.jwks();
    let mut out = Vec::new();
    for m in marks {
        let Some(jwt) = m.get("trust_mark").and_then(Value::as_str) else { continue };
        let Ok(c) = jose::verify(jwt, &keys, "trust mark", None) else { continue };
        if str_claim(&c, "iss") != Some(anchor.iss.as_str()) || str_claim(&c, "sub") != Some(ec.sub.as_str()) {
            continue;
        }
        if jose::int_claim(&c, "exp").is_some_and(|e| e + jose::LEEWAY < now) {
            continue;
        }
        let ty = str_claim(&c, "trust_mark_type").or_else(|| str_claim(&c, "trust_mark_id")).or_else(|| str_claim(&c, "id"));
        let outer = m.get("trust_mark_type").or_else(|| m.get("trust_mark_id")).or_else(|| m.get("id")).and_then(Value::as_str);
        if let Some(t) = ty.filter(|t| outer.is_none_or(|o| o == *t)) {
            out.push(t.to_string());
        }
    }
    out
}

/// Fetches chains over HTTP, validates them, and caches the providers.
#[derive(Debug)]
pub struct Resolver {
    http: Http,
    settings: TrustSettings,
    max_age: Duration,
    cache: Mutex<HashMap<String, (i64, Arc<Provider>)>>,
    listing: Mutex<Option<(i64, Vec<String>)>>,
}

impl Resolver {
    pub fn new(http: Http, settings: TrustSettings, max_age: Duration) -> Self {
        Self { http, settings, max_age, cache: Mutex::new(HashMap::new()), listing: Mutex::new(None) }
    }

    pub fn trust_anchor(&self) -> &str {
        &self.settings.trust_anchor
    }

    async fn entity_configuration(&self, id: &str) -> Result<String> {
        let url = check_url(&format!("{id}{WELL_KNOWN}"), self.settings.allow_http_loopback)?;
        self.http.get_text("entity configuration", url, ENTITY_STATEMENT_CT).await
    }

    async fn subordinate_statement(&self, sup_ec: &Statement, sub: &str) -> Result<String> {
        let fetch = sup_ec
            .metadata("federation_entity")
            .and_then(|m| str_claim(m, "federation_fetch_endpoint"))
            .ok_or(Error::Trust("superior has no fetch endpoint".into()))?;
        let mut url = check_url(fetch, self.settings.allow_http_loopback)?;
        url.query_pairs_mut().append_pair("sub", sub);
        self.http.get_text("subordinate statement", url, ENTITY_STATEMENT_CT).await
    }

    /// Fetches the documents of one chain from `leaf` up to the anchor (first authority
    /// hint that leads there).
    async fn fetch_chain(&self, leaf: &str) -> Result<ChainDocs> {
        let leaf_ec = self.entity_configuration(leaf).await?;
        let mut levels = Vec::new();
        let mut current = leaf.to_string();
        let mut current_ec = verify_self_signed(&leaf_ec, leaf, now())?;
        for _ in 0..MAX_DEPTH {
            let hints = current_ec.authority_hints();
            // Prefer the anchor itself when it is a direct superior; otherwise only a
            // configured intermediate is followed, never a host the leaf names at will.
            let sup_id = if hints.iter().any(|h| h == &self.settings.trust_anchor) {
                self.settings.trust_anchor.clone()
            } else {
                let known = hints.iter().find(|h| self.settings.intermediates.contains(h));
                match (known, hints.is_empty()) {
                    (Some(h), _) => h.clone(),
                    (None, true) => return Err(Error::Trust("no authority hints".into())),
                    (None, false) => {
                        return Err(Error::Trust("authority hints name neither the anchor nor a configured intermediate".into()));
                    }
                }
            };
            let sup_ec_jwt = self.entity_configuration(&sup_id).await?;
            let sup_ec = verify_self_signed(&sup_ec_jwt, &sup_id, now())?;
            let stmt = self.subordinate_statement(&sup_ec, &current).await?;
            levels.push((sup_id.clone(), sup_ec_jwt, stmt));
            if sup_id == self.settings.trust_anchor {
                return Ok(ChainDocs { leaf_ec, levels });
            }
            current = sup_id;
            current_ec = sup_ec;
        }
        Err(Error::Trust("chain too long".into()))
    }

    /// The chain of an entity that is a direct subordinate of the anchor and whose entity
    /// configuration is `own_ec` (the relying party itself, answering its resolve endpoint):
    /// the anchor's configuration and its statement about the entity, fetched now.
    pub async fn chain_below_anchor(&self, own_id: &str, own_ec: String) -> Result<ChainDocs> {
        let ta = self.settings.trust_anchor.clone();
        let ta_ec_jwt = self.entity_configuration(&ta).await?;
        let ta_ec = if self.settings.anchor_keys.is_empty() {
            verify_self_signed(&ta_ec_jwt, &ta, now())?
        } else {
            verify_statement(&ta_ec_jwt, &self.settings.anchor_keys, &ta, &ta, now())?
        };
        let stmt = self.subordinate_statement(&ta_ec, own_id).await?;
        Ok(ChainDocs { leaf_ec: own_ec, levels: vec![(ta, ta_ec_jwt, stmt)] })
    }

    /// Settings of this resolver's chain checks.
    pub fn settings(&self) -> &TrustSettings {
        &self.settings
    }

    /// The provider `id`, when the anchor lists it (its `federation_list_endpoint`): a login
    /// names its provider in the query, and nothing the anchor does not list is resolved.
    pub async fn listed_provider(&self, id: &str) -> Result<Arc<Provider>> {
        if !self.listed_providers().await?.iter().any(|l| l == id) {
            return Err(Error::Trust("provider not listed by the trust anchor".into()));
        }
        self.provider(id).await
    }

    /// The provider `id`, from the cache while its chain is valid.
    pub async fn provider(&self, id: &str) -> Result<Arc<Provider>> {
        let t = now();
        if let Ok(cache) = self.cache.lock()
            && let Some((until, p)) = cache.get(id)
            && *until > t
        {
            return Ok(p.clone());
        }
        let docs = self.fetch_chain(id).await?;
        let p = Arc::new(validate_chain(id, "openid_provider", &docs, &self.settings, now())?);
        let until = p.expires_at.min(t + i64::try_from(self.max_age.as_secs()).unwrap_or(3600));
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id.to_string(), (until, p.clone()));
        }
        Ok(p)
    }

    /// Forgets every cached chain (after a key rotation announced out of band).
    pub fn clear(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
        if let Ok(mut l) = self.listing.lock() {
            *l = None;
        }
    }

    /// Entity ids of the providers the anchor lists (its `federation_list_endpoint`).
    pub async fn listed_providers(&self) -> Result<Vec<String>> {
        let t = now();
        if let Ok(l) = self.listing.lock()
            && let Some((until, ids)) = l.as_ref()
            && *until > t
        {
            return Ok(ids.clone());
        }
        let ta = &self.settings.trust_anchor;
        let ec_jwt = self.entity_configuration(ta).await?;
        let ec = if self.settings.anchor_keys.is_empty() {
            verify_self_signed(&ec_jwt, ta, t)?
        } else {
            verify_statement(&ec_jwt, &self.settings.anchor_keys, ta, ta, t)?
        };
        let list = ec
            .metadata("federation_entity")
            .and_then(|m| str_claim(m, "federation_list_endpoint"))
            .ok_or(Error::Trust("anchor has no list endpoint".into()))?;
        let mut url = check_url(list, self.settings.allow_http_loopback)?;
        url.query_pairs_mut().append_pair("entity_type", "openid_provider");
        let body = self.http.get_text("list", url, "application/json").await?;
        let ids: Vec<String> = serde_json::from_str(&body).map_err(|_| Error::Malformed("entity list"))?;
        let until = ec.exp.min(t + i64::try_from(self.max_age.as_secs()).unwrap_or(3600));
        if let Ok(mut l) = self.listing.lock() {
            *l = Some((until, ids.clone()));
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        keys::{KeyUse, RpKey},
        testkit::{Fed, OP, TA, TM_OP},
    };

    #[test]
    fn valid_chain_applies_policy_and_checks_trust_marks() {
        let f = Fed::new();
        let p = f.provider();
        assert_eq!(p.entity_id, OP);
        assert_eq!(p.metadata["subject_types_supported"], json!(["pairwise"]));
        assert_eq!(p.metadata["id_token_signing_alg_values_supported"], json!(["RS256"]));
        assert_eq!(p.trust_marks, vec![TM_OP.to_string()]);
        assert_eq!(p.display_name(), "OP di prova");
        assert!(p.expires_at <= now() + 1800, "chain lives until its earliest exp");
        assert_eq!(p.jwks().len(), 1);
        // Without pinned keys the anchor's published keys are used.
        let mut s = f.settings();
        s.anchor_keys.clear();
        assert!(validate_chain(OP, "openid_provider", &f.docs(), &s, now()).is_ok());
    }

    #[test]
    fn broken_chains_are_refused() {
        let f = Fed::new();
        let rogue = RpKey::generate(KeyUse::Federation).expect("key");
        let t = now();
        let check = |docs: &ChainDocs, s: &TrustSettings| validate_chain(OP, "openid_provider", docs, s, t);

        // The provider signs its configuration with a key the anchor never vouched for.
        let mut d = f.docs();
        let tm = f.trust_mark(OP, &f.ta_key);
        d.leaf_ec = f.op_ec_signed_by(&rogue, json!([{"trust_mark_type": TM_OP, "trust_mark": tm}]));
        assert!(check(&d, &f.settings()).is_err(), "unvouched provider key");

        // The subordinate statement is signed by someone else than the anchor.
        let mut d = f.docs();
        d.levels[0].2 = f.statement(&rogue, 1800);
        assert!(matches!(check(&d, &f.settings()), Err(Error::UnknownKid(_))));

        // An expired statement.
        let mut d = f.docs();
        d.levels[0].2 = f.statement(&f.ta_key, -600);
        assert!(matches!(check(&d, &f.settings()), Err(Error::Expired(_))));

        // The anchor's configuration is not signed with the pinned keys.
        let mut s = f.settings();
        s.anchor_keys = vec![rogue.public_jwk()];
        assert!(check(&f.docs(), &s).is_err(), "pinned anchor keys");

        // A chain that ends somewhere else.
        let mut s = f.settings();
        s.trust_anchor = "https://other-ta.example.org/".into();
        assert!(matches!(check(&f.docs(), &s), Err(Error::Trust(_))));

        // Trust mark missing, or forged by a key that is not the anchor's.
        let mut d = f.docs();
        d.leaf_ec = f.op_ec_signed_by(&f.op_fed_key, json!([]));
        assert!(matches!(check(&d, &f.settings()), Err(Error::Trust(_))));
        let forged = f.trust_mark(OP, &rogue);
        d.leaf_ec = f.op_ec_signed_by(&f.op_fed_key, json!([{"trust_mark_type": TM_OP, "trust_mark": forged}]));
        assert!(matches!(check(&d, &f.settings()), Err(Error::Trust(_))));
        // A trust mark issued to another entity.
        let elsewhere = f.trust_mark("https://someone.else/", &f.ta_key);
        d.leaf_ec = f.op_ec_signed_by(&f.op_fed_key, json!([{"trust_mark_type": TM_OP, "trust_mark": elsewhere}]));
        assert!(matches!(check(&d, &f.settings()), Err(Error::Trust(_))));
        let _ = TA;
    }
}
